"""Compiled functions: ``compile`` schedules expressions into a tape once; calling the result
evaluates it over NumPy batches (broadcast like NumPy, fused in chunks, on several threads).
"""

from __future__ import annotations

import numbers
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Self

import numpy as np

from . import _core
from .arguments import check_shapes, convert, refuse_masked
from .arrays import ExprArray
from .expr import Expr, as_expr, parse

__all__ = ["Function", "ArrayFunction", "compile", "evaluate", "set_num_threads",
           "get_num_threads", "using_threads", "load_function"]


class Function(_core.Function):
    """A compiled function of ``inputs``. Call it with scalars or arrays, by position or name.

    ``out=`` takes preallocated results: an array for a function of one output, else a tuple
    (or list) with one entry per output, ``None`` where that one is to be allocated. Each is
    a C-contiguous, aligned, writeable float64 array of exactly the output's shape
    (``ShapeError`` naming both shapes; ``TypeError`` for another dtype or a non-array;
    ``ValueError`` for another layout, a read-only array, or two entries that overlap). A
    single reduced value is written into a 0-d array (``np.empty(())``), which is returned
    in place of the ``numpy.float64``. The call returns the out arrays themselves; an
    argument that shares memory with one is read as it was before the call. An input
    named ``out`` takes that keyword instead.

    >>> import chainrule as cr
    >>> import numpy as np
    >>> x = cr.var("x")
    >>> fn = cr.compile([x * x, cr.grad(x * x, x)], inputs=[x])
    >>> fn([1.0, 2.0])
    (array([1., 4.]), array([2., 4.]))
    >>> square = np.empty(2)
    >>> fn(np.array([3.0, 4.0]), out=(square, None))[0] is square
    True
    """

    __slots__ = ("__weakref__",)

    # Built in __new__, as the compiled base class is, which reads the outputs and inputs
    # (``_outputs``, ``_inputs``, ``_names``, ``_single``). Calls whose arguments the base
    # reads (floats, ints, NumPy scalars and arrays) are answered by its __call__ without
    # entering Python; the rest go to _call.
    def __new__(cls, outputs: Expr | Sequence[Expr], inputs: Sequence[Expr]) -> Self:
        single = isinstance(outputs, Expr | numbers.Real)
        if isinstance(inputs, Expr):
            inputs = [inputs]
        return super().__new__(cls, [outputs] if single else outputs, inputs, single)

    @property
    def inputs(self) -> tuple[Expr, ...]:
        """The input variables, in call order."""
        return self._inputs

    @property
    def outputs(self) -> tuple[Expr, ...]:
        """The output expressions."""
        return self._outputs

    def _call(self, *args: object, **kwargs: object):
        # The base's __call__ answers every call whose arguments it reads (floats, ints, NumPy
        # scalars and arrays); this path takes the rest and raises the documented errors.
        out = kwargs.pop("out", None) if "out" not in self._names else None
        values = self._bind(args, kwargs)
        check_shapes(self._names, values)
        if any(hasattr(v, "__dask_graph__") for v in values):
            if out is not None:
                raise TypeError("out= is not supported with Dask arrays; the results are Dask "
                                "arrays, computed when asked")
            # Imported only when Dask arrays are passed, so Dask stays an optional extra.
            from . import daskarray

            return daskarray.call(self, values)
        converted = [convert(n, a) for n, a in zip(self._names, values, strict=True)]
        return self._finish(self._evaluate(converted, out))

    def _bind(self, args: tuple, kwargs: dict) -> list:
        names = self._names
        if len(args) > len(names):
            raise TypeError(f"function takes {len(names)} arguments ({', '.join(names)}) but "
                            f"{len(args)} were given")
        values = list(args) + [_MISSING] * (len(names) - len(args))
        for key, value in kwargs.items():
            if key not in names:
                raise TypeError(f"unexpected argument {key!r}; the inputs are ({', '.join(names)})")
            i = names.index(key)
            if values[i] is not _MISSING:
                raise TypeError(f"argument {key!r} given twice")
            values[i] = value
        missing = [n for n, v in zip(names, values, strict=True) if v is _MISSING]
        if missing:
            raise TypeError(f"missing argument(s) {', '.join(missing)}; the inputs are "
                            f"({', '.join(names)})")
        return values

    def _finish(self, results: list):
        return results[0] if self._single else tuple(results)

    def tape(self, *shapes: tuple[int, ...]) -> str:
        """The compiled tape, as text, for arguments of these shapes (default: all arrays of
        one batch shape, so every input is read per chunk).

        >>> import chainrule as cr
        >>> x = cr.var("x")
        >>> print(cr.compile(cr.sin(x) * 2, inputs=[x]).tape())
        s0 = 2
        pass 0: 2 registers of 1024 samples
          for each chunk:
            r0 = load in0
            r1 = sin(r0)
            r0 = s0 * r1
            out0 <- r0
        out0 = stored chunks
        """
        if not shapes:
            shapes = tuple((2,) for _ in self._names)
        return self._tape([list(s) for s in shapes]).rstrip("\n")

    def __repr__(self) -> str:
        outs = ", ".join(str(o).replace("\n", "; ") for o in self._outputs)
        return f"<chainrule.Function ({', '.join(self._names)}) -> [{outs}]>"

    def __reduce__(self):
        nodes = [*self._outputs, *self._inputs]
        return (load_function, (_core.encode(nodes), len(self._outputs), self._single))


_MISSING = object()


def load_function(data: bytes, n_outputs: int, single: bool) -> Function:
    """A function from its pickled graph (``Function.__reduce__``): ``n_outputs`` outputs, then
    the inputs; ``single`` if it was compiled from one expression.

    >>> import chainrule as cr
    >>> from chainrule import _core
    >>> x = cr.var("x")
    >>> load_function(_core.encode([x * 2, x]), 1, True)(3.0)
    np.float64(6.0)
    """
    nodes = _core.decode(data)
    fits = isinstance(n_outputs, int) and 1 <= n_outputs <= len(nodes)
    if not fits or (single and n_outputs != 1):
        raise _core.ChainruleError(
            f"cannot load chainrule data: {len(nodes)} nodes cannot hold {n_outputs} output(s)")
    outputs, inputs = nodes[:n_outputs], nodes[n_outputs:]
    return Function(outputs[0] if single else outputs, inputs)


def compile(outputs, inputs):  # noqa: A001
    """Compiles one expression or a list of them as a function of ``inputs`` (variables).

    Inputs and outputs may be arrays (:class:`~chainrule.ExprArray`): the argument for an
    array variable of shape S has shape batch + S, and an array output comes back with shape
    batch + S (per sample) or S (reduced over the batch); see :class:`ArrayFunction`.

    >>> import chainrule as cr
    >>> x, y = cr.vars("x y")
    >>> fn = cr.compile(x * y, inputs=[x, y])
    >>> fn(2.0, y=3.0)
    np.float64(6.0)
    """
    given_outputs = [outputs] if isinstance(outputs, Expr | ExprArray) else outputs
    given_inputs = [inputs] if isinstance(inputs, Expr | ExprArray) else inputs
    if any(isinstance(v, ExprArray) for v in (*given_outputs, *given_inputs)):
        return ArrayFunction(outputs, inputs)
    return Function(outputs, inputs)


class ArrayFunction:
    """A compiled function with array inputs or outputs. An argument for an input of shape S
    has shape batch + S (batch dimensions lead, as NumPy's stacks of vectors and matrices do);
    outputs of shape S come back as batch + S, or S where they are reduced over the batch.
    Scalar inputs and outputs behave as in :class:`Function`.

    ``out=`` takes preallocated results as :class:`Function`'s does (an array for one output,
    else one entry per output, ``None`` to allocate), each a writeable float64 array of the
    output's full shape; the results are computed, then copied in, so any layout will do.
    Dask arrays are refused (``TypeError``): the elements of an array argument become one
    column each, which Dask would compute eagerly and whole.

    >>> import chainrule as cr
    >>> import numpy as np
    >>> x = cr.var("x", shape=(3,)); w = cr.var("w", shape=(3,))
    >>> J = cr.mean((x @ w) ** 2)
    >>> fn = cr.compile([J, cr.grad(J, w)], inputs=[x, w])
    >>> X = np.ones((4, 3)); w0 = np.array([1.0, 2.0, 3.0])
    >>> value, gw = fn(X, w0)
    >>> float(value), gw
    (36.0, array([12., 12., 12.]))
    >>> g = np.empty(3)
    >>> fn(X, w0, out=(None, g))[1] is g
    True
    """

    __slots__ = ("_flat", "_in_shapes", "_out_shapes", "_names", "_single", "_given")

    def __init__(self, outputs, inputs):
        self._single = not isinstance(outputs, list | tuple)
        outs = [outputs] if self._single else list(outputs)
        ins = [inputs] if isinstance(inputs, Expr | ExprArray) else list(inputs)
        self._given = (outputs, inputs)
        flat_in: list[Expr] = []
        self._in_shapes: list[tuple[int, ...] | None] = []
        names: list[str] = []
        for i, v in enumerate(ins):
            if isinstance(v, ExprArray):
                elements = v.tolist_flat()
                if not all(v._dense().are_variables()):  # one call, not a loop over elements
                    raise TypeError(f"inputs must be variables or arrays of variables; input "
                                    f"{i} (shape {v.shape}) has elements that are expressions")
                flat_in.extend(elements)
                self._in_shapes.append(v.shape)
                names.append(v.name or f"input{i}")
            else:
                if not isinstance(v, Expr) or not v.is_var:
                    raise TypeError(f"inputs must be variables or arrays of variables, not {v!r}")
                flat_in.append(v)
                self._in_shapes.append(None)
                names.append(v.name)
        if len(set(names)) != len(names):
            twice = next(n for n in names if names.count(n) > 1)
            raise _core.ChainruleError(f"variable '{twice}' is listed twice in inputs")
        self._names = tuple(names)
        flat_out: list[Expr] = []
        self._out_shapes: list[tuple[int, ...] | None] = []
        for o in outs:
            if isinstance(o, ExprArray):
                flat_out.extend(o.tolist_flat())
                self._out_shapes.append(o.shape)
            else:
                flat_out.append(as_expr(o))
                self._out_shapes.append(None)
        self._flat = Function(flat_out, flat_in)

    @property
    def inputs(self) -> tuple:
        return tuple(self._given[1]) if isinstance(self._given[1], list | tuple) else (
            self._given[1],)

    @property
    def flat(self) -> Function:
        """The scalar function underneath: one input per element, one output per element."""
        return self._flat

    # Whether calls pass each array as one block (``_core.Function._call_arrays``); tests
    # turn it off to compare with the element-by-element path.
    _blocks = True

    def __call__(self, *args: object, **kwargs: object):
        out = kwargs.pop("out", None) if "out" not in self._names else None
        outs = self._out_entries(out)
        values, batch = self._checked_arguments(self._bind(args, kwargs))
        results = None
        if self._blocks:
            results = self._flat._call_arrays(values, self._in_shapes, self._out_shapes, batch)
        if results is None:
            # The binding leaves to this path the calls it does not read (a scalar variable's
            # argument that is a list, a masked or Dask array, an integer past 64 bits; an
            # unaligned array) or that the core refuses: the flat call converts them, or
            # raises the documented error.
            flat = self._flat(*self._flat_arguments(values))
            assembled = self._assemble(list(flat), batch)  # compiled from a list: a tuple
        else:
            assembled = [self._assemble_output(r, shape, batch) if isinstance(r, list) else r
                         for r, shape in zip(results, self._out_shapes, strict=True)]
            assembled = assembled[0] if self._single else tuple(assembled)
        if out is None:
            return assembled
        filled = [r if o is None else _write(r, o) for r, o in zip(
            [assembled] if self._single else assembled, outs, strict=True)]
        return filled[0] if self._single else tuple(filled)

    def _out_entries(self, out: object) -> list:
        """``out`` as one entry per output, types checked before any work is done."""
        if out is None:
            return [None] * len(self._out_shapes)
        entries = [out] if self._single and isinstance(out, np.ndarray) else out
        if not isinstance(entries, list | tuple) or len(entries) != len(self._out_shapes):
            raise TypeError(f"out= takes {'an array or ' if self._single else ''}a tuple of "
                            f"{len(self._out_shapes)} entries (arrays or None), one per output, "
                            f"not {type(out).__name__}")
        arrays = [o for o in entries if o is not None]
        for o in arrays:
            if not isinstance(o, np.ndarray) or o.dtype != np.float64:
                raise TypeError(f"out= entries must be float64 NumPy arrays or None, not "
                                f"{getattr(o, 'dtype', type(o).__name__)}")
            if not o.flags.writeable:
                raise ValueError("an out= array is read-only")
        for i, a in enumerate(arrays):
            if any(np.may_share_memory(a, b) for b in arrays[i + 1:]):
                raise ValueError("two out= arrays share memory; each output needs its own")
        return list(entries)

    def _bind(self, args: tuple, kwargs: dict) -> list:
        return Function._bind(self, args, kwargs)  # type: ignore[arg-type]

    def _checked_arguments(self, values: list) -> tuple[list, tuple[int, ...]]:
        """The arguments, each array variable's as a float64 array whose shape ends in the
        variable's shape, and the batch shape they broadcast to (what an output of no
        elements, which has no values to show it, takes as its batch)."""
        checked: list = []
        batches: list[tuple[int, ...]] = []
        for name, shape, value in zip(self._names, self._in_shapes, values, strict=True):
            if hasattr(value, "__dask_graph__"):
                raise TypeError(f"argument {name} is a Dask array; functions with array inputs "
                                f"or outputs take NumPy arrays (call .compute() first)")
            if shape is None:
                checked.append(value)
                batches.append(np.shape(value))
                continue
            a = array_argument(name, value)
            k = len(shape)
            if a.ndim < k or a.shape[a.ndim - k:] != shape:
                raise _core.ShapeError(
                    f"argument {name} has shape {a.shape}, but {name} is an array variable of "
                    f"shape {shape}: its argument has shape (batch..., "
                    f"{', '.join(map(str, shape))})")
            checked.append(a)
            batches.append(a.shape[:a.ndim - k])
        try:
            return checked, np.broadcast_shapes(*batches)
        except ValueError:
            shown = ", ".join(f"{n}: {b}" for n, b in zip(self._names, batches, strict=True))
            raise _core.ShapeError(f"the arguments' batch shapes (their shapes without the "
                                   f"array variables' own) do not broadcast together "
                                   f"({shown})") from None

    def _flat_arguments(self, values: list) -> list:
        """The flat function's arguments: one per element of each array argument."""
        flat: list = []
        for shape, value in zip(self._in_shapes, values, strict=True):
            if shape is None:
                flat.append(value)
                continue
            batch = value.shape[:value.ndim - len(shape)]
            size = int(np.prod(shape, dtype=np.int64))
            if not batch:
                flat.extend(value.reshape(-1).tolist())
            else:
                # one strided view per element, made in C: for 23,520 elements 10 ms against
                # 15 ms for a Python loop over rows[..., j]
                flat.extend(np.moveaxis(value.reshape(batch + (size,)), -1, 0))
        return flat

    def _assemble(self, results: list, batch: tuple[int, ...] = ()):
        out = []
        at = 0
        for shape in self._out_shapes:
            if shape is None:
                out.append(results[at])
                at += 1
                continue
            size = int(np.prod(shape, dtype=np.int64))
            out.append(self._assemble_output(results[at:at + size], shape, batch))
            at += size
        return out[0] if self._single else tuple(out)

    @staticmethod
    def _assemble_output(items: list, shape: tuple[int, ...], batch: tuple[int, ...]):
        """An array output of ``shape`` from its elements' results, one each."""
        size = len(items)
        if size == 0:
            return np.zeros(batch + shape)
        if all(type(r) is np.float64 for r in items):
            return np.fromiter(items, dtype=np.float64, count=size).reshape(shape)
        if all(np.ndim(r) == 0 for r in items):
            return np.array(items, dtype=np.float64).reshape(shape)
        parts = np.broadcast_arrays(*items)
        return np.stack(parts, axis=-1).reshape(parts[0].shape + shape)

    def __repr__(self) -> str:
        outputs = len(self._out_shapes)
        return f"<chainrule.ArrayFunction ({', '.join(self._names)}) -> {outputs} output(s)>"

    def __reduce__(self):
        return (ArrayFunction, self._given)


def array_argument(name: str, value: object) -> np.ndarray:
    """The argument for array variable ``name`` as a float64 array (real numbers only)."""
    refuse_masked(name, value)
    a = np.asarray(value)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"argument {name} must hold real numbers, not {a.dtype}")
    return a.astype(np.float64, copy=False)


_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 256
# Guards every step on _CACHE: a lookup and its move to the end, or an insertion and its
# evictions, are one step each, so another thread's eviction cannot fall between them.
# Parsing and compiling run outside it, so one slow compile does not hold up cached calls.
_CACHE_LOCK = threading.Lock()


# numexpr.evaluate's keywords that have no meaning here (computation is always float64, in
# chunks, with no casting rules to choose): refused by name rather than read as variables.
_NUMEXPR_KEYWORDS = frozenset({"order", "casting", "optimization", "truediv", "sanitize",
                               "_frame_depth"})
# The variable names each expression uses, so that lookups in local_dict, global_dict or the
# caller's frame need not parse again (kept like _CACHE, under the same lock).
_NAMES: OrderedDict = OrderedDict()


def evaluate(ex: str | Expr, local_dict: Mapping[str, object] | None = None,
             global_dict: Mapping[str, object] | None = None, out: np.ndarray | None = None,
             **arguments: object):
    """Evaluates an expression (or its text) once, like ``numexpr.evaluate``; the compiled
    form is cached (the 256 most recently used), so repeated calls skip parsing and compiling.
    Any number of threads may call it at once.

    Variables come from the keywords, then ``local_dict``, then ``global_dict``; as in numexpr,
    a dict not given is the caller's local (or global) namespace. ``out``, a float64 array of
    the result's shape, receives the result and is returned.

    >>> evaluate("x * 2 + y", x=[1.0, 2.0], y=1.0)
    array([3., 5.])
    >>> a = np.arange(3.0)
    >>> evaluate("a ** 2")
    array([0., 1., 4.])
    """
    refused = sorted(_NUMEXPR_KEYWORDS & arguments.keys())
    if refused:
        raise TypeError(f"evaluate() does not take numexpr's {refused[0]!r} keyword (chainrule "
                        f"always computes in float64); for a variable of that name, pass "
                        f"local_dict={{{refused[0]!r}: ...}}")
    missing = [n for n in _variable_names(ex) if n not in arguments]
    if missing:
        arguments = {**arguments, **_look_up(missing, local_dict, global_dict, sys._getframe(1))}
    key = (ex, tuple(arguments))
    fn = _cached(_CACHE, key)
    if fn is None:
        e = parse(ex) if isinstance(ex, str) else as_expr(ex)
        fn = _store(_CACHE, key, Function(e, [_core.var(n) for n in arguments]))
    result = fn(**arguments)
    return result if out is None else _write(result, out)


def _variable_names(ex: str | Expr) -> tuple[str, ...]:
    names = _cached(_NAMES, ex)
    if names is None:
        e = parse(ex) if isinstance(ex, str) else as_expr(ex)
        names = _store(_NAMES, ex, tuple(v.name for v in e.variables))
    return names


def _cached(cache: OrderedDict, key: object):
    with _CACHE_LOCK:
        value = cache.get(key)
        if value is not None:
            cache.move_to_end(key)
    return value


def _store(cache: OrderedDict, key: object, value):
    with _CACHE_LOCK:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > _CACHE_SIZE:
            cache.popitem(last=False)
    return value


def _look_up(names: list[str], local_dict: Mapping[str, object] | None,
             global_dict: Mapping[str, object] | None, frame) -> dict[str, object]:
    """The values of ``names`` from local_dict then global_dict, each defaulting (as numexpr's
    do) to the namespace of ``frame``, the caller of evaluate()."""
    scopes = (frame.f_locals if local_dict is None else local_dict,
              frame.f_globals if global_dict is None else global_dict)
    found = {}
    for name in names:
        scope = next((s for s in scopes if name in s), None)
        if scope is None:
            given = local_dict is not None or global_dict is not None
            where = "local_dict or global_dict" if given else "the caller's variables"
            raise _core.ChainruleError(
                f"variable {name!r} is used but not given; pass {name}=... (it is not in {where})")
        found[name] = scope[name]
    return found


def _write(result, out: object) -> np.ndarray:
    """Copies ``result`` into ``out`` (numexpr's ``out=``) after checking that it fits."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a NumPy array, not {type(out).__name__}")
    if out.dtype != np.float64:
        raise TypeError(f"out must be a float64 array (results are float64), not {out.dtype}")
    shape = np.shape(result)
    if out.shape != shape:
        raise _core.ShapeError(f"out has shape {out.shape} but the result has shape {shape}")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    out[...] = result
    return out


def set_num_threads(n: int) -> None:
    """Sets how many threads evaluation uses (default: ``CHAINRULE_NUM_THREADS`` or all cores).
    At most 256, or the number of cores where that is more (``ValueError`` above it; the
    environment variable is capped to it). Results are the same bit for bit for any count.

    >>> set_num_threads(2); get_num_threads()
    2
    """
    _check_thread_count(n)
    _core.set_num_threads(int(n))


def _check_thread_count(n: object) -> None:
    if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 1:
        raise ValueError(f"the number of threads must be a positive integer, not {n!r}")
    if n > _core.max_threads():
        raise ValueError(f"the number of threads must be at most {_core.max_threads()} "
                         f"(256, or the number of cores if more), not {n!r}")


def get_num_threads() -> int:
    """The number of threads evaluation uses (on this thread, see :func:`using_threads`).

    >>> get_num_threads() >= 1
    True
    """
    return _core.get_num_threads()


@contextmanager
def using_threads(n: int) -> Iterator[None]:
    """Within the block, evaluations called from this thread use ``n`` threads (at most as
    many as :func:`set_num_threads` takes); other threads keep the process's setting. Blocks
    nest, and the previous count comes back on exit, also on an exception. Besides the
    process's own, pools of two other sizes are kept; a third size replaces the oldest.

    >>> with using_threads(1):
    ...     get_num_threads()
    1
    """
    _check_thread_count(n)
    previous = _core.set_thread_override(int(n))
    try:
        yield
    finally:
        _core.set_thread_override(previous)
