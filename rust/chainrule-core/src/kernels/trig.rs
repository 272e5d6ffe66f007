//! The trigonometric family: `sin`, `cos`, `tan` and the fused `sin_cos` from a reduction by
//! multiples of pi/2 carried as a double-double; libm takes the lanes beyond `2^20`, inf and NaN.

use super::*;

pub(super) const TWO_OVER_PI: f64 = std::f64::consts::FRAC_2_PI;
// pi/2 = P1 + P2 + P3 + P4 to about 2^-160; P1..P3 have at most 33
// significant bits so n * Pi is exact for |n| < 2^20.
pub(super) const P1: f64 = f64::from_bits(0x3ff9_21fb_5440_0000);
pub(super) const P2: f64 = f64::from_bits(0x3dd0_b461_1a60_0000);
pub(super) const P3: f64 = f64::from_bits(0x3ba3_198a_2e00_0000);
pub(super) const P4: f64 = f64::from_bits(0x397b_839a_2520_49c1);
/// Beyond this the split-constant reduction is no longer exact; libm takes over.
pub(super) const TRIG_MAX: f64 = 1_048_576.0;
/// sin r = r + r z S(z), z = r^2, |r| <= pi/4 (rel. error 2^-58).
pub(super) const SIN_S: [f64; 6] = [
    -0.16666666666666632,
    0.008333333333322316,
    -0.00019841269829725216,
    2.755731366206148e-6,
    -2.5050753265092574e-8,
    1.5896504975467335e-10,
];
/// cos r = 1 - z/2 + z^2 C(z), z = r^2, |r| <= pi/4 (rel. error 2^-63.7).
pub(super) const COS_C: [f64; 6] = [
    0.0416666666666666,
    -0.001388888888887399,
    2.4801587289394903e-5,
    -2.7557314326023604e-7,
    2.087571955774313e-9,
    -1.1359448630332592e-11,
];

/// Reduces `x` by multiples of pi/2 and returns `(rh, rl, n)` with `x - n pi/2 = rh + rl`
/// (a double-double) where only the low two bits of `n` are meaningful. Valid for
/// `|x| <= TRIG_MAX`.
#[inline(always)]
pub(super) fn trig_reduce<const F: bool>(x: f64) -> (f64, f64, u64) {
    let t = mla::<F>(x, TWO_OVER_PI, SHIFT);
    let n = t - SHIFT;
    // Exact: n * P1 fits in 53 bits and cancels against x (Sterbenz).
    let a = x - n * P1;
    // The next two subtractions are carried as exact double-doubles with
    // Fast2Sum (3 operations instead of TwoSum's 6). Fast2Sum needs the
    // first operand to be a multiple of the second's ulp whenever it is the
    // smaller one: for n != 0, a is a multiple of 2^-53, and h1, when it is
    // that small, is the exact a - n P2, a multiple of 2^-65; n P2 and n P3
    // have ulps of at most 2^-66 and 2^-101.
    let b = n * P2;
    let h1 = a - b;
    let e1 = (a - h1) - b;
    let c = n * P3;
    let h = h1 - c;
    let e2 = (h1 - h) - c;
    let lo = mla::<F>(-n, P4, e1 + e2);
    let rh = h + lo;
    let rl = lo - (rh - h);
    (rh, rl, t.to_bits())
}

/// Reduces `x` by multiples of pi/2 and returns `(sin r, cos r, n)` where
/// only the low two bits of `n` are meaningful. Valid for `|x| <= TRIG_MAX`.
#[inline(always)]
pub(super) fn trig_core<const F: bool>(x: f64) -> (f64, f64, u64) {
    let (rh, rl, q) = trig_reduce::<F>(x);
    let z = rh * rh;
    // sin(rh + rl) ~ sin(rh) + rl; the dropped rl z/2 is under 0.2 ulp.
    let sp = z * poly6::<F>(z, &SIN_S);
    let sin_r = rh + mla::<F>(rh, sp, rl);
    // cos(rh + rl) ~ cos(rh) - rh rl; the rounding error of 1 - z/2 is
    // recovered exactly and folded into the small terms.
    let hz = 0.5 * z;
    let w = 1.0 - hz;
    let cp = z * z * poly6::<F>(z, &COS_C);
    let cos_r = w + (((1.0 - w) - hz) + (cp - rh * rl));
    (sin_r, cos_r, q)
}

/// sin or cos of the reduced argument by quadrant (`q` = n or n + 1).
#[inline(always)]
pub(super) fn quadrant(sin_r: f64, cos_r: f64, q: u64) -> f64 {
    let v = if q & 1 != 0 { cos_r } else { sin_r };
    f64::from_bits(v.to_bits() ^ ((q & 2) << 62))
}

/// Below 2^-26 sin(x) rounds to x itself (x^3/6 < half an ulp), below
/// 2^-27 so does tan(x); returning x also keeps -0.0.
pub(super) const SIN_TINY: f64 = 1.490_116_119_384_765_6e-8;
pub(super) const TAN_TINY: f64 = 7.450_580_596_923_828e-9;

#[inline(always)]
pub(super) fn sin_lane<const F: bool>(x: f64) -> f64 {
    let (s, c, q) = trig_core::<F>(x);
    let y = quadrant(s, c, q);
    if x.abs() < SIN_TINY {
        x
    } else {
        y
    }
}

#[inline(always)]
pub(super) fn cos_lane<const F: bool>(x: f64) -> f64 {
    let (s, c, q) = trig_core::<F>(x);
    quadrant(s, c, q.wrapping_add(1))
}

/// Both of [`sin_lane`] and [`cos_lane`] from one reduction, bit for bit the
/// same values (the same operations on the same reduced argument).
#[inline(always)]
pub(super) fn sin_cos_lane<const F: bool>(x: f64) -> (f64, f64) {
    let (s, c, q) = trig_core::<F>(x);
    let y = quadrant(s, c, q);
    let sin = if x.abs() < SIN_TINY { x } else { y };
    (sin, quadrant(s, c, q.wrapping_add(1)))
}

/// tan r = r (1 + z A(z)) / (1 + z B(z)), z = r^2, |r| <= pi/4 (rel. error 2^-62.6 with
/// these rounded coefficients): fitted for this module (linearised least squares in mpmath,
/// each coefficient rounded in turn and the rest refitted). Seven multiply-adds and one
/// division, where sin and cos over one quotient took twelve and the cosine's correction:
/// 1.2 against 1.6 ns a value at AVX-512 (1.1 with the FMA reduction).
const TAN_A: [f64; 3] = [-0.1333825833722476, 0.0034247767477011888, -1.7859859183112795e-05];
const TAN_B: [f64; 4] = [-0.46671591670558094, 0.025663415649561698, -0.00031179681654848777, 4.981065531667221e-07];

/// pi/2 = Q1 + Q2 + Q3: Q1 and Q2 the doubles nearest, Q3 (30 bits) the rest to 2^-136.
const Q1: f64 = std::f64::consts::FRAC_PI_2;
const Q2: f64 = f64::from_bits(0x3c91_a626_3314_5c07);
const Q3: f64 = f64::from_bits(0xb91f_1976_b7ed_8fbc);

/// [`trig_reduce`] with fused multiply-adds: `x - n Q1` is exact in one (x and n Q1 are
/// multiples of 2^-53 from |x| >= 1/2 on, the difference under 1), and `n Q2` is split
/// exactly with one more, where the split constants took two operations per part: four
/// fewer operations a lane (tan at AVX-512: 1.1 against 1.2 ns a value), the same
/// double-double to far below an ulp.
#[inline(always)]
fn trig_reduce_fma(x: f64) -> (f64, f64, u64) {
    let t = x.mul_add(TWO_OVER_PI, SHIFT);
    let n = t - SHIFT;
    let a = (-n).mul_add(Q1, x);
    let p = n * Q2;
    let pe = n.mul_add(Q2, -p);
    let h = a - p;
    // Fast2Sum: a is a multiple of 2^-53 (or x itself for n = 0), p's ulp is below 2^-60.
    let e = (a - h) - p;
    let lo = (-n).mul_add(Q3, e - pe);
    let rh = h + lo;
    let rl = lo - (rh - h);
    (rh, rl, t.to_bits())
}

#[inline(always)]
pub(super) fn tan_lane<const F: bool>(x: f64) -> f64 {
    let (rh, rl, q) = if F { trig_reduce_fma(x) } else { trig_reduce::<F>(x) };
    let z = rh * rh;
    let z2 = z * z;
    let a = mla::<F>(z2, TAN_A[2], mla::<F>(z, TAN_A[1], TAN_A[0]));
    let b = mla::<F>(z2, mla::<F>(z, TAN_B[3], TAN_B[2]), mla::<F>(z, TAN_B[1], TAN_B[0]));
    // num = rh + cn and den = 1 + cd are sin and cos of rh times one common factor, so the
    // tail rl turns them as it turns (sin, cos): tan(rh + rl) = (num + rl den) / (den - rl num)
    // to first order.
    let rz = rh * z;
    let cd = z * b;
    let cn = mla::<F>(rl, 1.0 + cd, rz * a);
    let cd = mla::<F>(-rl, rh + cn, cd);
    let den = 1.0 + cd;
    let num = rh + cn;
    // Odd quadrants take -cot r = -den / num.
    let odd = q & 1 != 0;
    let t = if odd { den } else { num } / if odd { num } else { den };
    let y = f64::from_bits(t.to_bits() ^ ((q & 1) << 63));
    if x.abs() < TAN_TINY {
        x
    } else {
        y
    }
}

/// Whether the fast trig reduction cannot take `v` (huge, infinite or NaN): libm does.
#[inline(always)]
pub(super) fn trig_needs_libm(v: f64) -> bool {
    v.is_nan() || v.abs() > TRIG_MAX
}

/// Replaces the lanes whose argument the fast path cannot reduce (huge, infinite or NaN) by
/// libm. The drivers call it only when their loop flagged such a lane (see
/// [`patch_sigmoid`] for why the test sits in the loop).
#[inline(always)]
pub(super) fn patch_trig(x: &[f64], out: &mut [f64], slow: fn(f64) -> f64) {
    for (o, &v) in out.iter_mut().zip(x) {
        if trig_needs_libm(v) {
            *o = slow(v);
        }
    }
}
#[inline(always)]
pub(super) fn sin_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    if map_flagged(x, out, |v| (sin_lane::<F>(v), trig_needs_libm(v))) {
        patch_trig(x, out, f64::sin);
    }
}
#[inline(always)]
pub(super) fn cos_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    if map_flagged(x, out, |v| (cos_lane::<F>(v), trig_needs_libm(v))) {
        patch_trig(x, out, f64::cos);
    }
}
#[inline(always)]
pub(super) fn sin_cos_body<const F: bool>(x: &[f64], sin: &mut [f64], cos: &mut [f64]) {
    let outside = map2_flagged(x, sin, cos, |v| {
        let (s, c) = sin_cos_lane::<F>(v);
        (s, c, trig_needs_libm(v))
    });
    if outside {
        patch_trig(x, sin, f64::sin);
        patch_trig(x, cos, f64::cos);
    }
}
#[inline(always)]
pub(super) fn tan_body<const F: bool>(x: &[f64], out: &mut [f64]) {
    if map_flagged(x, out, |v| (tan_lane::<F>(v), trig_needs_libm(v))) {
        patch_trig(x, out, f64::tan);
    }
}
