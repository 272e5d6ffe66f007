//! Fused tape instructions (`sin_cos`, two-op `Fused` loops) and the evaluator's copy-free
//! loads and stores change no bit: arithmetic-only tapes equal the reference evaluator exactly
//! (both round after every IEEE op), and a fused `sin_cos` equals the separate kernels.

mod common;
use chainrule_core::{compile::Function, kernels, reference, Expr};
use common::*;

/// Runs `outputs` on the fast evaluator; inputs are (name, data, shape).
fn fast(outputs: &[Expr], inputs: &[(&str, &[f64], &[usize])]) -> Vec<Vec<f64>> {
    let vars: Vec<Expr> = inputs.iter().map(|(n, _, _)| v(n)).collect();
    let f = Function::new(outputs, &vars).expect("compiles");
    let shapes: Vec<Vec<usize>> = inputs.iter().map(|i| i.2.to_vec()).collect();
    let call = f.prepare(&shapes).expect("broadcasts");
    let mut outs: Vec<Vec<f64>> = call.output_shapes.iter().map(|s| vec![f64::NAN; s.iter().product()]).collect();
    let data: Vec<&[f64]> = inputs.iter().map(|i| i.1).collect();
    let mut views: Vec<&mut [f64]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
    f.run(&call, &data, &mut views).expect("runs");
    outs
}

fn listing(text: &str, inputs: &[&str]) -> String {
    let vars: Vec<Expr> = inputs.iter().map(|n| v(n)).collect();
    let f = Function::new(&[p(text)], &vars).expect("compiles");
    f.tape(&vec![false; inputs.len()]).to_string()
}

fn assert_bitwise(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()), "{what} element {i}: fast {g:e} vs {w:e}");
    }
}

#[test]
fn listings_show_fused_instructions() {
    let t = listing("sin(x) * cos(x)", &["x"]);
    assert!(t.contains("r1, r2 = sin_cos(r0)"), "{t}");
    let t = listing("x * y + 1", &["x", "y"]);
    assert!(t.contains(") + s0"), "{t}");
    let t = listing("sigmoid(x) * (1 - sigmoid(x))", &["x"]);
    assert!(t.contains(" = sigmoid_slope(r0)"), "{t}");
    // A `1 - s` used elsewhere too stays a register of its own.
    let t = listing("sigmoid(x) * (1 - sigmoid(x)) + (1 - sigmoid(x))", &["x"]);
    assert!(!t.contains("sigmoid_slope") && t.contains("s0 - r1"), "{t}");
    let t = listing("-(x * y)", &["x", "y"]);
    assert!(t.contains("= -(r"), "{t}");
}

#[test]
fn arithmetic_tapes_equal_the_reference_bit_for_bit() {
    let n = 3000; // several chunks and a ragged tail
    let (xs, ys, zs) = (values(n, 1, -3.0, 3.0), values(n, 2, -3.0, 3.0), values(n, 3, 0.1, 2.0));
    let w = [0.75];
    let mut specials = xs.clone();
    specials[..6].copy_from_slice(&[0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1e-310]);
    let exprs = [
        "x * y + z",
        "z - x * y",
        "(x - y) / z",
        "z / (x + y)",
        "-(x / z)",
        "-(x * w)",
        "x * (1 - x)",
        "(w - x) * y",
        "x * x + 1",
        "w * x + y",
        "(x * y) * (x + z)",
        "x * y - (x + z) * w",
        "((x + y) * z - x) / (z + w)",
        "-(x * y) + -(z * w)",
        "x / (y * z) - w / (x - z)",
    ];
    for text in exprs {
        let e = p(text);
        // The value, twice (one direct write, one copy) and scaled (a read after the direct
        // write), and an input passed straight through.
        let outputs = [e.clone(), e.clone(), build_mul2(&e), v("x")];
        for xdata in [&xs, &specials] {
            let inputs: [(&str, &[f64], &[usize]); 4] = [("x", xdata, &[n]), ("y", &ys, &[n]), ("z", &zs, &[n]), ("w", &w, &[])];
            let got = fast(&outputs, &inputs);
            let want = reference::evaluate(&outputs, &inputs).expect("reference");
            for (o, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_bitwise(g, w, &format!("{text} output {o}"));
            }
        }
    }
}

fn build_mul2(e: &Expr) -> Expr {
    chainrule_core::build::mul(&chainrule_core::build::constant(2.0), e)
}

#[test]
fn broadcast_operands_are_still_gathered() {
    let (xs, ys) = (values(30, 4, -2.0, 2.0), values(700, 5, -2.0, 2.0));
    let outputs = [p("x * y + x"), p("y - x * x")];
    let inputs: [(&str, &[f64], &[usize]); 2] = [("x", &xs, &[30, 1]), ("y", &ys, &[700])];
    let got = fast(&outputs, &inputs);
    let want = reference::evaluate(&outputs, &inputs).expect("reference");
    for (o, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_bitwise(g, w, &format!("output {o}"));
    }
}

#[test]
fn fused_sin_cos_equals_the_separate_kernels() {
    let n = 2500;
    let mut xs = values(n, 6, -20.0, 20.0);
    xs[..5].copy_from_slice(&[0.0, -0.0, f64::NAN, 3e6, -1e-9]);
    let got = fast(&[p("sin(x)"), p("cos(x)"), p("sin(x) * cos(x)")], &[("x", &xs, &[n])]);
    let (mut s, mut c) = (vec![0.0; n], vec![0.0; n]);
    kernels::sin(&xs, &mut s);
    kernels::cos(&xs, &mut c);
    let prod: Vec<f64> = s.iter().zip(&c).map(|(a, b)| a * b).collect();
    assert_bitwise(&got[0], &s, "sin");
    assert_bitwise(&got[1], &c, "cos");
    assert_bitwise(&got[2], &prod, "sin * cos");
}

#[test]
fn fused_sigmoid_slope_equals_the_kernel_and_arithmetic() {
    let n = 2500;
    let mut xs = values(n, 7, -50.0, 50.0);
    xs[..6].copy_from_slice(&[0.0, -0.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -800.0]);
    let outputs = [p("sigmoid(x)"), p("sigmoid(x) * (1 - sigmoid(x))"), p("(1 - sigmoid(x)) * sigmoid(x) * x")];
    let got = fast(&outputs, &[("x", &xs, &[n])]);
    let mut s = vec![0.0; n];
    kernels::sigmoid(&xs, &mut s);
    let slope: Vec<f64> = s.iter().map(|v| v * (1.0 - v)).collect();
    let scaled: Vec<f64> = s.iter().zip(&xs).map(|(v, x)| ((1.0 - v) * v) * x).collect();
    assert_bitwise(&got[0], &s, "sigmoid");
    assert_bitwise(&got[1], &slope, "slope");
    assert_bitwise(&got[2], &scaled, "slope * x");
}

/// A sigmoid-with-slope of `w * x + b` (uniform `w`, `b`) forms its argument in the kernel's
/// loop; values and slopes, and the network gradients built from them, are bit for bit those of
/// the unfused tape (the argument kept in a register because it is also an output).
#[test]
fn affine_sigmoid_slope_equals_the_unfused_tape() {
    let t = listing("sigmoid(w * x + b) * (1 - sigmoid(w * x + b))", &["x", "w", "b"]);
    assert!(!t.contains("sigmoid_slope(("), "w, b per sample: no affine fusion\n{t}");
    let vars: Vec<Expr> = ["x", "w", "b"].iter().map(|n| v(n)).collect();
    let f = Function::new(&[p("sigmoid(w * x + b) * (1 - sigmoid(w * x + b))")], &vars).expect("compiles");
    let t = f.tape(&[false, true, true]).to_string();
    assert!(t.contains("= sigmoid_slope((s") && t.contains(" * r0) + s") && !t.contains(" = (s"), "{t}");

    let n = 3000; // several chunks and a ragged tail
    let mut xs = values(n, 8, -60.0, 60.0);
    xs[..6].copy_from_slice(&[0.0, -0.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -800.0]);
    let ys = values(2 * n, 9, 0.0, 1.0);
    let exprs = ["sigmoid(w * x + b)", "sigmoid(x * w - b)", "sigmoid(b + x * w)", "sigmoid(w * sigmoid(w * x + b) + b)"];
    for text in exprs {
        let e = p(text);
        let slope = chainrule_core::build::mul(&e, &chainrule_core::build::sub(&chainrule_core::build::constant(1.0), &e));
        let j = p(&format!("mean((y - {text}) ** 2)"));
        let mut fused = vec![e.clone(), slope.clone(), j.clone()];
        fused.extend(grad(&j, &[v("w"), v("b")]));
        // The same outputs plus the argument itself: it then has a second reader and stays
        // a register, so that tape is the unfused one.
        let arg = p(&text["sigmoid(".len()..text.len() - 1]);
        let mut unfused = fused.clone();
        unfused.push(arg);
        let uniform_wb = [false, false, true, true];
        let vars: Vec<Expr> = ["x", "y", "w", "b"].iter().map(|n| v(n)).collect();
        let t = Function::new(&fused, &vars).expect("compiles").tape(&uniform_wb).to_string();
        assert!(t.contains("sigmoid_slope((s"), "{text}: fused\n{t}");
        let t = Function::new(&unfused, &vars).expect("compiles").tape(&uniform_wb).to_string();
        assert!(t.matches("sigmoid_slope((s").count() < 1 + usize::from(text.contains("sigmoid(w * sigmoid")), "{text}: unfused\n{t}");
        for (w, b) in [(0.7, -0.2), (-2.0, 1.5)] {
            for (xshape, xdata) in [(vec![n], &xs[..]), (vec![n / 3, 1], &xs[..n / 3]), (vec![], &xs[7..8])] {
                let (w, b) = ([w], [b]);
                let ys2: &[f64] = if xshape.len() == 2 { &ys[..n / 3 * 5] } else { &ys[..n] };
                let yshape: Vec<usize> = if xshape.len() == 2 { vec![n / 3, 5] } else { vec![ys2.len()] };
                let inputs: [(&str, &[f64], &[usize]); 4] = [("x", xdata, &xshape), ("y", ys2, &yshape), ("w", &w, &[]), ("b", &b, &[])];
                let got = fast(&fused, &inputs);
                let want = fast(&unfused, &inputs);
                for (o, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert_bitwise(g, w, &format!("{text} x{xshape:?} output {o}"));
                }
            }
        }
    }
}

/// python/chainrule/compiled.py shows this listing in a doctest (its slot numbers depend on
/// how the expression was built, so only the chunk code is compared).
#[test]
fn listing_of_the_python_doctest_is_unchanged() {
    let t = listing("sin(x) * 2", &["x"]);
    let s = if t.starts_with("s0 = 2") { "s0" } else { "s1" };
    let want = format!("pass 0: 2 registers of 1024 samples\n  for each chunk:\n    r0 = load in0\n    r1 = sin(r0)\n    r0 = {s} * r1\n    out0 <- r0\nout0 = stored chunks\n");
    assert!(t.ends_with(&want), "{t}");
}
