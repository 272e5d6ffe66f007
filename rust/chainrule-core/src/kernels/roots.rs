//! Roots: `cbrt` from a bit-trick seed refined by a polynomial and one Newton step (FreeBSD's
//! s_cbrt.c scheme, made branchless: subnormals are scaled into the normal range, zeros,
//! infinities and NaN selected at the end).

use super::*;

/// `cbrt(t^3 r) ~ t P(r)` near `r = 1`: takes the 5-bit seed to 23 bits.
const CBRT_P: [f64; 5] = [
    f64::from_bits(0x3ffe_03e6_0f61_e692),
    f64::from_bits(0xbffe_28e0_92f0_2420),
    f64::from_bits(0x3ff9_f160_4a49_d6c2),
    f64::from_bits(0xbfe8_44cb_bee7_51d9),
    f64::from_bits(0x3fc2_b000_d4e4_edd7),
];

#[inline(always)]
pub(super) fn cbrt_lane<const F: bool>(x: f64) -> f64 {
    let ax = x.abs();
    // Seed: the exponent divided by 3 in the high word (B1, B2 remove the bias, tuned so the
    // seed's error is at most 5 bits). Subnormals are scaled by 2^54 first; the division by 3
    // is a 32-bit multiply-high, which vectorises (a 64-bit division by 3 does not).
    let sub = ax < f64::MIN_POSITIVE;
    let us = if sub { ax * 18_014_398_509_481_984.0 } else { ax };
    let high = us.to_bits() >> 32;
    let third = (high * 0xaaaa_aaab) >> 33;
    let bias: u64 = if sub { 696_219_795 } else { 715_094_163 };
    let t = f64::from_bits((third + bias) << 32);
    let r = (t * t) * (t / ax);
    let p = &CBRT_P;
    let t = t * (mla::<F>(r, mla::<F>(r, p[2], p[1]), p[0]) + ((r * r) * r) * mla::<F>(r, p[4], p[3]));
    // Rounded away from zero to 23 bits, so that t * t is exact and t is above the root.
    let t = f64::from_bits((t.to_bits() + 0x8000_0000) & 0xffff_ffff_c000_0000);
    // One Newton step (in Halley's form) to 53 bits; the error is below 0.67 ulp.
    let s = t * t;
    let r = ax / s;
    let w = t + t;
    let r = (r - t) / (w + r);
    let y = mla::<F>(t, r, t);
    let y = f64::from_bits(y.to_bits() | (x.to_bits() & SIGN));
    // cbrt(+-0) = +-0, cbrt(+-inf) = +-inf, NaN stays NaN: x itself.
    if ax == 0.0 || ax == f64::INFINITY || x.is_nan() {
        x
    } else {
        y
    }
}

#[inline(always)]
pub(super) fn cbrt_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    map(x, out, cbrt_lane::<F>);
}

/// `2^600` and `2^-600`: bring the larger operand of [`hypot_lane`] near 1 when its square
/// would overflow or lose bits to underflow.
const HYPOT_UP: f64 = f64::from_bits((1023 + 600) << 52);
const HYPOT_DOWN: f64 = f64::from_bits((1023 - 600) << 52);

/// `sqrt(x^2 + y^2)`: the larger magnitude is scaled by `2^-600` above `2^500` and by `2^600`
/// below `2^-500` (powers of two: exact), so neither square overflows nor a relevant one
/// underflows (a smaller square below `2^-1022` is `2^-800` of the larger). With FMA the sum
/// takes two roundings, else three; the square root halves their relative error: about an
/// ulp in all. Infinite beats NaN, as C's.
#[inline(always)]
pub(super) fn hypot_lane<const F: bool>(x: f64, y: f64) -> f64 {
    let (a, b) = (x.abs(), y.abs());
    let big = if a > b { a } else { b };
    let small = if a > b { b } else { a };
    let e = big.to_bits() >> 52;
    let down = e > 1023 + 500;
    let up = e < 1023 - 500;
    let s = if down {
        HYPOT_DOWN
    } else if up {
        HYPOT_UP
    } else {
        1.0
    };
    let undo = if down {
        HYPOT_UP
    } else if up {
        HYPOT_DOWN
    } else {
        1.0
    };
    let (bs, ss) = (big * s, small * s);
    let r = mla::<F>(bs, bs, ss * ss).sqrt() * undo;
    if a == f64::INFINITY || b == f64::INFINITY {
        f64::INFINITY
    } else {
        r
    }
}

/// [`hypot_lane`] over two operands, each a chunk or one value for every sample. A pure lane
/// function with no cross-lane step: the vector loop and its scalar remainder give the same
/// bits, so no padded tail is needed.
#[inline(always)]
pub(super) fn hypot_body<const F: bool, A: loops::Lane, B: loops::Lane>(a: A, b: B, out: &mut [f64]) {
    let n = out.len();
    let (a, b) = (a.fit(n), b.fit(n));
    for (i, o) in out.iter_mut().enumerate() {
        *o = hypot_lane::<F>(a.at(i), b.at(i));
    }
}
