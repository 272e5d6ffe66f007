"""Calls of functions with array inputs and outputs, passed as blocks (each array argument as
one array, each array output back as one array, ``Function._call_arrays``), against the
element-by-element path they replaced (one flat argument per element, outputs stacked in
Python): the same results, bit for bit, over random element shapes, batches, broadcasting,
layouts and dtypes, including empty and 0-d batches and outputs whose elements differ in
shape."""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chainrule as cr
from chainrule.compiled import ArrayFunction

SETTINGS = settings(max_examples=60, deadline=None)


@contextlib.contextmanager
def element_by_element():
    """Calls inside take the Python path that flattens arguments element by element."""
    ArrayFunction._blocks = False
    try:
        yield
    finally:
        ArrayFunction._blocks = True


def both_paths(fn, *args, **kwargs):
    """(blocks, element by element): one call's results both ways."""
    fast = fn(*args, **kwargs)
    with element_by_element():
        slow = fn(*args, **kwargs)
    return fast, slow


def assert_same(fast, slow):
    """The same results: types, shapes and every value's bits (nan included)."""
    if isinstance(slow, tuple):
        assert isinstance(fast, tuple) and len(fast) == len(slow)
        for f, s in zip(fast, slow, strict=True):
            assert_same(f, s)
        return
    assert type(fast) is type(slow), (type(fast), type(slow))
    assert np.shape(fast) == np.shape(slow)
    f, s = np.asarray(fast, dtype=np.float64), np.asarray(slow, dtype=np.float64)
    assert np.array_equal(f.view(np.int64), s.view(np.int64)), (fast, slow)


def network(a: int, b: int):
    """A function of x (a, b), w (b,) and a scalar s with every kind of output: per-sample
    arrays of one and two element axes, a reduced value, reduced gradients of both arrays, a
    scalar gradient, and an array whose elements differ in shape (reduced, per sample, a
    constant)."""
    x, w, s = cr.var("x", shape=(a, b)), cr.var("w", shape=(b,)), cr.var("s")
    per = cr.sigmoid(x @ w + s)
    loss = cr.mean((per ** 2).sum())
    gx, gw, gs = cr.grad(loss, [x, w, s])
    mixed = cr.ExprArray.of([cr.sum(s * s), s + 1.0, 2.0])
    outputs = [per, x * s, loss, gw, gx, gs, mixed]
    return cr.compile(outputs, inputs=[x, w, s])


def laid_out(rng, values: np.ndarray, layout: str, dtype: str) -> np.ndarray:
    """``values`` in another memory layout with the same elements (and dtype)."""
    values = values.astype(dtype)
    if layout == "c" or values.ndim == 0:
        return values
    if layout == "fortran":
        return np.asfortranarray(values)
    if layout == "reversed":
        return np.ascontiguousarray(values[(slice(None, None, -1),) * values.ndim])[
            (slice(None, None, -1),) * values.ndim]
    if layout == "every-other":
        wide = np.zeros(tuple(2 * n for n in values.shape), dtype=values.dtype)
        wide[(slice(None, None, 2),) * values.ndim] = values
        return wide[(slice(None, None, 2),) * values.ndim]
    # the first axis broadcast from one row, where there is one to broadcast
    return np.broadcast_to(values[:1], values.shape) if values.shape[0] > 0 else values


LAYOUTS = ["c", "fortran", "reversed", "every-other", "broadcast"]
DTYPES = ["float64", "float32", "int32", "bool"]
BATCHES = st.lists(st.integers(0, 3), min_size=0, max_size=2).map(tuple)


def draw_values(rng, shape, dtype):
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype == "int32":
        return rng.integers(-3, 4, shape)
    return rng.uniform(-2, 2, shape)


@SETTINGS
@given(a=st.integers(0, 3), b=st.integers(0, 3), x_batch=BATCHES, w_batch=BATCHES,
       s_batch=BATCHES, layouts=st.tuples(*[st.sampled_from(LAYOUTS)] * 2),
       dtypes=st.tuples(*[st.sampled_from(DTYPES)] * 2), seed=st.integers(0, 2 ** 32 - 1))
def test_blocks_equal_the_element_path_bit_for_bit(a, b, x_batch, w_batch, s_batch, layouts,
                                                    dtypes, seed):
    rng = np.random.default_rng(seed)
    try:
        np.broadcast_shapes(x_batch, w_batch, s_batch)
    except ValueError:
        w_batch = s_batch = ()
    X = laid_out(rng, draw_values(rng, x_batch + (a, b), dtypes[0]), layouts[0], dtypes[0])
    W = laid_out(rng, draw_values(rng, w_batch + (b,), dtypes[1]), layouts[1], dtypes[1])
    S = rng.uniform(-1, 1, s_batch) if s_batch else float(rng.uniform(-1, 1))
    fn = network(a, b)
    assert_same(*both_paths(fn, X, W, S))


@pytest.mark.parametrize("x_batch, w_batch", [((), ()), ((0,), ()), ((5,), ()), ((4, 5), ()),
                                              ((4, 1), (5,)), ((2, 0, 3), (3,)), ((7,), (7,)),
                                              ((1,), ()), ((1, 1), (1,))])
def test_the_block_path_is_taken_for_arrays_of_any_batch(x_batch, w_batch):
    # Without this, a block path that always fell back would pass the comparisons above.
    fn = network(2, 3)
    rng = np.random.default_rng(1)
    X, W = rng.uniform(-2, 2, x_batch + (2, 3)), rng.uniform(-2, 2, w_batch + (3,))
    values, batch = fn._checked_arguments([X, W, 0.5])
    results = fn.flat._call_arrays(values, fn._in_shapes, fn._out_shapes, batch)
    assert results is not None
    # one array per array output; only the mixed-shape output comes back element by element
    assert [type(results[i]) for i in (0, 1, 3, 4)] == [np.ndarray] * 4
    # elements of one shape (every one a single value, at a 0-d batch) make one array too
    assert isinstance(results[6], list) == (batch != ())
    assert_same(*both_paths(fn, X, W, 0.5))


def test_array_outputs_have_batch_then_element_axes():
    x = cr.var("x", shape=(2, 3))
    fn = cr.compile([x * 2.0, cr.sum(x)], inputs=[x])
    X = np.arange(4 * 5 * 6, dtype=np.float64).reshape(4, 5, 2, 3)
    doubled, summed = fn(X)
    assert doubled.shape == (4, 5, 2, 3) and summed.shape == (2, 3)
    np.testing.assert_array_equal(doubled, X * 2.0)
    np.testing.assert_array_equal(summed, X.sum(axis=(0, 1)))


def test_element_views_read_the_argument_in_place_not_a_copy():
    # Each element is a view of the argument at its own offset: a transposed, reversed
    # argument must give each element its own column, not its neighbour's.
    x = cr.var("x", shape=(3,))
    fn = cr.compile(x * 1.0, inputs=[x])
    base = np.arange(12.0).reshape(3, 4)
    X = base.T[::-1]  # shape (4, 3), strides (-8, 32)
    assert_same(fn(X), X.copy())
    assert not np.shares_memory(fn(X), X)


def test_zero_size_elements_and_batches():
    x, w = cr.var("x", shape=(0,)), cr.var("w", shape=(2,))
    fn = cr.compile([x * 2.0, w * 3.0, cr.sum(w)], inputs=[x, w])
    assert_same(*both_paths(fn, np.zeros((4, 0)), np.ones(2)))
    assert fn(np.zeros((4, 0)), np.ones(2))[0].shape == (4, 0)
    assert_same(*both_paths(fn, np.zeros((0, 0)), np.ones((0, 2))))


def test_scalar_arguments_that_the_binding_does_not_read_take_the_python_path():
    fn = network(2, 2)
    X, W = np.ones((3, 2, 2)), np.ones(2)
    for s in ([0.1, 0.2, 0.3], 2 ** 70, np.float32(0.1)):
        assert_same(*both_paths(fn, X, W, s))
    with pytest.raises(TypeError, match="'s' is a masked array"):
        fn(X, W, np.ma.masked_array([0.1, 0.2, 0.3]))


def test_unaligned_arguments_are_read_correctly():
    raw = np.zeros(8 * 12 + 1, dtype=np.uint8)[1:].view(np.float64).reshape(3, 2, 2)
    assert not raw.flags.aligned
    raw[...] = np.arange(12.0).reshape(3, 2, 2)
    fn = network(2, 2)
    assert_same(*both_paths(fn, raw, np.ones(2), 0.5))


def test_out_arrays_receive_block_results():
    fn = network(2, 3)
    X, W = np.random.default_rng(2).uniform(-1, 1, (5, 2, 3)), np.ones(3)
    expected = fn(X, W, 0.25)
    per, gx = np.empty((5, 2)), np.empty((5, 2, 3))
    got = fn(X, W, 0.25, out=(per, None, None, None, gx, None, None))
    assert got[0] is per and got[4] is gx
    assert_same(got[0], expected[0])
    assert_same(got[4], expected[4])


@pytest.mark.parametrize("args, error, message", [
    ((np.ones((4, 3)), np.ones((5, 2))), cr.ShapeError, "do not broadcast together"),
    ((np.ones((4, 2)), np.ones(2)), cr.ShapeError, "is an array variable of shape (3,)"),
    ((np.ones((4, 3), dtype=complex), np.ones(2)), TypeError, "must hold real numbers"),
])
def test_refused_calls_raise_the_same_errors(args, error, message):
    x, w = cr.var("x", shape=(3,)), cr.var("w", shape=(2,))
    fn = cr.compile([x.sum() * w], inputs=[x, w])
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        fn(*args)


def test_calls_of_new_shapes_do_not_reuse_the_last_prepared_call():
    # The binding keeps the last prepared call for arguments of the same shapes; every change
    # of any argument's shape (batch, rank, a scalar variable's array) must prepare anew.
    fn = network(2, 3)
    rng = np.random.default_rng(3)
    shapes = [((5,), (3,), ()), ((7,), (3,), ()), ((5,), (3,), ()), ((5,), (5, 3), ()),
              ((4, 5), (3,), (5,)), ((5,), (3,), (5,)), ((), (3,), ()), ((1,), (3,), ()),
              ((5,), (3,), ())]
    for x_batch, w_shape, s_shape in shapes:
        X, W = rng.uniform(-2, 2, x_batch + (2, 3)), rng.uniform(-2, 2, w_shape)
        S = rng.uniform(-1, 1, s_shape) if s_shape else 0.5
        assert_same(*both_paths(fn, X, W, S))


def test_threads_calling_one_function_with_different_shapes_get_their_own_results():
    fn = network(2, 3)
    rng = np.random.default_rng(4)
    calls = [(rng.uniform(-2, 2, (n, 2, 3)), rng.uniform(-2, 2, 3), 0.5) for n in (3, 4, 5, 6)]
    with element_by_element():
        expected = [fn(*args) for args in calls]
    failures = []

    def work(i):
        for _ in range(50):
            got = fn(*calls[i])
            try:
                assert_same(got, expected[i])
            except AssertionError as e:
                failures.append(e)
                return

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
