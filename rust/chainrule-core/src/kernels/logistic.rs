//! The sigmoid family: `sigmoid`, and `sigmoid_slope` (the sigmoid and its slope
//! `sigmoid(x) sigmoid(-x)` in one pass, also of a fused affine argument), with the tails patched
//! in after the loop.

use super::*;

/// Beyond this `|x|`, [`sigmoid_lane`] is wrong (`2^n` of `e^-|x|` leaves the normal range; the
/// argument is not clamped) and the slice driver patches the lane: with [`sigmoid_tail`] below,
/// with 1 (the correctly rounded sigmoid from 37.5 on) above.
pub(super) const SIGMOID_EDGE: f64 = 700.0;

/// Whether [`sigmoid_lane`] cannot take `t`; [`sigmoid_edge`] gives those lanes.
#[inline(always)]
#[allow(clippy::manual_range_contains)] // NaN must not count as outside: the lane keeps it NaN
pub(super) fn sigmoid_outside(t: f64) -> bool {
    t < -SIGMOID_EDGE || t > SIGMOID_EDGE
}

/// The sigmoid where [`sigmoid_outside`] holds.
#[inline(always)]
pub(super) fn sigmoid_edge<const F: bool>(t: f64) -> f64 {
    if t < -SIGMOID_EDGE {
        sigmoid_tail::<F>(t)
    } else {
        1.0
    }
}

#[inline(always)]
pub(super) fn sigmoid_lane<const F: bool>(x: f64) -> f64 {
    let (den, e) = sigmoid_parts::<F>(x);
    sigmoid_finish(den, e, x).0
}

/// `(1 + e, e)` with `e = e^-|x|`: the sigmoid of `x` and of `-x` are `r = 1/(1 + e)` and `e r`,
/// one each, so [`sigmoid_finish`] gives both from one exponential.
#[inline(always)]
pub(super) fn sigmoid_parts<const F: bool>(x: f64) -> (f64, f64) {
    // 1/(1 + e) is accurate when 1 + e = 1 + 2^n (1 + p) is formed in one rounding from the
    // exact 1 + 2^n (-52 <= n <= 0, or 2^n below half an ulp of 1 so that the sum rounds to 1
    // either way); the division adds half an ulp, and `e r` below zero one rounding more. For
    // |x| <= 700, 2^n stays normal without a clamp on n; lanes outside get garbage here and are
    // patched (see `patch_sigmoid`), so the loop carries no clamp (NaN propagates).
    //
    // The reduction leaves out `exp_reduce`'s correction term: in 1 + e the relative error of e
    // it recovers (at most 2^-55) is scaled by e/(1 + e) < 1, so it costs at most a quarter ulp.
    let (n, p) = exp_reduce_coarse::<F>(-x.abs());
    let s = pow2(n);
    (mla::<F>(s, p, 1.0 + s), mla::<F>(s, p, s))
}

/// From [`sigmoid_parts`] of `x`: `(sigmoid(x), sigmoid(x) * sigmoid(-x))`, the slope rounded as
/// the tape's `sigmoid(x) * sigmoid(-x)` rounds it. The choice by `x`'s sign bit is one blend; at
/// `x = -0` it does not matter (`e = 1`).
#[inline(always)]
pub(super) fn sigmoid_finish(den: f64, e: f64, x: f64) -> (f64, f64) {
    let r = 1.0 / den;
    let er = e * r;
    let s = if x.is_sign_negative() { er } else { r };
    (s, r * er)
}

/// Sigmoid for `x < -700` (down through the subnormal range to `-inf`):
/// `e^x/(1 + e^x) = e^x - e^2x` to far below an ulp.
#[inline(always)]
pub(super) fn sigmoid_tail<const F: bool>(x: f64) -> f64 {
    let e = exp_lane::<F>(x);
    mla::<F>(-e, e, e)
}

/// The slope of the sigmoid at `t` where [`sigmoid_outside`] holds: the very operations (and
/// roundings) of the tape's `sigmoid(t) * sigmoid(-t)`, which its pullback builds.
#[inline(always)]
pub(super) fn edge_slope<const F: bool>(t: f64) -> f64 {
    sigmoid_edge::<F>(t) * sigmoid_edge::<F>(-t)
}

/// Replaces the lanes whose argument `arg(x[i])` is outside [`sigmoid_lane`]'s range by
/// [`sigmoid_edge`] (and their slopes, if given). The drivers call it only when their loop
/// flagged such a lane: or-ing the test into the loop, and dropping the clamp on the lane's
/// argument that kept those lanes finite, took W1 (two fused affine sigmoids per sample, one
/// thread, process CPU time, medians of 6 interleaved processes of 40 calls) from 8.17 to
/// 7.71 ms, against a separate any-test pass. Results are bit for bit unchanged.
#[inline(always)]
pub(super) fn patch_sigmoid<const F: bool>(x: &[f64], arg: impl Fn(f64) -> f64, out: &mut [f64], mut slope: Option<&mut [f64]>) {
    for (i, &v) in x.iter().enumerate() {
        let t = arg(v);
        if sigmoid_outside(t) {
            out[i] = sigmoid_edge::<F>(t);
            if let Some(d) = slope.as_deref_mut() {
                d[i] = edge_slope::<F>(t);
            }
        }
    }
}
#[inline(always)]
pub(super) fn sigmoid_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    let outside = map_flagged(x, out, |v| (sigmoid_lane::<F>(v), sigmoid_outside(v)));
    if outside {
        patch_sigmoid::<F>(x, |v| v, out, None);
    }
}
#[inline(always)]
pub(super) fn sigmoid_slope_body<const F: bool>(x: &[f64], sig: &mut [f64], slope: &mut [f64]) {
    let outside = map2_flagged(x, sig, slope, |v| {
        let (den, e) = sigmoid_parts::<F>(v);
        let (s, d) = sigmoid_finish(den, e, v);
        (s, d, sigmoid_outside(v))
    });
    if outside {
        patch_sigmoid::<F>(x, |v| v, sig, Some(slope));
    }
}

/// [`sigmoid_slope_body`] of `w * x + b`, the argument formed in the loop with two roundings
/// (Rust never contracts `w * v + b` into a fused multiply-add, also where FMA is enabled),
/// so bit for bit the tape's two arithmetic ops followed by the kernel.
#[inline(always)]
pub(super) fn sigmoid_slope_affine_body<const F: bool>(x: &[f64], w: f64, b: f64, sig: &mut [f64], slope: &mut [f64]) {
    let arg = |v: f64| w * v + b;
    let outside = map2_flagged(x, sig, slope, |v| {
        let t = arg(v);
        let (den, e) = sigmoid_parts::<F>(t);
        let (s, d) = sigmoid_finish(den, e, t);
        (s, d, sigmoid_outside(t))
    });
    if outside {
        patch_sigmoid::<F>(x, arg, sig, Some(slope));
    }
}

// softplus and log_sigmoid

/// `softplus(x) = max(x, 0) + log1p(e^-|x|)`: `e^-|x|` is at most 1, so neither term overflows;
/// the correction's error (exp's ulp, then log1p's, each at most 1 relative to it) is scaled
/// down by the sum from x = 0 on, and is the whole result, accurate to its last bits, below
/// (softplus(-700) = e^-700). NaN stays NaN through log1p.
#[inline(always)]
pub(super) fn softplus_lane<const F: bool>(x: f64) -> f64 {
    let c = log1p_lane::<F>(exp_lane::<F>(-x.abs()));
    let m = if x > 0.0 { x } else { 0.0 };
    m + c
}

/// `log_sigmoid(x) = -softplus(-x)`, the same bits as the reference's spelling.
#[inline(always)]
pub(super) fn log_sigmoid_lane<const F: bool>(x: f64) -> f64 {
    -softplus_lane::<F>(-x)
}

#[inline(always)]
pub(super) fn softplus_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    map(x, out, softplus_lane::<F>);
}
#[inline(always)]
pub(super) fn log_sigmoid_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    map(x, out, log_sigmoid_lane::<F>);
}

/// `logaddexp(a, b) = max(a, b) + log1p(e^-|a - b|)`, as NumPy's: `a + ln 2` where `a == b`
/// (so two infinities of one sign give that infinity, not the nan of `a - b`), and the nan of
/// `a - b` where either is nan. Within 2 ulp of the exact value except where the result is
/// near 0 (`e^a + e^b` near 1: `max` and the correction cancel), where its error is absolute,
/// about 2^-53, as NumPy's.
#[inline(always)]
pub(super) fn logaddexp_lane<const F: bool>(a: f64, b: f64) -> f64 {
    let d = a - b;
    let m = if a > b { a } else { b };
    let c = log1p_lane::<F>(exp_lane::<F>(-d.abs()));
    let y = if d.is_nan() { d } else { m + c };
    if a == b {
        a + std::f64::consts::LN_2
    } else {
        y
    }
}
