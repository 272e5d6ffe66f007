//! Constant powers: lowered by the compiler to products that share one ladder of squares per
//! base, square roots and one division, while the graph keeps `x ** n`.

mod common;
use chainrule_core::Function;
use common::*;

fn function(text: &str) -> Function {
    Function::new(&[p(text)], &[v("x")]).expect("compiles")
}

fn listing(text: &str) -> String {
    function(text).tape(&[false]).to_string()
}

/// Chunk instructions that multiply, counting each `*` of a fused instruction.
fn products(tape: &str) -> usize {
    tape.lines().filter(|l| l.contains(" = ")).map(|l| l.matches(" * ").count()).sum()
}

#[test]
fn powers_of_one_base_share_one_ladder() {
    // x2, x4, x8; x12 = x4 * x8, x6 = x2 * x4, x11 = (x * x2) * x8.
    let t = listing("x ** 12 + x ** 6 + x ** 11");
    assert_eq!(products(&t), 7, "{t}");
    assert!(!t.contains("**") && !t.contains("pow"), "{t}");
    // Six squarings and nothing else.
    assert_eq!(products(&listing("x ** 64")), 6);
    // Adding a power the ladder already has costs nothing more.
    assert_eq!(products(&listing("x ** 12 + x ** 8 + x ** 4")), 4);
}

#[test]
fn negative_and_half_exponents_take_one_division_and_one_square_root() {
    // x ** 0.5 is the pow kernel's square root (a slot exponent of 0.5).
    let t = listing("x ** -3.5");
    assert_eq!((t.matches(" ** ").count(), t.matches(" / ").count(), products(&t)), (1, 1, 3), "{t}");
    let t = listing("x ** 0.5 + x ** -0.5 + x ** 1.5");
    assert_eq!((t.matches(" ** ").count(), t.matches(" / ").count(), products(&t)), (1, 1, 1), "{t}");
    // A general exponent goes to the pow kernel, not to products.
    let t = listing("x ** 2.25");
    assert!(t.contains(" ** ") && products(&t) == 0, "{t}");
}

#[test]
fn the_graph_keeps_the_power() {
    let f = function("x ** 12 + x ** -0.5");
    assert_eq!(f.outputs(), vec![p("x ** 12 + x ** -0.5")]);
}

/// Distance in ulps, for finite values of one sign.
fn ulps(a: f64, b: f64) -> u64 {
    (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs()
}

#[test]
fn lowered_powers_stay_within_their_bound_and_scalars_equal_chunks() {
    let xs: Vec<f64> = values(4000, 7, -3.0, 3.0).into_iter().chain(values(4000, 8, 0.5, 2.0)).collect();
    for k in -129..=129 {
        let c = k as f64 / 2.0;
        let f = Function::new(&[chainrule_core::build::pow(&v("x"), &chainrule_core::build::constant(c))], &[v("x")]).expect("compiles");
        let call = f.prepare(&[vec![xs.len()]]).expect("shapes");
        let mut got = vec![0.0; xs.len()];
        f.run(&call, &[&xs], &mut [got.as_mut_slice()]).expect("runs");
        // The README's bound (|c| ulp, at least 2) plus libm's own error against the exact value.
        let bound = c.abs().max(2.0) as u64 + 1;
        for (&x, &g) in xs.iter().zip(&got) {
            let want = x.powf(c);
            let mut single = Vec::new();
            f.call_scalars(&[x], &mut single).expect("calls");
            assert_eq!(single[0].to_bits(), g.to_bits(), "x ** {c} at {x:e}: single vs chunk");
            if want.is_nan() {
                assert!(g.is_nan(), "x ** {c} at {x:e}: {g:e}");
            } else {
                assert!(ulps(g, want) <= bound, "x ** {c} at {x:e}: {g:e} vs pow {want:e}");
            }
        }
    }
}

#[test]
fn integer_and_half_integer_powers_keep_c_special_cases() {
    let xs = [0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1.0, -1.0, -2.0, 1e-310, -1e-310];
    for n in [-7.0, -4.0, -3.0, -1.0, 3.0, 4.0, 7.0, 12.0, 64.0, 0.5, -0.5, 1.5, -1.5, 2.5, -3.5, 64.5] {
        let f = Function::new(&[chainrule_core::build::pow(&v("x"), &chainrule_core::build::constant(n))], &[v("x")]).expect("compiles");
        let call = f.prepare(&[vec![xs.len()]]).expect("shapes");
        let mut got = vec![0.0; xs.len()];
        f.run(&call, &[&xs], &mut [got.as_mut_slice()]).expect("runs");
        for (&x, &g) in xs.iter().zip(&got) {
            let want = x.powf(n);
            // Subnormal powers are products of subnormals: only their class and sign must agree.
            let close = want != 0.0 && want.is_finite() && ulps(g, want) <= 64 || want == 0.0 && g == 0.0 && x.abs() < 1e-300;
            assert!(g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()) || close, "{x:e} ** {n}: {g:e} vs {want:e}");
        }
    }
}

#[test]
fn the_power_rule_gives_n_times_x_to_the_n_minus_one() {
    let d = grad(&p("x ** 12"), &[v("x")]).remove(0);
    assert_eq!(d, p("12 * x ** 11"));
    let d = grad(&p("x ** -0.5"), &[v("x")]).remove(0);
    assert_eq!(d, p("-0.5 * x ** -1.5"));
    // Finite at zero, where out * n / x would be nan.
    let d = grad(&p("x ** 3"), &[v("x")]).remove(0);
    assert_eq!(at(&d, &[("x", 0.0)]), 0.0);
}

/// W9's energy and forces as benches/run.py builds them: `-1 / (d . d + 0.01) ** 0.5` and the
/// negated gradient.
fn w9() -> Function {
    let d = [v("dx"), v("dy"), v("dz")];
    let e = p("-1 / (dx ** 2 + dy ** 2 + dz ** 2 + 0.01) ** 0.5");
    let mut outputs = vec![e.clone()];
    outputs.extend(grad(&e, &d).iter().map(chainrule_core::build::neg));
    Function::new(&outputs, &d).expect("compiles")
}

#[test]
fn w9_takes_one_division_and_one_square_root_per_sample() {
    // The divider is most of W9's time: the energy's -1 / q shares the gradient's 1 / q, and
    // the gradient squares it instead of dividing by q again (three divisions before).
    let t = w9().tape(&[false; 3]).to_string();
    assert_eq!((t.matches(" / ").count(), t.matches(" ** ").count()), (1, 1), "{t}");
}

#[test]
fn w9_forces_match_the_hand_derived_formula() {
    let f = w9();
    let n = 3000;
    let d: Vec<Vec<f64>> = (0..3).map(|k| values(n, 40 + k, -2.0, 2.0)).collect();
    let call = f.prepare(&[vec![n], vec![n], vec![n]]).expect("shapes");
    let mut outs = vec![vec![0.0; n]; 4];
    let mut views: Vec<&mut [f64]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
    f.run(&call, &[&d[0], &d[1], &d[2]], &mut views).expect("runs");
    for i in 0..n {
        let s = d[0][i] * d[0][i] + d[1][i] * d[1][i] + d[2][i] * d[2][i] + 0.01;
        let inv = 1.0 / s.sqrt();
        assert!(rel(outs[0][i], -inv) < 1e-15, "E at {i}");
        for k in 0..3 {
            let want = -inv * inv * inv * d[k][i];
            // Both sides round the cube of a rounded reciprocal root: a few ulp each.
            assert!((outs[k + 1][i] - want).abs() <= 2e-15 * want.abs(), "F{k} at {i}: {} vs {want}", outs[k + 1][i]);
        }
    }
}

#[test]
fn minus_one_over_x_shares_the_reciprocal_and_keeps_every_bit() {
    // -1 / x is compiled as -(1 / x) when 1 / x is in the graph too: the same bits as the graph's
    // own evaluation, signed zeros and infinities included.
    let outputs = [p("-1 / x"), p("1 / x"), p("-1 / (x * x)")];
    let f = Function::new(&outputs, &[v("x")]).expect("compiles");
    let t = f.tape(&[false]).to_string();
    assert_eq!(t.matches(" / ").count(), 2, "{t}");
    let mut xs = values(2000, 11, -5.0, 5.0);
    xs.extend([0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 5e-324, -5e-324, 1e-310, f64::MAX, -f64::MAX]);
    let call = f.prepare(&[vec![xs.len()]]).expect("shapes");
    let mut outs = vec![vec![0.0; xs.len()]; 3];
    let mut views: Vec<&mut [f64]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
    f.run(&call, &[&xs], &mut views).expect("runs");
    let want = chainrule_core::reference::evaluate(&outputs, &[("x", &xs, &[xs.len()])]).expect("evaluates");
    for (k, (got, want)) in outs.iter().zip(&want).enumerate() {
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()), "output {k} at x = {:e}: {g:e} vs {w:e}", xs[i]);
        }
    }
}

#[test]
fn reciprocal_gradients_square_the_output() {
    // d(1/x)/dx = -(1/x)^2 and d(-1/x)/dx = (1/x)^2, within an ulp and a half of the exact
    // value (here against a twice-rounded reference), with the general rule's values at the ends: -inf at 0, -0 at infinity.
    let x = v("x");
    for (text, sign) in [("1 / x", -1.0), ("-1 / x", 1.0)] {
        let d = &grad(&p(text), std::slice::from_ref(&x))[0];
        for &a in &values(500, 12, -30.0, 30.0) {
            let (got, want) = (at(d, &[("x", a)]), sign / (a * a)); // itself two roundings off
            assert!((got - want).abs() <= 6e-16 * want.abs(), "{text} at {a}: {got:e} vs {want:e}");
        }
        for (a, want) in
            [(0.0, sign * f64::INFINITY), (-0.0, sign * f64::INFINITY), (f64::INFINITY, sign * 0.0), (f64::NEG_INFINITY, sign * 0.0)]
        {
            let got = at(d, &[("x", a)]);
            assert_eq!(got.to_bits(), want.to_bits(), "{text} at {a}: {got:e} vs {want:e}");
        }
    }
}
