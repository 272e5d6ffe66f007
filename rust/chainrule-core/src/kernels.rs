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
//!
//! * `exp`/`expm1`: `x = n ln2 + r`, `|r| <= ln2/2` (Cody-Waite, two-part
//!   `ln2`, with the rounding error of `r` recovered and folded back in),
//!   `expm1(r) = r + r^2 (1/2 + r Q(r))`, `Q` of degree 9; `2^n` is applied
//!   as two factors so that subnormal results and `exp(709.78)` round once.
//! * `log`/`log1p`: `x = 2^k m`, `m` in `[sqrt(1/2), sqrt(2))`,
//!   `s = f/(2+f)`, `log(1+f) = f - f^2/2 + s (f^2/2 + z T(z))`, `z = s^2`,
//!   `T` of degree 6. One division per element beats a gathered table on
//!   AVX2. `log1p` adds the rounding error of `1 + x` as `c/u`.
//! * `sin`/`cos`/`tan`: `x = n pi/2 + r` with four split constants (three
//!   of at most 33 bits, so `n * P_i` is exact for `|n| < 2^20`); the
//!   remainder is carried as a double-double, which keeps it accurate to far
//!   below an ulp even for the double closest to a multiple of pi/2 in range
//!   (91.106186954104, within 2^-59.5 of 58 pi/2). Degree-5 polynomials in
//!   `r^2` for sin and cos on `|r| <= pi/4`; tan is their quotient. Lanes
//!   with `|x| > 2^20`, NaN or inf are patched with libm after the vector
//!   pass (one vectorised any-test per call when there are none).
//! * `tanh`: with `e = exp(-2|x|) = 2^n (1 + p)`, `(1 - e)/(1 + e)`, whose
//!   numerator and denominator each take one rounding, or `1 - 2e/(1 + e)`
//!   from `|x| = 0.87` on; the sign is copied from `x`.
//! * `sigmoid`: `1/(1 + e^-x)` with `1 + e^-x` formed in one rounding, for
//!   `-36 <= x <= 40`; below, `e^x - e^2x` (down through the subnormal
//!   range), above, 1: patched in after the vector pass like trig's huge
//!   arguments, so the vector loop carries no second exponential, no clamp
//!   and no selects for the tails, only an or-ed flag.
//!   `sigmoid_slope` also gives `s (1 - s)`, the factor every derivative of
//!   a sigmoid needs, in the same pass.
//! * `sqrt` is the hardware square root (correctly rounded).
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
//! | tan      | 3.2         | 7.3     | 15.9    | 5.0x    | 2       | 2.12 |
//! | tanh     | 2.5         | 6.6     | 15.7    | 6.2x    | 3       | 1.92 |
//! | sigmoid  | 2.2         | 6.3     | 6.7     | 3.0x    | 2       | 1.75*|
//! | sqrt     | 0.7         | 1.4     | 2.9     | 4.0x    | 0       | 0    |
//! | sin_cos  | 3.3         | 12.3    | 22.1    | 6.7x    | 1       |      |
//! | sigmoid_slope | 2.3    | 5.3     |         |         | 2       |      |
//!
//! \* A bound, not remeasured: 1.50 before the sigmoid's reduction dropped
//! its correction term, which adds at most a quarter ulp.
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

/// Block width of the padded tail; a multiple of every vector width used.
const W: usize = 8;

/// `1.5 * 2^52`: adding it rounds to an integer held in the low mantissa bits.
const SHIFT: f64 = 6_755_399_441_055_744.0;
const SIGN: u64 = 1 << 63;
const MANT: u64 = (1 << 52) - 1;

const LOG2E: f64 = std::f64::consts::LOG2_E;
// ln2 = LN2_HI + LN2_LO with LN2_HI short enough (29 bits) that k * LN2_HI is
// exact for every exponent k that can occur.
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_ff00_0000);
const LN2_LO: f64 = -4.200_915_072_681_084_6e-11;

const TWO_OVER_PI: f64 = std::f64::consts::FRAC_2_PI;
// pi/2 = P1 + P2 + P3 + P4 to about 2^-160; P1..P3 have at most 33
// significant bits so n * Pi is exact for |n| < 2^20.
const P1: f64 = f64::from_bits(0x3ff9_21fb_5440_0000);
const P2: f64 = f64::from_bits(0x3dd0_b461_1a60_0000);
const P3: f64 = f64::from_bits(0x3ba3_198a_2e00_0000);
const P4: f64 = f64::from_bits(0x397b_839a_2520_49c1);
/// Beyond this the split-constant reduction is no longer exact; libm takes over.
const TRIG_MAX: f64 = 1_048_576.0;

/// expm1(r) = r + r^2 (1/2 + r Q(r)), |r| <= ln2/2 (weighted rel. error 2^-61.6).
const EXP_Q: [f64; 10] = [
    0.16666666666666677,
    0.041666666666666574,
    0.008333333333321988,
    0.0013888888888943496,
    0.00019841269885442767,
    2.4801587197016798e-5,
    2.7557244730217314e-6,
    2.7557387580538725e-7,
    2.510890203060234e-8,
    2.0878914155333955e-9,
];
/// 2 atanh(s) = 2s + s z T(z), z = s^2 <= 0.0295 (abs. error 2^-58.5).
const LOG_T: [f64; 7] = [
    0.6666666666666734,
    0.39999999999413965,
    0.28571428742562144,
    0.22222198553785505,
    0.18183565407248337,
    0.15314021118750684,
    0.14796261168009292,
];
/// sin r = r + r z S(z), z = r^2, |r| <= pi/4 (rel. error 2^-58).
const SIN_S: [f64; 6] = [
    -0.16666666666666632,
    0.008333333333322316,
    -0.00019841269829725216,
    2.755731366206148e-6,
    -2.5050753265092574e-8,
    1.5896504975467335e-10,
];
/// cos r = 1 - z/2 + z^2 C(z), z = r^2, |r| <= pi/4 (rel. error 2^-63.7).
const COS_C: [f64; 6] = [
    0.0416666666666666,
    -0.001388888888887399,
    2.4801587289394903e-5,
    -2.7557314326023604e-7,
    2.087571955774313e-9,
    -1.1359448630332592e-11,
];

// ---------------------------------------------------------------------------
// Lane helpers. Everything is #[inline(always)] so that it is compiled inside
// the #[target_feature] wrapper that finally calls it.

/// Multiply-add; fused only in instantiations compiled with FMA, because
/// without hardware FMA `mul_add` is a slow software routine.
#[inline(always)]
fn mla<const F: bool>(a: f64, b: f64, c: f64) -> f64 {
    if F {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

// Polynomials are evaluated by Estrin's scheme, whose dependency chains are
// logarithmic in the degree where Horner's are linear, so more loop
// iterations overlap in the out-of-order window. Written out per degree
// because a generic loop did not unroll (and then did not vectorise).

#[inline(always)]
fn poly6<const F: bool>(x: f64, c: &[f64; 6]) -> f64 {
    let x2 = x * x;
    let a = mla::<F>(c[1], x, c[0]);
    let b = mla::<F>(c[3], x, c[2]);
    let d = mla::<F>(c[5], x, c[4]);
    mla::<F>(x2 * x2, d, mla::<F>(x2, b, a))
}

#[inline(always)]
fn poly7<const F: bool>(x: f64, c: &[f64; 7]) -> f64 {
    let x2 = x * x;
    let a = mla::<F>(c[1], x, c[0]);
    let b = mla::<F>(c[3], x, c[2]);
    let d = mla::<F>(x2, c[6], mla::<F>(c[5], x, c[4]));
    mla::<F>(x2 * x2, d, mla::<F>(x2, b, a))
}

#[inline(always)]
fn poly10<const F: bool>(x: f64, c: &[f64; 10]) -> f64 {
    let x2 = x * x;
    let x4 = x2 * x2;
    let p0 = mla::<F>(c[1], x, c[0]);
    let p1 = mla::<F>(c[3], x, c[2]);
    let p2 = mla::<F>(c[5], x, c[4]);
    let p3 = mla::<F>(c[7], x, c[6]);
    let p4 = mla::<F>(c[9], x, c[8]);
    let lo = mla::<F>(x4, mla::<F>(x2, p3, p2), mla::<F>(x2, p1, p0));
    mla::<F>(x4 * x4, p4, lo)
}

/// Comparison-based clamp: unlike `f64::clamp`/`max` it lets NaN through.
#[inline(always)]
fn clamp_keep_nan(x: f64, lo: f64, hi: f64) -> f64 {
    let x = if x < lo { lo } else { x };
    if x > hi {
        hi
    } else {
        x
    }
}

/// `2^n` for an integral `n` in `[-1022, 1023]`, without int/float converts.
#[inline(always)]
fn pow2(n: f64) -> f64 {
    let biased = (n + SHIFT)
        .to_bits()
        .wrapping_add(1023u64.wrapping_sub(SHIFT.to_bits()));
    f64::from_bits(biased << 52)
}

/// Splits `x = n ln2 + r` and returns `(n, expm1(r))`; `x` must be clamped
/// to a few thousand so that `n` stays exact in the shifter.
#[inline(always)]
fn exp_reduce<const F: bool>(x: f64) -> (f64, f64) {
    let (n, rh, r, h) = exp_split::<F>(x);
    // n * LN2_HI is exact and x - n * LN2_HI cancels exactly, so only the
    // LN2_LO step rounds; its rounding error c is recovered and folded in as
    // expm1(r + c) ~ expm1(r) + c (1 + r). Without it expm1 and tanh lose
    // about an ulp where 2^n p and 2^n - 1 partly cancel.
    let c = mla::<F>(-n, LN2_LO, rh - r);
    let p = r + mla::<F>(r * r, h, mla::<F>(c, r, c));
    (n, p)
}

/// The shared part of the reductions: `n`, `x - n LN2_HI`, `r = x - n ln2` and the
/// polynomial `h` with `expm1(r) ~ r + r^2 h`.
#[inline(always)]
fn exp_split<const F: bool>(x: f64) -> (f64, f64, f64, f64) {
    let t = mla::<F>(x, LOG2E, SHIFT);
    let n = t - SHIFT;
    let rh = mla::<F>(-n, LN2_HI, x);
    let r = mla::<F>(-n, LN2_LO, rh);
    let h = mla::<F>(r, poly10::<F>(r, &EXP_Q), 0.5);
    (n, rh, r, h)
}

/// [`exp_reduce`] without the recovered rounding error of `r`: about 2^-55
/// relative error in `1 + p`, for callers where that is scaled down.
#[inline(always)]
fn exp_reduce_coarse<const F: bool>(x: f64) -> (f64, f64) {
    let (n, _, r, h) = exp_split::<F>(x);
    (n, mla::<F>(r * r, h, r))
}

/// `2^n * (1 + p)` with `n` in `[-1076, 1024]`: two power-of-two factors so
/// that each is a normal number and the only rounding into the subnormal or
/// overflow range happens in the last multiply.
#[inline(always)]
fn scale_1p<const F: bool>(n: f64, p: f64) -> f64 {
    let n1 = (n * 0.5 + SHIFT) - SHIFT;
    let n2 = n - n1;
    let s1 = pow2(n1);
    mla::<F>(p, s1, s1) * pow2(n2)
}

#[inline(always)]
fn exp_lane<const F: bool>(x: f64) -> f64 {
    // exp(710) overflows and exp(-746) rounds to zero; clamping keeps n exact.
    let xc = clamp_keep_nan(x, -746.0, 710.0);
    let (n, p) = exp_reduce::<F>(xc);
    scale_1p::<F>(n, p)
}

#[inline(always)]
fn expm1_lane<const F: bool>(x: f64) -> f64 {
    // Below -45, expm1 rounds to -1; above 710 it overflows.
    let xc = clamp_keep_nan(x, -45.0, 710.0);
    let (n, p) = exp_reduce::<F>(xc);
    // For n <= 60, 2^n p + (2^n - 1): 2^n p is exact and (for n <= 53)
    // so is 2^n - 1, hence one rounding with or without FMA. Beyond that
    // the -1 is far below half an ulp and the exp scaling handles overflow.
    let nm = if n > 60.0 { 60.0 } else { n };
    let s = pow2(nm);
    let moderate = mla::<F>(s, p, s - 1.0);
    let large = scale_1p::<F>(n, p);
    let y = if n > 60.0 { large } else { moderate };
    // expm1(x) rounds to x here; this also keeps the sign of -0.0.
    if x.abs() < 5.551_115_123_125_783e-17 {
        x
    } else {
        y
    }
}

#[inline(always)]
fn tanh_lane<const F: bool>(x: f64) -> f64 {
    let ax = x.abs();
    // tanh rounds to +-1 from 19.06 on; 22 keeps 2^n within range.
    let a = if ax > 22.0 { 22.0 } else { ax };
    // With e = exp(-2a) = s (1 + p), s = 2^n, n <= 0, tanh a = (1 - e)/(1 + e)
    // where 1 - s and 1 + s are exact, so numerator and denominator each
    // take one rounding and never cancel badly (the positive-exponent form
    // t/(t+2), t = expm1(2a), loses up to 3 ulp near a = 0.2). For larger a,
    // 1 - 2e/(1+e) is better: the quotient is small, so its error shrinks.
    let (n, p) = exp_reduce::<F>(-(a + a));
    let s = pow2(n);
    let den = mla::<F>(s, p, 1.0 + s);
    // big = 1 once n <= -3 (a >= 0.87), else 0. Built with min/max rather
    // than a select: LLVM would otherwise push the select through the
    // division and divide twice.
    #[allow(clippy::manual_clamp)] // f64::clamp is a select, the point here
    let big = (-2.0 - n).max(0.0).min(1.0);
    // Numerator (1 - s) - s p, or -2 (s + s p) for the 1 - 2e/(1+e) form;
    // s p is exact and so are the coefficient blends.
    let c0 = mla::<F>(big, -(1.0 + s), 1.0 - s);
    let y = big + mla::<F>(-1.0 - big, s * p, c0) / den;
    let y = f64::from_bits(y.to_bits() | (x.to_bits() & SIGN));
    // tanh(x) rounds to x below 2^-28; keeps -0.0 and subnormals exact.
    if ax < 3.725_290_298_461_914e-9 {
        x
    } else {
        y
    }
}

/// Below this, [`sigmoid_lane`] is wrong and the slice driver patches the lane with
/// [`sigmoid_tail`].
const SIGMOID_TAIL: f64 = -36.0;
/// Above this, [`sigmoid_lane`] is wrong (its argument is not clamped) and the slice driver
/// patches the lane with 1, the correctly rounded sigmoid from 37.5 on.
const SIGMOID_ONE: f64 = 40.0;

/// Whether [`sigmoid_lane`] cannot take `t`; [`sigmoid_edge`] gives those lanes.
#[inline(always)]
#[allow(clippy::manual_range_contains)] // NaN must not count as outside: the lane keeps it NaN
fn sigmoid_outside(t: f64) -> bool {
    t < SIGMOID_TAIL || t > SIGMOID_ONE
}

/// The sigmoid where [`sigmoid_outside`] holds.
#[inline(always)]
fn sigmoid_edge<const F: bool>(t: f64) -> f64 {
    if t < SIGMOID_TAIL {
        sigmoid_tail::<F>(t)
    } else {
        1.0
    }
}

#[inline(always)]
fn sigmoid_lane<const F: bool>(x: f64) -> f64 {
    // 1/(1 + e^-x) is accurate when 1 + e^-x = 1 + 2^n (1 + p) is formed in
    // one rounding from the exact 1 + 2^n (-52 <= n <= 52, or 2^n below half
    // an ulp of 1 so that the sum rounds to 1 either way); the division adds
    // half an ulp. For x in [-36, 40], 2^n stays normal without a clamp on
    // n; lanes outside get garbage here and are patched (see
    // `patch_sigmoid`), so the loop carries no clamp (NaN propagates).
    //
    // The reduction leaves out `exp_reduce`'s correction term: in 1 + e^-x
    // the relative error of e^-x it recovers (at most 2^-55) is scaled by
    // e^-x/(1 + e^-x) < 1, so it costs at most a quarter ulp, and the bound
    // stays far inside 4 ulp (2 ulp against glibc either way in
    // tests/kernels.rs). With the tail patched in afterwards instead of
    // computed in every lane (a second exponential and three selects), the
    // vector loop went from 75 to 45 instructions per 4 lanes: 2.6 -> 2.2 ns
    // per element (AVX2+FMA, 1024-element chunks, best of 150), and W1 (two
    // sigmoids per sample) 10.4 -> 8.8 ms (thread CPU time, N = 1e6, one
    // thread, medians of 4 interleaved rounds of 15 calls).
    1.0 / sigmoid_den::<F>(x)
}

/// `1 + e^-x` of [`sigmoid_lane`], rounded once.
#[inline(always)]
fn sigmoid_den<const F: bool>(x: f64) -> f64 {
    let (n, p) = exp_reduce_coarse::<F>(-x);
    let s = pow2(n);
    mla::<F>(s, p, 1.0 + s)
}

/// Sigmoid for `x < -36` (down through the subnormal range to `-inf`):
/// `e^x/(1 + e^x) = e^x - e^2x` to far below an ulp.
#[inline(always)]
fn sigmoid_tail<const F: bool>(x: f64) -> f64 {
    let e = exp_lane::<F>(x);
    mla::<F>(-e, e, e)
}

/// The slope of the sigmoid from its value, `s (1 - s)`: the very operations
/// (and roundings) of the tape's `s * (1 - s)`, which its pullback builds.
#[inline(always)]
fn slope_of_sigmoid(s: f64) -> f64 {
    s * (1.0 - s)
}

/// Shared log body: `log(u) + c/u` for `u` positive normal (the caller
/// patches zero, negative and non-finite lanes); `c` is a tiny correction and
/// `k_adj` is subtracted from the exponent field (in units of `1 << 52`).
#[inline(always)]
fn log_core<const F: bool>(u: f64, k_adj: u64, c_over_u: f64) -> f64 {
    // Subtracting the bits of sqrt(1/2) makes the exponent field round so
    // that the mantissa lands in [sqrt(1/2), sqrt(2)); adding 2047 << 52
    // keeps the shifted exponent non-negative for a logical shift even after
    // the subnormal adjustment.
    const OFF: u64 = 0x3fe6_a09e_667f_3bcd;
    let v = u
        .to_bits()
        .wrapping_sub(OFF)
        .wrapping_add(2047 << 52)
        .wrapping_sub(k_adj);
    // v >> 52 holds k + 2047; the 2^52 trick turns it into a float exactly.
    let k = f64::from_bits((v >> 52) | 0x4330_0000_0000_0000) - (4_503_599_627_370_496.0 + 2047.0);
    let m = f64::from_bits((v & MANT) + OFF);
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    let rz = z * poly7::<F>(z, &LOG_T);
    let hfsq = 0.5 * f * f;
    let lo = mla::<F>(k, LN2_LO, mla::<F>(s, hfsq + rz, c_over_u));
    // k * LN2_HI is exact, so the fused and unfused forms agree here.
    mla::<F>(k, LN2_HI, f - (hfsq - lo))
}

#[inline(always)]
fn log_lane<const F: bool>(x: f64) -> f64 {
    // Subnormals are scaled by 2^54 into the normal range; the exponent is
    // corrected in the integer domain so no second select on `sub` exists
    // (LLVM would otherwise duplicate the whole body for both arms).
    let sub = x < f64::MIN_POSITIVE;
    let mask = (sub as u64).wrapping_neg();
    let scale = f64::from_bits(1.0f64.to_bits() + (mask & (54 << 52)));
    let y = log_core::<F>(x * scale, mask & (54 << 52), 0.0);
    let y = if x == f64::INFINITY { x } else { y };
    let bad = if x == 0.0 {
        f64::NEG_INFINITY
    } else {
        f64::NAN
    };
    if x > 0.0 {
        y
    } else {
        bad
    }
}

#[inline(always)]
fn log1p_lane<const F: bool>(x: f64) -> f64 {
    let u = 1.0 + x;
    // c is the rounding error of 1 + x (both forms are exact in their range);
    // log(1 + x) = log(u) + c/u to far below an ulp.
    let c = if u < 2.0 {
        x - (u - 1.0)
    } else {
        1.0 - (u - x)
    };
    let y = log_core::<F>(u, 0, c / u);
    let y = if x == f64::INFINITY { x } else { y };
    let bad = if u == 0.0 {
        f64::NEG_INFINITY
    } else {
        f64::NAN
    };
    let y = if u > 0.0 { y } else { bad };
    // log1p(x) rounds to x below 2^-54; this also keeps the sign of -0.0.
    if x.abs() < 5.551_115_123_125_783e-17 {
        x
    } else {
        y
    }
}

/// Reduces `x` by multiples of pi/2 and returns `(sin r, cos r, n)` where
/// only the low two bits of `n` are meaningful. Valid for `|x| <= TRIG_MAX`.
#[inline(always)]
fn trig_core<const F: bool>(x: f64) -> (f64, f64, u64) {
    let t = mla::<F>(x, TWO_OVER_PI, SHIFT);
    let n = t - SHIFT;
    // Exact: n * P1 fits in 53 bits and cancels against x (Sterbenz).
    let a = x - n * P1;
    // The next two subtractions are carried as exact double-doubles with
    // Fast2Sum (3 operations instead of TwoSum's 6). Fast2Sum needs the
    // first operand to be a multiple of the second's ulp whenever it is the
    // smaller one: for n != 0, a is a multiple of 2^-53, and h1, when it is
    // that small, is the exact a - n P2, a multiple of 2^-65; n P2 and n P3
    // have ulps of at most 2^-66 and 2^-101.
    let b = n * P2;
    let h1 = a - b;
    let e1 = (a - h1) - b;
    let c = n * P3;
    let h = h1 - c;
    let e2 = (h1 - h) - c;
    let lo = mla::<F>(-n, P4, e1 + e2);
    let rh = h + lo;
    let rl = lo - (rh - h);
    let z = rh * rh;
    // sin(rh + rl) ~ sin(rh) + rl; the dropped rl z/2 is under 0.2 ulp.
    let sp = z * poly6::<F>(z, &SIN_S);
    let sin_r = rh + mla::<F>(rh, sp, rl);
    // cos(rh + rl) ~ cos(rh) - rh rl; the rounding error of 1 - z/2 is
    // recovered exactly and folded into the small terms.
    let hz = 0.5 * z;
    let w = 1.0 - hz;
    let cp = z * z * poly6::<F>(z, &COS_C);
    let cos_r = w + (((1.0 - w) - hz) + (cp - rh * rl));
    (sin_r, cos_r, t.to_bits())
}

/// sin or cos of the reduced argument by quadrant (`q` = n or n + 1).
#[inline(always)]
fn quadrant(sin_r: f64, cos_r: f64, q: u64) -> f64 {
    let v = if q & 1 != 0 { cos_r } else { sin_r };
    f64::from_bits(v.to_bits() ^ ((q & 2) << 62))
}

/// Below 2^-26 sin(x) rounds to x itself (x^3/6 < half an ulp), below
/// 2^-27 so does tan(x); returning x also keeps -0.0.
const SIN_TINY: f64 = 1.490_116_119_384_765_6e-8;
const TAN_TINY: f64 = 7.450_580_596_923_828e-9;

#[inline(always)]
fn sin_lane<const F: bool>(x: f64) -> f64 {
    let (s, c, q) = trig_core::<F>(x);
    let y = quadrant(s, c, q);
    if x.abs() < SIN_TINY {
        x
    } else {
        y
    }
}

#[inline(always)]
fn cos_lane<const F: bool>(x: f64) -> f64 {
    let (s, c, q) = trig_core::<F>(x);
    quadrant(s, c, q.wrapping_add(1))
}

/// Both of [`sin_lane`] and [`cos_lane`] from one reduction, bit for bit the
/// same values (the same operations on the same reduced argument).
#[inline(always)]
fn sin_cos_lane<const F: bool>(x: f64) -> (f64, f64) {
    let (s, c, q) = trig_core::<F>(x);
    let y = quadrant(s, c, q);
    let sin = if x.abs() < SIN_TINY { x } else { y };
    (sin, quadrant(s, c, q.wrapping_add(1)))
}

#[inline(always)]
fn tan_lane<const F: bool>(x: f64) -> f64 {
    let (s, c, q) = trig_core::<F>(x);
    let odd = q & 1 != 0;
    let num = if odd { c } else { s };
    let den = if odd { s } else { c };
    let y = f64::from_bits((num / den).to_bits() ^ ((q & 1) << 63));
    if x.abs() < TAN_TINY {
        x
    } else {
        y
    }
}

#[inline(always)]
fn sqrt_lane(x: f64) -> f64 {
    x.sqrt()
}

// ---------------------------------------------------------------------------
// Slice drivers.

/// Runs `lane` over the slice: [`map_flagged`] with no flag (which compiles away).
#[inline(always)]
fn map<K: Fn(f64) -> f64>(x: &[f64], out: &mut [f64], lane: K) {
    map_flagged(x, out, |v| (lane(v), false));
}

/// Whether the fast trig reduction cannot take `v` (huge, infinite or NaN): libm does.
#[inline(always)]
fn trig_needs_libm(v: f64) -> bool {
    v.is_nan() || v.abs() > TRIG_MAX
}

/// Runs `lane` over the slice, the ragged tail through the same lane code via a padded block
/// so that results never depend on position or length; the lane also flags values it cannot
/// take, and this returns whether any did. The flag is or-ed in the same loop, so a rare-case
/// test costs no second pass over `x`.
#[inline(always)]
fn map_flagged<K: Fn(f64) -> (f64, bool)>(x: &[f64], out: &mut [f64], lane: K) -> bool {
    assert_eq!(x.len(), out.len(), "kernel input and output lengths differ");
    let body = x.len() - x.len() % W;
    let (xb, xt) = x.split_at(body);
    let (ob, ot) = out.split_at_mut(body);
    let mut any = false;
    for (o, &v) in ob.iter_mut().zip(xb) {
        let (y, flag) = lane(v);
        *o = y;
        any |= flag;
    }
    if !xt.is_empty() {
        let mut xp = [0.0; W];
        xp[..xt.len()].copy_from_slice(xt);
        let mut op = [0.0; W];
        for (o, &v) in op.iter_mut().zip(&xp) {
            let (y, flag) = lane(v);
            *o = y;
            any |= flag;
        }
        ot.copy_from_slice(&op[..xt.len()]);
    }
    any
}

/// [`map_flagged`] for a lane with two results.
#[inline(always)]
fn map2_flagged<K: Fn(f64) -> (f64, f64, bool)>(x: &[f64], out0: &mut [f64], out1: &mut [f64], lane: K) -> bool {
    assert!(
        x.len() == out0.len() && x.len() == out1.len(),
        "kernel input and output lengths differ"
    );
    let body = x.len() - x.len() % W;
    let (xb, xt) = x.split_at(body);
    let (ob0, ot0) = out0.split_at_mut(body);
    let (ob1, ot1) = out1.split_at_mut(body);
    let mut any = false;
    for ((o0, o1), &v) in ob0.iter_mut().zip(ob1.iter_mut()).zip(xb) {
        let (a, b, flag) = lane(v);
        (*o0, *o1) = (a, b);
        any |= flag;
    }
    if !xt.is_empty() {
        let mut xp = [0.0; W];
        xp[..xt.len()].copy_from_slice(xt);
        let (mut op0, mut op1) = ([0.0; W], [0.0; W]);
        for ((o0, o1), &v) in op0.iter_mut().zip(op1.iter_mut()).zip(&xp) {
            let (a, b, flag) = lane(v);
            (*o0, *o1) = (a, b);
            any |= flag;
        }
        ot0.copy_from_slice(&op0[..xt.len()]);
        ot1.copy_from_slice(&op1[..xt.len()]);
    }
    any
}

/// Replaces the lanes whose argument the fast path cannot reduce (huge, infinite or NaN) by
/// libm. The drivers call it only when their loop flagged such a lane (see
/// [`patch_sigmoid`] for why the test sits in the loop).
#[inline(always)]
fn patch_trig(x: &[f64], out: &mut [f64], slow: fn(f64) -> f64) {
    for (o, &v) in out.iter_mut().zip(x) {
        if trig_needs_libm(v) {
            *o = slow(v);
        }
    }
}

/// Replaces the lanes whose argument `arg(x[i])` is outside [`sigmoid_lane`]'s range by
/// [`sigmoid_edge`] (and their slopes, if given). The drivers call it only when their loop
/// flagged such a lane: or-ing the test into the loop, and dropping the clamp on the lane's
/// argument that kept those lanes finite, took W1 (two fused affine sigmoids per sample, one
/// thread, process CPU time, medians of 6 interleaved processes of 40 calls) from 8.17 to
/// 7.71 ms, against a separate any-test pass. Results are bit for bit unchanged.
#[inline(always)]
fn patch_sigmoid<const F: bool>(x: &[f64], arg: impl Fn(f64) -> f64, out: &mut [f64], mut slope: Option<&mut [f64]>) {
    for (i, &v) in x.iter().enumerate() {
        let t = arg(v);
        if sigmoid_outside(t) {
            out[i] = sigmoid_edge::<F>(t);
            if let Some(d) = slope.as_deref_mut() {
                d[i] = slope_of_sigmoid(out[i]);
            }
        }
    }
}

#[inline(always)]
fn exp_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    map(x, out, exp_lane::<F>);
}
#[inline(always)]
fn expm1_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    map(x, out, expm1_lane::<F>);
}
#[inline(always)]
fn log_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    map(x, out, log_lane::<F>);
}
#[inline(always)]
fn log1p_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    map(x, out, log1p_lane::<F>);
}
#[inline(always)]
fn sin_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    if map_flagged(x, out, |v| (sin_lane::<F>(v), trig_needs_libm(v))) {
        patch_trig(x, out, f64::sin);
    }
}
#[inline(always)]
fn cos_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    if map_flagged(x, out, |v| (cos_lane::<F>(v), trig_needs_libm(v))) {
        patch_trig(x, out, f64::cos);
    }
}
#[inline(always)]
fn sin_cos_body<const F: bool>(x: &[f64], sin: &mut [f64], cos: &mut [f64]) {
    let outside = map2_flagged(x, sin, cos, |v| {
        let (s, c) = sin_cos_lane::<F>(v);
        (s, c, trig_needs_libm(v))
    });
    if outside {
        patch_trig(x, sin, f64::sin);
        patch_trig(x, cos, f64::cos);
    }
}
#[inline(always)]
fn tan_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    if map_flagged(x, out, |v| (tan_lane::<F>(v), trig_needs_libm(v))) {
        patch_trig(x, out, f64::tan);
    }
}
#[inline(always)]
fn tanh_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    map(x, out, tanh_lane::<F>);
}
#[inline(always)]
fn sigmoid_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    // Two loops, as in `finish_sigmoid_slope`: 2.10 -> 1.76-2.09 ns per element (the kernel
    // bench's best of 150, three runs).
    let outside = map_flagged(x, out, |v| (sigmoid_den::<F>(v), sigmoid_outside(v)));
    for s in out.iter_mut() {
        *s = 1.0 / *s;
    }
    if outside {
        patch_sigmoid::<F>(x, |v| v, out, None);
    }
}
#[inline(always)]
fn sigmoid_slope_body<const F: bool>(x: &[f64], sig: &mut [f64], slope: &mut [f64]) {
    let outside = map_flagged(x, sig, |v| (sigmoid_den::<F>(v), sigmoid_outside(v)));
    finish_sigmoid_slope(sig, slope);
    if outside {
        patch_sigmoid::<F>(x, |v| v, sig, Some(slope));
    }
}

/// The second loop of the sigmoid-and-slope kernels: `sig` holds `1 + e^-x` on entry, and
/// leaves holding the sigmoid, with its slope in `slope`. Two loops instead of one (the same
/// operations, so the same bits) keep each loop's dependency chain short enough for the
/// out-of-order window to overlap more iterations: in one loop, ~57 instructions with a ~65-cycle
/// chain (the division's 13 in it) left 256 reorder-buffer entries short of the overlap.
/// W1 on one thread (process CPU time, medians of 10 interleaved processes of 30 calls):
/// 9.27 -> 8.85 ms.
#[inline(always)]
fn finish_sigmoid_slope(sig: &mut [f64], slope: &mut [f64]) {
    assert_eq!(slope.len(), sig.len(), "kernel input and output lengths differ");
    for (s, d) in sig.iter_mut().zip(slope.iter_mut()) {
        *s = 1.0 / *s;
        *d = slope_of_sigmoid(*s);
    }
}
/// [`sigmoid_slope_body`] of `w * x + b`, the argument formed in the loop with two roundings
/// (Rust never contracts `w * v + b` into a fused multiply-add, also where FMA is enabled),
/// so bit for bit the tape's two arithmetic ops followed by the kernel.
#[inline(always)]
fn sigmoid_slope_affine_body<const F: bool>(x: &[f64], w: f64, b: f64, sig: &mut [f64], slope: &mut [f64]) {
    let arg = |v: f64| w * v + b;
    let outside = map_flagged(x, sig, |v| {
        let t = arg(v);
        (sigmoid_den::<F>(t), sigmoid_outside(t))
    });
    finish_sigmoid_slope(sig, slope);
    if outside {
        patch_sigmoid::<F>(x, arg, sig, Some(slope));
    }
}
#[inline(always)]
fn sqrt_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    map(x, out, sqrt_lane);
}

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
/// The latency path used to pass single values through the slice kernels as padded
/// one-element slices, ~45 ns per transcendental (perf). W4 (W2's value and gradient at one
/// point: seven transcendentals) went from 1.32 to 0.96 µs per call with this entry point
/// (medians of 10 interleaved processes of 31 x 2,000 calls, on the shared 2-core machine).
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
        Level::Avx2Fma | Level::Avx512 => unsafe { x86_one::one(kernel, x) },
        #[cfg(target_arch = "aarch64")]
        Level::Neon => one_body::<true>(kernel, x),
        _ => one_body::<false>(kernel, x),
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

/// `out0[i] = sigmoid(w * x[i] + b)` and `out1[i] = out0[i] * (1 - out0[i])`, with `w * x[i] + b`
/// rounded after the product and after the sum: bit for bit [`sigmoid_slope`] of the
/// separately computed argument, without a pass that writes it and reads it back. Both
/// outputs must be as long as `x` (panics otherwise).
pub fn sigmoid_slope_affine(x: &[f64], w: f64, b: f64, out0: &mut [f64], out1: &mut [f64]) {
    levels::sigmoid_slope_affine(active(), x, w, b, out0, out1)
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

macro_rules! kernels {
    ($($(#[$doc:meta])* $variant:ident: $name:ident => $body:ident;)*
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
                        super::super::$body::<true>(x, out)
                    }
                }
            )*
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
    Exp: exp => exp_body;
    /// `out[i] = e^x[i] - 1`, accurate near zero; `expm1(-0.0) = -0.0`.
    Expm1: expm1 => expm1_body;
    /// `out[i] = ln x[i]`; `-inf` at `±0`, NaN for negative inputs.
    Log: log => log_body;
    /// `out[i] = ln(1 + x[i])`, accurate near zero; `-inf` at `-1`, NaN below.
    Log1p: log1p => log1p_body;
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
    @pairs
    /// `out0[i] = sin x[i]`, `out1[i] = cos x[i]` from one shared argument
    /// reduction: bit for bit what [`sin`] and [`cos`] give, at about the
    /// price of one of them (see the module's table).
    sin_cos => sin_cos_body;
    /// `out0[i] = sigmoid x[i]`, `out1[i] = out0[i] * (1 - out0[i])`: the
    /// sigmoid and its slope in one pass, bit for bit what [`sigmoid`] and
    /// the two arithmetic ops give.
    sigmoid_slope => sigmoid_slope_body;
}
