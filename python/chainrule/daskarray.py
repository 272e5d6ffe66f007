"""Compiled functions over Dask arrays: the same call, lazily, one in-memory call per block.

``Function.__call__`` sends a call here when any argument is a Dask collection, and returns
what :func:`call` returns. Per-sample outputs become Dask arrays built with ``blockwise``: each
block is one fused in-memory call on the matching blocks of the arguments (broadcast by NumPy's
rules; chunks aligned first). Reduced outputs become 0-d Dask arrays (``dask.compute`` gives a
``numpy.float64``, like an in-memory call), or Dask arrays of the ``over=`` argument's shape.

Reductions take passes. A sum that needs a pass over the data is in stage k when sums that
need passes are nested k - 1 deep inside it. Stage k's sums are compiled as one function of the
inputs and of fresh variables that stand for the sums of earlier stages (``core.substitute``):
one call per block gives all its partial sums, and Dask's tree reduction adds them. A sum of
one value over the whole batch (``sum(1)``, or the ``1/sum(1)`` in the gradient of a mean)
needs no pass: it is that value times the global count. What uses the sums is evaluated last,
with their totals as arguments, so ``mean(e) = sum(e) / sum(1)`` divides by the global count,
and ``x - mean(x)`` subtracts the global mean. ``sum(e, over=w)`` with ``w`` bound to an array
is kept per block in the dimensions ``w`` spans and added over the others
(``sum(axis=..., keepdims=True)``). A plan depends on which inputs are bound to single values,
and is cached per function and choice.

Threads compose: inside a Dask task, chainrule uses :data:`threads_per_task` threads (``None``:
one when Dask runs tasks on a thread pool or in worker processes, where the cluster's own
threads are the budget; the process default under the synchronous scheduler). The Dask config
key ``chainrule.threads-per-task`` sets it too. The count applies to the task's own thread only
(:func:`chainrule.using_threads`), so other threads of the process keep their setting. Dask is
imported only when a call gets here.
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import operator
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np

from . import _core
from .arguments import broadcast_shapes, check_dtype, convert
from .compiled import Function, load_function, using_threads
from .expr import Expr

__all__ = ["CONFIG_KEY", "call", "threads_per_task"]

#: chainrule threads per Dask task: ``None`` picks (see the module's docstring), an int fixes it.
threads_per_task: int | None = None

#: The Dask config key that sets the thread count when :data:`threads_per_task` is ``None``.
CONFIG_KEY = "chainrule.threads-per-task"

_F64 = np.float64


def call(fn: Function, values: list):
    """Evaluates ``fn`` on arguments (in input order) of which some are Dask arrays, lazily.

    >>> import dask, dask.array as da, numpy as np, chainrule as cr
    >>> x = cr.var("x")
    >>> fn = cr.compile([x * 2, x - cr.mean(x), cr.mean(x)], inputs=[x])
    >>> twice, centred, m = fn(da.arange(6.0, chunks=4))
    >>> twice.chunks
    ((4, 2),)
    >>> dask.compute(centred, m)
    (array([-2.5, -1.5, -0.5,  0.5,  1.5,  2.5]), np.float64(2.5))
    """
    env = _bind(fn, values)
    plan = _plan_for(fn, tuple(isinstance(env.sources[n], float | _Whole) for n in fn._names))
    env.sources[plan.count] = float(math.prod(env.batch))
    for stage in plan.stages:
        _reduce_stage(stage, env)
    results: list = [None] * len(fn.outputs)
    _per_sample_outputs(plan, env, results)
    _reduced_outputs(plan, env, results)
    return results[0] if fn._single else tuple(results)


# -- the plan: stages of sums, and what follows them ----------------------------------------


@dataclass
class _Stage:
    """Sums that need a pass over the data, compiled with the sums they contain replaced by
    variables; ``names`` are the variables that stand for these sums in later stages."""

    fn: Function
    names: list[str]
    over: list[list[str]]


@dataclass
class _Plan:
    """How to evaluate a function in passes, for one choice of which inputs are scalars."""

    stages: list[_Stage]
    count: str  # the variable bound to the batch's sample count
    samples: Function | None  # the per-sample outputs, with every sum replaced
    sample_index: list[int]
    finals: dict[int, Expr]  # the reduced outputs, as functions of scalars and sums
    final_vars: dict[int, list[str]]
    finish_cache: dict = field(default_factory=dict)

    def finish(self, index: tuple[int, ...]) -> Function:
        """The reduced outputs at ``index`` as a function of the variables they use."""
        fn = self.finish_cache.get(index)
        if fn is None:
            outs = [self.finals[i] for i in index]
            used = _core.variables(outs)
            fn = self.finish_cache[index] = Function(outs, [_core.var(n) for n in used])
        return fn


_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _plan_for(fn: Function, scalar: tuple[bool, ...]) -> _Plan:
    plans = _PLANS.setdefault(fn, {})
    plan = plans.get(scalar)
    if plan is None:
        names = {n for n, s in zip(fn._names, scalar, strict=True) if s}
        plan = plans[scalar] = _make_plan(fn, names)
    return plan


def _make_plan(fn: Function, scalar: set[str]) -> _Plan:
    roots = list(fn.outputs)
    fresh = _fresh_names(set(_core.variables(roots)) | set(fn._names))
    count = _core.var(next(fresh))
    inputs = [*fn.inputs, count]
    real, scaled = _sums_by_depth(roots, scalar)
    pairs: list = []
    stages = []
    for depth in range(max([*real, *scaled], default=0) + 1):
        level = real.get(depth, [])
        if level:
            rebuilt = _core.substitute(level, pairs) if pairs else level
            names = [next(fresh) for _ in level]
            stages.append(_Stage(Function(rebuilt, inputs), names,
                                 [list(n._over) for n in level]))
            new_vars = [_core.var(n) for n in names]
            pairs += list(zip(level, new_vars, strict=True))
            inputs = inputs + new_vars
        for node in scaled.get(depth, []):
            # A sum of one value over the whole batch is that value times the global count:
            # no pass over the data (mean's sum(1), or the 1/sum(1) inside mean's gradient).
            (operand,) = _core.substitute(node._args, pairs) if pairs else node._args
            pairs.append((node, _core.apply("mul", operand, count)))
    outs = _core.substitute(roots, pairs) if pairs else roots
    reduced = fn._reduced([[] for _ in fn._names])
    sample_index = [i for i, r in enumerate(reduced) if not r]
    samples = Function([outs[i] for i in sample_index], inputs) if sample_index else None
    finals = {i: outs[i] for i, r in enumerate(reduced) if r}
    final_vars = {i: _core.variables([e]) for i, e in finals.items()}
    return _Plan(stages, count.name, samples, sample_index, finals, final_vars)


def _fresh_names(taken: set[str]) -> Iterator[str]:
    k = 0
    while True:
        name = f"_dask_sum{k}"
        k += 1
        if name not in taken:
            yield name


def _sums_by_depth(roots: list, scalar: set[str]) -> tuple[dict[int, list], dict[int, list]]:
    """The sums under ``roots`` by depth (passes over the data needed before their value is
    known), each list inner sums first: sums that need a pass, and sums of one value over the
    whole batch, which need none.

    A node is *uniform* when it has one value for the whole batch: it uses only constants,
    inputs in ``scalar``, and sums whose ``over=`` inputs are all in ``scalar``. The traversal
    is an iterative post-order, so a million-deep graph does not overflow the stack.
    """
    depth: dict[int, int] = {}
    uniform: dict[int, bool] = {}
    real: dict[int, list] = {}
    scaled: dict[int, list] = {}
    stack = [(r, False) for r in reversed(roots)]
    while stack:
        node, ready = stack.pop()
        if node._id in depth:
            continue
        args = node._args
        if not ready:
            stack.append((node, True))
            stack.extend((a, False) for a in reversed(args) if a._id not in depth)
            continue
        d = max((depth[a._id] for a in args), default=0)
        kind = node._kind
        if kind == "sum":
            whole = all(n in scalar for n in node._over)
            if whole and uniform[args[0]._id]:
                scaled.setdefault(d, []).append(node)
            else:
                d += 1
                real.setdefault(d, []).append(node)
            uniform[node._id] = whole
        elif kind == "var":
            uniform[node._id] = node.name in scalar
        else:
            uniform[node._id] = all(uniform[a._id] for a in args)
        depth[node._id] = d
    return real, scaled


# -- arguments: where each variable's value comes from --------------------------------------


@dataclass(frozen=True, eq=False)
class _Whole:
    """A Dask array every block task receives whole (a 0-d argument, a vector of sums)."""

    array: object


@dataclass(frozen=True, eq=False)
class _Elem:
    """Element ``k`` of a small Dask vector (the totals of one stage's sums)."""

    array: object
    k: int


@dataclass
class _Env:
    """The batch's shape and chunks, and each variable's source: a float, a Dask array
    (chunked like the batch, right-aligned to its dims), a :class:`_Whole` or an :class:`_Elem`.
    """

    batch: tuple[int, ...]
    chunks: tuple[tuple[int, ...], ...]
    sources: dict[str, object]
    threads: int | None

    @property
    def ndim(self) -> int:
        return len(self.batch)

    def index(self, ndim: int) -> tuple[int, ...]:
        """Blockwise indices of an array of ``ndim`` dims, broadcast against the batch."""
        return tuple(range(self.ndim - ndim, self.ndim))


def _bind(fn: Function, values: list) -> _Env:
    import dask.array as da

    args = [_dask_argument(n, v) if hasattr(v, "__dask_graph__") else _plain_argument(n, v)
            for n, v in zip(fn._names, values, strict=True)]
    shapes = [() if isinstance(a, float) else tuple(a.shape) for a in args]
    fn._reduced([list(s) for s in shapes])  # raises the in-memory call's ShapeError
    batch = broadcast_shapes(*shapes)
    chunks = _batch_chunks(batch, [a for a in args if isinstance(a, da.Array)])
    sources = {n: _aligned(a, batch, chunks) for n, a in zip(fn._names, args, strict=True)}
    return _Env(batch, chunks, sources, _configured_threads())


def _plain_argument(name: str, value: object):
    """A float, or a float64 NumPy array of at least one dim (0-d arrays are floats)."""
    value = convert(name, value)
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return float(value)
    return value


def _dask_argument(name: str, value: object):
    import dask.array as da

    if not isinstance(value, da.Array):
        raise TypeError(f"argument {name!r} is a {type(value).__name__}; chainrule evaluates "
                        f"dask.array arrays (e.g. .to_dask_array(lengths=True) for dataframes)")
    if any(math.isnan(n) for n in value.shape):
        raise ValueError(f"argument {name!r} has unknown chunk sizes {value.chunks}; call "
                         f".compute_chunk_sizes() on it first")
    check_dtype(name, value.dtype)
    if isinstance(getattr(value, "_meta", None), np.ma.MaskedArray):
        convert(name, value._meta)  # the in-memory call's TypeError, before any task runs
    return value if value.dtype == _F64 else value.astype(_F64)


def _batch_chunks(batch: tuple[int, ...], arrays: list) -> tuple[tuple[int, ...], ...]:
    """Per batch dim, the chunks of the first Dask array that spans it (else one chunk)."""
    nd = len(batch)
    chunks: list = [None] * nd
    for a in arrays:
        for i, n in enumerate(a.shape):
            d = nd - a.ndim + i
            if chunks[d] is None and n == batch[d] and n != 1:
                chunks[d] = a.chunks[i]
    return tuple(_merge_unit_chunks(c if c is not None else (n,))
                 for c, n in zip(chunks, batch, strict=True))


def _merge_unit_chunks(chunks: tuple[int, ...]) -> tuple[int, ...]:
    """Chunks with no block of one element (unless the dim has one), and no empty blocks.

    A one-element block would make an argument a single value inside that block, which the
    core evaluates in scalar code: the same math, but not bitwise the same as its vector kernels.
    """
    if sum(chunks) <= 1:
        return (sum(chunks),)
    merged: list[int] = []
    for c in (c for c in chunks if c > 0):
        if merged and (c == 1 or merged[-1] == 1):
            merged[-1] += c
        else:
            merged.append(c)
    return tuple(merged)


def _aligned(arg, batch: tuple[int, ...], chunks: tuple[tuple[int, ...], ...]):
    """A variable's source: floats stay floats, arrays become Dask arrays chunked like the batch."""
    import dask.array as da

    if isinstance(arg, float):
        return arg
    if arg.ndim == 0:
        return _Whole(arg)
    nd = len(batch)
    target = tuple(chunks[nd - arg.ndim + i] if n != 1 else (1,) for i, n in enumerate(arg.shape))
    if isinstance(arg, np.ndarray):
        # name=False: no hashing of a possibly large in-memory array for a token.
        return da.from_array(arg, chunks=target, name=False)
    if arg.chunks == target:
        return arg
    if arg.ndim > 32:
        # Dask's rechunk stops there with a RuntimeError from NumPy; say what to change instead.
        raise _core.ShapeError(
            f"a Dask array of shape {arg.shape} ({arg.ndim} dimensions) would need rechunking to "
            f"chunks {target}, and Dask cannot rechunk arrays of more than 32 dimensions; chunk "
            f"the arguments alike, or drop unit dimensions")
    return arg.rechunk(target)


# -- building the Dask graph ----------------------------------------------------------------


def _blockwise(fn: Function, env: _Env, mode: str, out_ind: tuple, layout=None,
               new_axes: dict | None = None):
    """One Dask array whose every block is one call of ``fn`` on the blocks of its inputs."""
    import dask.array as da

    pairs: list = []
    spec: list = []
    position: dict[str, int] = {}
    for name in fn._names:
        src = env.sources[name]
        if isinstance(src, float):
            spec.append(src)
            continue
        array = src.array if isinstance(src, _Whole | _Elem) else src
        if array.name not in position:
            position[array.name] = len(pairs)
            pairs.append((array, _index(src, env, len(pairs))))
        pos = position[array.name]
        spec.append((pos, src.k) if isinstance(src, _Elem) else pos)
    task = _Task(fn, tuple(spec), mode, layout, env.threads)
    flat = [x for pair in pairs for x in pair]
    return da.blockwise(task, out_ind, *flat, new_axes=new_axes, dtype=_F64, concatenate=True,
                        token=f"chainrule-{mode}",
                        meta=np.empty((0,) * len(out_ind), dtype=_F64))


def _index(src, env: _Env, unique: int) -> tuple[int, ...]:
    """A source's blockwise index. A vector of sums gets an index of its own that the output
    lacks, so each task receives it whole (one chunk) and its keys stay deterministic, which
    an index of None (a computed dependency) would not give."""
    if isinstance(src, _Whole):
        return ()
    if isinstance(src, _Elem):
        return (env.ndim + 1 + unique,)
    return env.index(src.ndim)


def _leaf(tmp, i: int, ndim: int, chunks=None, new_axis=None):
    """Output ``i`` of a blockwise array whose blocks are tuples."""
    return tmp.map_blocks(operator.getitem, i, dtype=_F64, chunks=chunks, new_axis=new_axis,
                          meta=np.empty((0,) * ndim, dtype=_F64))


def _group_shape(env: _Env, over: list[str]) -> tuple[int, ...]:
    """The shape of ``sum(e, over=...)``: the broadcast of the over-arguments' shapes."""
    shapes = []
    for name in over:
        src = env.sources[name]
        shapes.append(() if isinstance(src, float | _Whole) else tuple(src.shape))
    return broadcast_shapes(*shapes)


def _reduce_stage(stage: _Stage, env: _Env) -> None:
    """Adds this stage's sums to ``env``: scalars as elements of one Dask vector of totals,
    ``over=`` sums as Dask arrays of their argument's shape."""
    nd = env.ndim
    shapes = [_group_shape(env, o) for o in stage.over]
    scalars = [i for i, s in enumerate(shapes) if not s]
    groups = [i for i, s in enumerate(shapes) if s]
    batch_ind = env.index(nd)
    if groups:
        tmp = _blockwise(stage.fn, env, "partials", batch_ind, (nd, tuple(map(bool, shapes))))
    if scalars:
        # Each block's partial sums, as a (1, ..., 1, K) block of a (blocks..., K) array.
        if groups:
            chunks = tuple((1,) * len(c) for c in env.chunks) + ((len(scalars),),)
            partials = _leaf(tmp, 0, nd + 1, chunks, [nd])
        else:
            partials = _blockwise(stage.fn, env, "vector", batch_ind + (nd,),
                                  (1,) * nd + (len(scalars),), {nd: len(scalars)})
        totals = partials.sum(axis=tuple(range(nd)))
        for k, i in enumerate(scalars):
            env.sources[stage.names[i]] = _Elem(totals, k)
    for j, i in enumerate(groups, start=1 if scalars else 0):
        env.sources[stage.names[i]] = _group_total(env, tmp, j, shapes[i])


def _group_total(env: _Env, tmp, j: int, shape: tuple[int, ...]):
    """The total of an ``over=`` sum: per-block partials (output ``j`` of ``tmp``), added over
    the dims its argument is broadcast along, in the shape of that argument."""
    padded = (1,) * (env.ndim - len(shape)) + shape
    chunks = tuple(c if n != 1 else (1,) * len(c) for c, n in zip(env.chunks, padded, strict=True))
    partials = _leaf(tmp, j, env.ndim, chunks)
    axes = tuple(d for d, n in enumerate(padded) if n == 1 and partials.numblocks[d] > 1)
    total = partials.sum(axis=axes, keepdims=True) if axes else partials
    return total.reshape(shape) if len(shape) != env.ndim else total


def _per_sample_outputs(plan: _Plan, env: _Env, results: list) -> None:
    if plan.samples is None:
        return
    nd = env.ndim
    tmp = _blockwise(plan.samples, env, "samples", env.index(nd))
    if len(plan.sample_index) == 1:
        results[plan.sample_index[0]] = tmp
        return
    for j, i in enumerate(plan.sample_index):
        results[i] = _leaf(tmp, j, nd)


def _reduced_outputs(plan: _Plan, env: _Env, results: list) -> None:
    scalar, grouped = [], []
    for i, used in plan.final_vars.items():
        one = all(isinstance(env.sources[n], float | _Whole | _Elem) for n in used)
        (scalar if one else grouped).append(i)
    if scalar:
        new = env.ndim  # an index no batch dim uses
        vec = _blockwise(plan.finish(tuple(scalar)), env, "vector", (new,), (len(scalar),),
                         {new: len(scalar)})
        for k, i in enumerate(scalar):
            results[i] = vec[k]
    for i in grouped:
        fn = plan.finish((i,))
        rank = max(env.sources[n].ndim for n in fn._names
                   if not isinstance(env.sources[n], float | _Whole | _Elem))
        results[i] = _blockwise(fn, env, "samples", env.index(rank))


# -- the task that runs on the workers --------------------------------------------------------


class _Task:
    """Calls a compiled function on one block's arguments; picklable, and cheap to send again.

    ``spec`` says where each input comes from: a float is a constant, an int ``p`` is the
    ``p``-th block argument, ``(p, k)`` is element ``k`` of it. ``mode`` shapes the result:
    ``samples`` (the outputs, a tuple if several), ``vector`` (all outputs in one float64
    array of shape ``layout``) or ``partials`` (a tuple: the scalar outputs as one array of
    shape (1, ..., 1, K), then each other output padded with leading 1s to the batch's rank).
    """

    __slots__ = ("fn", "layout", "mode", "spec", "threads")

    def __init__(self, fn: Function, spec: tuple, mode: str, layout, threads: int | None):
        self.fn, self.spec, self.mode, self.layout, self.threads = fn, spec, mode, layout, threads

    def __call__(self, *blocks):
        args = [_pick(s, blocks) for s in self.spec]
        threads = _task_threads(self.threads)
        with nullcontext() if threads is None else using_threads(threads):
            results = self.fn(*args)
        return _arrange(results, self.mode, self.layout)

    def __reduce__(self):
        return (_rebuild_task, (_encoded(self.fn)[0], len(self.fn.outputs), self.spec,
                                self.mode, self.layout, self.threads))

    def __dask_tokenize__(self):
        return ("chainrule-task", _encoded(self.fn)[1], self.spec, self.mode, self.layout,
                self.threads)


def _pick(spec, blocks):
    if isinstance(spec, float):
        return spec
    if isinstance(spec, tuple):
        return float(blocks[spec[0]][spec[1]])
    block = blocks[spec]
    if np.ndim(block) == 0:
        return float(block)
    # Blocks that arrive over the network can sit in unaligned buffers, which the core rejects
    # (as "not C-contiguous"); a copy is aligned.
    return block if block.flags.aligned else np.array(block)


def _arrange(results: tuple, mode: str, layout):
    if mode == "samples":
        return results[0] if len(results) == 1 else tuple(results)
    if mode == "vector":
        return np.array(results, dtype=_F64).reshape(layout)
    nd, grouped = layout
    scalars = [r for r, g in zip(results, grouped, strict=True) if not g]
    out = [np.array(scalars, dtype=_F64).reshape((1,) * nd + (len(scalars),))] if scalars else []
    for r, g in zip(results, grouped, strict=True):
        if g:
            out.append(r.reshape((1,) * (nd - r.ndim) + r.shape))
    return tuple(out)


_ENCODED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_REBUILT: OrderedDict = OrderedDict()
_REBUILT_SIZE = 64


def _encoded(fn: Function) -> tuple[bytes, str]:
    """The function's pickled graph and its digest, computed once per function."""
    found = _ENCODED.get(fn)
    if found is None:
        data = fn.__reduce__()[1][0]
        found = _ENCODED[fn] = (data, hashlib.sha256(data).hexdigest())
    return found


def _rebuild_task(data: bytes, n_outputs: int, spec, mode, layout, threads) -> _Task:
    # A worker gets the same functions every epoch of a training loop: compile each once.
    fn = _REBUILT.get(data)
    if fn is None:
        fn = _REBUILT[data] = load_function(data, n_outputs, False)
        if len(_REBUILT) > _REBUILT_SIZE:
            _REBUILT.popitem(last=False)
    else:
        _REBUILT.move_to_end(data)
    return _Task(fn, spec, mode, layout, threads)


# -- threads ----------------------------------------------------------------------------------


def _configured_threads() -> int | None:
    n = threads_per_task
    if n is None:
        import dask

        n = dask.config.get(CONFIG_KEY, None)
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise ValueError(f"threads per task must be None or a positive integer, not {n!r}")
    return n


def _task_threads(configured: int | None) -> int | None:
    """The thread count for a task; None leaves the process's setting alone."""
    if configured is not None:
        return configured
    # Dask's threaded scheduler and distributed workers run tasks on pool threads; the
    # multiprocessing scheduler and worker processes are children. Either way several tasks
    # run at once, each on a thread the cluster already counts.
    if threading.current_thread() is not threading.main_thread():
        return 1
    if multiprocessing.parent_process() is not None:
        return 1
    return None
