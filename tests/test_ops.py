"""A sweep over the op table (``chainrule._core.OPS``): every op has a spelling that parses back,
values within a few ulp of NumPy (special values included), and gradients (first and second
order) that match hand rules and finite differences over its test domain."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import chainrule as cr
from conftest import BUILD, KINKED, NP, OPS, PARTIALS, apply_op, assert_fd

x, y = cr.vars("x y")
IDS = [op[0] for op in OPS]
RNG = np.random.default_rng(7)


def build(kind, arity, a=x, b=y):
    return apply_op(kind, a, b) if arity == 2 else apply_op(kind, a)


def reference(kind, *args):
    with np.errstate(all="ignore"):
        return NP[kind](*args)


def sample(dom, n=2001):
    lo, hi = dom
    return RNG.uniform(lo, hi, n)


def test_table_covers_the_api():
    kinds = {op[0] for op in OPS}
    functions = {"sin", "cos", "tan", "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "abs",
                 "step", "sign"}
    assert functions | {"add", "sub", "mul", "div", "pow", "neg"} <= kinds
    for kind in functions:
        assert hasattr(cr, kind) and kind in cr.__all__
    for kind, text, arity, (lo, hi) in OPS:
        assert arity in (1, 2) and isinstance(text, str) and lo < hi
        assert kind in NP and kind in PARTIALS, f"op {kind!r} has no reference in conftest.py"
    assert set(NP) == set(PARTIALS) == kinds, "conftest.py's tables have rows for no op"


@pytest.mark.parametrize("kind, text, arity, dom", OPS, ids=IDS)
def test_spelling(kind, text, arity, dom):
    e = build(kind, arity)
    if arity == 2 and text.isidentifier():
        expected = f"{text}(x, y)"
    elif arity == 2:
        expected = f"x {text} y"
    elif text in ("-", "~"):
        expected = f"{text}x"
    else:
        expected = f"{text}(x)"
    assert str(e) == expected
    assert cr.parse(expected) == e
    if kind in BUILD:  # the public spelling builds the same node as the text
        assert BUILD[kind](*[x, y][:arity]) == e


@pytest.mark.parametrize("kind, text, arity, dom", OPS, ids=IDS)
def test_round_trip_with_compound_arguments(kind, text, arity, dom):
    args = [x + 1, y * 2, x - y, -x, x**y, cr.sin(x), x / y]
    for a in args:
        for b in args[:3]:
            e = build(kind, arity, a, b)
            assert cr.parse(str(e)) == e, str(e)
            nested = build(kind, arity, e, a)
            assert cr.parse(str(nested)) == nested, str(nested)


@pytest.mark.parametrize("kind, text, arity, dom", OPS, ids=IDS)
def test_value_matches_numpy(kind, text, arity, dom):
    a, b = sample(dom), sample(dom)
    got = cr.compile(build(kind, arity), inputs=[x, y])(a, b)
    want = reference(kind, a, b) if arity == 2 else reference(kind, a)
    np.testing.assert_array_max_ulp(got, want, maxulp=5)


SPECIAL = np.array([
    0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324, 1e-310, 2.2250738585072014e-308,
    1e-20, 1e-8, 0.5, 1.0, -1.0, np.pi / 2, np.pi, 20.0, 36.0, 40.0, 709.7, 710.0, -708.0,
    -745.0, -746.0, 1e5, 1e15, 1e22, -1e22, 1e300, -1e300, 1.7976931348623157e308,
])


@pytest.mark.parametrize("kind, text, arity, dom", [op for op in OPS if op[2] == 1],
                         ids=lambda v: v if isinstance(v, str) else None)
def test_special_values_unary(kind, text, arity, dom):
    got = cr.compile(build(kind, arity), inputs=[x])(SPECIAL)
    want = reference(kind, SPECIAL)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{kind} at {SPECIAL}")
    finite = ~np.isnan(want)
    np.testing.assert_array_max_ulp(got[finite], want[finite], maxulp=5)
    assert np.array_equal(np.signbit(got[want == 0]), np.signbit(want[want == 0])) or kind in (
        "relu", "step", "sign", "sigmoid")


@pytest.mark.parametrize("kind, text, arity, dom", [op for op in OPS if op[2] == 2],
                         ids=lambda v: v if isinstance(v, str) else None)
def test_special_values_binary(kind, text, arity, dom):
    a, b = np.meshgrid(SPECIAL[::2], SPECIAL[1::2])
    got = cr.compile(build(kind, arity), inputs=[x, y])(a, b)
    want = reference(kind, a, b)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = ~np.isnan(want)
    np.testing.assert_array_max_ulp(got[finite], want[finite], maxulp=5)


def _away_from_kinks(kind, a, b):
    if kind in KINKED:
        keep = np.abs(a) > 1e-3
        return a[keep], b[keep]
    return a, b


@pytest.mark.parametrize("kind, text, arity, dom", OPS, ids=IDS)
def test_gradient_matches_rule_and_finite_differences(kind, text, arity, dom):
    e = build(kind, arity)
    a, b = _away_from_kinks(kind, sample(dom, 501), sample(dom, 501))
    grads = cr.compile(cr.grad(e, [x, y]), inputs=[x, y])(a, b)
    value = reference(kind, a, b) if arity == 2 else reference(kind, a)
    rules = PARTIALS[kind](a, b, value) if arity == 2 else PARTIALS[kind](a, value)
    rules = list(rules) + [0.0] * (2 - len(rules))
    fn = cr.compile(e, inputs=[x, y])
    for i, (g, rule) in enumerate(zip(grads, rules, strict=True)):
        assert g.shape == a.shape
        np.testing.assert_allclose(g, np.broadcast_to(rule, a.shape), rtol=1e-13, atol=1e-14)
        if i == 0:
            assert_fd(lambda t: fn(t, b), a, g)
        else:
            assert_fd(lambda t: fn(a, t), b, g)


@pytest.mark.parametrize("kind, text, arity, dom", OPS, ids=IDS)
def test_second_derivative_matches_finite_differences(kind, text, arity, dom):
    e = build(kind, arity)
    a, b = _away_from_kinks(kind, sample(dom, 201), sample(dom, 201))
    first = cr.compile(cr.grad(e, x), inputs=[x, y])
    second = cr.compile(cr.grad(cr.grad(e, x), x), inputs=[x, y])(a, b)
    assert_fd(lambda t: first(t, b), a, second, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind, text, arity, dom", OPS, ids=IDS)
def test_gradient_at_special_points_does_not_warn(kind, text, arity, dom):
    e = build(kind, arity)
    fn = cr.compile([e, *cr.grad(e, [x, y])], inputs=[x, y])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = fn(SPECIAL, SPECIAL[::-1])
    assert all(o.shape == SPECIAL.shape for o in out)


# -- simplification keeps signed zeros (issue 15, item 6) ------------------------------------------


@pytest.mark.parametrize("array", [False, True], ids=["float", "array"])
def test_simplification_keeps_signed_zeros(array):
    zeros = np.array([-0.0, 0.0, 5e-324, -1e300])
    cases = [
        (1 / (x + 0), lambda v: 1 / (v + 0.0)),
        (1 / (0 + x), lambda v: 1 / (0.0 + v)),
        (1 / (0 - x), lambda v: 1 / (0.0 - v)),
        (1 / (x - (-0.0)), lambda v: 1 / (v - (-0.0))),
        (1 / (-x - y), lambda v: 1 / (-v - (-v))),
        (1 / (x + (-0.0)), lambda v: 1 / (v + (-0.0))),
        (1 / (x - 0), lambda v: 1 / (v - 0.0)),
    ]
    with np.errstate(divide="ignore", over="ignore"):
        for e, ref in cases:
            fn = cr.compile(e, inputs=[x, y])
            for v in zeros:
                got = fn(np.array([v]), np.array([-v])) if array else fn(float(v), float(-v))
                got = float(got[0]) if array else float(got)
                want = float(ref(np.float64(v)))
                assert got == want and np.signbit(got) == np.signbit(want), (
                    f"{e} at x = {v!r}: {got} vs {want}")


def test_xlogy_pickles_and_parses_back():
    import pickle

    e = cr.grad(x**y, y)
    assert pickle.loads(pickle.dumps(e)) == e and cr.parse(str(e)) == e
    fn = pickle.loads(pickle.dumps(cr.compile([e, cr.xlogy(x, y)], inputs=[x, y])))
    assert [float(v) for v in fn(0.0, 0.17)] == [0.0, 0.0]
    with pytest.raises(ValueError, match="takes 2 arguments"):
        cr.parse("xlogy(x)")
