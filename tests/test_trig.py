"""sin, cos and tan: values within 4 ulp of mpmath over their whole domain (a sample: every
binade, the doubles next to multiples of pi/2 where the reduction cancels, and the point where
the kernels hand over to libm), and single values bit for bit as in arrays."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import chainrule as cr

x = cr.var("x")
RNG = np.random.default_rng(23)
MP = {"sin": mpmath.sin, "cos": mpmath.cos, "tan": mpmath.tan}


def _sample(n=1500):
    wide = np.ldexp(RNG.uniform(0.5, 1.0, n), RNG.integers(-1074, 1024, n))  # every binade
    near = RNG.uniform(-10.0, 10.0, n)
    k = np.concatenate([np.arange(1, 200), RNG.integers(200, 667_000, 300)])
    multiples = k * (np.pi / 2)
    # where the kernels hand over to libm, return x itself, and the hardest reduction in range
    edges = np.array([2.0**20, 2.0**-26, 2.0**-27, np.pi / 4, 91.106186954104])
    pts = np.concatenate([multiples, edges])
    pts = np.concatenate([wide, near, np.nextafter(pts, 0), pts, np.nextafter(pts, np.inf)])
    return np.unique(np.concatenate([pts, -pts]))


def _ulps(got, want):
    def ordered(v):
        b = np.asarray(v, dtype=np.float64).view(np.int64)
        return np.where(b < 0, -(b & 0x7FFFFFFFFFFFFFFF), b)
    return np.abs(ordered(got) - ordered(want))


@pytest.mark.parametrize("kind", sorted(MP))
def test_within_4_ulp_of_mpmath(kind):
    xs = _sample()
    fn = cr.compile(getattr(cr, kind)(x), inputs=[x])
    got = fn(xs)
    with mpmath.workprec(160):  # enough for the reduction of 1e308 by pi/2
        want = np.array([float(MP[kind](mpmath.mpf(v))) for v in xs])
    err = _ulps(got, want)
    worst = int(np.argmax(err))
    assert err[worst] <= 4, f"{kind}({xs[worst]!r}) is {err[worst]} ulp off"
    for i in range(0, len(xs), 13):  # the latency path runs the same lane code
        one = np.float64(fn(float(xs[i])))
        assert one.tobytes() == got[i].tobytes(), f"{kind}({xs[i]!r}) alone"


def test_signed_zeros_and_non_finite():
    fn = cr.compile([cr.sin(x), cr.cos(x), cr.tan(x)], inputs=[x])
    s, c, t = fn(np.array([-0.0, np.inf, -np.inf, np.nan]))
    assert np.signbit(s[0]) and np.signbit(t[0]) and c[0] == 1.0
    assert np.isnan(s[1:]).all() and np.isnan(c[1:]).all() and np.isnan(t[1:]).all()
