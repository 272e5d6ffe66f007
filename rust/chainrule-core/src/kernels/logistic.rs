//! The sigmoid family: `sigmoid`, and `sigmoid_slope` (the sigmoid and its slope `s (1 - s)`
//! in one pass, also of a fused affine argument), with the tails patched in after the loop.

use super::*;

/// Below this, [`sigmoid_lane`] is wrong and the slice driver patches the lane with
/// [`sigmoid_tail`].
pub(super) const SIGMOID_TAIL: f64 = -36.0;
/// Above this, [`sigmoid_lane`] is wrong (its argument is not clamped) and the slice driver
/// patches the lane with 1, the correctly rounded sigmoid from 37.5 on.
pub(super) const SIGMOID_ONE: f64 = 40.0;

/// Whether [`sigmoid_lane`] cannot take `t`; [`sigmoid_edge`] gives those lanes.
#[inline(always)]
#[allow(clippy::manual_range_contains)] // NaN must not count as outside: the lane keeps it NaN
pub(super) fn sigmoid_outside(t: f64) -> bool {
    t < SIGMOID_TAIL || t > SIGMOID_ONE
}

/// The sigmoid where [`sigmoid_outside`] holds.
#[inline(always)]
pub(super) fn sigmoid_edge<const F: bool>(t: f64) -> f64 {
    if t < SIGMOID_TAIL {
        sigmoid_tail::<F>(t)
    } else {
        1.0
    }
}

#[inline(always)]
pub(super) fn sigmoid_lane<const F: bool>(x: f64) -> f64 {
    // 1/(1 + e^-x) is accurate when 1 + e^-x = 1 + 2^n (1 + p) is formed in
    // one rounding from the exact 1 + 2^n (-52 <= n <= 52, or 2^n below half
    // an ulp of 1 so that the sum rounds to 1 either way); the division adds
    // half an ulp. For x in [-36, 40], 2^n stays normal without a clamp on
    // n; lanes outside get garbage here and are patched (see
    // `patch_sigmoid`), so the loop carries no clamp (NaN propagates).
    //
    // The reduction leaves out `exp_reduce`'s correction term: in 1 + e^-x
    // the relative error of e^-x it recovers (at most 2^-55) is scaled by
    // e^-x/(1 + e^-x) < 1, so it costs at most a quarter ulp, and the bound
    // stays far inside 4 ulp (2 ulp against glibc either way in
    // tests/kernels.rs). With the tail patched in afterwards instead of
    // computed in every lane (a second exponential and three selects), the
    // vector loop went from 75 to 45 instructions per 4 lanes: 2.6 -> 2.2 ns
    // per element (AVX2+FMA, 1024-element chunks, best of 150), and W1 (two
    // sigmoids per sample) 10.4 -> 8.8 ms (thread CPU time, N = 1e6, one
    // thread, medians of 4 interleaved rounds of 15 calls).
    1.0 / sigmoid_den::<F>(x)
}

/// `1 + e^-x` of [`sigmoid_lane`], rounded once.
#[inline(always)]
pub(super) fn sigmoid_den<const F: bool>(x: f64) -> f64 {
    let (n, p) = exp_reduce_coarse::<F>(-x);
    let s = pow2(n);
    mla::<F>(s, p, 1.0 + s)
}

/// Sigmoid for `x < -36` (down through the subnormal range to `-inf`):
/// `e^x/(1 + e^x) = e^x - e^2x` to far below an ulp.
#[inline(always)]
pub(super) fn sigmoid_tail<const F: bool>(x: f64) -> f64 {
    let e = exp_lane::<F>(x);
    mla::<F>(-e, e, e)
}

/// The slope of the sigmoid from its value, `s (1 - s)`: the very operations
/// (and roundings) of the tape's `s * (1 - s)`, which its pullback builds.
#[inline(always)]
pub(super) fn slope_of_sigmoid(s: f64) -> f64 {
    s * (1.0 - s)
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
                d[i] = slope_of_sigmoid(out[i]);
            }
        }
    }
}
#[inline(always)]
pub(super) fn sigmoid_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    // Two loops, as in `finish_sigmoid_slope`: 2.10 -> 1.76-2.09 ns per element (the kernel
    // bench's best of 150, three runs).
    let outside = map_flagged(x, out, |v| (sigmoid_den::<F>(v), sigmoid_outside(v)));
    for s in out.iter_mut() {
        *s = 1.0 / *s;
    }
    if outside {
        patch_sigmoid::<F>(x, |v| v, out, None);
    }
}
#[inline(always)]
pub(super) fn sigmoid_slope_body<const F: bool>(x: &[f64], sig: &mut [f64], slope: &mut [f64]) {
    let outside = map_flagged(x, sig, |v| (sigmoid_den::<F>(v), sigmoid_outside(v)));
    finish_sigmoid_slope(sig, slope);
    if outside {
        patch_sigmoid::<F>(x, |v| v, sig, Some(slope));
    }
}

/// The second loop of the sigmoid-and-slope kernels: `sig` holds `1 + e^-x` on entry, and
/// leaves holding the sigmoid, with its slope in `slope`. Two loops instead of one (the same
/// operations, so the same bits) keep each loop's dependency chain short enough for the
/// out-of-order window to overlap more iterations: in one loop, ~57 instructions with a ~65-cycle
/// chain (the division's 13 in it) left 256 reorder-buffer entries short of the overlap.
/// W1 on one thread (process CPU time, medians of 10 interleaved processes of 30 calls):
/// 9.27 -> 8.85 ms.
#[inline(always)]
pub(super) fn finish_sigmoid_slope(sig: &mut [f64], slope: &mut [f64]) {
    assert_eq!(slope.len(), sig.len(), "kernel input and output lengths differ");
    for (s, d) in sig.iter_mut().zip(slope.iter_mut()) {
        *s = 1.0 / *s;
        *d = slope_of_sigmoid(*s);
    }
}
/// [`sigmoid_slope_body`] of `w * x + b`, the argument formed in the loop with two roundings
/// (Rust never contracts `w * v + b` into a fused multiply-add, also where FMA is enabled),
/// so bit for bit the tape's two arithmetic ops followed by the kernel.
#[inline(always)]
pub(super) fn sigmoid_slope_affine_body<const F: bool>(x: &[f64], w: f64, b: f64, sig: &mut [f64], slope: &mut [f64]) {
    let arg = |v: f64| w * v + b;
    let outside = map_flagged(x, sig, |v| {
        let t = arg(v);
        (sigmoid_den::<F>(t), sigmoid_outside(t))
    });
    finish_sigmoid_slope(sig, slope);
    if outside {
        patch_sigmoid::<F>(x, arg, sig, Some(slope));
    }
}
