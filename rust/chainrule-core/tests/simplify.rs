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
    add_zero: "x + 0" => "x";
    zero_add: "0 + x" => "x";
    sub_zero: "x - 0" => "x";
    zero_sub: "0 - x" => "-x";
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
