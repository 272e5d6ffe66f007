"""Arrays of expressions (``cr.ExprArray``) against NumPy: every operation is compiled and its
numbers compared with NumPy's on the same arguments, on random shapes; gradients of dense layers
against hand-written backprop and forward-mode dual numbers; the shapes of array arguments and
outputs; errors that name the shapes; pickling, printing and parsing of elements."""

from __future__ import annotations

import doctest
import gc
import pathlib
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import chainrule as cr
from chainrule import arrays
from conftest import BUILD, DOMAIN, NP, OPS, PARTIALS

SETTINGS = settings(max_examples=40, deadline=None)
RTOL = 1e-12  # chainrule sums left to right where NumPy sums pairwise
SHAPES = hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=3)


def evaluate(out, inputs: list, *args):
    """``out`` compiled as a function of ``inputs``, called on ``args``."""
    return cr.compile(out, inputs=inputs)(*args)


def values(seed: int, shape: tuple[int, ...], low: float = -2.0, high: float = 2.0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, shape)


def batched(a: np.ndarray, ndim: int) -> np.ndarray:
    """A batch of arguments (batch first) as NumPy broadcasts it against operands of ``ndim``
    element axes: ones inserted between the batch axis and the element axes."""
    return a.reshape(a.shape[:1] + (1,) * (ndim - (a.ndim - 1)) + a.shape[1:])


# -- elementwise ops and broadcasting ------------------------------------------------------

# Every binary op the public API spells (operators and functions), with its NumPy reference.
BINARY_OPS = sorted(k for k, _, arity, _ in OPS if arity == 2 and k in BUILD and k in NP)
UNARY_OPS = sorted(k for k, _, arity, _ in OPS if arity == 1 and k in BUILD and k in NP
                   and k not in ("sum", "mean"))


def test_the_sweeps_cover_the_everyday_ops():
    assert {"add", "sub", "mul", "div", "pow", "less", "greaterequal", "and", "atan2",
            "minimum"} <= set(BINARY_OPS)
    assert {"sin", "exp", "log", "sigmoid", "tanh", "relu", "neg", "not", "erf"} <= set(UNARY_OPS)


@SETTINGS
@given(kind=st.sampled_from(BINARY_OPS), seed=st.integers(0, 2**32 - 1),
       shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=4, min_side=0, max_side=3))
def test_binary_ops_broadcast_as_numpy(kind, seed, shapes):
    (sa, sb), result = shapes.input_shapes, shapes.result_shape
    low, high = DOMAIN[kind]
    A, B = cr.var("A", shape=sa), cr.var("B", shape=sb)
    a, b = values(seed, sa, low, high), values(seed + 1, sb, low, high)
    e = BUILD[kind](A, B)
    assert isinstance(e, cr.ExprArray) and e.shape == result
    np.testing.assert_allclose(evaluate(e, [A, B], a, b), NP[kind](a, b), rtol=RTOL)
    # a batch of 4 samples: each sample's result is NumPy's on that sample
    nd = len(result)
    a4, b4 = values(seed, (4, *sa), low, high), values(seed + 1, (4, *sb), low, high)
    got = evaluate(e, [A, B], a4, b4)
    assert got.shape == (4, *result)
    np.testing.assert_allclose(got, NP[kind](batched(a4, nd), batched(b4, nd)), rtol=RTOL)


@SETTINGS
@given(kind=st.sampled_from(BINARY_OPS), seed=st.integers(0, 2**32 - 1), shape=SHAPES,
       number_first=st.booleans())
def test_numbers_and_numpy_arrays_broadcast_against_an_array(kind, seed, shape, number_first):
    low, high = DOMAIN[kind]
    A = cr.var("A", shape=shape)
    a = values(seed, shape, low, high)
    c = values(seed + 1, shape[-1:], low, high)  # a NumPy array of the trailing axis
    e = BUILD[kind](c, A) if number_first else BUILD[kind](A, c)
    want = NP[kind](c, a) if number_first else NP[kind](a, c)
    np.testing.assert_allclose(evaluate(e, [A], a), want, rtol=RTOL)
    x, v = cr.var("x"), float(values(seed + 2, (), low, high))
    e = BUILD[kind](x, A) if number_first else BUILD[kind](A, x)  # x broadcasts as 0-d
    want = NP[kind](v, a) if number_first else NP[kind](a, v)
    np.testing.assert_allclose(evaluate(e, [A, x], a, v), want, rtol=RTOL)


@pytest.mark.parametrize("kind", UNARY_OPS)
def test_every_function_applies_elementwise(kind):
    low, high = DOMAIN[kind]
    A = cr.var("A", shape=(2, 3, 2))
    a = values(7, A.shape, low, high)
    e = BUILD[kind](A)
    assert isinstance(e, cr.ExprArray) and e.shape == A.shape
    np.testing.assert_allclose(evaluate(e, [A], a), NP[kind](a), rtol=RTOL)
    # the 0-d array is an array too, and its argument is the batch itself
    S = cr.var("S", shape=())
    got = evaluate(BUILD[kind](S), [S], a.reshape(-1))
    assert got.shape == (a.size,)
    np.testing.assert_allclose(got, NP[kind](a.reshape(-1)), rtol=RTOL)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1),
       shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=3))
def test_where_and_comparisons_broadcast_their_three_operands(seed, shapes):
    sc, sa, sb = shapes.input_shapes
    C, A, B = (cr.var(n, shape=s) for n, s in zip("CAB", (sc, sa, sb), strict=True))
    c, a, b = (values(seed + i, s) for i, s in enumerate((sc, sa, sb)))
    e = cr.where(C > 0, A, B)
    assert e.shape == shapes.result_shape
    np.testing.assert_array_equal(evaluate(e, [C, A, B], c, a, b), np.where(c > 0, a, b))
    e = cr.clip(A, -1.0, B)  # functions of three operands broadcast too
    np.testing.assert_array_equal(evaluate(e, [A, B], a, b), np.minimum(np.maximum(a, -1.0), b))


def test_operators_of_numpy_arrays_defer_to_expr_arrays():
    A = cr.var("A", shape=(2, 3))
    a, c = values(0, (2, 3)), values(1, (3,))
    for e, want in [(c + A, c + a), (c * A, c * a), (np.float64(2.0) - A, 2.0 - a),
                    (c ** A, c ** a), (np.ones((4, 2)) @ A, np.ones((4, 2)) @ a)]:
        assert isinstance(e, cr.ExprArray)
        np.testing.assert_allclose(evaluate(e, [A], a), want, rtol=RTOL)


# -- indexing and shape operations ---------------------------------------------------------


@st.composite
def indexed(draw):
    """A shape and an index into it: basic (ints, slices with negative steps, newaxis,
    ellipsis), integer arrays or a boolean mask."""
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4))
    kind = draw(st.sampled_from(["basic", "integer", "boolean"]))
    if kind == "basic":
        key = draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True))
    elif kind == "integer":
        key = draw(hnp.integer_array_indices(shape, result_shape=hnp.array_shapes(
            min_dims=1, max_dims=2, max_side=3)))
    else:
        key = draw(hnp.arrays(bool, shape[:draw(st.integers(1, len(shape)))]))
    return shape, key


@SETTINGS
@given(case=indexed(), seed=st.integers(0, 2**32 - 1))
def test_indexing_is_numpys(case, seed):
    shape, key = case
    A = cr.var("A", shape=shape)
    a = values(seed, shape)
    e = A[key]
    want = a[key]
    if np.ndim(want) == 0:
        assert isinstance(e, cr.Expr)  # one element, as NumPy gives a scalar
    else:
        assert isinstance(e, cr.ExprArray) and e.shape == want.shape
    if np.size(want):
        np.testing.assert_array_equal(evaluate(e, [A], a), want)
        a3 = values(seed, (3, *shape))
        np.testing.assert_array_equal(
            evaluate(e, [A], a3), np.stack([a3[i][key] for i in range(3)]))


@SETTINGS
@given(shape=SHAPES, seed=st.integers(0, 2**32 - 1), data=st.data())
def test_transposes_reshapes_and_squeezes_are_numpys(shape, seed, data):
    A = cr.var("A", shape=shape)
    a = values(seed, shape)
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    size = int(np.prod(shape))
    cases = [(A.T, a.T), (A.transpose(*perm), a.transpose(*perm)), (A.ravel(), a.ravel()),
             (A.flatten(), a.flatten()), (A.reshape(size), a.reshape(size)),
             (A.reshape((1, -1)), a.reshape((1, -1))), (A.squeeze(), a.squeeze())]
    if len(shape) >= 2:
        cases.append((A.swapaxes(0, -1), a.swapaxes(0, -1)))
    for e, want in cases:
        # a 0-d result is an Expr or a 0-d ExprArray (NumPy: a scalar or a 0-d array)
        assert (e.shape if isinstance(e, cr.ExprArray) else ()) == want.shape
        np.testing.assert_array_equal(evaluate(e, [A], a), want)


def test_squeeze_with_an_axis_and_len_and_iteration():
    A = cr.var("A", shape=(2, 1, 3))
    assert A.squeeze(1).shape == (2, 3) and len(A) == 2
    assert [str(r) for r in A[:, 0, 0]] == ["A[0,0,0]", "A[1,0,0]"]
    assert [r.shape for r in A] == [(1, 3), (1, 3)]
    with pytest.raises(ValueError):
        A.squeeze(0)  # NumPy's error: that axis is not of length 1
    with pytest.raises(TypeError, match="0-d"):
        len(cr.var("s", shape=()))


# -- reductions over elements, and over the batch --------------------------------------------


@SETTINGS
@given(shape=SHAPES, seed=st.integers(0, 2**32 - 1), keepdims=st.booleans(), data=st.data())
def test_sum_and_mean_along_axes_are_numpys(shape, seed, keepdims, data):
    A = cr.var("A", shape=shape)
    a = values(seed, shape)
    nd = len(shape)
    axis = data.draw(st.one_of(
        st.none(), st.integers(-nd, nd - 1) if nd else st.none(),
        st.lists(st.integers(0, nd - 1), unique=True).map(tuple) if nd else st.none()))
    for method in ("sum", "mean"):
        e = getattr(A, method)(axis=axis, keepdims=keepdims)
        want = getattr(a, method)(axis=axis, keepdims=keepdims)
        if np.ndim(want) == 0:
            assert isinstance(e, cr.Expr)
        else:
            assert e.shape == want.shape
        np.testing.assert_allclose(evaluate(e, [A], a), want, rtol=RTOL)
        # per sample: a batch of arguments gives one result per sample
        a2 = values(seed, (2, *shape))
        got = evaluate(e, [A], a2)
        want2 = np.stack([getattr(a2[i], method)(axis=axis, keepdims=keepdims) for i in range(2)])
        np.testing.assert_allclose(got, want2, rtol=RTOL)


def test_bad_axes_are_refused_as_numpy_refuses_them():
    A = cr.var("A", shape=(2, 3))
    with pytest.raises(np.exceptions.AxisError, match="axis 2"):
        A.sum(axis=2)
    with pytest.raises(ValueError, match="duplicate"):
        A.sum(axis=(0, -2))
    with pytest.raises(TypeError, match="axis must be"):
        A.sum(axis=1.0)


def test_batch_reductions_of_an_array_stay_elementwise():
    """cr.sum and cr.mean reduce each element over the batch; .sum() sums the elements."""
    A = cr.var("A", shape=(2, 3))
    a = values(3, (5, 2, 3))
    total, average, per_sample = evaluate([cr.sum(A * 2), cr.mean(A), A.sum()], [A], a)
    assert total.shape == (2, 3) and average.shape == (2, 3) and per_sample.shape == (5,)
    np.testing.assert_allclose(total, (a * 2).sum(axis=0), rtol=RTOL)
    np.testing.assert_allclose(average, a.mean(axis=0), rtol=RTOL)
    np.testing.assert_allclose(per_sample, a.sum(axis=(1, 2)), rtol=RTOL)
    both = evaluate(cr.mean(A.sum(axis=1)), [A], a)
    np.testing.assert_allclose(both, a.sum(axis=2).mean(axis=0), rtol=RTOL)


def test_sum_over_an_array_variable_sums_where_its_argument_is_broadcast():
    W = cr.var("W", shape=(2, 3))
    x = cr.var("x", shape=(3,))
    e = cr.sum(W * x, over=W)
    w, X = values(0, (2, 3)), values(1, (4, 3))
    fn = cr.compile(e, inputs=[W, x])
    np.testing.assert_allclose(fn(w, X), w * X.sum(axis=0), rtol=RTOL)  # W uniform: summed
    w4 = values(2, (4, 2, 3))  # W given per sample: nothing to sum
    np.testing.assert_allclose(fn(w4, X), w4 * X[:, None, :], rtol=RTOL)


# -- matrix products -----------------------------------------------------------------------


@st.composite
def matmul_shapes(draw):
    n, k, m = draw(st.integers(1, 3)), draw(st.integers(0, 3)), draw(st.integers(1, 3))
    stacks = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3))
    sa, sb = stacks.input_shapes
    left = (k,) if draw(st.booleans()) else (*sa, n, k)
    right = (k,) if draw(st.booleans()) else (*sb, k, m)
    return left, right


@SETTINGS
@given(shapes=matmul_shapes(), seed=st.integers(0, 2**32 - 1))
def test_matmul_is_numpys_for_vectors_matrices_and_stacks(shapes, seed):
    sa, sb = shapes
    A, B = cr.var("A", shape=sa), cr.var("B", shape=sb)
    a, b = values(seed, sa), values(seed + 1, sb)
    want = a @ b
    e = A @ B
    if np.ndim(want) == 0:
        assert isinstance(e, cr.Expr)
    else:
        assert e.shape == want.shape
    np.testing.assert_allclose(evaluate(e, [A, B], a, b), want, rtol=RTOL, atol=1e-15)
    np.testing.assert_allclose(evaluate(A.dot(B), [A, B], a, b), want, rtol=RTOL, atol=1e-15)
    np.testing.assert_allclose(evaluate(a @ B, [B], b), want, rtol=RTOL, atol=1e-15)


def test_matmul_with_a_batch_of_vectors():
    W = cr.var("W", shape=(2, 3))
    x = cr.var("x", shape=(3,))
    w, X = values(0, (2, 3)), values(1, (5, 3))
    np.testing.assert_allclose(evaluate(W @ x, [W, x], w, X), X @ w.T, rtol=RTOL)


# -- errors name the shapes ----------------------------------------------------------------


def test_errors_name_the_shapes():
    W, V = cr.var("W", shape=(2, 3)), cr.var("V", shape=(2, 3))
    with pytest.raises(cr.ShapeError, match=r"\(2, 3\) and \(2, 3\) do not align"):
        W @ V
    with pytest.raises(cr.ShapeError, match=r"\(4, 2, 3\) and \(5, 3, 1\)"):
        cr.var("A", shape=(4, 2, 3)) @ cr.var("B", shape=(5, 3, 1))
    with pytest.raises(cr.ShapeError, match=r"\(\) and \(3,\)"):
        cr.var("s", shape=()) @ cr.var("x", shape=(3,))
    with pytest.raises(cr.ShapeError, match=r"\(2, 3\) and \(2,\) do not broadcast"):
        W + cr.var("b", shape=(2,))
    with pytest.raises(cr.ShapeError, match=r"do not broadcast"):
        cr.where(W > 0, W, cr.var("b", shape=(4,)))


def test_an_argument_of_the_wrong_shape_is_named_with_both_shapes():
    x = cr.var("x", shape=(64,))
    fn = cr.compile(x.sum(), inputs=[x])
    with pytest.raises(cr.ShapeError, match=r"argument x has shape \(5, 63\).*shape \(64,\)"):
        fn(np.zeros((5, 63)))
    with pytest.raises(cr.ShapeError, match=r"argument x has shape \(\)"):
        fn(1.0)
    with pytest.raises(TypeError, match="real numbers"):
        fn(np.zeros(64, dtype=complex))


def test_arguments_whose_batches_do_not_broadcast_are_named_by_array():
    """Regression: the error listed every element's column (W[0,0]: (4,), W[0,1]: ...)."""
    W, x = cr.var("W", shape=(2, 3)), cr.var("x", shape=(3,))
    fn = cr.compile(W @ x, inputs=[W, x])
    with pytest.raises(cr.ShapeError, match=r"\(W: \(4,\), x: \(5,\)\)$"):
        fn(np.ones((4, 2, 3)), np.ones((5, 3)))


def test_masked_array_arguments_are_refused():
    """Regression: np.asarray dropped the mask and computed with the values under it."""
    x = cr.var("x", shape=(2,))
    with pytest.raises(TypeError, match="masked array"):
        cr.compile(x.sum(), inputs=[x])(np.ma.masked_array([[1.0, 2.0]], mask=[[0, 1]]))


def test_inputs_must_be_variables_or_arrays_of_them():
    W = cr.var("W", shape=(2, 3))
    with pytest.raises(TypeError, match=r"input 0 \(shape \(2, 3\)\) has elements that are "
                                        r"expressions"):
        cr.compile(W.sum(), inputs=[W * 2])
    with pytest.raises(TypeError, match="inputs must be variables"):
        cr.compile(W.sum(), inputs=[W, cr.var("x") + 1])
    with pytest.raises(cr.ChainruleError, match="'W' is listed twice"):
        cr.compile(W.sum(), inputs=[W, W])
    with pytest.raises(cr.ChainruleError, match=r"'x\[0\]' is used but not in inputs"):
        cr.compile(W.sum() + cr.var("x", shape=(2,))[0], inputs=[W])


def test_expr_arrays_refuse_what_has_no_meaning():
    W = cr.var("W", shape=(2, 3))
    with pytest.raises(TypeError, match="ambiguous"):
        bool(W > 0)
    with pytest.raises(TypeError, match="immutable"):
        W[0, 0] = 1.0
    with pytest.raises(IndexError, match="not by expressions"):
        W[cr.var("i")]
    with pytest.raises(TypeError, match="object array"):
        np.asarray(W, dtype=float)
    with pytest.raises(TypeError, match="complex"):
        arrays.asexprarray(np.ones(2, dtype=complex))
    with pytest.raises(TypeError, match=r"not an ExprArray of shape \(2, 3\)"):
        cr.grad(W, W)
    with pytest.raises(TypeError, match="with respect to variables"):
        cr.grad(W.sum(), [W, "b"])
    with pytest.raises(TypeError, match="variables"):
        cr.grad(W.sum(), [W * 2])
    with pytest.raises(ValueError, match="non-negative"):
        cr.var("W", shape=(2, -1))
    with pytest.raises(TypeError, match="shape must be"):
        cr.var("W", shape="2")


# -- gradients of dense layers ---------------------------------------------------------------


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


class Dual:
    """Forward mode: a value and its derivative along one direction, both NumPy arrays."""

    __array_ufunc__ = None  # NumPy arrays defer to Dual's operators

    def __init__(self, value, tangent):
        self.v, self.t = np.asarray(value, float), np.asarray(tangent, float)

    @staticmethod
    def of(x):
        return x if isinstance(x, Dual) else Dual(x, np.zeros_like(np.asarray(x, float)))

    def __add__(self, o):
        o = Dual.of(o)
        return Dual(self.v + o.v, self.t + o.t)

    __radd__ = __add__

    def __sub__(self, o):
        o = Dual.of(o)
        return Dual(self.v - o.v, self.t - o.t)

    def __rsub__(self, o):
        return Dual.of(o) - self

    def __mul__(self, o):
        o = Dual.of(o)
        return Dual(self.v * o.v, self.t * o.v + self.v * o.t)

    __rmul__ = __mul__

    def __matmul__(self, o):
        o = Dual.of(o)
        return Dual(self.v @ o.v, self.t @ o.v + self.v @ o.t)

    def __rmatmul__(self, o):
        return Dual.of(o) @ self

    @property
    def T(self):  # noqa: N802
        return Dual(self.v.T, self.t.T)

    def sigmoid(self):
        s = _sigmoid(self.v)
        return Dual(s, self.t * s * (1 - s))

    def log(self):
        return Dual(np.log(self.v), self.t / self.v)

    def mean_of_sums(self):
        """The mean over samples (axis 0) of the sum over the rest."""
        n = self.v.shape[0]
        return Dual(self.v.sum() / n, self.t.sum() / n)


def _network(sizes, seed):
    """Parameters of a sigmoid network with layer ``sizes``, and a batch of 6 samples."""
    rng = np.random.default_rng(seed)
    params = []
    for n_in, n_out in zip(sizes, sizes[1:], strict=False):
        params += [rng.normal(size=(n_out, n_in)), rng.normal(size=n_out)]
    X = rng.normal(size=(6, sizes[0]))
    Y = rng.uniform(0.05, 0.95, size=(6, sizes[-1]))
    return params, X, Y


def _forward(params, X, Y, loss):
    """The network and its loss on arrays or duals (batch first, rows are samples)."""
    a = X
    for W, b in zip(params[::2], params[1::2], strict=True):
        z = a @ W.T + b
        a = z.sigmoid() if isinstance(z, Dual) else _sigmoid(z)
    if loss == "quadratic":
        r = Y - a
        per = r * r
    else:
        log = (lambda d: d.log()) if isinstance(a, Dual) else np.log
        per = -1.0 * (Y * log(a) + (1.0 - Y) * log(1.0 - a))
    return per.mean_of_sums() if isinstance(per, Dual) else per.sum() / X.shape[0]


def _backprop(params, X, Y, loss):
    """Hand-written reverse mode: the gradient of the loss for each parameter."""
    acts = [X]
    for W, b in zip(params[::2], params[1::2], strict=True):
        acts.append(_sigmoid(acts[-1] @ W.T + b))
    a, n = acts[-1], X.shape[0]
    delta = (-2 * (Y - a) * a * (1 - a) if loss == "quadratic" else a - Y) / n
    grads = []
    for i in range(len(params) // 2 - 1, -1, -1):
        W = params[2 * i]
        grads[:0] = [delta.T @ acts[i], delta.sum(axis=0)]
        if i:
            delta = (delta @ W) * acts[i] * (1 - acts[i])
    return grads


def _chainrule_network(sizes, loss):
    x, y = cr.var("x", shape=(sizes[0],)), cr.var("y", shape=(sizes[-1],))
    params = []
    a = x
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
        W, b = cr.var(f"W{i}", shape=(n_out, n_in)), cr.var(f"b{i}", shape=(n_out,))
        params += [W, b]
        a = cr.sigmoid(W @ a + b)
    if loss == "quadratic":
        J = cr.mean(((y - a) ** 2).sum())
    else:
        J = cr.mean(-(y * cr.log(a) + (1 - y) * cr.log(1 - a)).sum())
    return J, x, y, params


@pytest.mark.parametrize("sizes", [(1, 1, 1), (3, 2), (4, 5, 3), (3, 4, 4, 2)])
@pytest.mark.parametrize("loss", ["quadratic", "cross-entropy"])
def test_dense_layer_gradients_match_backprop_and_forward_mode(sizes, loss):
    J, x, y, params = _chainrule_network(sizes, loss)
    grads = cr.grad(J, params)
    assert isinstance(grads, list) and [g.shape for g in grads] == [p.shape for p in params]
    fn = cr.compile([J, *grads], inputs=[x, y, *params])
    values_, X, Y = _network(sizes, seed=len(sizes) * 10 + len(loss))
    value, *got = fn(X, Y, *values_)
    np.testing.assert_allclose(value, _forward(values_, X, Y, loss), rtol=1e-13)
    for g, want in zip(got, _backprop(values_, X, Y, loss), strict=True):
        assert g.shape == want.shape  # reduced over the batch: the parameter's own shape
        np.testing.assert_allclose(g, want, rtol=1e-11, atol=1e-15)
    # forward mode along random directions: the directional derivative is <grad, direction>
    rng = np.random.default_rng(1)
    for _ in range(3):
        directions = [rng.normal(size=p.shape) for p in values_]
        duals = [Dual(p, d) for p, d in zip(values_, directions, strict=True)]
        tangent = _forward(duals, X, Y, loss).t
        along = sum(float((g * d).sum()) for g, d in zip(got, directions, strict=True))
        np.testing.assert_allclose(along, tangent, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("kind", [k for k in UNARY_OPS if k in PARTIALS])
def test_gradients_of_every_function_elementwise(kind):
    low, high = DOMAIN[kind]
    A = cr.var("A", shape=(2, 3))
    a = values(11, A.shape, low, high)
    got = evaluate(cr.grad(BUILD[kind](A).sum(), A), [A], a)
    np.testing.assert_allclose(got, np.broadcast_to(PARTIALS[kind](a, NP[kind](a))[0], a.shape),
                               rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("kind", [k for k in BINARY_OPS if k in PARTIALS])
def test_gradients_of_binary_ops_sum_over_broadcast_axes(kind):
    low, high = DOMAIN[kind]
    A, B = cr.var("A", shape=(2, 3)), cr.var("B", shape=(3,))
    a, b = values(12, A.shape, low, high), values(13, B.shape, low, high)
    gA, gB = evaluate(cr.grad(BUILD[kind](A, B).sum(), [A, B]), [A, B], a, b)
    pa, pb = (np.broadcast_to(p, a.shape) for p in PARTIALS[kind](a, b, NP[kind](a, b)))
    np.testing.assert_allclose(gA, pa, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(gB, pb.sum(axis=0), rtol=1e-10, atol=1e-14)  # B broadcast twice


# Steps of a random array program, each as (for ExprArrays, for NumPy arrays): shape
# operations, broadcasting against a slice of itself, @, reductions along axes and smooth
# functions, so that the chain's gradient can be checked by central differences.
STEPS = [
    (lambda e: e.T, lambda a: a.T),
    (lambda e: e[..., ::-1], lambda a: a[..., ::-1]),
    (lambda e: e.reshape(-1), lambda a: a.reshape(-1)),
    (lambda e: e[:, None] if e.ndim == 1 else e, lambda a: a[:, None] if a.ndim == 1 else a),
    (lambda e: e * e[..., :1] + 0.5, lambda a: a * a[..., :1] + 0.5),
    (lambda e: cr.sin(e) - e / 3, lambda a: np.sin(a) - a / 3),
    (lambda e: cr.tanh(e @ e.T) if e.ndim == 2 else e,
     lambda a: np.tanh(a @ a.T) if a.ndim == 2 else a),
    (lambda e: e.sum(axis=0, keepdims=True) if e.ndim == 2 else e,
     lambda a: a.sum(axis=0, keepdims=True) if a.ndim == 2 else a),
    (lambda e: cr.sigmoid(e.mean(axis=-1, keepdims=True) - e),
     lambda a: 1 / (1 + np.exp(-(a.mean(axis=-1, keepdims=True) - a)))),
]


@SETTINGS
@given(shape=hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=3),
       steps=st.lists(st.integers(0, len(STEPS) - 1), min_size=1, max_size=5),
       seed=st.integers(0, 2**32 - 1))
def test_random_array_programs_and_their_gradients(shape, steps, seed):
    """A chain of array operations gives NumPy's numbers, and the gradient of its sum
    matches central differences of the NumPy chain."""
    A = cr.var("A", shape=shape)
    a = values(seed, shape, -1.0, 1.0)

    def run(x, side):
        for i in steps:
            x = STEPS[i][side](x)
        return x

    e = run(A, 0)
    np.testing.assert_allclose(evaluate(e, [A], a), run(a, 1), rtol=1e-12, atol=1e-15)
    got = evaluate(cr.grad(e.sum(), A), [A], a)
    h = 1e-6
    want = np.empty(shape)
    for i in np.ndindex(*shape):
        up, down = a.copy(), a.copy()
        up[i] += h
        down[i] -= h
        want[i] = (run(up, 1).sum() - run(down, 1).sum()) / (2 * h)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)


def test_the_design_example_64_30_10():
    """DESIGN.md's example as written: gW comes back (30, 64), reduced over the batch."""
    W, b = cr.var("W", shape=(30, 64)), cr.var("b", shape=(30,))
    V, c = cr.var("V", shape=(10, 30)), cr.var("c", shape=(10,))
    x, y = cr.var("x", shape=(64,)), cr.var("y", shape=(10,))
    h = cr.sigmoid(W @ x + b)
    J = cr.mean(((y - cr.sigmoid(V @ h + c)) ** 2).sum())
    gW = cr.grad(J, W)
    fn = cr.compile([J, gW], inputs=[x, y, W, b, V, c])
    params, X, Y = _network((64, 30, 10), seed=5)
    value, got = fn(X, Y, *params)
    assert got.shape == (30, 64)
    np.testing.assert_allclose(value, _forward(params, X, Y, "quadratic"), rtol=1e-13)
    np.testing.assert_allclose(got, _backprop(params, X, Y, "quadratic")[0], rtol=1e-11,
                               atol=1e-15)


def test_grad_with_respect_to_a_mixed_list_and_tuple():
    W, b, s = cr.var("W", shape=(2, 3)), cr.var("b", shape=(2,)), cr.var("s")
    x = cr.var("x", shape=(3,))
    J = cr.mean((cr.tanh(s * (W @ x) + b) ** 2).sum())
    gW, gb, gs = cr.grad(J, [W, b, s])
    assert isinstance(gs, cr.Expr) and gW.shape == (2, 3) and gb.shape == (2,)
    assert isinstance(cr.grad(J, (W, b, s)), tuple)
    w, bb, ss, X = values(0, (2, 3)), values(1, (2,)), 0.7, values(2, (5, 3))
    got = evaluate([gW, gb, gs], [x, W, b, s], X, w, bb, ss)
    z = ss * (X @ w.T) + bb
    dz = 2 * np.tanh(z) * (1 - np.tanh(z) ** 2) / 5
    np.testing.assert_allclose(got[0], ss * dz.T @ X, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got[1], dz.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(got[2], (dz * (X @ w.T)).sum(), rtol=1e-12)
    # a per-sample expression has per-sample derivatives: batch + the variable's shape
    per = evaluate(cr.grad(cr.tanh(W @ x + b).sum(), W), [x, W, b], X, w, bb)
    assert per.shape == (5, 2, 3)
    np.testing.assert_allclose(per, (1 - np.tanh(X @ w.T + bb) ** 2)[:, :, None] * X[:, None, :],
                               rtol=1e-12, atol=1e-15)


def test_grad_of_a_0d_array_and_of_an_element():
    S, W = cr.var("S", shape=()), cr.var("W", shape=(2, 2))
    g = cr.grad(cr.sin(S * 3).sum(), S)
    assert isinstance(g, cr.ExprArray) and g.shape == ()
    np.testing.assert_allclose(evaluate(g, [S], np.array([0.1, 0.2])), 3 * np.cos([0.3, 0.6]))
    g01 = cr.grad((W @ W).sum(), W[0, 1])  # an element is a scalar variable
    assert isinstance(g01, cr.Expr)
    w = values(4, (2, 2))
    np.testing.assert_allclose(evaluate(g01, [W], w), w[1].sum() + w[:, 0].sum(), rtol=RTOL)


# -- shapes of arguments and outputs --------------------------------------------------------


def test_outputs_per_sample_and_reduced():
    W, x, t = cr.var("W", shape=(2, 3)), cr.var("x", shape=(3,)), cr.var("t")
    h = W @ x * t
    fn = cr.compile([h, cr.sum(h), h.sum(), W * 2, cr.mean(t)], inputs=[W, x, t])
    w, X, T = values(0, (2, 3)), values(1, (4, 5, 3)), values(2, (4, 5))
    per, summed, total, uniform, mean_t = fn(w, X, T)
    want = (X @ w.T) * T[..., None]
    assert per.shape == (4, 5, 2) and summed.shape == (2,) and total.shape == (4, 5)
    assert np.ndim(mean_t) == 0
    np.testing.assert_allclose(per, want, rtol=RTOL)
    np.testing.assert_allclose(summed, want.sum(axis=(0, 1)), rtol=RTOL)
    np.testing.assert_allclose(total, want.sum(axis=-1), rtol=RTOL)
    # per sample, as scalar outputs are: filled out to the batch even where constant in it
    np.testing.assert_array_equal(uniform, np.broadcast_to(w * 2, (4, 5, 2, 3)))
    # no batch at all: every output has its own shape; by name too
    per1, summed1, *_ = fn(w, x=X[0, 0], t=2.0)
    assert per1.shape == (2,) and summed1.shape == (2,)
    np.testing.assert_allclose(per1, w @ X[0, 0] * 2.0, rtol=RTOL)
    # arguments broadcast over the batch: W per sample, x shared
    w4 = values(3, (4, 2, 3))
    np.testing.assert_allclose(fn(w4, X[0, 0], 1.0)[0], w4 @ X[0, 0], rtol=RTOL)
    assert fn(w, X.tolist(), T)[0].shape == (4, 5, 2)  # nested lists are arrays too


def test_0d_arrays_are_arrays_of_one_element():
    """Regression: a 0-d operand's result had shape (1,), so a batch came back (N, 1)."""
    S = cr.var("S", shape=())
    assert S.shape == () and S.size == 1 and str(S) == "S"
    for e in (S * 2, 2 - S, S + cr.var("t"), cr.where(S > 0, S, 1.0), S ** S):
        assert isinstance(e, cr.ExprArray) and e.shape == ()
    fn = cr.compile([S * 2, cr.sum(S)], inputs=[S])
    per, total = fn(np.arange(3.0))
    assert per.shape == (3,) and np.ndim(total) == 0
    np.testing.assert_array_equal(per, [0.0, 2.0, 4.0])
    assert fn(1.5)[0].shape == () and float(fn(1.5)[0]) == 3.0
    assert (S + cr.var("B", shape=(2,))).shape == (2,)


def test_size_0_arrays():
    """Regression: a sum over a length-0 axis gave one element for the whole kept shape."""
    Z = cr.var("Z", shape=(0, 3))
    assert Z.size == 0 and str(Z) == "[]"
    assert Z.sum(axis=0).shape == (3,) and Z.sum(axis=1).shape == (0,)
    assert Z.sum(axis=0, keepdims=True).shape == (1, 3)
    fn = cr.compile([Z.sum(axis=0), Z * 2, Z.sum(axis=1)], inputs=[Z])
    zeros, doubled, empty = fn(np.zeros((5, 0, 3)))
    np.testing.assert_array_equal(zeros, np.zeros(3))
    assert doubled.shape == (5, 0, 3) and empty.shape == (5, 0)
    assert (cr.var("A", shape=(2, 0)) @ cr.var("B", shape=(0, 3))).shape == (2, 3)
    assert cr.grad(Z.sum(), Z).shape == (0, 3)


# -- out= and Dask ----------------------------------------------------------------------------


def _layer():
    W, x = cr.var("W", shape=(2, 3)), cr.var("x", shape=(3,))
    h = W @ x
    gW = cr.grad(cr.mean(h.sum()), W)  # reduced: W's own shape
    return cr.compile([h, cr.sum(h), gW], inputs=[W, x]), values(0, (2, 3)), values(1, (4, 3))


def test_out_arrays_are_filled_and_returned():
    fn, w, X = _layer()
    want = fn(w, X)
    per, total = np.empty((4, 2)), np.empty(2)
    column = np.empty((3, 2)).T  # any layout: the results are copied in
    got = fn(w, X, out=(per, total, column))
    assert got[0] is per and got[1] is total and got[2] is column
    for g, wnt in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, wnt)
    got = fn(w, X, out=[None, None, column])
    assert got[2] is column and got[0].shape == (4, 2)
    single = cr.compile(cr.var("v", shape=(2,)) * 3, inputs=[cr.var("v", shape=(2,))])
    buf = np.empty((5, 2))
    assert single(np.ones((5, 2)), out=buf) is buf and (buf == 3).all()
    assert single(np.ones((5, 2)), out=(buf,)) is buf  # a one-tuple, as for Function


def test_bad_out_arrays_are_refused_clearly():
    fn, w, X = _layer()
    with pytest.raises(cr.ShapeError, match=r"out has shape \(4, 3\).*result has shape \(4, 2\)"):
        fn(w, X, out=(np.empty((4, 3)), None, None))
    with pytest.raises(TypeError, match="float64"):
        fn(w, X, out=(np.empty((4, 2), dtype=np.float32), None, None))
    with pytest.raises(TypeError, match="3 entries"):
        fn(w, X, out=(np.empty((4, 2)),))
    with pytest.raises(TypeError, match="3 entries"):
        fn(w, X, out=np.empty((4, 2)))
    read_only = np.empty((4, 2))
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        fn(w, X, out=(read_only, None, None))
    shared = np.empty((2, 3))
    with pytest.raises(ValueError, match="share memory"):
        fn(w, X, out=(None, shared[0, :2], shared))


def test_dask_arguments_are_refused_with_the_fix():
    da = pytest.importorskip("dask.array")
    fn, w, X = _layer()
    with pytest.raises(TypeError, match=r"argument x is a Dask array.*compute"):
        fn(w, da.from_array(X))


# -- pickling, printing, parsing ------------------------------------------------------------


def test_pickled_arrays_and_functions_load_equal():
    W, x = cr.var("W", shape=(2, 3)), cr.var("x", shape=(3,))
    h = cr.sigmoid(W @ x)[::-1]
    for e in (W, h, h.T[None], cr.var("S", shape=()), cr.var("Z", shape=(0, 2))):
        loaded = pickle.loads(pickle.dumps(e))
        assert isinstance(loaded, cr.ExprArray) and loaded.shape == e.shape
        assert (loaded == e).all() and loaded.name == e.name
    assert pickle.loads(pickle.dumps(W)).name == "W"
    fn = cr.compile([h, cr.grad(cr.mean(h.sum()), W)], inputs=[W, x])
    loaded = pickle.loads(pickle.dumps(fn))
    assert isinstance(loaded, cr.ArrayFunction)
    w, X = values(0, (2, 3)), values(1, (4, 3))
    for a, b in zip(loaded(w, X), fn(w, X), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(cr.ChainruleError, match="6 elements for shape"):
        arrays._load_array(W.__reduce__()[1][0], (2, 2))


def test_str_and_repr():
    W = cr.var("W", shape=(2, 2))
    assert str(W) == "[[W[0,0], W[0,1]],\n [W[1,0], W[1,1]]]"
    assert repr(W) == ("ExprArray([[W[0,0], W[0,1]],\n"
                       "           [W[1,0], W[1,1]]], shape=(2, 2))")
    assert str(W @ cr.var("x", shape=(2,))) == ("[W[0,0] * x[0] + W[0,1] * x[1], "
                                                "W[1,0] * x[0] + W[1,1] * x[1]]")
    assert repr(cr.var("S", shape=())) == "ExprArray(S, shape=())"
    big = cr.var("B", shape=(40, 30))
    assert str(big) == repr(big) == "ExprArray(shape=(40, 30))"
    assert W._repr_latex_().startswith("$\\begin{bmatrix}")
    assert repr(cr.compile(W.sum(), inputs=[W])) == "<chainrule.ArrayFunction (W) -> 1 output(s)>"


def test_elements_print_and_parse_back_to_the_same_node():
    J, x, y, params = _chainrule_network((3, 2, 2), "cross-entropy")
    elements = [*cr.var("T", shape=(2, 1, 3)).tolist_flat(), J]
    for g in cr.grad(J, params):
        elements += g.tolist_flat()
    for e in elements:
        assert cr.parse(str(e)) == e, str(e)
    assert cr.parse("W[3,7] * x[7]") == cr.var("W", shape=(4, 8))[3, 7] * cr.var("x", shape=(8,))[7]
    assert cr.var("W", shape=(4, 8))[3, 7] == cr.var("W[3,7]")


def test_variables_and_object_arrays():
    W, x = cr.var("W", shape=(1, 2)), cr.var("x", shape=(2,))
    assert [str(v) for v in (W @ x).variables] == ["W[0,0]", "W[0,1]", "x[0]", "x[1]"]
    obj = np.asarray(W)
    assert obj.dtype == object and obj.shape == (1, 2) and str(obj[0, 1]) == "W[0,1]"
    assert [[str(e) for e in row] for row in W.tolist()] == [["W[0,0]", "W[0,1]"]]
    t = cr.var("t")
    mixed = cr.ExprArray.of([[t, 1.0], [2.0, t * 2]])
    assert mixed.shape == (2, 2)
    np.testing.assert_array_equal(evaluate(mixed, [t], 3.0), [[3.0, 1.0], [2.0, 6.0]])


def test_docstring_examples():
    result = doctest.testmod(arrays, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0


# -- types ---------------------------------------------------------------------------------


def _readme_arrays_block() -> str:
    text = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = text[text.index("### Arrays of expressions"):]
    return section[section.index("```python\n") + 10:section.index("```\n")]


def _mypy(tmp_path, source: str) -> subprocess.CompletedProcess:
    pytest.importorskip("mypy")
    path = tmp_path / "usage.py"
    path.write_text(source)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", "--cache-dir",
         str(tmp_path / ".mypy_cache"), "--follow-imports=silent", str(path)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)


def test_mypy_accepts_the_readme_array_example_and_catches_a_misuse(tmp_path):
    """Functions of arrays are typed as arrays, grad with respect to arrays gives arrays, and
    an Expr is still not an ExprArray (the last line is the misuse)."""
    source = _readme_arrays_block() + textwrap.dedent("""
        v: cr.ExprArray = cr.tanh(W) + cr.maximum(W, 0.0) * cr.where(W > 0, 1.0, W)
        m: cr.ExprArray = cr.mean(cr.sum(W, over=W)) + cr.grad(J, W)
        g: cr.ExprArray = cr.grad(J, (W, b))[0]
        wrong: cr.ExprArray = cr.sin(cr.var("t"))
        """)
    result = _mypy(tmp_path, source)
    last = len(source.rstrip("\n").splitlines())
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        f'usage.py:{last}: error: Incompatible types in assignment (expression has type "Expr", '
        f'variable has type "ExprArray")  [assignment]'], result.stdout


def test_the_stubs_declare_every_block_call():
    import ast

    from chainrule import _core

    stub = ast.parse((pathlib.Path(cr.__file__).parent / "_core.pyi").read_text())
    declared = {n.name for n in stub.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    exported = {n for n in dir(_core) if n.startswith("block_") or n == "Block"}
    assert exported <= declared, exported - declared


# -- cost: calls into the core, not a loop over elements ------------------------------------


def _python_events(build) -> int:
    """How many Python-level calls and returns (of Python and C functions) ``build`` makes."""
    events = 0

    def profile(frame, event, arg):
        nonlocal events
        events += 1

    # without collections: a gc callback (Hypothesis installs one) would count per collection
    gc.disable()
    sys.setprofile(profile)
    try:
        build()
    finally:
        sys.setprofile(None)
        gc.enable()
    return events


def test_building_differentiating_and_compiling_layers_cost_the_same_at_any_size():
    """A 64-30-10 network (2,230 parameters) takes exactly the Python work of a 3-2-2 one:
    each operation is one call into the core for the whole array, never a loop over
    elements (a loop would add calls per element)."""

    def build(sizes):
        def run():
            J, x, y, params = _chainrule_network(sizes, "quadratic")
            grads = cr.grad(J, params)
            cr.compile([J, *grads], inputs=[x, y, *params])
        return run

    build((2, 2, 2))()  # imports and caches warmed
    assert _python_events(build((3, 2, 2))) == _python_events(build((64, 30, 10)))


def test_shapes_too_large_are_refused_before_anything_is_built():
    with pytest.raises(cr.ChainruleError, match="more than"):
        cr.var("W", shape=(10**6, 10**6))
    with pytest.raises(cr.ChainruleError, match="too many elements"):
        cr.var("W", shape=(2**70,))
    with pytest.raises(cr.ChainruleError, match="invalid variable name"):
        cr.var("W[", shape=(2,))
