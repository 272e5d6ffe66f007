//! The error functions `erf` and `erfc`: the FreeBSD/Sun `s_erf.c` method (four intervals of
//! |x|, a rational approximation on each, and `erfc(x) = exp(-x^2 - 0.5625 + R/S)/x` in the
//! tails with `x^2` split so the exponential stays accurate), made branch-free so that it
//! vectorises: each lane picks its interval's coefficients with selects and evaluates one
//! rational function, then both exponentials of the tail form.

use super::*;

/// erf(1) rounded to single precision, as the method's middle interval is written around it.
const ERX: f64 = 0.8450629115104675;
const EFX8: f64 = 1.0270333367641007;
/// |x| bounds of the four intervals: 0.84375, 1.25 and 1/0.35 (its high word, 0x4006db6d).
const SMALL: f64 = 0.84375;
const MIDDLE: f64 = 1.25;
const TAIL: f64 = f64::from_bits(0x4006_db6d_0000_0000);
/// Below 2^-28, `x + x y` would round `x y` in the subnormal range.
const TINY: f64 = 3.725290298461914e-09;

/// Numerator coefficients per interval (ascending powers, zero-padded to eight).
const NUM: [[f64; 8]; 4] = [
    [0.12837916709551256, -0.3250421072470015, -0.02848174957559851, -0.005770270296489442, -2.3763016656650163e-05, 0.0, 0.0, 0.0],
    [
        -0.0023621185607526594,
        0.41485611868374833,
        -0.3722078760357013,
        0.31834661990116175,
        -0.11089469428239668,
        0.035478304325618236,
        -0.002166375594868791,
        0.0,
    ],
    [
        -0.009864944034847148,
        -0.6938585727071818,
        -10.558626225323291,
        -62.375332450326006,
        -162.39666946257347,
        -184.60509290671104,
        -81.2874355063066,
        -9.814329344169145,
    ],
    [
        -0.0098649429247001,
        -0.799283237680523,
        -17.757954917754752,
        -160.63638485582192,
        -637.5664433683896,
        -1025.0951316110772,
        -483.5191916086514,
        0.0,
    ],
];
/// Denominator coefficients per interval: `1 + t (d[0] + d[1] t + ...)`.
const DEN: [[f64; 8]; 4] = [
    [0.39791722395915535, 0.0650222499887673, 0.005081306281875766, 0.00013249473800432164, -3.960228278775368e-06, 0.0, 0.0, 0.0],
    [0.10642088040084423, 0.540397917702171, 0.07182865441419627, 0.12617121980876164, 0.01363708391202905, 0.011984499846799107, 0.0, 0.0],
    [
        19.651271667439257,
        137.65775414351904,
        434.56587747522923,
        645.3872717332679,
        429.00814002756783,
        108.63500554177944,
        6.570249770319282,
        -0.0604244152148581,
    ],
    [
        30.33806074348246,
        325.7925129965739,
        1536.729586084437,
        3199.8582195085955,
        2553.0504064331644,
        474.52854120695537,
        -22.44095244658582,
        0.0,
    ],
];

/// Estrin's scheme for eight coefficients.
#[inline(always)]
fn poly8<const F: bool>(t: f64, c: [f64; 8]) -> f64 {
    let t2 = t * t;
    let lo = mla::<F>(t2, mla::<F>(c[3], t, c[2]), mla::<F>(c[1], t, c[0]));
    let hi = mla::<F>(t2, mla::<F>(c[7], t, c[6]), mla::<F>(c[5], t, c[4]));
    mla::<F>(t2 * t2, hi, lo)
}

/// The row of `table` for the interval (`i0`: row 0, else `i1`: row 1, ...), by a select per
/// coefficient rather than a gather. A plain function, not a closure: closures do not inherit
/// the kernel's `target_feature`, and one that was not inlined made the AVX2 loop 9x slower
/// than the SSE2 one.
#[inline(always)]
fn pick(i0: bool, i1: bool, i2: bool, table: &[[f64; 8]; 4]) -> [f64; 8] {
    let mut c = [0.0; 8];
    for (j, v) in c.iter_mut().enumerate() {
        let tail = if i2 { table[2][j] } else { table[3][j] };
        let mid = if i1 { table[1][j] } else { tail };
        *v = if i0 { table[0][j] } else { mid };
    }
    c
}

/// What both functions need from `x`: `(ax, y, r)` with `ax = |x|`, `y` the interval's rational
/// `R/S` and `r = erfc(ax)` by the tail form (used where `ax >= 1.25`; 0 from 28 on).
#[inline(always)]
fn erf_parts<const F: bool>(x: f64) -> (f64, f64, f64) {
    let ax = x.abs();
    let (i0, i1, i2) = (ax < SMALL, ax < MIDDLE, ax < TAIL);
    let t = if i0 {
        x * x
    } else if i1 {
        ax - 1.0
    } else {
        1.0 / (ax * ax)
    };
    let y = poly8::<F>(t, pick(i0, i1, i2, &NUM)) / mla::<F>(t, poly8::<F>(t, pick(i0, i1, i2, &DEN)), 1.0);
    // exp(-ax^2 - 0.5625 + y) as exp(-z^2 - 0.5625) exp((z - ax)(z + ax) + y), z = ax cut to 21
    // bits: z^2 is exact and so is -z^2 - 0.5625 below 28, so the large exponent takes no
    // rounding and erfc keeps full relative accuracy down to its underflow at 27.3.
    let z = f64::from_bits(ax.to_bits() & 0xffff_ffff_0000_0000);
    let e1 = exp_lane::<F>(-(z * z) - 0.5625);
    let e2 = exp_lane::<F>(mla::<F>(z - ax, z + ax, y));
    let r = e1 * e2 / ax;
    // From 28 on erfc rounds to 0 (and z - ax would be nan at inf).
    (ax, y, if ax >= 28.0 { 0.0 } else { r })
}

#[inline(always)]
pub(super) fn erf_lane<const F: bool>(x: f64) -> f64 {
    let (ax, y, r) = erf_parts::<F>(x);
    let small = if ax < TINY { 0.125 * mla::<F>(EFX8, x, 8.0 * x) } else { mla::<F>(x, y, x) };
    let magnitude = if ax < MIDDLE { ERX + y } else { 1.0 - r };
    let signed = f64::from_bits(magnitude.to_bits() | (x.to_bits() & SIGN));
    let v = if ax < SMALL { small } else { signed };
    if x.is_nan() {
        x
    } else {
        v
    }
}

#[inline(always)]
pub(super) fn erfc_lane<const F: bool>(x: f64) -> f64 {
    let (ax, y, r) = erf_parts::<F>(x);
    let xy = x * y;
    // 1 - erf(x) below 1/4; from 1/4 to 0.84375, 0.5 - (x - 0.5 + x y) keeps the subtraction exact.
    let small = if x < 0.25 { 1.0 - (x + xy) } else { 0.5 - ((x - 0.5) + xy) };
    let middle = if x < 0.0 { 1.0 + (ERX + y) } else { (1.0 - ERX) - y };
    let tail = if x < 0.0 { 2.0 - r } else { r };
    let v = if ax < SMALL {
        small
    } else if ax < MIDDLE {
        middle
    } else {
        tail
    };
    if x.is_nan() {
        x
    } else {
        v
    }
}

/// [`map`] with the lane called in the loop itself: `map` calls its lane through a closure,
/// which does not inherit the kernel's `target_feature`, and a lane this large is not inlined
/// into it, so the AVX2 kernel ran scalar SSE code per element (243 ns a value, against 39 ns
/// for the SSE2 build); expanded here, the loop vectorises.
macro_rules! map_lane {
    ($x:expr, $out:expr, $lane:path) => {{
        let (x, out): (&[f64], &mut [f64]) = ($x, $out);
        assert_eq!(x.len(), out.len(), "kernel input and output lengths differ");
        let body = x.len() - x.len() % W;
        let (xb, xt) = x.split_at(body);
        let (ob, ot) = out.split_at_mut(body);
        for (o, &v) in ob.iter_mut().zip(xb) {
            *o = $lane(v);
        }
        if !xt.is_empty() {
            let mut xp = [0.0; W];
            xp[..xt.len()].copy_from_slice(xt);
            let mut op = [0.0; W];
            for (o, &v) in op.iter_mut().zip(&xp) {
                *o = $lane(v);
            }
            ot.copy_from_slice(&op[..xt.len()]);
        }
    }};
}

#[inline(always)]
pub(super) fn erf_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    map_lane!(x, out, erf_lane::<F>);
}
#[inline(always)]
pub(super) fn erfc_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    map_lane!(x, out, erfc_lane::<F>);
}
