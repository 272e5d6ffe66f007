//! Lane helpers shared by every family: the shifter constants, a multiply-add that fuses only
//! where the instantiation has FMA, Estrin polynomials, a NaN-keeping clamp and `2^n`.

/// Block width of the padded tail; a multiple of every vector width used.
pub(super) const W: usize = 8;

/// `1.5 * 2^52`: adding it rounds to an integer held in the low mantissa bits.
pub(super) const SHIFT: f64 = 6_755_399_441_055_744.0;
pub(super) const SIGN: u64 = 1 << 63;
pub(super) const MANT: u64 = (1 << 52) - 1;
// ---------------------------------------------------------------------------
// Lane helpers. Everything is #[inline(always)] so that it is compiled inside
// the #[target_feature] wrapper that finally calls it.

/// Multiply-add; fused only in instantiations compiled with FMA, because
/// without hardware FMA `mul_add` is a slow software routine.
#[inline(always)]
pub(super) fn mla<const F: bool>(a: f64, b: f64, c: f64) -> f64 {
    if F {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

// Polynomials are evaluated by Estrin's scheme, whose dependency chains are
// logarithmic in the degree where Horner's are linear, so more loop
// iterations overlap in the out-of-order window. Written out per degree
// because a generic loop did not unroll (and then did not vectorise).

#[inline(always)]
pub(super) fn poly6<const F: bool>(x: f64, c: &[f64; 6]) -> f64 {
    let x2 = x * x;
    let a = mla::<F>(c[1], x, c[0]);
    let b = mla::<F>(c[3], x, c[2]);
    let d = mla::<F>(c[5], x, c[4]);
    mla::<F>(x2 * x2, d, mla::<F>(x2, b, a))
}

#[inline(always)]
pub(super) fn poly7<const F: bool>(x: f64, c: &[f64; 7]) -> f64 {
    let x2 = x * x;
    let a = mla::<F>(c[1], x, c[0]);
    let b = mla::<F>(c[3], x, c[2]);
    let d = mla::<F>(x2, c[6], mla::<F>(c[5], x, c[4]));
    mla::<F>(x2 * x2, d, mla::<F>(x2, b, a))
}

#[inline(always)]
pub(super) fn poly10<const F: bool>(x: f64, c: &[f64; 10]) -> f64 {
    let x2 = x * x;
    let x4 = x2 * x2;
    let p0 = mla::<F>(c[1], x, c[0]);
    let p1 = mla::<F>(c[3], x, c[2]);
    let p2 = mla::<F>(c[5], x, c[4]);
    let p3 = mla::<F>(c[7], x, c[6]);
    let p4 = mla::<F>(c[9], x, c[8]);
    let lo = mla::<F>(x4, mla::<F>(x2, p3, p2), mla::<F>(x2, p1, p0));
    mla::<F>(x4 * x4, p4, lo)
}

/// Comparison-based clamp: unlike `f64::clamp`/`max` it lets NaN through.
#[inline(always)]
pub(super) fn clamp_keep_nan(x: f64, lo: f64, hi: f64) -> f64 {
    let x = if x < lo { lo } else { x };
    if x > hi {
        hi
    } else {
        x
    }
}

/// `2^n` for an integral `n` in `[-1022, 1023]`, without int/float converts.
#[inline(always)]
pub(super) fn pow2(n: f64) -> f64 {
    let biased = (n + SHIFT).to_bits().wrapping_add(1023u64.wrapping_sub(SHIFT.to_bits()));
    f64::from_bits(biased << 52)
}
