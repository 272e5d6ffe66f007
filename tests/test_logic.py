"""Piecewise functions, comparisons and logic (issue 17): NumPy's semantics at the edges (nan,
inf, signed zeros, ties), the operators on expressions and their text, and the gradient
conventions (ties split 0.5/0.5, jumps have zero gradient, % and fmod as JAX)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import chainrule as cr

x, y = cr.vars("x y")
EDGES = np.array([0.0, -0.0, 1.0, -1.0, 2.5, -2.5, 0.5, -0.5, 1.5, 3.0, -3.0, 7.0, np.inf, -np.inf,
                  np.nan, 5e-324, -5e-324, 1e300, -1e300, 1e-300])


def _grid():
    a, b = np.meshgrid(EDGES, EDGES)
    return a.ravel(), b.ravel()


def _same(got, want):
    """Equal values, nan where nan, and the same sign of zero."""
    got, want = np.asarray(got, float), np.asarray(want, float)
    both_nan = np.isnan(got) & np.isnan(want)
    equal = (got == want) & (np.signbit(got) == np.signbit(want))
    return np.all(both_nan | equal)


BINARY = [
    (lambda a, b: a % b, np.remainder, "mod"),
    (cr.fmod, np.fmod, "fmod"),
    (cr.minimum, np.minimum, "minimum"),
    (cr.maximum, np.maximum, "maximum"),
    (cr.nextafter, np.nextafter, "nextafter"),
    (lambda a, b: a < b, np.less, "less"),
    (lambda a, b: a <= b, np.less_equal, "less_equal"),
    (lambda a, b: a > b, np.greater, "greater"),
    (lambda a, b: a >= b, np.greater_equal, "greater_equal"),
    (cr.equal, np.equal, "equal"),
    (cr.not_equal, np.not_equal, "not_equal"),
    (lambda a, b: a & b, np.logical_and, "and"),
    (lambda a, b: a | b, np.logical_or, "or"),
]


@pytest.mark.parametrize("build, ref, name", BINARY, ids=[b[2] for b in BINARY])
def test_binary_edges_bit_for_bit_as_numpy(build, ref, name):
    a, b = _grid()
    fn = cr.compile(build(x, y), inputs=[x, y])
    with np.errstate(all="ignore"):
        want = ref(a, b).astype(float)
    got = fn(a, b)
    assert _same(got, want), [(p, q, g, w) for p, q, g, w in zip(a, b, got, want, strict=True)
                              if not _same(g, w)][:5]
    # The latency path (single values) gives the same bits as the chunk path.
    singles = np.array([float(fn(p, q)) for p, q in zip(a, b, strict=True)])
    assert _same(singles, got)


def test_copysign_as_numpy_with_nan_read_as_positive():
    a, b = _grid()
    got = cr.compile(cr.copysign(x, y), inputs=[x, y])(a, b)
    # NaN's sign bit is not a value (NumPy's own nans differ in it from op to op): read as +.
    want = np.copysign(a, np.where(np.isnan(b), 1.0, b))
    assert _same(got, want)


@pytest.mark.parametrize("build, ref", [(cr.floor, np.floor), (cr.ceil, np.ceil),
                                        (cr.round, np.round), (cr.trunc, np.trunc),
                                        (lambda a: ~a, np.logical_not)])
def test_unary_edges_bit_for_bit_as_numpy(build, ref):
    a = np.concatenate([EDGES, np.arange(-4.5, 5.0, 0.5), [2**52 + 0.5, 4503599627370497.0]])
    got = cr.compile(build(x), inputs=[x])(a)
    assert _same(got, ref(a).astype(float))


def test_round_halves_to_even_like_numpy():
    halves = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 0.49999999999999994])
    got = cr.compile(cr.round(x), inputs=[x])(halves)
    assert got.tolist() == [0.0, 2.0, 2.0, -0.0, -2.0, 0.0] and np.signbit(got[3])


def test_mod_takes_the_divisors_sign_like_python():
    for a in (7.0, -7.0, 0.0, -0.0, 5.5, -1e-300):
        for b in (3.0, -3.0, 0.25, -np.inf, np.inf):
            got = float(cr.compile(x % y, inputs=[x, y])(a, b))
            want = a % b
            assert got == want and np.signbit(got) == np.signbit(want), (a, b, got, want)
    assert str(7 % x) == "7 % x" and str(x % 2) == "x % 2"


def test_operators_build_the_ops_and_print_as_python():
    cases = {
        x < y: "x < y", x <= 1: "x <= 1", 2 > x: "x < 2", x >= y: "x >= y",
        cr.equal(x, y): "x == y", cr.not_equal(x, 1): "x != 1",
        (x > 0) & (y < 1): "(x > 0) & (y < 1)",
        (x > 0) | (y < 1) & (x < y): "(x > 0) | (y < 1) & (x < y)",
        ~(x > 0): "~(x > 0)", x + 1 < y * 2: "x + 1 < 2 * y", (x < y) + 1: "(x < y) + 1",
        -x % y: "-x % y", -(x % y): "-(x % y)", x * y % 2: "x * y % 2", x * (y % 2): "x * (y % 2)",
        (x < y) < 1: "(x < y) < 1", ~x ** y: "~x ** y", (~x) ** y: "(~x) ** y",
    }
    for e, text in cases.items():
        assert str(e) == text
        assert cr.parse(text) == e, text


def test_text_reads_equal_and_not_equal_as_values():
    assert cr.parse("x == y") == cr.equal(x, y)
    assert cr.parse("x != y") == cr.not_equal(x, y)
    assert cr.parse("x+1==y") == cr.equal(x + 1, y)
    a, b = np.array([1.0, 2.0, np.nan]), np.array([1.0, 3.0, np.nan])
    got = cr.evaluate("(a == b) + (a != b) * 10", a=a, b=b)
    assert got.tolist() == [1.0, 10.0, 10.0]


def test_text_precedence_is_pythons():
    a = np.array([-1.0, 0.0, 1.0, 2.0])
    b = np.array([1.0, 0.0, 0.0, 3.0])
    for text in ("a > 0 & b", "(a > 0) & (b > 0) | (a < 0)", "~(a > 0) | b", "a % 3 * 2 < b + 1",
                 "a + 1 < b * 2 | a",
                 "-a % 3", "~a | b & a"):
        want = eval(text, {}, {"a": _Arr(a), "b": _Arr(b)}).v
        assert np.array_equal(cr.evaluate(text, a=a, b=b), want), text


class _Arr:
    """NumPy arrays whose & | ~ are the logical ops on floats, to read text as Python does."""

    def __init__(self, v):
        self.v = np.asarray(v, float)

    def _op(self, other, f):
        return _Arr(f(self.v, other.v if isinstance(other, _Arr) else other) * 1.0)

    def __and__(self, o): return self._op(o, np.logical_and)
    def __or__(self, o): return self._op(o, np.logical_or)
    def __invert__(self): return _Arr(np.logical_not(self.v) * 1.0)
    def __gt__(self, o): return self._op(o, np.greater)
    def __lt__(self, o): return self._op(o, np.less)
    def __add__(self, o): return self._op(o, np.add)
    def __mul__(self, o): return self._op(o, np.multiply)
    def __mod__(self, o): return self._op(o, np.remainder)
    def __neg__(self): return _Arr(-self.v)
    def __rand__(self, o): return self._op(o, np.logical_and)


def test_chained_comparisons_are_refused():
    with pytest.raises(cr.ParseError, match="chained comparisons"):
        cr.parse("x < y < 1")
    assert cr.parse("(x < y) < 1") == ((x < y) < 1)


def test_structural_equality_and_no_truth_value():
    assert (x == x) is True and (x == y) is False and hash(x < y) == hash(x < y)
    assert (x < y) == (x < y) and (x < y) != (x <= y)
    with pytest.raises(TypeError, match="compile"):
        bool(x < y)
    with pytest.raises(TypeError, match="compile"):
        if x > 0:
            pass


def test_numexpr_helpers_parse():
    assert cr.parse("conj(x) + real(y) + copy(x)") == x + y + x
    assert cr.parse("x + imag(x)") == x + 0
    assert cr.parse("ones_like(x) * y") == y
    assert cr.parse("clip(x, 0, 1)") == cr.clip(x, 0, 1)
    with pytest.raises(cr.ParseError, match="takes 3 arguments"):
        cr.parse("where(x, y)")


def test_tie_and_clip_gradients_as_jax():
    g = cr.compile(cr.grad(cr.minimum(x, y), [x, y]), inputs=[x, y])
    assert [g_.tolist() for g_ in g(np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 2.0]))] == [
        [1.0, 0.5, 0.0], [0.0, 0.5, 1.0]]
    g = cr.compile(cr.grad(cr.maximum(x, y), [x, y]), inputs=[x, y])
    assert [g_.tolist() for g_ in g(np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 2.0]))] == [
        [0.0, 0.5, 1.0], [1.0, 0.5, 0.0]]
    d = cr.compile(cr.grad(cr.clip(x, 0, 1), x), inputs=[x])(np.array([-1.0, 0.0, 0.5, 1.0, 2.0]))
    assert d.tolist() == [0.0, 0.5, 1.0, 0.5, 0.0]


def test_jump_gradients():
    a, b = np.array([7.0, -7.0, 7.5]), np.array([3.0, 3.0, -2.0])
    da, db = cr.compile(cr.grad(x % y, [x, y]), inputs=[x, y])(a, b)
    assert da.tolist() == [1.0, 1.0, 1.0] and db.tolist() == (-np.floor(a / b)).tolist()
    da, db = cr.compile(cr.grad(cr.fmod(x, y), [x, y]), inputs=[x, y])(a, b)
    assert db.tolist() == (-np.trunc(a / b)).tolist()
    d = cr.compile(cr.grad(cr.copysign(x, y), x), inputs=[x, y])
    got = d(np.array([2.0, -2.0, 2.0, 0.0]), np.array([1.0, 1.0, -0.0, -1.0]))
    assert got.tolist() == [1.0, -1.0, -1.0, 0.0]
    for f in (cr.floor(x), cr.ceil(x), cr.round(x), cr.trunc(x), x < y, (x < 1) & (y > 0), ~x):
        assert cr.grad(f, x).value == 0.0, str(f)


def test_pickle_and_scalars():
    fs = [x % y, x < y, (x > 0) | (y > 0), ~(x > y), cr.nextafter(x, y), cr.clip(x, y, 2)]
    fn = pickle.loads(pickle.dumps(cr.compile(fs, inputs=[x, y])))
    for f in fs:
        assert pickle.loads(pickle.dumps(f)) == f
    assert [float(v) for v in fn(-1.0, 0.5)] == [0.0, 1.0, 1.0, 1.0, np.nextafter(-1.0, 0.5), 0.5]
