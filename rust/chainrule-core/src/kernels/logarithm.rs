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
    let (k, f, s, hfsq, rz) = log_reduce::<F>(u, k_adj);
    let lo = mla::<F>(k, LN2_LO, mla::<F>(s, hfsq + rz, c_over_u));
    // k * LN2_HI is exact, so the fused and unfused forms agree here.
    mla::<F>(k, LN2_HI, f - (hfsq - lo))
}

/// The reduction every logarithm shares: `u = 2^k (1 + f)` with `1 + f` in
/// `[sqrt(1/2), sqrt(2))`, `s = f/(2+f)`, `f^2/2` and `z T(z)`, so that
/// `log(1 + f) = f - f^2/2 + s (f^2/2 + z T(z))`.
#[inline(always)]
pub(super) fn log_reduce<const F: bool>(u: f64, k_adj: u64) -> (f64, f64, f64, f64, f64) {
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
    (k, f, s, hfsq, rz)
}

/// `log_b(x) = k log_b(2) + log(1 + f) / ln(b)`, for base 2 (`k2 = [1, 0]`) and base 10
/// (`k2` = log10(2) split): `f - f^2/2` is cut to its top 21 bits so that its product with
/// the short head of `1/ln(b)` is exact, and the rest is carried in a separate low part
/// (FreeBSD's e_log2.c/e_log10.c scheme); a single rounded multiply by `1/ln(b)` would add
/// up to an ulp of its own. `x` positive normal; the caller patches the rest.
#[inline(always)]
fn log_base<const F: bool>(x: f64, k_adj: u64, inv_ln: [f64; 2], k2: [f64; 2]) -> f64 {
    let (k, f, s, hfsq, rz) = log_reduce::<F>(x, k_adj);
    let r = s * (hfsq + rz);
    let hi = f64::from_bits((f - hfsq).to_bits() & 0xffff_ffff_0000_0000);
    let lo = (f - hi) - hfsq + r;
    let val_hi = hi * inv_ln[0];
    let y2 = k * k2[0];
    let val_lo = mla::<F>(k, k2[1], mla::<F>(lo + hi, inv_ln[1], lo * inv_ln[0]));
    // y2 + val_hi as a sum with its rounding error: exact when the result is k.
    let w = y2 + val_hi;
    (val_lo + ((y2 - w) + val_hi)) + w
}

/// 1/ln(2) and 1/ln(10) as a head of at most 32 bits and a tail; log10(2) likewise (FreeBSD's constants).
const IVLN2: [f64; 2] = [f64::from_bits(0x3ff7_1547_6520_0000), f64::from_bits(0x3de7_05fc_2eef_a200)];
const IVLN10: [f64; 2] = [f64::from_bits(0x3fdb_cb7b_1520_0000), f64::from_bits(0x3dbb_9438_ca9a_add5)];
const LOG10_2: [f64; 2] = [f64::from_bits(0x3fd3_4413_509f_6000), f64::from_bits(0x3d59_fef3_11f1_2b36)];

/// The logarithms' subnormal scaling and special cases around `core`, a logarithm of a
/// positive normal given its exponent adjustment.
#[inline(always)]
fn log_special(x: f64, core: impl Fn(f64, u64) -> f64) -> f64 {
    // Subnormals are scaled by 2^54 into the normal range; the exponent is corrected in the
    // integer domain so no second select on `sub` exists (LLVM would otherwise duplicate the
    // whole body for both arms).
    let sub = x < f64::MIN_POSITIVE;
    let mask = (sub as u64).wrapping_neg();
    let scale = f64::from_bits(1.0f64.to_bits() + (mask & (54 << 52)));
    let y = core(x * scale, mask & (54 << 52));
    let y = if x == f64::INFINITY { x } else { y };
    let bad = if x == 0.0 { f64::NEG_INFINITY } else { f64::NAN };
    if x > 0.0 {
        y
    } else {
        bad
    }
}

#[inline(always)]
pub(super) fn log2_lane<const F: bool>(x: f64) -> f64 {
    log_special(x, |u, k_adj| log_base::<F>(u, k_adj, IVLN2, [1.0, 0.0]))
}

#[inline(always)]
pub(super) fn log10_lane<const F: bool>(x: f64) -> f64 {
    log_special(x, |u, k_adj| log_base::<F>(u, k_adj, IVLN10, LOG10_2))
}

#[inline(always)]
pub(super) fn log2_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    map(x, out, log2_lane::<F>);
}
#[inline(always)]
pub(super) fn log10_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    map(x, out, log10_lane::<F>);
}

#[inline(always)]
pub(super) fn log_lane<const F: bool>(x: f64) -> f64 {
    log_special(x, |u, k_adj| log_core::<F>(u, k_adj, 0.0))
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
