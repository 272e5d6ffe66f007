"""Exponentials, logarithms and roots (exp exp2 expm1 log2 log10 log1p cbrt hypot square): values
within 4 ulp of mpmath over the whole domain, the stable claims, the edges of the gradients
and square's lowering. The shared sweeps (test_ops, test_hypothesis, ...) cover the rest."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import chainrule as cr

x, y = cr.vars("x y")
RNG = np.random.default_rng(17)

MP = {
    "exp": mpmath.exp,
    "exp2": lambda a: mpmath.power(2, a),
    "expm1": mpmath.expm1,
    "log2": lambda a: mpmath.log(a, 2),
    "log10": mpmath.log10,
    "log1p": mpmath.log1p,
    "cbrt": lambda a: mpmath.sign(a) * mpmath.cbrt(abs(a)),  # the real root
}
# Where each function is interesting: (low, high) for a uniform sample, besides random bit
# patterns over the whole f64 range and the special values.
RANGE = {
    "exp": (-750.0, 712.0), "exp2": (-1080.0, 1030.0), "expm1": (-50.0, 710.0), "log2": (0.0, 4.0),
    "log10": (0.0, 4.0), "log1p": (-1.0, 4.0), "cbrt": (-10.0, 10.0),
}
SPECIAL = np.array([
    0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324, 2.2250738585072014e-308, 1e-300,
    -1e-300, 1e-20, 0.5, 1.0, -1.0, -0.999999, 2.0, 8.0, 27.0, -27.0, 1000.0, 1e22, 1e300,
    1.7976931348623157e308, 1023.0, 1024.0, -1022.0, -1074.0, -1075.0, 1023.9999999999999,
])


def _correctly_rounded(fn, values):
    out = np.empty(len(values))
    with mpmath.workprec(160):
        for i, v in enumerate(values):
            v = float(v)
            if np.isnan(v):
                out[i] = np.nan
                continue
            try:
                r = fn(mpmath.mpf(v))
            except (ValueError, ZeroDivisionError):
                r = mpmath.mpf("nan")
            if isinstance(r, mpmath.mpc):
                out[i] = np.nan
            else:
                # mpmath rounds to nearest (overflow to inf, underflow to 0) but has no -0:
                # f(+-0) = +-0 for the odd ones (expm1, log1p, cbrt)
                out[i] = float(r) if r != 0 or v != 0 else v
    return out


def _ulps(got, want):
    """ulp distance on the line where adjacent doubles are adjacent integers."""
    def ordered(v):
        b = v.view(np.int64)
        return np.where(b < 0, -(b & np.int64(0x7FFF_FFFF_FFFF_FFFF)), b)
    # in integers (as floats the positions above 2^53 round); opposite signs are far apart anyway
    same = np.signbit(got) == np.signbit(want)
    return np.where(same, np.abs(ordered(got) - ordered(want)), np.int64(2**62))


def _check(name, got, want, inputs):
    assert np.array_equal(np.isnan(got), np.isnan(want)), (
        f"{name}: nan at {inputs[np.isnan(got) != np.isnan(want)][:5]}")
    ok = ~np.isnan(want)
    got, want, inputs = got[ok], want[ok], inputs[ok]
    inf = np.isinf(want) | np.isinf(got)
    assert np.array_equal(got[inf], want[inf]), f"{name}: infinities at {inputs[inf][:5]}"
    zero = want == 0
    assert np.array_equal(np.signbit(got[zero]), np.signbit(want[zero])), f"{name}: sign of 0"
    u = _ulps(got[~inf], want[~inf])
    worst = int(np.argmax(u)) if u.size else 0
    assert u.size == 0 or u.max() <= 4, (
        f"{name}: {u.max():.0f} ulp at x = {inputs[~inf][worst]!r}")


@pytest.mark.parametrize("name", sorted(MP))
def test_unary_within_4_ulp_of_mpmath(name):
    lo, hi = RANGE[name]
    bits = RNG.integers(0, 2**63, 1500, dtype=np.int64).view(np.float64)
    sample = np.concatenate([SPECIAL, RNG.uniform(lo, hi, 1500), bits, -bits,
                             RNG.uniform(-1e-6, 1e-6, 200)])
    got = cr.compile(getattr(cr, name)(x), inputs=[x])(sample)
    _check(name, got, _correctly_rounded(MP[name], sample), sample)
    # single values take the same lane code as arrays
    fn = cr.compile(getattr(cr, name)(x), inputs=[x])
    for v in sample[::97]:
        assert np.array_equal(fn(float(v)), got[np.flatnonzero(sample == v)[:1]][0],
                              equal_nan=True) or np.isnan(v)


def test_hypot_within_4_ulp_of_mpmath():
    scales = 2.0 ** RNG.integers(-1100, 1024, 3000)
    a = RNG.uniform(-1, 1, 3000) * scales
    with np.errstate(over="ignore"):
        b = a * 2.0 ** RNG.integers(-60, 60, 3000) * RNG.choice([-1.0, 1.0], 3000)
    a = np.concatenate([a, SPECIAL, SPECIAL[::-1], np.full(SPECIAL.size, np.inf)])
    b = np.concatenate([b, SPECIAL[::-1], SPECIAL, SPECIAL])
    got = cr.compile(cr.hypot(x, y), inputs=[x, y])(a, b)
    want = np.empty_like(a)
    with mpmath.workprec(160):
        for i, (p, q) in enumerate(zip(a, b, strict=True)):
            if np.isinf(p) or np.isinf(q):
                want[i] = np.inf  # C's: inf even when the other is nan
            elif np.isnan(p) or np.isnan(q):
                want[i] = np.nan
            else:
                want[i] = float(mpmath.hypot(mpmath.mpf(p), mpmath.mpf(q)))
    _check("hypot", got, want, a)


def test_stable_claims():
    assert float(cr.compile(cr.log1p(x), inputs=[x])(1e-300)) == 1e-300
    assert cr.compile(cr.log1p(x), inputs=[x])(np.array([1e-300]))[0] == 1e-300
    assert float(cr.compile(cr.expm1(x), inputs=[x])(1e-300)) == 1e-300
    fn = cr.compile(cr.hypot(x, y), inputs=[x, y])
    assert float(fn(np.inf, np.nan)) == np.inf and float(fn(np.nan, -np.inf)) == np.inf
    assert float(fn(1e300, 1e300)) == np.hypot(1e300, 1e300)  # no overflow in the squares
    assert float(fn(3e-320, 4e-320)) == np.hypot(3e-320, 4e-320)  # nor underflow
    cube = np.arange(-50.0, 51.0) ** 3
    np.testing.assert_array_equal(cr.compile(cr.cbrt(x), inputs=[x])(cube), np.arange(-50.0, 51.0))
    powers = np.arange(-1074.0, 1024.0)
    np.testing.assert_array_equal(cr.compile(cr.exp2(x), inputs=[x])(powers), np.exp2(powers))
    np.testing.assert_array_equal(cr.compile(cr.log2(x), inputs=[x])(np.exp2(powers)), powers)
    tens = 10.0 ** np.arange(0, 23)
    np.testing.assert_array_equal(cr.compile(cr.log10(x), inputs=[x])(tens), np.arange(0.0, 23))


def test_gradients_at_the_edges():
    d = cr.compile(cr.grad(cr.hypot(x, y), [x, y]), inputs=[x, y])
    assert [float(g) for g in d(0.0, 0.0)] == [0.0, 0.0]  # as JAX's; a / hypot would be 0 / 0
    assert [float(g) for g in d(3.0, -4.0)] == [0.6, -0.8]
    assert [float(g) for g in d(0.0, -2.0)] == [0.0, -1.0]
    at_zero = {"cbrt": 0.0, "log2": 0.0, "log10": 0.0, "log1p": -1.0}
    for name, v in at_zero.items():
        g = cr.compile(cr.grad(getattr(cr, name)(x), x), inputs=[x])
        assert float(g(v)) == np.inf, name
    # expm1' = exp keeps full relative accuracy where expm1 + 1 cancels
    g = cr.compile(cr.grad(cr.expm1(x), x), inputs=[x])
    assert float(g(-40.0)) == np.exp(-40.0)


def test_square_is_sugar_for_x_times_x():
    assert cr.square(x) == x * x == x**2 == cr.parse("square(x)")
    assert str(cr.square(x + 1)) == "(x + 1) ** 2"
    assert cr.parse("square(x + 1)") == (x + 1) * (x + 1)
    assert float(cr.compile(cr.square(x), inputs=[x])(-3.0)) == 9.0
    with pytest.raises(ValueError, match="takes 1 argument"):
        cr.parse("square(x, y)")


def test_text_round_trip_and_pickle():
    import pickle

    for e in [cr.exp2(x) + cr.log10(y), cr.hypot(x, cr.cbrt(y)), cr.log1p(cr.expm1(x) * y)]:
        assert cr.parse(str(e)) == e and pickle.loads(pickle.dumps(e)) == e
        g = cr.grad(e, [x, y])
        assert [cr.parse(str(d)) for d in g] == g
