"""Powers: constant exponents lowered to a shared ladder of products, square roots and one
division; a general ``a ** b`` through the SIMD pow kernel. Values against mpmath in ulps,
C's special cases, gradients against finite differences and at zero, scalar == array."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from conftest import assert_fd

mpmath = pytest.importorskip("mpmath")


def ulps(got, xs, ys):
    """Error of each result in ulps of the exact value (mpmath at 200 bits)."""
    with mpmath.workprec(200):
        out = []
        for g, a, b in zip(got, xs, ys, strict=True):
            exact = mpmath.power(mpmath.mpf(float(a)), mpmath.mpf(float(b)))
            out.append(float(abs(mpmath.mpf(float(g)) - exact) / np.spacing(abs(float(exact)))))
    return np.array(out)


def products(fn, *shapes):
    return sum(line.count(" * ") for line in fn.tape(*shapes).splitlines() if " = " in line)


def test_powers_of_one_base_share_one_ladder():
    x = cr.var("x")
    fn = cr.compile(x**12 + x**6 + x**11, inputs=[x])
    # x2, x4, x8, then x4*x8, x2*x4 and (x*x2)*x8.
    assert products(fn) == 7
    assert " ** " not in fn.tape()
    # The same powers in separate outputs still share it.
    assert products(cr.compile([x**12, x**6, x**11], inputs=[x])) == 7
    # The printed expression keeps the powers.
    assert str(fn.outputs[0]) == str(x**12 + x**6 + x**11)


def test_negative_and_half_exponents():
    x = cr.var("x")
    tape = cr.compile(x**-3.5, inputs=[x]).tape()
    # abs(x)**3 * x**0.5, then one division; x**0.5 is the pow kernel's square root.
    assert tape.count(" / ") == 1 and tape.count(" ** ") == 1 and "= 0.5" in tape


@pytest.mark.parametrize("n", [3, 4, 5, 7, 11, 12, 16, 31, 33, 64, -1, -3, -6, -12, -64])
def test_integer_powers_within_the_readme_bound(n):
    rng = np.random.default_rng(abs(n))
    lim = min(1000 / abs(n), 60)
    xs = np.concatenate([np.exp2(rng.uniform(-lim, lim, 400)), rng.uniform(0.5, 2.0, 200)])
    xs[::2] *= -1
    x = cr.var("x")
    got = cr.compile(x**n, inputs=[x])(xs)
    # README: within |n| ulp (at least 2) of the exact power.
    assert ulps(got, xs, np.full_like(xs, n)).max() <= max(abs(n), 2)


@pytest.mark.parametrize("c", [0.5, -0.5, 1.5, -1.5, 2.5, 6.5, -12.5, 64.5])
def test_half_integer_powers_within_the_readme_bound(c):
    rng = np.random.default_rng(7)
    lim = min(1000 / abs(c), 60)
    xs = np.exp2(rng.uniform(-lim, lim, 400))
    x = cr.var("x")
    got = cr.compile(x**c, inputs=[x])(xs)
    assert ulps(got, xs, np.full_like(xs, c)).max() <= max(abs(c), 2)


def test_general_pow_within_4_ulp_of_mpmath():
    rng = np.random.default_rng(3)
    n = 3000
    a = np.exp(rng.uniform(-30, 30, n))
    w = rng.uniform(-700, 700, n)
    b = w / np.log(a)
    a2, b2 = rng.uniform(0, 10, n), rng.uniform(-20, 20, n)
    xs, ys = np.concatenate([a, a2]), np.concatenate([b, b2])
    x, y = cr.vars("x y")
    got = cr.compile(x**y, inputs=[x, y])(xs, ys)
    err = ulps(got, xs, ys)
    assert err.max() <= 4, (err.max(), xs[err.argmax()], ys[err.argmax()])
    # A constant exponent that is not an integer or a half goes through the same kernel.
    got = cr.compile(x**2.3, inputs=[x])(a2)
    assert ulps(got, a2, np.full_like(a2, 2.3)).max() <= 4


def test_general_pow_near_one_and_at_table_edges_within_4_ulp_of_mpmath():
    # Bases within 1e-9 of 1 with exponents up to 1e11, and both sides of the edges of the
    # AVX-512 body's logarithm table (32 slices an octave, from bit pattern 0x3fe7c...), where
    # the reduction changes entry; w = y log x spread over [-700, 700].
    rng = np.random.default_rng(11)
    near = 1.0 + rng.uniform(-1e-9, 1e-9, 600)
    edges = (0x3FE7C00000000000 + (np.arange(32, dtype=np.int64) << 47)).view(np.float64)
    edges = np.concatenate([edges * s for s in (2.0**-600, 0.25, 1.0, 8.0, 2.0**500)])
    side = np.concatenate([np.nextafter(edges, 0), edges, np.nextafter(edges, np.inf)])
    xs = np.concatenate([near, side])
    ys = rng.uniform(-700, 700, xs.size) / np.log(xs)
    x, y = cr.vars("x y")
    got = cr.compile(x**y, inputs=[x, y])(xs, ys)
    err = ulps(got, xs, ys)
    assert err.max() <= 4, (err.max(), xs[err.argmax()], ys[err.argmax()])


def test_general_pow_same_bits_anywhere_in_a_chunk():
    # A value does not depend on its neighbours, its position or a ragged tail: every slice of
    # every length gives the bits of the whole call, and a single call gives them too.
    rng = np.random.default_rng(12)
    xs, ys = np.exp(rng.uniform(-20, 20, 300)), rng.uniform(-30, 30, 300)
    xs[::17], ys[::13] = -2.0, 0.5  # patched lanes and square-root lanes among the others
    x, y = cr.vars("x y")
    fn = cr.compile(x**y, inputs=[x, y])
    whole = fn(xs, ys)
    for start in (0, 1, 5, 8):
        for n in (1, 3, 7, 8, 9, 15, 17, 100):
            part, want = fn(xs[start:start + n], ys[start:start + n]), whole[start:start + n]
            np.testing.assert_array_equal(part.view(np.int64), want.view(np.int64))
    for i in range(0, 300, 11):
        assert np.float64(fn(float(xs[i]), float(ys[i]))).view(np.int64) == whole[i].view(np.int64)


SPECIAL = [0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 3.0, -3.0, 1.5, np.inf, -np.inf, np.nan,
           5e-324, -5e-324, 1e-310, 1e308, -1e308, 1023.0, 1025.0, -1075.0]  # fmt: skip


def test_general_pow_keeps_c_special_cases():
    xs, ys = (g.ravel() for g in np.meshgrid(SPECIAL, SPECIAL))
    x, y = cr.vars("x y")
    got = cr.compile(x**y, inputs=[x, y])(xs, ys)
    with np.errstate(all="ignore"):
        want = np.power(xs, ys)
    exact = (want == 0) | (want == 1) | np.isinf(want) | np.isnan(want) | (np.abs(want) < 2.3e-308)
    np.testing.assert_array_equal(np.signbit(got[exact]), np.signbit(want[exact]))
    np.testing.assert_array_equal(got[exact], want[exact])
    np.testing.assert_allclose(got[~exact], want[~exact], rtol=4 * 2.0**-52)


@pytest.mark.parametrize("c", [0.5, -0.5, 1.5, -1.5, 3.0, -3.0, 4.0, -4.0, 12.0])
def test_constant_powers_keep_c_special_cases(c):
    xs = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, -2.0, 2.0])
    x = cr.var("x")
    got = cr.compile(x**c, inputs=[x])(xs)
    with np.errstate(all="ignore"):
        # C's pow: NumPy's `xs ** 0.5` is its sqrt (-0 at -0, nan at -inf); the ufunc with an
        # array exponent calls pow.
        want = np.power(xs, np.full_like(xs, c))
    special = ~np.isfinite(want) | (want == 0) | (want == 1)
    np.testing.assert_array_equal(got[special], want[special])
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
    np.testing.assert_allclose(got[~special], want[~special], rtol=4 * 2.0**-52)


@pytest.mark.parametrize("text", ["x ** 12", "x ** -3", "x ** 1.5", "x ** -0.5", "x**2.3", "x**y"])
def test_single_values_equal_arrays_bitwise(text):
    x, y = cr.vars("x y")
    fn = cr.compile(cr.parse(text), inputs=[x, y])
    rng = np.random.default_rng(5)
    xs, ys = rng.uniform(0.01, 5, 200), rng.uniform(-5, 5, 200)
    arr = fn(xs, ys)
    for i in range(0, 200, 7):
        assert fn(float(xs[i]), float(ys[i])) == arr[i]


@pytest.mark.parametrize("c", [3.0, 12.0, -3.0, 0.5, -0.5, 1.5, 2.3])
def test_gradients_match_finite_differences(c):
    x = cr.var("x")
    fn = cr.compile(cr.grad(x**c, x), inputs=[x])
    xs = np.linspace(0.3, 2.5, 50)
    assert_fd(lambda v: v**c, xs, fn(xs), rtol=1e-6)


def test_general_pow_gradients_match_finite_differences():
    x, y = cr.vars("x y")
    gx, gy = (cr.compile(g, inputs=[x, y]) for g in cr.grad(x**y, [x, y]))
    xs, ys = np.linspace(0.3, 2.5, 40), np.linspace(-2.0, 2.0, 40)
    assert_fd(lambda v: v**ys, xs, gx(xs, ys))
    assert_fd(lambda v: xs**v, ys, gy(xs, ys))


def test_power_rule_is_n_times_x_to_the_n_minus_one_and_finite_at_zero():
    x = cr.var("x")
    assert str(cr.grad(x**12, x)) == str(12 * x**11)
    for c in (3.0, 4.0, 12.0, 1.5):
        assert cr.compile(cr.grad(x**c, x), inputs=[x])(0.0) == 0.0
    # The convention at zero for a general exponent (DESIGN.md): d/dx is 0 at x = y = 0 and
    # d/dy is 0 at x = 0, y > 0.
    y = cr.var("y")
    gx, gy = (cr.compile(g, inputs=[x, y]) for g in cr.grad(x**y, [x, y]))
    assert gx(0.0, 0.0) == 0.0 and gy(0.0, 2.0) == 0.0
