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

/// Explicit AVX-512 bodies of `exp` and `exp2` (and the core that `sinh` and `cosh` share), for
/// the AVX-512 level only; the other levels keep the generic lanes above.
///
/// The generic lane reduces by ln2 and needs a degree-11 polynomial and two power-of-two
/// factors built from the exponent bits. Here the reduction is by ln2/16,
/// `x = (16m + j) ln2/16 + r` with `|r| <= ln2/32`, and `e^x = 2^m T_j (1 + p(r))`: `T_j = 2^(j/16)` comes from a
/// 16-entry table held in two registers (`vpermt2pd` indexes it with the shifter's low mantissa
/// bits, so the index needs no conversion) with a second table of its rounding errors, `p` is of
/// degree 6, and `vscalefpd` applies `2^m` with one rounding, subnormal results and overflow
/// included. No division and no special lanes: clamping the argument is all the edge handling
/// (NaN survives the clamp, and scalef turns the clamped ends into `inf` and `0`). Max 0.72 ulp
/// from mpmath on 15,000 points (exp and exp2 alike), against 1.16 without the error table,
/// which costs 13% (0.51 against 0.45 ns a value; NumPy's SVML exp 0.89, exp2 0.77 ns, a
/// 4,096-value chunk in cache, best of 60 runs).
///
/// Every function here is `#[inline(always)]` and `unsafe` (it executes AVX-512F instructions):
/// it may only be called from code compiled with `avx512f` enabled, on a CPU that has it.
#[cfg(target_arch = "x86_64")]
pub(super) use avx512::{
    exp2_body as exp2_avx512, exp2_one as exp2_avx512_one, exp_body as exp_avx512, exp_one as exp_avx512_one, expm1_body as expm1_avx512,
    expm1_one as expm1_avx512_one,
};

#[cfg(target_arch = "x86_64")]
pub(super) mod avx512 {
    use std::arch::x86_64::*;

    /// `2^(j/16)` rounded, `j = 0..16`.
    static EXP2_16: [f64; 16] = [
        1.0,
        1.0442737824274138,
        1.0905077326652577,
        1.1387886347566916,
        1.189207115002721,
        1.241857812073484,
        1.2968395546510096,
        1.3542555469368927,
        std::f64::consts::SQRT_2,
        1.4768261459394993,
        1.5422108254079407,
        1.6104903319492543,
        1.681792830507429,
        1.7562521603732995,
        1.8340080864093424,
        1.9152065613971474,
    ];
    /// `2^(j/16) - EXP2_16[j]` rounded: with it the table is exact to 2^-106.
    static EXP2_16_TAIL: [f64; 16] = [
        0.0,
        8.551889705537965e-17,
        -3.046782079812471e-17,
        8.912812676025408e-17,
        3.982015231465646e-17,
        4.658027591836937e-17,
        2.5382502794888315e-17,
        7.70094837980299e-17,
        -9.667293313452913e-17,
        -3.483994556892796e-17,
        7.949834809697621e-17,
        2.4707192569797888e-17,
        8.199010020581497e-17,
        2.960140695448873e-17,
        3.283107224245627e-17,
        -1.0619946056195963e-16,
    ];
    /// `expm1(r) = r + r^2 Q(r)` for `|r| <= ln2/32`: fitted at Chebyshev nodes (mpmath),
    /// 2^-55 absolute error.
    const Q: [f64; 5] = [0.5, 0.16666666665301144, 0.041666666664959766, 0.008333449724528355, 0.0013889034377693012];
    /// `expm1(r) = r + r^2 (1/2 + r R(r))` for `|r| <= ln2/32`, fitted for relative error
    /// (2^-58), which `expm1` needs where its result is `r` itself.
    const R: [f64; 5] = [0.16666666666666666, 0.041666666664959766, 0.008333333333143678, 0.0013889034377693012, 0.00019841431495343389];
    /// `2^r - 1 = r G(r)` for `|r| <= 1/32`, the same fit: 2^-55.9 absolute.
    const G: [f64; 6] =
        [0.6931471805599457, 0.24022650695910075, 0.05550410865663603, 0.009618129106919254, 0.0013333781621472902, 0.00015403724019468894];
    /// 16/ln2, and ln2/16 = L_HI + L_LO.
    const INV_L: f64 = 23.083120654223414;
    const L_HI: f64 = 0.04332169878499658;
    const L_LO: f64 = 1.4494042586539372e-18;

    #[inline(always)]
    pub(in super::super) unsafe fn splat(v: f64) -> __m512d {
        _mm512_set1_pd(v)
    }

    /// `x` clamped to `[lo, hi]`, NaN kept: `vminpd`/`vmaxpd` return their second operand
    /// when either is NaN.
    #[inline(always)]
    pub(in super::super) unsafe fn clamp(x: __m512d, lo: f64, hi: f64) -> __m512d {
        _mm512_max_pd(splat(lo), _mm512_min_pd(splat(hi), x))
    }

    /// Entry `j` of a 16-entry table for the index in the low four bits of each lane of `idx`.
    #[inline(always)]
    unsafe fn lookup(tab: &[f64; 16], idx: __m512i) -> __m512d {
        let lo = _mm512_loadu_pd(tab.as_ptr());
        let hi = _mm512_loadu_pd(tab.as_ptr().add(8));
        _mm512_permutex2var_pd(lo, idx, hi)
    }

    /// `T_j` for the index in the low four bits of each lane of `idx`.
    #[inline(always)]
    pub(in super::super) unsafe fn table(idx: __m512i) -> __m512d {
        lookup(&EXP2_16, idx)
    }

    /// `2^(j/16) - T_j`, the part of the exact value that `T_j` leaves out.
    #[inline(always)]
    pub(in super::super) unsafe fn table_tail(idx: __m512i) -> __m512d {
        lookup(&EXP2_16_TAIL, idx)
    }

    /// The reduction `x = k ln2/16 + r` for `|x|` below a few thousand: `(t, k, r)` with `t`
    /// the shifter sum whose low mantissa bits hold `k`.
    #[inline(always)]
    pub(in super::super) unsafe fn reduce(x: __m512d) -> (__m512d, __m512d, __m512d) {
        let t = _mm512_fmadd_pd(x, splat(INV_L), splat(super::SHIFT));
        let k = _mm512_sub_pd(t, splat(super::SHIFT));
        let r = _mm512_fnmadd_pd(k, splat(L_HI), x);
        let r = _mm512_fnmadd_pd(k, splat(L_LO), r);
        (t, k, r)
    }

    /// `Q(r)` by Estrin's scheme, with `r2 = r^2`.
    #[inline(always)]
    unsafe fn q(r: __m512d, r2: __m512d) -> __m512d {
        let a = _mm512_fmadd_pd(splat(Q[1]), r, splat(Q[0]));
        let b = _mm512_fmadd_pd(splat(Q[3]), r, splat(Q[2]));
        let r4 = _mm512_mul_pd(r2, r2);
        _mm512_fmadd_pd(r4, splat(Q[4]), _mm512_fmadd_pd(r2, b, a))
    }

    #[inline(always)]
    pub(in super::super) unsafe fn exp(x: __m512d) -> __m512d {
        // e^710 overflows and e^-746 rounds to 0: the clamp keeps k within the shifter.
        let (t, k, r) = reduce(clamp(x, -746.0, 710.0));
        let idx = _mm512_castpd_si512(t);
        let tab = table(idx);
        let r2 = _mm512_mul_pd(r, r);
        let p = _mm512_fmadd_pd(r2, q(r, r2), r);
        // T_j + (T_j p + tail): one rounding of nearly the exact 2^(j/16) e^r.
        let y = _mm512_add_pd(tab, _mm512_fmadd_pd(tab, p, table_tail(idx)));
        _mm512_scalef_pd(y, _mm512_mul_pd(k, splat(0.0625)))
    }

    #[inline(always)]
    pub(in super::super) unsafe fn exp2(x: __m512d) -> __m512d {
        // 2^1024 overflows and 2^-1076 rounds to 0.
        let x = clamp(x, -1076.0, 1024.0);
        let t = _mm512_fmadd_pd(x, splat(16.0), splat(super::SHIFT));
        let k = _mm512_sub_pd(t, splat(super::SHIFT));
        // x - k/16 is exact: r = 0 for integers, and 2^x = 2^m exactly.
        let r = _mm512_fnmadd_pd(k, splat(0.0625), x);
        let r2 = _mm512_mul_pd(r, r);
        let a = _mm512_fmadd_pd(splat(G[2]), r, splat(G[1]));
        let b = _mm512_fmadd_pd(splat(G[4]), r, splat(G[3]));
        let r4 = _mm512_mul_pd(r2, r2);
        let hi = _mm512_fmadd_pd(r4, splat(G[5]), _mm512_fmadd_pd(r2, b, a));
        let p = _mm512_fmadd_pd(r2, hi, _mm512_mul_pd(r, splat(G[0])));
        let idx = _mm512_castpd_si512(t);
        let tab = table(idx);
        let y = _mm512_add_pd(tab, _mm512_fmadd_pd(tab, p, table_tail(idx)));
        _mm512_scalef_pd(y, _mm512_mul_pd(k, splat(0.0625)))
    }

    #[inline(always)]
    pub(in super::super) unsafe fn expm1(x: __m512d) -> __m512d {
        // Below -45 expm1 rounds to -1; e^710 overflows.
        let (t, k, r) = reduce(clamp(x, -45.0, 710.0));
        let idx = _mm512_castpd_si512(t);
        let tab = table(idx);
        let r2 = _mm512_mul_pd(r, r);
        let a = _mm512_fmadd_pd(splat(R[1]), r, splat(R[0]));
        let b = _mm512_fmadd_pd(splat(R[3]), r, splat(R[2]));
        let hi = _mm512_fmadd_pd(r2, splat(R[4]), b);
        let q = _mm512_fmadd_pd(r, _mm512_fmadd_pd(r2, hi, a), splat(0.5));
        let p = _mm512_fmadd_pd(r2, q, r);
        // e^x - 1 = 2^m ((T_j - 2^-m) + (T_j p + tail)): T_j - 2^-m is exact while it matters
        // (m <= 52), so the only cancellation is exact; for k = 0 the result is p itself.
        let m = _mm512_roundscale_pd::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(_mm512_mul_pd(k, splat(0.0625)));
        let lead = _mm512_sub_pd(tab, _mm512_scalef_pd(splat(1.0), _mm512_sub_pd(_mm512_setzero_pd(), m)));
        let y = _mm512_scalef_pd(_mm512_add_pd(lead, _mm512_fmadd_pd(tab, p, table_tail(idx))), m);
        // expm1(x) rounds to x below 2^-54; this also keeps the sign of -0.0.
        let tiny = _mm512_cmp_pd_mask::<_CMP_LT_OQ>(_mm512_abs_pd(x), splat(5.551_115_123_125_783e-17));
        _mm512_mask_blend_pd(tiny, y, x)
    }

    /// Runs a vector lane over a slice, eight values at a time; the ragged tail goes through
    /// the same lane with a masked load and store, so a value's bits never depend on its
    /// position or on the slice's length.
    macro_rules! map512 {
        ($x:expr, $out:expr, $lane:path) => {{
            let (x, out): (&[f64], &mut [f64]) = ($x, $out);
            assert_eq!(x.len(), out.len(), "kernel input and output lengths differ");
            let (mut xs, mut os) = (x.chunks_exact(8), out.chunks_exact_mut(8));
            for (xc, oc) in (&mut xs).zip(&mut os) {
                // SAFETY: eight values each; the caller runs with AVX-512F.
                unsafe { _mm512_storeu_pd(oc.as_mut_ptr(), $lane(_mm512_loadu_pd(xc.as_ptr()))) };
            }
            let (xt, ot) = (xs.remainder(), os.into_remainder());
            if !xt.is_empty() {
                let m: __mmask8 = (1u8 << xt.len()) - 1;
                // SAFETY: the mask covers exactly the tail's elements.
                unsafe { _mm512_mask_storeu_pd(ot.as_mut_ptr(), m, $lane(_mm512_maskz_loadu_pd(m, xt.as_ptr()))) };
            }
        }};
    }
    pub(in super::super) use map512;

    /// For each lane: its slice body (through [`map512`]) and its single-value entry (the lane
    /// on a broadcast value: lanes are independent, so the bits are the slice body's), both
    /// `unsafe`: the CPU must have AVX-512F.
    macro_rules! entries {
        ($($lane:ident: $body:ident, $one:ident;)*) => {$(
            #[doc = concat!("The slice body of `", stringify!($lane), "` at the AVX-512 level.")]
            #[target_feature(enable = "avx512f,avx2,fma")]
            pub(in super::super) unsafe fn $body(x: &[f64], out: &mut [f64]) {
                map512!(x, out, $lane)
            }
            #[doc = concat!("One value through `", stringify!($lane), "`'s AVX-512 lane.")]
            #[target_feature(enable = "avx512f,avx2,fma")]
            pub(in super::super) unsafe fn $one(x: f64) -> f64 {
                _mm512_cvtsd_f64($lane(_mm512_set1_pd(x)))
            }
        )*};
    }
    pub(in super::super) use entries;

    entries! {
        exp: exp_body, exp_one;
        exp2: exp2_body, exp2_one;
        expm1: expm1_body, expm1_one;
    }
}
