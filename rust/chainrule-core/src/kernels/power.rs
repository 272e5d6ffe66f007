//! The general power `a ** b`: `exp(b log a)` with the logarithm carried as a double-double, so
//! that the product `b log a` (up to 708 in magnitude) keeps about 2^-64 relative accuracy and
//! the exponential of it rounds once; constant integer and half-integer exponents never get
//! here (the compiler lowers them to products and square roots).
//!
//! The vector lane takes a positive normal finite base and a result in `[e^-708, e^708]`; every
//! other lane (zero, negative, subnormal, infinite or NaN base, NaN or infinite exponent,
//! overflow, underflow, subnormal results) comes out NaN and is patched with libm's `pow` after
//! the loop, which gives C's special cases exactly (`pow(x, 0) = 1` for NaN `x`, `pow(1, y) = 1`,
//! negative bases with integer exponents, signed zeros). A finite positive result is never NaN,
//! so the patch needs no second flag: it looks for NaN in the output.
//!
//! `log a = k ln2 + 2 atanh(s)` with `a = 2^k m`, `m` in `[sqrt(1/2), sqrt(2))`, `s = (m-1)/(m+1)`
//! as a double-double and `2 atanh(s) = 2s + s^3 (2/3 + z t(z))`, `z = s^2 <= 0.0295`; `t` is the
//! atanh series' own (Taylor) coefficients to `z^9`, whose truncation is below 2^-65 relative.
//! `s^3`, `2/3` and the sums into `k ln2 + 2s` are double-double; only `z t(z)` (about 1% of
//! the `s^3` term) is plain double. The exponential is [`exp_reduce`]'s, with the low part of
//! `b log a` folded into its rounding correction.

use super::loops::{Lane, Operand};
use super::*;

/// `2 atanh(s) = 2s + s^3 (2/3 + z t(z))`: `t` has the series' coefficients `2/(2j + 5)`.
const ATANH_T: [f64; 10] =
    [2.0 / 5.0, 2.0 / 7.0, 2.0 / 9.0, 2.0 / 11.0, 2.0 / 13.0, 2.0 / 15.0, 2.0 / 17.0, 2.0 / 19.0, 2.0 / 21.0, 2.0 / 23.0];
/// 2/3 as a double-double: `TWO_THIRDS + TWO_THIRDS_LO` (the low part is `1 / (3 * 2^53)`).
const TWO_THIRDS: f64 = 2.0 / 3.0;
const TWO_THIRDS_LO: f64 = 3.700_743_415_417_188e-17;

/// `a + b = s + e` exactly.
#[inline(always)]
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let v = s - a;
    (s, (a - (s - v)) + (b - v))
}

/// `a + b = s + e` exactly, for `|a| >= |b|` (or `a` zero).
#[inline(always)]
fn fast_two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    (s, b - (s - a))
}

/// `a * b = p + e` exactly: with FMA one fused multiply-add, else Dekker's splitting (valid
/// while `|a|, |b| < 2^996`; beyond that the lane's result is NaN and patched).
#[inline(always)]
fn two_prod<const F: bool>(a: f64, b: f64) -> (f64, f64) {
    let p = a * b;
    if F {
        (p, a.mul_add(b, -p))
    } else {
        let split = |v: f64| {
            let c = 134_217_729.0 * v;
            let h = c - (c - v);
            (h, v - h)
        };
        let ((ah, al), (bh, bl)) = (split(a), split(b));
        (p, ((ah * bh - p) + ah * bl + al * bh) + al * bl)
    }
}

/// `log x` as a double-double `(hi, lo)` for a positive normal finite `x` (garbage otherwise).
#[inline(always)]
fn log_dd<const F: bool>(x: f64) -> (f64, f64) {
    // As in `log_core`: the exponent field rounded so that m lands in [sqrt(1/2), sqrt(2)).
    const OFF: u64 = 0x3fe6_a09e_667f_3bcd;
    let v = x.to_bits().wrapping_sub(OFF).wrapping_add(2047 << 52);
    let k = f64::from_bits((v >> 52) | 0x4330_0000_0000_0000) - (4_503_599_627_370_496.0 + 2047.0);
    let m = f64::from_bits((v & MANT) + OFF);
    // f is exact (Sterbenz); m + 1 is not (m has ulp 2^-53 below 1), so it is a pair.
    let f = m - 1.0;
    let (dh, dl) = two_sum(m, 1.0);
    let sh = f / dh;
    let (p, pe) = two_prod::<F>(sh, dh);
    let sl = (((f - p) - pe) - sh * dl) / dh;
    // s^2 and s^3 as pairs: the s^3 term is up to 1% of the result, so its low part counts.
    let (qh, ql) = two_prod::<F>(sh, sh);
    let ql = ql + 2.0 * sh * sl;
    let (ch, cl) = two_prod::<F>(qh, sh);
    let cl = cl + (qh * sl + ql * sh);
    let zt = qh * poly10::<F>(qh, &ATANH_T);
    let (ih, il) = fast_two_sum(TWO_THIRDS, zt);
    let il = il + TWO_THIRDS_LO;
    let (th, tl) = two_prod::<F>(ch, ih);
    let tl = tl + (ch * il + cl * ih);
    // k * LN2_HI is exact (k has at most 11 bits, LN2_HI 29); the big terms are summed as
    // pairs, the small ones (each below an ulp of the result) in one plain sum.
    let (a, ae) = two_sum(k * LN2_HI, 2.0 * sh);
    let (b, be) = two_sum(a, th);
    let lo = ae + be + (tl + 2.0 * sl + k * LN2_LO);
    fast_two_sum(b, lo)
}

/// `x ** 0.5` as C's `pow` gives it: the square root, but `+0` at `-0` and `+inf` at `-inf`
/// (where `sqrt` gives `-0` and NaN). The compiler leaves `x ** 0.5` to this kernel and builds
/// the other half-integer powers from it.
#[inline(always)]
pub(super) fn half_power(x: f64) -> f64 {
    if x == f64::NEG_INFINITY {
        f64::INFINITY
    } else {
        // Adding +0 turns -0 into +0 and changes nothing else.
        x.sqrt() + 0.0
    }
}

/// One lane: `x ** y` for a positive normal finite `x` with a normal result, else NaN (for
/// the patch); [`half_power`] for `y = 0.5` whatever the operands came as, so that a chunk of
/// exponents and a single one agree.
#[inline(always)]
pub(super) fn pow_lane<const F: bool>(x: f64, y: f64) -> f64 {
    let (lh, ll) = log_dd::<F>(x);
    let (wh, wl) = two_prod::<F>(lh, y);
    let wl = mla::<F>(ll, y, wl);
    let ok = (f64::MIN_POSITIVE..f64::INFINITY).contains(&x) && wh.abs() <= 708.0;
    // exp(wh + wl): w = n ln2 + r with n * LN2_HI exact and the rest of r, with wl, kept as
    // r + c; as `exp_reduce`, expm1(r + c) ~ expm1(r) + c (1 + r).
    let n = mla::<F>(wh, LOG2E, SHIFT) - SHIFT;
    let rh = mla::<F>(-n, LN2_HI, wh);
    let (r0, e0) = two_sum(rh, wl);
    let (r, e1) = two_sum(r0, -(n * LN2_LO));
    let c = e0 + e1;
    let h = mla::<F>(r, poly10::<F>(r, &EXP_Q), 0.5);
    let p = r + mla::<F>(r * r, h, mla::<F>(c, r, c));
    let v = scale_1p::<F>(n, p);
    if y == 0.5 {
        half_power(x)
    } else if ok {
        v
    } else {
        f64::NAN
    }
}

/// `x ** y` for one pair: the lane, or libm where the lane gives way. Bit for bit what the
/// slice kernel gives at any position.
#[inline(always)]
pub(super) fn pow_one<const F: bool>(x: f64, y: f64) -> f64 {
    let v = pow_lane::<F>(x, y);
    if v.is_nan() {
        x.powf(y)
    } else {
        v
    }
}

/// `out[i] = a[i] ** b[i]`, each operand a slice or one value for every lane; the ragged tail
/// goes through the same lane code in a padded block (a base and exponent of 1 there).
#[inline(always)]
pub(super) fn pow_body<const F: bool, A: Lane, B: Lane>(a: A, b: B, out: &mut [f64]) {
    let n = out.len();
    let (a, b) = (a.fit(n), b.fit(n));
    let body = n - n % W;
    let (ob, ot) = out.split_at_mut(body);
    let mut any = false;
    for (k, o) in ob.chunks_exact_mut(W).enumerate() {
        let (xa, xb) = (a.block(k * W), b.block(k * W));
        for j in 0..W {
            let v = pow_lane::<F>(xa[j], xb[j]);
            o[j] = v;
            any |= v.is_nan();
        }
    }
    if !ot.is_empty() {
        let (mut xa, mut xb, mut o) = ([1.0; W], [1.0; W], [0.0; W]);
        for j in 0..ot.len() {
            (xa[j], xb[j]) = (a.at(body + j), b.at(body + j));
        }
        for j in 0..W {
            o[j] = pow_lane::<F>(xa[j], xb[j]);
            any |= o[j].is_nan();
        }
        ot.copy_from_slice(&o[..ot.len()]);
    }
    if any {
        for (i, o) in out.iter_mut().enumerate() {
            if o.is_nan() {
                *o = a.at(i).powf(b.at(i));
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Lane;
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn avx2<A: Lane, B: Lane>(a: A, b: B, out: &mut [f64]) {
        super::pow_body::<true, A, B>(a, b, out)
    }
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) fn avx512<A: Lane, B: Lane>(a: A, b: B, out: &mut [f64]) {
        super::pow_body::<true, A, B>(a, b, out)
    }
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn one(x: f64, y: f64) -> f64 {
        super::pow_one::<true>(x, y)
    }
}

/// [`pow_body`] at `level`, which the caller has checked the CPU supports.
#[inline(always)]
fn pow_at<A: Lane, B: Lane>(level: Level, a: A, b: B, out: &mut [f64]) {
    match level {
        Level::Baseline => pow_body::<false, A, B>(a, b, out),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller checked AVX2 and FMA.
        Level::Avx2Fma => unsafe { x86::avx2(a, b, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller checked AVX-512F, AVX2 and FMA.
        Level::Avx512 => unsafe { x86::avx512(a, b, out) },
        #[cfg(target_arch = "aarch64")]
        Level::Neon => pow_body::<true, A, B>(a, b, out),
        #[allow(unreachable_patterns)]
        _ => unreachable!("level checked by is_supported"),
    }
}

/// `a ** b` over a chunk, each operand a chunk or one value (both single is one value spread).
pub(crate) fn pow_operands(level: Level, a: Operand, b: Operand, out: &mut [f64]) {
    match (a, b) {
        (Operand::Chunk(a), Operand::Chunk(b)) => pow_at(level, a, b, out),
        (Operand::Chunk(a), Operand::Scalar(b)) => pow_at(level, a, b, out),
        (Operand::Scalar(a), Operand::Chunk(b)) => pow_at(level, a, b, out),
        (Operand::Scalar(a), Operand::Scalar(b)) => out.fill(pow_one_at_level(level, a, b)),
    }
}

/// [`pow_one`] at `level`, which the caller has checked the CPU supports.
pub(crate) fn pow_one_at_level(level: Level, x: f64, y: f64) -> f64 {
    match level {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller checked AVX2 and FMA (both levels have them).
        Level::Avx2Fma | Level::Avx512 => unsafe { x86::one(x, y) },
        #[cfg(target_arch = "aarch64")]
        Level::Neon => pow_one::<true>(x, y),
        _ => pow_one::<false>(x, y),
    }
}
