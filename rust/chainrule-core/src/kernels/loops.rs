//! The evaluator's elementwise loops: the op dispatch derived from the op table (a chunk or a
//! single value to the kernel its row names), loops over every combination of chunk and single
//! operands, the fused two-op loops and the fixed-order sums of [`crate::tape::Instr::Accumulate`].
//! All are `#[inline(always)]`, compiled inside the evaluator's AVX2 chunk interpreter.

use crate::ops::Op;

/// An operand of an elementwise loop: a chunk of values, or one value used for every sample.
pub(crate) enum Operand<'a> {
    Chunk(&'a [f64]),
    Scalar(f64),
}

/// The evaluator's op dispatch, derived from the op table's rows
/// ([`crate::ops::with_op_table`]): every op maps to the kernel its row names, over a chunk
/// ([`unary`], [`binary`]) and on single values ([`scalar_op`]), in exhaustive matches. A
/// `lanes` op is a loop of the table's `eval`, which the compiler vectorises.
macro_rules! op_dispatch {
    ($( $(#[doc = $doc:literal])* $variant:ident: $name:literal, arity $arity:tt,
        infix $infix:expr, kernel $kernel:ident, domain ($lo:expr, $hi:expr); )*) => {
        /// Elementwise unary op over a chunk.
        #[inline(always)]
        pub(crate) fn unary(op: Op, a: &[f64], out: &mut [f64]) {
            match op { $( Op::$variant => unary_arm!($arity, $kernel, Op::$variant, a, out), )* }
        }

        /// Elementwise binary op over a chunk, one loop per combination of chunk and single
        /// operands.
        #[inline(always)]
        pub(crate) fn binary(op: Op, a: Operand, b: Operand, out: &mut [f64]) {
            match op { $( Op::$variant => binary_arm!($arity, $kernel, Op::$variant, a, b, out), )* }
        }

        /// One op on single values, through the same lane code the chunks use, so a value does
        /// not depend on whether its inputs came as scalars or arrays (the kernels and libm can
        /// differ in the last bit).
        pub(crate) fn scalar_op(op: Op, a: f64, b: f64) -> f64 {
            match op { $( Op::$variant => scalar_arm!($arity, $kernel, Op::$variant, a, b), )* }
        }
    };
}

macro_rules! unary_arm {
    (1, lanes, $op:expr, $a:ident, $out:ident) => {
        each($a, $out, |x| $op.eval(x, 0.0))
    };
    (1, $kernel:ident, $op:expr, $a:ident, $out:ident) => {
        crate::kernels::run(crate::kernels::Unary::$kernel, $a, $out)
    };
    (2, $kernel:ident, $op:expr, $a:ident, $out:ident) => {
        unreachable!("{:?} is binary: the compiler emits it as a binary instruction", $op)
    };
}

macro_rules! binary_arm {
    (2, lanes, $op:expr, $a:ident, $b:ident, $out:ident) => {
        elementwise3($a, $b, Operand::Scalar(0.0), $out, |x, y, _| $op.eval(x, y))
    };
    // A two-input kernel is a lane function like `eval`, vectorised in this loop where it is
    // inlined (see `crate::kernels::Binary`).
    (2, $kernel:ident, $op:expr, $a:ident, $b:ident, $out:ident) => {
        elementwise3($a, $b, Operand::Scalar(0.0), $out, |x, y, _| crate::kernels::binary_lane(crate::kernels::Binary::$kernel, x, y))
    };
    (1, $kernel:ident, $op:expr, $a:ident, $b:ident, $out:ident) => {
        unreachable!("{:?} is unary: the compiler emits it as a unary instruction", $op)
    };
}

macro_rules! scalar_arm {
    ($arity:tt, lanes, $op:expr, $a:ident, $b:ident) => {
        $op.eval($a, $b)
    };
    (1, $kernel:ident, $op:expr, $a:ident, $b:ident) => {
        crate::kernels::one(crate::kernels::Unary::$kernel, $a)
    };
    (2, $kernel:ident, $op:expr, $a:ident, $b:ident) => {
        crate::kernels::binary_lane(crate::kernels::Binary::$kernel, $a, $b)
    };
}

crate::ops::with_op_table!(op_dispatch);

/// `out[i] = f(a[i])`.
#[inline(always)]
pub(crate) fn each(a: &[f64], out: &mut [f64], f: impl Fn(f64) -> f64) {
    for (o, x) in out.iter_mut().zip(a) {
        *o = f(*x);
    }
}

/// One operand of an elementwise loop: a chunk (indexed) or a single value (repeated).
pub(crate) trait Lane: Copy {
    /// The operand cut to `n` values, so the loop's index needs no bounds check.
    fn fit(self, n: usize) -> Self;
    fn at(self, i: usize) -> f64;
    /// The eight values from `i` on (one bounds check for the eight).
    fn block(self, i: usize) -> [f64; 8];
}

impl Lane for &[f64] {
    #[inline(always)]
    fn fit(self, n: usize) -> Self {
        &self[..n]
    }
    #[inline(always)]
    fn at(self, i: usize) -> f64 {
        self[i]
    }
    #[inline(always)]
    fn block(self, i: usize) -> [f64; 8] {
        self[i..i + 8].try_into().expect("eight values")
    }
}

impl Lane for f64 {
    #[inline(always)]
    fn fit(self, _: usize) -> Self {
        self
    }
    #[inline(always)]
    fn at(self, _: usize) -> f64 {
        self
    }
    #[inline(always)]
    fn block(self, _: usize) -> [f64; 8] {
        [self; 8]
    }
}

#[inline(always)]
pub(crate) fn each3<A: Lane, B: Lane, C: Lane>(a: A, b: B, c: C, out: &mut [f64], f: impl Fn(f64, f64, f64) -> f64) {
    let n = out.len();
    let (a, b, c) = (a.fit(n), b.fit(n), c.fit(n));
    for (i, o) in out.iter_mut().enumerate() {
        *o = f(a.at(i), b.at(i), c.at(i));
    }
}

/// `out = f(a, b, c)` elementwise, one loop per combination of chunk and single operands.
#[inline(always)]
pub(crate) fn elementwise3(a: Operand, b: Operand, c: Operand, out: &mut [f64], f: impl Fn(f64, f64, f64) -> f64) {
    use Operand::{Chunk as V, Scalar as S};
    match (a, b, c) {
        (V(a), V(b), V(c)) => each3(a, b, c, out, f),
        (V(a), V(b), S(c)) => each3(a, b, c, out, f),
        (V(a), S(b), V(c)) => each3(a, b, c, out, f),
        (V(a), S(b), S(c)) => each3(a, b, c, out, f),
        (S(a), V(b), V(c)) => each3(a, b, c, out, f),
        (S(a), V(b), S(c)) => each3(a, b, c, out, f),
        (S(a), S(b), V(c)) => each3(a, b, c, out, f),
        (S(a), S(b), S(c)) => out.fill(f(a, b, c)),
    }
}

/// [`Instr::Fused`]: `(a inner b) outer c` (or `c outer (a inner b)`, or `-(a inner b)`),
/// rounding after each op exactly as the two unfused instructions would.
#[inline(always)]
pub(crate) fn fused(inner: Op, a: Operand, b: Operand, outer: Op, c: Operand, swap: bool, out: &mut [f64]) {
    match inner {
        Op::Add => fused_outer(|x, y| x + y, a, b, outer, c, swap, out),
        Op::Sub => fused_outer(|x, y| x - y, a, b, outer, c, swap, out),
        Op::Mul => fused_outer(|x, y| x * y, a, b, outer, c, swap, out),
        Op::Div => fused_outer(|x, y| x / y, a, b, outer, c, swap, out),
        _ => unreachable!("only arithmetic is fused"),
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn fused_outer(f: impl Fn(f64, f64) -> f64 + Copy, a: Operand, b: Operand, outer: Op, c: Operand, swap: bool, out: &mut [f64]) {
    match (outer, swap) {
        (Op::Add, false) => elementwise3(a, b, c, out, |x, y, z| f(x, y) + z),
        (Op::Add, true) => elementwise3(a, b, c, out, |x, y, z| z + f(x, y)),
        (Op::Sub, false) => elementwise3(a, b, c, out, |x, y, z| f(x, y) - z),
        (Op::Sub, true) => elementwise3(a, b, c, out, |x, y, z| z - f(x, y)),
        (Op::Mul, false) => elementwise3(a, b, c, out, |x, y, z| f(x, y) * z),
        (Op::Mul, true) => elementwise3(a, b, c, out, |x, y, z| z * f(x, y)),
        (Op::Div, false) => elementwise3(a, b, c, out, |x, y, z| f(x, y) / z),
        (Op::Div, true) => elementwise3(a, b, c, out, |x, y, z| z / f(x, y)),
        (Op::Neg, _) => elementwise3(a, b, c, out, |x, y, _| -f(x, y)),
        _ => unreachable!("only arithmetic is fused"),
    }
}

/// [`Instr::Accumulate`]'s partial sum of one chunk: of `a`, or of the products `a * b`, each
/// added, or subtracted when `neg`, in [`lane_sum`]'s fixed order.
///
/// Subtracting is adding the negation, bit for bit (IEEE defines `l - x` as `l + -x`), so the
/// partial equals that of a register holding `-a` or `-(a * b)`, signed zeros included.
/// Negating a plain partial afterwards would not: a chunk whose values cancel sums to +0
/// either way, and its negation is -0.
#[inline(always)]
pub(crate) fn accumulate(a: &[f64], times: Option<Operand>, neg: bool) -> f64 {
    match (times, neg) {
        (None, false) => lane_sum(a, 0.0, |l, x, _| l + x),
        (None, true) => lane_sum(a, 0.0, |l, x, _| l - x),
        (Some(Operand::Chunk(b)), false) => lane_sum(a, b, |l, x, y| l + x * y),
        (Some(Operand::Chunk(b)), true) => lane_sum(a, b, |l, x, y| l - x * y),
        (Some(Operand::Scalar(b)), false) => lane_sum(a, b, |l, x, y| l + x * y),
        (Some(Operand::Scalar(b)), true) => lane_sum(a, b, |l, x, y| l - x * y),
    }
}

/// Sum of one chunk in a fixed order: eight interleaved lanes (so it vectorises), lane `j`
/// taking `l = f(l, a[i], b[i])` for every `i` that is `j` mod 8, in order, then the lanes
/// combined as a balanced tree. The order depends only on the chunk's length. Inlined into
/// the AVX2 interpreter the lanes are two 256-bit registers.
#[inline(always)]
pub(crate) fn lane_sum<B: Lane>(a: &[f64], b: B, f: impl Fn(f64, f64, f64) -> f64) -> f64 {
    let b = b.fit(a.len());
    let mut lanes = [0.0f64; 8];
    let mut blocks = a.chunks_exact(8);
    let mut i = 0;
    for x in &mut blocks {
        for ((l, x), y) in lanes.iter_mut().zip(x).zip(b.block(i)) {
            *l = f(*l, *x, y);
        }
        i += 8;
    }
    for (j, (l, x)) in lanes.iter_mut().zip(blocks.remainder()).enumerate() {
        *l = f(*l, *x, b.at(i + j));
    }
    combine(&lanes)
}

/// The lanes of [`lane_sum`] as a balanced tree. Kept out of line: inlined, the one tree
/// shared by every kind of sum in the interpreter led LLVM's SLP vectoriser to hold the lanes
/// in 128-bit pairs laid out for the tree, with four shuffles per eight values in every loop.
#[inline(never)]
pub(crate) fn combine(lanes: &[f64; 8]) -> f64 {
    ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
}
