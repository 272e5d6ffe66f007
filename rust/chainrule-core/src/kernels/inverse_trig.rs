//! The inverse trigonometric family: `atan`, `asin` and `acos` from one arctangent core of a
//! non-negative fraction `n/d` (Cephes' reduction to `|r| <= 0.66` and its degree-4/5 rational
//! approximation, relative error 2.6e-18), so that each function costs one reduction division
//! and the rational's: `asin x = atan(x / sqrt((1 - x)(1 + x)))`, and `acos` the angle
//! whose cosine is `x` and sine `sqrt((1 - x)(1 + x))`. No lane needs patching: inf, nan, the
//! poles and the signed zeros come out of the same arithmetic.

use super::*;

use std::f64::consts::{FRAC_PI_2, FRAC_PI_4, PI};

/// `atan r = r + r z P(z) / Q(z)`, `z = r^2`, `|r| <= 0.66` (Cephes; ascending powers).
const ATAN_P: [f64; 5] = [-64.85021904942025, -122.88666844901361, -75.00855792314705, -16.157537187333652, -0.8750608600031904];
/// The monic denominator, ascending, without its leading 1.
const ATAN_Q: [f64; 5] = [194.5506571482614, 485.3903996359137, 432.88106049129027, 165.02700983169885, 24.858464901423062];
/// tan(3 pi/8): above it `atan t = pi/2 + atan(-1/t)`.
const TAN_3PI_8: f64 = 2.414_213_562_373_095;
/// Where Cephes switches to `pi/4 + atan((t - 1)/(t + 1))`.
const ATAN_MID: f64 = 0.66;
/// pi/2 - FRAC_PI_2: the bits of pi/2 that the double leaves out.
const PI_2_LO: f64 = 6.123_233_995_736_766e-17;

/// `atan(n / d)` for `n, d >= 0` (not both zero), without forming `n / d` first: the reduced
/// argument is `n/d`, `(n - d)/(n + d)` or `-d/n`, one division whichever applies.
#[inline(always)]
pub(super) fn atan_frac<const F: bool>(n: f64, d: f64) -> f64 {
    let (base, tail) = atan_frac_parts::<F>(n, d);
    base + tail
}

/// `pi - angle` for an angle `base + tail` from [`atan_frac_parts`], rounded once: formed as
/// `pi - rounded angle`, the angle's rounding error is doubled into the result (one ulp off
/// next to pi/2, where the sign of `cos` of it then flips).
#[inline(always)]
fn pi_minus(base: f64, tail: f64) -> f64 {
    let hi = PI - base;
    // Exact (Fast2Sum: PI >= base): PI - base = hi + e.
    let e = (PI - hi) - base;
    hi + ((e + 2.0 * PI_2_LO) - tail)
}

/// [`atan_frac`] as `base + tail`, unrounded: `base` is 0, pi/4 or pi/2.
#[inline(always)]
fn atan_frac_parts<const F: bool>(n: f64, d: f64) -> (f64, f64) {
    // The interval tests compare n against multiples of d; a last-bit misjudgement near a
    // boundary only moves |r| a hair past it, where the approximation still holds.
    let big = n > TAN_3PI_8 * d;
    let mid = n > ATAN_MID * d;
    let num = if big {
        -d
    } else if mid {
        n - d
    } else {
        n
    };
    let den = if big {
        n
    } else if mid {
        n + d
    } else {
        d
    };
    let base = if big {
        FRAC_PI_2
    } else if mid {
        FRAC_PI_4
    } else {
        0.0
    };
    let lo = if big {
        PI_2_LO
    } else if mid {
        0.5 * PI_2_LO
    } else {
        0.0
    };
    let r = num / den;
    let z = r * r;
    let p = poly5::<F>(z, &ATAN_P);
    let q = monic5::<F>(z, &ATAN_Q);
    (base, mla::<F>(r * z, p / q, r) + lo)
}

/// `c[0] + c[1] x + ... + c[4] x^4`.
#[inline(always)]
fn poly5<const F: bool>(x: f64, c: &[f64; 5]) -> f64 {
    let x2 = x * x;
    let a = mla::<F>(c[1], x, c[0]);
    let b = mla::<F>(c[3], x, c[2]);
    mla::<F>(x2, mla::<F>(x2, c[4], b), a)
}

/// `c[0] + c[1] x + ... + c[4] x^4 + x^5`.
#[inline(always)]
fn monic5<const F: bool>(x: f64, c: &[f64; 5]) -> f64 {
    let x2 = x * x;
    let a = mla::<F>(c[1], x, c[0]);
    let b = mla::<F>(c[3], x, c[2]);
    let e = c[4] + x;
    mla::<F>(x2, mla::<F>(x2, e, b), a)
}

#[inline(always)]
fn with_sign_of(y: f64, x: f64) -> f64 {
    f64::from_bits(y.to_bits() | (x.to_bits() & SIGN))
}

#[inline(always)]
pub(super) fn atan_lane<const F: bool>(x: f64) -> f64 {
    // Tiny and subnormal |x| give r = x and z = 0 or a tiny z, so atan x = x comes out of the
    // arithmetic, signed zeros included; inf gives r = -0, so pi/2; nan stays nan.
    with_sign_of(atan_frac::<F>(x.abs(), 1.0), x)
}

#[inline(always)]
pub(super) fn asin_lane<const F: bool>(x: f64) -> f64 {
    let a = x.abs();
    // (1 - a)(1 + a): 1 - a is exact from a = 1/2 on, so the cosine keeps its relative accuracy
    // near |x| = 1 (1 - a * a would cancel); it is 0 at |x| = 1 (pi/2) and negative, so nan,
    // beyond.
    let c = ((1.0 - a) * (1.0 + a)).sqrt();
    with_sign_of(atan_frac::<F>(a, c), x)
}

#[inline(always)]
pub(super) fn acos_lane<const F: bool>(x: f64) -> f64 {
    // The angle whose cosine is |x| and sine sqrt((1 - |x|)(1 + |x|)), mirrored to pi - angle
    // below 0: one root, where 2 atan(sqrt(1 - x) / sqrt(1 + x)) took two. At x = -1 the angle
    // is 0 (pi), at 1 it is 0, at +-0 pi/2; beyond [-1, 1] the root is nan.
    let a = x.abs();
    let (base, tail) = atan_frac_parts::<F>(((1.0 - a) * (1.0 + a)).sqrt(), a);
    if x < 0.0 {
        pi_minus(base, tail)
    } else {
        base + tail
    }
}

/// `atan2(y, x)` without fused multiply-adds (see [`super::Binary`]): the angle of (|x|, |y|)
/// from [`atan_frac`], mirrored to pi - angle for a negative (or -0) x and signed as y.
#[inline(always)]
pub(super) fn atan2_lane(y: f64, x: f64) -> f64 {
    let (ay, ax) = (y.abs(), x.abs());
    // Scaled by powers of two (exactly) so that n + d cannot overflow and the interval tests
    // are not misjudged among subnormals; both infinite is the direction (1, 1).
    let top = if ay > ax { ay } else { ax };
    let scale = if top > 1e300 {
        2f64.powi(-8)
    } else if top < 1e-290 {
        2f64.powi(900)
    } else {
        1.0
    };
    let both_inf = ay == f64::INFINITY && ax == f64::INFINITY;
    let (n, d) = if both_inf { (1.0, 1.0) } else { (ay * scale, ax * scale) };
    let (base, tail) = atan_frac_parts::<false>(n, d);
    // y = 0 (0/0 included) is angle 0, x = 0 is pi/2 exactly.
    let (base, tail) = if ay == 0.0 { (0.0, 0.0) } else { (base, tail) };
    let angle = if ax == 0.0 && ay != 0.0 { FRAC_PI_2 } else { base + tail };
    let mirrored = pi_minus(base, tail);
    let angle = if x.is_sign_negative() && (ax != 0.0 || ay == 0.0) { mirrored } else { angle };
    let angle = with_sign_of(angle, y);
    if x.is_nan() || y.is_nan() {
        x + y
    } else {
        angle
    }
}

#[inline(always)]
pub(super) fn atan_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    map(x, out, atan_lane::<F>);
}
#[inline(always)]
pub(super) fn asin_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    map(x, out, asin_lane::<F>);
}
#[inline(always)]
pub(super) fn acos_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    map(x, out, acos_lane::<F>);
}
