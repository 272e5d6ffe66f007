//! Printing and parsing: minimal parentheses, exact round trips, named shared lines, errors.

mod common;
use chainrule_core::{build, error::Error, parse, print};
use common::*;

#[test]
fn round_trips_are_the_same_node() {
    for text in [
        "sin(cos(x)) * exp(-(y * y)) + log(x * x + 1) * sigmoid(x * y)",
        "x - (y - z)",
        "x - y - z",
        "x / (y * z)",
        "x ** y ** z",
        "(x ** y) ** z",
        "-x ** 2",
        "(-x) ** y",
        "x ** -y",
        "(-2) ** x",
        "2 ** -x",
        "-2 * x",
        "x * 1e300 + 1.5e-7",
        "x + inf",
        "x * nan",
        "x - -inf",
        "mean(x * x)",
        "sum(x, over=y) / sum(1)",
        "mean(x * y, over=y)",
        "mean(x, over=(x, y)) + mean(y)",
        "x / sqrt(2) + 2 / sqrt(pi) * y",
        "x ** (1 / sqrt(2)) - (-sqrt(2)) ** y",
        "-1 / sqrt(2 * pi) * x + log(2) * y * (pi / 2)",
        "sum(x * y, over=(x, y))",
        "relu(x) + abs(y) + step(x) + sign(y) + tan(x) + sqrt(y) + tanh(x)",
        "x * -0.0",
        "0.1 + x",
        "-x * y * z",
        "-2 / x",
        "-(2 / x) * y",
        "-(x / y) / z",
        "-(2 * x * y)",
        "-sin(x) ** 2 * y",
        "(x * x) ** 3",
        "(x * x) * (x * x)",
        "-(x * x) * y",
        "-(mean(x) * y)",
        "-((x + 1) * y)",
        "-(x ** y * z)",
        "-(2 ** x * z)",
        "exp(-(y * y)) * -(x * y)",
    ] {
        let e = p(text);
        let printed = format!("{e:?}");
        assert_eq!(p(&printed), e, "{text} printed as {printed}");
    }
}

#[test]
fn minimal_parentheses() {
    for (text, printed) in [
        ("((x)) + (y * z)", "x + y * z"),
        ("(x + y) * z", "(x + y) * z"),
        ("-(x * y)", "-x * y"),
        ("-(x * x)", "-x ** 2"),
        ("sin((x))", "sin(x)"),
    ] {
        assert_eq!(format!("{:?}", p(text)), printed);
    }
}

#[test]
fn shared_subexpressions_are_named_once() {
    let t = p("sin(x * y + 1) * sin(x * y + 1) + cos(sin(x * y + 1))");
    let text = format!("{t:?}");
    assert_eq!(text, "t1 = sin(x * y + 1)\nt1 ** 2 + cos(t1)");
    assert_eq!(p(&text), t);
}

#[test]
fn constants_print_as_the_formula_they_fold_from() {
    for (text, printed) in [
        ("x / sqrt(2)", "x / sqrt(2)"),
        ("x * 1.4142135623730951", "sqrt(2) * x"),
        ("1.1283791670955126 * x", "2 / sqrt(pi) * x"),
        ("x * (1 / sqrt(2 * pi))", "1 / sqrt(2 * pi) * x"),
        ("-0.6931471805599453 * x", "-log(2) * x"),
        ("x ** 0.7071067811865475", "x ** (1 / sqrt(2))"),
        // Only exact matches: one ulp off stays a number.
        ("1.4142135623730954 * x", "1.4142135623730954 * x"),
        ("0.5 * x", "0.5 * x"),
        // On its own, a constant is the number.
        ("sqrt(2)", "1.4142135623730951"),
    ] {
        assert_eq!(format!("{:?}", p(text)), printed, "{text}");
    }
}

#[test]
fn a_part_used_three_times_is_named_even_when_short() {
    let e = p("x / (x * x + 1) + y / (x * x + 1) - z * (x * x + 1)");
    let text = format!("{e:?}");
    assert_eq!(text, "t1 = x ** 2 + 1\nx / t1 + y / t1 - z * t1");
    assert_eq!(p(&text), e);
    // Twice, it stays inline.
    assert_eq!(format!("{:?}", p("x / (x * x + 1) + y / (x * x + 1)")), "x / (x ** 2 + 1) + y / (x ** 2 + 1)");
}

#[test]
fn names_avoid_variables() {
    let e = p("sin(t1 * y + 1) * sin(t1 * y + 1) + t2");
    let text = format!("{e:?}");
    assert!(text.starts_with("t3 = "), "{text}");
    assert_eq!(p(&text), e);
}

#[test]
fn derivative_text_stays_linear() {
    // Forty nested layers: a tree printer would print 2^40 terms.
    let x = v("x");
    let mut e = x.clone();
    for _ in 0..40 {
        e = build::sin(&build::mul(&e, &e));
    }
    let d = &grad(&e, std::slice::from_ref(&x))[0];
    let text = print::to_text(std::slice::from_ref(d));
    assert!(text.len() < 40 * 120, "{} characters", text.len());
    assert_eq!(p(&text), *d);
}

#[test]
fn parse_errors_point_at_the_position() {
    for (text, pos, fragment) in [
        ("sin(x", 0, "unclosed"),
        ("(x + 1", 0, "unclosed"),
        ("x + * y", 4, "operand"),
        ("foo(x)", 0, "unknown function"),
        ("x $ y", 2, "unexpected character"),
        ("sin(x, y)", 0, "takes 1 argument"),
        ("1e+", 1, "exponent"),
        ("x y", 2, "operator"),
        ("", 0, "expected an expression"),
        ("x)", 1, "unmatched"),
        ("sum = 2\nsum", 0, "reserved"),
    ] {
        match parse::parse_one(text) {
            Err(Error::Parse { pos: got, message, .. }) => {
                assert_eq!(got, pos, "{text:?}: {message}");
                assert!(message.contains(fragment), "{text:?}: {message}");
            }
            other => panic!("{text:?} gave {other:?}"),
        }
    }
    let shown = parse::parse_one("x + * y").unwrap_err().to_string();
    assert_eq!(shown, "expected an operand, found '*' at position 4\n  x + * y\n      ^");
}

#[test]
fn definitions_and_several_results() {
    let results = parse::parse("a1 = x * y; a1 + 1\nsin(a1)").expect("parses");
    assert_eq!(results, vec![p("x * y + 1"), p("sin(x * y)")]);
}

#[test]
fn latex_reads_as_written() {
    for (text, latex) in [
        ("x * x", "x^{2}"),
        ("sqrt(x) / (2 * y)", "\\frac{\\sqrt{x}}{2 y}"),
        ("sigmoid(x) * (1 - sigmoid(x))", "\\sigma\\left(x\\right) \\left(1 - \\sigma\\left(x\\right)\\right)"),
        ("exp(-(x * x)) * 3", "3 e^{-x^{2}}"),
        ("x * 2 ** y", "x \\cdot 2^{y}"),
        ("-(x * y)", "-x y"),
        ("(x + 1) ** 0.5", "\\left(x + 1\\right)^{0.5}"),
        ("abs(x1) + mu", "\\left|x_{1}\\right| + \\mu"),
        ("mean(x) - 2.5e-7 * y", "\\operatorname{mean}\\left(x\\right) - 2.5 \\cdot 10^{-7} y"),
        ("pi * x / 1e-5", "\\frac{\\pi x}{10^{-5}}"),
        ("sum(x, over=w) + xlogy(x, y)", "\\operatorname{sum}_{w}\\left(x\\right) + \\operatorname{xlogy}\\left(x, y\\right)"),
        ("mean(x * y, over=w)", "\\operatorname{mean}_{w}\\left(x y\\right)"),
    ] {
        assert_eq!(print::to_latex(&[p(text)]), latex, "{text}");
    }
}

#[test]
fn latex_names_shared_parts_on_aligned_lines() {
    let t = p("sin(x * y + 1) * sin(x * y + 1) + cos(sin(x * y + 1))");
    assert_eq!(
        print::to_latex(&[t]),
        "\\begin{aligned}\nt_{1} &= \\sin\\left(x y + 1\\right) \\\\\n& t_{1}^{2} + \\cos\\left(t_{1}\\right)\n\\end{aligned}"
    );
}

#[test]
fn latex_of_a_deep_chain_does_not_recurse() {
    let mut e = v("x");
    for _ in 0..200_000 {
        e = build::sin(&e);
    }
    assert_eq!(print::to_latex(std::slice::from_ref(&e)).matches("\\sin").count(), 200_000);
}
