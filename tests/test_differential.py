"""Differential tests: random graphs (every op, shared parts, nested and partial reductions,
broadcasting, empty batches, special values) run by the fast engine against a slow reference
evaluator written here over the expression structure, and gradients against forward-mode dual
numbers; the generated program is also checked against its simplified graph.

The reference walks the graph iteratively, one NumPy operation per node, keeping each value in
"keepdims" form (an array that broadcasts to the batch). Rather than guess a tolerance, it
estimates each result's conditioning: it reruns itself several times with every op's result
perturbed by a few ulp (and every sum by its rounding-error bound), and the engine must land in
the spread of those runs widened by a small margin; where the runs disagree about nan-ness the
sample is ill-posed and skipped. All runs are seeded (Hypothesis derandomised)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chainrule as cr
from conftest import ARITY, EPS, NP, PARTIALS, apply_op

NAMES = ("x", "y", "z", "w")
VARS = cr.vars(" ".join(NAMES))
RUNS = 4  # perturbed reference runs per check
TAME = 1e40  # gradient checks use samples whose every intermediate stays below this

SETTINGS = settings(
    derandomize=True, deadline=None, database=None,
    suppress_health_check=list(HealthCheck),
)


# -- graphs as flat item lists ------------------------------------------------------------------
# An item is (kind, operand positions, payload): payload is the constant, the variable's name,
# or the `over` names of a sum. Operands always precede their users.


def items_of(roots: list[cr.Expr]) -> tuple[list, list[int]]:
    """The graph under ``roots`` (chainrule's own nodes, after simplification), children first,
    by an explicit-stack walk; and the roots' positions."""
    position: dict[int, int] = {}
    seen: set[int] = set()
    items: list = []
    stack = [(r, None) for r in roots]
    while stack:
        node, args = stack.pop()
        if args is not None:
            kind = node._kind
            payload = {"const": node.value, "var": node.name,
                       "sum": tuple(node._over)}.get(kind)
            position[node._id] = len(items)
            items.append((kind, tuple(position[a._id] for a in args), payload))
        elif node._id not in seen:
            seen.add(node._id)
            args = node._args
            stack.append((node, args))
            stack.extend((a, None) for a in args)
    return items, [position[r._id] for r in roots]


def classes(items) -> list:
    """Each item's shape class: "neutral", "sample", or the frozenset of `over` names."""
    out: list = []
    for kind, args, payload in items:
        if kind == "const":
            c = "neutral"
        elif kind in ("var", "persample"):
            c = "sample"
        elif kind in ("sum", "mean"):
            c = frozenset(payload or ())
        else:
            c = "neutral"
            for a in args:
                c = _join(c, out[a])
        out.append(c)
    return out


def _join(a, b):
    if "sample" in (a, b):
        return "sample"
    if a == "neutral":
        return b
    return a if b == "neutral" else a | b


class Batch:
    """Argument values, padded to the batch's rank."""

    def __init__(self, env: dict):
        self.env = env
        self.shape = np.broadcast_shapes(*(np.shape(v) for v in env.values()))
        self.ndim = len(self.shape)
        self.padded = {n: np.reshape(np.asarray(v, float), self.pad(np.shape(v)))
                       for n, v in env.items()}

    def pad(self, shape) -> tuple:
        return (1,) * (self.ndim - len(shape)) + tuple(shape)

    def summed_axes(self, over) -> tuple:
        """The axes a sum over ``over`` adds up: those along which no `over` variable varies."""
        return tuple(d for d in range(self.ndim)
                     if not any(self.padded[n].shape[d] != 1 for n in over))

    def out_shape(self, cls) -> tuple:
        if cls in ("neutral", "sample"):
            return self.shape
        return np.broadcast_shapes(*(np.shape(self.env[n]) for n in cls)) if cls else ()


def _noise(rng, shape, coherent):
    """Relative noise of up to 8 ulp: one value per array, or one per element."""
    return rng.uniform(-1, 1, size=() if coherent else shape) * 8 * EPS


def _perturb(rng, v, coherent, flip_zeros):
    v = v * (1.0 + _noise(rng, v.shape, coherent))
    if flip_zeros:  # the simplifier may change the sign of a zero (x + 0 -> x)
        v = np.where(v == 0, v * rng.choice([-1.0, 1.0], size=v.shape), v)
    return v


def _group_sum(batch: Batch, g, over, rng=None, coherent=False):
    axes = batch.summed_axes(over)
    full = np.broadcast_to(g, batch.shape + g.shape[batch.ndim:])
    total = np.sum(full, axis=axes, keepdims=True)
    if rng is not None:  # a different summation order changes the result by up to this much
        count = np.prod([batch.shape[d] for d in axes]) + 2
        bound = count * EPS * np.sum(np.abs(full), axis=axes, keepdims=True)
        total = total + _noise(rng, total.shape, coherent) / (8 * EPS) * bound
    return total


def evaluate(items, batch: Batch, rng=None, coherent=False, flip_zeros=False) -> list:
    """Every item's value (keepdims form); perturbed when ``rng`` is given."""
    values: list = []
    with np.errstate(all="ignore"):
        for kind, args, payload in items:
            a = [values[i] for i in args]
            if kind == "const":
                v = np.full((1,) * batch.ndim, payload)
            elif kind == "var":
                v = batch.padded[payload]
            elif kind in ("sum", "mean"):
                v = _group_sum(batch, a[0], payload or (), rng, coherent)
                if kind == "mean":
                    v = v / float(np.prod(batch.shape))
            else:
                v = np.asarray(NP[kind](*a), dtype=float)
            if rng is not None and kind not in ("const", "var"):
                v = _perturb(rng, v, coherent, flip_zeros)
            values.append(v)
    return values


def output(batch: Batch, value, cls):
    """What the engine returns for an item of this class: its value (keepdims form, or one
    per sample) at the output's shape, taking the first sample along dimensions it lacks."""
    shape = batch.out_shape(cls)
    padded = batch.pad(shape)
    value = np.asarray(value)
    first = tuple(slice(0, 1) if p == 1 and n != 1 else slice(None)
                  for p, n in zip(padded, value.shape, strict=True))
    return np.broadcast_to(value[first], padded).reshape(shape)


def reference_runs(items, roots, batch: Batch, seed: int, flip_zeros=False) -> list[list]:
    """Per root: the exact reference output, then RUNS perturbed ones."""
    cls = classes(items)
    runs = []
    for k in range(RUNS + 1):
        rng = np.random.default_rng([seed, k]) if k else None
        values = evaluate(items, batch, rng, coherent=k % 2 == 1, flip_zeros=flip_zeros)
        runs.append([output(batch, values[r], cls[r]) for r in roots])
    return [list(per_root) for per_root in zip(*runs, strict=True)]


# -- judging a result against the runs ------------------------------------------------------------

def within(got, runs, mask=None) -> np.ndarray:
    """Where ``got`` is acceptable: nan exactly where every run is nan; skipped where runs
    disagree about nan; otherwise inside the runs' range widened by 4 widths and 16 ulp."""
    r = np.stack([np.asarray(x, float) for x in runs])
    got = np.asarray(got, float)
    with np.errstate(all="ignore"):
        all_nan, any_nan = np.isnan(r).all(0), np.isnan(r).any(0)
        lo, hi = np.nanmin(np.where(any_nan, 0, r), 0), np.nanmax(np.where(any_nan, 0, r), 0)
        width = np.where(lo == hi, 0.0, hi - lo)
        slack = 4 * width + 16 * np.spacing(np.maximum(np.abs(lo), np.abs(hi)))
        slack = np.where(np.isfinite(slack), slack, np.inf)
        exact = (lo == hi) & np.isinf(lo)
        inside = np.where(exact, got == lo, (got >= lo - slack) & (got <= hi + slack))
        ok = np.where(all_nan, np.isnan(got), inside | (any_nan & ~all_nan))
    if mask is not None:
        ok = ok | ~mask
    return ok


def check(got, runs, what, mask=None):
    """Fails with ``what()`` and the offending samples unless ``got`` is :func:`within` the runs."""
    ok = within(got, runs, mask)
    if not ok.all():
        bad = ~ok
        others = [np.broadcast_to(x, bad.shape)[bad][:2] for x in runs[1:3]]
        pytest.fail(f"{what()}\n  at {np.argwhere(bad)[:5].tolist()}"
                    f"\n  got  {np.broadcast_to(got, bad.shape)[bad][:5]}"
                    f"\n  want {np.broadcast_to(runs[0], bad.shape)[bad][:5]}"
                    f" (perturbed runs {others})")


def check_type(got, batch: Batch, cls, what):
    """The engine's type and shape for an output of this class (``what()`` describes it)."""
    shape = batch.out_shape(cls)
    if shape == () and cls not in ("neutral", "sample"):
        assert type(got) is np.float64, f"{what()}: a reduced output is a numpy.float64: {got!r}"
    else:  # a per-sample output of an all-scalar call is a single numpy.float64 too
        assert isinstance(got, np.ndarray | np.float64), f"{what()}: {got!r}"
        assert got.dtype == np.float64, f"{what()}: {got!r}"
        assert np.shape(got) == shape, f"{what()}: shape {np.shape(got)}, expected {shape}"


# -- forward mode ---------------------------------------------------------------------------------

def dual(items, root: int, batch: Batch, wrt: str, rng=None, coherent=False):
    """d out_i / d wrt_{e(i)} for every sample i (e(i): the element of wrt's argument that sample
    i reads), by forward mode with one tangent per element of wrt's argument (one-hot seeds);
    and where that is tame (every value, partial and tangent finite and moderate)."""
    wshape = batch.padded[wrt].shape
    m = int(np.prod(wshape))
    element = np.arange(m).reshape(wshape)
    seed = (element[..., None] == np.arange(m)).astype(float)
    val, tan, tame = [], [], []
    with np.errstate(all="ignore"):
        for kind, args, payload in items:
            a = [val[i] for i in args]
            ok = np.ones((1,) * batch.ndim, bool)
            for i in args:
                ok = ok & tame[i]
            t = None
            if kind == "const":
                v = np.full((1,) * batch.ndim, payload)
            elif kind == "var":
                v = batch.padded[payload]
                t = seed if payload == wrt else None
            elif kind in ("sum", "mean"):
                over = payload or ()
                v = _group_sum(batch, a[0], over, rng, coherent)
                ok = np.all(np.broadcast_to(ok, batch.shape), axis=batch.summed_axes(over),
                            keepdims=True)
                if tan[args[0]] is not None:
                    t = _group_sum(batch, tan[args[0]], over, rng, coherent)
                if kind == "mean":
                    n = float(np.prod(batch.shape))
                    v, t = v / n, None if t is None else t / n
            else:
                v = np.asarray(NP[kind](*a), dtype=float)
                if rng is not None:  # before the partials: rules that reuse v inherit its error
                    v = _perturb(rng, v, coherent, False)
                for i, p in zip(args, PARTIALS[kind](*a, v), strict=True):
                    p = np.asarray(p, float)
                    if tan[i] is not None:
                        ok = ok & np.isfinite(p) & (np.abs(p) < TAME)
                        term = p[..., None] * tan[i]
                        t = term if t is None else t + term
            if rng is not None and kind not in ("const", "var"):
                v = v if kind in PARTIALS else _perturb(rng, v, coherent, False)
                t = None if t is None else _perturb(rng, t, coherent, False)
            ok = ok & np.isfinite(v) & (np.abs(v) < TAME)
            if t is not None:
                ok = ok & np.all(np.isfinite(t) & (np.abs(t) < TAME), axis=-1)
            val.append(v)
            tan.append(t)
            tame.append(ok)
        t = tan[root]
        if t is None:
            diag = np.zeros(batch.shape)
        else:
            full = np.broadcast_to(t, batch.shape + (m,))
            index = np.broadcast_to(element, batch.shape)[..., None]
            diag = np.take_along_axis(full, index, axis=-1)[..., 0]
    return diag, np.broadcast_to(tame[root], batch.shape)


def grad_class(cls, wrt: str):
    """The class of d(item)/d wrt: per sample for per-sample items, else the item's `over`
    set with wrt added (the gradient of a reduction has the shape of wrt's argument)."""
    return cls if cls in ("neutral", "sample") else cls | {wrt}


# -- random programs -------------------------------------------------------------------------------

SPECIAL = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e300, -1e300, 5e-324, -2.2e-308, 709.0, -745.0,
           1e16, 0.5, -1.0, 1.5707963267948966, 36.0, -40.0]
CONSTANTS = st.one_of(st.sampled_from([0.5, 1.0, 2.0, 3.0, -1.0, -2.5, 0.1, 10.0]),
                      st.sampled_from(SPECIAL))
SHAPES = [(), (1,), (3,), (2, 1), (1, 3), (2, 3), (4,), (1, 1, 3), (0,), (2, 0)]
ELEMENTS = st.one_of(st.floats(-3, 3), st.floats(-3, 3), st.floats(-3, 3),
                     st.sampled_from(SPECIAL), st.floats(allow_nan=True, allow_infinity=True))


@st.composite
def environments(draw):
    """Arguments whose shapes broadcast together (re-drawn until they do), as floats, 0-d
    arrays, NumPy scalars or arrays."""
    while True:
        shapes = [draw(st.sampled_from(SHAPES[:8] if draw(st.integers(0, 9)) else SHAPES))
                  for _ in NAMES]
        try:
            np.broadcast_shapes(*shapes)
            break
        except ValueError:
            continue
    env = {}
    for name, shape in zip(NAMES, shapes, strict=True):
        size = int(np.prod(shape))
        data = np.array(draw(st.lists(ELEMENTS, min_size=size, max_size=size)), float)
        value = data.reshape(shape)
        if shape == ():
            form = draw(st.sampled_from([float, np.float64, np.asarray]))
            value = form(value)
        env[name] = value
    return env


OP_STEP = st.tuples(st.sampled_from(sorted(ARITY)), st.integers(0, 63), st.integers(0, 63))
STEP = st.one_of(  # mostly ops; a constant, a sum or a mean now and then
    OP_STEP, OP_STEP, OP_STEP, OP_STEP,
    st.tuples(st.just("const"), CONSTANTS),
    st.tuples(st.just("sum"), st.integers(0, 63), st.sets(st.sampled_from(NAMES), max_size=2)),
    st.tuples(st.just("mean"), st.integers(0, 63)),
)


def program(steps) -> list:
    """Items for a drawn step list: the variables, then each step on earlier items (operands
    picked modulo the count, so later steps reuse earlier results: a DAG, not a tree)."""
    items: list = [("var", (), n) for n in NAMES]
    for step in steps:
        kind = step[0]
        if kind == "const":
            items.append(("const", (), step[1]))
        elif kind == "sum":
            items.append(("sum", (step[1] % len(items),), tuple(sorted(step[2]))))
        elif kind == "mean":
            items.append(("mean", (step[1] % len(items),), None))
        else:
            args = (step[1] % len(items), step[2] % len(items))[: ARITY[kind]]
            items.append((kind, args, None))
    return items


def build(items) -> list[cr.Expr]:
    """The chainrule expression of every item, through the public API (operators, functions)."""
    exprs: list[cr.Expr] = []
    for kind, args, payload in items:
        a = [exprs[i] for i in args]
        if kind == "const":
            e = cr.expr.as_expr(payload)
        elif kind == "var":
            e = cr.var(payload)
        elif kind == "sum":
            e = cr.sum(a[0], over=list(payload)) if payload else cr.sum(a[0])
        elif kind == "mean":
            e = cr.mean(a[0])
        else:
            e = apply_op(kind, *a)
        exprs.append(e)
    return exprs


def describe(exprs, env) -> str:
    shapes = {n: np.shape(v) for n, v in env.items()}
    return "\n".join(str(e) for e in exprs) + f"\nwith {shapes}: {env}"


def assert_values(outputs: list[cr.Expr], env: dict, seed: int) -> list:
    """Compiles ``outputs`` of all variables, calls it on ``env``, and checks each result's
    type, shape and value against the reference; returns the reference runs."""
    batch = Batch(env)
    graph, roots = items_of(outputs)
    cls = classes(graph)
    want = reference_runs(graph, roots, batch, seed)
    got = cr.compile(outputs, inputs=list(VARS))(*env.values())
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        def what(k=k):
            return f"output {k} of\n{describe(outputs, env)}"

        check_type(g, batch, cls[roots[k]], what)
        check(g, w, what)
    return want


def assert_gradients(f: cr.Expr, env: dict, seed: int, second: str | None = None):
    """grad(f, [x, y, z, w]) and grad(f, v) alone, for every variable v, against forward mode
    over f's graph (element by element: per sample for a per-sample f, the argument's shape
    for a reduced one); with ``second``, also grad(grad(f, x), second) against forward mode
    over the first derivative's graph."""
    batch = Batch(env)
    grads = cr.grad(f, list(VARS))
    cases = [(f, name, d) for name, d in zip(NAMES, grads, strict=True)]
    cases += [(f, name, cr.grad(f, v)) for name, v in zip(NAMES, VARS, strict=True)]
    if second is not None:
        cases.append((grads[0], second, cr.grad(grads[0], VARS[NAMES.index(second)])))
    got = cr.compile([d for _, _, d in cases], inputs=list(VARS))(*env.values())
    for (of, name, d), g in zip(cases, got, strict=True):
        graph, (root,) = items_of([of])
        of_cls = classes(graph)[root]
        out_cls = grad_class(of_cls, name)
        def what(of=of, name=name, d=d):
            return f"d/d{name} = {d}\nof {describe([of], env)}"

        if d.value is not None:
            pass  # constant gradients' shapes are test_grad's business
        elif isinstance(of_cls, frozenset) and of_cls:
            # A partial sum's gradient: DESIGN.md fixes no shape; it must hold the variable's
            # argument's shape and broadcast to the partial sum's shape with it.
            full = batch.out_shape(out_cls)
            assert np.broadcast_shapes(np.shape(g), full) == full, what()
            assert np.broadcast_shapes(np.shape(g), np.shape(env[name])) == np.shape(g), what()
        elif out_cls != "neutral":  # DESIGN.md gives a constant's derivative no shape
            check_type(g, batch, out_cls, what)
        if 0 in batch.shape:
            continue
        runs, tame = [], None
        for k in range(RUNS // 2 + 1):
            rng = np.random.default_rng([seed, k]) if k else None
            diag, ok = dual(graph, root, batch, name, rng, coherent=k % 2 == 1)
            runs.append(output(batch, diag, out_cls))
            tame = ok if tame is None else tame & ok
        g = np.full(runs[0].shape, d.value) if d.value is not None else g
        check(g, runs, what, mask=output(batch, tame, out_cls))


# -- the tests ------------------------------------------------------------------------------------

@settings(SETTINGS, max_examples=700)
@given(st.lists(STEP, min_size=1, max_size=14), st.integers(0, 30), environments())
def test_values_match_reference(steps, pick, env):
    """Compiled values of every node of the program (so each op is seen directly, not only
    through what follows it) equal the reference on chainrule's graph; and the graph
    (simplified) equals the reference on the program as generated."""
    items = program(steps)
    exprs = build(items)
    outputs = [exprs[-1], cr.mean(exprs[pick % len(exprs)]), *exprs[len(NAMES):-1]]
    want = assert_values(outputs, env, seed=len(steps))
    # The simplifier keeps values (up to the sign of a zero, which `x + 0 -> x` may change).
    program_runs = reference_runs(items, [len(items) - 1], Batch(env), seed=1, flip_zeros=True)
    check(want[0][0], program_runs[0],
          lambda: f"simplified graph against the program\n{describe(outputs, env)}",
          mask=_where_no_difference_cancels(items, exprs, env, np.shape(program_runs[0][0])))


def _where_no_difference_cancels(items, exprs, env, shape):
    """Samples where the README's one value-changing rule, `x - x -> 0` (and `x + -x`), cannot
    have changed the program's value: every operand of such a difference is finite there.
    Where one is inf or nan the program's nan may be the graph's 0, as documented."""
    operands = [args[0] for kind, args, _ in items
                if (kind == "sub" and exprs[args[0]] == exprs[args[1]])
                or (kind == "add" and exprs[args[1]] == -exprs[args[0]])]
    if not operands:
        return None
    finite = np.ones(shape, dtype=bool)
    for runs in reference_runs(items, operands, Batch(env), seed=1):
        value = np.asarray(runs[0])
        try:
            finite &= np.broadcast_to(np.isfinite(value), shape)
        except ValueError:  # the difference is under a reduction: all its samples or none
            finite &= bool(np.isfinite(value).all())
    return finite


@settings(SETTINGS, max_examples=400)
@given(st.lists(STEP, min_size=1, max_size=10), st.integers(0, 30), environments(),
       st.sampled_from(NAMES))
def test_gradients_match_dual_numbers(steps, pick, env, second):
    """First derivatives with respect to every variable, and one second derivative, of the
    last op of the program and of another one picked at random."""
    items = program(steps)
    exprs = build(items)
    ops = [i for i, item in enumerate(items) if item[0] in ARITY] or [len(items) - 1]
    for i in (ops[-1], ops[pick % len(ops)]):
        assert_gradients(exprs[i], env, seed=len(steps), second=second)


ENV = {"x": np.array([0.5, -1.25, 2.0]), "y": np.array([[0.75], [-0.5]]), "z": 1.5,
       "w": np.array([[1.0, 2.0, -3.0]])}
EMPTY = [{**ENV, "z": np.zeros((0, 1, 1))}, {**ENV, "x": np.zeros(0), "w": np.zeros((1, 0))},
         {**ENV, "y": np.ones((0, 1))}]
NESTED = ["sum(sum(x))", "mean(mean(x) * 2)", "sum(x * sum(x))", "sum(x) * sum(x)",
          "sum(sin(sum(x * y, over=y)) * w)", "x - mean(x)", "mean((x - mean(x)) ** 2)",
          "sum(x * mean(w * y), over=w)", "exp(mean(x * y)) * y", "w * mean(x)",
          "sum(x, over=y) * z", "mean(sum(x, over=w) * w) + mean(y)", "sum(sum(x), over=z)",
          "sum(mean(x) * x, over=z)", "sum(x * mean(x * y), over=y)",
          "sum(exp(mean(w * x)) * y + x, over=x)",
          "sum(sum(x * w, over=w) * y, over=y)", "sum(x * sum(y * mean(x)), over=(y, z))"]


@pytest.mark.parametrize("env", EMPTY, ids=["z0x1x1", "x0-w1x0", "y0x1"])
@pytest.mark.parametrize("text", ["sin(x) * y + z", "sum(sin(x) * y)", "mean(x * y) + z",
                                  "x - mean(x)", "sum(x * y, over=y)", "sum(z, over=(x, w))",
                                  "sum(mean(x))"])
def test_empty_batches(text, env):
    """A batch with no samples: per-sample outputs are empty arrays of the broadcast shape,
    sums are 0 (also of a value that is nan for want of samples), means nan, partial sums
    zeros of their shape; derivatives alike."""
    f = cr.parse(text)
    assert_values([f], env, seed=0)
    assert_gradients(f, env, seed=0)


@pytest.mark.parametrize("text", NESTED)
def test_reductions_inside_reductions(text):
    """Values and first and second derivatives where reductions feed reductions and
    per-sample work, on broadcast arguments."""
    f = cr.parse(text)
    assert_values([f, cr.sum(f, over="y"), cr.mean(f * f)], ENV, seed=1)
    assert_gradients(f, ENV, seed=1, second="y")


PARTIAL_TEXTS = ["sum(sum(x * y, over=y) * x, over=z)", "sum(sum(x * w, over=w) * y, over=y)",
                 "sum(x * sum(y * mean(x)), over=(y, z))",
                 "sum(sin(sum(x * y, over=w)) * w, over=y)",
                 "sum(sum(x * mean(x * w), over=y) * y, over=w)",
                 "sum(sum(w * y, over=x) * sum(x * z, over=y), over=z)"]
PARTIAL_ENVS = [
    ENV,
    {**ENV, "z": np.array([[[0.5]], [[2.0]]]), "y": np.array([[0.75], [-0.5]])},
    {"x": np.array([0.5, -1.25, 2.0]), "y": np.array([[0.75, 1.5, -1.0], [-0.5, 0.25, 1.0]]),
     "z": np.array([[1.5], [-2.0]]), "w": 0.5},
]


@pytest.mark.parametrize("text", PARTIAL_TEXTS)
@pytest.mark.parametrize("env", PARTIAL_ENVS, ids=["env", "z2x1x1", "grid"])
def test_partial_sums_of_partial_sums(text, env):
    """Partial sums whose groups span several elements of the variable, over partial sums
    grouped another way, also holding full reductions: values and first and second
    derivatives against forward mode, on batches where the groupings differ. A second
    derivative may nest three spanning groupings, which is refused with a clear error."""
    f = cr.parse(text)
    assert_values([f], env, seed=3)
    try:
        cr.grad(cr.grad(f, cr.var("x")), cr.var("w"))
    except cr.ChainruleError as e:
        assert str(e).startswith("not supported: the derivative with respect to w"), e
        assert_gradients(f, env, seed=3)
    else:
        assert_gradients(f, env, seed=3, second="w")


def test_three_spanning_groupings_are_refused():
    """Three nested partial sums that each span several elements of x: a contraction no sum
    over one grouping expresses; it raises rather than return a wrong number."""
    f = cr.parse("sum(sum(sum(x * y, over=y) * x, over=z) * x, over=w)")
    with pytest.raises(cr.ChainruleError, match=r"respect to x of sum\(\.\.\., over=w\).*over=z"):
        cr.grad(f, cr.var("x"))
    assert_gradients(cr.parse("sum(sum(sum(x * y, over=y) * x, over=z) * x, over=x)"), ENV, seed=2)


LARGE = [((3, 700), [(3, 1), (1, 700), (700,), (3, 700)]),
         ((9, 1000), [(9, 1), (1000,), (9, 1000), ()]),
         ((2, 3, 1500), [(3, 1), (2, 1, 1500), (2, 3, 1500), (1, 1, 1)])]


@settings(SETTINGS, max_examples=100)
@given(st.lists(STEP, min_size=1, max_size=10), st.sampled_from(LARGE), st.integers(0, 2**32 - 1))
def test_large_broadcast_batches(steps, case, seed):
    """Batches of several chunks (and of enough chunks for the thread pool) with broadcast and
    partial arguments: values and gradients equal the reference, for 1 and 2 threads bitwise."""
    _, shapes = case
    rng = np.random.default_rng(seed)
    env = {n: rng.uniform(-3, 3, size=s) for n, s in zip(NAMES, shapes, strict=True)}
    shapes = dict(zip(NAMES, shapes, strict=True))
    items = program(steps)
    exprs = build(items)
    f = exprs[[i for i, item in enumerate(items) if item[0] in ARITY or i == len(items) - 1][-1]]
    outputs = [f, cr.sum(f, over="x"), *cr.grad(f, list(VARS[:2])), *exprs[len(NAMES):]]
    batch = Batch(env)
    graph, roots = items_of(outputs)
    want = reference_runs(graph, roots, batch, seed=seed)
    fn = cr.compile(outputs, inputs=list(VARS))
    before = cr.get_num_threads()
    try:
        cr.set_num_threads(1)
        one = fn(*env.values())
        cr.set_num_threads(2)
        two = fn(*env.values())
    finally:
        cr.set_num_threads(before)
    for k, (a, b, w) in enumerate(zip(one, two, want, strict=True)):
        def what(k=k):
            return f"output {k} of {describe(outputs, shapes)}"

        assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), f"threads differ: {what()}"
        check(a, w, what)


# -- every op at every special value, through both evaluation paths ------------------------------

GRID = np.array(SPECIAL + [-0.5, 2.0, 3.0, -3.0, 1e-300, 1e-310, 88.0, 1e22, 2.0**60, -7.5, 0.1])


@pytest.mark.parametrize("kind", sorted(ARITY))
def test_every_op_at_special_values(kind):
    """Each op over a grid of special values (all pairs for binary ops), as arrays (vectorised
    kernels) and as scalars (scalar code): within 4 ulp of NumPy, nan where NumPy is nan, and
    the two paths agree."""
    a, b = (np.meshgrid(GRID, GRID) if ARITY[kind] == 2 else (GRID, GRID))
    a, b = a.ravel(), b.ravel()
    e = build([("var", (), "x"), ("var", (), "y"), (kind, (0, 1)[: ARITY[kind]], None)])[-1]
    fn = cr.compile(e, inputs=VARS[:2])
    with np.errstate(all="ignore"):
        want = NP[kind](*(a, b)[: ARITY[kind]])
    got = fn(a, b)
    scalar = np.array([fn(float(p), float(q)) for p, q in zip(a, b, strict=True)])
    for name, values in (("array", got), ("scalar", scalar)):
        with np.errstate(all="ignore"):
            err = np.abs(values - want) / np.spacing(np.abs(want))
        ok = (np.isnan(want) & np.isnan(values)) | (values == want) | (err <= 4)
        assert ok.all(), (f"{kind} ({name} path) at {a[~ok]}, {b[~ok]}: "
                          f"got {values[~ok]}, NumPy {want[~ok]}")
