//! Accuracy, semantics and position-invariance tests for the chunk kernels.
//! Accuracy is measured against glibc's libm (via the `f64` methods), itself
//! within about an ulp, so the figures include the reference's own error.
//! Every test runs on every dispatch level the machine supports.

use chainrule_core::kernels::{self, levels, levels::Level};

type LevelKernel = fn(Level, &[f64], &mut [f64]);
type Kernel = fn(&[f64], &mut [f64]);
type Scalar = fn(f64) -> f64;

/// The error bound promised by the module.
const MAX_ULP: u64 = 4;
/// The evaluator's chunk size; inputs are fed in chunks like the tape does.
const CHUNK: usize = 1024;

/// SplitMix64: tiny, seeded, good enough for spreading test points.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    /// Any bit pattern: log-uniform over the whole f64 range, both signs,
    /// subnormals, infinities and NaNs included.
    fn bits(&mut self) -> f64 {
        f64::from_bits(self.next_u64())
    }
}

/// Builds the input points for one function, group by group.
struct Inputs {
    rng: Rng,
    xs: Vec<f64>,
}

impl Inputs {
    fn new(seed: u64) -> Self {
        let mut me = Inputs { rng: Rng(seed), xs: Vec::new() };
        me.xs.extend(SPECIALS);
        me
    }
    fn uniform(mut self, n: usize, lo: f64, hi: f64) -> Self {
        for _ in 0..n {
            let v = self.rng.uniform(lo, hi);
            self.xs.push(v);
        }
        self
    }
    fn bits(mut self, n: usize) -> Self {
        for _ in 0..n {
            let v = self.rng.bits();
            self.xs.push(v);
        }
        self
    }
    fn positive_bits(mut self, n: usize) -> Self {
        for _ in 0..n {
            let v = self.rng.bits().abs();
            self.xs.push(v);
        }
        self
    }
    fn subnormals(mut self, n: usize) -> Self {
        for _ in 0..n {
            let b = self.rng.next_u64() & ((1 << 52) - 1);
            self.xs.push(f64::from_bits(b));
            self.xs.push(-f64::from_bits(b));
        }
        self
    }
    /// `radius` consecutive doubles on each side of every point.
    fn around(mut self, points: &[f64], radius: u64) -> Self {
        for &p in points {
            for d in 0..=2 * radius {
                let b = p.to_bits().wrapping_add(d).wrapping_sub(radius);
                self.xs.push(f64::from_bits(b));
            }
        }
        self
    }
    fn values(mut self, v: &[f64]) -> Self {
        self.xs.extend_from_slice(v);
        self
    }
}

const SPECIALS: [f64; 28] = [
    0.0,
    -0.0,
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::NAN,
    -f64::NAN,
    f64::MIN_POSITIVE,
    -f64::MIN_POSITIVE,
    5e-324,
    -5e-324,
    2.225_073_858_507_201e-308,
    f64::MAX,
    f64::MIN,
    1.0,
    -1.0,
    0.5,
    -0.5,
    2.0,
    -2.0,
    1e-300,
    -1e-300,
    1e300,
    -1e300,
    1e22,
    std::f64::consts::PI,
    std::f64::consts::FRAC_PI_2,
    std::f64::consts::FRAC_PI_4,
    std::f64::consts::LN_2,
];

/// Position on a line where adjacent doubles are adjacent integers and both
/// zeros meet at 0.
fn ordered(x: f64) -> i64 {
    let b = x.to_bits() as i64;
    if b < 0 {
        -(b & i64::MAX)
    } else {
        b
    }
}

/// ulp distance, or why the pair is not comparable at all.
fn ulp_error(got: f64, want: f64) -> Result<u64, &'static str> {
    if got.is_nan() || want.is_nan() {
        return if got.is_nan() && want.is_nan() { Ok(0) } else { Err("NaN mismatch") };
    }
    if got.is_infinite() || want.is_infinite() {
        return if got == want { Ok(0) } else { Err("infinity mismatch") };
    }
    if got == 0.0 && want == 0.0 && got.is_sign_negative() != want.is_sign_negative() {
        return Err("sign of zero differs");
    }
    Ok((ordered(got) as i128 - ordered(want) as i128).unsigned_abs() as u64)
}

/// Runs `kernel` in evaluator-sized chunks and returns the max ulp error,
/// panicking on NaN/inf/zero-sign mismatches or errors above the bound.
fn check(name: &str, level: Level, kernel: LevelKernel, reference: impl Fn(f64) -> f64, xs: &[f64]) -> u64 {
    let mut got = vec![0.0; xs.len()];
    for (xc, oc) in xs.chunks(CHUNK).zip(got.chunks_mut(CHUNK)) {
        kernel(level, xc, oc);
    }
    let mut worst = (0u64, 0.0f64);
    for (&x, &g) in xs.iter().zip(&got) {
        let want = reference(x);
        match ulp_error(g, want) {
            Ok(u) if u > worst.0 => worst = (u, x),
            Ok(_) => {}
            Err(why) => panic!("{name} [{level:?}] x={x:e} ({:#x}): got {g:e}, want {want:e}: {why}", x.to_bits()),
        }
    }
    let (u, x) = worst;
    println!("{name:8} {:10} {:>9} points  max {u} ulp (at x = {x:e})", level.name(), xs.len());
    assert!(
        u <= MAX_ULP,
        "{name} [{level:?}]: {u} ulp at x={x:e} ({:#x}): got {:e}, want {:e}",
        x.to_bits(),
        {
            let mut o = [0.0];
            kernel(level, &[x], &mut o);
            o[0]
        },
        reference(x)
    );
    u
}

fn check_all_levels(name: &str, kernel: LevelKernel, reference: impl Fn(f64) -> f64, xs: &[f64]) {
    for level in levels::available() {
        check(name, level, kernel, &reference, xs);
    }
}

// ---------------------------------------------------------------------------
// Accuracy, one test per function so they run in parallel.

#[test]
fn exp_accuracy() {
    let xs = Inputs::new(1)
        .uniform(1_000_000, -746.0, 710.0)
        .uniform(500_000, -1.0, 1.0)
        .uniform(200_000, -1e-6, 1e-6)
        .bits(1_000_000)
        .around(
            &[
                709.782_712_893_384,
                -708.396_418_532_264_1,
                -745.133_219_101_941_1,
                -744.44,
                0.346_573_590_279_972_6,
                -0.346_573_590_279_972_6,
            ],
            20_000,
        )
        .xs;
    check_all_levels("exp", levels::exp, f64::exp, &xs);
}

#[test]
fn expm1_accuracy() {
    let xs = Inputs::new(2)
        .uniform(800_000, -50.0, 710.0)
        .uniform(800_000, -1.0, 1.0)
        .uniform(200_000, -1e-5, 1e-5)
        .bits(1_000_000)
        .around(
            &[
                709.782_712_893_384,
                0.346_573_590_279_972_6,
                -0.346_573_590_279_972_6,
                1.039_720_770_839_917_9,
                -37.5,
                41.93,
                -45.0,
                5.551e-17,
                -5.551e-17,
            ],
            20_000,
        )
        .xs;
    check_all_levels("expm1", levels::expm1, f64::exp_m1, &xs);
}

#[test]
fn log_accuracy() {
    let xs = Inputs::new(3)
        .positive_bits(1_300_000)
        .subnormals(100_000)
        .uniform(1_000_000, 0.5, 2.0)
        .uniform(200_000, 1.0 - 1e-8, 1.0 + 1e-8)
        .bits(300_000)
        .around(&[1.0, std::f64::consts::SQRT_2, std::f64::consts::FRAC_1_SQRT_2, f64::MIN_POSITIVE, f64::MAX], 20_000)
        .xs;
    check_all_levels("log", levels::log, f64::ln, &xs);
}

#[test]
fn log1p_accuracy() {
    let xs = Inputs::new(4)
        .uniform(1_000_000, -1.0, 1.0)
        .positive_bits(1_000_000)
        .uniform(100_000, -1.0, -0.999)
        .uniform(200_000, -1e-9, 1e-9)
        .subnormals(50_000)
        .bits(300_000)
        .around(&[-1.0, 0.0, 1.0, 5.551e-17, -5.551e-17, std::f64::consts::SQRT_2 - 1.0, 9007199254740992.0], 20_000)
        .xs;
    check_all_levels("log1p", levels::log1p, f64::ln_1p, &xs);
}

/// Doubles within a few ulps of `k pi/2`, where the reduced argument nearly
/// cancels: the hardest inputs for the Cody-Waite reduction.
fn near_pi_multiples(rng: &mut Rng, n: usize, kmax: f64) -> Vec<f64> {
    let mut v = Vec::with_capacity(n * 7);
    for i in 0..n {
        let k = if i < 2000 { i as f64 } else { (rng.unit() * kmax).round() };
        let p = k * std::f64::consts::FRAC_PI_2;
        for d in 0..7u64 {
            let x = f64::from_bits(p.to_bits().wrapping_add(d).wrapping_sub(3));
            v.push(x);
            v.push(-x);
        }
    }
    v
}

fn trig_inputs(seed: u64) -> Vec<f64> {
    let mut inp = Inputs::new(seed)
        .uniform(1_000_000, -10.0, 10.0)
        .uniform(500_000, -1_048_576.0, 1_048_576.0)
        .uniform(200_000, -1e-7, 1e-7)
        .bits(400_000)
        .around(
            &[
                1_048_576.0,
                -1_048_576.0,
                1.490_116_119_384_765_6e-8,
                -1.490_116_119_384_765_6e-8,
                7.450_580_596_923_828e-9,
                -7.450_580_596_923_828e-9,
            ],
            20_000,
        );
    let near = near_pi_multiples(&mut inp.rng, 60_000, 667_000.0);
    // The doubles below 2^20 closest to a multiple of pi/2 (found offline
    // with mpmath); 91.106186954104 is within 2^-59.5 of 58 pi/2.
    let closest = [
        91.106_186_954_104,
        364.424_747_816_416,
        728.849_495_632_832,
        1_457.698_991_265_664,
        642_615.918_884_445_8,
        91_553.863_907_240_55,
        413_441.447_194_050_76,
    ];
    let mirrored: Vec<f64> = closest.iter().flat_map(|&v| [v, -v]).collect();
    inp = inp.values(&near).around(&mirrored, 16);
    inp.xs
}

#[test]
fn sin_accuracy() {
    check_all_levels("sin", levels::sin, f64::sin, &trig_inputs(5));
}

#[test]
fn cos_accuracy() {
    check_all_levels("cos", levels::cos, f64::cos, &trig_inputs(6));
}

/// A two-output kernel (`sin_cos`, `sigmoid_slope`) at one level.
type PairKernel = fn(Level, &[f64], &mut [f64], &mut [f64]);

/// The first output of a two-output kernel, as a one-output kernel for the shared checks.
fn first_of(pair: PairKernel, level: Level, x: &[f64], out: &mut [f64]) {
    let mut second = vec![0.0; x.len()];
    pair(level, x, out, &mut second);
}

/// The second output of a two-output kernel.
fn second_of(pair: PairKernel, level: Level, x: &[f64], out: &mut [f64]) {
    let mut first = vec![0.0; x.len()];
    pair(level, x, &mut first, out);
}

const SIN_COS_SIN: LevelKernel = |level, x, out| first_of(levels::sin_cos, level, x, out);
const SIN_COS_COS: LevelKernel = |level, x, out| second_of(levels::sin_cos, level, x, out);
const SIGMOID_SLOPE_SIGMOID: LevelKernel = |level, x, out| first_of(levels::sigmoid_slope, level, x, out);
const SIGMOID_SLOPE_SLOPE: LevelKernel = |level, x, out| second_of(levels::sigmoid_slope, level, x, out);

#[test]
fn sin_cos_accuracy() {
    let xs = trig_inputs(8);
    check_all_levels("sin_cos.sin", SIN_COS_SIN, f64::sin, &xs);
    check_all_levels("sin_cos.cos", SIN_COS_COS, f64::cos, &xs);
}

/// The evaluator fuses `sin(a)` and `cos(a)` into one `sin_cos`: that must not change a bit.
#[test]
fn sin_cos_equals_sin_and_cos_bitwise() {
    let xs = trig_inputs(9);
    for level in levels::available() {
        for chunk in xs.chunks(CHUNK) {
            let (mut s, mut c) = (vec![0.0; chunk.len()], vec![0.0; chunk.len()]);
            levels::sin_cos(level, chunk, &mut s, &mut c);
            let (mut s1, mut c1) = (vec![0.0; chunk.len()], vec![0.0; chunk.len()]);
            levels::sin(level, chunk, &mut s1);
            levels::cos(level, chunk, &mut c1);
            for i in 0..chunk.len() {
                assert_eq!(s[i].to_bits(), s1[i].to_bits(), "sin [{level:?}] x={:e}", chunk[i]);
                assert_eq!(c[i].to_bits(), c1[i].to_bits(), "cos [{level:?}] x={:e}", chunk[i]);
            }
        }
    }
}

#[test]
fn tan_accuracy() {
    check_all_levels("tan", levels::tan, f64::tan, &trig_inputs(7));
}

#[test]
fn tanh_accuracy() {
    let xs = Inputs::new(8)
        .uniform(1_000_000, -25.0, 25.0)
        .uniform(800_000, -1.0, 1.0)
        .uniform(200_000, -1e-7, 1e-7)
        .bits(1_000_000)
        .around(
            &[
                3.725_290_298_461_914e-9,
                -3.725_290_298_461_914e-9,
                0.173_286_795_139_986_3,
                0.866_433_975_699_931_6,
                -0.866_433_975_699_931_6,
                19.06,
                22.0,
                -22.0,
            ],
            20_000,
        )
        .xs;
    check_all_levels("tanh", levels::tanh, f64::tanh, &xs);
}

/// Sigmoid reference: libm `exp`, then `1 + e` and the division carried in
/// double-double so the reference adds nothing to libm's exp error.
fn sigmoid_ref(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let e = (-x.abs()).exp();
    let hi = 1.0 + e;
    let lo = e - (hi - 1.0);
    let num = if x < 0.0 { e } else { 1.0 };
    let q = num / hi;
    let rem = (-q).mul_add(hi, num) - q * lo;
    q + rem / hi
}

#[test]
fn sigmoid_accuracy() {
    let xs = sigmoid_inputs(9);
    check_all_levels("sigmoid", levels::sigmoid, sigmoid_ref, &xs);
}

/// Inputs for the sigmoid checks: the whole range, the edges at -700 and 700 where the lane is
/// patched, where `1 + e^-|x|` rounds to 1 (36 to 40) and where the result underflows.
fn sigmoid_inputs(seed: u64) -> Vec<f64> {
    Inputs::new(seed)
        .uniform(800_000, -750.0, 750.0)
        .uniform(1_000_000, -40.0, 40.0)
        .uniform(200_000, -1e-3, 1e-3)
        .bits(1_000_000)
        .around(&[-708.396_418_532_264_1, -745.133_219_101_941_1, 36.0, -36.0, -40.0, 40.0, 37.5, 700.0, -700.0], 20_000)
        .xs
}

#[test]
fn sigmoid_slope_accuracy() {
    let xs = sigmoid_inputs(11);
    check_all_levels("sigmoid_slope.sigmoid", SIGMOID_SLOPE_SIGMOID, sigmoid_ref, &xs);
}

/// The slope `sigmoid(x) sigmoid(-x) = e/(1 + e)^2`, `e = e^-|x|`, with `(1 + e)^2` and the
/// division carried in double-double so the reference adds nothing to libm's exp error.
fn sigmoid_slope_ref(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let e = (-x.abs()).exp();
    let hi = 1.0 + e;
    let lo = e - (hi - 1.0);
    let sq = hi * hi;
    let sq_lo = hi.mul_add(hi, -sq) + 2.0 * hi * lo;
    let q = e / sq;
    let rem = (-q).mul_add(sq, e) - q * sq_lo;
    q + rem / sq
}

/// The slope keeps full relative accuracy in both tails, where `s (1 - s)` cancels to 0
/// (from x = 37.5 on) or loses digits (1e-3 relative at x = 30). It is the product of two
/// sigmoids (2 ulp each) rounded once, so its bound is 6 ulp, not a transcendental's 4 (5 seen,
/// where the result sits just below a power of two).
#[test]
fn sigmoid_slope_slope_accuracy() {
    let xs = sigmoid_inputs(14);
    for level in levels::available() {
        let mut got = vec![0.0; xs.len()];
        for (xc, oc) in xs.chunks(CHUNK).zip(got.chunks_mut(CHUNK)) {
            SIGMOID_SLOPE_SLOPE(level, xc, oc);
        }
        for (&x, &g) in xs.iter().zip(&got) {
            let want = sigmoid_slope_ref(x);
            let u = ulp_error(g, want).unwrap_or_else(|why| panic!("slope [{level:?}] x={x:e}: got {g:e}, want {want:e}: {why}"));
            assert!(u <= 6, "slope [{level:?}]: {u} ulp at x={x:e}: got {g:e}, want {want:e}");
        }
    }
}

/// The evaluator fuses `s = sigmoid(a)` and `s * sigmoid(-a)` into one `sigmoid_slope`: that
/// must not change a bit of either.
#[test]
fn sigmoid_slope_equals_sigmoid_and_arithmetic_bitwise() {
    let mut xs = sigmoid_inputs(12);
    xs.extend(SPECIALS);
    for level in levels::available() {
        for chunk in xs.chunks(CHUNK) {
            let (mut s, mut d) = (vec![0.0; chunk.len()], vec![0.0; chunk.len()]);
            levels::sigmoid_slope(level, chunk, &mut s, &mut d);
            let (mut s1, mut s2) = (vec![0.0; chunk.len()], vec![0.0; chunk.len()]);
            levels::sigmoid(level, chunk, &mut s1);
            let negated: Vec<f64> = chunk.iter().map(|x| -x).collect();
            levels::sigmoid(level, &negated, &mut s2);
            for i in 0..chunk.len() {
                let d1 = s1[i] * s2[i];
                let x = chunk[i];
                assert_eq!(s[i].to_bits(), s1[i].to_bits(), "sigmoid [{level:?}] x={x:e}");
                assert!(d[i].to_bits() == d1.to_bits() || (d[i].is_nan() && d1.is_nan()), "slope [{level:?}] x={x:e}");
            }
        }
    }
}

/// `sigmoid_slope_affine` forms `w * x + b` in its loop: bit for bit `sigmoid_slope` of the
/// argument computed beforehand (two roundings), tail lanes below -700 and odd lengths included.
#[test]
fn sigmoid_slope_affine_equals_the_composed_kernel_bitwise() {
    let mut xs = sigmoid_inputs(13);
    xs.extend(SPECIALS);
    for level in levels::available() {
        for (w, b) in [(0.7, -0.2), (-3.5, 40.0), (1e-3, -37.0), (2.0, -1000.0), (1.0, 0.0), (f64::INFINITY, 1.0)] {
            for chunk in xs.chunks(CHUNK - 3) {
                let n = chunk.len();
                let (mut s, mut d) = (vec![0.0; n], vec![0.0; n]);
                levels::sigmoid_slope_affine(level, chunk, w, b, &mut s, &mut d);
                let t: Vec<f64> = chunk.iter().map(|x| w * x + b).collect();
                let (mut s1, mut d1) = (vec![0.0; n], vec![0.0; n]);
                levels::sigmoid_slope(level, &t, &mut s1, &mut d1);
                for i in 0..n {
                    let same = |p: f64, q: f64| p.to_bits() == q.to_bits() || (p.is_nan() && q.is_nan());
                    assert!(same(s[i], s1[i]) && same(d[i], d1[i]), "[{level:?}] w={w} b={b} x={:e}", chunk[i]);
                }
            }
        }
    }
}

#[test]
fn sqrt_accuracy() {
    let xs = Inputs::new(10).bits(1_000_000).positive_bits(1_000_000).subnormals(50_000).xs;
    for level in levels::available() {
        assert_eq!(check("sqrt", level, levels::sqrt, f64::sqrt, &xs), 0);
    }
}

// ---------------------------------------------------------------------------
// Semantics that a ulp bound alone would not pin down.

fn single(f: Kernel, x: f64) -> f64 {
    let mut o = [0.0];
    f(&[x], &mut o);
    o[0]
}

#[test]
fn special_values_match_numpy() {
    use kernels::*;
    let inf = f64::INFINITY;
    let same = |a: f64, b: f64| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
    let cases: &[(&str, Kernel, f64, f64)] = &[
        ("log(-1)", log, -1.0, f64::NAN),
        ("log(0)", log, 0.0, -inf),
        ("log(-0)", log, -0.0, -inf),
        ("log(inf)", log, inf, inf),
        ("log(-inf)", log, -inf, f64::NAN),
        ("log(1)", log, 1.0, 0.0),
        ("log1p(-1)", log1p, -1.0, -inf),
        ("log1p(-2)", log1p, -2.0, f64::NAN),
        ("log1p(-0)", log1p, -0.0, -0.0),
        ("log1p(inf)", log1p, inf, inf),
        ("exp(-inf)", exp, -inf, 0.0),
        ("exp(inf)", exp, inf, inf),
        ("exp(-0)", exp, -0.0, 1.0),
        ("exp(709.79)", exp, 709.79, inf),
        ("exp(-745.2)", exp, -745.2, 0.0),
        ("expm1(-0)", expm1, -0.0, -0.0),
        ("expm1(-inf)", expm1, -inf, -1.0),
        ("expm1(inf)", expm1, inf, inf),
        ("sigmoid(-inf)", sigmoid, -inf, 0.0),
        ("sigmoid(inf)", sigmoid, inf, 1.0),
        ("sigmoid(-0)", sigmoid, -0.0, 0.5),
        ("sigmoid(-800)", sigmoid, -800.0, 0.0),
        ("tanh(inf)", tanh, inf, 1.0),
        ("tanh(-inf)", tanh, -inf, -1.0),
        ("tanh(-0)", tanh, -0.0, -0.0),
        ("sqrt(-1)", sqrt, -1.0, f64::NAN),
        ("sqrt(-0)", sqrt, -0.0, -0.0),
        ("sqrt(inf)", sqrt, inf, inf),
        ("sin(inf)", sin, inf, f64::NAN),
        ("sin(-inf)", sin, -inf, f64::NAN),
        ("cos(inf)", cos, inf, f64::NAN),
        ("tan(inf)", tan, inf, f64::NAN),
        ("sin(-0)", sin, -0.0, -0.0),
        ("tan(-0)", tan, -0.0, -0.0),
        ("cos(-0)", cos, -0.0, 1.0),
        ("sin(1e300)", sin, 1e300, 1e300f64.sin()),
        ("cos(1e300)", cos, 1e300, 1e300f64.cos()),
        ("tan(1e300)", tan, 1e300, 1e300f64.tan()),
    ];
    for &(what, f, x, want) in cases {
        let got = single(f, x);
        assert!(same(got, want), "{what}: got {got:e}, want {want:e}");
    }
    for &k in Unary::ALL {
        for nan in [f64::NAN, -f64::NAN] {
            let mut o = [0.0];
            run(k, &[nan], &mut o);
            assert!(o[0].is_nan(), "{k:?}: NaN must propagate");
        }
    }
}

#[test]
fn dispatch_level_is_the_best_available() {
    let name = kernels::dispatch_level();
    let best = *levels::available().last().unwrap();
    assert_eq!(name, best.name());
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        assert!(name == "avx2+fma" || name == "avx512", "{name}");
    }
    #[cfg(target_arch = "aarch64")]
    assert_eq!(name, "neon");
}

// ---------------------------------------------------------------------------
// Results must not depend on where a value sits or how long the slice is.

/// A kernel with its level chosen by the caller.
type AnyKernel = Box<dyn Fn(Level, &[f64], &mut [f64])>;

/// Every kernel of the `kernels!` list, two-output ones as one entry per output.
fn every_kernel() -> Vec<(String, AnyKernel)> {
    let mut all: Vec<(String, AnyKernel)> = kernels::Unary::ALL
        .iter()
        .map(|&k| (k.name().to_string(), Box::new(move |l: Level, x: &[f64], o: &mut [f64]| levels::run(l, k, x, o)) as Box<_>))
        .collect();
    for &(name, pair) in levels::PAIRS {
        all.push((format!("{name}.0"), Box::new(move |l, x, o| first_of(pair, l, x, o))));
        all.push((format!("{name}.1"), Box::new(move |l, x, o| second_of(pair, l, x, o))));
    }
    all
}

#[test]
fn results_do_not_depend_on_position_or_length() {
    let mut rng = Rng(42);
    let mut xs: Vec<f64> = (0..1031)
        .map(|i| match i % 5 {
            0 => rng.bits(),
            1 => rng.uniform(-3.0, 3.0),
            2 => rng.uniform(-800.0, 800.0),
            3 => rng.uniform(-2e6, 2e6),
            _ => rng.uniform(0.0, 1e-3),
        })
        .collect();
    xs[..SPECIALS.len()].copy_from_slice(&SPECIALS);
    for level in levels::available() {
        for (name, f) in every_kernel() {
            let mut full = vec![0.0; xs.len()];
            f(level, &xs, &mut full);
            let mut single = [0.0];
            for (i, &x) in xs.iter().enumerate() {
                f(level, &[x], &mut single);
                assert_eq!(single[0].to_bits(), full[i].to_bits(), "{name} [{level:?}] x={x:e} alone vs at {i}");
            }
            // Every length from 0 to 3 blocks, at offsets that move each value
            // through all lane positions and into the padded tail.
            for start in [0usize, 1, 3, 7, 8, 500, 1003] {
                for len in 0..=24 {
                    let end = (start + len).min(xs.len());
                    let mut part = vec![0.0; end - start];
                    f(level, &xs[start..end], &mut part);
                    for (j, v) in part.iter().enumerate() {
                        assert_eq!(v.to_bits(), full[start + j].to_bits(), "{name} [{level:?}] slice {start}..{end} index {j}");
                    }
                }
            }
        }
    }
}

/// The latency path evaluates single values through `kernels::one`: every value must be bit
/// for bit what the slice kernel gives, special values, tails and huge arguments included.
#[test]
fn single_value_entry_points_equal_the_slice_kernels_bitwise() {
    use kernels::Unary;
    let mut xs = trig_inputs(11);
    xs.extend(sigmoid_inputs(12));
    let mut rng = Rng(13);
    xs.extend((0..20_000).map(|_| rng.bits()));
    xs.extend((0..20_000).map(|_| rng.uniform(-800.0, 800.0)));
    for level in levels::available() {
        for &kernel in Unary::ALL {
            let mut want = vec![0.0; xs.len()];
            for (x, w) in xs.chunks(CHUNK).zip(want.chunks_mut(CHUNK)) {
                levels::run(level, kernel, x, w);
            }
            for (&x, w) in xs.iter().zip(&want) {
                let got = kernels::one_at(level, kernel, x);
                assert_eq!(got.to_bits(), w.to_bits(), "{kernel:?} [{level:?}] x={x:e}: {got:e} vs {w:e}");
            }
        }
    }
}

#[test]
#[should_panic(expected = "lengths differ")]
fn mismatched_lengths_panic() {
    let mut out = [0.0; 3];
    kernels::exp(&[1.0, 2.0], &mut out);
}

// ---------------------------------------------------------------------------
// Timing harness: `cargo test --release --test kernels -- --ignored --nocapture`.

#[test]
#[ignore]
fn bench_against_libm() {
    use std::hint::black_box;
    use std::time::Instant;
    let mut rng = Rng(7);
    let typical: [(&str, LevelKernel, Scalar, f64, f64); 14] = [
        ("exp", levels::exp, f64::exp, -700.0, 700.0),
        ("expm1", levels::expm1, f64::exp_m1, -5.0, 5.0),
        ("log", levels::log, f64::ln, 1e-3, 1e3),
        ("log1p", levels::log1p, f64::ln_1p, -0.9, 10.0),
        ("sin", levels::sin, f64::sin, -100.0, 100.0),
        ("cos", levels::cos, f64::cos, -100.0, 100.0),
        ("tan", levels::tan, f64::tan, -100.0, 100.0),
        ("tanh", levels::tanh, f64::tanh, -5.0, 5.0),
        ("sigmoid", levels::sigmoid, |x| 1.0 / (1.0 + (-x).exp()), -20.0, 20.0),
        ("sqrt", levels::sqrt, f64::sqrt, 0.0, 1e6),
        ("erf", levels::erf, |x| chainrule_core::ops::Op::Erf.eval(x, 0.0), -5.0, 5.0),
        ("erfc", levels::erfc, |x| chainrule_core::ops::Op::Erfc.eval(x, 0.0), -5.0, 25.0),
        ("softplus", levels::softplus, |x| chainrule_core::ops::Op::Softplus.eval(x, 0.0), -30.0, 30.0),
        ("log_sigmoid", levels::log_sigmoid, |x| chainrule_core::ops::Op::LogSigmoid.eval(x, 0.0), -30.0, 30.0),
    ];
    // Best of several short runs: the machine may be shared, and the minimum
    // is the figure least disturbed by other load.
    let reps = 200;
    let time = |run: &mut dyn FnMut()| {
        (0..150)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..reps {
                    run();
                }
                t.elapsed().as_secs_f64() * 1e9 / (reps * CHUNK) as f64
            })
            .fold(f64::INFINITY, f64::min)
    };
    for (name, f, libm, lo, hi) in typical {
        let x: Vec<f64> = (0..CHUNK).map(|_| rng.uniform(lo, hi)).collect();
        let mut out = vec![0.0; CHUNK];
        let libm_ns = time(&mut || {
            for (o, &v) in out.iter_mut().zip(black_box(&x)) {
                *o = libm(v);
            }
            black_box(&mut out);
        });
        let mut line = format!("{name:8} libm {libm_ns:6.2} ns");
        for level in levels::available() {
            let ns = time(&mut || {
                f(level, black_box(&x), &mut out);
                black_box(&mut out);
            });
            line += &format!("  {} {ns:5.2} ns ({:4.1}x)", level.name(), libm_ns / ns);
        }
        println!("{line}");
    }
    // The fused pair against the two kernels it replaces.
    let x: Vec<f64> = (0..CHUNK).map(|_| rng.uniform(-100.0, 100.0)).collect();
    let (mut s, mut c) = (vec![0.0; CHUNK], vec![0.0; CHUNK]);
    let mut line = "sin_cos ".to_string();
    for level in levels::available() {
        let pair = time(&mut || {
            levels::sin_cos(level, black_box(&x), &mut s, &mut c);
            black_box((&mut s, &mut c));
        });
        let apart = time(&mut || {
            levels::sin(level, black_box(&x), &mut s);
            levels::cos(level, black_box(&x), &mut c);
            black_box((&mut s, &mut c));
        });
        line += &format!("  {} {pair:5.2} ns (sin + cos {apart:5.2} ns)", level.name());
    }
    println!("{line}");
    let x: Vec<f64> = (0..CHUNK).map(|_| rng.uniform(-20.0, 20.0)).collect();
    let mut line = "sigmoid_slope".to_string();
    for level in levels::available() {
        let pair = time(&mut || {
            levels::sigmoid_slope(level, black_box(&x), &mut s, &mut c);
            black_box((&mut s, &mut c));
        });
        line += &format!("  {} {pair:5.2} ns", level.name());
    }
    println!("{line}");
}

// ---------------------------------------------------------------------------
// The general power, a two-input kernel.

/// Pairs for `pow`: bases over the whole positive range with exponents that put the result
/// anywhere from the underflow to the overflow boundary, moderate bases and exponents, bases
/// near 1 with huge exponents, negative bases with integer and non-integer exponents, and
/// every pair of special values.
fn pow_pairs(seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = Rng(seed);
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for _ in 0..600_000 {
        let x = rng.bits().abs();
        let w = rng.uniform(-760.0, 720.0);
        let y = if x.is_finite() && x > 0.0 && x != 1.0 { w / x.ln() } else { rng.uniform(-5.0, 5.0) };
        xs.push(x);
        ys.push(y);
    }
    for _ in 0..600_000 {
        xs.push(rng.uniform(0.0, 10.0));
        ys.push(rng.uniform(-60.0, 60.0));
    }
    for _ in 0..300_000 {
        let x = 1.0 + rng.uniform(-1e-6, 1e-6);
        xs.push(x);
        ys.push(rng.uniform(-7e8, 7e8));
    }
    for _ in 0..200_000 {
        xs.push(rng.uniform(-10.0, 0.0));
        let n = (rng.uniform(-40.0, 40.0)).round();
        ys.push(if rng.unit() < 0.5 { n } else { n + rng.uniform(0.0, 1.0) });
    }
    for _ in 0..200_000 {
        xs.push(rng.bits());
        ys.push(rng.bits());
    }
    // Around sqrt(2) and 1, where the logarithm's reduction is at its edges.
    for d in 0..20_000u64 {
        for p in [std::f64::consts::SQRT_2, std::f64::consts::FRAC_1_SQRT_2, 1.0] {
            xs.push(f64::from_bits(p.to_bits() + d - 10_000));
            ys.push(rng.uniform(-700.0, 700.0) / 0.35);
        }
    }
    // Both sides of every edge of the AVX-512 body's 32 table slices per octave (bit patterns
    // 0x3fe7c.. + i 2^47) in a few octaves, with exponents that take the result far out.
    for i in 0..32u64 {
        for octave in [-1000i64, -3, 0, 1, 700] {
            let edge = (0x3fe7_c000_0000_0000u64 + (i << 47)).wrapping_add_signed(octave << 52);
            for d in 0..64u64 {
                xs.push(f64::from_bits(edge + d - 32));
                ys.push(rng.uniform(-700.0, 700.0) / f64::from_bits(edge).ln().abs().max(1e-3));
            }
        }
    }
    let specials = [SPECIALS.as_slice(), &[3.0, -3.0, 0.5, -0.5, 1.5, 1e-310, 1023.0, 1024.0, -1075.0, 0.3]].concat();
    for &x in &specials {
        for &y in &specials {
            xs.push(x);
            ys.push(y);
        }
    }
    (xs, ys)
}

#[test]
fn pow_accuracy_and_special_cases() {
    let (xs, ys) = pow_pairs(41);
    for level in levels::available() {
        let mut got = vec![0.0; xs.len()];
        for ((xc, yc), oc) in xs.chunks(CHUNK).zip(ys.chunks(CHUNK)).zip(got.chunks_mut(CHUNK)) {
            levels::pow(level, xc, yc, oc);
        }
        let mut worst = (0u64, 0.0, 0.0);
        for ((&x, &y), &g) in xs.iter().zip(&ys).zip(&got) {
            let want = x.powf(y);
            match ulp_error(g, want) {
                Ok(u) if u > worst.0 => worst = (u, x, y),
                Ok(_) => {}
                Err(why) => panic!("pow [{level:?}] ({x:e}, {y:e}): got {g:e}, want {want:e}: {why}"),
            }
            // C's special cases are exact: results libm gives as 0, 1, inf or NaN.
            if want == 0.0 || want == 1.0 || want.is_infinite() {
                assert_eq!(g.to_bits(), want.to_bits(), "pow [{level:?}] ({x:e}, {y:e})");
            }
        }
        println!("pow      {:10} {:>9} pairs  max {} ulp (at {:e} ** {:e})", level.name(), xs.len(), worst.0, worst.1, worst.2);
        assert!(worst.0 <= MAX_ULP, "pow [{level:?}]: {} ulp at {:e} ** {:e}", worst.0, worst.1, worst.2);
    }
}

/// A double-double `x ** y` for moderate arguments, to measure the kernel's own error rather
/// than the error against libm (which is itself up to about half an ulp off).
#[test]
fn pow_true_error_on_integer_powers_is_small() {
    // x ** n for small integer n by exact double-double products: the kernel's result must be
    // within 1 ulp of the correctly rounded value.
    let mut rng = Rng(43);
    for level in levels::available() {
        for _ in 0..100_000 {
            let x = rng.uniform(0.5, 2.0);
            let n = (rng.uniform(2.0, 9.0)).floor() as i32;
            let (mut hi, mut lo) = (x, 0.0f64);
            for _ in 1..n {
                let p = hi * x;
                let e = hi.mul_add(x, -p) + lo * x;
                (hi, lo) = (p + e, e - ((p + e) - p));
            }
            let got = levels::one_pow(level, x, n as f64);
            let err = ((got - hi) - lo).abs() / ulp_of(hi);
            assert!(err <= 1.0, "pow [{level:?}] {x:e} ** {n}: {got:e}, exact {hi:e} + {lo:e}: {err} ulp");
        }
    }
}

fn ulp_of(x: f64) -> f64 {
    f64::from_bits(x.abs().to_bits() + 1) - x.abs()
}

#[test]
fn pow_is_position_independent_and_single_values_agree() {
    let (xs, ys) = pow_pairs(42);
    let (xs, ys) = (&xs[xs.len() - 5_000..], &ys[ys.len() - 5_000..]);
    for level in levels::available() {
        let mut whole = vec![0.0; xs.len()];
        levels::pow(level, xs, ys, &mut whole);
        for start in [0, 1, 3, 7, 13] {
            for len in [1, 5, 8, 9, 1023] {
                let end = (start + len).min(xs.len());
                let mut part = vec![0.0; end - start];
                levels::pow(level, &xs[start..end], &ys[start..end], &mut part);
                for (i, v) in part.iter().enumerate() {
                    assert_eq!(v.to_bits(), whole[start + i].to_bits(), "pow [{level:?}] at {start}+{i} of {len}");
                }
            }
        }
        for (i, (&x, &y)) in xs.iter().zip(ys).enumerate() {
            assert_eq!(levels::one_pow(level, x, y).to_bits(), whole[i].to_bits(), "pow [{level:?}] single ({x:e}, {y:e})");
        }
    }
}

#[test]
#[should_panic(expected = "lengths differ")]
fn pow_mismatched_lengths_panic() {
    kernels::pow(&[1.0, 2.0], &[1.0], &mut [0.0, 0.0]);
}

/// Per-value time of `pow` at each level against libm's, for the module's table:
/// `cargo test --release --test kernels bench_pow -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_pow() {
    let mut rng = Rng(44);
    let xs: Vec<f64> = (0..CHUNK).map(|_| rng.uniform(0.1, 10.0)).collect();
    let ys: Vec<f64> = (0..CHUNK).map(|_| rng.uniform(-5.0, 5.0)).collect();
    let mut out = vec![0.0; CHUNK];
    let mut time = |f: &mut dyn FnMut(&mut [f64])| {
        let mut best = f64::INFINITY;
        for _ in 0..200 {
            let t = std::time::Instant::now();
            f(&mut out);
            best = best.min(t.elapsed().as_secs_f64());
        }
        best * 1e9 / CHUNK as f64
    };
    for level in levels::available() {
        let ns = time(&mut |o: &mut [f64]| levels::pow(level, &xs, &ys, o));
        println!("pow {:10} {ns:.2} ns", level.name());
    }
    let ns = time(&mut |o: &mut [f64]| {
        for ((o, x), y) in o.iter_mut().zip(&xs).zip(&ys) {
            *o = x.powf(*y);
        }
    });
    println!("pow libm       {ns:.2} ns");
}

// ---------------------------------------------------------------------------
// exponentials, logarithms, roots: against the op table's `eval` (the reference semantics
// the evaluator promises; libm here), each kernel of the family as its op runs it.

/// The op table's reference semantics of a unary op (`eval`), the oracle its kernel is
/// checked against.
fn op_eval(op: chainrule_core::ops::Op) -> impl Fn(f64) -> f64 {
    move |x| op.eval(x, 0.0)
}

#[test]
fn exp2_accuracy() {
    let integers: Vec<f64> = (-1080..=1030).map(f64::from).collect();
    let xs = Inputs::new(21)
        .uniform(1_000_000, -1080.0, 1030.0)
        .uniform(500_000, -1.0, 1.0)
        .uniform(200_000, -1e-6, 1e-6)
        .bits(1_000_000)
        .values(&integers)
        .around(&[1024.0, -1022.0, -1074.0, -1075.0, -1076.0, 0.5, -0.5, 1023.5, 0.0], 20_000)
        .xs;
    check_all_levels("exp2", levels::exp2, op_eval(chainrule_core::ops::Op::Exp2), &xs);
}

/// Logarithms: the whole positive range, subnormals, around 1 (where the result cancels) and
/// the reduction's boundary sqrt(2), exact powers of the base.
fn log_inputs(seed: u64) -> Vec<f64> {
    let powers: Vec<f64> = (-1074..=1023).map(|k| f64::from(k).exp2()).chain((0..=22).map(|k| 10f64.powi(k))).collect();
    Inputs::new(seed)
        .positive_bits(1_300_000)
        .subnormals(100_000)
        .uniform(1_000_000, 0.5, 2.0)
        .uniform(200_000, 1.0 - 1e-8, 1.0 + 1e-8)
        .bits(300_000)
        .values(&powers)
        .around(&[1.0, std::f64::consts::SQRT_2, std::f64::consts::FRAC_1_SQRT_2, f64::MIN_POSITIVE, f64::MAX, 10.0], 20_000)
        .xs
}

#[test]
fn log2_accuracy() {
    check_all_levels("log2", levels::log2, op_eval(chainrule_core::ops::Op::Log2), &log_inputs(22));
}

#[test]
fn log10_accuracy() {
    check_all_levels("log10", levels::log10, op_eval(chainrule_core::ops::Op::Log10), &log_inputs(23));
}

#[test]
fn cbrt_accuracy() {
    let cubes: Vec<f64> = (-2000..=2000).map(|k: i32| f64::from(k).powi(3)).collect();
    let xs = Inputs::new(24)
        .uniform(1_000_000, -10.0, 10.0)
        .bits(1_500_000)
        .subnormals(100_000)
        .values(&cubes)
        .around(&[1.0, -1.0, 8.0, f64::MIN_POSITIVE, f64::MAX, 5e-324], 20_000)
        .xs;
    check_all_levels("cbrt", levels::cbrt, op_eval(chainrule_core::ops::Op::Cbrt), &xs);
}

/// What the kernels give exactly, beyond the ulp bound: 2^n, log2(2^n), the cube root of a
/// perfect cube, and the signs of zero.
#[test]
fn exp2_log2_cbrt_are_exact_where_exactness_is_expected() {
    for level in levels::available() {
        let one = |k: LevelKernel, x: f64| {
            let mut o = [0.0];
            k(level, &[x], &mut o);
            o[0]
        };
        for n in -1074..=1023 {
            let p = if n >= -1022 { f64::from_bits(((n + 1023) as u64) << 52) } else { f64::from_bits(1 << (n + 1074)) };
            assert_eq!(one(levels::exp2, f64::from(n)), p, "exp2({n}) [{level:?}]");
            assert_eq!(one(levels::log2, p), f64::from(n), "log2(2^{n}) [{level:?}]");
        }
        for k in -2000..=2000 {
            let k = f64::from(k);
            assert_eq!(one(levels::cbrt, k * k * k), k, "cbrt({k}^3) [{level:?}]");
        }
        for n in 0..=22 {
            assert_eq!(one(levels::log10, 10f64.powi(n)), f64::from(n), "log10(1e{n}) [{level:?}]");
        }
        assert_eq!(one(levels::cbrt, -0.0).to_bits(), (-0.0f64).to_bits());
        assert_eq!(one(levels::cbrt, f64::NEG_INFINITY), f64::NEG_INFINITY);
        assert_eq!(one(levels::exp2, f64::NEG_INFINITY), 0.0);
        assert_eq!(one(levels::exp2, f64::INFINITY), f64::INFINITY);
        assert_eq!(one(levels::log2, 0.0), f64::NEG_INFINITY);
        assert_eq!(one(levels::log10, -0.0), f64::NEG_INFINITY);
        assert!(one(levels::log10, -1.0).is_nan() && one(levels::log2, f64::NEG_INFINITY).is_nan());
        assert_eq!(one(levels::log2, f64::INFINITY), f64::INFINITY);
    }
}

/// Pairs for hypot: magnitudes log-uniform over the whole range with ratios from equal to far
/// apart (where the smaller square underflows or vanishes), random bit patterns, the scaling
/// thresholds 2^±500, and every pair of special values.
fn hypot_inputs(seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = Rng(seed);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..1_000_000 {
        let x = rng.uniform(-1.0, 1.0) * 2f64.powi((rng.unit() * 2098.0) as i32 - 1074);
        let ratio = 2f64.powi((rng.unit() * 140.0) as i32 - 70) * rng.uniform(-1.0, 1.0);
        a.push(x);
        b.push(x * ratio);
    }
    for _ in 0..500_000 {
        a.push(rng.bits());
        b.push(rng.bits());
    }
    for _ in 0..300_000 {
        a.push(rng.uniform(-10.0, 10.0));
        b.push(rng.uniform(-10.0, 10.0));
    }
    for t in [2f64.powi(500), 2f64.powi(501), 2f64.powi(-500), 2f64.powi(-501), f64::MAX, 1.0] {
        for d in 0..200u64 {
            let x = f64::from_bits(t.to_bits() + d - 100);
            a.push(x);
            b.push(x * rng.uniform(0.0, 1.5));
        }
    }
    for &x in &SPECIALS {
        for &y in &SPECIALS {
            a.push(x);
            b.push(y);
        }
    }
    (a, b)
}

#[test]
fn hypot_accuracy_and_bitwise_single_values() {
    use chainrule_core::ops::Op;
    let (a, b) = hypot_inputs(25);
    for level in levels::available() {
        let mut got = vec![0.0; a.len()];
        for ((ac, bc), oc) in a.chunks(CHUNK).zip(b.chunks(CHUNK)).zip(got.chunks_mut(CHUNK)) {
            kernels::hypot_level(level, ac, bc, oc);
        }
        let mut worst = (0u64, 0.0, 0.0);
        for i in 0..a.len() {
            let want = Op::Hypot.eval(a[i], b[i]);
            let u = ulp_error(got[i], want)
                .unwrap_or_else(|why| panic!("hypot({:e}, {:e}) [{level:?}]: {} vs {want:e}: {why}", a[i], b[i], got[i]));
            if u > worst.0 {
                worst = (u, a[i], b[i]);
            }
        }
        println!("hypot    {:10} {:>9} points  max {} ulp (at {:e}, {:e})", level.name(), a.len(), worst.0, worst.1, worst.2);
        assert!(worst.0 <= MAX_ULP, "hypot [{level:?}]: {} ulp at ({:e}, {:e})", worst.0, worst.1, worst.2);
        // Any slice length and offset gives the same bits as the whole.
        for start in [0usize, 1, 5, 999] {
            for len in [0usize, 1, 3, 8, 13] {
                let mut part = vec![0.0; len];
                kernels::hypot_level(level, &a[start..start + len], &b[start..start + len], &mut part);
                for j in 0..len {
                    assert_eq!(part[j].to_bits(), got[start + j].to_bits(), "hypot [{level:?}] slice {start}+{j}");
                }
            }
        }
    }
    // The single-value path (the active level) equals the chunk path bit for bit.
    let mut got = vec![0.0; a.len()];
    kernels::hypot(&a, &b, &mut got);
    for i in (0..a.len()).step_by(7) {
        let one = kernels::one_binary(kernels::Binary::Hypot, a[i], b[i]);
        assert!(one.to_bits() == got[i].to_bits() || (one.is_nan() && got[i].is_nan()), "hypot({:e}, {:e})", a[i], b[i]);
    }
    let inf = f64::INFINITY;
    for (x, y) in [(inf, f64::NAN), (f64::NAN, -inf), (-inf, 0.0)] {
        assert_eq!(kernels::one_binary(kernels::Binary::Hypot, x, y), inf);
    }
    assert_eq!(kernels::one_binary(kernels::Binary::Hypot, -0.0, -0.0).to_bits(), 0);
}

// ---------------------------------------------------------------------------
// special and numerically stable functions

/// The whole range, where `e^-|x|` underflows (-745.13) or goes subnormal (-708.4), where the
/// correction drops below half an ulp of `x` (36 to 40) and the sign change at 0.
fn softplus_inputs(seed: u64) -> Vec<f64> {
    Inputs::new(seed)
        .uniform(800_000, -800.0, 800.0)
        .uniform(1_000_000, -40.0, 40.0)
        .uniform(200_000, -1e-3, 1e-3)
        .bits(1_000_000)
        .around(&[-745.133_219_101_941_1, -708.396_418_532_264_1, 0.0, -0.0, 36.7, -36.7, 709.78, -709.78], 20_000)
        .xs
}

#[test]
fn softplus_accuracy() {
    check_all_levels("softplus", levels::softplus, op_eval(chainrule_core::ops::Op::Softplus), &softplus_inputs(21));
}

#[test]
fn log_sigmoid_accuracy() {
    check_all_levels("log_sigmoid", levels::log_sigmoid, op_eval(chainrule_core::ops::Op::LogSigmoid), &softplus_inputs(22));
}

#[test]
fn stable_forms_are_exact_in_their_tails() {
    use kernels::{log_sigmoid, softplus};
    let same = |a: f64, b: f64| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
    let inf = f64::INFINITY;
    let cases: &[(&str, Kernel, f64, f64)] = &[
        ("softplus(1000)", softplus, 1000.0, 1000.0),
        ("softplus(-1000)", softplus, -1000.0, 0.0),
        ("softplus(-700)", softplus, -700.0, (-700.0f64).exp()),
        ("softplus(inf)", softplus, inf, inf),
        ("softplus(-inf)", softplus, -inf, 0.0),
        ("softplus(0)", softplus, 0.0, std::f64::consts::LN_2),
        ("log_sigmoid(-1000)", log_sigmoid, -1000.0, -1000.0),
        ("log_sigmoid(1000)", log_sigmoid, 1000.0, -0.0),
        ("log_sigmoid(-inf)", log_sigmoid, -inf, -inf),
        ("log_sigmoid(inf)", log_sigmoid, inf, -0.0),
    ];
    for &(what, f, x, want) in cases {
        let got = single(f, x);
        assert!(same(got, want), "{what}: got {got:e}, want {want:e}");
    }
}

/// The `logaddexp` kernel at every level: within 4 ulp of the op's eval (NumPy's formula with
/// glibc's exp and log1p) over pairs from the whole range, or within 2^-52 absolute where the
/// result is near 0 and both cancel (as its doc says); nan and infinities as NumPy's.
#[test]
fn logaddexp_accuracy() {
    use chainrule_core::kernels::{levels2, Binary};
    use chainrule_core::ops::Op;
    let mut rng = Rng(23);
    let a = softplus_inputs(24);
    let b: Vec<f64> = (0..a.len())
        .map(|i| match i % 4 {
            0 => rng.bits(),
            1 => a[i] + rng.uniform(-40.0, 40.0),
            2 => rng.uniform(-3.0, 3.0),
            _ => a[(i * 7919) % a.len()],
        })
        .collect();
    for level in levels::available() {
        let mut got = vec![0.0; a.len()];
        for ((ac, bc), oc) in a.chunks(CHUNK).zip(b.chunks(CHUNK)).zip(got.chunks_mut(CHUNK)) {
            levels2::run(level, Binary::Logaddexp, ac, bc, oc);
        }
        let mut worst = (0u64, 0.0, 0.0);
        for i in 0..a.len() {
            let (g, want) = (got[i], Op::Logaddexp.eval(a[i], b[i]));
            let u = ulp_error(g, want)
                .unwrap_or_else(|why| panic!("logaddexp({:e}, {:e}) [{level:?}]: got {g:e}, want {want:e}: {why}", a[i], b[i]));
            if (g - want).abs() > f64::EPSILON / 2.0 && u > worst.0 {
                worst = (u, a[i], b[i]);
            }
        }
        println!("logaddexp {:10} max {} ulp (at {:e}, {:e})", level.name(), worst.0, worst.1, worst.2);
        assert!(worst.0 <= MAX_ULP, "logaddexp [{level:?}]: {} ulp at ({:e}, {:e})", worst.0, worst.1, worst.2);
        let inf = f64::INFINITY;
        let cases = [
            (inf, inf, inf),
            (-inf, -inf, -inf),
            (inf, -inf, inf),
            (-inf, 3.0, 3.0),
            (1000.0, 0.0, 1000.0),
            (-0.0, 0.0, std::f64::consts::LN_2),
        ];
        for (x, y, want) in cases {
            for (p, q) in [(x, y), (y, x)] {
                let mut o = [0.0];
                levels2::run(level, Binary::Logaddexp, &[p], &[q], &mut o);
                assert_eq!(o[0], want, "logaddexp({p}, {q}) [{level:?}]");
            }
        }
        for (p, q) in [(f64::NAN, inf), (1.0, f64::NAN), (-inf, f64::NAN)] {
            let mut o = [0.0];
            levels2::run(level, Binary::Logaddexp, &[p], &[q], &mut o);
            assert!(o[0].is_nan(), "logaddexp({p}, {q}) [{level:?}]");
        }
    }
}

/// The intervals' edges (0.84375, 1.25, 1/0.35, 6, 28), where erfc goes subnormal (26.55) and
/// underflows (27.3), tiny arguments (2^-28, 2^-56) and the whole range.
fn erf_inputs(seed: u64) -> Vec<f64> {
    let edges = [0.84375, 1.25, 2.857_142_734_336_853, 6.0, 28.0, 26.55, 27.3, 3.725_290_298_461_914e-9, 1.387_778_780_781_445_7e-17, 0.25];
    let mirrored: Vec<f64> = edges.iter().flat_map(|&v| [v, -v]).collect();
    Inputs::new(seed)
        .uniform(1_000_000, -6.5, 6.5)
        .uniform(600_000, -30.0, 30.0)
        .uniform(200_000, -1e-3, 1e-3)
        .bits(600_000)
        .subnormals(20_000)
        .around(&mirrored, 10_000)
        .xs
}

#[test]
fn erf_accuracy() {
    check_all_levels("erf", levels::erf, op_eval(chainrule_core::ops::Op::Erf), &erf_inputs(31));
}

#[test]
fn erfc_accuracy() {
    check_all_levels("erfc", levels::erfc, op_eval(chainrule_core::ops::Op::Erfc), &erf_inputs(32));
}

// ---------------------------------------------------------------------------
// inverse trig and hyperbolic: each kernel against its op's `eval` (glibc for the trig ones and
// sinh/cosh, the libm crate for asinh/acosh/atanh); tests/test_ops_inverse_trig.py checks a
// sample against mpmath.

mod inverse_trig_and_hyperbolic {
    use super::*;
    use chainrule_core::ops::Op;

    /// 2^-28, below which sinh, asinh and atanh return x; 2^28, above which asinh and acosh
    /// take log(x) + ln2; where atan's reduction switches interval.
    const EDGES: [f64; 8] = [3.725_290_298_461_914e-9, 268_435_456.0, 0.66, 2.414_213_562_373_095, 0.5, 1.0, 2.0, 22.0];

    fn with_negatives(points: &[f64]) -> Vec<f64> {
        points.iter().flat_map(|&p| [p, -p]).collect()
    }

    fn whole_range(seed: u64) -> Inputs {
        Inputs::new(seed).bits(1_000_000).subnormals(50_000).around(&with_negatives(&EDGES), 20_000)
    }

    #[test]
    fn atan_accuracy() {
        let xs = whole_range(21).uniform(1_000_000, -10.0, 10.0).uniform(200_000, -1e20, 1e20).uniform(100_000, -1e-7, 1e-7).xs;
        check_all_levels("atan", levels::atan, |x| Op::Atan.eval(x, 0.0), &xs);
    }

    #[test]
    fn asin_accuracy() {
        let xs = whole_range(22).uniform(1_000_000, -1.0, 1.0).uniform(200_000, 0.999, 1.0).uniform(200_000, -1.0, -0.999).xs;
        check_all_levels("asin", levels::asin, |x| Op::Asin.eval(x, 0.0), &xs);
    }

    #[test]
    fn acos_accuracy() {
        let xs = whole_range(23).uniform(1_000_000, -1.0, 1.0).uniform(200_000, 0.999, 1.0).uniform(200_000, -1.0, -0.999).xs;
        check_all_levels("acos", levels::acos, |x| Op::Acos.eval(x, 0.0), &xs);
    }

    fn sinh_cosh_inputs(seed: u64) -> Vec<f64> {
        whole_range(seed)
            .uniform(500_000, -720.0, 720.0)
            .uniform(500_000, -25.0, 25.0)
            .uniform(500_000, -1.0, 1.0)
            .uniform(100_000, -1e-7, 1e-7)
            .around(&with_negatives(&[710.475_860_073_943_9, 710.6, 709.78]), 20_000)
            .xs
    }

    #[test]
    fn sinh_accuracy() {
        check_all_levels("sinh", levels::sinh, |x| Op::Sinh.eval(x, 0.0), &sinh_cosh_inputs(24));
    }

    #[test]
    fn cosh_accuracy() {
        check_all_levels("cosh", levels::cosh, |x| Op::Cosh.eval(x, 0.0), &sinh_cosh_inputs(25));
    }

    #[test]
    fn asinh_accuracy() {
        let xs = whole_range(26)
            .around(&[f64::MAX, -f64::MAX], 1000)
            .uniform(1_000_000, -3.0, 3.0)
            .uniform(200_000, -1e12, 1e12)
            .uniform(100_000, -1e-7, 1e-7)
            .xs;
        check_all_levels("asinh", levels::asinh, |x| Op::Asinh.eval(x, 0.0), &xs);
    }

    #[test]
    fn acosh_accuracy() {
        let xs = whole_range(27)
            .positive_bits(500_000)
            .uniform(1_000_000, 1.0, 3.0)
            .uniform(200_000, 1.0, 1.0 + 1e-6)
            .uniform(200_000, 1.0, 1e12)
            .xs;
        check_all_levels("acosh", levels::acosh, |x| Op::Acosh.eval(x, 0.0), &xs);
    }

    #[test]
    fn atanh_accuracy() {
        let xs = whole_range(28).uniform(1_000_000, -1.0, 1.0).uniform(200_000, 0.999, 1.0).uniform(200_000, -1.0, -0.999).xs;
        check_all_levels("atanh", levels::atanh, |x| Op::Atanh.eval(x, 0.0), &xs);
    }

    /// atan2 over pairs: uniform, every bit pattern, both tiny or both huge (where n + d would
    /// overflow), ratios near the reduction's boundaries, and every pair of special values
    /// (signed zeros, infinities, nan) bit for bit as the reference.
    #[test]
    fn atan2_accuracy() {
        let mut rng = Rng(29);
        let mut pairs: Vec<(f64, f64)> = Vec::new();
        for _ in 0..400_000 {
            pairs.push((rng.uniform(-10.0, 10.0), rng.uniform(-10.0, 10.0)));
            pairs.push((rng.bits(), rng.bits()));
            let s = [1e-300, 1e-310, 1e300, 1.7e308][rng.next_u64() as usize % 4];
            pairs.push((s * rng.uniform(-2.0, 2.0), s * rng.uniform(-2.0, 2.0)));
            let x = rng.uniform(-5.0, 5.0);
            let k = [0.66, 2.414_213_562_373_095, 1.0, 1e20, 1e-20][rng.next_u64() as usize % 5];
            pairs.push((x * k * (1.0 + rng.uniform(-1e-12, 1e-12)), x));
        }
        for &a in &SPECIALS {
            for &b in &SPECIALS {
                pairs.push((a, b));
            }
        }
        // Next to pi/2 from above (x tiny and negative), where pi - rounded angle was an ulp off.
        for _ in 0..100_000 {
            pairs.push((rng.uniform(-4.0, 4.0), -rng.uniform(0.0, 1e-20)));
        }
        let (ys, xs): (Vec<f64>, Vec<f64>) = pairs.iter().copied().unzip();
        let mut got = vec![0.0; ys.len()];
        kernels::atan2(&ys, &xs, &mut got);
        // Single values (the latency path) take the active level's lane code, bit for bit.
        for i in (0..ys.len()).step_by(7) {
            let one = kernels::one_binary(kernels::Binary::Atan2, ys[i], xs[i]);
            assert_eq!(one.to_bits(), got[i].to_bits(), "atan2({:e}, {:e}) alone", ys[i], xs[i]);
        }
        for level in levels::available() {
            atan2_check(level, &ys, &xs);
        }
    }

    /// atan2 at one level against the reference, in evaluator-sized chunks, and the same bits at
    /// any offset and length (the vector body and the scalar remainder run the same lane code).
    fn atan2_check(level: Level, ys: &[f64], xs: &[f64]) {
        use kernels::{levels2, Binary};
        let mut got = vec![0.0; ys.len()];
        for ((yc, xc), oc) in ys.chunks(CHUNK).zip(xs.chunks(CHUNK)).zip(got.chunks_mut(CHUNK)) {
            levels2::run(level, Binary::Atan2, yc, xc, oc);
        }
        for start in [0usize, 1, 3, 5, 1003] {
            for len in 0..=19 {
                let mut part = vec![0.0; len];
                levels2::run(level, Binary::Atan2, &ys[start..start + len], &xs[start..start + len], &mut part);
                for (j, v) in part.iter().enumerate() {
                    assert_eq!(v.to_bits(), got[start + j].to_bits(), "atan2 [{level:?}] slice {start}+{len} index {j}");
                }
            }
        }
        let mut worst = 0;
        for ((&y, &x), &g) in ys.iter().zip(xs).zip(&got) {
            let want = Op::Atan2.eval(y, x);
            let u = ulp_error(g, want).unwrap_or_else(|why| panic!("atan2({y:e}, {x:e}): got {g:e}, want {want:e}: {why}"));
            assert!(u <= MAX_ULP, "atan2({y:e}, {x:e}): {u} ulp: got {g:e}, want {want:e}");
            let next_to_half_pi = x < 0.0 && x > -1e-20 && y.abs() > 1e-3;
            assert!(!next_to_half_pi || u == 0, "atan2({y:e}, {x:e}) next to pi/2: {u} ulp");
            let exact = want == 0.0 || !want.is_finite() || y == 0.0 || x == 0.0;
            assert!(!exact || u == 0, "atan2({y:e}, {x:e}): got {g:e}, want {want:e} exactly");
            worst = worst.max(u);
        }
        println!("atan2    {:10} {} pairs  max {worst} ulp", level.name(), ys.len());
    }

    /// Poles, limits and signed zeros, exactly.
    #[test]
    fn special_values() {
        use std::f64::consts::{FRAC_PI_2, PI};
        let (inf, nan) = (f64::INFINITY, f64::NAN);
        let cases: &[(&str, Kernel, f64, f64)] = &[
            ("atan(inf)", kernels::atan, inf, FRAC_PI_2),
            ("atan(-inf)", kernels::atan, -inf, -FRAC_PI_2),
            ("atan(-0)", kernels::atan, -0.0, -0.0),
            ("atan(1)", kernels::atan, 1.0, std::f64::consts::FRAC_PI_4),
            ("asin(1)", kernels::asin, 1.0, FRAC_PI_2),
            ("asin(-1)", kernels::asin, -1.0, -FRAC_PI_2),
            ("asin(-0)", kernels::asin, -0.0, -0.0),
            ("asin(1.0000000000000002)", kernels::asin, 1.000_000_000_000_000_2, nan),
            ("asin(-inf)", kernels::asin, -inf, nan),
            ("acos(-1)", kernels::acos, -1.0, PI),
            ("acos(1)", kernels::acos, 1.0, 0.0),
            ("acos(0)", kernels::acos, 0.0, FRAC_PI_2),
            ("acos(-1.0000000000000002)", kernels::acos, -1.000_000_000_000_000_2, nan),
            ("sinh(-0)", kernels::sinh, -0.0, -0.0),
            ("sinh(-inf)", kernels::sinh, -inf, -inf),
            ("sinh(711)", kernels::sinh, 711.0, inf),
            ("cosh(-0)", kernels::cosh, -0.0, 1.0),
            ("cosh(-inf)", kernels::cosh, -inf, inf),
            ("cosh(-711)", kernels::cosh, -711.0, inf),
            ("asinh(-0)", kernels::asinh, -0.0, -0.0),
            ("asinh(-inf)", kernels::asinh, -inf, -inf),
            ("acosh(1)", kernels::acosh, 1.0, 0.0),
            ("acosh(inf)", kernels::acosh, inf, inf),
            ("acosh(-2)", kernels::acosh, -2.0, nan),
            ("acosh(0.9999999999999999)", kernels::acosh, 0.999_999_999_999_999_9, nan),
            ("acosh(-inf)", kernels::acosh, -inf, nan),
            ("atanh(1)", kernels::atanh, 1.0, inf),
            ("atanh(-1)", kernels::atanh, -1.0, -inf),
            ("atanh(-0)", kernels::atanh, -0.0, -0.0),
            ("atanh(inf)", kernels::atanh, inf, nan),
            ("atanh(1.0000000000000002)", kernels::atanh, 1.000_000_000_000_000_2, nan),
        ];
        for &(what, f, x, want) in cases {
            let got = single(f, x);
            let same = got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan());
            assert!(same, "{what}: got {got:e}, want {want:e}");
        }
        // The reference itself: the libm crate's acosh answers below -1 as for |x|.
        assert!(Op::Acosh.eval(-2.0, 0.0).is_nan() && Op::Acosh.eval(-4.8e5, 0.0).is_nan());
    }
}

// ---------------------------------------------------------------------------
// The table bodies (AVX-512 log, log2, log10, log1p, atanh, cbrt): around the edges of their
// sixteen table entries, where the reduced argument is largest, at many scales.

mod table_edges {
    use super::*;
    use chainrule_core::ops::Op;

    /// The logarithms' entry edges: `m = bits(OFF) + j 2^48`, `OFF` as in `logarithm.rs`.
    fn log_edges() -> Vec<f64> {
        let edges = (0..=16u64).map(|j| f64::from_bits(0x3fe7_5555_5550_0000 + (j << 48)));
        edges.flat_map(|m| [-1074, -1030, -1022, -300, -1, 0, 1, 7, 300, 1022].map(|k| m * f64::from(k).exp2())).collect()
    }

    #[test]
    fn logarithms_around_their_table_edges() {
        let xs = Inputs::new(31).around(&log_edges(), 300).xs;
        check_all_levels("log", levels::log, |x| Op::Log.eval(x, 0.0), &xs);
        check_all_levels("log2", levels::log2, |x| Op::Log2.eval(x, 0.0), &xs);
        check_all_levels("log10", levels::log10, |x| Op::Log10.eval(x, 0.0), &xs);
        let shifted: Vec<f64> = log_edges().iter().map(|u| u - 1.0).collect();
        let xs = Inputs::new(32).around(&shifted, 300).xs;
        check_all_levels("log1p", levels::log1p, |x| Op::Log1p.eval(x, 0.0), &xs);
        // atanh(t) = log((1 + t)/(1 - t))/2: t where that quotient sits on an edge.
        let ts: Vec<f64> = log_edges().iter().filter(|&&w| w > 1.0).map(|w| (w - 1.0) / (w + 1.0)).flat_map(|t| [t, -t]).collect();
        let xs = Inputs::new(33).around(&ts, 300).xs;
        check_all_levels("atanh", levels::atanh, |x| Op::Atanh.eval(x, 0.0), &xs);
    }

    #[test]
    fn cbrt_around_its_table_edges() {
        let edges = (0..=16).map(|j| 1.0 + f64::from(j) / 16.0);
        let points: Vec<f64> =
            edges.flat_map(|m| [-1074, -1060, -1022, -3, -2, -1, 0, 1, 2, 3, 1021, 1022, 1023].map(|k| m * f64::from(k).exp2())).collect();
        let xs = Inputs::new(34).around(&points, 300).values(&points.iter().map(|p| -p).collect::<Vec<_>>()).xs;
        check_all_levels("cbrt", levels::cbrt, |x| Op::Cbrt.eval(x, 0.0), &xs);
    }
}

/// The AVX-512 bodies of the exponential family reduce by ln2/16 (1/16 for exp2) and look
/// `2^(j/16)` up in a table: around every switch from one table entry to the next, where the
/// reduced argument is largest (and where sinh's `T - U` stops being exact), every level stays
/// within the bound and keeps the sign of zero.
#[test]
fn exp_family_at_table_boundaries() {
    use chainrule_core::ops::Op;
    let ln2_32 = std::f64::consts::LN_2 / 32.0;
    let odd = |step: f64| -> Vec<f64> { (-96..96).map(|i| f64::from(2 * i + 1) * step).collect() };
    let natural = Inputs::new(31).around(&odd(ln2_32), 300).values(&[-0.0, 0.0]).xs;
    let binary = Inputs::new(32).around(&odd(1.0 / 32.0), 300).values(&[-0.0, 0.0]).xs;
    check_all_levels("exp", levels::exp, f64::exp, &natural);
    check_all_levels("expm1", levels::expm1, f64::exp_m1, &natural);
    check_all_levels("sinh", levels::sinh, |x| Op::Sinh.eval(x, 0.0), &natural);
    check_all_levels("cosh", levels::cosh, |x| Op::Cosh.eval(x, 0.0), &natural);
    check_all_levels("exp2", levels::exp2, |x| Op::Exp2.eval(x, 0.0), &binary);
}
