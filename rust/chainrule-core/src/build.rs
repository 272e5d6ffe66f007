//! Builders: the only way to make nodes. Each takes operands by reference and returns the
//! simplified, interned node, using the same words as the Python API and the text format.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::expr::{intern, Expr, Kind, Over};
use crate::ops::Op;
use crate::simplify;

/// A constant.
pub fn constant(value: f64) -> Expr {
    intern(Kind::Const(value), [None, None])
}

/// A variable; the same name is the same node. Fails on names that are not identifiers or
/// that the text format reserves.
pub fn var(name: &str) -> Result<Expr> {
    if !is_valid_name(name) {
        return Err(Error::InvalidName(name.to_string()));
    }
    Ok(intern(Kind::Var(Arc::new(name.to_string())), [None, None]))
}

/// Words the parser gives a meaning of its own, so they cannot name variables.
pub const RESERVED: &[&str] = &["inf", "nan", "pi", "e", "sum", "mean", "over", "where", "clip"];

/// Whether `name` can be a variable: an ASCII identifier that is neither reserved nor a
/// function name.
pub fn is_valid_name(name: &str) -> bool {
    match name.split_once('[') {
        Some((array, index)) => is_valid_name(array) && is_element_index(index),
        None => is_identifier(name),
    }
}

/// The tail of an element's name after `[`: indices in decimal without leading zeros,
/// separated by commas, then `]` (`3,7]` in `W[3,7]`).
fn is_element_index(tail: &str) -> bool {
    let Some(inner) = tail.strip_suffix(']') else { return false };
    inner.split(',').all(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()) && (i == "0" || !i.starts_with('0')))
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    let head_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    head_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') && !RESERVED.contains(&name) && Op::from_call_name(name).is_none()
}

/// Applies a pointwise op (for unary ops `b` is ignored), simplifying first.
pub fn apply(op: Op, a: &Expr, b: Option<&Expr>) -> Expr {
    simplify::apply(op, a, b)
}

macro_rules! binary_builders {
    ($($(#[doc = $doc:literal])* $name:ident => $op:ident;)*) => {$(
        $(#[doc = $doc])*
        pub fn $name(a: &Expr, b: &Expr) -> Expr { apply(Op::$op, a, Some(b)) }
    )*};
}

macro_rules! unary_builders {
    ($($name:ident => $op:ident;)*) => {$(
        #[doc = concat!("`", stringify!($name), "(a)`")]
        pub fn $name(a: &Expr) -> Expr { apply(Op::$op, a, None) }
    )*};
}

binary_builders! {
    /// `a + b`
    add => Add;
    /// `a - b`
    sub => Sub;
    /// `a * b`
    mul => Mul;
    /// `a / b`
    div => Div;
    /// `a ** b` (`a ** 2` is lowered to `a * a`)
    pow => Pow;
    /// `xlogy(a, b) = a * log(b)`, 0 where `a` is 0
    xlogy => Xlogy;
    /// `logaddexp(a, b) = log(exp(a) + exp(b))`
    logaddexp => Logaddexp;
    // piecewise, comparisons and logic
    /// `minimum(a, b)`
    minimum => Minimum;
    /// `maximum(a, b)`
    maximum => Maximum;
    /// `fmod(a, b)`
    fmod => Fmod;
    /// `copysign(a, b)`
    copysign => Copysign;
    /// `nextafter(a, b)`
    nextafter => Nextafter;
    /// `a % b`, with the divisor's sign
    modulo => Mod;
    /// `a < b`
    less => Less;
    /// `a <= b`
    less_equal => LessEqual;
    /// `a > b`
    greater => Greater;
    /// `a >= b`
    greater_equal => GreaterEqual;
    /// `a == b`
    equal => Equal;
    /// `a != b`
    not_equal => NotEqual;
    /// `a & b`
    logical_and => And;
    /// `a | b`
    logical_or => Or;
    /// `select(c, a)`: `a` where `c` is nonzero, else -0.0
    select => Select;
}

unary_builders! {
    neg => Neg; sin => Sin; cos => Cos; tan => Tan; exp => Exp; log => Log; sqrt => Sqrt;
    tanh => Tanh; sigmoid => Sigmoid; relu => Relu; abs => Abs; step => Step; sign => Sign;
    // special and numerically stable functions
    erf => Erf; erfc => Erfc; softplus => Softplus; log_sigmoid => LogSigmoid;
}

// inverse trig and hyperbolic
binary_builders! {
    /// `atan2(a, b)`, the angle of the point (b, a)
    atan2 => Atan2;
}
unary_builders! {
    asin => Asin; acos => Acos; atan => Atan; sinh => Sinh; cosh => Cosh; asinh => Asinh; acosh => Acosh; atanh => Atanh;
    // piecewise, comparisons and logic
    floor => Floor; ceil => Ceil; round => Round; trunc => Trunc; logical_not => Not;
}

// piecewise, comparisons and logic

/// `where(c, a, b)`: `a` where `c` is nonzero (nan included, as NumPy's), else `b`, lowered to
/// `select(c, a) + select(~c, b)`: -0.0 is the exact additive identity, so the sum is `a` or
/// `b` bit for bit, and it prints back as `where(c, a, b)`.
pub fn where_(c: &Expr, a: &Expr, b: &Expr) -> Expr {
    add(&select(c, a), &select(&logical_not(c), b))
}

/// `clip(a, lo, hi) = minimum(maximum(a, lo), hi)`, as NumPy's and JAX's (so is its gradient).
pub fn clip(a: &Expr, lo: &Expr, hi: &Expr) -> Expr {
    minimum(&maximum(a, lo), hi)
}

/// Sum over the whole batch.
pub fn sum(a: &Expr) -> Expr {
    sum_over::<&str>(a, &[])
}

/// Sum over the batch dimensions along which every variable in `over` is broadcast
/// (the whole batch when `over` is empty). Names are sorted and deduplicated.
pub fn sum_over<S: AsRef<str>>(a: &Expr, over: &[S]) -> Expr {
    let mut names: Vec<Arc<str>> = over.iter().map(|s| Arc::from(s.as_ref())).collect();
    names.sort();
    names.dedup();
    sum_over_set(a, names.into())
}

/// [`sum_over`] with an already canonical set.
pub fn sum_over_set(a: &Expr, over: Over) -> Expr {
    intern(Kind::Sum(over), [Some(a.clone()), None])
}

/// Mean over the batch, lowered to `sum(a) / sum(1)` (the batch size is only known at call
/// time); it prints back as `mean(a)`.
pub fn mean(a: &Expr) -> Expr {
    div(&sum(a), &sum(&constant(1.0)))
}

/// Rebuilds a node of the same kind on new operands (used by parsing and loading).
pub fn rebuild(kind: &Kind, args: &[Expr]) -> Expr {
    match kind {
        Kind::Const(c) => constant(*c),
        Kind::Var(name) => intern(Kind::Var(name.clone()), [None, None]),
        Kind::Apply(op) => apply(*op, &args[0], args.get(1)),
        Kind::Sum(over) => sum_over_set(&args[0], over.clone()),
    }
}
