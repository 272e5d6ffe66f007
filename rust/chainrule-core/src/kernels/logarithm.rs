//! The logarithm family: `log` and `log1p` from `x = 2^k m` and `log(1+f)` through
//! `s = f/(2+f)` and a degree-6 polynomial in `s^2`.

use super::*;

/// 2 atanh(s) = 2s + s z T(z), z = s^2 <= 0.0295 (abs. error 2^-58.5).
pub(super) const LOG_T: [f64; 7] = [
    0.6666666666666734,
    0.39999999999413965,
    0.28571428742562144,
    0.22222198553785505,
    0.18183565407248337,
    0.15314021118750684,
    0.14796261168009292,
];
/// Shared log body: `log(u) + c/u` for `u` positive normal (the caller
/// patches zero, negative and non-finite lanes); `c` is a tiny correction and
/// `k_adj` is subtracted from the exponent field (in units of `1 << 52`).
#[inline(always)]
pub(super) fn log_core<const F: bool>(u: f64, k_adj: u64, c_over_u: f64) -> f64 {
    // Subtracting the bits of sqrt(1/2) makes the exponent field round so
    // that the mantissa lands in [sqrt(1/2), sqrt(2)); adding 2047 << 52
    // keeps the shifted exponent non-negative for a logical shift even after
    // the subnormal adjustment.
    const OFF: u64 = 0x3fe6_a09e_667f_3bcd;
    let v = u.to_bits().wrapping_sub(OFF).wrapping_add(2047 << 52).wrapping_sub(k_adj);
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
pub(super) fn log_lane<const F: bool>(x: f64) -> f64 {
    // Subnormals are scaled by 2^54 into the normal range; the exponent is
    // corrected in the integer domain so no second select on `sub` exists
    // (LLVM would otherwise duplicate the whole body for both arms).
    let sub = x < f64::MIN_POSITIVE;
    let mask = (sub as u64).wrapping_neg();
    let scale = f64::from_bits(1.0f64.to_bits() + (mask & (54 << 52)));
    let y = log_core::<F>(x * scale, mask & (54 << 52), 0.0);
    let y = if x == f64::INFINITY { x } else { y };
    let bad = if x == 0.0 { f64::NEG_INFINITY } else { f64::NAN };
    if x > 0.0 {
        y
    } else {
        bad
    }
}

#[inline(always)]
pub(super) fn log1p_lane<const F: bool>(x: f64) -> f64 {
    let u = 1.0 + x;
    // c is the rounding error of 1 + x (both forms are exact in their range);
    // log(1 + x) = log(u) + c/u to far below an ulp.
    let c = if u < 2.0 { x - (u - 1.0) } else { 1.0 - (u - x) };
    let y = log_core::<F>(u, 0, c / u);
    let y = if x == f64::INFINITY { x } else { y };
    let bad = if u == 0.0 { f64::NEG_INFINITY } else { f64::NAN };
    let y = if u > 0.0 { y } else { bad };
    // log1p(x) rounds to x below 2^-54; this also keeps the sign of -0.0.
    if x.abs() < 5.551_115_123_125_783e-17 {
        x
    } else {
        y
    }
}

#[inline(always)]
pub(super) fn log_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    map(x, out, log_lane::<F>);
}
#[inline(always)]
pub(super) fn log1p_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    map(x, out, log1p_lane::<F>);
}
