//! Every op's pullback against central finite differences over its test domain.

mod common;
use chainrule_core::{build, ops::Op};
use common::*;

#[test]
fn every_pullback_matches_central_differences() {
    let (x, y) = (v("x"), v("y"));
    for &op in Op::ALL {
        let f = build::apply(op, &x, Some(&y));
        let (lo, hi) = op.domain();
        let partials = grad(&f, &[x.clone(), y.clone()]);
        for i in 0..41 {
            let a = lo + (hi - lo) * (i as f64 + 0.37) / 41.0;
            let b = lo + (hi - lo) * ((i * 7 % 41) as f64 + 0.61) / 41.0;
            if matches!(op, Op::Step | Op::Sign | Op::Relu | Op::Abs) && a.abs() < 1e-3 {
                continue;
            }
            let h = 1e-6 * (1.0 + a.abs());
            let fd_x = (at(&f, &[("x", a + h), ("y", b)]) - at(&f, &[("x", a - h), ("y", b)])) / (2.0 * h);
            let got_x = at(&partials[0], &[("x", a), ("y", b)]);
            assert!(rel(fd_x, got_x) < 1e-6, "{op:?} d/dx at ({a}, {b}): fd {fd_x} vs {got_x}");
            if op.arity() == 2 {
                let h = 1e-6 * (1.0 + b.abs());
                let fd_y = (at(&f, &[("x", a), ("y", b + h)]) - at(&f, &[("x", a), ("y", b - h)])) / (2.0 * h);
                let got_y = at(&partials[1], &[("x", a), ("y", b)]);
                assert!(rel(fd_y, got_y) < 1e-6, "{op:?} d/dy at ({a}, {b}): fd {fd_y} vs {got_y}");
            }
        }
    }
}

#[test]
fn kinks_follow_the_zero_convention() {
    let x = v("x");
    for f in ["relu(x)", "abs(x)"] {
        let d = grad(&p(f), std::slice::from_ref(&x));
        assert_eq!(at(&d[0], &[("x", 0.0)]), 0.0, "{f}'(0)");
    }
}

#[test]
fn rules_reuse_the_ops_output() {
    let x = v("x");
    for (f, d) in [
        ("exp(x)", "exp(x)"),
        // s(x) s(-x) and sech^2 = 4 s(2x) s(-2x): s (1 - s) and 1 - tanh^2 cancel in the tails.
        ("sigmoid(x)", "sigmoid(x) * sigmoid(-x)"),
        ("sigmoid(x * y)", "sigmoid(x * y) * sigmoid(-x * y) * y"),
        ("tanh(x)", "4 * (sigmoid(2 * x) * sigmoid(-2 * x))"),
        ("sin(cos(x))", "-cos(cos(x)) * sin(x)"),
    ] {
        assert_eq!(format!("{:?}", grad(&p(f), std::slice::from_ref(&x))[0]), d, "d/dx {f}");
    }
}

#[test]
fn second_derivatives() {
    let x = v("x");
    let d2 = grad(&grad(&p("sin(x) * x"), std::slice::from_ref(&x))[0], std::slice::from_ref(&x))[0].clone();
    for a in [-1.3, 0.2, 2.5] {
        let want = 2.0 * f64::cos(a) - a * f64::sin(a);
        assert!(rel(at(&d2, &[("x", a)]), want) < 1e-14);
    }
}

/// DESIGN.md's power rule at zero, as autograd and JAX: d(x ** y)/dx is 0 at x = 0, y = 0 and
/// d(x ** y)/dy is 0 at x = 0, y > 0 (both were 0 * inf = nan), with `y` bound at call time or
/// a constant base; away from zero both still match finite differences; a constant exponent
/// keeps the plain rule.
#[test]
fn power_rule_at_zero() {
    let (x, y) = (v("x"), v("y"));
    let d = grad(&p("x ** y"), &[x.clone(), y.clone()]);
    assert_eq!(at(&d[0], &[("x", 0.0), ("y", 0.0)]), 0.0, "d/dx at (0, 0)");
    assert_eq!(at(&d[1], &[("x", 0.0), ("y", 0.17)]), 0.0, "d/dy at (0, 0.17)");
    assert_eq!(at(&d[1], &[("x", 0.0), ("y", 3.0)]), 0.0, "d/dy at (0, 3)");
    assert_eq!(at(&d[0], &[("x", 0.0), ("y", 3.0)]), 0.0, "d/dx at (0, 3)");
    assert_eq!(at(&d[0], &[("x", 0.0), ("y", 1.0)]), 1.0, "d/dx at (0, 1)");
    assert_eq!(at(&d[0], &[("x", 2.0), ("y", 0.0)]), 0.0, "d/dx at (2, 0)");
    let dy = grad(&p("0 ** y"), std::slice::from_ref(&y));
    assert_eq!(at(&dy[0], &[("y", 0.17)]), 0.0, "d/dy 0 ** y at 0.17 (autograd's test_power_arg1_zero)");
    for (a, b) in [(0.7, 0.0), (1.3, -0.4), (2.5, 1.7), (0.2, 3.0)] {
        let f = p("x ** y");
        let h = 1e-6;
        let fd_x = (at(&f, &[("x", a + h), ("y", b)]) - at(&f, &[("x", a - h), ("y", b)])) / (2.0 * h);
        let fd_y = (at(&f, &[("x", a), ("y", b + h)]) - at(&f, &[("x", a), ("y", b - h)])) / (2.0 * h);
        assert!(rel(fd_x, at(&d[0], &[("x", a), ("y", b)])) < 1e-7, "d/dx at ({a}, {b})");
        assert!(rel(fd_y, at(&d[1], &[("x", a), ("y", b)])) < 1e-7, "d/dy at ({a}, {b})");
    }
    assert_eq!(format!("{:?}", grad(&p("x ** 3"), std::slice::from_ref(&x))[0]), "3 * x ** 2");
    assert_eq!(format!("{:?}", grad(&p("x ** 0.5"), std::slice::from_ref(&x))[0]), "0.5 * x ** -0.5");
    assert_eq!(format!("{:?}", d[0]), "y * x ** (y - step(abs(y)))");
    assert_eq!(format!("{:?}", d[1]), "xlogy(x ** y, x)");
}

/// `where` never leaks: the gradient of `where(x > 0, sqrt(x), 0)` and of
/// `where(x > 0, log(x), x)` at x = -1 and 0 takes nothing from the untaken branch, to second
/// order, and nested; JAX gives nan for the first.
#[test]
fn where_keeps_the_untaken_branch_out_of_gradients() {
    let x = v("x");
    for (f, d1, d2) in [
        ("where(x > 0, sqrt(x), 0)", [0.0, 0.0, 0.25], [0.0, 0.0, -1.0 / 32.0]),
        ("where(x > 0, log(x), x)", [1.0, 1.0, 0.25], [0.0, 0.0, -1.0 / 16.0]),
        ("where(x > 0, x * sqrt(x), x * x)", [-2.0, 0.0, 3.0], [2.0, 2.0, 0.375]),
        (
            "where(x > 1, sqrt(x - 1), where(x > 0, log(x), 1 / (x - 1)))",
            [-0.25, -1.0, 0.5 / 3f64.sqrt()],
            [-0.25, -2.0, -0.25 / 3f64.powf(1.5)],
        ),
    ] {
        let first = grad(&p(f), std::slice::from_ref(&x))[0].clone();
        let second = grad(&first, std::slice::from_ref(&x))[0].clone();
        for (i, a) in [-1.0, 0.0, 4.0].into_iter().enumerate() {
            assert!(rel(at(&first, &[("x", a)]), d1[i]) < 1e-15, "d/dx {f} at {a}: {}", at(&first, &[("x", a)]));
            assert!(rel(at(&second, &[("x", a)]), d2[i]) < 1e-15, "d2/dx2 {f} at {a}: {}", at(&second, &[("x", a)]));
        }
    }
}
