//! The hyperbolic family: `sinh` and `cosh` from the exponential's reduction
//! `|x| = n ln2 + r` and polynomials for `sinh r` and `cosh r` (no division, no second
//! exponential), and `asinh`, `acosh`, `atanh`
//! through the logarithm's core, in forms that keep their accuracy near 0 and 1 and never
//! square a huge argument. No lane needs patching.

use super::*;

/// Beyond this sinh and cosh overflow (from 710.4758); clamping keeps `n` within `scale_1p`'s
/// range so that inf comes out of the last multiply.
const HYP_CLAMP: f64 = 710.6;
/// Below 2^-28 sinh, asinh and atanh round to `x` itself (`x^3/6` is below half an ulp);
/// returning `x` also keeps -0.0 and subnormals exact.
const HYP_TINY: f64 = 3.725_290_298_461_914e-9;
/// From 2^28 on, `sqrt(x^2 +- 1)` rounds to `x`: asinh and acosh are `log(x) + ln2`.
const HYP_HUGE: f64 = 268_435_456.0;

#[inline(always)]
fn with_sign_of(y: f64, x: f64) -> f64 {
    f64::from_bits(y.to_bits() | (x.to_bits() & SIGN))
}

/// `sinh r = r + r z S(z)`, `z = r^2`, `0 <= r <= ln2`: Taylor to r^17 (truncation 2^-66).
const SINH_S: [f64; 8] = [
    0.16666666666666666,
    0.008333333333333333,
    0.0001984126984126984,
    2.7557319223985893e-06,
    2.505210838544172e-08,
    1.6059043836821613e-10,
    7.647163731819816e-13,
    2.8114572543455206e-15,
];
/// `cosh r = 1 + z C(z)`: Taylor to r^18 (truncation 2^-62).
const COSH_C: [f64; 9] = [
    0.5,
    0.041666666666666664,
    0.001388888888888889,
    2.48015873015873e-05,
    2.755731922398589e-07,
    2.08767569878681e-09,
    1.1470745597729725e-11,
    4.779477332387385e-14,
    1.5619206968586225e-16,
];

/// `c[0] + c[1] x + ... + c[7] x^7`, by Estrin's scheme.
#[inline(always)]
fn poly8<const F: bool>(x: f64, c: &[f64; 8]) -> f64 {
    let x2 = x * x;
    let lo = mla::<F>(x2, mla::<F>(c[3], x, c[2]), mla::<F>(c[1], x, c[0]));
    let hi = mla::<F>(x2, mla::<F>(c[7], x, c[6]), mla::<F>(c[5], x, c[4]));
    mla::<F>(x2 * x2, hi, lo)
}

/// `c[0] + c[1] x + ... + c[8] x^8`.
#[inline(always)]
fn poly9<const F: bool>(x: f64, c: &[f64; 9]) -> f64 {
    let x2 = x * x;
    let x4 = x2 * x2;
    let lo = mla::<F>(x2, mla::<F>(c[3], x, c[2]), mla::<F>(c[1], x, c[0]));
    let hi = mla::<F>(x2, mla::<F>(c[7], x, c[6]), mla::<F>(c[5], x, c[4]));
    mla::<F>(x4 * x4, c[8], mla::<F>(x4, hi, lo))
}

/// For `a >= 0` (nan kept): `(sinh a, cosh a)` up to the overflow point. With `a = n ln2 + r`,
/// `n = floor(a / ln2)` so that `r >= 0` and no term below cancels, `sinh a = A cosh r + B sinh r`
/// and `cosh a = B cosh r + A sinh r`, where `A, B = (2^n -+ 2^-n)/2`: no division and no second
/// exponential (the `expm1` form `(t + t/(t + 1))/2` spent most of its time dividing: 1.6
/// against NumPy's 1.2 ns). For n = 0, A = 0 and sinh is `sinh r` itself, accurate near 0. From
/// n = 60 on, A = B = 2^(n-1), applied as two factors so that only the last multiply overflows.
#[inline(always)]
fn sinh_cosh_core<const F: bool>(a: f64) -> (f64, f64) {
    let a = if a > HYP_CLAMP { HYP_CLAMP } else { a };
    // Rounding a / ln2 - 1/2 to nearest floors a / ln2, up to a hair of negative r at the ties.
    let t = mla::<F>(a, LOG2E, SHIFT - 0.5);
    let n = t - SHIFT;
    let rh = mla::<F>(-n, LN2_HI, a);
    let r = mla::<F>(-n, LN2_LO, rh);
    // The rounding error of r, folded in at first order (as `exp_reduce` does).
    let c = mla::<F>(-n, LN2_LO, rh - r);
    let z = r * r;
    let sr = r + mla::<F>(r * z, poly8::<F>(z, &SINH_S), c);
    // cosh r - 1, kept apart so that the leading terms below add exactly.
    let cm1 = mla::<F>(z, poly9::<F>(z, &COSH_C), c * r);
    let large = n > 60.0;
    let nm = if large { 60.0 } else { n };
    let (up, down) = (pow2(nm), pow2(-nm));
    let (half_diff, half_sum) = (0.5 * (up - down), 0.5 * (up + down));
    let sinh = half_diff + mla::<F>(half_diff, cm1, half_sum * sr);
    let cosh = half_sum + mla::<F>(half_sum, cm1, half_diff * sr);
    // Large: 2^(n-1) e^r = e^a / 2, with n - 1 <= 1024 split into two normal factors.
    let n1 = ((n - 1.0) * 0.5 + SHIFT) - SHIFT;
    let s1 = pow2(n1);
    let half_exp = mla::<F>(cm1 + sr, s1, s1) * pow2(n - 1.0 - n1);
    if large {
        (half_exp, half_exp)
    } else {
        (sinh, cosh)
    }
}

#[inline(always)]
pub(super) fn sinh_lane<const F: bool>(x: f64) -> f64 {
    let ax = x.abs();
    let y = with_sign_of(sinh_cosh_core::<F>(ax).0, x);
    if ax < HYP_TINY {
        x
    } else {
        y
    }
}

#[inline(always)]
pub(super) fn cosh_lane<const F: bool>(x: f64) -> f64 {
    sinh_cosh_core::<F>(x.abs()).1
}

/// `log1p(w)` where `small`, else `log(v) + ln2`, through one logarithm core: the lanes of the
/// inverse hyperbolics pick their form per lane without paying for both.
#[inline(always)]
fn log1p_or_log2x<const F: bool>(small: bool, w: f64, v: f64) -> f64 {
    let u1 = 1.0 + w;
    // The rounding error of 1 + w, folded in as c/u (as log1p's lane does).
    let c = if u1 < 2.0 { w - (u1 - 1.0) } else { 1.0 - (u1 - w) };
    let u = if small { u1 } else { v };
    let c_over_u = if small { c / u1 } else { 0.0 };
    // Subtracting -1 from the exponent field adds ln2 exactly in the core's k * ln2.
    let k_adj = if small { 0 } else { (1u64 << 52).wrapping_neg() };
    log_core::<F>(u, k_adj, c_over_u)
}

#[inline(always)]
pub(super) fn asinh_lane<const F: bool>(x: f64) -> f64 {
    let t = x.abs();
    // Up to 2: log1p(t + t^2/(1 + sqrt(1 + t^2))), no cancellation near 0. Above:
    // log((t + sqrt(1 + t^2))/2) + ln2, with t^2 formed only below 2^28 (the root is t above).
    let huge = t > HYP_HUGE;
    let tc = if huge { 1.0 } else { t };
    let t2 = tc * tc;
    let root = (1.0 + t2).sqrt();
    let w = t + t2 / (1.0 + root);
    let v = if huge { t } else { 0.5 * (t + root) };
    let y = with_sign_of(log1p_or_log2x::<F>(t <= 2.0, w, v), x);
    // The core takes positive finite arguments only: inf and nan are x itself.
    if t < HYP_TINY || !t.is_finite() {
        x
    } else {
        y
    }
}

#[inline(always)]
pub(super) fn acosh_lane<const F: bool>(x: f64) -> f64 {
    // The one root sqrt((x - 1)(x + 1)) serves both forms: up to 2, where x - 1 is exact,
    // log1p(x - 1 + root) keeps the accuracy near 1 (x - 1 + root, no cancellation); above,
    // log((x + root)/2) + ln2, with the product formed only below 2^28.
    let huge = x > HYP_HUGE;
    let xc = if huge { 2.0 } else { x };
    let root = ((xc - 1.0) * (xc + 1.0)).sqrt();
    let w = (x - 1.0) + root;
    let v = if huge { x } else { 0.5 * (x + root) };
    let y = log1p_or_log2x::<F>(x <= 2.0, w, v);
    let y = if x == f64::INFINITY { x } else { y };
    // Below 1 (the root is also real below -1) and nan: nan.
    if x >= 1.0 {
        y
    } else {
        f64::NAN
    }
}

#[inline(always)]
pub(super) fn atanh_lane<const F: bool>(x: f64) -> f64 {
    let t = x.abs();
    // atanh t = log1p(2t/(1 - t))/2. From 1/2 on 1 - t is exact and the quotient is best formed
    // whole; below, 2t + 2t^2/(1 - t) keeps the leading 2t exact. One division either way. At
    // t = 1 the quotient is inf (atanh = inf), beyond it is below -1 (nan).
    let low = t < 0.5;
    let num = if low { 2.0 * t * t } else { 2.0 * t };
    let q = num / (1.0 - t);
    let u = if low { 2.0 * t + q } else { q };
    let y = with_sign_of(0.5 * log1p_lane::<F>(u), x);
    if t < HYP_TINY {
        x
    } else {
        y
    }
}

#[inline(always)]
pub(super) fn sinh_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    map(x, out, sinh_lane::<F>);
}
#[inline(always)]
pub(super) fn cosh_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    map(x, out, cosh_lane::<F>);
}
#[inline(always)]
pub(super) fn asinh_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    map(x, out, asinh_lane::<F>);
}
#[inline(always)]
pub(super) fn acosh_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    map(x, out, acosh_lane::<F>);
}
#[inline(always)]
pub(super) fn atanh_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    map(x, out, atanh_lane::<F>);
}

#[cfg(target_arch = "x86_64")]
pub(super) use hyperbolic512::{
    cosh_body as cosh_avx512, cosh_one as cosh_avx512_one, sinh_body as sinh_avx512, sinh_one as sinh_avx512_one,
};

/// Explicit AVX-512 bodies of `sinh` and `cosh` on the exponential's table core (see
/// `exponential::avx512`). With `|x| = k ln2/16 + r`, `m = floor(k/16)`, both `e^|x|` and
/// `e^-|x|` are `2^m` times table values `T = 2^(j/16)` and `U = 2^(floor(-k/16) - m) 2^(j'/16)`
/// (the table indexed by `-k`), each with its tail, and `e^+-r = 1 + C +- S` with
/// `C = cosh r - 1`, `S = sinh r`. So `2 sinh|x| = 2^m ((T - U) + (T - U) C + (T + U) S +
/// tails)`, and `T - U` is exact wherever it cancels (`k <= 8`, Sterbenz): one formula over the
/// whole range, for `k = 0` exactly `S` itself, with no second polynomial and no branch for small
/// arguments (the branchy form, a polynomial for `|x| < 1`, mispredicted on mixed data: 1.38 ns
/// a value over a million against 1.07 on a repeated 4,096-value chunk). `cosh` swaps the roles
/// of `T - U` and `T + U`. The same functions' generic lanes serve the other levels.
#[cfg(target_arch = "x86_64")]
mod hyperbolic512 {
    use super::super::exponential::avx512::{entries, map512, reduce, splat, table, table_tail};
    use std::arch::x86_64::*;

    /// For `a >= 0` or NaN: `[T, U, T - U, T + U, C, r, S - r, tail_T, tail_U, m - 1]` as
    /// above (what a caller leaves unused is never computed: all of it is inlined). Past 711
    /// (where both functions overflow) `a` is clamped to keep `k` within the shifter; `U` then
    /// underflows to 0 in its scaling, harmlessly.
    #[inline(always)]
    unsafe fn parts(a: __m512d) -> [__m512d; 10] {
        // a >= 0 (or NaN, which vminpd keeps as its second operand): only the top needs a clamp.
        let (t, k, r) = reduce(_mm512_min_pd(splat(711.0), a));
        let idx = _mm512_castpd_si512(t);
        let neg = _mm512_sub_epi64(_mm512_setzero_si512(), idx);
        // m = floor(k/16); scalef floors -k/16 - m into floor(-k/16) - m.
        let k16 = _mm512_mul_pd(k, splat(0.0625));
        let m = _mm512_roundscale_pd::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(k16);
        let rel = _mm512_fnmsub_pd(k, splat(0.0625), m);
        let (up, up_tail) = (table(idx), table_tail(idx));
        let (down, down_tail) = (_mm512_scalef_pd(table(neg), rel), _mm512_scalef_pd(table_tail(neg), rel));
        // Taylor series, |r| <= ln2/32: the first terms left out are below 2^-60 of the result.
        let r2 = _mm512_mul_pd(r, r);
        let c = _mm512_fmadd_pd(r2, _mm512_fmadd_pd(r2, splat(1.0 / 720.0), splat(1.0 / 24.0)), splat(0.5));
        let s = _mm512_fmadd_pd(r2, _mm512_fmadd_pd(r2, splat(1.0 / 5040.0), splat(1.0 / 120.0)), splat(1.0 / 6.0));
        [
            up,
            down,
            _mm512_sub_pd(up, down),
            _mm512_add_pd(up, down),
            _mm512_mul_pd(r2, c),
            r,
            _mm512_mul_pd(_mm512_mul_pd(r, r2), s),
            up_tail,
            down_tail,
            // floor(k/16 - 1) = m - 1 in scalef's own floor.
            _mm512_fmsub_pd(k, splat(0.0625), splat(1.0)),
        ]
    }

    #[inline(always)]
    unsafe fn cosh(x: __m512d) -> __m512d {
        let [_, _, diff, sum, c, r, s3, up_tail, _, m1] = parts(_mm512_abs_pd(x));
        // U's tail is left out: U <= T, so it is below a quarter ulp of the sum (0.80 against
        // 0.93 ns a value with it, a chunk of 4,096).
        let small = _mm512_fmadd_pd(diff, s3, _mm512_fmadd_pd(sum, c, up_tail));
        _mm512_scalef_pd(_mm512_add_pd(sum, _mm512_fmadd_pd(diff, r, small)), m1)
    }

    #[inline(always)]
    unsafe fn sinh(x: __m512d) -> __m512d {
        let a = _mm512_abs_pd(x);
        let [up, down, diff, sum, c, r, s3, up_tail, down_tail, m1] = parts(a);
        let tail_diff = _mm512_sub_pd(up_tail, down_tail);
        // (T + U) r in two fused steps: T + U itself would round, by up to half an ulp of the
        // result where T - U and (T + U) S partly cancel (k = 1, r < 0).
        let small = _mm512_fmadd_pd(sum, s3, _mm512_fmadd_pd(diff, c, tail_diff));
        let y = _mm512_add_pd(diff, _mm512_fmadd_pd(up, r, _mm512_fmadd_pd(down, r, small)));
        let y = _mm512_scalef_pd(y, m1);
        let sign = _mm512_andnot_si512(_mm512_castpd_si512(a), _mm512_castpd_si512(x));
        _mm512_castsi512_pd(_mm512_or_si512(_mm512_castpd_si512(y), sign))
    }

    entries! {
        sinh: sinh_body, sinh_one;
        cosh: cosh_body, cosh_one;
    }
}
