//! Roots: `cbrt` from a bit-trick seed refined by a polynomial and one Newton step (FreeBSD's
//! s_cbrt.c scheme, made branchless: subnormals are scaled into the normal range, zeros,
//! infinities and NaN selected at the end). At the AVX-512 level [`cbrt512`] replaces its three
//! divisions by register tables and a Newton step (1.17 -> 0.85 ns a value).

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

/// The cube root's AVX-512 body, with no division (the generic lane divides three times:
/// 1.22 ns a value there). `|x| = 2^(3q + i) m`, `m` in `[1, 2)`, `i` in `{0, 1, 2}` (the
/// exponent divided by 3 as an integer multiply-high); `cbrt(2^i m) ~ 2^(i/3) cbrt(c_j)
/// (1 + r P(r))` with `j` the top four bits of `m`'s fraction, `r = m/c_j - 1` (`|r| <= 1/33`)
/// and `P` of degree 5 (within 2^-46), the tables held in registers. One Newton step, with
/// `z^3 - a` formed exactly and `1/(3 z^2)` from `rcp14` (2^-14 is enough: the step squares
/// the seed's error), lands within 2^-60 of the root before its one rounding: perfect cubes
/// come out exact. Zero, subnormal, infinite and NaN lanes are patched as the logarithms'.
#[cfg(target_arch = "x86_64")]
pub(super) mod cbrt512 {
    use super::log512::map8;
    use std::arch::x86_64::*;

    macro_rules! bits {
        ($($b:literal),* $(,)?) => { [$(f64::from_bits($b)),*] };
    }

    /// `1/c_j`, the reciprocal of the midpoint of `[1 + j/16, 1 + (j + 1)/16)`.
    const INVC: [f64; 16] = bits![
        0x3fef_07c1_f07c_1f08,
        0x3fed_41d4_1d41_d41d,
        0x3feb_acf9_14c1_bad0,
        0x3fea_41a4_1a41_a41a,
        0x3fe8_f9c1_8f9c_18fa,
        0x3fe7_d05f_417d_05f4,
        0x3fe6_c16c_16c1_6c17,
        0x3fe5_c988_2b93_1057,
        0x3fe4_e5e0_a72f_0539,
        0x3fe4_1414_1414_1414,
        0x3fe3_521c_fb2b_78c1,
        0x3fe2_9e41_29e4_129e,
        0x3fe1_f704_7dc1_1f70,
        0x3fe1_5b1e_5f75_270d,
        0x3fe0_c971_4fbc_da3b,
        0x3fe0_4104_1041_0410,
    ];
    /// `cbrt(c_j)`.
    const ROOT_C: [f64; 16] = bits![
        0x3ff0_2a3a_d2ef_6f48,
        0x3ff0_7c32_36b0_a73a,
        0x3ff0_cb18_b61a_d8cf,
        0x3ff1_1733_d663_73bd,
        0x3ff1_60bf_c12d_d091,
        0x3ff1_a7f0_eab8_483d,
        0x3ff1_ecf5_5daa_68a5,
        0x3ff2_2ff5_c2fb_2fd0,
        0x3ff2_7116_361a_baea,
        0x3ff2_b076_f131_c9d7,
        0x3ff2_ee34_da3b_4fe3,
        0x3ff3_2a69_f78d_f567,
        0x3ff3_652d_d0d7_1db1,
        0x3ff3_9e95_c060_5a66,
        0x3ff3_d6b5_379b_e10c,
        0x3ff4_0d9d_f94f_1be1,
    ];
    /// `2^(i/3)`, padded to a register.
    const ROOT_2I: [f64; 8] = bits![0x3ff0_0000_0000_0000, 0x3ff4_28a2_f98d_728b, 0x3ff9_65fe_a53d_6e3d, 0, 0, 0, 0, 0];
    /// `(cbrt(1 + r) - 1)/r` on `[-1/33, 1/33]` (Chebyshev nodes, mpmath).
    const P: [f64; 6] = bits![
        0x3fd5_5555_5555_75b8,
        0xbfbc_71c7_1c72_3311,
        0x3faf_9adc_ee8f_2ff7,
        0xbfa5_11e8_921f_4278,
        0x3f9e_edee_e58d_c069,
        0xbf98_0ec6_2ae8_a781,
    ];

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn table16(t: &[f64; 16], idx: __m512i) -> __m512d {
        // SAFETY: both loads read eight of the table's sixteen values.
        let (lo, hi) = unsafe { (_mm512_loadu_pd(t.as_ptr()), _mm512_loadu_pd(t.as_ptr().add(8))) };
        _mm512_permutex2var_pd(lo, idx, hi)
    }

    /// The root of positive normal lanes given by their bits.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn root(bits: __m512i) -> __m512d {
        let set = _mm512_set1_pd;
        let i64s = _mm512_set1_epi64;
        // n = e + 3 * 1023 with e the unbiased exponent; floor(n/3) = q + 1023 by a multiply-high
        // (exact for n < 2^16), i = n - 3 floor(n/3).
        let n = _mm512_add_epi64(_mm512_srli_epi64::<52>(bits), i64s(2046));
        let qb = _mm512_srli_epi64::<17>(_mm512_mul_epu32(n, i64s(43691)));
        let i = _mm512_sub_epi64(n, _mm512_add_epi64(qb, _mm512_add_epi64(qb, qb)));
        let mant = _mm512_and_si512(bits, i64s(((1u64 << 52) - 1) as i64));
        let m = _mm512_castsi512_pd(_mm512_or_si512(mant, i64s(1.0f64.to_bits() as i64)));
        // 2^i m, exactly, in [1, 8).
        let a = _mm512_castsi512_pd(_mm512_add_epi64(_mm512_castpd_si512(m), _mm512_slli_epi64::<52>(i)));
        let idx = _mm512_srli_epi64::<48>(bits);
        let r = _mm512_fmsub_pd(m, table16(&INVC, idx), set(1.0));
        // SAFETY: one register's worth of table.
        let s = _mm512_permutexvar_pd(i, unsafe { _mm512_loadu_pd(ROOT_2I.as_ptr()) });
        let st = _mm512_mul_pd(s, table16(&ROOT_C, idx));
        let r2 = _mm512_mul_pd(r, r);
        let p01 = _mm512_fmadd_pd(r, set(P[1]), set(P[0]));
        let p23 = _mm512_fmadd_pd(r, set(P[3]), set(P[2]));
        let p45 = _mm512_fmadd_pd(r, set(P[5]), set(P[4]));
        let p = _mm512_fmadd_pd(_mm512_mul_pd(r2, r2), p45, _mm512_fmadd_pd(r2, p23, p01));
        let z = _mm512_fmadd_pd(_mm512_mul_pd(st, r), p, st);
        // Newton: z - (z^3 - a)/(3 z^2), the cube's error carried in a second term.
        let zz = _mm512_mul_pd(z, z);
        let zz_lo = _mm512_fmsub_pd(z, z, zz);
        let d = _mm512_fmadd_pd(zz_lo, z, _mm512_fmsub_pd(zz, z, a));
        let w = _mm512_mul_pd(_mm512_rcp14_pd(zz), set(1.0 / 3.0));
        let y = _mm512_fnmadd_pd(d, w, z);
        _mm512_mul_pd(y, _mm512_castsi512_pd(_mm512_slli_epi64::<52>(qb)))
    }

    /// The cube root of eight lanes.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn cbrt8(x: __m512d) -> __m512d {
        const MIN: i64 = 0x0010_0000_0000_0000;
        let sign = _mm512_set1_epi64(i64::MIN);
        let bits = _mm512_andnot_si512(sign, _mm512_castpd_si512(x));
        let normal =
            _mm512_cmplt_epu64_mask(_mm512_sub_epi64(bits, _mm512_set1_epi64(MIN)), _mm512_set1_epi64(0x7ff0_0000_0000_0000 - MIN));
        let y = if normal == 0xff { root(bits) } else { cbrt8_patched(bits, normal) };
        _mm512_castsi512_pd(_mm512_or_si512(_mm512_castpd_si512(y), _mm512_and_si512(_mm512_castpd_si512(x), sign)))
    }

    /// [`root`] with subnormal lanes scaled by 2^54 (and the root by 2^-18); zeros,
    /// infinities and NaN are `|x|` (the caller restores the sign).
    #[cold]
    #[inline(never)]
    #[target_feature(enable = "avx512f")]
    fn cbrt8_patched(bits: __m512i, normal: __mmask8) -> __m512d {
        let set = _mm512_set1_pd;
        let a = _mm512_castsi512_pd(bits);
        let sub = _mm512_cmp_pd_mask::<_CMP_LT_OQ>(a, set(f64::MIN_POSITIVE)) & _mm512_cmp_pd_mask::<_CMP_NEQ_OQ>(a, set(0.0));
        let scaled = _mm512_mask_mul_pd(a, sub, a, set(18_014_398_509_481_984.0));
        let y = root(_mm512_castpd_si512(scaled));
        let y = _mm512_mask_mul_pd(y, sub, y, set(3.814_697_265_625e-6));
        _mm512_mask_mov_pd(a, normal | sub, y)
    }

    /// `cbrt x` over a slice; the caller guarantees AVX-512F.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(in super::super) fn cbrt(x: &[f64], out: &mut [f64]) {
        map8(x, out, |v| cbrt8(v))
    }
}
