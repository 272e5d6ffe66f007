//! Every pointwise operation, declared once. The op table (`with_op_table`) gives each op its
//! text name, arity, printing precedence, fast kernel and the input domain its tests sample;
//! the evaluator derives its chunk and single-value dispatch from the same rows. Below it, two
//! exhaustive matches with no catch-all arm: `eval` (the reference semantics on one f64, the
//! oracle that every fast kernel is tested against) and `pullback` (the reverse-mode rule,
//! building graph nodes). Adding an op does not compile until its row, both matches and its
//! kernel are written.
//!
//! Leaves (constants, variables) and the batch reduction `sum` are not pointwise and live in
//! [`crate::expr::Kind`]; the differentiator treats `sum` as a boundary between reverse sweeps.

use crate::build;
use crate::expr::Expr;

/// Declares [`Op`] and its table accessors from the rows of [`with_op_table`].
macro_rules! declare_ops {
    ($( $(#[doc = $doc:literal])* $variant:ident: $name:literal, arity $arity:literal,
        infix $infix:expr, kernel $kernel:ident, domain ($lo:expr, $hi:expr); )*) => {
        /// A pointwise operation.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Op { $( $(#[doc = $doc])* $variant, )* }

        impl Op {
            /// Every op, in declaration order (the order is the serialized op code).
            pub const ALL: &'static [Op] = &[$(Op::$variant),*];

            /// The op's spelling in text: an operator symbol or a function name.
            pub fn name(self) -> &'static str { match self { $(Op::$variant => $name,)* } }

            /// Number of operands.
            pub fn arity(self) -> usize { match self { $(Op::$variant => $arity,)* } }

            /// Binding strength when printed as an infix operator; `None` for calls.
            pub fn infix(self) -> Option<u8> { match self { $(Op::$variant => $infix,)* } }

            /// The interval the op's tests sample its operands from (away from kinks and poles).
            pub fn domain(self) -> (f64, f64) { match self { $(Op::$variant => ($lo, $hi),)* } }
        }
    };
}

/// The op table, one row per op: its text name, arity, printing precedence, fast kernel and
/// the domain its tests sample. Calls `$then!` with the rows, so each module that derives code
/// from the table (the enum here, the evaluator's chunk and single-value dispatch in
/// [`crate::kernels`]) matches every op without a catch-all arm.
///
/// `kernel` names the op's vectorised kernel (a [`crate::kernels::Unary`] variant, or a
/// [`crate::kernels::Binary`] one for a binary op), or `lanes`:
/// a loop of [`Op::eval`] that the compiler vectorises. Chunks and single values take the same
/// one, so `f(0.3)` and `f(np.array([0.3]))` cannot differ.
macro_rules! with_op_table {
    ($then:ident) => {
        $then! {
            /// `a + b`
            Add: "+", arity 2, infix Some(4), kernel lanes, domain (-4.0, 4.0);
            /// `a - b`
            Sub: "-", arity 2, infix Some(4), kernel lanes, domain (-4.0, 4.0);
            /// `a * b`
            Mul: "*", arity 2, infix Some(5), kernel lanes, domain (-4.0, 4.0);
            /// `a / b`
            Div: "/", arity 2, infix Some(5), kernel lanes, domain (0.5, 4.0);
            /// `a ** b`, with C's `pow` semantics.
            Pow: "**", arity 2, infix Some(7), kernel Pow, domain (0.3, 2.5);
            /// unary `-a`
            Neg: "-", arity 1, infix Some(6), kernel lanes, domain (-4.0, 4.0);
            /// `sin(a)`
            Sin: "sin", arity 1, infix None, kernel Sin, domain (-6.0, 6.0);
            /// `cos(a)`
            Cos: "cos", arity 1, infix None, kernel Cos, domain (-6.0, 6.0);
            /// `tan(a)`
            Tan: "tan", arity 1, infix None, kernel Tan, domain (-1.4, 1.4);
            /// `exp(a)`
            Exp: "exp", arity 1, infix None, kernel Exp, domain (-5.0, 5.0);
            /// `log(a)`, the natural logarithm; nan below zero, -inf at zero.
            Log: "log", arity 1, infix None, kernel Log, domain (0.05, 8.0);
            /// `sqrt(a)`
            Sqrt: "sqrt", arity 1, infix None, kernel Sqrt, domain (0.05, 8.0);
            /// `tanh(a)`
            Tanh: "tanh", arity 1, infix None, kernel Tanh, domain (-4.0, 4.0);
            /// `sigmoid(a) = 1 / (1 + exp(-a))`
            Sigmoid: "sigmoid", arity 1, infix None, kernel Sigmoid, domain (-8.0, 8.0);
            /// `relu(a) = max(a, 0)`; its derivative at 0 is 0.
            Relu: "relu", arity 1, infix None, kernel lanes, domain (-4.0, 4.0);
            /// `abs(a)`; its derivative at 0 is 0.
            Abs: "abs", arity 1, infix None, kernel lanes, domain (-4.0, 4.0);
            /// `step(a)`: 1 where a > 0, else 0 (relu's derivative).
            Step: "step", arity 1, infix None, kernel lanes, domain (-4.0, 4.0);
            /// `sign(a)`: -1, 0 or 1 (abs's derivative).
            Sign: "sign", arity 1, infix None, kernel lanes, domain (-4.0, 4.0);
            /// `per_sample(a)`: the value of `a`, given for every sample of the batch. The gradient
            /// of a per-sample expression can come out as a batch-wide value (through a
            /// reduction); this keeps its shape per sample, as DESIGN.md's first gradient rule
            /// asks.
            PerSample: "per_sample", arity 1, infix None, kernel lanes, domain (-4.0, 4.0);
            /// `xlogy(a, b) = a * log(b)`, and 0 where `a` is 0 (unless `b` is nan), as SciPy's and
            /// JAX's: the power rule's `d(a ** b)/db = out * log(a)` is `xlogy(out, a)`, 0 at a = 0.
            Xlogy: "xlogy", arity 2, infix None, kernel lanes, domain (0.3, 2.5);
            // exponentials, logarithms, roots
            /// `exp2(a) = 2 ** a`
            Exp2: "exp2", arity 1, infix None, kernel Exp2, domain (-5.0, 5.0);
            /// `expm1(a) = exp(a) - 1`, accurate near 0.
            Expm1: "expm1", arity 1, infix None, kernel Expm1, domain (-5.0, 5.0);
            /// `log2(a)`; nan below zero, -inf at zero.
            Log2: "log2", arity 1, infix None, kernel Log2, domain (0.05, 8.0);
            /// `log10(a)`; nan below zero, -inf at zero.
            Log10: "log10", arity 1, infix None, kernel Log10, domain (0.05, 8.0);
            /// `log1p(a) = log(1 + a)`, accurate near 0; -inf at -1, nan below.
            Log1p: "log1p", arity 1, infix None, kernel Log1p, domain (-0.9, 8.0);
            /// `cbrt(a)`, the real cube root (negative for negative `a`); its derivative at 0 is inf.
            Cbrt: "cbrt", arity 1, infix None, kernel Cbrt, domain (0.05, 8.0);
            /// `hypot(a, b) = sqrt(a * a + b * b)` without overflow or underflow; inf if either
            /// is infinite, even when the other is nan (as C's).
            Hypot: "hypot", arity 2, infix None, kernel Hypot, domain (-4.0, 4.0);
            // special and numerically stable functions
            /// `erf(a)`, the error function.
            Erf: "erf", arity 1, infix None, kernel Erf, domain (-3.0, 3.0);
            /// `erfc(a) = 1 - erf(a)`, with full relative accuracy in the right tail.
            Erfc: "erfc", arity 1, infix None, kernel Erfc, domain (-3.0, 5.0);
            /// `softplus(a) = log(1 + exp(a))`, exact in both tails.
            Softplus: "softplus", arity 1, infix None, kernel Softplus, domain (-8.0, 8.0);
            /// `log_sigmoid(a) = log(sigmoid(a)) = -softplus(-a)`, exact in both tails.
            LogSigmoid: "log_sigmoid", arity 1, infix None, kernel LogSigmoid, domain (-8.0, 8.0);
            /// `logaddexp(a, b) = log(exp(a) + exp(b))`, without overflow or underflow.
            Logaddexp: "logaddexp", arity 2, infix None, kernel Logaddexp, domain (-4.0, 4.0);
            // inverse trig and hyperbolic
            /// `asin(a)`; nan outside [-1, 1].
            Asin: "asin", arity 1, infix None, kernel Asin, domain (-0.9, 0.9);
            /// `acos(a)`; nan outside [-1, 1].
            Acos: "acos", arity 1, infix None, kernel Acos, domain (-0.9, 0.9);
            /// `atan(a)`
            Atan: "atan", arity 1, infix None, kernel Atan, domain (-4.0, 4.0);
            /// `atan2(a, b)`: the angle of the point (b, a), in [-pi, pi], as C's `atan2(y, x)`.
            Atan2: "atan2", arity 2, infix None, kernel Atan2, domain (0.5, 4.0);
            /// `sinh(a)`
            Sinh: "sinh", arity 1, infix None, kernel Sinh, domain (-4.0, 4.0);
            /// `cosh(a)`
            Cosh: "cosh", arity 1, infix None, kernel Cosh, domain (-4.0, 4.0);
            /// `asinh(a)`
            Asinh: "asinh", arity 1, infix None, kernel Asinh, domain (-4.0, 4.0);
            /// `acosh(a)`; nan below 1.
            Acosh: "acosh", arity 1, infix None, kernel Acosh, domain (1.1, 6.0);
            /// `atanh(a)`; nan outside [-1, 1], infinite at -1 and 1.
            Atanh: "atanh", arity 1, infix None, kernel Atanh, domain (-0.9, 0.9);
            // piecewise, comparisons and logic
            /// `minimum(a, b)`, nan if either is (NumPy's); the gradient splits 0.5/0.5 at a tie.
            Minimum: "minimum", arity 2, infix None, kernel lanes, domain (-4.0, 4.0);
            /// `maximum(a, b)`, nan if either is (NumPy's); the gradient splits 0.5/0.5 at a tie.
            Maximum: "maximum", arity 2, infix None, kernel lanes, domain (-4.0, 4.0);
            /// `floor(a)`; zero gradient.
            Floor: "floor", arity 1, infix None, kernel lanes, domain (-4.0, 4.0);
            /// `ceil(a)`; zero gradient.
            Ceil: "ceil", arity 1, infix None, kernel lanes, domain (-4.0, 4.0);
            /// `round(a)`, half to even as `np.round`; zero gradient.
            Round: "round", arity 1, infix None, kernel lanes, domain (-4.0, 4.0);
            /// `trunc(a)`, towards zero; zero gradient.
            Trunc: "trunc", arity 1, infix None, kernel lanes, domain (-4.0, 4.0);
            /// `fmod(a, b)`, C's remainder with the sign of `a`.
            Fmod: "fmod", arity 2, infix None, kernel lanes, domain (0.5, 4.0);
            /// `copysign(a, b)`: `|a|` with the sign bit of `b` (`|a|` where `b` is nan).
            Copysign: "copysign", arity 2, infix None, kernel lanes, domain (-4.0, 4.0);
            /// `nextafter(a, b)`: the next float after `a` towards `b`.
            Nextafter: "nextafter", arity 2, infix None, kernel lanes, domain (-4.0, 4.0);
            /// `a % b`, with the sign of `b` (Python's and `np.remainder`'s).
            Mod: "%", arity 2, infix Some(5), kernel lanes, domain (0.5, 4.0);
            /// `a < b`: 1 or 0.
            Less: "<", arity 2, infix Some(1), kernel lanes, domain (-4.0, 4.0);
            /// `a <= b`: 1 or 0.
            LessEqual: "<=", arity 2, infix Some(1), kernel lanes, domain (-4.0, 4.0);
            /// `a > b`: 1 or 0.
            Greater: ">", arity 2, infix Some(1), kernel lanes, domain (-4.0, 4.0);
            /// `a >= b`: 1 or 0.
            GreaterEqual: ">=", arity 2, infix Some(1), kernel lanes, domain (-4.0, 4.0);
            /// `a == b`: 1 or 0.
            Equal: "==", arity 2, infix Some(1), kernel lanes, domain (-4.0, 4.0);
            /// `a != b`: 1 or 0 (1 where either is nan).
            NotEqual: "!=", arity 2, infix Some(1), kernel lanes, domain (-4.0, 4.0);
            /// `a & b`: 1 where both are nonzero (nan counts as true, as NumPy's logical_and).
            And: "&", arity 2, infix Some(3), kernel lanes, domain (-4.0, 4.0);
            /// `a | b`: 1 where either is nonzero (nan counts as true).
            Or: "|", arity 2, infix Some(2), kernel lanes, domain (-4.0, 4.0);
            /// `~a`: 1 where `a` is zero, else 0 (NumPy's logical_not).
            Not: "~", arity 1, infix Some(6), kernel lanes, domain (-4.0, 4.0);
            /// `select(c, a)`: `a` where `c` is nonzero (nan included), else -0.0, the exact additive
            /// identity, so `where(c, a, b) = select(c, a) + select(~c, b)` gives `a` or `b` bit
            /// for bit. Its pullback hands `select(c, adj)` to `a`, and the differentiator keeps
            /// that selection outside every product below it, so the branch not taken never
            /// reaches a gradient.
            Select: "select", arity 2, infix None, kernel lanes, domain (0.5, 4.0);
        }
    };
}
pub(crate) use with_op_table;

with_op_table!(declare_ops);

impl Op {
    /// Looks an op up by the name it is called by in text (`sin`, ...); operators are not calls.
    pub fn from_call_name(name: &str) -> Option<Op> {
        let name = Op::ALIASES.iter().find(|&&(alias, _)| alias == name).map_or(name, |&(_, op)| op.name());
        Op::ALL.iter().copied().find(|op| op.infix().is_none() && op.name() == name)
    }

    /// Other spellings the parser accepts for a call (numexpr's and NumPy's), printed as the op's
    /// own name.
    pub const ALIASES: &'static [(&'static str, Op)] = &[
        // inverse trig and hyperbolic
        ("arcsin", Op::Asin),
        ("arccos", Op::Acos),
        ("arctan", Op::Atan),
        ("arctan2", Op::Atan2),
        ("arcsinh", Op::Asinh),
        ("arccosh", Op::Acosh),
        ("arctanh", Op::Atanh),
    ];

    /// Whether `a op b == b op a` exactly, in IEEE arithmetic.
    pub fn is_commutative(self) -> bool {
        matches!(self, Op::Add | Op::Mul)
    }

    /// Reference semantics on one value (`b` is ignored by unary ops). IEEE like NumPy:
    /// no exceptions, nan and inf propagate. Always inlined: the evaluator's loops call it with
    /// a constant op, which must fold to the one operation (`x + y`) in the vectorised loop.
    #[inline(always)]
    pub fn eval(self, a: f64, b: f64) -> f64 {
        match self {
            Op::Add => a + b,
            Op::Sub => a - b,
            Op::Mul => a * b,
            Op::Div => a / b,
            Op::Pow => a.powf(b),
            Op::Neg => -a,
            Op::Sin => a.sin(),
            Op::Cos => a.cos(),
            Op::Tan => a.tan(),
            Op::Exp => a.exp(),
            Op::Log => a.ln(),
            Op::Sqrt => a.sqrt(),
            Op::Tanh => a.tanh(),
            Op::Sigmoid => sigmoid(a),
            Op::Relu => {
                if a > 0.0 || a.is_nan() {
                    a
                } else {
                    0.0
                }
            }
            Op::Abs => a.abs(),
            Op::Step => {
                if a > 0.0 {
                    1.0
                } else if a.is_nan() {
                    a
                } else {
                    0.0
                }
            }
            Op::Sign => {
                if a > 0.0 {
                    1.0
                } else if a < 0.0 {
                    -1.0
                } else {
                    a
                }
            }
            Op::PerSample => a,
            Op::Xlogy => {
                // A NaN `a` is returned as it is: in `a * log(b)` with both NaN, which NaN comes
                // back depends on the operand order the compiler picks, which differs between
                // the vector loop and a single value.
                if a.is_nan() {
                    a
                } else if a == 0.0 && !b.is_nan() {
                    0.0
                } else {
                    a * b.ln()
                }
            }
            // exponentials, logarithms, roots
            Op::Exp2 => a.exp2(),
            Op::Expm1 => a.exp_m1(),
            Op::Log2 => a.log2(),
            Op::Log10 => a.log10(),
            Op::Log1p => a.ln_1p(),
            Op::Cbrt => a.cbrt(),
            Op::Hypot => a.hypot(b),
            // special and numerically stable functions
            Op::Erf => libm::erf(a),
            Op::Erfc => libm::erfc(a),
            Op::Softplus => softplus(a),
            Op::LogSigmoid => -softplus(-a),
            Op::Logaddexp => logaddexp(a, b),
            // inverse trig and hyperbolic
            Op::Asin => a.asin(),
            Op::Acos => a.acos(),
            Op::Atan => a.atan(),
            Op::Atan2 => a.atan2(b),
            Op::Sinh => a.sinh(),
            Op::Cosh => a.cosh(),
            // The `libm` crate's (musl's), not std's: std's acosh loses most digits near 1 and
            // its asinh overflows above 1e308 / 2. The crate's acosh answers for |a| below -1 as
            // for |a| (acosh(-2) = 1.317), hence the guard.
            Op::Asinh => libm::asinh(a),
            Op::Acosh if a < 1.0 => f64::NAN,
            Op::Acosh => libm::acosh(a),
            Op::Atanh => libm::atanh(a),
            // piecewise, comparisons and logic
            Op::Minimum => {
                if a < b || a.is_nan() {
                    a
                } else {
                    b
                }
            }
            Op::Maximum => {
                if a > b || a.is_nan() {
                    a
                } else {
                    b
                }
            }
            Op::Floor => a.floor(),
            Op::Ceil => a.ceil(),
            Op::Round => a.round_ties_even(),
            Op::Trunc => a.trunc(),
            Op::Fmod => a % b,
            // A NaN's sign bit is not a value (constants keep one canonical NaN): read as +.
            Op::Copysign if b.is_nan() => a.abs(),
            Op::Copysign => a.copysign(b),
            Op::Nextafter => nextafter(a, b),
            Op::Mod => remainder(a, b),
            Op::Less => truth(a < b),
            Op::LessEqual => truth(a <= b),
            Op::Greater => truth(a > b),
            Op::GreaterEqual => truth(a >= b),
            Op::Equal => truth(a == b),
            Op::NotEqual => truth(a != b),
            Op::And => truth(a != 0.0 && b != 0.0),
            Op::Or => truth(a != 0.0 || b != 0.0),
            Op::Not => truth(a == 0.0),
            Op::Select => {
                if a != 0.0 {
                    b
                } else {
                    -0.0
                }
            }
        }
    }

    /// The reverse-mode rule: given the operands, the op's own output `out` and the adjoint
    /// flowing into it, the adjoint contribution to each operand whose `need` flag is set.
    /// `None` means structurally zero. Rules reuse `out` where the derivative is a function of
    /// it, which hash-consing makes free.
    ///
    /// A contribution's sign is returned apart from it ([`Signed`]): every rule is linear in
    /// `adj`, so the differentiator carries signs along and builds a negation only where a
    /// gradient ends negative. Negating at once built nodes that the next rule or sum took
    /// apart again (`-(adj * x)` -> `adj * x` -> `2 * (adj * x)`, ...): three dead nodes per
    /// variable in W5.
    pub fn pullback(self, a: &Expr, b: &Expr, out: &Expr, adj: &Expr, need: [bool; 2]) -> [Option<Signed>; 2] {
        use build::*;
        let one = || constant(1.0);
        let plus = |e: Expr| Some(Signed::plus(e));
        let minus = |e: Expr| Some(Signed::minus(e));
        let unary = |d: Expr| [plus(times(adj, &d)), None];
        match self {
            Op::Add => [plus(adj.clone()), plus(adj.clone())],
            Op::Sub => [plus(adj.clone()), minus(adj.clone())],
            // x * x: one contribution 2 * (adj * x) instead of two equal ones.
            Op::Mul if a == b => [plus(twice(adj, a)), None],
            Op::Mul => [need[0].then(|| Signed::plus(times(adj, b))), need[1].then(|| Signed::plus(times(adj, a)))],
            // 1 / b and -1 / b: d/db = -a / b^2 is -a * out * out, a product where the general rule
            // divides again (W9's force: one division per sample of its two, and the divider
            // bounds its speed); for both signs out * out is 1 / b^2, with the same overflow.
            Op::Div if a.is_const(1.0) || a.is_const(-1.0) => {
                let square = times(adj, &mul(out, out));
                [None, need[1].then(|| if a.is_const(1.0) { Signed::minus(square) } else { Signed::plus(square) })]
            }
            Op::Div => [need[0].then(|| Signed::plus(div(adj, b))), need[1].then(|| Signed::minus(div(&times(adj, out), b)))],
            // A constant exponent keeps b * a ** (b - 1) (x ** 3 -> 3 * (x * x)). Else the exponent
            // is b - step(abs(b)), the same bits as b - 1 except at b = 0, where it is 0, so that
            // d/da is 0 * a ** 0 = 0 (not 0 * inf at a = 0), as autograd and JAX.
            Op::Pow => [
                need[0].then(|| {
                    let less = if b.as_const().is_some() { one() } else { step(&abs(b)) };
                    Signed::plus(times(adj, &mul(b, &pow(a, &sub(b, &less)))))
                }),
                need[1].then(|| Signed::plus(mul(adj, &xlogy(out, a)))),
            ],
            Op::Neg => [minus(adj.clone()), None],
            Op::Sin => unary(cos(a)),
            Op::Cos => [minus(mul(adj, &sin(a))), None],
            Op::Tan => unary(add(&one(), &mul(out, out))),
            Op::Exp => unary(out.clone()),
            Op::Log => [plus(div(adj, a)), None],
            Op::Sqrt => [plus(div(adj, &mul(&constant(2.0), out))), None],
            // sech^2 = 4 s(2a) s(-2a): 1 - out * out cancels to 0 from |a| = 19 on.
            Op::Tanh => unary(mul(&constant(4.0), &sigmoid_slope(&mul(&constant(2.0), a)))),
            Op::Sigmoid => unary(mul(out, &sigmoid(&neg(a)))),
            Op::Relu => unary(step(a)),
            Op::Abs => unary(sign(a)),
            Op::Step => [None, None],
            Op::Sign => [None, None],
            Op::PerSample => [plus(adj.clone()), None],
            Op::Xlogy => [need[0].then(|| Signed::plus(mul(adj, &log(b)))), need[1].then(|| Signed::plus(mul(adj, &div(a, b))))],
            // exponentials, logarithms, roots
            Op::Exp2 => unary(mul(out, &constant(std::f64::consts::LN_2))),
            // exp(a), not out + 1, which cancels: 7 ulp at a = -2, 0 from a = -37 on.
            Op::Expm1 => unary(exp(a)),
            Op::Log2 => [plus(mul(adj, &div(&constant(std::f64::consts::LOG2_E), a))), None],
            Op::Log10 => [plus(mul(adj, &div(&constant(std::f64::consts::LOG10_E), a))), None],
            Op::Log1p => [plus(div(adj, &add(&one(), a))), None],
            // 1 / (3 cbrt(a)^2): inf at a = 0, as JAX's.
            Op::Cbrt => [plus(div(adj, &mul(&constant(3.0), &mul(out, out)))), None],
            // a / out and b / out, with out + (out == 0) below: the same bits as out except at the
            // origin, where it is 1, so the gradient there is 0 (JAX's; hypot(a, 0) = abs(a),
            // whose derivative at 0 is 0) instead of 0 / 0. A nan out stays nan.
            Op::Hypot => {
                let den = add(out, &equal(out, &constant(0.0)));
                [need[0].then(|| Signed::plus(mul(adj, &div(a, &den)))), need[1].then(|| Signed::plus(mul(adj, &div(b, &den))))]
            }
            // special and numerically stable functions. erf' = 2/sqrt(pi) exp(-a*a): `a * a` rounds,
            // so the slope carries a relative error up to a*a * 2^-53 (1e-14 at |a| = 10; erf'
            // itself is below 1e-43 there); erfc' is its negation, the same node.
            Op::Erf => unary(mul(&constant(std::f64::consts::FRAC_2_SQRT_PI), &exp(&neg(&mul(a, a))))),
            Op::Erfc => [minus(mul(adj, &mul(&constant(std::f64::consts::FRAC_2_SQRT_PI), &exp(&neg(&mul(a, a)))))), None],
            Op::Softplus => unary(sigmoid(a)),
            Op::LogSigmoid => unary(sigmoid(&neg(a))),
            // sigmoid(a - b) and sigmoid(b - a): exact in the tails and summing to 1; nan where
            // a - b is (a = b = inf or -inf), as PyTorch's rule gives.
            Op::Logaddexp => [
                need[0].then(|| Signed::plus(mul(adj, &sigmoid(&sub(a, b))))),
                need[1].then(|| Signed::plus(mul(adj, &sigmoid(&sub(b, a))))),
            ],
            // inverse trig and hyperbolic. (1 - a)(1 + a) keeps its relative accuracy near |a| = 1,
            // where 1 - a * a cancels; at |a| = 1 the derivatives are inf, as in JAX.
            Op::Asin => [plus(div(adj, &sqrt(&one_minus_square(a)))), None],
            Op::Acos => [minus(div(adj, &sqrt(&one_minus_square(a)))), None],
            // 1 + a * a overflows only where the derivative is below 1e-308 anyway.
            Op::Atan => [plus(div(adj, &add(&one(), &mul(a, a)))), None],
            // d/da = b / (a^2 + b^2), d/db = -a / (a^2 + b^2): the square overflows beyond 1e154
            // (the derivative flushes to 0, true value below 1e-154) and underflows below 1e-154.
            // b / (a^2 + b^2) as (b / r) / r with r = hypot(a, b): neither the squares nor the
            // product with the adjoint underflow where the gradient does not (adj * a / r2
            // gave 0 for -4e-220 at a = 1.6e-193, b = 3.9e-56, adj = 4e-138).
            Op::Atan2 => {
                let r = apply(Op::Hypot, a, Some(b));
                [
                    need[0].then(|| Signed::plus(div(&mul(adj, &div(b, &r)), &r))),
                    need[1].then(|| Signed::minus(div(&mul(adj, &div(a, &r)), &r))),
                ]
            }
            Op::Sinh => unary(cosh(a)),
            Op::Cosh => unary(sinh(a)),
            // 1 / sqrt(1 + a^2) flushes to 0 beyond |a| = 1e154 (true value below 1e-154).
            Op::Asinh => [plus(div(adj, &sqrt(&add(&one(), &mul(a, a))))), None],
            // sqrt(a - 1) sqrt(a + 1): exact-ish near 1 (a - 1 is exact) and no overflow for huge a.
            Op::Acosh => [plus(div(adj, &mul(&sqrt(&sub(a, &one())), &sqrt(&add(a, &one()))))), None],
            Op::Atanh => [plus(div(adj, &one_minus_square(a))), None],
            // piecewise, comparisons and logic
            Op::Minimum => {
                [need[0].then(|| Signed::plus(mul(adj, &tie_weight(a, b)))), need[1].then(|| Signed::plus(mul(adj, &tie_weight(b, a))))]
            }
            Op::Maximum => {
                [need[0].then(|| Signed::plus(mul(adj, &tie_weight(b, a)))), need[1].then(|| Signed::plus(mul(adj, &tie_weight(a, b))))]
            }
            Op::Floor | Op::Ceil | Op::Round | Op::Trunc => [None, None],
            // d/db as JAX's: -trunc(a / b) for fmod, -floor(a / b) for %.
            Op::Fmod => [plus(adj.clone()), need[1].then(|| Signed::minus(mul(adj, &trunc(&div(a, b)))))],
            Op::Mod => [plus(adj.clone()), need[1].then(|| Signed::minus(mul(adj, &floor(&div(a, b)))))],
            // 1 where the signs of a and the result agree, -1 where not, 0 at a = 0 (abs'(0)).
            Op::Copysign => [plus(mul(adj, &mul(&sign(a), &sign(out)))), None],
            // The identity it steps away from by one ulp, as finite differences see it.
            Op::Nextafter => [plus(adj.clone()), None],
            Op::Less | Op::LessEqual | Op::Greater | Op::GreaterEqual | Op::Equal | Op::NotEqual => [None, None],
            Op::And | Op::Or | Op::Not => [None, None],
            Op::Select => [None, need[1].then(|| Signed::plus(select(a, adj)))],
        }
    }
}

/// An expression `e`, or its negation when `negated`: an adjoint with its sign kept apart.
#[derive(Clone, Debug)]
pub struct Signed {
    /// The magnitude.
    pub e: Expr,
    /// Whether the value is `-e`.
    pub negated: bool,
}

impl Signed {
    /// `sign * e`, with a negation node in `e` moved into the sign.
    pub fn new(e: Expr, negated: bool) -> Signed {
        match (e.as_op(), e.arg0()) {
            (Some(Op::Neg), Some(inner)) => Signed { e: inner.clone(), negated: !negated },
            _ => Signed { e, negated },
        }
    }

    /// `e`.
    pub fn plus(e: Expr) -> Signed {
        Signed::new(e, false)
    }

    /// `-e`.
    pub fn minus(e: Expr) -> Signed {
        Signed::new(e, true)
    }

    /// `self * sign`, where `negate` flips it.
    pub fn times_sign(self, negate: bool) -> Signed {
        Signed { negated: self.negated != negate, ..self }
    }

    /// `self + other`: `a + b` or `-(a + b)` when the signs agree, else the positive term
    /// minus the negative one (the spelling the simplifier gives `a + -b`).
    pub fn plus_term(self, other: Signed) -> Signed {
        match (self.negated, other.negated) {
            (x, y) if x == y => Signed { e: build::add(&self.e, &other.e), negated: x },
            (false, _) => Signed::plus(build::sub(&self.e, &other.e)),
            _ => Signed::plus(build::sub(&other.e, &self.e)),
        }
    }

    /// The expression, with its negation built if it has one.
    pub fn value(self) -> Expr {
        if self.negated {
            build::neg(&self.e)
        } else {
            self.e
        }
    }
}

/// `adj * d` for a pullback, written `d / q` where either factor is `1 / q` (`-(d / q)` for
/// `-1 / q`): `log(sin(x))` gives `cos(x) / sin(x)`, not `1 / sin(x) * cos(x)`. Not the value of
/// the product, but at least as accurate everywhere: one rounding instead of two, no overflow or
/// underflow of `1 / q` on the way, and the same inf, nan and signed zeros where `d` or `q` is
/// zero or infinite. The simplifier may not do this for expressions users build (it would change
/// their values); a derivative is ours to write as accurately as we can.
fn times(adj: &Expr, d: &Expr) -> Expr {
    let reciprocal = |e: &Expr| match (e.as_op(), e.arg0().and_then(Expr::as_const), e.arg1()) {
        (Some(Op::Div), Some(c), Some(q)) if c.abs() == 1.0 => Some((c, q.clone())),
        _ => None,
    };
    let (over, (c, q)) = match (reciprocal(adj), reciprocal(d)) {
        (Some(r), _) => (d, r),
        (None, Some(r)) => (adj, r),
        (None, None) => return build::mul(adj, d),
    };
    let quotient = build::div(over, &q);
    if c < 0.0 {
        build::neg(&quotient)
    } else {
        quotient
    }
}

/// `2 * (adj * a)`, the square's pullback, as `p * a` where `adj` is `p / 2` or `0.5 * p` (the
/// square in `x ** 2 / 2` or `0.5 * k * x ** 2`): halving and doubling are exact, so the two
/// agree bit for bit except where `adj` or `adj * a` is subnormal, and there `p * a` has the
/// bits the halving rounded away.
fn twice(adj: &Expr, a: &Expr) -> Expr {
    let half = match (adj.as_op(), adj.arg0(), adj.arg1()) {
        (Some(Op::Div), Some(p), Some(two)) if two.is_const(2.0) => Some(p),
        (Some(Op::Mul), Some(half), Some(p)) if half.is_const(0.5) => Some(p),
        _ => None,
    };
    match half {
        Some(p) => times(p, a),
        None if adj.is_const(0.5) => a.clone(),
        None => build::mul(&build::constant(2.0), &times(adj, a)),
    }
}

/// `sigmoid(a) * sigmoid(-a)`, the sigmoid's slope in a form that keeps full relative
/// accuracy in both tails (`s * (1 - s)` cancels to 0 from a = 37.5 on); the compiler fuses
/// it into one `sigmoid_slope` kernel.
fn sigmoid_slope(a: &Expr) -> Expr {
    build::mul(&build::sigmoid(a), &build::sigmoid(&build::neg(a)))
}

/// `(1 - a)(1 + a)`, which keeps full relative accuracy near |a| = 1 (`1 - a` is exact there).
fn one_minus_square(a: &Expr) -> Expr {
    let one = build::constant(1.0);
    build::mul(&build::sub(&one, a), &build::add(&one, a))
}

/// The logistic function, written so neither tail overflows or loses relative accuracy.
pub fn sigmoid(a: f64) -> f64 {
    if a >= 0.0 {
        1.0 / (1.0 + (-a).exp())
    } else {
        let e = a.exp();
        e / (1.0 + e)
    }
}

/// `log(1 + exp(a))` as `max(a, 0) + log1p(exp(-|a|))`: neither term overflows, and the
/// correction is exact to its last bit however small (softplus(-1000) = exp(-1000)).
pub fn softplus(a: f64) -> f64 {
    if a.is_nan() {
        return a;
    }
    a.max(0.0) + (-a.abs()).exp().ln_1p()
}

/// `log(exp(a) + exp(b))` as NumPy's `logaddexp`: `max + log1p(exp(-|a - b|))`, and `a + ln 2`
/// where `a == b` (infinities of one sign included, which `a - b` would turn into nan).
pub fn logaddexp(a: f64, b: f64) -> f64 {
    if a == b {
        return a + std::f64::consts::LN_2;
    }
    let d = a - b;
    if d.is_nan() {
        return d;
    }
    a.max(b) + (-d.abs()).exp().ln_1p()
}

// piecewise, comparisons and logic

/// 1.0 for true, 0.0 for false: what comparisons and logic ops return.
#[inline(always)]
fn truth(t: bool) -> f64 {
    if t {
        1.0
    } else {
        0.0
    }
}

/// `np.remainder`: C's `fmod`, moved into the divisor's sign; a zero result takes the divisor's
/// sign, and a zero divisor gives nan.
#[inline(always)]
fn remainder(a: f64, b: f64) -> f64 {
    let m = a % b;
    if m == 0.0 {
        if b == 0.0 {
            m
        } else {
            0.0f64.copysign(b)
        }
    } else if (b < 0.0) != (m < 0.0) {
        m + b
    } else {
        m
    }
}

/// C's `nextafter`: the float next to `a` in the direction of `b`; `b` when they are equal.
#[inline(always)]
fn nextafter(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        a + b
    } else if a == b {
        b
    } else if a == 0.0 {
        f64::from_bits(1).copysign(b)
    } else {
        let bits = a.to_bits();
        // Away from zero is one up in the bits, whatever the sign.
        f64::from_bits(if (b > a) == (a > 0.0) { bits + 1 } else { bits - 1 })
    }
}

/// The share of `minimum(a, b)`'s gradient that goes to `a`: 1 where `a < b`, 1/2 at a tie
/// (as JAX), 0 above; `maximum` reads it with the operands swapped.
fn tie_weight(a: &Expr, b: &Expr) -> Expr {
    build::mul(&build::constant(0.5), &build::add(&build::less(a, b), &build::less_equal(a, b)))
}
