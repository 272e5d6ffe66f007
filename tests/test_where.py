"""``where(c, a, b)`` never leaks (issue 17, item 2): the branch not taken reaches neither the
value nor the gradient, first or second order, nested, summed, inside reductions; and it
prints, parses and pickles as ``where``."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

import chainrule as cr

x, y = cr.vars("x y")
POINTS = np.array([-1.0, 0.0, 2.0])


def _compile(fs, inputs=(x,)):
    return cr.compile(fs, inputs=list(inputs))


def _quiet(fn, *args):
    """Calls fn with NumPy warnings as errors: nothing leaks as an invalid operation either."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args)


def test_values_select_per_sample_bit_for_bit():
    a = np.array([-1.0, 0.0, -0.0, 2.0, np.nan, np.inf])
    f = cr.where(x > 0, x * 3, -x)
    want = np.where(a > 0, a * 3, -a)
    got = _compile(f)(a)
    assert np.array_equal(got, want, equal_nan=True)
    assert np.array_equal(np.signbit(got), np.signbit(want))
    # nan counts as true, as np.where: where(nan, 1, 2) is 1.
    got = _compile(cr.where(x, 1.0, 2.0))(np.array([np.nan, 0.0, -0.0, 3.0]))
    assert got.tolist() == [1.0, 2.0, 2.0, 1.0]
    # Signed zeros come through either branch as they are.
    zeros, conditions = np.array([-0.0, 0.0, -0.0, 0.0]), np.array([1.0, 1.0, 0.0, 0.0])
    z = _compile(cr.where(y, x, -x), (x, y))(zeros, conditions)
    assert np.signbit(z).tolist() == [True, False, False, True]


@pytest.mark.parametrize("condition", [cr.step(x), x > 0], ids=["step", "greater"])
def test_gradient_of_sqrt_branch_is_zero_where_not_taken(condition):
    f = cr.where(condition, cr.sqrt(x), 0)
    value, d = _quiet(_compile([f, cr.grad(f, x)]), POINTS)
    assert value.tolist() == [0.0, 0.0, np.sqrt(2.0)]
    assert d.tolist() == [0.0, 0.0, 0.5 / np.sqrt(2.0)]


@pytest.mark.parametrize("condition", [cr.step(x), x > 0], ids=["step", "greater"])
def test_gradient_of_log_branch(condition):
    f = cr.where(condition, cr.log(x), x)
    value, d, d2 = _quiet(_compile([f, cr.grad(f, x), cr.grad(cr.grad(f, x), x)]), POINTS)
    assert value.tolist() == [-1.0, 0.0, np.log(2.0)]
    assert d.tolist() == [1.0, 1.0, 0.5]
    assert d2.tolist() == [0.0, 0.0, -0.25]


def test_nested_wheres():
    # sqrt for x > 1, log for 0 < x <= 1, 1/x (inf at 0) never taken at x <= 0.
    f = cr.where(x > 1, cr.sqrt(x - 1), cr.where(x > 0, cr.log(x), 1 / (x - 1)))
    a = np.array([-2.0, 0.0, 0.5, 1.0, 5.0])
    value, d = _quiet(_compile([f, cr.grad(f, x)]), a)
    with np.errstate(all="ignore"):
        want = np.where(a > 1, np.sqrt(a - 1), np.where(a > 0, np.log(a), 1 / (a - 1)))
        want_d = np.where(a > 1, 0.5 / np.sqrt(a - 1), np.where(a > 0, 1 / a, -1 / (a - 1) ** 2))
    np.testing.assert_allclose(value, want, rtol=1e-15)
    np.testing.assert_allclose(d, want_d, rtol=1e-15)


def test_sums_over_branches_and_shared_operands():
    # The branch values are used outside the where too, where they are finite.
    s = cr.sqrt(x * x + 1)
    f = cr.where(x > 0, cr.log(x) * s, s) + s * 2 + cr.where(x < 0, cr.sqrt(-x), x)
    a = np.array([-3.0, -1.0, 0.0, 0.5, 4.0])
    value, d = _quiet(_compile([f, cr.grad(f, x)]), a)
    h = 1e-6
    fn = _compile(f)
    with np.errstate(all="ignore"):
        fd = (fn(a + h) - fn(a - h)) / (2 * h)
    finite = a != 0  # a kink of the second where at 0
    np.testing.assert_allclose(d[finite], fd[finite], rtol=1e-6)
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(d))


def test_where_inside_a_reduction_and_its_gradient():
    w = cr.var("w")
    loss = cr.mean(cr.where(x * w > 0, cr.log(x * w), 0))
    g = cr.grad(loss, w)
    a = np.array([-2.0, -1.0, 1.0, 3.0])
    value, dw = _quiet(_compile([loss, g], (x, w)), a, 1.5)
    assert value == pytest.approx(np.log(a[2:] * 1.5).sum() / 4)
    assert dw == pytest.approx(2 / 1.5 / 4)
    # Per sample: the element-by-element gradient is 0 where the branch is not taken.
    per_sample = _quiet(_compile(cr.grad(cr.where(x * w > 0, cr.log(x * w), 0), w), (x, w)), a, 1.5)
    assert per_sample.tolist() == [0.0, 0.0, 1 / 1.5, 1 / 1.5]


def test_second_derivatives_do_not_leak():
    f = cr.where(x > 0, x * cr.sqrt(x), x * x)
    d1 = cr.grad(f, x)
    d2 = cr.grad(d1, x)
    value, g1, g2 = _quiet(_compile([f, d1, d2]), POINTS)
    assert g1.tolist() == [-2.0, 0.0, 1.5 * np.sqrt(2.0)]
    np.testing.assert_allclose(g2, [2.0, 2.0, 0.75 / np.sqrt(2.0)], rtol=1e-15)


def test_prints_parses_and_pickles_as_where():
    cases = [
        cr.where(x > 0, cr.sqrt(x), 0),
        cr.where((x > 0) & (y < 1), x, y) * 2,
        cr.where(x, cr.where(y, 1, 2), 3),
        cr.where(x > y, x, y) + cr.where(x > y, y, x),
    ]
    for f in cases:
        text = str(f)
        assert "where(" in text and "select" not in text, text
        assert cr.parse(text) == f, text
        assert pickle.loads(pickle.dumps(f)) == f
        for g in cr.grad(f, [x, y]):
            assert cr.parse(str(g)) == g, str(g)
    assert str(cases[0]) == "where(x > 0, sqrt(x), 0)"
    assert cr.parse("where(x > 0, sqrt(x), 0)") == cases[0]
    fn = pickle.loads(pickle.dumps(_compile([cases[0], cr.grad(cases[0], x)])))
    assert [float(v) for v in fn(-1.0)] == [0.0, 0.0]


def test_constant_conditions_fold_to_the_branch():
    assert cr.where(1, x, y) == x and cr.where(0, x, y) == y and cr.where(np.nan, x, y) == x


def test_scalar_path_equals_array_path():
    f = cr.where(x > 0, cr.log(x), cr.sqrt(-x))
    fn = _compile([f, cr.grad(f, x)])
    a = np.array([-4.0, -0.0, 0.0, 1e-300, 3.0, np.inf, -np.inf, np.nan])
    arrays = fn(a)
    for i, v in enumerate(a):
        singles = fn(float(v))
        for arr, single in zip(arrays, singles, strict=True):
            assert np.float64(arr[i]).tobytes() == np.float64(single).tobytes(), (v, arr[i], single)


def test_jax_leaks_where_we_do_not():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    jax_grad = jax.grad(lambda t: jnp.where(t > 0, jnp.sqrt(t), 0.0))(-1.0)
    assert np.isnan(jax_grad)  # JAX's documented failure, which its "double where" avoids
    f = cr.where(x > 0, cr.sqrt(x), 0)
    assert float(_compile(cr.grad(f, x))(-1.0)) == 0.0
    # Where JAX does not leak, both agree.
    for t in (0.5, 2.0, 9.0):
        want = jax.grad(lambda t: jnp.where(t > 0, jnp.sqrt(t), 0.0))(t)
        assert float(_compile(cr.grad(f, x))(t)) == pytest.approx(float(want), rel=1e-15)


def test_one_node_in_two_wheres_branches_not_taken():
    # sqrt(x) feeds two wheres whose conditions differ; at x = -1 neither takes it, and its
    # adjoints from both meet at it: their sum stays selected, so sqrt's inf/nan slope is
    # never multiplied in.
    s = cr.sqrt(x)
    f = cr.where(x > 1, s, 0) + cr.where(x > 2, s * 3, x) + cr.where(x > 1, s * s, 0)
    d = _quiet(_compile(cr.grad(f, x)), np.array([-1.0, 0.0, 1.5, 4.0]))
    assert d.tolist() == [1.0, 1.0, 0.5 / np.sqrt(1.5) + 2.0, 2.0]
