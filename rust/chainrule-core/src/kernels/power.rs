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
//! Two bodies share that contract and the patch: at AVX-512 an explicit one (module `avx512`:
//! a table in registers, no division; 2.5 ns a value against the portable lane's 4.5 at the
//! same level, best of 200 chunks, interleaved), elsewhere the portable lane below. Each level
//! gives one value the same bits at any position and as a single value; the levels agree
//! within the ulp bound, not bit for bit.
//!
//! The portable lane: `log a = k ln2 + 2 atanh(s)` with `a = 2^k m`, `m` in `[sqrt(1/2), sqrt(2))`, `s = (m-1)/(m+1)`
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
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn one(x: f64, y: f64) -> f64 {
        super::pow_one::<true>(x, y)
    }
}

/// The AVX-512 body, written with intrinsics: no division and a table in registers, where the
/// portable lane (compiled for AVX-512 by LLVM) divides twice per value for `s = (m-1)/(m+1)`.
///
/// `log x = k ln2 + log c + log1p(r)`: `x = 2^k z` with `z` in `[0.742, 1.484)` found from the
/// bits (`OFF` puts 1 in the middle of a slice, whose `c` is 1: no cancellation near `x = 1`),
/// `c` the centre of the 1/32-octave slice holding `z`, `1/c` and `-log(1/c)` (a double-double)
/// read by two `permutex2var` and a blend from 32-entry tables held in registers. `r = z/c - 1`
/// is the exact pair `(z (1/c) - 1) + fma error` (the product lies in `[0.5, 2]`, so the
/// subtraction is exact), `|r| <= 2^-6`, and `log1p(r) = r - r^2/2 + r^3 P(r)` with the series'
/// own coefficients to `r^10` (truncation below `2^-63.5` relative). `k ln2 + log c + r - r^2/2`
/// is summed as pairs; the rest is below an ulp of the result. The exponential is the portable
/// lane's (`exp_reduce`'s polynomial, the low part of `y log x` in its correction), scaled by
/// `scalef`. Lanes the portable lane would patch come out NaN and are patched the same way.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Lane, EXP_Q, LN2_HI, LN2_LO, LOG2E, SHIFT, W};
    use std::arch::x86_64::*;

    const OFF: i64 = 0x3fe7_c000_0000_0000;
    /// `1/c` per slice (`c` = 1 for slice 16, which holds 1).
    const INVC: [u64; 32] = [
        0x3ff5555555555555,
        0x3ff4e5e0a72f0539,
        0x3ff47ae147ae147b,
        0x3ff4141414141414,
        0x3ff3b13b13b13b14,
        0x3ff3521cfb2b78c1,
        0x3ff2f684bda12f68,
        0x3ff29e4129e4129e,
        0x3ff2492492492492,
        0x3ff1f7047dc11f70,
        0x3ff1a7b9611a7b96,
        0x3ff15b1e5f75270d,
        0x3ff1111111111111,
        0x3ff0c9714fbcda3b,
        0x3ff0842108421084,
        0x3ff0410410410410,
        0x3ff0000000000000,
        0x3fef07c1f07c1f08,
        0x3fee1e1e1e1e1e1e,
        0x3fed41d41d41d41d,
        0x3fec71c71c71c71c,
        0x3febacf914c1bad0,
        0x3feaf286bca1af28,
        0x3fea41a41a41a41a,
        0x3fe999999999999a,
        0x3fe8f9c18f9c18fa,
        0x3fe8618618618618,
        0x3fe7d05f417d05f4,
        0x3fe745d1745d1746,
        0x3fe6c16c16c16c17,
        0x3fe642c8590b2164,
        0x3fe5c9882b931057,
    ];
    /// `-log(INVC[i])` rounded (mpmath at 200 bits) ...
    const LOGC_HI: [u64; 32] = [
        0xbfd269621134db91,
        0xbfd1178e8227e47a,
        0xbfcf991c6cb3b37a,
        0xbfcd1037f2655e7b,
        0xbfca93ed3c8ad9e5,
        0xbfc823c16551a3c0,
        0xbfc5bf406b543db0,
        0xbfc365fcb0159014,
        0xbfc1178e8227e47a,
        0xbfbda7276384469e,
        0xbfb9335e5d594988,
        0xbfb4d3115d207eac,
        0xbfb08598b59e3a06,
        0xbfa894aa149fb34b,
        0xbfa0415d89e74440,
        0xbf90205658935837,
        0x0000000000000000,
        0x3f9f829b0e7832f8,
        0x3faf0a30c01162a8,
        0x3fb6f0d28ae56b4e,
        0x3fbe27076e2af2ea,
        0x3fc29552f81ff521,
        0x3fc5ff3070a793d6,
        0x3fc9525a9cf456b6,
        0x3fcc8ff7c79a9a20,
        0x3fcfb9186d5e3e29,
        0x3fd1675cababa60f,
        0x3fd2e8e2bae11d31,
        0x3fd4618bc21c5ec2,
        0x3fd5d1bdbf5809ca,
        0x3fd739d7f6bbd007,
        0x3fd89a3386c1425b,
    ];
    /// ... and the rest of it.
    const LOGC_LO: [u64; 32] = [
        0xbc7e0efadd9db02a,
        0xbc7b8ce2d07f1cb7,
        0xbc5ecca0cdf30143,
        0x3c53f3adb7b71cbc,
        0xbc6bcafa9de97202,
        0xbc66dcd318f4187e,
        0x3c21f5b44c0df7f7,
        0xbc6bea08d2dca256,
        0x3c50e63a5f01c693,
        0xbc5401fa71733017,
        0x3c5478a85704ccb7,
        0xbc3da7d0b1e10b2f,
        0x3c5dd7009902bf32,
        0x3c42ba0b44cfaee5,
        0xbc4c05cf1d753621,
        0xbc327c8e8416e717,
        0x0000000000000000,
        0x3c333e3f04f1ef25,
        0x3c485f325c5bbacd,
        0xbc420db323097324,
        0xbc361578001e015a,
        0x3c6301771c407dc0,
        0xbc5bc60efafc6f6c,
        0xbc626fb3e2b1d1da,
        0xbc64f689f8434011,
        0x3c6355519b0de535,
        0x3c2ce63eab883727,
        0xbc61e99b72bd7bf2,
        0xbc27a42642661c62,
        0xbc77dc9c7c23801f,
        0x3c5ce24c53fad3f0,
        0x3c62d38c40881e0b,
    ];
    /// `P(r)`: the coefficient of `r^j` is `(-1)^j / (j + 3)`.
    const LOG_P: [f64; 8] = [1.0 / 3.0, -1.0 / 4.0, 1.0 / 5.0, -1.0 / 6.0, 1.0 / 7.0, -1.0 / 8.0, 1.0 / 9.0, -1.0 / 10.0];

    /// A 32-entry table as four registers.
    struct Table([__m512d; 4]);

    impl Table {
        #[target_feature(enable = "avx512f")]
        fn new(bits: &[u64; 32]) -> Table {
            let v: [f64; 32] = bits.map(f64::from_bits);
            // SAFETY: each load reads 8 of the 32 values.
            Table(std::array::from_fn(|q| unsafe { _mm512_loadu_pd(v.as_ptr().add(8 * q)) }))
        }

        /// Entry `i & 31` of each lane; `upper` is bit 4 of `i`.
        #[target_feature(enable = "avx512f")]
        #[inline]
        fn get(&self, i: __m512i, upper: __mmask8) -> __m512d {
            let lo = _mm512_permutex2var_pd(self.0[0], i, self.0[1]);
            let hi = _mm512_permutex2var_pd(self.0[2], i, self.0[3]);
            _mm512_mask_blend_pd(upper, lo, hi)
        }
    }

    struct Tables {
        invc: Table,
        logc_hi: Table,
        logc_lo: Table,
    }

    #[target_feature(enable = "avx512f")]
    fn tables() -> Tables {
        Tables { invc: Table::new(&INVC), logc_hi: Table::new(&LOGC_HI), logc_lo: Table::new(&LOGC_LO) }
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    fn set(v: f64) -> __m512d {
        _mm512_set1_pd(v)
    }

    /// `a + b = s + e` exactly, for `|a| >= |b|` or `a` zero.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn fast_two_sum(a: __m512d, b: __m512d) -> (__m512d, __m512d) {
        let s = _mm512_add_pd(a, b);
        (s, _mm512_sub_pd(b, _mm512_sub_pd(s, a)))
    }

    /// `c[0] + c[1] x + ... + c[7] x^7` with `x2 = x * x`, in Estrin's scheme: the two
    /// polynomials are most of a lane's dependency chain, and Horner's made it latency-bound.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn poly8(x: __m512d, x2: __m512d, c: &[f64; 8]) -> __m512d {
        let pair = |j: usize| _mm512_fmadd_pd(set(c[j + 1]), x, set(c[j]));
        let lo = _mm512_fmadd_pd(x2, pair(2), pair(0));
        let hi = _mm512_fmadd_pd(x2, pair(6), pair(4));
        _mm512_fmadd_pd(_mm512_mul_pd(x2, x2), hi, lo)
    }

    /// `c[0] + c[1] x + ... + c[9] x^9`, as the portable lane's `poly10`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn poly10(x: __m512d, c: &[f64; 10]) -> __m512d {
        let x2 = _mm512_mul_pd(x, x);
        let x4 = _mm512_mul_pd(x2, x2);
        let pair = |j: usize| _mm512_fmadd_pd(set(c[j + 1]), x, set(c[j]));
        let lo = _mm512_fmadd_pd(x4, _mm512_fmadd_pd(x2, pair(6), pair(4)), _mm512_fmadd_pd(x2, pair(2), pair(0)));
        _mm512_fmadd_pd(_mm512_mul_pd(x4, x4), pair(8), lo)
    }

    /// `x ** y` for eight lanes: the value for a positive normal `x` with a result in
    /// `[e^-708, e^708]`, C's `sqrt` rule for `y = 0.5` (as [`super::half_power`]), else NaN.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn pow8(x: __m512d, y: __m512d, t: &Tables) -> __m512d {
        let ix = _mm512_castpd_si512(x);
        let tmp = _mm512_sub_epi64(ix, _mm512_set1_epi64(OFF));
        let ki = _mm512_srai_epi64::<52>(tmp);
        // k as a double through the shifter: SHIFT + k has k in its low mantissa bits.
        let k = _mm512_sub_pd(_mm512_castsi512_pd(_mm512_add_epi64(ki, _mm512_set1_epi64(SHIFT.to_bits() as i64))), set(SHIFT));
        let i = _mm512_srli_epi64::<47>(tmp);
        let upper = _mm512_test_epi64_mask(i, _mm512_set1_epi64(16));
        let z = _mm512_castsi512_pd(_mm512_sub_epi64(ix, _mm512_slli_epi64::<52>(ki)));
        let invc = t.invc.get(i, upper);
        let p = _mm512_mul_pd(z, invc);
        let rl = _mm512_fmsub_pd(z, invc, p);
        let rh = _mm512_sub_pd(p, set(1.0));
        let q = _mm512_mul_pd(rh, rh);
        let ql = _mm512_fmsub_pd(rh, rh, q);
        // Each sum's first term is the larger, or zero: |k ln2| >= 0.69 > |log c| unless k = 0;
        // |log c| > 2^-6.5 >= |r| except in slice 16, where log c = 0; r^2/2 < |log c + r|.
        let (s1, e1) = fast_two_sum(_mm512_mul_pd(k, set(LN2_HI)), t.logc_hi.get(i, upper));
        let (s2, e2) = fast_two_sum(s1, rh);
        let (s3, e3) = fast_two_sum(s2, _mm512_mul_pd(q, set(-0.5)));
        // log1p(rh + rl) = log1p(rh) + rl (1 - rh + rh^2) + O(rl rh^3): the rh^2 term is 2^-60
        // of the result near slice edges.
        let tail = _mm512_fmadd_pd(_mm512_mul_pd(q, rh), poly8(rh, q, &LOG_P), _mm512_fmadd_pd(rl, _mm512_sub_pd(q, rh), rl));
        let small = _mm512_fmadd_pd(k, set(LN2_LO), _mm512_fmadd_pd(ql, set(-0.5), t.logc_lo.get(i, upper)));
        let lo = _mm512_add_pd(_mm512_add_pd(_mm512_add_pd(e1, e2), e3), _mm512_add_pd(small, tail));
        let (lh, ll) = fast_two_sum(s3, lo);
        let wh = _mm512_mul_pd(lh, y);
        let wl = _mm512_fmadd_pd(ll, y, _mm512_fmsub_pd(lh, y, wh));
        // exp(wh + wl) with the portable lane's polynomial: w = n ln2 + r, where wh - n LN2_HI is
        // exact and the small rest (wl - n LN2_LO, 2^-40 at most) is added in one rounding, a
        // relative error of 2^-54 |r| (a sixth of an ulp) where a pair cost seven operations.
        let n = _mm512_sub_pd(_mm512_fmadd_pd(wh, set(LOG2E), set(SHIFT)), set(SHIFT));
        let r = _mm512_add_pd(_mm512_fnmadd_pd(n, set(LN2_HI), wh), _mm512_fnmadd_pd(n, set(LN2_LO), wl));
        let h = _mm512_fmadd_pd(r, poly10(r, &EXP_Q), set(0.5));
        let p = _mm512_fmadd_pd(_mm512_mul_pd(r, r), h, r);
        let v = _mm512_scalef_pd(_mm512_add_pd(set(1.0), p), n);
        // Positive, normal and finite: the bits less the smallest normal's, unsigned, below the
        // span up to infinity.
        let above = _mm512_sub_epi64(ix, _mm512_set1_epi64(f64::MIN_POSITIVE.to_bits() as i64));
        let normal = _mm512_cmplt_epu64_mask(above, _mm512_set1_epi64((f64::INFINITY.to_bits() - f64::MIN_POSITIVE.to_bits()) as i64));
        let ok = normal & _mm512_cmp_pd_mask::<_CMP_LE_OQ>(_mm512_abs_pd(wh), set(708.0));
        let v = _mm512_mask_mov_pd(set(f64::NAN), ok, v);
        let half = _mm512_cmp_pd_mask::<_CMP_EQ_OQ>(y, set(0.5));
        if half == 0 {
            return v;
        }
        // y = 0.5: sqrt(x) + 0 (-0 -> +0), +inf at -inf; only when some lane has it (a square
        // root is the price of a third of the other lanes' work).
        let root = _mm512_add_pd(_mm512_sqrt_pd(x), set(0.0));
        let root = _mm512_mask_mov_pd(root, _mm512_cmp_pd_mask::<_CMP_EQ_OQ>(x, set(f64::NEG_INFINITY)), set(f64::INFINITY));
        _mm512_mask_mov_pd(v, half, root)
    }

    /// `out[i] = a[i] ** b[i]`; the ragged tail goes through the same lanes in a padded block,
    /// then NaN lanes are patched with libm, as [`super::pow_body`].
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) fn body<A: Lane, B: Lane>(a: A, b: B, out: &mut [f64]) {
        let n = out.len();
        let (a, b) = (a.fit(n), b.fit(n));
        let t = tables();
        let mut nan: __mmask8 = 0;
        let mut lanes = |xa: [f64; W], xb: [f64; W], o: &mut [f64]| {
            // SAFETY: the blocks are eight values each.
            let (x, y) = unsafe { (_mm512_loadu_pd(xa.as_ptr()), _mm512_loadu_pd(xb.as_ptr())) };
            let v = pow8(x, y, &t);
            nan |= _mm512_cmp_pd_mask::<_CMP_UNORD_Q>(v, v);
            // SAFETY: `o` holds the mask's lanes (eight, or the tail's `o.len() < 8`).
            unsafe { _mm512_mask_storeu_pd(o.as_mut_ptr(), (1u16 << o.len()).wrapping_sub(1) as __mmask8, v) };
        };
        let body = n - n % W;
        let (ob, ot) = out.split_at_mut(body);
        for (k, o) in ob.chunks_exact_mut(W).enumerate() {
            lanes(a.block(k * W), b.block(k * W), o);
        }
        if !ot.is_empty() {
            let (mut xa, mut xb) = ([1.0; W], [1.0; W]);
            for j in 0..ot.len() {
                (xa[j], xb[j]) = (a.at(body + j), b.at(body + j));
            }
            lanes(xa, xb, ot);
        }
        if nan != 0 {
            for (i, o) in out.iter_mut().enumerate() {
                if o.is_nan() {
                    *o = a.at(i).powf(b.at(i));
                }
            }
        }
    }

    /// [`body`] for one pair, bit for bit.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) fn one(x: f64, y: f64) -> f64 {
        let v = _mm512_cvtsd_f64(pow8(set(x), set(y), &tables()));
        if v.is_nan() {
            x.powf(y)
        } else {
            v
        }
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
        Level::Avx512 => unsafe { avx512::body(a, b, out) },
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
        // SAFETY: the caller checked AVX2 and FMA.
        Level::Avx2Fma => unsafe { x86::one(x, y) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller checked AVX-512F, AVX2 and FMA.
        Level::Avx512 => unsafe { avx512::one(x, y) },
        #[cfg(target_arch = "aarch64")]
        Level::Neon => pow_one::<true>(x, y),
        _ => pow_one::<false>(x, y),
    }
}
