"""Random expressions over every op: printing parses back to the same node, compiled values
equal a NumPy evaluation of the same tree, and gradients equal forward-mode dual numbers
(per sample, through sum/mean, and for scalar arguments), all to rounding."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, assume, given, settings

import chainrule as cr
from conftest import EPS, dual_eval, env_points, to_expr, trees

SETTINGS = settings(
    max_examples=150, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
NAMES = ("x", "y", "z")
VARS = cr.vars(" ".join(NAMES))


def _usable(point, limit=1e8):
    """Samples where the oracle is finite, moderate and away from kinks (value and derivative)."""
    with np.errstate(all="ignore"):
        ok = np.isfinite(point.value) & np.isfinite(point.scale) & (point.scale < limit)
        ok &= np.isfinite(point.deriv) & np.isfinite(point.dscale) & (point.dscale < limit)
    return ok & ~point.near_kink


def _close(got, want, scale, factor=64.0):
    """|got - want| within factor * eps * (the oracle's running error bound)."""
    with np.errstate(invalid="ignore"):
        return np.abs(got - want) <= factor * EPS * (scale + np.abs(want)) + 1e-300


@SETTINGS
@given(trees())
def test_print_parse_round_trip(tree):
    e = to_expr(tree)
    text = str(e)
    assert cr.parse(text) == e, text
    assert str(cr.parse(text)) == text


@SETTINGS
@given(trees(8))
def test_gradient_print_parse_round_trip(tree):
    e = to_expr(tree)
    for g in cr.grad(e, list(VARS)):
        assert cr.parse(str(g)) == g, str(g)


@SETTINGS
@given(trees(), env_points())
def test_value_matches_numpy(tree, env):
    point = dual_eval(tree, env)
    ok = _usable(point)
    assume(ok.any())
    got = cr.compile(to_expr(tree), inputs=list(VARS))(*(env[n] for n in NAMES))
    got = np.broadcast_to(got, ok.shape)
    bad = ok & ~_close(got, point.value, point.scale)
    assert not bad.any(), (str(to_expr(tree)), got[bad], point.value[bad])


@SETTINGS
@given(trees(), env_points())
def test_gradient_matches_dual_numbers(tree, env):
    e = to_expr(tree)
    fn = cr.compile(cr.grad(e, list(VARS)), inputs=list(VARS))
    got = fn(*(env[n] for n in NAMES))
    for name, g in zip(NAMES, got, strict=True):
        point = dual_eval(tree, env, wrt=name)
        ok = _usable(point)
        g = np.broadcast_to(g, ok.shape)
        bad = ok & ~_close(g, point.deriv, point.dscale, factor=1e4)
        assert not bad.any(), (str(e), name, g[bad], point.deriv[bad])


@SETTINGS
@given(trees(), env_points())
def test_gradient_of_sum_and_mean(tree, env):
    """Array x: grad(sum(e), x) is de_i/dx_i. Scalar y: grad(mean(e), y) is mean(de_i/dy)."""
    env = dict(env, y=np.float64(env["y"][0]), z=np.asarray(env["z"]))
    e = to_expr(tree)
    px, py = dual_eval(tree, env, wrt="x"), dual_eval(tree, env, wrt="y")
    ok_x, ok_y = _usable(px), _usable(py)
    assume(ok_x.all() and ok_y.all())
    x, y, _ = VARS
    fn = cr.compile([cr.grad(cr.sum(e), x), cr.grad(cr.mean(e), y), cr.mean(e)], inputs=list(VARS))
    gx, gy, mean = fn(*(env[n] for n in NAMES))
    assert _close(gx, px.deriv, px.dscale, factor=1e4).all(), (str(e), gx, px.deriv)
    dy, dscale = py.deriv.mean(), py.dscale.mean() + np.abs(py.deriv).mean()
    assert _close(gy, dy, dscale, factor=1e4).all(), (str(e), gy, dy)
    scale = px.scale.mean() + np.abs(px.value).mean()
    assert _close(mean, px.value.mean(), scale), (str(e), mean)
    # The shapes last, so a shape bug does not hide a value bug from the shrinker.
    assert np.shape(gx) == (8,) and type(mean) is np.float64
    if cr.grad(e, y).value is None:  # a constant gradient's shape: test_grad's own test
        assert type(gy) is np.float64, (str(e), str(cr.grad(cr.mean(e), y)), gy)


@SETTINGS
@given(trees(6), env_points(n=4))
def test_threads_do_not_change_results(tree, env):
    e = to_expr(tree)
    outs = [e, *cr.grad(e, list(VARS)), cr.sum(e)]
    fn = cr.compile(outs, inputs=list(VARS))
    before = cr.get_num_threads()
    args = [np.resize(env[n], 70_000) for n in NAMES]
    try:
        cr.set_num_threads(1)
        one = fn(*args)
        cr.set_num_threads(2)
        two = fn(*args)
    finally:
        cr.set_num_threads(before)
    for a, b in zip(one, two, strict=True):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()


@SETTINGS
@given(trees(6), env_points(n=3))
def test_scalar_calls_match_array_calls(tree, env):
    fn = cr.compile(to_expr(tree), inputs=list(VARS))
    full = np.broadcast_to(fn(*(env[n] for n in NAMES)), (3,))
    single = [fn(*(float(env[n][i]) for n in NAMES)) for i in range(3)]
    assert all(type(s) is np.float64 for s in single)
    # Both paths are within 4 ulp of the true result, so within 8 of each other.
    np.testing.assert_array_max_ulp(np.array(single), full, maxulp=8)


def _diagonal(tree, env, wrt):
    """d out_i / d wrt_i for each sample i (one forward pass per sample), with its bound."""
    n = np.size(env[wrt])
    points = [dual_eval(tree, env, wrt, seed=np.eye(n)[i]) for i in range(n)]
    deriv = np.array([p.deriv[i] for i, p in enumerate(points)])
    dscale = np.array([p.dscale[i] for i, p in enumerate(points)])
    usable = np.array([_usable(p)[i] for i, p in enumerate(points)])
    return deriv, dscale, usable, points


@SETTINGS
@given(trees(8, reductions=True), env_points(n=5))
def test_nested_reductions(tree, env):
    """Trees with sum/mean anywhere: values, and gradients by the element-by-element rule
    (array x: d out_i/d x_i, and for a reduced output the sum over samples; scalar y: the
    derivative along the one shared value)."""
    env = dict(env, y=np.float64(env["y"][0]))
    e = to_expr(tree)
    assert cr.parse(str(e)) == e, str(e)
    x, y, _ = VARS
    point = dual_eval(tree, env, wrt="y")
    diag, dscale, usable, columns = _diagonal(tree, env, "x")
    assume(_usable(point).all() and usable.all())
    fn = cr.compile([e, *cr.grad(e, [x, y])], inputs=list(VARS))
    value, gx, gy = fn(*(env[n] for n in NAMES))
    assert _close(value, point.value, point.scale).all(), (str(e), value, point.value)
    if point.cls == "reduced":
        want_x = np.array([c.deriv[0] for c in columns])  # d R / d x_i, R a number
        bound = np.array([c.dscale[0] for c in columns])
        assert _close(gx, want_x, bound, factor=1e4).all(), (
            str(e), str(cr.grad(e, x)), gx, want_x)
    else:
        assert _close(gx, diag, dscale, factor=1e4).all(), (str(e), str(cr.grad(e, x)), gx, diag)
    assert _close(gy, point.deriv, point.dscale, factor=1e4).all(), (
        str(e), str(cr.grad(e, y)), gy, point.deriv)
    reduced = point.cls == "reduced"
    assert (type(value) is np.float64) if reduced else np.shape(value) == (5,), (str(e), value)
    assert np.shape(gx) == (5,)
    if cr.grad(e, y).value is None:  # a constant gradient's shape: test_grad's own test
        assert (type(gy) is np.float64) if reduced else np.shape(gy) == (5,), (str(e), gy)
