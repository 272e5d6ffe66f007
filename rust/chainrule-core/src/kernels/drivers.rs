//! Slice drivers: run a lane function over a slice, the ragged tail through the same lane code
//! in a padded block so that a value never depends on its position, or-ing in a flag for lanes
//! a family patches afterwards. The square root needs nothing more than a driver.

use super::*;

#[inline(always)]
pub(super) fn sqrt_lane(x: f64) -> f64 {
    x.sqrt()
}

// ---------------------------------------------------------------------------
// Slice drivers.

/// Runs `lane` over the slice: [`map_flagged`] with no flag (which compiles away).
#[inline(always)]
pub(super) fn map<K: Fn(f64) -> f64>(x: &[f64], out: &mut [f64], lane: K) {
    map_flagged(x, out, |v| (lane(v), false));
}

/// Runs `lane` over the slice, the ragged tail through the same lane code via a padded block
/// so that results never depend on position or length; the lane also flags values it cannot
/// take, and this returns whether any did. The flag is or-ed in the same loop, so a rare-case
/// test costs no second pass over `x`.
#[inline(always)]
pub(super) fn map_flagged<K: Fn(f64) -> (f64, bool)>(x: &[f64], out: &mut [f64], lane: K) -> bool {
    assert_eq!(x.len(), out.len(), "kernel input and output lengths differ");
    let body = x.len() - x.len() % W;
    let (xb, xt) = x.split_at(body);
    let (ob, ot) = out.split_at_mut(body);
    let mut any = false;
    for (o, &v) in ob.iter_mut().zip(xb) {
        let (y, flag) = lane(v);
        *o = y;
        any |= flag;
    }
    if !xt.is_empty() {
        let mut xp = [0.0; W];
        xp[..xt.len()].copy_from_slice(xt);
        let mut op = [0.0; W];
        for (o, &v) in op.iter_mut().zip(&xp) {
            let (y, flag) = lane(v);
            *o = y;
            any |= flag;
        }
        ot.copy_from_slice(&op[..xt.len()]);
    }
    any
}

/// [`map_flagged`] for a lane with two results.
#[inline(always)]
pub(super) fn map2_flagged<K: Fn(f64) -> (f64, f64, bool)>(x: &[f64], out0: &mut [f64], out1: &mut [f64], lane: K) -> bool {
    assert!(x.len() == out0.len() && x.len() == out1.len(), "kernel input and output lengths differ");
    let body = x.len() - x.len() % W;
    let (xb, xt) = x.split_at(body);
    let (ob0, ot0) = out0.split_at_mut(body);
    let (ob1, ot1) = out1.split_at_mut(body);
    let mut any = false;
    for ((o0, o1), &v) in ob0.iter_mut().zip(ob1.iter_mut()).zip(xb) {
        let (a, b, flag) = lane(v);
        (*o0, *o1) = (a, b);
        any |= flag;
    }
    if !xt.is_empty() {
        let mut xp = [0.0; W];
        xp[..xt.len()].copy_from_slice(xt);
        let (mut op0, mut op1) = ([0.0; W], [0.0; W]);
        for ((o0, o1), &v) in op0.iter_mut().zip(op1.iter_mut()).zip(&xp) {
            let (a, b, flag) = lane(v);
            (*o0, *o1) = (a, b);
            any |= flag;
        }
        ot0.copy_from_slice(&op0[..xt.len()]);
        ot1.copy_from_slice(&op1[..xt.len()]);
    }
    any
}
#[inline(always)]
pub(super) fn sqrt_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    map(x, out, sqrt_lane);
}
