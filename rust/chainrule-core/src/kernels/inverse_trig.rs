//! The inverse trigonometric family. `atan` and `atan2` from one arctangent core of a
//! non-negative fraction `n/d` (Cephes' reduction to `|r| <= 0.66` and its degree-4/5 rational
//! approximation, relative error 2.6e-18): one reduction division and the rational's.
//! `asin` and `acos` from one polynomial of degree 12 in `z` for `asin s = s + s z P(z)` on
//! `s <= 1/2`, beyond which `s = sqrt((1 - |x|)/2)` (fdlibm's reduction, with a polynomial in
//! place of its rational): one square root and no division, where `atan(x / sqrt(1 - x^2))`
//! took a root and two divisions (AVX-512: 0.85 against 1.39 ns a value, asin; 0.88 against
//! 1.51, acos). No lane needs patching: inf, nan, the poles and the signed zeros come out of
//! the same arithmetic.

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

/// `asin s = s + s z P(z)`, `z = s^2`, `0 <= z <= 1/4` (a Chebyshev fit in mpmath, relative
/// error 2^-57.4 in `asin s` with these rounded coefficients; ascending powers).
const ASIN_P: [f64; 13] = [
    0.16666666666666669,
    0.07499999999998433,
    0.04464285714635543,
    0.030381944138531247,
    0.02237217294214989,
    0.017352392720869973,
    0.013971212973552933,
    0.011479177415184906,
    0.01032281435018578,
    0.005457506718640358,
    0.01740087944269402,
    -0.014851887071247204,
    0.028757851367421566,
];

/// `ASIN_P` at `z` by Estrin's scheme.
#[inline(always)]
fn asin_poly<const F: bool>(z: f64) -> f64 {
    let c = &ASIN_P;
    let z2 = z * z;
    let z4 = z2 * z2;
    let q0 = mla::<F>(z2, mla::<F>(c[3], z, c[2]), mla::<F>(c[1], z, c[0]));
    let q1 = mla::<F>(z2, mla::<F>(c[7], z, c[6]), mla::<F>(c[5], z, c[4]));
    let q2 = mla::<F>(z2, mla::<F>(c[11], z, c[10]), mla::<F>(c[9], z, c[8]));
    let r0 = mla::<F>(z4, q1, q0);
    let r1 = mla::<F>(z4, c[12], q2);
    mla::<F>(z4 * z4, r1, r0)
}

/// The arcsine of `a = |x| <= 1` on a reduced argument, as `(big, s, p)` with
/// `asin s = s + s p`: for `a <= 1/2` `s = a`; beyond, `s = sqrt(z)` with `z = (1 - a)/2`
/// (exact) and `asin a = pi/2 - 2 asin s`. One root and no division; `a > 1` (inf included)
/// makes `z` negative, so `s` and everything after it nan.
#[inline(always)]
fn asin_reduced<const F: bool>(a: f64) -> (bool, f64, f64) {
    let big = a > 0.5;
    let z = if big { (1.0 - a) * 0.5 } else { a * a };
    let s = if big { z.sqrt() } else { a };
    (big, s, z * asin_poly::<F>(z))
}

/// `(hi + lo) - u - u p` for an exactly known `u` with `|u| <= hi` or `hi = 0`: `hi - u` is
/// carried exactly (Fast2Sum), so the result takes one rounding beyond the errors of `u p`.
/// Next to `|x| = 1/2` asin's `pi/2 - 2 asin s` cancels a bit, and rounding `hi - u` there
/// cost an ulp.
#[inline(always)]
fn minus_series<const F: bool>(hi: f64, lo: f64, u: f64, p: f64) -> f64 {
    let v = hi - u;
    let e = (hi - v) - u;
    v + mla::<F>(-u, p, e + lo)
}

#[inline(always)]
pub(super) fn asin_lane<const F: bool>(x: f64) -> f64 {
    let (big, s, p) = asin_reduced::<F>(x.abs());
    // Small: 0 - (-s) - (-s) p = s + s p, signed zeros kept by the sign copy.
    let (hi, lo, u) = if big { (FRAC_PI_2, PI_2_LO, 2.0 * s) } else { (0.0, 0.0, -s) };
    with_sign_of(minus_series::<F>(hi, lo, u, p), x)
}

#[inline(always)]
pub(super) fn acos_lane<const F: bool>(x: f64) -> f64 {
    let (big, s, p) = asin_reduced::<F>(x.abs());
    // acos x = pi/2 - asin x for |x| <= 1/2, 2 asin s above 1/2 and pi - 2 asin s below -1/2.
    let (hi, lo, u) = if !big {
        (FRAC_PI_2, PI_2_LO, x)
    } else if x > 0.0 {
        (0.0, 0.0, -2.0 * s)
    } else {
        (PI, 2.0 * PI_2_LO, 2.0 * s)
    };
    minus_series::<F>(hi, lo, u, p)
}

/// `atan2(y, x)`: the angle of (|x|, |y|) from [`atan_frac`], mirrored to pi - angle for a
/// negative (or -0) x and signed as y.
#[inline(always)]
pub(super) fn atan2_lane<const F: bool>(y: f64, x: f64) -> f64 {
    let (ay, ax) = (y.abs(), x.abs());
    // Scaled by powers of two (exactly) so that n + d cannot overflow and the interval tests
    // are not misjudged among subnormals.
    let top = if ay > ax { ay } else { ax };
    let scale = if top > 1e300 {
        2f64.powi(-8)
    } else if top < 1e-290 {
        2f64.powi(900)
    } else {
        1.0
    };
    // Both infinite is the direction (1, 1) and both zero the angle 0 (0/0 would be nan). Every
    // other pair comes out of the arithmetic exactly, signed zeros included: y = 0 gives r = 0,
    // so 0 or pi; x = 0 gives r = -0 in the top interval, so pi/2 + PI_2_LO, which rounds to
    // pi/2 mirrored or not. No selects for those cases (eight operations fewer a lane).
    let (n, d) = if ay == f64::INFINITY && ax == f64::INFINITY {
        (1.0, 1.0)
    } else if top == 0.0 {
        (0.0, 1.0)
    } else {
        (ay * scale, ax * scale)
    };
    let (base, tail) = atan_frac_parts::<F>(n, d);
    let angle = if x.is_sign_negative() { pi_minus(base, tail) } else { base + tail };
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
