"""Symbolic gradients: the article's derivatives against hand formulas, finite differences,
reductions (the element-by-element rule and broadcast summation), higher order, JAX."""

from __future__ import annotations

import re

import numpy as np
import pytest

import chainrule as cr
from conftest import NP, assert_fd

x, y, w = cr.vars("x y w")
w1, b1, w2, b2 = cr.vars("w1 b1 w2 b2")
XS = np.linspace(-2.9, 2.9, 41) + 0.013  # avoids 0 and the poles of log(sin(x)) below
RNG = np.random.default_rng(0)


def values(e, *args, inputs=(x,)):
    return cr.compile(e, inputs=list(inputs))(*args)


sigma = NP["sigmoid"]


# -- the article's derivatives ------------------------------------------------------------------

ARTICLE = [
    ("sin(cos(x))", cr.sin(cr.cos(x)), lambda t: -np.cos(np.cos(t)) * np.sin(t)),
    ("sin(x)**2", cr.sin(x) ** 2, lambda t: 2 * np.sin(t) * np.cos(t)),
    ("log(sin(x))", cr.log(cr.sin(x)), lambda t: np.cos(t) / np.sin(t)),
    ("sin(x**2)", cr.sin(x**2), lambda t: 2 * t * np.cos(t**2)),
    ("1/(1+exp(-x))", 1 / (1 + cr.exp(-x)), lambda t: sigma(t) * (1 - sigma(t))),
    ("sigmoid(x)", cr.sigmoid(x), lambda t: sigma(t) * (1 - sigma(t))),
    ("exp(-x**2)", cr.exp(-(x**2)), lambda t: -2 * t * np.exp(-(t**2))),
    ("tanh(3x)", cr.tanh(3 * x), lambda t: 3 * (1 - np.tanh(3 * t) ** 2)),
    ("x**3", x**3, lambda t: 3 * t**2),
    ("sqrt(1+x**2)", cr.sqrt(1 + x**2), lambda t: t / np.sqrt(1 + t**2)),
    ("tan(x/2)", cr.tan(x / 2), lambda t: 0.5 / np.cos(t / 2) ** 2),
    ("relu(x)*x", cr.relu(x) * x, lambda t: np.where(t > 0, 2 * t, 0.0)),
    ("abs(x)", abs(x), np.sign),
]


@pytest.mark.parametrize("name, f, hand", ARTICLE, ids=[a[0] for a in ARTICLE])
def test_article_derivative(name, f, hand):
    xs = XS[np.sin(XS) > 0.05] if "log" in name else XS
    got = values(cr.grad(f, x), xs)
    np.testing.assert_allclose(got, hand(xs), rtol=1e-12, atol=1e-13)
    assert_fd(lambda t: values(f, t), xs, got)


def test_wrong_hand_derivative_of_sin_squared_differs():
    """The tempting cos(x**2) * 2x is not d/dx sin(x)**2 (that is sin(x**2)'s derivative)."""
    got = values(cr.grad(cr.sin(x) ** 2, x), XS)
    assert np.max(np.abs(got - np.cos(XS**2) * 2 * XS)) > 0.5


def test_article_derivative_prints_compactly():
    text = str(cr.grad(cr.sin(cr.cos(x)), x))
    assert cr.parse(text) == cr.grad(cr.sin(cr.cos(x)), x)
    assert len(text) <= len("-(cos(cos(x)) * sin(x))") + 4, text


_LEFTOVER = re.compile(r"(?<![\w.])1 \*|\* 1(?![\w.])|\+ 0(?![\w.])|(?<![\w.])0 [*+]|- 0(?![\w.])")


@pytest.mark.parametrize("name, f, hand", ARTICLE, ids=[a[0] for a in ARTICLE])
def test_derivative_has_no_leftover_identities(name, f, hand):
    assert not _LEFTOVER.search(str(cr.grad(f, x))), str(cr.grad(f, x))


# -- the article's network -----------------------------------------------------------------------


def _network():
    h = cr.sigmoid(w1 * x + b1)
    yhat = cr.sigmoid(w2 * h + b2)
    return cr.mean((y - yhat) ** 2)


def test_network_gradients_match_hand_formulas():
    xs = RNG.uniform(-2, 2, 500)
    ys = np.sin(xs) * 0.4 + 0.5
    p = {"w1": 0.7, "b1": -0.3, "w2": 1.3, "b2": 0.2}
    J = _network()
    inputs = [x, y, w1, b1, w2, b2]
    fn = cr.compile([J, *cr.grad(J, [w1, b1, w2, b2])], inputs=inputs)
    got = fn(xs, ys, *p.values())
    h = sigma(p["w1"] * xs + p["b1"])
    yhat = sigma(p["w2"] * h + p["b2"])
    common = -2 * (ys - yhat) * yhat * (1 - yhat)
    want = [
        np.mean((ys - yhat) ** 2),
        np.mean(common * p["w2"] * h * (1 - h) * xs),
        np.mean(common * p["w2"] * h * (1 - h)),
        np.mean(common * h),
        np.mean(common),
    ]
    for g, v in zip(got, want, strict=True):
        assert type(g) is np.float64
        np.testing.assert_allclose(g, v, rtol=1e-12, atol=1e-15)


def test_network_gradient_matches_finite_differences_in_each_weight():
    xs = RNG.uniform(-2, 2, 200)
    ys = RNG.uniform(0, 1, 200)
    J = _network()
    params = [0.7, -0.3, 1.3, 0.2]
    inputs = [x, y, w1, b1, w2, b2]
    grads = cr.compile(cr.grad(J, [w1, b1, w2, b2]), inputs=inputs)(xs, ys, *params)
    loss = cr.compile(J, inputs=inputs)
    for i, g in enumerate(grads):
        def f(t, i=i):
            p = list(params)
            p[i] = float(t)
            return loss(xs, ys, *p)
        h = 1e-6
        assert g == pytest.approx((f(params[i] + h) - f(params[i] - h)) / (2 * h), rel=1e-6)


# -- reductions: the element-by-element rule ----------------------------------------------------


def test_grad_of_mean_wrt_scalar_is_mean_of_per_sample_gradient():
    xs = RNG.normal(size=100)
    loss = (cr.sin(w * x) - x) ** 2
    per_sample = values(cr.grad(loss, w), xs, 0.8, inputs=(x, w))
    reduced = values(cr.grad(cr.mean(loss), w), xs, 0.8, inputs=(x, w))
    assert type(reduced) is np.float64
    assert reduced == pytest.approx(np.mean(per_sample), rel=1e-13)
    np.testing.assert_allclose(per_sample, 2 * (np.sin(0.8 * xs) - xs) * np.cos(0.8 * xs) * xs)


def test_grad_of_sum_wrt_array_is_per_sample_derivative():
    xs = RNG.normal(size=(7, 3))
    got = values(cr.grad(cr.sum(cr.sin(x) * x), x), xs)
    assert got.shape == (7, 3)
    np.testing.assert_allclose(got, np.cos(xs) * xs + np.sin(xs), rtol=1e-14)


@pytest.mark.parametrize(
    "wshape, xshape",
    [((3, 1), (3, 4)), ((1, 4), (3, 4)), ((4,), (3, 4)), ((), (3, 4)), ((3, 4), (3, 4)),
     ((1, 1, 1), (2, 3)), ((2, 1), (4,)), ((5,), ()), ((2, 1, 3), (4, 1))],
)
def test_reduced_gradient_has_argument_shape_summed_over_broadcast(wshape, xshape):
    ws = RNG.normal(size=wshape)
    xs = RNG.normal(size=xshape)
    got = values(cr.grad(cr.sum(cr.sin(w) * x), w), xs, ws, inputs=(x, w))
    full = np.cos(ws) * xs  # the per-sample derivative, broadcast
    extra = full.ndim - np.ndim(ws)
    want = full.sum(axis=tuple(range(extra)))
    want = want.sum(axis=tuple(i for i, n in enumerate(np.shape(ws)) if n == 1), keepdims=True)
    assert np.shape(got) == np.shape(ws)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("wshape", [(), (1,), (3, 1), (3, 4)])
def test_per_sample_gradient_has_broadcast_shape(wshape):
    ws = RNG.normal(size=wshape)
    xs = RNG.normal(size=(3, 4))
    got = values(cr.grad(cr.sin(w) * x, w), xs, ws, inputs=(x, w))
    assert got.shape == (3, 4)
    np.testing.assert_allclose(got, np.cos(ws) * xs)


def test_constant_gradient_is_filled_out():
    got = values(cr.grad(x + y, x), np.ones((2, 3)), np.ones(3), inputs=(x, y))
    assert got.shape == (2, 3) and got.dtype == np.float64
    assert np.all(got == 1.0)


def test_gradient_of_independent_variable_is_zero_filled():
    got = values(cr.grad(cr.sin(x), y), np.ones(4), 2.0, inputs=(x, y))
    assert got.shape == (4,) and np.all(got == 0.0)


@pytest.mark.parametrize("e", [cr.mean(x), cr.sum(x * x), cr.mean(x) + 1], ids=str)
def test_reduced_gradient_wrt_unused_scalar_is_a_number(e):
    """The gradient of a reduction has the shape of the variable's argument even when it is
    structurally zero: w bound to a scalar gives numpy.float64(0.0)."""
    got = values(cr.grad(e, w), np.ones(4), 2.0, inputs=(x, w))
    assert type(got) is np.float64 and got == 0.0, repr(got)


@pytest.mark.parametrize("e", [cr.sum(x * cr.sum(x)), cr.sum(x) * cr.sum(x)], ids=str)
def test_reduced_gradient_through_inner_reduction(e):
    """d (sum x)**2 / d x_i = 2 sum(x) for every i: the inner sum's adjoint is summed."""
    xs = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(values(cr.grad(e, x), xs), [12.0, 12.0, 12.0])


def test_nested_mean_scalar_weight():
    """grad(w*x - mean(w*x), w) = x_i - mean(x) per sample, for a scalar w."""
    xs = RNG.normal(size=50)
    got = values(cr.grad(w * x - cr.mean(w * x), w), xs, 1.5, inputs=(x, w))
    np.testing.assert_allclose(got, xs - xs.mean(), rtol=1e-12, atol=1e-14)


def test_nested_mean_array_weight():
    """With w bound per sample, d(w_i x_i - mean(w x))/dw_i = x_i - x_i / N."""
    xs, ws = RNG.normal(size=50), RNG.normal(size=50)
    got = values(cr.grad(w * x - cr.mean(w * x), w), xs, ws, inputs=(x, w))
    np.testing.assert_allclose(got, xs - xs / 50, rtol=1e-12, atol=1e-14)


def test_variance_gradient_wrt_samples():
    xs = RNG.normal(size=40)
    var = cr.mean((x - cr.mean(x)) ** 2)
    value, grad = cr.compile([var, cr.grad(var, x)], inputs=[x])(xs)
    assert value == pytest.approx(np.var(xs), rel=1e-13)
    np.testing.assert_allclose(grad, 2 * (xs - xs.mean()) / xs.size, rtol=1e-12, atol=1e-15)


def test_variance_gradient_wrt_scalar_scale():
    """v(w) = var(w * x) = w**2 var(x), so dv/dw = 2 w var(x)."""
    xs = RNG.normal(size=40)
    var = cr.mean((w * x - cr.mean(w * x)) ** 2)
    got = values(cr.grad(var, w), xs, 1.7, inputs=(x, w))
    assert got == pytest.approx(2 * 1.7 * np.var(xs), rel=1e-12)


def test_standardise_gradient_matches_finite_differences():
    """Reductions nested twice: z = (x - mean(x)) / sqrt(var + 1e-3), loss = sum(z * c)."""
    xs, cs = RNG.normal(size=12), RNG.normal(size=12)
    c = cr.var("c")
    mu = cr.mean(x)
    z = (x - mu) / cr.sqrt(cr.mean((x - mu) ** 2) + 1e-3)
    loss = cr.sum(z * c)
    fn = cr.compile(loss, inputs=[x, c])
    got = cr.compile(cr.grad(loss, x), inputs=[x, c])(xs, cs)
    h = 1e-6
    for i in range(xs.size):
        e = np.zeros_like(xs)
        e[i] = h
        central = (fn(xs + e, cs) - fn(xs - e, cs)) / (2 * h)
        assert got[i] == pytest.approx(central, rel=1e-6, abs=1e-8)


def test_sum_over_spelling_evaluates_to_broadcast_sum():
    xs, ws = RNG.normal(size=(3, 4)), RNG.normal(size=(3, 1))
    got = values(cr.sum(x, over=w), xs, ws, inputs=(x, w))
    np.testing.assert_allclose(got, xs.sum(axis=1, keepdims=True))


# -- higher order ---------------------------------------------------------------------------------

HIGHER = [
    (cr.sin(x), 2, lambda t: -np.sin(t)),
    (cr.sin(x), 3, lambda t: -np.cos(t)),
    (x**3, 3, lambda t: np.full_like(t, 6.0)),
    (cr.exp(2 * x), 4, lambda t: 16 * np.exp(2 * t)),
    (cr.sigmoid(x), 2, lambda t: sigma(t) * (1 - sigma(t)) * (1 - 2 * sigma(t))),
    (cr.log(1 + x**2), 2, lambda t: (2 - 2 * t**2) / (1 + t**2) ** 2),
    (cr.tanh(x), 2, lambda t: -2 * np.tanh(t) * (1 - np.tanh(t) ** 2)),
]


@pytest.mark.parametrize("f, order, hand", HIGHER,
                         ids=lambda v: str(v) if isinstance(v, int) else None)
def test_higher_order(f, order, hand):
    g = f
    for _ in range(order):
        g = cr.grad(g, x)
    np.testing.assert_allclose(values(g, XS), hand(XS), rtol=1e-11, atol=1e-12)


def test_mixed_partials_commute():
    f = cr.sin(cr.cos(x)) * cr.exp(-(y**2)) + cr.log(1 + x**2) * cr.sigmoid(x * y)
    xs, ys = RNG.normal(size=30), RNG.normal(size=30)
    gxy = values(cr.grad(cr.grad(f, x), y), xs, ys, inputs=(x, y))
    gyx = values(cr.grad(cr.grad(f, y), x), xs, ys, inputs=(x, y))
    np.testing.assert_allclose(gxy, gyx, rtol=1e-12, atol=1e-13)


def test_grad_list_and_single():
    f = x * y * w
    assert cr.grad(f, [x, y, w]) == [y * w * 1, x * w, x * y] or len(cr.grad(f, [x, y, w])) == 3
    assert isinstance(cr.grad(f, x), cr.Expr)
    assert cr.grad(f, [x]) == [cr.grad(f, x)]
    assert cr.grad(f, []) == []


def test_grad_of_constant_and_of_other_variable():
    assert cr.grad(cr.expr.as_expr(3.0), x).value == 0.0
    assert cr.grad(cr.sin(y), x).value == 0.0
    assert cr.grad(x, x).value == 1.0


# -- JAX as an optional oracle --------------------------------------------------------------------


def test_against_jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy

    def f_jax(a, b):
        return jnp.sin(jnp.cos(a)) * jnp.exp(-(b**2)) + jnp.log(1 + a**2) * jax.nn.sigmoid(a * b)

    f = cr.sin(cr.cos(x)) * cr.exp(-(y**2)) + cr.log(1 + x**2) * cr.sigmoid(x * y)
    xs, ys = RNG.normal(size=64), RNG.normal(size=64)
    gx, gy = cr.compile(cr.grad(f, [x, y]), inputs=[x, y])(xs, ys)
    jx, jy = jax.vmap(jax.grad(f_jax, argnums=(0, 1)))(xs, ys)
    np.testing.assert_allclose(gx, np.asarray(jx), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(gy, np.asarray(jy), rtol=1e-12, atol=1e-14)


def test_network_against_jax():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy

    def loss(p, xs, ys):
        h = jax.nn.sigmoid(p[0] * xs + p[1])
        return jnp.mean((ys - jax.nn.sigmoid(p[2] * h + p[3])) ** 2)

    xs, ys = RNG.uniform(-2, 2, 300), RNG.uniform(0, 1, 300)
    params = [0.7, -0.3, 1.3, 0.2]
    J = _network()
    got = cr.compile(cr.grad(J, [w1, b1, w2, b2]), inputs=[x, y, w1, b1, w2, b2])(xs, ys, *params)
    want = np.asarray(jax.grad(loss)(jnp.array(params), xs, ys))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("text", [
    "mean((y - sigmoid(w * x + b)) ** 2) + mean(x * mean(x * w))", "x - mean(x * w)",
    "sum(exp(mean(x) * w) * y)", "sigmoid(w * mean(x * y) + b) * x"])
def test_derivatives_of_full_reductions_are_never_refused(text):
    """Derivatives build partial sums, and grad refuses only three nested partial sums that
    each span several elements of the variable; from expressions whose only reductions are
    full ones that never arises: every third derivative here is given."""
    names = cr.vars("x y w b")
    f = cr.parse(text)
    third = []
    for a in names:
        first = cr.grad(f, a)
        for b_ in names:
            third += cr.grad(cr.grad(first, b_), list(names))
    args = (np.array([0.5, -1.25, 2.0]), np.array([[0.75], [-0.5]]),
            np.array([[1.0, 2.0, -3.0]]), 0.3)
    results = cr.compile(third, inputs=list(names))(*args)
    assert len(results) == 64 and all(np.all(np.isfinite(r)) for r in results)


# -- sigmoid' and tanh' in the tails (issue 15, item 5) -------------------------------------------

TAILS = [0.0, 0.5, -3.0, 19.0, -19.5, 30.0, -30.0, 37.43, -37.43, 40.0, -40.0, 100.0, -100.0,
         700.0, -700.0]


def _exact_slopes(t):
    import mpmath

    with mpmath.workprec(200):
        e = mpmath.exp(-abs(mpmath.mpf(t)))
        return float(e / (1 + e) ** 2), float(1 / mpmath.cosh(mpmath.mpf(t)) ** 2)


@pytest.mark.parametrize("array", [False, True], ids=["float", "array"])
def test_sigmoid_and_tanh_slopes_keep_relative_accuracy_in_the_tails(array):
    fn = cr.compile([cr.grad(cr.sigmoid(x), x), cr.grad(cr.tanh(x), x)], inputs=[x])
    for t in TAILS:
        ds, dt = fn(np.array([t, -t, 0.25]) if array else t)
        ds, dt = (float(ds[0]), float(dt[0])) if array else (ds, dt)
        want_s, want_t = _exact_slopes(t)
        assert ds == pytest.approx(want_s, rel=8e-16, abs=0), f"sigmoid'({t})"
        assert dt == pytest.approx(want_t, rel=1.2e-15, abs=0), f"tanh'({t})"
    assert fn(37.43)[0] == pytest.approx(5.55e-17, rel=1e-3)
    assert fn(40.0)[0] == pytest.approx(4.25e-18, rel=1e-3)


def test_tail_slopes_agree_between_the_float_and_the_chunk_paths():
    ts = np.array(TAILS + [-t for t in TAILS] + list(np.linspace(-60, 60, 2001)))
    e = cr.grad(cr.sigmoid(w * x + y), [x]) + cr.grad(cr.tanh(x * y), [x])
    fn = cr.compile(e, inputs=[x, y, w])
    got = fn(ts, 0.3, 1.7)
    for k in range(0, len(ts), 97):
        one = fn(float(ts[k]), 0.3, 1.7)
        assert [g[k] for g in got] == list(one), ts[k]


# -- the power rule at zero (issue 15, item 4) ----------------------------------------------------


@pytest.mark.parametrize("array", [False, True], ids=["float", "array"])
def test_power_rule_at_zero_follows_autograd_and_jax(array):
    def call(fn, *args):
        got = fn(*[np.array([a, a]) if array else a for a in args])
        return [float(g[0]) if array else float(g) for g in got]

    fn = cr.compile(cr.grad(x**y, [x, y]), inputs=[x, y])
    assert call(fn, 0.0, 0.0)[0] == 0.0  # d/dx at x = 0, y = 0 (y bound at call time)
    assert call(fn, 0.0, 0.17)[1] == 0.0  # d/dy at x = 0, y > 0
    assert call(fn, 0.0, 3.0) == [0.0, 0.0]
    assert call(fn, 0.0, 1.0)[0] == 1.0
    # autograd's test_power_arg1_zero
    base_zero = cr.compile([cr.grad(0.0**y, y), 0.0**y], inputs=[y])
    assert call(base_zero, 0.17) == [0.0, 0.0]
    for a, b in [(0.7, 0.0), (1.3, -0.4), (2.5, 1.7), (0.2, 3.0)]:
        h = 1e-6
        fd_x = ((a + h) ** b - (a - h) ** b) / (2 * h)
        fd_y = (a ** (b + h) - a ** (b - h)) / (2 * h)
        gx, gy = call(fn, a, b)
        assert gx == pytest.approx(fd_x, rel=1e-7, abs=1e-9)
        assert gy == pytest.approx(fd_y, rel=1e-7, abs=1e-9)


def test_constant_exponents_keep_the_plain_power_rule():
    assert str(cr.grad(x**3, x)) == "3 * x ** 2"
    assert str(cr.grad(x**0.5, x)) == "0.5 * x ** -0.5"
    assert str(cr.grad(x**y, x)) == "y * x ** (y - step(abs(y)))"
    assert str(cr.grad(x**y, y)) == "xlogy(x ** y, x)"
