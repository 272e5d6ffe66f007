//! The hyperbolic family: `sinh` and `cosh` from the exponential's reduction
//! `|x| = n ln2 + r` (one reduction each, no second exponential), and `asinh`, `acosh`, `atanh`
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

#[inline(always)]
pub(super) fn sinh_lane<const F: bool>(x: f64) -> f64 {
    let ax = x.abs();
    let a = if ax > HYP_CLAMP { HYP_CLAMP } else { ax };
    let (n, p) = exp_reduce::<F>(a);
    // Below 22: with t = expm1(a) = 2^n p + (2^n - 1) (one rounding, as expm1's lane),
    // sinh a = (t + t/(t + 1))/2, a sum of two positive terms that never cancels, also near 0.
    // From 22 on, e^-a is below 2^-63 of e^a: sinh a = e^a / 2, scaled without overflowing early.
    let s = pow2(if n > 60.0 { 60.0 } else { n });
    let t = mla::<F>(s, p, s - 1.0);
    let near = 0.5 * (t + t / (t + 1.0));
    let far = scale_1p::<F>(n - 1.0, p);
    let y = with_sign_of(if ax < 22.0 { near } else { far }, x);
    if ax < HYP_TINY {
        x
    } else {
        y
    }
}

#[inline(always)]
pub(super) fn cosh_lane<const F: bool>(x: f64) -> f64 {
    let ax = x.abs();
    let a = if ax > HYP_CLAMP { HYP_CLAMP } else { ax };
    let (n, p) = exp_reduce::<F>(a);
    // h = e^a / 2 (normal for every a >= 0, inf past the overflow point); cosh a = h + 1/(4h),
    // two positive terms: about an ulp with no select between forms.
    let h = scale_1p::<F>(n - 1.0, p);
    h + 0.25 / h
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
