//! The exponential family: `exp`, `expm1` and `tanh` from one Cody-Waite reduction
//! `x = n ln2 + r` and a degree-9 polynomial for `expm1(r)`.

use super::*;

pub(super) const LOG2E: f64 = std::f64::consts::LOG2_E;
// ln2 = LN2_HI + LN2_LO with LN2_HI short enough (29 bits) that k * LN2_HI is
// exact for every exponent k that can occur.
pub(super) const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_ff00_0000);
pub(super) const LN2_LO: f64 = -4.200_915_072_681_084_6e-11;

/// expm1(r) = r + r^2 (1/2 + r Q(r)), |r| <= ln2/2 (weighted rel. error 2^-61.6).
pub(super) const EXP_Q: [f64; 10] = [
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
/// Splits `x = n ln2 + r` and returns `(n, expm1(r))`; `x` must be clamped
/// to a few thousand so that `n` stays exact in the shifter.
#[inline(always)]
pub(super) fn exp_reduce<const F: bool>(x: f64) -> (f64, f64) {
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
pub(super) fn exp_split<const F: bool>(x: f64) -> (f64, f64, f64, f64) {
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
pub(super) fn exp_reduce_coarse<const F: bool>(x: f64) -> (f64, f64) {
    let (n, _, r, h) = exp_split::<F>(x);
    (n, mla::<F>(r * r, h, r))
}

/// `2^n * (1 + p)` with `n` in `[-1076, 1024]`: two power-of-two factors so
/// that each is a normal number and the only rounding into the subnormal or
/// overflow range happens in the last multiply.
#[inline(always)]
pub(super) fn scale_1p<const F: bool>(n: f64, p: f64) -> f64 {
    let n1 = (n * 0.5 + SHIFT) - SHIFT;
    let n2 = n - n1;
    let s1 = pow2(n1);
    mla::<F>(p, s1, s1) * pow2(n2)
}

#[inline(always)]
pub(super) fn exp_lane<const F: bool>(x: f64) -> f64 {
    // exp(710) overflows and exp(-746) rounds to zero; clamping keeps n exact.
    let xc = clamp_keep_nan(x, -746.0, 710.0);
    let (n, p) = exp_reduce::<F>(xc);
    scale_1p::<F>(n, p)
}

#[inline(always)]
pub(super) fn expm1_lane<const F: bool>(x: f64) -> f64 {
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
pub(super) fn tanh_lane<const F: bool>(x: f64) -> f64 {
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

/// ln2 = EXP2_L1 + EXP2_L2 with EXP2_L1 of 26 bits, so that its product with a reduced
/// argument cut to 27 bits is exact.
const EXP2_L1: f64 = f64::from_bits(0x3fe6_2e42_f800_0000);
const EXP2_L2: f64 = 1.299_650_689_388_988_9e-8;

#[inline(always)]
pub(super) fn exp2_lane<const F: bool>(x: f64) -> f64 {
    // 2^-1076 rounds to 0 and 2^1024 overflows; clamping keeps n exact and within scale_1p's
    // range.
    let xc = clamp_keep_nan(x, -1076.0, 1024.0);
    // x = n + r exactly, |r| <= 1/2; 2^r = exp(r ln2) with r ln2 = t + c to ~2^-80 in both
    // instantiations: r = rh + rl, rh a multiple of 2^-28 (27 bits), so rh * EXP2_L1 is exact
    // and the remaining terms are 2^-26 of it. Integers give r = 0 and 2^n exactly.
    let n = (xc + SHIFT) - SHIFT;
    let r = xc - n;
    let rh = (r + 25_165_824.0) - 25_165_824.0;
    let rl = r - rh;
    let th = rh * EXP2_L1;
    let tl = mla::<F>(rh, EXP2_L2, rl * std::f64::consts::LN_2);
    let t = th + tl;
    let c = (th - t) + tl;
    // As exp_reduce: expm1(t + c) ~ t + t^2 h + c (1 + t).
    let h = mla::<F>(t, poly10::<F>(t, &EXP_Q), 0.5);
    let p = t + mla::<F>(t * t, h, mla::<F>(c, t, c));
    scale_1p::<F>(n, p)
}

#[inline(always)]
pub(super) fn exp2_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    map(x, out, exp2_lane::<F>);
}
#[inline(always)]
pub(super) fn exp_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    map(x, out, exp_lane::<F>);
}
#[inline(always)]
pub(super) fn expm1_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    map(x, out, expm1_lane::<F>);
}
#[inline(always)]
pub(super) fn tanh_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    map(x, out, tanh_lane::<F>);
}
