//! The simplifier, applied at node construction. Rules are local (they look at a node and its
//! operands only) and IEEE-safe: a rewrite never changes a value, signed zeros included. So
//! `x + -0`, `x - 0` and `-0 - x` go, but `x + 0` and `x - -0` (+0 at x = -0) and `0 - x`
//! (+0 at x = +0, where `-x` is -0) stay. One rule changes a non-finite result, and the README
//! lists it: `x - x -> 0` (inf - inf is nan). `0 * x -> 0` is not applied (-0 at x = -1);
//! the differentiator never creates such products in the first place, because a pullback
//! returns nothing for a zero adjoint. Every rule looks a bounded depth into its operands, so
//! building stays O(1) per node.
//!
//! Canonical forms, so equal values built differently meet in one node: constants go left in
//! products (`2 * x`) and right in sums (`x + 1`, `x - 1`); negation moves outward through
//! products and quotients (`-(a * b)`) and is absorbed by constants (`-2 * x`).
//!
//! Each algebraic rule, and why it is exact for finite inputs (every float op rounds the exact
//! result once; multiplying by 2^k, k >= 0, is exact unless it overflows, and rounding commutes
//! with it outside the subnormal range):
//! - `a + a -> 2 * a`: both are one rounding of 2a, overflow included.
//! - `c1 * a + c2 * a -> (c1 + c2) * a` for c1, c2 in {1, 2, 4, ...} with an exact sum: both
//!   terms are exact or overflow with a's sign, so the sum is one rounding of (c1 + c2) a.
//!   Not for `2 * a - 3 * a` (3a rounds) nor `4 * a - 2 * a` (4a can overflow where 2a does
//!   not: inf against a finite result).
//! - `a - a -> 0`: +0 for every finite a (round to nearest).
//! - Both, where one side is the other with a sum's or product's operands swapped
//!   (`p * q + q * p -> 2 * (p * q)`): IEEE addition and multiplication are commutative.
//! - `c1 * (c2 * y) -> (c1 * c2) * y` with a finite product of constants, when either
//!   c2 = +-2^k (k >= 0) and |c1| >= 1 (c2 * y is exact, or inf on both sides), or
//!   c1 = +-2^k (k >= 0) and c2 is an integer (c2 * y is never rounded in the subnormal range,
//!   so scaling it commutes with its rounding): `4 * (12 * y) -> 48 * y`. Not for
//!   `2 * (0.5 * y)`: 0.5 y rounds away a subnormal y's last bit.
//!
//! Rules that are NOT applied, because rounding makes them change finite values:
//! `a / b / c -> a / (b * c)`, `(1 / r) / r -> 1 / r ** 2`, `1 / a * b -> b / a`,
//! `2 * a - 3 * a -> -a`, `(a + b) - b -> a`, `x * x ** 2 -> x ** 3` (`**` is C's pow, one
//! rounding, against two for the product), and constant folding through sums.

use crate::build::{add, constant, mul, neg, sub};
use crate::expr::{intern, Expr, Kind};
use crate::ops::Op;

/// Builds `op(a, b)` after applying the first rule that matches (rules call back into the
/// builders, so the result is fully simplified).
pub fn apply(op: Op, a: &Expr, b: Option<&Expr>) -> Expr {
    let b = if op.arity() == 2 { b } else { None };
    if let Some(folded) = fold(op, a, b) {
        return folded;
    }
    let rewritten = match b {
        Some(b) => binary(op, a, b),
        None => unary(op, a),
    };
    rewritten.unwrap_or_else(|| intern(Kind::Apply(op), [Some(a.clone()), b.cloned()]))
}

fn fold(op: Op, a: &Expr, b: Option<&Expr>) -> Option<Expr> {
    // `per_sample(c)` is c for every sample: a shape, which the constant alone does not keep
    // (`per_sample(0.5) + sum(x)` is one value per sample, `0.5 + sum(x)` one value).
    if op == Op::PerSample {
        return None;
    }
    let x = a.as_const()?;
    let y = match b {
        Some(b) => b.as_const()?,
        None => 0.0,
    };
    Some(constant(op.eval(x, y)))
}

/// Whether `c` is +-2^k with k >= 0: multiplying by it is exact unless it overflows.
fn is_power_of_two_at_least_one(c: f64) -> bool {
    let c = c.abs();
    c >= 1.0 && c.is_finite() && c.to_bits() & ((1u64 << 52) - 1) == 0
}

/// `c * y` as its constant and the rest; a term that is not scaled has the factor 1.
fn scaled(e: &Expr) -> (f64, &Expr) {
    if e.as_op() == Some(Op::Mul) {
        if let (Some(c), Some(y)) = (e.arg0().and_then(Expr::as_const), e.arg1()) {
            return (c, y);
        }
    }
    (1.0, e)
}

/// `(c1 * c2) * y` for `c1 * (c2 * y)`, where that is exact (see the module doc).
fn fold_scales(c1: f64, inner: &Expr) -> Option<Expr> {
    if inner.as_op() != Some(Op::Mul) {
        return None;
    }
    let (c2, y) = (inner.arg0()?.as_const()?, inner.arg1()?);
    let product = c1 * c2;
    let exact =
        (is_power_of_two_at_least_one(c2) && c1.abs() >= 1.0) || (is_power_of_two_at_least_one(c1) && c2.fract() == 0.0 && c2 != 0.0);
    // Exact, but `2 * (pi * x)` reads better than `6.283185307179586 * x`.
    let named = |c: f64| c.abs() == std::f64::consts::PI || c.abs() == std::f64::consts::E;
    (exact && product.is_finite() && !named(c1) && !named(c2)).then(|| mul(&constant(product), y))
}

/// Whether `a` and `b` are the same node, or the same sum or product with its operands swapped:
/// `p * q` and `q * p` round the same exact value, so they are equal bit for bit. The
/// differentiator builds both orders (`3 * x ** 2 * cos(x)` from one rule, `cos(x) * (3 * x ** 2)`
/// from another), and this lets like terms meet without reordering what users wrote.
fn same_value(a: &Expr, b: &Expr) -> bool {
    a == b || (a.as_op().is_some_and(Op::is_commutative) && a.as_op() == b.as_op() && a.arg0() == b.arg1() && a.arg1() == b.arg0())
}

/// `(c1 + c2) * a` for `c1 * a + c2 * a`, where that is exact (see the module doc).
fn collect_like_terms(a: &Expr, b: &Expr) -> Option<Expr> {
    let ((c1, x), (c2, y)) = (scaled(a), scaled(b));
    if !same_value(x, y) || x.as_const().is_some() || !is_power_of_two_at_least_one(c1) || !is_power_of_two_at_least_one(c2) {
        return None;
    }
    let total = c1 + c2;
    let exact = c1.is_sign_positive() && c2.is_sign_positive() && total.is_finite() && total - c1 == c2 && total - c2 == c1;
    exact.then(|| mul(&constant(total), x))
}

fn negated(e: &Expr) -> Option<&Expr> {
    (e.as_op() == Some(Op::Neg)).then(|| e.arg0().expect("neg has an operand"))
}

/// The positive form of a term whose sign can be pulled out exactly: `-x`, `c * y` and
/// `c / y` with a negative constant `c`. Sums use it to turn `a + -b` into `a - b`.
fn positive_form(e: &Expr) -> Option<Expr> {
    if let Some(inner) = negated(e) {
        return Some(inner.clone());
    }
    let op = e.as_op().filter(|op| matches!(op, Op::Mul | Op::Div))?;
    let c = e.arg0()?.as_const().filter(|c| *c < 0.0)?;
    Some(crate::build::apply(op, &constant(-c), e.arg1()))
}

fn unary(op: Op, a: &Expr) -> Option<Expr> {
    match op {
        Op::PerSample if a.as_op() == Some(Op::PerSample) => Some(a.clone()),
        Op::Neg => {
            if let Some(inner) = negated(a) {
                return Some(inner.clone());
            }
            // -(c * x) -> (-c) * x and -(c / x) -> (-c) / x keep one canonical spelling for
            // scaled terms, so that the printed `-c / x` reads back as the same node.
            let c = constant(-a.arg0()?.as_const()?);
            let op = a.as_op().filter(|op| matches!(op, Op::Mul | Op::Div))?;
            Some(crate::build::apply(op, &c, a.arg1()))
        }
        _ => None,
    }
}

fn binary(op: Op, a: &Expr, b: &Expr) -> Option<Expr> {
    match op {
        Op::Add => simplify_add(a, b),
        Op::Sub => simplify_sub(a, b),
        Op::Mul => simplify_mul(a, b),
        Op::Div => simplify_div(a, b),
        Op::Pow => simplify_pow(a, b),
        // piecewise, comparisons and logic
        // (A constant standing for an unselected reduction would be one value per sample.)
        Op::Select => a.as_const().filter(|c| *c != 0.0 || free_of_sums(b)).map(|c| if c != 0.0 { b.clone() } else { constant(-0.0) }),
        _ => None,
    }
}

fn simplify_add(a: &Expr, b: &Expr) -> Option<Expr> {
    if a.as_const().is_some() {
        return Some(add(b, a));
    }
    if b.is_const(-0.0) {
        return Some(a.clone());
    }
    if let Some(c) = b.as_const().filter(|c| *c < 0.0) {
        return Some(sub(a, &constant(-c)));
    }
    if let Some(pb) = positive_form(b) {
        return Some(sub(a, &pb));
    }
    if let Some(pa) = positive_form(a) {
        return Some(sub(b, &pa));
    }
    collect_like_terms(a, b)
}

fn simplify_sub(a: &Expr, b: &Expr) -> Option<Expr> {
    if b.is_const(0.0) {
        return Some(a.clone());
    }
    if a.is_const(-0.0) {
        return Some(neg(b));
    }
    if let Some(c) = b.as_const().filter(|c| *c < 0.0) {
        return Some(add(a, &constant(-c)));
    }
    if same_value(a, b) && a.as_const().is_none() && free_of_sums(a) {
        // Exact for finite a; inf - inf and nan - nan were nan (listed in the README). Not
        // for a term with a reduction in it: `sum(x) - sum(x)` is one value, where the
        // constant 0 would be one per sample.
        return Some(constant(0.0));
    }
    // `-a - b -> -(a + b)` is not a rule: at a = 1, b = -1 it gives -0 for +0.
    positive_form(b).map(|pb| add(a, &pb))
}

/// Whether `e` provably holds no batch reduction: its nodes are searched (iteratively) up to
/// a fixed count, and a larger term counts as holding one, so a build stays O(1).
fn free_of_sums(e: &Expr) -> bool {
    const SEARCHED: usize = 64;
    let mut stack = vec![e];
    let mut seen = 0;
    while let Some(node) = stack.pop() {
        seen += 1;
        if seen > SEARCHED || matches!(node.kind(), Kind::Sum(_)) {
            return false;
        }
        stack.extend(node.args());
    }
    true
}

fn simplify_mul(a: &Expr, b: &Expr) -> Option<Expr> {
    if b.as_const().is_some() && a.as_const().is_none() {
        return Some(mul(b, a));
    }
    if a.is_const(1.0) {
        return Some(b.clone());
    }
    if a.is_const(-1.0) {
        return Some(neg(b));
    }
    if let Some(folded) = a.as_const().and_then(|c| fold_scales(c, b)) {
        return Some(folded);
    }
    match (positive_form(a), positive_form(b)) {
        (Some(pa), Some(pb)) => Some(mul(&pa, &pb)),
        (Some(pa), None) => Some(neg(&mul(&pa, b))),
        (None, Some(pb)) => Some(neg(&mul(a, &pb))),
        (None, None) => None,
    }
}

fn simplify_div(a: &Expr, b: &Expr) -> Option<Expr> {
    if b.is_const(1.0) {
        return Some(a.clone());
    }
    if b.is_const(-1.0) {
        return Some(neg(a));
    }
    match (positive_form(a), positive_form(b)) {
        (Some(pa), Some(pb)) => Some(crate::build::div(&pa, &pb)),
        (Some(pa), None) => Some(neg(&crate::build::div(&pa, b))),
        (None, Some(pb)) => Some(neg(&crate::build::div(a, &pb))),
        (None, None) => None,
    }
}

fn simplify_pow(a: &Expr, b: &Expr) -> Option<Expr> {
    let c = b.as_const()?;
    if c == 1.0 {
        Some(a.clone())
    } else if c == 0.0 && free_of_sums(a) {
        // pow(x, 0) is 1 for every x, nan included (but `sum(x) ** 0` is one value).
        Some(constant(1.0))
    } else if c == 2.0 {
        Some(mul(a, a))
    } else {
        None
    }
}
