//! Chunk kernels for float64 elementwise transcendentals.
//!
//! The tape evaluator runs each instruction over a chunk of about a thousand
//! `f64` values; calling libm once per element would dominate its run time.
//! Every kernel here maps `x` to `out` (same length, never aliased) and keeps
//! these invariants:
//!
//! * **Accuracy.** At most 4 ulp from the correctly rounded result over the
//!   whole domain, including subnormal inputs and results, the overflow and
//!   underflow boundaries, infinities, NaN and signed zeros, with IEEE/NumPy
//!   semantics (`log(-1)` is NaN, `log(0)` is `-inf`, `sigmoid(-inf)` is 0,
//!   `sin(-0.0)` is `-0.0`, ...).
//! * **Position independence.** A value gives the same bits wherever it sits
//!   in the slice and whatever the slice length: the ragged tail is copied
//!   into a padded block and run through the very same lane code, and lanes
//!   that need a libm fallback are patched by the same scalar call everywhere.
//! * **Dispatch.** The bodies are plain per-lane scalar code (polynomials via
//!   a fused-or-not multiply-add, exponent tricks via `to_bits`/`from_bits`,
//!   selects instead of branches) that LLVM auto-vectorises. On x86-64 the
//!   same generic body is instantiated under `#[target_feature]` for AVX-512F
//!   and for AVX2+FMA, picked once at run time and cached; SSE2 is the
//!   fallback. On aarch64 NEON (with FMA) is the baseline. The no-FMA
//!   instantiation avoids `f64::mul_add`, which would be a slow libm call
//!   there; all reductions use split constants whose products are exact with
//!   or without FMA, so both instantiations meet the same bound (they may
//!   differ in the last bit from each other).
//!
//! # Design and measurements
//!
//! No tables and no integer<->float conversions (AVX2 has no cheap 64-bit
//! gathers and no `f64`<->`i64` converts): integers are produced with the
//! `1.5 * 2^52` shifter, which rounds to nearest and leaves the integer in
//! the low mantissa bits. Polynomial coefficients are minimax fits made for
//! this module (weighted Remez in mpmath), evaluated by Estrin's scheme.
//! The exception is AVX-512, where a row of the `kernels!` list may name its own body
//! (`, avx512 module::function`): 16-entry tables held in two registers
//! (`permutex2var`), masked tails, and a single value run as a one-lane tail of that body.
//!
//! * `exp`/`expm1`: `x = n ln2 + r`, `|r| <= ln2/2` (Cody-Waite, two-part
//!   `ln2`, with the rounding error of `r` recovered and folded back in),
//!   `expm1(r) = r + r^2 (1/2 + r Q(r))`, `Q` of degree 9; `2^n` is applied
//!   as two factors so that subnormal results and `exp(709.78)` round once.
//!   At the AVX-512 level `exp`, `exp2`, `expm1`, `sinh` and `cosh` have explicit bodies
//!   (named after `|` in the kernel list; single values go through them too): reduction by
//!   ln2/16, `2^(j/16)` from a 16-entry table held in registers (`vpermt2pd`), degree-6
//!   polynomials and `vscalefpd` (see `exponential.rs`). ns a value against NumPy's SVML,
//!   4,096 in cache: exp 0.51/0.89, exp2 0.51/0.77, expm1 0.76/1.27, sinh 0.94/1.30, cosh
//!   0.80/1.02; at most 1.5 ulp from mpmath.
//! * `log`/`log1p`: `x = 2^k m`, `m` in `[sqrt(1/2), sqrt(2))`,
//!   `s = f/(2+f)`, `log(1+f) = f - f^2/2 + s (f^2/2 + z T(z))`, `z = s^2`,
//!   `T` of degree 6. One division per element beats a gathered table on
//!   AVX2. `log1p` adds the rounding error of `1 + x` as `c/u`.
//! * `sin`/`cos`/`tan`: `x = n pi/2 + r` with four split constants (three
//!   of at most 33 bits, so `n * P_i` is exact for `|n| < 2^20`); the
//!   remainder is carried as a double-double, which keeps it accurate to far
//!   below an ulp even for the double closest to a multiple of pi/2 in range
//!   (91.106186954104, within 2^-59.5 of 58 pi/2). Degree-5 polynomials in
//!   `r^2` for sin and cos on `|r| <= pi/4`. tan: a rational of degree 3/4
//!   in `r^2` (one division; with FMA the reduction takes four fewer
//!   operations, see `trig.rs`). Lanes
//!   with `|x| > 2^20`, NaN or inf are patched with libm after the vector
//!   pass (one vectorised any-test per call when there are none).
//! * `tanh`: with `e = exp(-2|x|) = 2^n (1 + p)`, `(1 - e)/(1 + e)`, whose
//!   numerator and denominator each take one rounding, or `1 - 2e/(1 + e)`
//!   from `|x| = 0.87` on; the sign is copied from `x`.
//! * `sigmoid`: with `e = e^-|x|` and `r = 1/(1 + e)` (`1 + e` formed in one
//!   rounding), `r` for `x >= 0` and `e r` below, for `|x| <= 700`; below
//!   -700, `e^x - e^2x` (down through the subnormal range), above, 1:
//!   patched in after the vector pass like trig's huge arguments, so the
//!   vector loop carries no second exponential, no clamp and no selects for
//!   the tails, only an or-ed flag. The lane is symmetric: `sigmoid(-x)` is
//!   the other of `r` and `e r`, bit for bit.
//!   `sigmoid_slope` also gives `sigmoid(x) sigmoid(-x) = r (e r)`, the
//!   factor every derivative of a sigmoid needs, in the same pass: it does
//!   not cancel in the tails as `s (1 - s)` does.
//! * `sqrt` is the hardware square root (correctly rounded).
//! * `pow` (two inputs): `exp(b log a)` with `log a` a double-double (see `power.rs`); lanes
//!   outside the normal range are patched with libm, so C's special cases are exact. Its
//!   timings are best of 200 runs of one chunk (`bench_pow`, same machine, more load); the
//!   baseline pays for Dekker's exact products without FMA.
//! * `exp2` (exponentials, logarithms, roots): `x = n + r` exactly,
//!   `r ln2` as a double-double from 27- and 26-bit heads (exact with or
//!   without FMA), then exp's polynomial and scaling; `2^n` is exact.
//!   `log2`/`log10`: log's reduction, then `1/ln b` as a short head times
//!   `f - f^2/2` cut to 21 bits (exact) plus a tail (FreeBSD's scheme).
//!   `cbrt`: FreeBSD's bit-trick seed (the exponent divided by 3 as a
//!   32-bit multiply-high, which vectorises), a polynomial to 23 bits and
//!   one Newton step; exact for perfect cubes. `hypot` (two inputs): the
//!   larger magnitude scaled by `2^-+600` beyond `2^+-500`, one fused
//!   `sqrt(b^2 + s^2)`.
//! * `softplus`/`log_sigmoid`: `max(x, 0) + log1p(e^-|x|)` from the exp and log1p lanes;
//!   `logaddexp` (a two-input kernel, [`Binary`]) the same with `max(a, b)` and `a - b`.
//!   2.7 ns at AVX-512, 4.4 ns AVX2+FMA, against 9.4 ns for libm's exp and log1p per element.
//! * `erf`/`erfc`: Sun's `s_erf.c` method, its four intervals' rational functions picked by
//!   selects per coefficient so the lane has no branch; erfc's tail form splits `x^2` to keep
//!   full relative accuracy up to its underflow at 27.3. 9.4 ns at AVX-512 against 20 ns for
//!   the `libm` crate per element; max 1 ulp (erf) and 4 ulp (erfc) from it, 2 ulp from mpmath
//!   on a sample.
//!
//! Measured on the development machine: AMD EPYC VM at 2.45 GHz (shared
//! with other load; best of 150 runs), one core, 1024-element chunks,
//! libm = glibc called per element through `f64::exp` etc. (for sigmoid,
//! `1/(1 + exp(-x))`). "max ulp" is the largest error against glibc found by
//! `tests/kernels.rs` (2-3.3 million points per function and level: uniform
//! over the interesting range, random bit patterns over the whole f64
//! range, special values and boundary neighbourhoods); "true" is the
//! largest error against the exact value (mpmath) over the points where
//! the kernel and glibc disagree, i.e. the kernel's own error.
//!
//! | function | AVX2+FMA ns | SSE2 ns | libm ns | speedup | max ulp | true |
//! |----------|-------------|---------|---------|---------|---------|------|
//! | exp      | 1.7         | 4.4     | 6.7     | 3.9x    | 1       | 0.79 |
//! | expm1    | 2.2         | 5.8     | 9.2     | 4.2x    | 2       | 1.38 |
//! | log      | 2.2         | 4.8     | 4.9     | 2.2x    | 1       | 0.79 |
//! | log1p    | 2.5         | 5.8     | 7.5     | 3.0x    | 1       | 0.80 |
//! | sin      | 3.0         | 6.5     | 10.8    | 3.7x    | 1       | 0.89 |
//! | cos      | 2.5         | 6.1     | 11.0    | 4.4x    | 1       | 0.89 |
//! | tan      | 2.0         | 4.9     | 15.9    | 8.0x    | 3       | 2.26 |
//! | tanh     | 2.5         | 6.6     | 15.7    | 6.2x    | 3       | 1.92 |
//! | sigmoid  | 2.2         | 6.3     | 6.7     | 3.0x    | 2       | 1.75*|
//! | sqrt     | 0.7         | 1.4     | 2.9     | 4.0x    | 0       | 0    |
//! | sin_cos  | 3.3         | 12.3    | 22.1    | 6.7x    | 1       |      |
//! | sigmoid_slope | 2.3    | 5.3     |         |         | 2       |      |
//! | pow      | 7.4 (AVX-512: 2.5) | 42.8 | 10.1 | 1.4x | 1       |      |
//! | exp2     | 1.8         | 4.0     | 3.5     | 2.0x    | 1       | 0.75 |
//! | log2     | 2.1         | 4.6     | 4.1     | 1.9x    | 1       | 0.64 |
//! | log10    | 2.2         | 4.6     | 6.3     | 2.8x    | 2       | 0.67 |
//! | cbrt     | 1.8         | 4.6     | 13.2    | 7.4x    | 1       | 0.66 |
//! | hypot    |             |         |         |         | 1       | 0.83 |
//!
//! The last five (same harness, another day and load: exp 1.3 ns there)
//! with AVX-512: exp2 0.95, log2 1.30, log10 1.33, cbrt 1.18 ns; "true"
//! from 6,000 mpmath points each at that level. hypot, through a compiled
//! function on one thread: 1.1 ns a value against 59 ns for NumPy's
//! `np.hypot` (glibc per element), `benches/kernels.py`.
//!
//! \* A bound, not a measurement: 1.50 measured with the correction term
//! the sigmoid's reduction leaves out, which costs at most a quarter ulp.
//!
//! `sin_cos` gives both results of one reduction, bit for bit those of
//! `sin` and `cos` (5.5 ns for the two apart with AVX2+FMA); the evaluator
//! fuses `sin(a)` and `cos(a)` into it, as every derivative of either needs.
//!
//! The kernels are bound by instruction throughput (about 3 per cycle),
//! with sixteen ymm registers too few to keep every constant resident.
//! Rerun the timings with
//! `cargo test --release --test kernels -- --ignored --nocapture`.

use std::sync::OnceLock;

// One file per family; each sees the others' lane helpers through these imports.
mod drivers;
mod exponential;
mod logarithm;
mod logistic;
pub(crate) mod loops;
mod poly;
mod power;
mod roots;
mod special;
mod trig;
// inverse trig and hyperbolic
mod hyperbolic;
mod inverse_trig;

use drivers::*;
use exponential::*;
use logarithm::*;
use logistic::*;
use poly::*;
use power::*;
use roots::*;
use special::*;
use trig::*;
// inverse trig and hyperbolic
use hyperbolic::*;
use inverse_trig::*;

// ---------------------------------------------------------------------------
// Single values.

/// One lane of a slice kernel, patched as the slice drivers patch it.
#[inline(always)]
fn one_body<const F: bool>(kernel: Unary, x: f64) -> f64 {
    match kernel {
        Unary::Exp => exp_lane::<F>(x),
        Unary::Expm1 => expm1_lane::<F>(x),
        Unary::Log => log_lane::<F>(x),
        Unary::Log1p => log1p_lane::<F>(x),
        Unary::Sin if trig_needs_libm(x) => x.sin(),
        Unary::Sin => sin_lane::<F>(x),
        Unary::Cos if trig_needs_libm(x) => x.cos(),
        Unary::Cos => cos_lane::<F>(x),
        Unary::Tan if trig_needs_libm(x) => x.tan(),
        Unary::Tan => tan_lane::<F>(x),
        Unary::Tanh => tanh_lane::<F>(x),
        Unary::Sigmoid if sigmoid_outside(x) => sigmoid_edge::<F>(x),
        Unary::Sigmoid => sigmoid_lane::<F>(x),
        Unary::Sqrt => sqrt_lane(x),
        // exponentials, logarithms, roots
        Unary::Exp2 => exp2_lane::<F>(x),
        Unary::Log2 => log2_lane::<F>(x),
        Unary::Log10 => log10_lane::<F>(x),
        Unary::Cbrt => cbrt_lane::<F>(x),
        // special and numerically stable functions
        Unary::Softplus => softplus_lane::<F>(x),
        Unary::LogSigmoid => log_sigmoid_lane::<F>(x),
        Unary::Erf => erf_lane::<F>(x),
        Unary::Erfc => erfc_lane::<F>(x),
        // inverse trig and hyperbolic
        Unary::Atan => atan_lane::<F>(x),
        Unary::Asin => asin_lane::<F>(x),
        Unary::Acos => acos_lane::<F>(x),
        Unary::Sinh => sinh_lane::<F>(x),
        Unary::Cosh => cosh_lane::<F>(x),
        Unary::Asinh => asinh_lane::<F>(x),
        Unary::Acosh => acosh_lane::<F>(x),
        Unary::Atanh => atanh_lane::<F>(x),
    }
}

#[cfg(target_arch = "x86_64")]
mod x86_one {
    // Scalar code gains nothing from AVX-512, so both x86 levels with FMA run this.
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn one(kernel: super::Unary, x: f64) -> f64 {
        super::one_body::<true>(kernel, x)
    }
}

/// `kernel` of one value: bit for bit what the slice kernel gives for it, at any position.
/// Against padded one-element slices through the slice kernels (~45 ns per transcendental,
/// perf): W4 (W2's value and gradient at one point: seven transcendentals) 0.96 against
/// 1.32 µs per call (medians of 10 interleaved processes of 31 x 2,000 calls, on the shared
/// 2-core machine).
pub fn one(kernel: Unary, x: f64) -> f64 {
    // SAFETY: the active level is supported by definition.
    unsafe { one_unchecked(active(), kernel, x) }
}

/// [`one`] with the given level, for tests; panics if the CPU does not support it.
#[doc(hidden)]
pub fn one_at(level: Level, kernel: Unary, x: f64) -> f64 {
    assert!(level.is_supported(), "kernel level {level:?} is not supported on this CPU");
    // SAFETY: checked just above.
    unsafe { one_unchecked(level, kernel, x) }
}

/// # Safety
/// The CPU must support `level`.
#[inline(always)]
unsafe fn one_unchecked(level: Level, kernel: Unary, x: f64) -> f64 {
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller guarantees AVX2 and FMA (both levels have them).
        Level::Avx2Fma => unsafe { x86_one::one(kernel, x) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller guarantees AVX-512F.
        Level::Avx512 => unsafe { x86::one512(kernel, x) },
        #[cfg(target_arch = "aarch64")]
        Level::Neon => one_body::<true>(kernel, x),
        _ => one_body::<false>(kernel, x),
    }
}

// ---------------------------------------------------------------------------
// Two-input kernels (exponentials, logarithms, roots: hypot).

/// A two-input kernel, by name: the op table's `kernel` column names these for binary ops.
/// The chunk loop and single values run the same lane code ([`binary`], [`one_binary`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    /// [`hypot`]
    Hypot,
    /// [`pow`]
    Pow,
    /// [`logaddexp`]
    Logaddexp,
    /// [`atan2`]: at the active level with FMA like the others; as a plain lane inlined into
    /// the evaluator's AVX2 loop it took 3.6 ns a value, here 1.9 (a compiled `atan2` over
    /// a million values, one thread, AVX-512).
    Atan2,
}

/// [`hypot`] over two operands, each a chunk or one value for every sample.
#[inline(always)]
fn hypot_operands(a: loops::Operand, b: loops::Operand, out: &mut [f64]) {
    use loops::Operand::{Chunk as V, Scalar as S};
    let level = active();
    match (a, b) {
        (V(a), V(b)) => hypot_at(level, a, b, out),
        (V(a), S(b)) => hypot_at(level, a, b, out),
        (S(a), V(b)) => hypot_at(level, a, b, out),
        (S(a), S(b)) => out.fill(one_binary(Binary::Hypot, a, b)),
    }
}

/// `out[i] = sqrt(a[i]^2 + b[i]^2)` without overflow or underflow in the squares; `inf` if
/// either is infinite, even when the other is NaN (as C's `hypot`). At most 1 ulp measured.
/// The three slices must have one length (panics otherwise).
pub fn hypot(a: &[f64], b: &[f64], out: &mut [f64]) {
    hypot_level(active(), a, b, out)
}

/// [`hypot`] at a given level, for tests; panics if the CPU does not support it.
#[doc(hidden)]
pub fn hypot_level(level: Level, a: &[f64], b: &[f64], out: &mut [f64]) {
    assert!(a.len() == out.len() && b.len() == out.len(), "kernel input and output lengths differ");
    assert!(level.is_supported(), "kernel level {level:?} is not supported on this CPU");
    hypot_at(level, a, b, out)
}

#[inline(always)]
fn hypot_at<A: loops::Lane, B: loops::Lane>(level: Level, a: A, b: B, out: &mut [f64]) {
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `level` is the active one or checked by `is_supported`.
        Level::Avx2Fma => unsafe { x86_binary::hypot_avx2(a, b, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Level::Avx512 => unsafe { x86_binary::hypot_avx512(a, b, out) },
        #[cfg(target_arch = "aarch64")]
        Level::Neon => hypot_body::<true, A, B>(a, b, out),
        _ => hypot_body::<false, A, B>(a, b, out),
    }
}

#[cfg(target_arch = "x86_64")]
mod x86_binary {
    use super::loops::Lane;
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn hypot_avx2<A: Lane, B: Lane>(a: A, b: B, out: &mut [f64]) {
        super::hypot_body::<true, A, B>(a, b, out)
    }
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) fn hypot_avx512<A: Lane, B: Lane>(a: A, b: B, out: &mut [f64]) {
        super::hypot_body::<true, A, B>(a, b, out)
    }
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn one(kernel: super::Binary, a: f64, b: f64) -> f64 {
        match kernel {
            super::Binary::Hypot => super::hypot_lane::<true>(a, b),
            super::Binary::Pow | super::Binary::Logaddexp | super::Binary::Atan2 => {
                unreachable!("{kernel:?} returns before the level dispatch")
            }
        }
    }
}

/// `kernel` of one pair of values: bit for bit what the chunk loop gives for it.
pub fn one_binary(kernel: Binary, a: f64, b: f64) -> f64 {
    match kernel {
        Binary::Pow => return pow_one_at_level(active(), a, b),
        Binary::Logaddexp | Binary::Atan2 => return one2(kernel, a, b),
        Binary::Hypot => {}
    }
    match active() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: both levels have AVX2 and FMA.
        Level::Avx2Fma | Level::Avx512 => unsafe { x86_binary::one(kernel, a, b) },
        #[cfg(target_arch = "aarch64")]
        Level::Neon => match kernel {
            Binary::Hypot => hypot_lane::<true>(a, b),
            Binary::Pow | Binary::Logaddexp | Binary::Atan2 => unreachable!("{kernel:?} returns before the level dispatch"),
        },
        _ => match kernel {
            Binary::Hypot => hypot_lane::<false>(a, b),
            Binary::Pow | Binary::Logaddexp | Binary::Atan2 => unreachable!("{kernel:?} returns before the level dispatch"),
        },
    }
}

// ---------------------------------------------------------------------------
// Dispatch.

use levels::Level;

fn detect() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        if avx2 && is_x86_feature_detected!("avx512f") {
            return Level::Avx512;
        }
        if avx2 {
            return Level::Avx2Fma;
        }
        Level::Baseline
    }
    #[cfg(target_arch = "aarch64")]
    {
        Level::Neon
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        Level::Baseline
    }
}

fn active() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(detect)
}

/// Name of the code path the kernels take on this CPU: `"avx512"`,
/// `"avx2+fma"`, `"neon"` or `"baseline"`.
pub fn dispatch_level() -> &'static str {
    active().name()
}

/// `out[i] = atan2(y[i], x[i])`, the angle of the point (x, y) in [-pi, pi], C's special values
/// and signed zeros. All three lengths must agree (panics otherwise).
pub fn atan2(y: &[f64], x: &[f64], out: &mut [f64]) {
    levels2::run(active(), Binary::Atan2, y, x, out)
}

/// `out0[i] = sigmoid(w * x[i] + b)` and `out1[i] = out0[i] * sigmoid(-(w * x[i] + b))`, with `w * x[i] + b`
/// rounded after the product and after the sum: bit for bit [`sigmoid_slope`] of the
/// separately computed argument, without a pass that writes it and reads it back. Both
/// outputs must be as long as `x` (panics otherwise).
pub fn sigmoid_slope_affine(x: &[f64], w: f64, b: f64, out0: &mut [f64], out1: &mut [f64]) {
    levels::sigmoid_slope_affine(active(), x, w, b, out0, out1)
}

/// `out[i] = x[i] ** y[i]` with C's `pow` semantics, at most 4 ulp from the exact value; all
/// three slices must have the same length (panics otherwise).
pub fn pow(x: &[f64], y: &[f64], out: &mut [f64]) {
    levels::pow(active(), x, y, out)
}

/// `x ** y` for one pair: bit for bit what [`pow`] gives for it, at any position.
pub fn one_pow(x: f64, y: f64) -> f64 {
    pow_one_at_level(active(), x, y)
}

/// Runs a two-input kernel over a chunk (the evaluator's binary instructions).
#[inline(always)]
pub(crate) fn run_binary(kernel: Binary, a: loops::Operand, b: loops::Operand, out: &mut [f64]) {
    match kernel {
        // The square root alone (no general lane beside it), inlined into the evaluator's AVX2
        // interpreter: through `pow_operands` (compiled for the baseline) it took 1.38 ms per
        // million values, against 0.71 for sqrt; here 0.76.
        Binary::Pow => match (a, b) {
            (loops::Operand::Chunk(a), loops::Operand::Scalar(0.5)) => loops::each(a, out, half_power),
            (a, b) => pow_operands(active(), a, b, out),
        },
        Binary::Hypot => hypot_operands(a, b, out),
        Binary::Logaddexp | Binary::Atan2 => run2(kernel, a, b, out),
    }
}

#[cfg(target_arch = "x86_64")]
mod x86_affine {
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn avx2(x: &[f64], w: f64, b: f64, out0: &mut [f64], out1: &mut [f64]) {
        super::sigmoid_slope_affine_body::<true>(x, w, b, out0, out1)
    }
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) fn avx512(x: &[f64], w: f64, b: f64, out0: &mut [f64], out1: &mut [f64]) {
        super::sigmoid_slope_affine_body::<true>(x, w, b, out0, out1)
    }
}

/// A kernel's AVX-512 instantiation: its own body where the row names one (`, avx512 module::function`),
/// else the generic body; and a single value at that level, as a one-lane tail of that body
/// where there is one, so that it is bit for bit the slice's value.
macro_rules! avx512_arm {
    (slice $x:ident, $out:ident, $body:ident) => {
        super::super::$body::<true>($x, $out)
    };
    (slice $x:ident, $out:ident, $body:ident, $m:ident::$f:ident) => {
        super::super::$m::$f($x, $out)
    };
    (one $k:ident, $x:ident, $body:ident) => {
        super::x86_one::one($k, $x)
    };
    (one $k:ident, $x:ident, $body:ident, $m:ident::$f:ident) => {{
        let mut o = [0.0];
        super::$m::$f(&[$x], &mut o);
        o[0]
    }};
    // A body written with intrinsics (`| slice_fn, one_fn`), with its own single-value entry
    // running the same lane code.
    (slice $x:ident, $out:ident, $body:ident | $wide:ident, $one:ident) => {{
        #[allow(unused_unsafe)]
        // SAFETY: called only from functions compiled for, and run on, AVX-512F.
        unsafe {
            super::super::$wide($x, $out)
        }
    }};
    (one $k:ident, $x:ident, $body:ident | $wide:ident, $one:ident) => {{
        #[allow(unused_unsafe)]
        // SAFETY: called only from functions compiled for, and run on, AVX-512F.
        unsafe {
            super::$one($x)
        }
    }};
}

macro_rules! kernels {
    ($($(#[$doc:meta])* $variant:ident: $name:ident => $body:ident $(, avx512 $m:ident::$f:ident)? $(| $wide:ident, $wide_one:ident)?;)*
     @pairs $($(#[$pdoc:meta])* $pname:ident => $pbody:ident;)*) => {
        /// A one-input kernel, by name: the op table's `kernel` column names these, and the
        /// latency path evaluates single values through the same lane code as the chunks
        /// ([`one`]), so a value never depends on whether it came as a scalar or in an array.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Unary { $( #[doc = concat!("[`", stringify!($name), "`]")] $variant, )* }

        impl Unary {
            /// Every one-input kernel, in the list's order.
            pub const ALL: &'static [Unary] = &[$(Unary::$variant),*];

            /// The kernel's function name.
            pub fn name(self) -> &'static str { match self { $(Unary::$variant => stringify!($name),)* } }
        }

        /// Runs `kernel` over a slice: `out.len()` must equal `x.len()` (panics otherwise).
        #[inline(always)]
        pub fn run(kernel: Unary, x: &[f64], out: &mut [f64]) {
            match kernel { $(Unary::$variant => $name(x, out),)* }
        }

        $(
            $(#[$doc])*
            ///
            /// `out.len()` must equal `x.len()` (panics otherwise).
            pub fn $name(x: &[f64], out: &mut [f64]) {
                levels::$name(active(), x, out)
            }
        )*
        $(
            $(#[$pdoc])*
            ///
            /// Both outputs must be as long as `x` (panics otherwise).
            pub fn $pname(x: &[f64], out0: &mut [f64], out1: &mut [f64]) {
                levels::$pname(active(), x, out0, out1)
            }
        )*

        #[cfg(target_arch = "x86_64")]
        mod x86 {
            $(
                pub(super) mod $name {
                    #[target_feature(enable = "avx2,fma")]
                    pub(in super::super) fn avx2(x: &[f64], out: &mut [f64]) {
                        super::super::$body::<true>(x, out)
                    }
                    #[target_feature(enable = "avx512f,avx2,fma")]
                    pub(in super::super) fn avx512(x: &[f64], out: &mut [f64]) {
                        avx512_arm!(slice x, out, $body $(, $m::$f)? $(| $wide, $wide_one)?)
                    }
                }
            )*
            #[target_feature(enable = "avx512f,avx2,fma")]
            pub(super) fn one512(kernel: super::Unary, x: f64) -> f64 {
                match kernel { $(super::Unary::$variant => avx512_arm!(one kernel, x, $body $(, $m::$f)? $(| $wide, $wide_one)?),)* }
            }
            $(
                pub(super) mod $pname {
                    #[target_feature(enable = "avx2,fma")]
                    pub(in super::super) fn avx2(x: &[f64], out0: &mut [f64], out1: &mut [f64]) {
                        super::super::$pbody::<true>(x, out0, out1)
                    }
                    #[target_feature(enable = "avx512f,avx2,fma")]
                    pub(in super::super) fn avx512(x: &[f64], out0: &mut [f64], out1: &mut [f64]) {
                        super::super::$pbody::<true>(x, out0, out1)
                    }
                }
            )*
        }

        /// Per-level entry points, so tests can check every code path the
        /// machine supports. Not part of the stable API.
        #[doc(hidden)]
        pub mod levels {
            /// A compiled instantiation of the kernels.
            #[derive(Clone, Copy, Debug, PartialEq, Eq)]
            pub enum Level {
                /// Portable code without FMA (SSE2 on x86-64).
                Baseline,
                /// x86-64 with AVX2 and FMA.
                Avx2Fma,
                /// x86-64 with AVX-512F (and AVX2, FMA).
                Avx512,
                /// aarch64 with NEON and FMA.
                Neon,
            }

            impl Level {
                /// The name reported by [`super::dispatch_level`].
                pub fn name(self) -> &'static str {
                    match self {
                        Level::Baseline => "baseline",
                        Level::Avx2Fma => "avx2+fma",
                        Level::Avx512 => "avx512",
                        Level::Neon => "neon",
                    }
                }
            }

            impl Level {
                /// Whether this CPU can run the level.
                pub fn is_supported(self) -> bool {
                    let best = super::active();
                    match self {
                        Level::Baseline => true,
                        Level::Avx2Fma => matches!(best, Level::Avx2Fma | Level::Avx512),
                        Level::Avx512 | Level::Neon => best == self,
                    }
                }
            }

            /// Runs [`super::sigmoid_slope_affine`] with the given level; panics if the CPU
            /// does not support it (see [`Level::is_supported`]).
            pub fn sigmoid_slope_affine(level: Level, x: &[f64], w: f64, b: f64, out0: &mut [f64], out1: &mut [f64]) {
                assert!(level.is_supported(), "kernel level {level:?} is not supported on this CPU");
                match level {
                    Level::Baseline => super::sigmoid_slope_affine_body::<false>(x, w, b, out0, out1),
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: `is_supported` confirmed AVX2 and FMA at run time.
                    Level::Avx2Fma => unsafe { super::x86_affine::avx2(x, w, b, out0, out1) },
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: `is_supported` confirmed AVX-512F, AVX2 and FMA.
                    Level::Avx512 => unsafe { super::x86_affine::avx512(x, w, b, out0, out1) },
                    #[cfg(target_arch = "aarch64")]
                    Level::Neon => super::sigmoid_slope_affine_body::<true>(x, w, b, out0, out1),
                    #[allow(unreachable_patterns)]
                    _ => unreachable!("level checked by is_supported"),
                }
            }

            /// Runs one-input kernel `kernel` with the given level; panics if the CPU does not
            /// support it (see [`Level::is_supported`]).
            pub fn run(level: Level, kernel: super::Unary, x: &[f64], out: &mut [f64]) {
                match kernel { $(super::Unary::$variant => $name(level, x, out),)* }
            }

            /// Runs [`super::pow`] with the given level; panics if the CPU does not support it
            /// or the lengths differ.
            pub fn pow(level: Level, x: &[f64], y: &[f64], out: &mut [f64]) {
                assert!(level.is_supported(), "kernel level {level:?} is not supported on this CPU");
                assert!(x.len() == out.len() && y.len() == out.len(), "kernel input and output lengths differ");
                super::pow_operands(level, super::loops::Operand::Chunk(x), super::loops::Operand::Chunk(y), out)
            }

            /// [`super::one_pow`] with the given level; panics if the CPU does not support it.
            pub fn one_pow(level: Level, x: f64, y: f64) -> f64 {
                assert!(level.is_supported(), "kernel level {level:?} is not supported on this CPU");
                super::pow_one_at_level(level, x, y)
            }

            /// A two-output kernel at a given level.
            pub type Pair = fn(Level, &[f64], &mut [f64], &mut [f64]);

            /// Every two-output kernel, by name, in the list's order.
            pub const PAIRS: &[(&str, Pair)] = &[$((stringify!($pname), $pname as Pair)),*];

            /// Every level this CPU can run, baseline first, best last.
            pub fn available() -> Vec<Level> {
                [Level::Baseline, Level::Avx2Fma, Level::Avx512, Level::Neon]
                    .into_iter()
                    .filter(|l| l.is_supported())
                    .collect()
            }

            $(
                /// Runs this kernel with the given level; panics if the CPU
                /// does not support it (see [`Level::is_supported`]).
                pub fn $name(level: Level, x: &[f64], out: &mut [f64]) {
                    assert!(
                        level.is_supported(),
                        "kernel level {level:?} is not supported on this CPU"
                    );
                    match level {
                        Level::Baseline => super::$body::<false>(x, out),
                        #[cfg(target_arch = "x86_64")]
                        // SAFETY: `is_supported` confirmed AVX2 and FMA at run time.
                        Level::Avx2Fma => unsafe { super::x86::$name::avx2(x, out) },
                        #[cfg(target_arch = "x86_64")]
                        // SAFETY: `is_supported` confirmed AVX-512F, AVX2 and FMA.
                        Level::Avx512 => unsafe { super::x86::$name::avx512(x, out) },
                        // aarch64 always has NEON with fused multiply-add.
                        #[cfg(target_arch = "aarch64")]
                        Level::Neon => super::$body::<true>(x, out),
                        #[allow(unreachable_patterns)]
                        _ => unreachable!("level checked by is_supported"),
                    }
                }
            )*

            $(
                /// Runs this two-output kernel with the given level; panics if
                /// the CPU does not support it (see [`Level::is_supported`]).
                pub fn $pname(level: Level, x: &[f64], out0: &mut [f64], out1: &mut [f64]) {
                    assert!(
                        level.is_supported(),
                        "kernel level {level:?} is not supported on this CPU"
                    );
                    match level {
                        Level::Baseline => super::$pbody::<false>(x, out0, out1),
                        #[cfg(target_arch = "x86_64")]
                        // SAFETY: `is_supported` confirmed AVX2 and FMA at run time.
                        Level::Avx2Fma => unsafe { super::x86::$pname::avx2(x, out0, out1) },
                        #[cfg(target_arch = "x86_64")]
                        // SAFETY: `is_supported` confirmed AVX-512F, AVX2 and FMA.
                        Level::Avx512 => unsafe { super::x86::$pname::avx512(x, out0, out1) },
                        #[cfg(target_arch = "aarch64")]
                        Level::Neon => super::$pbody::<true>(x, out0, out1),
                        #[allow(unreachable_patterns)]
                        _ => unreachable!("level checked by is_supported"),
                    }
                }
            )*
        }
    };
}

kernels! {
    /// `out[i] = e^x[i]`; overflows to `inf` above 709.78, subnormal down to
    /// -745.13, then `0`.
    Exp: exp => exp_body | exp_avx512, exp_avx512_one;
    /// `out[i] = e^x[i] - 1`, accurate near zero; `expm1(-0.0) = -0.0`.
    Expm1: expm1 => expm1_body | expm1_avx512, expm1_avx512_one;
    /// `out[i] = ln x[i]`; `-inf` at `±0`, NaN for negative inputs.
    Log: log => log_body, avx512 log512::log;
    /// `out[i] = ln(1 + x[i])`, accurate near zero; `-inf` at `-1`, NaN below.
    Log1p: log1p => log1p_body, avx512 log512::log1p;
    /// `out[i] = sin x[i]` (radians); NaN for infinite inputs.
    Sin: sin => sin_body;
    /// `out[i] = cos x[i]` (radians); NaN for infinite inputs.
    Cos: cos => cos_body;
    /// `out[i] = tan x[i]` (radians); NaN for infinite inputs.
    Tan: tan => tan_body;
    /// `out[i] = tanh x[i]`; `±1` at `±inf`, keeps the sign of zero.
    Tanh: tanh => tanh_body;
    /// `out[i] = 1 / (1 + e^-x[i])`, accurate in both tails; 0 at `-inf`,
    /// 1 at `+inf`.
    Sigmoid: sigmoid => sigmoid_body;
    /// `out[i] = sqrt x[i]` (correctly rounded); NaN for negative inputs,
    /// `sqrt(-0.0) = -0.0`.
    Sqrt: sqrt => sqrt_body;
    // exponentials, logarithms, roots
    /// `out[i] = 2^x[i]`, exact for integers; overflows to `inf` from 1024 on, subnormal
    /// down to -1074, then `0`.
    Exp2: exp2 => exp2_body | exp2_avx512, exp2_avx512_one;
    /// `out[i] = log2 x[i]`, exact at powers of two; `-inf` at `±0`, NaN for negative inputs.
    Log2: log2 => log2_body, avx512 log512::log2;
    /// `out[i] = log10 x[i]`; `-inf` at `±0`, NaN for negative inputs.
    Log10: log10 => log10_body, avx512 log512::log10;
    /// `out[i] = cbrt x[i]`, the real cube root; keeps the sign of zero.
    Cbrt: cbrt => cbrt_body, avx512 cbrt512::cbrt;
    // special and numerically stable functions
    /// `out[i] = log(1 + e^x[i])`, exact in both tails: `x` above 37, `e^x` below -37.
    Softplus: softplus => softplus_body;
    /// `out[i] = log(sigmoid(x[i])) = -softplus(-x[i])`, exact in both tails.
    LogSigmoid: log_sigmoid => log_sigmoid_body;
    /// `out[i] = erf x[i]`; `±1` at `±inf`, keeps the sign of zero.
    Erf: erf => erf_body;
    /// `out[i] = erfc x[i] = 1 - erf x[i]`, with full relative accuracy up to its underflow
    /// at 27.3; 2 at `-inf`.
    Erfc: erfc => erfc_body;
    // inverse trig and hyperbolic
    /// `out[i] = atan x[i]`, in [-pi/2, pi/2]; `±pi/2` at `±inf`.
    Atan: atan => atan_body;
    /// `out[i] = asin x[i]`; NaN outside [-1, 1].
    Asin: asin => asin_body;
    /// `out[i] = acos x[i]`, in [0, pi]; NaN outside [-1, 1].
    Acos: acos => acos_body;
    /// `out[i] = sinh x[i]`; overflows to `±inf` beyond 710.48.
    Sinh: sinh => sinh_body | sinh_avx512, sinh_avx512_one;
    /// `out[i] = cosh x[i]`; overflows to `inf` beyond 710.48.
    Cosh: cosh => cosh_body | cosh_avx512, cosh_avx512_one;
    /// `out[i] = asinh x[i]`, accurate near zero and up to `f64::MAX`.
    Asinh: asinh => asinh_body, avx512 log512::asinh;
    /// `out[i] = acosh x[i]`, accurate near 1; NaN below 1.
    Acosh: acosh => acosh_body;
    /// `out[i] = atanh x[i]`; `±inf` at `±1`, NaN beyond.
    Atanh: atanh => atanh_body, avx512 log512::atanh;
    @pairs
    /// `out0[i] = sin x[i]`, `out1[i] = cos x[i]` from one shared argument
    /// reduction: bit for bit what [`sin`] and [`cos`] give, at about the
    /// price of one of them (see the module's table).
    sin_cos => sin_cos_body;
    /// `out0[i] = sigmoid x[i]`, `out1[i] = out0[i] * sigmoid(-x[i])`: the
    /// sigmoid and its slope in one pass, bit for bit what [`sigmoid`] and
    /// the product give.
    sigmoid_slope => sigmoid_slope_body;
}

// ---------------------------------------------------------------------------
// Two-input kernels (special and numerically stable functions).

/// `out[i] = log(e^a[i] + e^b[i])` (see the sigmoid family's `logaddexp_lane`); each operand
/// is a chunk as long as `out` or one value for every element (panics on other lengths).
pub fn logaddexp(a: &[f64], b: &[f64], out: &mut [f64]) {
    levels2::run2(active(), Binary::Logaddexp, Operand::Chunk(a), Operand::Chunk(b), out)
}

/// Runs a two-input kernel of the stable family over a chunk at the active level.
#[inline(always)]
fn run2(kernel: Binary, a: Operand, b: Operand, out: &mut [f64]) {
    levels2::run2(active(), kernel, a, b, out)
}

/// `kernel` of one pair: bit for bit what [`run2`] gives for it.
pub fn one2(kernel: Binary, a: f64, b: f64) -> f64 {
    let mut out = [0.0];
    levels2::run2(active(), kernel, Operand::Scalar(a), Operand::Scalar(b), &mut out);
    out[0]
}

use loops::Operand;

#[inline(always)]
fn binary_body<const F: bool>(kernel: Binary, a: Operand, b: Operand, out: &mut [f64]) {
    assert!(
        [&a, &b].iter().all(|o| match o {
            Operand::Chunk(c) => c.len() == out.len(),
            Operand::Scalar(_) => true,
        }),
        "kernel input and output lengths differ"
    );
    // Pure per-element arithmetic (no contraction: `mla` fuses explicitly), so the vector body
    // and the scalar remainder give the same bits. One loop per lane: a lane picked as a
    // function pointer would be an indirect call per element.
    let pass = Operand::Scalar(0.0);
    match kernel {
        Binary::Logaddexp => loops::elementwise3(a, b, pass, out, |x, y, _| logaddexp_lane::<F>(x, y)),
        Binary::Atan2 => loops::elementwise3(a, b, pass, out, |y, x, _| atan2_lane::<F>(y, x)),
        Binary::Hypot | Binary::Pow => unreachable!("{kernel:?} has its own driver"),
    }
}

#[cfg(target_arch = "x86_64")]
mod x86_stable_binary {
    use super::{Binary, Operand};
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn avx2(kernel: Binary, a: Operand, b: Operand, out: &mut [f64]) {
        super::binary_body::<true>(kernel, a, b, out)
    }
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) fn avx512(kernel: Binary, a: Operand, b: Operand, out: &mut [f64]) {
        super::binary_body::<true>(kernel, a, b, out)
    }
}

/// Two-input kernels at a given level, for tests. Not part of the stable API.
#[doc(hidden)]
pub mod levels2 {
    use super::{Binary, Level, Operand};

    /// `kernel` over a chunk with the given level; panics if the CPU does not support it.
    pub(crate) fn run2(level: Level, kernel: Binary, a: Operand, b: Operand, out: &mut [f64]) {
        assert!(level.is_supported(), "kernel level {level:?} is not supported on this CPU");
        match level {
            Level::Baseline => super::binary_body::<false>(kernel, a, b, out),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `is_supported` confirmed AVX2 and FMA at run time.
            Level::Avx2Fma => unsafe { super::x86_stable_binary::avx2(kernel, a, b, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `is_supported` confirmed AVX-512F, AVX2 and FMA.
            Level::Avx512 => unsafe { super::x86_stable_binary::avx512(kernel, a, b, out) },
            #[cfg(target_arch = "aarch64")]
            Level::Neon => super::binary_body::<true>(kernel, a, b, out),
            #[allow(unreachable_patterns)]
            _ => unreachable!("level checked by is_supported"),
        }
    }

    /// `kernel` over two equally long slices with the given level.
    pub fn run(level: Level, kernel: Binary, a: &[f64], b: &[f64], out: &mut [f64]) {
        run2(level, kernel, Operand::Chunk(a), Operand::Chunk(b), out)
    }
}
