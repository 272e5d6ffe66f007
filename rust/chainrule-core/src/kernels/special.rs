//! The error functions `erf` and `erfc`: the FreeBSD/Sun `s_erf.c` method (four intervals of
//! |x|, a rational approximation on each, and `erfc(x) = exp(-x^2 - 0.5625 + R/S)/x` in the
//! tails with `x^2` split so the exponential stays accurate), made branch-free so that it
//! vectorises: each lane picks its interval's coefficients with selects and evaluates one
//! rational function, then both exponentials of the tail form.

use super::*;

/// erf(1) rounded to single precision, as the method's middle interval is written around it.
const ERX: f64 = 8.450_629_115_104_675_292_97e-1;
const EFX8: f64 = 1.027_033_336_764_100_690_53e0;
/// |x| bounds of the four intervals: 0.84375, 1.25 and 1/0.35 (its high word, 0x4006db6d).
const SMALL: f64 = 0.84375;
const MIDDLE: f64 = 1.25;
const TAIL: f64 = f64::from_bits(0x4006_db6d_0000_0000);
/// Below 2^-28, `x + x y` would round `x y` in the subnormal range.
const TINY: f64 = 3.725_290_298_461_914e-9;

/// Numerator coefficients per interval (ascending powers, zero-padded to eight).
const NUM: [[f64; 8]; 4] = [
    [
        1.283_791_670_955_125_585_61e-1,
        -3.250_421_072_470_014_993_70e-1,
        -2.848_174_957_559_851_047_66e-2,
        -5.770_270_296_489_441_591_57e-3,
        -2.376_301_665_665_016_260_84e-5,
        0.0,
        0.0,
        0.0,
    ],
    [
        -2.362_118_560_752_659_440_77e-3,
        4.148_561_186_837_483_316_66e-1,
        -3.722_078_760_357_013_238_47e-1,
        3.183_466_199_011_617_536_74e-1,
        -1.108_946_942_823_966_774_76e-1,
        3.547_830_432_561_823_593_71e-2,
        -2.166_375_594_868_790_843_00e-3,
        0.0,
    ],
    [
        -9.864_944_034_847_148_227_05e-3,
        -6.938_585_727_071_817_643_72e-1,
        -1.055_862_622_532_329_098_14e1,
        -6.237_533_245_032_600_603_96e1,
        -1.623_966_694_625_734_703_55e2,
        -1.846_050_929_067_110_359_94e2,
        -8.128_743_550_630_659_342_46e1,
        -9.814_329_344_169_145_485_92e0,
    ],
    [
        -9.864_942_924_700_099_285_97e-3,
        -7.992_832_376_805_230_065_74e-1,
        -1.775_795_491_775_475_198_89e1,
        -1.606_363_848_558_219_160_62e2,
        -6.375_664_433_683_896_277_22e2,
        -1.025_095_131_611_077_249_54e3,
        -4.835_191_916_086_513_970_19e2,
        0.0,
    ],
];
/// Denominator coefficients per interval: `1 + t (d[0] + d[1] t + ...)`.
const DEN: [[f64; 8]; 4] = [
    [
        3.979_172_239_591_553_528_19e-1,
        6.502_224_998_876_729_444_85e-2,
        5.081_306_281_875_765_627_76e-3,
        1.324_947_380_043_216_445_26e-4,
        -3.960_228_278_775_368_123_20e-6,
        0.0,
        0.0,
        0.0,
    ],
    [
        1.064_208_804_008_442_282_86e-1,
        5.403_979_177_021_710_489_37e-1,
        7.182_865_441_419_626_628_68e-2,
        1.261_712_198_087_616_421_12e-1,
        1.363_708_391_202_905_073_62e-2,
        1.198_449_984_679_910_741_70e-2,
        0.0,
        0.0,
    ],
    [
        1.965_127_166_743_925_712_92e1,
        1.376_577_541_435_190_426_00e2,
        4.345_658_774_752_292_288_21e2,
        6.453_872_717_332_678_803_36e2,
        4.290_081_400_275_678_333_86e2,
        1.086_350_055_417_794_351_34e2,
        6.570_249_770_319_281_701_35e0,
        -6.042_441_521_485_809_874_38e-2,
    ],
    [
        3.033_806_074_348_245_829_24e1,
        3.257_925_129_965_739_188_26e2,
        1.536_729_586_084_436_959_94e3,
        3.199_858_219_508_595_539_08e3,
        2.553_050_406_433_164_425_83e3,
        4.745_285_412_069_553_672_15e2,
        -2.244_095_244_658_581_833_62e1,
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
