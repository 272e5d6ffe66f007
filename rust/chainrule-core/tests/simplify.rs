//! One line per simplifier rule: the left side, built through the parser, prints as the right.

mod common;
use common::p;

macro_rules! simplifies {
    ($($name:ident: $input:literal => $output:literal;)*) => {$(
        #[test]
        fn $name() {
            assert_eq!(format!("{:?}", p($input)), $output);
        }
    )*};
}

simplifies! {
    mul_one: "x * 1" => "x";
    one_mul: "1 * x" => "x";
    add_negative_zero: "x + -0" => "x";
    negative_zero_add: "-0 + x" => "x";
    // -0 + 0 is +0: dropping `+ 0` would keep -0.
    add_zero_is_kept: "x + 0" => "x + 0";
    zero_add_is_kept: "0 + x" => "x + 0";
    sub_zero: "x - 0" => "x";
    // -0 - -0 is +0.
    sub_negative_zero_is_kept: "x - -0" => "x - -0";
    negative_zero_sub: "-0 - x" => "-x";
    // 0 - 0 is +0 but -(0) is -0.
    zero_sub_is_kept: "0 - x" => "0 - x";
    // -1 - -1 is +0 but -(1 + -1) is -0.
    negated_difference_is_kept: "-x - y" => "-x - y";
    double_negation: "--x" => "x";
    div_one: "x / 1" => "x";
    pow_one: "x ** 1" => "x";
    pow_zero: "x ** 0" => "1";
    square_lowered: "x ** 2" => "x * x";
    constant_folding: "2 * 3 + 1" => "7";
    function_folding: "exp(0)" => "1";
    constants_go_left_in_products: "x * 3" => "3 * x";
    constants_go_right_in_sums: "3 + x" => "x + 3";
    adding_a_negative: "x + -3" => "x - 3";
    subtracting_a_negative: "x - -3" => "x + 3";
    add_negation: "x + -y" => "x - y";
    negation_leads: "-x + y" => "y - x";
    minus_one_times: "-1 * x" => "-x";
    negation_moves_out: "-x * y" => "-(x * y)";
    negations_cancel: "-x * -y" => "x * y";
    negated_scale_absorbed: "-(2 * x)" => "-2 * x";
    scale_of_negation: "2 * -(y * x)" => "-2 * (y * x)";
    scale_of_negative_scale: "3 * (-2 * x)" => "-3 * (2 * x)";
    one_times_negation: "1 * -x" => "-x";
    minus_one_times_negation: "-1 * -x" => "x";
    negative_scale_of_negation: "-2 * -x" => "2 * x";
    negation_times_constant: "-x * 2" => "-2 * x";
    quotient_negation: "-x / y" => "-(x / y)";
    doubling: "sin(x) + sin(x)" => "2 * sin(x)";
    nested_negative_scale: "y + -2 / x * z" => "y - 2 / x * z";
    zero_times_is_kept: "0 * x" => "0 * x";
    self_difference_is_kept: "x - x" => "x - x";
    pow_half_is_kept: "x ** 0.5" => "x ** 0.5";
}

/// Random expressions over `x`, `y` and constants that hit the rules (zeros of both signs,
/// ones, negatives), built twice: through the simplifying builders, and as the raw structure
/// evaluated op by op with the table's `eval`. Both agree bit for bit (nan with nan) at inputs
/// that include signed zeros, subnormals and huge values.
mod keeps_values {
    use super::common::{at, v};
    use chainrule_core::{build, ops::Op};
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngSeed};

    #[derive(Clone, Debug)]
    enum Raw {
        Leaf(usize),
        Const(f64),
        Apply(Op, Box<Raw>, Box<Raw>),
    }

    const CONSTS: &[f64] = &[0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5, 3.0, 1e300, -1e-310];
    const POINTS: &[f64] = &[0.0, -0.0, 1.0, -1.0, 5e-324, -2.2e-308, 1e-300, 1e300, -1.7e308, 3.5, -0.75];

    fn raw() -> impl Strategy<Value = Raw> {
        let leaf = prop_oneof![(0..2usize).prop_map(Raw::Leaf), prop::sample::select(CONSTS).prop_map(Raw::Const)];
        leaf.prop_recursive(5, 40, 2, |inner| {
            (prop::sample::select(Op::ALL), inner.clone(), inner).prop_map(|(op, a, b)| Raw::Apply(op, Box::new(a), Box::new(b)))
        })
    }

    fn eval(r: &Raw, point: [f64; 2]) -> f64 {
        match r {
            Raw::Leaf(k) => point[*k],
            Raw::Const(c) => *c,
            Raw::Apply(op, a, b) => op.eval(eval(a, point), eval(b, point)),
        }
    }

    fn built(r: &Raw) -> chainrule_core::Expr {
        match r {
            Raw::Leaf(k) => v(["x", "y"][*k]),
            Raw::Const(c) => build::constant(*c),
            Raw::Apply(op, a, b) => build::apply(*op, &built(a), Some(&built(b))),
        }
    }

    proptest! {
        #![proptest_config(Config { cases: 4000, failure_persistence: None, rng_seed: RngSeed::Fixed(0x5157), ..Config::default() })]
        #[test]
        fn simplified_equals_raw(r in raw()) {
            let e = built(&r);
            for &x in POINTS {
                for &y in POINTS {
                    let want = eval(&r, [x, y]);
                    let got = at(&e, &[("x", x), ("y", y)]);
                    let same = want.to_bits() == got.to_bits() || (want.is_nan() && got.is_nan());
                    prop_assert!(same, "{:?} (built as {:?}) at x = {:e}, y = {:e}: {:e} raw, {:e} simplified", r, e, x, y, want, got);
                }
            }
        }
    }
}
