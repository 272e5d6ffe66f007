//! The simplifier, applied at node construction. Rules are local (they look at a node and its
//! operands only) and IEEE-safe: a rewrite never changes a value, signed zeros included. So
//! `x + -0`, `x - 0` and `-0 - x` go, but `x + 0` and `x - -0` (+0 at x = -0) and `0 - x`
//! (+0 at x = +0, where `-x` is -0) stay. Rules that would change a nan or inf result
//! (`0 * x -> 0`, `x - x -> 0`) are not applied; the differentiator never creates such
//! products in the first place, because a pullback returns nothing for a zero adjoint.
//! Every rule looks a bounded depth into its operands, so building stays O(1) per node.
//!
//! Canonical forms, so equal values built differently meet in one node: constants go left in
//! products (`2 * x`) and right in sums (`x + 1`, `x - 1`); negation moves outward through
//! products and quotients (`-(a * b)`) and is absorbed by constants (`-2 * x`).

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
    let x = a.as_const()?;
    let y = match b {
        Some(b) => b.as_const()?,
        None => 0.0,
    };
    Some(constant(op.eval(x, y)))
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
            // -(c * x) -> (-c) * x keeps one canonical spelling for scaled terms.
            let lhs = a.arg0()?;
            let c = lhs.as_const()?;
            (a.as_op() == Some(Op::Mul)).then(|| mul(&constant(-c), a.arg1().expect("binary")))
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
        Op::Select => a.as_const().map(|c| if c != 0.0 { b.clone() } else { constant(-0.0) }),
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
    (a == b).then(|| mul(&constant(2.0), a))
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
    // `-a - b -> -(a + b)` is not a rule: at a = 1, b = -1 it gives -0 for +0.
    positive_form(b).map(|pb| add(a, &pb))
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
    } else if c == 0.0 {
        // pow(x, 0) is 1 for every x, nan included.
        Some(constant(1.0))
    } else if c == 2.0 {
        Some(mul(a, a))
    } else {
        None
    }
}
