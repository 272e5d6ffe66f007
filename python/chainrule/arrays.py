"""Arrays of expressions: :class:`ExprArray`, with NumPy's semantics on its element axes.

``cr.var("W", shape=(30, 64))`` is an array of 1,920 scalar variables named ``W[i,j]``. An
ExprArray holds its elements in the Rust core (a ``_core.Block``) and, beside them, a NumPy
array of positions into that block with the array's shape; indexing, slicing, transposes
and broadcasting are NumPy's own operations on the positions, and every operation that makes
new nodes (an op elementwise, a sum along an axis, a matrix product) is one call into the
core for the whole array. So a 784x30 layer and its gradient take a handful of calls, not a
Python call per element.

The batch is not an axis of an ExprArray: as for scalar expressions, ``cr.sum`` and ``cr.mean``
reduce over the batch (elementwise), while ``.sum(axis=...)`` sums elements.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from . import _core
from .expr import Expr, as_expr

__all__ = ["ExprArray", "array_var", "asexprarray", "grad_arrays"]


class ExprArray:
    """An n-dimensional array of expressions (see the module doc).

    >>> import chainrule as cr
    >>> W = cr.var("W", shape=(2, 3)); x = cr.var("x", shape=(3,))
    >>> h = W @ x
    >>> h.shape, W.T.shape, str(W[1, 2])
    ((2,), (3, 2), 'W[1,2]')
    >>> print(h[0])
    W[0,0] * x[0] + W[0,1] * x[1] + W[0,2] * x[2]
    >>> cr.grad(h.sum(), x).shape
    (3,)
    """

    __slots__ = ("_block", "_index", "_name")
    # NumPy defers to ExprArray's operators (``np.ones(3) + x`` is an ExprArray, not an object
    # array of sums).
    __array_ufunc__ = None

    def __init__(self, block: _core.Block, index: np.ndarray, name: str | None = None):
        self._block = block
        self._index = index
        self._name = name

    @staticmethod
    def of(items: object) -> ExprArray:
        """An ExprArray of expressions and numbers (nested sequences, or a NumPy array)."""
        return asexprarray(items)

    # -- shape -----------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self._index.shape

    @property
    def ndim(self) -> int:
        return self._index.ndim

    @property
    def size(self) -> int:
        return self._index.size

    @property
    def name(self) -> str | None:
        """The array variable's name, for an array made by ``cr.var(name, shape=...)``."""
        return self._name

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d ExprArray")
        return self.shape[0]

    # Where the result is an ExprArray or, for one element, an Expr depending on shapes known
    # only at run time, the annotation is Any (as NumPy's ndarray.__getitem__ and .sum are), so
    # that typed code can use either without a cast.
    def _view(self, index: np.ndarray) -> Any:
        if index.ndim == 0:
            return self._block.items(index.reshape(1))[0]
        return ExprArray(self._block, index)

    def __getitem__(self, key: object) -> Any:
        if isinstance(key, ExprArray | Expr):
            raise IndexError("an ExprArray is indexed by integers, slices and NumPy index "
                             "arrays, not by expressions")
        return self._view(self._index[key])

    def __setitem__(self, key: object, value: object) -> None:
        raise TypeError("ExprArray is immutable; build a new one (e.g. with cr.where)")

    def __iter__(self) -> Iterator[Any]:
        for i in range(len(self)):
            yield self[i]

    @property
    def T(self) -> ExprArray:  # noqa: N802 - NumPy's name
        return ExprArray(self._block, self._index.T)

    def transpose(self, *axes: int) -> ExprArray:
        return ExprArray(self._block, self._index.transpose(*axes))

    def swapaxes(self, a: int, b: int) -> ExprArray:
        return ExprArray(self._block, self._index.swapaxes(a, b))

    def reshape(self, *shape: int | tuple[int, ...]) -> ExprArray:
        return ExprArray(self._block, self._index.reshape(*shape))

    def ravel(self) -> ExprArray:
        return ExprArray(self._block, self._index.ravel())

    flatten = ravel

    def squeeze(self, axis: int | tuple[int, ...] | None = None) -> Any:
        return self._view(self._index.squeeze(axis))

    # -- elements --------------------------------------------------------------------------
    def _dense(self) -> _core.Block:
        """The elements in C order, as a block."""
        return self._block.take(np.ascontiguousarray(self._index))

    def tolist_flat(self) -> list[Expr]:
        """The elements in C order, as a flat list of expressions."""
        return self._block.items(self._index.reshape(-1))

    def tolist(self) -> list:
        """The elements as nested lists of expressions."""
        items = self._block.items(self._index.reshape(-1))
        return np.array(items + [None], dtype=object)[:-1].reshape(self.shape).tolist()

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        if dtype is not None and np.dtype(dtype) != np.dtype(object):
            raise TypeError(f"an ExprArray converts to an object array of expressions, not "
                            f"{np.dtype(dtype)}; compile it to get numbers")
        out = np.empty(self.shape, dtype=object)
        out.reshape(-1)[:] = self._block.items(self._index.reshape(-1))
        return out

    @property
    def variables(self) -> tuple[Expr, ...]:
        """The variables the elements use, sorted by name."""
        return tuple(_core.var(n) for n in _core.variables(self._block.items(
            self._index.reshape(-1))))

    # -- operators ---------------------------------------------------------------------------
    def __add__(self, other: object) -> ExprArray:
        return elementwise("add", self, other)

    def __radd__(self, other: object) -> ExprArray:
        return elementwise("add", other, self)

    def __sub__(self, other: object) -> ExprArray:
        return elementwise("sub", self, other)

    def __rsub__(self, other: object) -> ExprArray:
        return elementwise("sub", other, self)

    def __mul__(self, other: object) -> ExprArray:
        return elementwise("mul", self, other)

    def __rmul__(self, other: object) -> ExprArray:
        return elementwise("mul", other, self)

    def __truediv__(self, other: object) -> ExprArray:
        return elementwise("div", self, other)

    def __rtruediv__(self, other: object) -> ExprArray:
        return elementwise("div", other, self)

    def __pow__(self, other: object) -> ExprArray:
        return elementwise("pow", self, other)

    def __rpow__(self, other: object) -> ExprArray:
        return elementwise("pow", other, self)

    def __mod__(self, other: object) -> ExprArray:
        return elementwise("mod", self, other)

    def __rmod__(self, other: object) -> ExprArray:
        return elementwise("mod", other, self)

    def __lt__(self, other: object) -> ExprArray:
        return elementwise("less", self, other)

    def __le__(self, other: object) -> ExprArray:
        return elementwise("lessequal", self, other)

    def __gt__(self, other: object) -> ExprArray:
        return elementwise("greater", self, other)

    def __ge__(self, other: object) -> ExprArray:
        return elementwise("greaterequal", self, other)

    def __and__(self, other: object) -> ExprArray:
        return elementwise("and", self, other)

    def __rand__(self, other: object) -> ExprArray:
        return elementwise("and", other, self)

    def __or__(self, other: object) -> ExprArray:
        return elementwise("or", self, other)

    def __ror__(self, other: object) -> ExprArray:
        return elementwise("or", other, self)

    def __neg__(self) -> ExprArray:
        return unary("neg", self)

    def __pos__(self) -> ExprArray:
        return self

    def __abs__(self) -> ExprArray:
        return unary("abs", self)

    def __invert__(self) -> ExprArray:
        return unary("not", self)

    def __eq__(self, other: object) -> np.ndarray:  # type: ignore[override]
        """Elementwise structural equality, as for an object array of expressions (a bool
        array); ``cr.equal`` builds the 0/1 comparison instead."""
        return np.asarray(self) == np.asarray(asexprarray(other))

    def __ne__(self, other: object) -> np.ndarray:  # type: ignore[override]
        return ~(self == other)

    __hash__ = None  # type: ignore[assignment]

    def __bool__(self) -> bool:
        raise TypeError("the truth value of an ExprArray is ambiguous; compare elements with "
                        "cr.equal or structurally with ==, then use .all() on the result")

    def __matmul__(self, other: object) -> Any:
        return matmul(self, other)

    def __rmatmul__(self, other: object) -> Any:
        return matmul(other, self)

    # -- reductions over elements ------------------------------------------------------------
    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Any:
        """The sum of elements along ``axis`` (all of them by default), as ``ndarray.sum``;
        per sample (``cr.sum`` sums over the batch instead)."""
        axes = _axes(axis, self.ndim)
        rest = [a for a in range(self.ndim) if a not in axes]
        index = self._index.transpose(*rest, *axes)
        kept = tuple(self.shape[a] for a in rest)
        count = int(np.prod([self.shape[a] for a in axes], dtype=np.int64))
        if count == 0:  # a sum of no elements is 0, one per kept position
            block = _core.block_constants(np.zeros(int(np.prod(kept, dtype=np.int64))))
        else:
            block = _core.block_sum_runs(self._block.take(np.ascontiguousarray(index)), count)
        out = np.arange(len(block), dtype=np.intp).reshape(kept)
        if keepdims:
            out = out.reshape([1 if a in axes else n for a, n in enumerate(self.shape)])
        return ExprArray(block, out) if out.ndim else block.items(out.reshape(1))[0]

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Any:
        """The mean of elements along ``axis``, as ``ndarray.mean`` (per sample)."""
        count = int(np.prod([self.shape[a] for a in _axes(axis, self.ndim)], dtype=np.int64))
        return self.sum(axis, keepdims) / count

    def dot(self, other: object) -> Any:
        return matmul(self, other)

    # -- printing and pickling ---------------------------------------------------------------
    def __str__(self) -> str:
        if self.size > 1000:
            return f"ExprArray(shape={self.shape})"
        texts = np.empty(self.shape, dtype=object)
        texts.reshape(-1)[:] = self._dense().texts()
        return np.array2string(texts, formatter={"all": str}, separator=", ",
                               threshold=1000, max_line_width=100)

    def __repr__(self) -> str:
        if self.size > 1000:
            return f"ExprArray(shape={self.shape})"
        body = str(self).replace("\n", "\n" + " " * 10)
        return f"ExprArray({body}, shape={self.shape})"

    def _repr_latex_(self) -> str:
        items = self._block.items(self._index.reshape(-1))
        if self.ndim > 2 or self.size > 400:
            return f"$\\text{{ExprArray of shape }}{self.shape}$"
        rows = np.array(items + [None], dtype=object)[:-1].reshape(
            self.shape if self.ndim == 2 else (1, self.size))
        body = r" \\ ".join(" & ".join(_core.latex([e]) for e in row) for row in rows)
        return f"$\\begin{{bmatrix}} {body} \\end{{bmatrix}}$"

    def __reduce__(self):
        return (_load_array, (self._dense().encode(), self.shape, self._name))


def _load_array(data: bytes, shape: tuple[int, ...], name: str | None = None) -> ExprArray:
    block = _core.block_decode(data)
    size = int(np.prod(shape, dtype=np.int64))
    if len(block) != size:
        raise _core.ChainruleError(
            f"cannot load chainrule data: {len(block)} elements for shape {shape}")
    return ExprArray(block, np.arange(size, dtype=np.intp).reshape(shape), name)


def _fresh(block: _core.Block, shape: tuple[int, ...]) -> ExprArray:
    return ExprArray(block, np.arange(len(block), dtype=np.intp).reshape(shape))


def _axes(axis: int | tuple[int, ...] | None, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    if not isinstance(axis, numbers.Integral | tuple | list):
        raise TypeError(f"axis must be an int, a tuple of ints or None, not {axis!r}")
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    out = []
    for a in axes:
        if not isinstance(a, numbers.Integral) or not -ndim <= a < ndim:
            raise np.exceptions.AxisError(f"axis {a} is out of bounds for an ExprArray of "
                                          f"dimension {ndim}")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"duplicate value in axis {axis!r}")
    return tuple(out)


def array_var(name: str, shape: int | Sequence[int]) -> ExprArray:
    """An array of variables ``name[i,j,...]`` of ``shape`` (``cr.var(name, shape=...)``)."""
    if isinstance(shape, numbers.Integral):
        shape = (shape,)
    if isinstance(shape, str | bytes) or not isinstance(shape, Sequence | np.ndarray) or any(
            not isinstance(n, numbers.Integral) or isinstance(n, bool) for n in shape):
        raise TypeError(f"shape must be an int or a sequence of ints, not {shape!r}")
    dims = tuple(int(n) for n in shape)
    if any(n < 0 for n in dims):
        raise ValueError(f"shape must be non-negative integers, not {shape!r}")
    if any(n >= 2**63 for n in dims):  # the core's limit, before the conversion overflows
        raise _core.ChainruleError(f"an array variable of shape {dims} has too many elements")
    return ExprArray(_core.block_vars(name, list(dims)),
                     np.arange(int(np.prod(dims, dtype=np.int64)), dtype=np.intp).reshape(dims),
                     name)


def asexprarray(value: object) -> ExprArray:
    """``value`` as an ExprArray: itself, an expression or number as a 0-d array, or a
    (nested) sequence or NumPy array of numbers and expressions.

    >>> asexprarray([1.0, 2.0]).shape
    (2,)
    """
    if isinstance(value, ExprArray):
        return value
    if isinstance(value, Expr):
        return ExprArray(_core.block_of([value]), np.zeros((), dtype=np.intp))
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        values = np.ascontiguousarray(value, dtype=np.float64)
        return _fresh(_core.block_constants(values.reshape(-1)), values.shape)
    if isinstance(value, np.ndarray) and value.dtype.kind == "c" or isinstance(value, complex):
        raise TypeError(f"complex constants are not supported: {value!r}")
    items = np.array(value, dtype=object)
    if items.ndim == 0:
        return ExprArray(_core.block_of([as_expr(items[()])]), np.zeros((), dtype=np.intp))
    flat = [as_expr(v) for v in items.reshape(-1)]
    return _fresh(_core.block_of(flat), items.shape)


def _broadcast(*arrays: ExprArray) -> list[np.ndarray]:
    try:
        # np.array, not np.ascontiguousarray: the latter makes a 0-d index 1-d, and a 0-d
        # operand's result would come out with shape (1,).
        return [np.array(i, order="C") for i in np.broadcast_arrays(*(a._index for a in arrays))]
    except ValueError:
        shapes = " and ".join(str(a.shape) for a in arrays)
        raise _core.ShapeError(f"ExprArrays of shapes {shapes} do not broadcast together"
                               ) from None


def unary(op: str, x: object) -> ExprArray:
    """``op`` applied to each element of ``x``."""
    a = asexprarray(x)
    return _fresh(_core.block_apply(op, a._dense()), a.shape)


def elementwise(op: str, x: object, y: object) -> ExprArray:
    """The binary ``op`` elementwise, broadcasting ``x`` and ``y`` as NumPy does."""
    a, b = asexprarray(x), asexprarray(y)
    ia, ib = _broadcast(a, b)
    return _fresh(_core.block_apply(op, a._block.take(ia), b._block.take(ib)), ia.shape)


def where(condition: object, x: object, y: object) -> ExprArray:
    """``cr.where`` elementwise, broadcasting its three operands."""
    c, a, b = asexprarray(condition), asexprarray(x), asexprarray(y)
    ic, ia, ib = _broadcast(c, a, b)
    return _fresh(_core.block_where(c._block.take(ic), a._block.take(ia), b._block.take(ib)),
                  ia.shape)


def reduce(kind: str, x: ExprArray, over: list[str] | None = None) -> ExprArray:
    """``cr.sum`` (over the batch, or the dimensions of ``over``) or ``cr.mean`` of each
    element."""
    return _fresh(_core.block_reduce(kind, x._dense(), over or []), x.shape)


def matmul(x: object, y: object) -> Any:
    """``x @ y`` with NumPy's rules: 1-d operands are a row or a column (that axis is then
    dropped), and leading axes broadcast as a stack of matrices."""
    a, b = asexprarray(x), asexprarray(y)
    if a.ndim == 0 or b.ndim == 0:
        raise _core.ShapeError(f"matmul takes arrays of at least one dimension, not shapes "
                               f"{a.shape} and {b.shape} (use * to scale)")
    ia = a._index[np.newaxis, :] if a.ndim == 1 else a._index
    ib = b._index[:, np.newaxis] if b.ndim == 1 else b._index
    (n, k), (k2, m) = ia.shape[-2:], ib.shape[-2:]
    if k != k2:
        raise _core.ShapeError(f"matmul: shapes {a.shape} and {b.shape} do not align "
                               f"({k} != {k2})")
    try:
        batch = np.broadcast_shapes(ia.shape[:-2], ib.shape[:-2])
    except ValueError:
        raise _core.ShapeError(f"matmul: the stacks of shapes {a.shape} and {b.shape} do not "
                               f"broadcast together") from None
    # the count of matrices is explicit: with k = 0 a -1 in reshape would be ambiguous
    count = int(np.prod(batch, dtype=np.int64))
    ia = np.broadcast_to(ia, batch + (n, k)).reshape(count, n, k)
    ib = np.broadcast_to(ib, batch + (k, m)).reshape(count, k, m)
    blocks = [_core.block_matmul(a._block.take(np.ascontiguousarray(pa)),
                                 b._block.take(np.ascontiguousarray(pb)), n, k, m)
              for pa, pb in zip(ia, ib, strict=True)]
    block = blocks[0] if len(blocks) == 1 else _core.block_concat(blocks)
    shape = batch + (n, m)
    if a.ndim == 1:
        shape = shape[:-2] + shape[-1:]
    if b.ndim == 1:
        shape = shape[:-1]
    out = np.arange(len(block), dtype=np.intp).reshape(shape)
    return ExprArray(block, out) if out.ndim else block.items(out.reshape(1))[0]


def grad_arrays(f: Expr, wrt: object) -> ExprArray | list | tuple:
    """``cr.grad`` with respect to an ExprArray (an array of its shape) or a list or tuple of
    variables and ExprArrays (one reverse sweep for all of them)."""
    items = [wrt] if isinstance(wrt, ExprArray) else list(wrt)  # type: ignore[call-overload]
    blocks, sizes = [], []
    for item in items:
        if isinstance(item, ExprArray):
            blocks.append(item._dense())
            sizes.append(item.size)
        elif isinstance(item, Expr) and item.is_var:
            blocks.append(_core.block_of([item]))
            sizes.append(None)
        else:
            raise TypeError(f"grad() differentiates with respect to variables and arrays of "
                            f"them, not {item!r}")
    block = _core.block_grad(f, _core.block_concat(blocks))
    results: list = []
    start = 0
    for item, size in zip(items, sizes, strict=True):
        if size is None:
            results.append(block.items(np.array([start], dtype=np.intp))[0])
            start += 1
        else:
            index = np.arange(start, start + size, dtype=np.intp).reshape(item.shape)
            results.append(ExprArray(block, index))
            start += size
    if isinstance(wrt, ExprArray):
        return results[0]
    return tuple(results) if isinstance(wrt, tuple) else results
