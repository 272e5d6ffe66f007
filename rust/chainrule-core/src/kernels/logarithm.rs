//! The logarithm family: `log` and `log1p` from `x = 2^k m` and `log(1+f)` through
//! `s = f/(2+f)` and a degree-6 polynomial in `s^2`. At the AVX-512 level `log`, `log2`,
//! `log10`, `log1p` and `atanh` run [`log512`] instead: a 16-entry table in registers and no
//! division (ns a value, 1024-value chunks: log 1.05 -> 0.63, log2 1.30 -> 0.69, log10 1.33
//! -> 0.69, log1p 1.05 -> 0.86, atanh 2.07 -> 1.18).

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

/// The logarithms' AVX-512 bodies: a 16-entry table held in registers
/// (`_mm512_permutex2var_pd`) instead of log's division. `x = 2^k m` with `m` in
/// `[0.729, 1.458)` (the exponent split is moved by the bits of [`log512::OFF`]), `j` the top
/// four bits of `m`'s fraction, `r = m c_j - 1` with `|r| <= 0.0297` and
/// `log_b x = k log_b 2 + log_b(1/c_j) + log_b(1 + r)`: one fused multiply-add reduces, a
/// degree-9 polynomial (`r/ln b + r^2 Q(r)`, `Q` of degree 7) replaces the division and the
/// degree-14 series. The entry around 1 is `[1 - 1/48, 1 + 1/48]` with `c = 1`, so `r = m - 1`
/// exactly where the result cancels. `k log_b 2 + log_b(1/c_j)` is exact (both heads are
/// multiples of `2^-42`), its sum with the leading `r/ln b` is carried with its rounding error,
/// and the tails ride in the low part. Subnormal, zero, negative and non-finite lanes are
/// flagged by one integer compare per vector and patched by masks in a second pass over that
/// vector only, with the same arithmetic for its ordinary lanes. Tails are masked loads and
/// stores through the same code, and a single value is a one-lane tail: the bits never depend
/// on the position.
#[cfg(target_arch = "x86_64")]
pub(super) mod log512 {
    use std::arch::x86_64::*;

    /// Subtracted from the bits of `x`: the exponent field then holds `k` and the fraction
    /// `m / OFF - 1`-ish, with 1.0 two thirds into entry 8 (entries are 1/32 wide below 1 and
    /// 1/16 above).
    pub(super) const OFF: u64 = 0x3fe7_5555_5550_0000;
    /// `1.5 * 2^52`: an integer below 2^51 added to its bits is that integer added to it.
    const SHIFT: f64 = 6_755_399_441_055_744.0;

    /// `1/c_j`: the reciprocal of entry j's midpoint, 1 for the entry around 1.
    const INVC: [f64; 16] = [
        f64::from_bits(0x3ff5_7b86_440b_f7d6),
        f64::from_bits(0x3ff4_9e11_2e68_1434),
        f64::from_bits(0x3ff3_d1c1_3d20_2b4e),
        f64::from_bits(0x3ff3_14ab_ba0d_5534),
        f64::from_bits(0x3ff2_652c_7484_4a92),
        f64::from_bits(0x3ff1_c1d9_86ab_fa6c),
        f64::from_bits(0x3ff1_2979_9075_7b42),
        f64::from_bits(0x3ff0_9afb_d943_e8fe),
        1.0,
        f64::from_bits(0x3fee_6a74_981d_e9f7),
        f64::from_bits(0x3fec_b5d4_ef49_2f34),
        f64::from_bits(0x3feb_2f93_41ba_ac0f),
        f64::from_bits(0x3fe9_d0ac_19d7_9d39),
        f64::from_bits(0x3fe8_9374_bc70_c997),
        f64::from_bits(0x3fe7_734c_36bd_6c49),
        f64::from_bits(0x3fe6_6c61_2aff_a1b9),
    ];

    /// One base's constants: `log_b 2` and `log_b(1/c_j)` as a head on the `2^-42` grid and
    /// a tail, `1/ln b` as a double and its rest, `Q_b = Q / ln b` (fitted in mpmath at
    /// Chebyshev nodes of `[-0.0297, 0.0297]`; `|r^2 (Q_b - Q_b*)| < 2^-60.5`).
    pub(super) struct Base {
        l: [f64; 2],
        t_hi: [f64; 16],
        t_lo: [f64; 16],
        inv: [f64; 2],
        q: [f64; 8],
    }

    macro_rules! bits {
        ($($b:literal),* $(,)?) => { [$(f64::from_bits($b)),*] };
    }

    pub(super) const LN: Base = Base {
        l: bits![0x3fe6_2e42_fefa_3800, 0x3d2e_f357_93c7_6730],
        t_hi: bits![
            0xbfd2_db8e_c8f7_0000,
            0xbfd0_3a25_dcbe_1000,
            0xbfcb_66a7_7478_e000,
            0xbfc6_8a26_6e48_e000,
            0xbfc1_db2f_e63b_2000,
            0xbfba_ad19_48cb_c000,
            0xbfb1_f2b3_5616_c000,
            0xbfa3_03f4_676b_0000,
            0x0000_0000_0000_0000,
            0x3fa9_fed4_8968_8000,
            0x3fbb_c563_2d9c_0000,
            0x3fc4_de7b_8557_8000,
            0x3fcb_7dc1_d023_c000,
            0x3fd0_e4cf_be97_f000,
            0x3fd3_e4f3_c1a2_9000,
            0x3fd6_c2af_ccce_c000,
        ],
        t_lo: bits![
            0x3d3c_b275_acf5_a183,
            0x3d06_ed66_36f8_b0cd,
            0x3d36_ec80_15fb_79bb,
            0xbd27_b827_6619_1f8c,
            0xbd0d_0498_0d55_a0c7,
            0xbd18_7071_ab88_8c5f,
            0x3d12_4ec8_fd9c_d3b3,
            0xbd25_38b4_fdf0_a2b0,
            0x0000_0000_0000_0000,
            0xbd2b_725b_f9c8_0357,
            0x3d22_85fa_8688_0e11,
            0x3d3a_01b6_cc6c_d930,
            0xbcde_a556_9b47_4cdd,
            0xbd2b_4003_dd83_46f2,
            0x3d31_c8f5_ebf9_1c83,
            0x3d3d_8009_5905_b277,
        ],
        inv: [1.0, 0.0],
        q: bits![
            0xbfdf_ffff_ffff_fff7,
            0x3fd5_5555_5555_554e,
            0xbfd0_0000_0004_b9e5,
            0x3fc9_9999_99a2_3176,
            0xbfc5_5554_841b_a3be,
            0x3fc2_4923_d413_b3c7,
            0xbfc0_05c9_b1f7_b5d1,
            0x3fbc_7c4d_24ef_88ae,
        ],
    };

    pub(super) const LOG2: Base = Base {
        l: [1.0, 0.0],
        t_hi: bits![
            0xbfdb_34b1_91d1_a000,
            0xbfd7_692b_27a6_2000,
            0xbfd3_c400_dc00_1000,
            0xbfd0_4248_9244_c000,
            0xbfc9_c2d4_375f_e000,
            0xbfc3_3e27_4951_0000,
            0xbfb9_e4c0_6d9a_4000,
            0xbfab_6ef9_5f3b_0000,
            0x0000_0000_0000_0000,
            0x3fb2_c071_fdd4_8000,
            0x3fc4_0856_c79e_e000,
            0x3fce_1b92_b106_2000,
            0x3fd3_d4ab_2aba_a000,
            0x3fd8_5f62_54d0_c000,
            0x3fdc_b393_ac0c_e000,
            0x3fe0_6b10_e67e_8000,
        ],
        t_lo: bits![
            0xbd2b_30bd_80a8_274a,
            0xbd28_c904_270c_42ac,
            0xbd34_7744_0e74_7e74,
            0x3d3c_015c_3269_f624,
            0xbd32_f970_2446_a11f,
            0x3d39_85c8_aca7_256b,
            0xbd34_88ec_c56d_8059,
            0x3d2c_ebac_dfc1_b245,
            0x0000_0000_0000_0000,
            0xbd32_afa2_b640_9d57,
            0x3d28_d039_71d5_dc92,
            0x3d33_9f26_b8ee_b879,
            0xbd2d_42b1_7773_f291,
            0xbd38_6ffb_f0d6_5f46,
            0x3d27_70c0_5b9f_0e0e,
            0x3d38_8778_e243_a38a,
        ],
        inv: bits![0x3ff7_1547_652b_82fe, 0x3c77_77d0_ffda_0d24],
        q: bits![
            0xbfe7_1547_652b_82f8,
            0x3fde_c709_dc3a_03f2,
            0xbfd7_1547_6532_5481,
            0x3fd2_776c_50f5_cedb,
            0xbfce_c708_ae60_d360,
            0x3fca_6175_1811_15d2,
            0xbfc7_1da1_078c_cc26,
            0x3fc4_8c48_9306_a081,
        ],
    };

    pub(super) const LOG10: Base = Base {
        l: bits![0x3fd3_4413_509f_8000, 0xbd38_0433_b83b_532a],
        t_hi: bits![
            0xbfc0_6129_d3bf_2000,
            0xbfbc_307e_7958_4000,
            0xbfb7_ccd9_e541_4000,
            0xbfb3_93e3_82c3_0000,
            0xbfaf_04f7_20d8_0000,
            0xbfa7_2bae_08cd_0000,
            0xbf9f_2dcf_f617_0000,
            0xbf90_8440_7178_0000,
            0x0000_0000_0000_0000,
            0x3f96_944f_e4e8_0000,
            0x3fa8_1f22_acb5_8000,
            0x3fb2_206b_dd0e_0000,
            0x3fb7_e0eb_0aab_8000,
            0x3fbd_58f7_92b5_0000,
            0x3fc1_47ae_9ae4_e000,
            0x3fc3_c4fe_eb68_e000,
        ],
        t_lo: bits![
            0x3d32_e9ad_fc41_2895,
            0x3d17_10f2_9d02_1d30,
            0x3d3a_88fb_013a_902c,
            0x3d39_07af_e644_445d,
            0xbd34_21fc_7408_1d07,
            0x3d1e_7fca_482b_74c1,
            0xbd3b_cefc_16a1_77a8,
            0x3d3d_04c6_0392_05c0,
            0x0000_0000_0000_0000,
            0xbd3e_25e7_d27d_8016,
            0xbcd8_0c24_1ce4_a974,
            0xbd36_74ad_598e_875c,
            0xbd24_25dd_3a66_0540,
            0xbd2c_28cc_dcb7_ec6d,
            0x3d36_4d9f_b22b_5d80,
            0x3cf5_e2f1_cae2_59a8,
        ],
        inv: bits![0x3fdb_cb7b_1526_e50e, 0x3c69_5355_baaa_fad3],
        q: bits![
            0xbfcb_cb7b_1526_e507,
            0x3fc2_87a7_636f_4358,
            0xbfbb_cb7b_152f_1adc,
            0x3fb6_3c62_7759_c79e,
            0xbfb2_87a6_adb4_2ac9,
            0x3faf_c3f9_16e3_da33,
            0xbfab_d589_0d01_0d9e,
            0x3fa8_be03_3129_22f8,
        ],
    };

    /// Entry `idx` (its low four bits) of a 16-entry table, from two registers.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn table(t: &[f64; 16], idx: __m512i) -> __m512d {
        // SAFETY: both loads read eight of the table's sixteen values.
        let (lo, hi) = unsafe { (_mm512_loadu_pd(t.as_ptr()), _mm512_loadu_pd(t.as_ptr().add(8))) };
        _mm512_permutex2var_pd(lo, idx, hi)
    }

    /// `x = 2^k m` from the bits of a positive normal `x`: `(k, m, index)`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn reduce(bits: __m512i) -> (__m512d, __m512d, __m512i) {
        let v = _mm512_sub_epi64(bits, _mm512_set1_epi64(OFF as i64));
        let ki = _mm512_srai_epi64::<52>(v);
        let k = _mm512_sub_pd(_mm512_castsi512_pd(_mm512_add_epi64(ki, _mm512_set1_epi64(SHIFT.to_bits() as i64))), _mm512_set1_pd(SHIFT));
        let mant = _mm512_and_si512(v, _mm512_set1_epi64(((1u64 << 52) - 1) as i64));
        let m = _mm512_castsi512_pd(_mm512_add_epi64(mant, _mm512_set1_epi64(OFF as i64)));
        (k, m, _mm512_srli_epi64::<48>(v))
    }

    /// `r = m/c_j - 1`, rounded once (exact for the entry around 1).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn reduced(m: __m512d, idx: __m512i) -> __m512d {
        _mm512_fmsub_pd(m, table(&INVC, idx), _mm512_set1_pd(1.0))
    }

    /// `k log_b 2 + log_b(1/c_j) + log_b(1 + r)`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn finish(b: &Base, k: __m512d, r: __m512d, idx: __m512i) -> __m512d {
        let set = _mm512_set1_pd;
        // Exact: both products lie on the 2^-42 grid below 2^11.
        let a = _mm512_fmadd_pd(k, set(b.l[0]), table(&b.t_hi, idx));
        let lead = if b.inv[0] == 1.0 { r } else { _mm512_mul_pd(r, set(b.inv[0])) };
        // |a| >= |lead| unless a = 0, so s + err is a + lead exactly.
        let s = _mm512_add_pd(a, lead);
        let err = _mm512_add_pd(_mm512_sub_pd(a, s), lead);
        let mut lo = _mm512_fmadd_pd(k, set(b.l[1]), table(&b.t_lo, idx));
        if b.inv[1] != 0.0 {
            lo = _mm512_fmadd_pd(r, set(b.inv[1]), lo);
        }
        let r2 = _mm512_mul_pd(r, r);
        let r4 = _mm512_mul_pd(r2, r2);
        let q = &b.q;
        let p01 = _mm512_fmadd_pd(r, set(q[1]), set(q[0]));
        let p23 = _mm512_fmadd_pd(r, set(q[3]), set(q[2]));
        let p45 = _mm512_fmadd_pd(r, set(q[5]), set(q[4]));
        let p67 = _mm512_fmadd_pd(r, set(q[7]), set(q[6]));
        let p03 = _mm512_fmadd_pd(r2, p23, p01);
        let p47 = _mm512_fmadd_pd(r2, p67, p45);
        let poly = _mm512_fmadd_pd(r4, p47, p03);
        _mm512_add_pd(s, _mm512_fmadd_pd(r2, poly, _mm512_add_pd(lo, err)))
    }

    /// The bits of positive normal finite lanes: below `INF - MIN_POSITIVE` after subtracting
    /// `MIN_POSITIVE`'s bits (negative lanes wrap to huge).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn normal(bits: __m512i) -> __mmask8 {
        const MIN: i64 = 0x0010_0000_0000_0000;
        let off = _mm512_sub_epi64(bits, _mm512_set1_epi64(MIN));
        _mm512_cmplt_epu64_mask(off, _mm512_set1_epi64(0x7ff0_0000_0000_0000 - MIN))
    }

    /// `log_b` of eight lanes.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn log8(b: &Base, x: __m512d) -> __m512d {
        let bits = _mm512_castpd_si512(x);
        if normal(bits) == 0xff {
            let (k, m, idx) = reduce(bits);
            finish(b, k, reduced(m, idx), idx)
        } else {
            log8_patched(b, x)
        }
    }

    /// [`log8`] with subnormal lanes scaled by `2^54` and the special values selected in.
    #[cold]
    #[inline(never)]
    #[target_feature(enable = "avx512f")]
    fn log8_patched(b: &Base, x: __m512d) -> __m512d {
        let set = _mm512_set1_pd;
        let sub = _mm512_cmp_pd_mask::<_CMP_LT_OQ>(x, set(f64::MIN_POSITIVE));
        let xs = _mm512_mask_mul_pd(x, sub, x, set(18_014_398_509_481_984.0));
        let (k, m, idx) = reduce(_mm512_castpd_si512(xs));
        let k = _mm512_mask_sub_pd(k, sub, k, set(54.0));
        let y = finish(b, k, reduced(m, idx), idx);
        let y = _mm512_mask_mov_pd(y, _mm512_cmp_pd_mask::<_CMP_EQ_OQ>(x, set(f64::INFINITY)), x);
        let y = _mm512_mask_mov_pd(y, _mm512_cmp_pd_mask::<_CMP_NGT_UQ>(x, set(0.0)), set(f64::NAN));
        _mm512_mask_mov_pd(y, _mm512_cmp_pd_mask::<_CMP_EQ_OQ>(x, set(0.0)), set(f64::NEG_INFINITY))
    }

    /// `log1p` of eight lanes: `u = 1 + x` and its rounding error `c` (exact), `r` from `u`
    /// plus `c/u` as `c/c_j 2^-k` (the rest is second order in `c`), then [`finish`]. Near 0
    /// the entry around 1 gives `r = (u - 1) + c = x` exactly.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn log1p8(x: __m512d) -> __m512d {
        let set = _mm512_set1_pd;
        let one = set(1.0);
        let u = _mm512_add_pd(one, x);
        let c = _mm512_add_pd(_mm512_sub_pd(_mm512_max_pd(one, x), u), _mm512_min_pd(one, x));
        let (k, m, idx) = reduce(_mm512_castpd_si512(u));
        let invc = table(&INVC, idx);
        let corr = _mm512_scalef_pd(_mm512_mul_pd(c, invc), _mm512_sub_pd(_mm512_setzero_pd(), k));
        let r = _mm512_add_pd(_mm512_fmsub_pd(m, invc, one), corr);
        let y = finish(&LN, k, r, idx);
        // x in (-1, inf) and |x| >= 2^-54 take the formula; the rest is patched.
        let ok = _mm512_cmp_pd_mask::<_CMP_GT_OQ>(x, set(-1.0))
            & _mm512_cmp_pd_mask::<_CMP_LT_OQ>(x, set(f64::INFINITY))
            & _mm512_cmp_pd_mask::<_CMP_GE_OQ>(_mm512_abs_pd(x), set(5.551_115_123_125_783e-17));
        if ok == 0xff {
            y
        } else {
            log1p8_patched(x, y)
        }
    }

    #[cold]
    #[inline(never)]
    #[target_feature(enable = "avx512f")]
    fn log1p8_patched(x: __m512d, y: __m512d) -> __m512d {
        let set = _mm512_set1_pd;
        let y = _mm512_mask_mov_pd(y, _mm512_cmp_pd_mask::<_CMP_EQ_OQ>(x, set(f64::INFINITY)), x);
        let y = _mm512_mask_mov_pd(y, _mm512_cmp_pd_mask::<_CMP_NGE_UQ>(x, set(-1.0)), set(f64::NAN));
        let y = _mm512_mask_mov_pd(y, _mm512_cmp_pd_mask::<_CMP_EQ_OQ>(x, set(-1.0)), set(f64::NEG_INFINITY));
        // log1p(x) rounds to x below 2^-54; this also keeps the sign of -0.0.
        _mm512_mask_mov_pd(y, _mm512_cmp_pd_mask::<_CMP_LT_OQ>(_mm512_abs_pd(x), set(5.551_115_123_125_783e-17)), x)
    }

    /// Runs `lane` over the slice eight values at a time, the ragged tail as a masked load
    /// (inactive lanes hold 1.0, an ordinary input) through the same code.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(in super::super) fn map8(x: &[f64], out: &mut [f64], lane: impl Fn(__m512d) -> __m512d) {
        assert_eq!(x.len(), out.len(), "kernel input and output lengths differ");
        let (xc, xt) = x.as_chunks::<8>();
        let (oc, ot) = out.as_chunks_mut::<8>();
        for (o, v) in oc.iter_mut().zip(xc) {
            // SAFETY: eight values in and out.
            unsafe { _mm512_storeu_pd(o.as_mut_ptr(), lane(_mm512_loadu_pd(v.as_ptr()))) };
        }
        if !xt.is_empty() {
            let mask = ((1u32 << xt.len()) - 1) as __mmask8;
            // SAFETY: the masks cover the tail's length only.
            unsafe {
                let v = _mm512_mask_loadu_pd(_mm512_set1_pd(1.0), mask, xt.as_ptr());
                _mm512_mask_storeu_pd(ot.as_mut_ptr(), mask, lane(v));
            }
        }
    }

    /// `atanh` of eight lanes: `log(w)/2` for `w = (1 + t)/(1 - t)`, `t = |x|`, with the
    /// rounding errors of `1 + t`, `1 - t` and the quotient (its exact remainder) carried
    /// into `r` as `c/w`, so that near 0 (`w - 1 ~ 2t`) nothing is lost; below 2^-28 the
    /// result is `x` itself, at `|x| >= 1` inf or NaN are selected in.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn atanh8(x: __m512d) -> __m512d {
        let set = _mm512_set1_pd;
        let one = set(1.0);
        let t = _mm512_abs_pd(x);
        let n = _mm512_add_pd(one, t);
        let n_err = _mm512_add_pd(_mm512_sub_pd(one, n), t);
        let d = _mm512_sub_pd(one, t);
        let d_err = _mm512_sub_pd(_mm512_sub_pd(one, d), t);
        let w = _mm512_div_pd(n, d);
        // (n + n_err) - w (d + d_err), exactly enough; over n it is c/w to first order. 1/n as
        // d (1 + t^2) is off by t^4 relatively, which c/w (at most 2^-53) makes negligible
        // beside log w ~ 2t; rcp14's 2^-14 was not (2^-41 at t = 7e-9).
        let rem = _mm512_fnmadd_pd(w, d_err, _mm512_add_pd(_mm512_fnmadd_pd(w, d, n), n_err));
        let c_w = _mm512_mul_pd(rem, _mm512_fmadd_pd(_mm512_mul_pd(d, t), t, d));
        let (k, m, idx) = reduce(_mm512_castpd_si512(w));
        // r = (1 + r0)(1 + c/w) - 1 with r0 = m/c_j - 1 rounded once.
        let r0 = reduced(m, idx);
        let r = _mm512_add_pd(r0, _mm512_fmadd_pd(r0, c_w, c_w));
        let y = _mm512_mul_pd(set(0.5), finish(&LN, k, r, idx));
        let sign = _mm512_and_si512(_mm512_castpd_si512(x), _mm512_set1_epi64(i64::MIN));
        let y = _mm512_castsi512_pd(_mm512_or_si512(_mm512_castpd_si512(y), sign));
        let ok = _mm512_cmp_pd_mask::<_CMP_LT_OQ>(t, one) & _mm512_cmp_pd_mask::<_CMP_GE_OQ>(t, set(3.725_290_298_461_914e-9));
        if ok == 0xff {
            y
        } else {
            atanh8_patched(x, y)
        }
    }

    #[cold]
    #[inline(never)]
    #[target_feature(enable = "avx512f")]
    fn atanh8_patched(x: __m512d, y: __m512d) -> __m512d {
        let set = _mm512_set1_pd;
        let t = _mm512_abs_pd(x);
        let y = _mm512_mask_mov_pd(y, _mm512_cmp_pd_mask::<_CMP_NLT_UQ>(t, set(1.0)), set(f64::NAN));
        let y = _mm512_mask_mov_pd(y, _mm512_cmp_pd_mask::<_CMP_EQ_OQ>(t, set(1.0)), _mm512_mul_pd(x, set(f64::INFINITY)));
        _mm512_mask_mov_pd(y, _mm512_cmp_pd_mask::<_CMP_LT_OQ>(t, set(3.725_290_298_461_914e-9)), x)
    }

    /// `asinh` of eight lanes, in the generic lane's two forms with one logarithm per lane:
    /// up to 2, `log1p(w)` for `w = t + t^2/(1 + sqrt(1 + t^2))` (`t = |x|`; `1 + w` and its
    /// rounding error `c`, as in [`log1p8`]); above, `log(t + sqrt(1 + t^2))`, and from 2^28
    /// on `log t + ln2` (the root is `t` there; `k + 1` adds `ln2` exactly). The sign of `x`
    /// is put back; below 2^-28, and for inf and NaN, the result is `x` itself.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn asinh8(x: __m512d) -> __m512d {
        let set = _mm512_set1_pd;
        let one = set(1.0);
        let t = _mm512_abs_pd(x);
        let huge = _mm512_cmp_pd_mask::<_CMP_GT_OQ>(t, set(268_435_456.0));
        let small = _mm512_cmp_pd_mask::<_CMP_LE_OQ>(t, set(2.0));
        let tc = _mm512_mask_mov_pd(t, huge, one);
        let t2 = _mm512_mul_pd(tc, tc);
        let root = _mm512_sqrt_pd(_mm512_add_pd(one, t2));
        let w = _mm512_add_pd(t, _mm512_div_pd(t2, _mm512_add_pd(one, root)));
        let u_small = _mm512_add_pd(one, w);
        let c = _mm512_add_pd(_mm512_sub_pd(_mm512_max_pd(one, w), u_small), _mm512_min_pd(one, w));
        let u_large = _mm512_mask_mov_pd(_mm512_add_pd(t, root), huge, t);
        let u = _mm512_mask_mov_pd(u_large, small, u_small);
        let c = _mm512_maskz_mov_pd(small, c);
        let (k, m, idx) = reduce(_mm512_castpd_si512(u));
        let k = _mm512_mask_add_pd(k, huge, k, one);
        let invc = table(&INVC, idx);
        let corr = _mm512_scalef_pd(_mm512_mul_pd(c, invc), _mm512_sub_pd(_mm512_setzero_pd(), k));
        let r = _mm512_add_pd(_mm512_fmsub_pd(m, invc, one), corr);
        let y = finish(&LN, k, r, idx);
        let sign = _mm512_and_si512(_mm512_castpd_si512(x), _mm512_set1_epi64(i64::MIN));
        let y = _mm512_castsi512_pd(_mm512_or_si512(_mm512_castpd_si512(y), sign));
        let ok =
            _mm512_cmp_pd_mask::<_CMP_GE_OQ>(t, set(3.725_290_298_461_914e-9)) & _mm512_cmp_pd_mask::<_CMP_LT_OQ>(t, set(f64::INFINITY));
        _mm512_mask_mov_pd(x, ok, y)
    }

    /// `asinh x` over a slice.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(in super::super) fn asinh(x: &[f64], out: &mut [f64]) {
        map8(x, out, |v| asinh8(v))
    }

    /// `log x` over a slice; the caller guarantees AVX-512F.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(in super::super) fn log(x: &[f64], out: &mut [f64]) {
        map8(x, out, |v| log8(&LN, v))
    }
    /// `log2 x` over a slice.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(in super::super) fn log2(x: &[f64], out: &mut [f64]) {
        map8(x, out, |v| log8(&LOG2, v))
    }
    /// `log10 x` over a slice.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(in super::super) fn log10(x: &[f64], out: &mut [f64]) {
        map8(x, out, |v| log8(&LOG10, v))
    }
    /// `log1p x` over a slice.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(in super::super) fn log1p(x: &[f64], out: &mut [f64]) {
        map8(x, out, |v| log1p8(v))
    }
    /// `atanh x` over a slice.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(in super::super) fn atanh(x: &[f64], out: &mut [f64]) {
        map8(x, out, |v| atanh8(v))
    }
}
