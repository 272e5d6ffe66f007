"""Dense sigmoid networks (W8 and 784-30-10): chainrule against hand-written NumPy and JAX.

Usage::

    python benches/dense.py [--quick] [--workloads a,b,c,d] [--repeat K] [--out FILE]

Workloads (issue 20, item 4), all float64:

- (a) W8: the 64-30-10 sigmoid network on N = 1,797 samples (scikit-learn's 8x8 digits,
  grey levels / 16 and one-hot targets; seeded synthetic data of the same shape when
  scikit-learn is not importable): one full-batch value and gradient.
- (b) W8: one epoch of batch-10 SGD, ``theta := theta - LR * dJ/dtheta``, over one seeded
  permutation of the samples; the last N % 10 samples of it are left out, so every step has
  exactly 10 (``lax.scan`` needs equal batches).
- (c) 784-30-10 on 10,000 seeded synthetic samples: one value and gradient.
- (d) the same network's first result, build + grad + compile + first call, each library in
  fresh processes, against JAX's jit + first call.

The loss everywhere is J = (1/N) sum_n sum_k (y_nk - yhat_nk)**2: the mean over samples of
the sum over the 10 outputs of the squared error, as DESIGN.md's array example writes it,
``cr.mean(((y - yhat) ** 2).sum())``. (DESIGN.md's W8 line says "mean over samples and
outputs", which would be this / 10; the timing is the same.)

Implementations: NumPy with hand-written backprop (matmuls via ``@``, in-place elementwise
work), whose gradient is verified by complex-step differentiation first; JAX
``jit(value_and_grad)`` per step and ``lax.scan`` over an epoch; chainrule with one scalar
variable per weight, as ``chainrule.nn.SigmoidNetwork`` builds networks today
("scalar-vars"); and chainrule with array variables (``cr.var("W1", shape=(30, 64))``,
DESIGN.md's "Arrays of expressions"), skipped with a note while ``cr.ExprArray`` does not
exist. "numpy matmuls only" times just the five matrix products of NumPy's value and
gradient, on the same operands: the issue's yardstick for (a).

Every implementation's results are checked against NumPy's (rtol 1e-9, relative to each
output's largest magnitude) before anything is timed; a disagreement marks the row MISMATCH
and the script exits with 1. Timings are medians of interleaved rounds in one process.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402 - timing, checking and formatting helpers live there

HIDDEN, OUTPUTS = 30, 10
BIG_INPUTS = 784
BATCH = 10
# Nielsen's digits network trains with eta = 3 on C = (1/2N) sum ||y - a||^2; our J has no
# 1/2, so the same steps take half the rate.
LR = 1.5
SEED = run.SEED
ALL_WORKLOADS = ("a", "b", "c", "d")
ARRAYS_MISSING = "skipped: chainrule has no cr.ExprArray yet (array variables, issue 20)"
CHILD_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class Sizes:
    """Problem sizes and repeat counts for one run mode."""

    n_big: int  # samples of the 784-30-10 workloads (c) and (d)
    repeat: int  # interleaved rounds per workload
    children: int  # fresh processes per library in (d)
    round_s: float  # a timed run repeats a call until it is at least this long


FULL = Sizes(10_000, 11, 3, 0.02)
QUICK = Sizes(1_000, 3, 1, 0.005)


@dataclass
class Net:
    """A data set and the network's parameters at which every library is evaluated."""

    X: np.ndarray  # (N, n_inputs)
    Y: np.ndarray  # (N, 10), one-hot
    params: tuple  # W1 (30, n_in), b1 (30,), W2 (10, 30), b2 (10,)
    source: str

    @property
    def n_inputs(self):
        return self.X.shape[1]


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


def one_hot(labels):
    Y = np.zeros((len(labels), OUTPUTS))
    Y[np.arange(len(labels)), labels] = 1.0
    return Y


def init_params(n_in, rng):
    # N(0, 1/fan_in) weights keep pre-activations where the sigmoid bends (as nn.py does);
    # small nonzero biases make the bias gradients differ from a plain column sum of zeros.
    return (rng.normal(0.0, 1.0 / math.sqrt(n_in), (HIDDEN, n_in)), rng.normal(0.0, 0.1, HIDDEN),
            rng.normal(0.0, 1.0 / math.sqrt(HIDDEN), (OUTPUTS, HIDDEN)),
            rng.normal(0.0, 0.1, OUTPUTS))


def digits_net():
    """W8's data: the 8x8 digits if scikit-learn is there, else seeded look-alikes."""
    rng = np.random.default_rng(SEED + 8)
    try:
        from sklearn.datasets import load_digits

        digits = load_digits()
        X, labels = digits.data / 16.0, digits.target
        source = "scikit-learn's 8x8 digits (1,797 x 64, grey levels / 16)"
    except ImportError:
        X, labels = rng.integers(0, 17, (1_797, 64)) / 16.0, rng.integers(0, 10, 1_797)
        source = "synthetic 1,797 x 64 (scikit-learn not installed), seeded"
    return Net(np.ascontiguousarray(X, dtype=np.float64), one_hot(labels), init_params(64, rng),
               source)


def big_net(n):
    rng = np.random.default_rng(SEED + 784)
    X = rng.random((n, BIG_INPUTS))
    return Net(X, one_hot(rng.integers(0, 10, n)), init_params(BIG_INPUTS, rng),
               f"synthetic {n:,} x {BIG_INPUTS}, uniform [0, 1), seeded")


def epoch_order(n):
    """One seeded shuffle, cut to whole batches (shared by every implementation)."""
    order = np.random.default_rng(SEED + 10).permutation(n)
    return order[: n // BATCH * BATCH]


# --------------------------------------------------------------------------
# NumPy: the reference, hand-written backprop
# --------------------------------------------------------------------------


def sigmoid_(z):
    """1 / (1 + exp(-z)) in place: no temporaries beyond z itself."""
    np.negative(z, out=z)
    np.exp(z, out=z)
    z += 1.0
    return np.reciprocal(z, out=z)


def numpy_value_grad(X, Y, W1, b1, W2, b2):
    """J and dJ/d(W1, b1, W2, b2) for J = (1/N) sum (Y - sigmoid(...))**2."""
    n = len(X)
    A1 = X @ W1.T
    A1 += b1
    sigmoid_(A1)
    A2 = A1 @ W2.T
    A2 += b2
    sigmoid_(A2)
    E = np.subtract(A2, Y)
    J = np.vdot(E, E) / n
    # dJ/dZ2 = (2/N) E A2 (1 - A2), built in E's buffer.
    D2 = E
    D2 *= A2
    np.subtract(1.0, A2, out=A2)
    D2 *= A2
    D2 *= 2.0 / n
    gW2, gb2 = D2.T @ A1, D2.sum(axis=0)
    D1 = D2 @ W2
    D1 *= A1
    np.subtract(1.0, A1, out=A1)
    D1 *= A1
    return J, D1.T @ X, D1.sum(axis=0), gW2, gb2


def numpy_loss_plain(X, Y, W1, b1, W2, b2):
    """J written plainly, so that it also runs on complex parameters (complex step)."""
    A1 = 1.0 / (1.0 + np.exp(-(X @ W1.T + b1)))
    A2 = 1.0 / (1.0 + np.exp(-(A1 @ W2.T + b2)))
    E = A2 - Y
    return (E * E).sum() / len(X)


def verify_numpy_gradient(net, directions=2, samples=300):
    """Raise run.Mismatch unless NumPy's backprop equals complex-step derivatives of J.

    The complex step h = 1e-30 gives the directional derivative exact to rounding, so a
    wrong backprop formula cannot serve as the reference.
    """
    X, Y = net.X[:samples], net.Y[:samples]
    _, *grads = numpy_value_grad(X, Y, *net.params)
    rng = np.random.default_rng(SEED + 1)
    for d in range(directions):
        v = [rng.normal(size=p.shape) for p in net.params]
        h = 1e-30
        shifted = [p + 1j * h * vp for p, vp in zip(net.params, v, strict=True)]
        want = numpy_loss_plain(X, Y, *shifted).imag / h
        got = sum(float(np.vdot(g, vp)) for g, vp in zip(grads, v, strict=True))
        scale = sum(float(np.linalg.norm(g) * np.linalg.norm(vp))
                    for g, vp in zip(grads, v, strict=True))
        if abs(got - want) > run.RTOL * scale:
            raise run.Mismatch(f"NumPy backprop ({net.source}), direction {d}: gradient . v = "
                               f"{got!r}, complex step {want!r}")


def matmul_operands(net):
    """The five products of numpy_value_grad, as (a, b) pairs with the same shapes."""
    X, (W1, _, W2, _) = net.X, net.params
    n = len(X)
    A1 = np.random.default_rng(SEED).random((n, HIDDEN))
    D2 = np.random.default_rng(SEED + 2).random((n, OUTPUTS))
    return [(X, W1.T), (A1, W2.T), (D2.T, A1), (D2, W2), (A1.T, X)]


def build_numpy(mods, net):
    return lambda: numpy_value_grad(net.X, net.Y, *net.params)


def build_numpy_matmuls(mods, net):
    pairs = matmul_operands(net)
    return lambda: [a @ b for a, b in pairs]


# --------------------------------------------------------------------------
# JAX
# --------------------------------------------------------------------------


def jax_loss(jax):
    jnp = jax.numpy

    def loss(params, X, Y):
        W1, b1, W2, b2 = params
        A1 = jax.nn.sigmoid(X @ W1.T + b1)
        A2 = jax.nn.sigmoid(A1 @ W2.T + b2)
        return jnp.sum((A2 - Y) ** 2) / X.shape[0]

    return loss


def flat_jax(jax, result):
    value, grads = jax.block_until_ready(result)
    return (value, *grads)


def build_jax(mods, net):
    jax = mods["jax"]
    step = jax.jit(jax.value_and_grad(jax_loss(jax)))
    # Placed on the device once, outside the timing (as run.py's anchors).
    params, X, Y = jax.device_put((net.params, net.X, net.Y))
    return lambda: flat_jax(jax, step(params, X, Y))


def jax_update(jax):
    grad_fn = jax.value_and_grad(jax_loss(jax))

    def update(params, X, Y):
        _, grads = grad_fn(params, X, Y)
        return tuple(p - LR * g for p, g in zip(params, grads, strict=True))

    return update


def build_jax_epoch(mods, net):
    jax = mods["jax"]
    update = jax.jit(jax_update(jax))
    order = epoch_order(len(net.X))

    def epoch():
        Xs, Ys = net.X[order], net.Y[order]
        params = net.params
        # Batches are NumPy slices, as the other loops take them (run.py's W10 measured
        # slicing a device array at ~100 µs a step).
        for s in range(0, len(order), BATCH):
            params = update(params, Xs[s:s + BATCH], Ys[s:s + BATCH])
        return jax.block_until_ready(params)

    return epoch


def build_jax_scan(mods, net):
    jax = mods["jax"]
    update = jax_update(jax)
    order = epoch_order(len(net.X))

    @jax.jit
    def train(params, Xb, Yb):
        return jax.lax.scan(lambda p, batch: (update(p, *batch), None), params, (Xb, Yb))[0]

    def epoch():
        Xb = net.X[order].reshape(-1, BATCH, net.n_inputs)
        Yb = net.Y[order].reshape(-1, BATCH, OUTPUTS)
        return jax.block_until_ready(train(net.params, Xb, Yb))

    return epoch


# --------------------------------------------------------------------------
# chainrule
# --------------------------------------------------------------------------


class ScalarVarsNet:
    """The network with one scalar variable per weight, built as nn.SigmoidNetwork builds
    its units today (same names, W{l}_{j}_{i} and b{l}_{j}; nn has one output, this has
    10, so it is built here): one argument per input column, target column and parameter."""

    def __init__(self, cr, n_in):
        xs = cr.vars([f"x{i}" for i in range(n_in)])
        ys = cr.vars([f"y{k}" for k in range(OUTPUTS)])
        self.W1 = [[cr.var(f"W1_{j}_{i}") for i in range(n_in)] for j in range(HIDDEN)]
        self.b1 = [cr.var(f"b1_{j}") for j in range(HIDDEN)]
        self.W2 = [[cr.var(f"W2_{k}_{j}") for j in range(HIDDEN)] for k in range(OUTPUTS)]
        self.b2 = [cr.var(f"b2_{k}") for k in range(OUTPUTS)]
        h = [self.unit(cr, w, xs, b) for w, b in zip(self.W1, self.b1, strict=True)]
        out = [self.unit(cr, w, h, b) for w, b in zip(self.W2, self.b2, strict=True)]
        err = None
        for y, o in zip(ys, out, strict=True):
            err = (y - o) ** 2 if err is None else err + (y - o) ** 2
        self.loss = cr.mean(err)
        self.data_vars = [*xs, *ys]
        self.param_vars = [*(w for row in self.W1 for w in row), *self.b1,
                           *(w for row in self.W2 for w in row), *self.b2]

    @staticmethod
    def unit(cr, weights, inputs, bias):
        z = None
        for w, a in zip(weights, inputs, strict=True):
            z = w * a if z is None else z + w * a
        return cr.sigmoid(z + bias)

    def compile(self, cr):
        grads = cr.grad(self.loss, self.param_vars)
        return cr.compile([self.loss, *grads], inputs=[*self.data_vars, *self.param_vars])


def flat_params(params):
    return np.concatenate([np.ravel(p) for p in params])


def unflat_params(theta, like):
    out, start = [], 0
    for p in like:
        out.append(theta[start:start + p.size].reshape(p.shape))
        start += p.size
    return out


def columns(X, Y):
    # Contiguous once, as nn.SigmoidNetwork.fit prepares them, not per call.
    return [np.ascontiguousarray(X[:, i]) for i in range(X.shape[1])] + \
        [np.ascontiguousarray(Y[:, k]) for k in range(OUTPUTS)]


def scalar_vars_call(fn, cols, params):
    """One value + gradient from arrays to arrays: the parameters go in as 2,000-odd floats
    and the gradient comes back as as many, packed into the parameters' shapes."""
    out = fn(*cols, *flat_params(params).tolist())
    return (out[0], *unflat_params(np.array(out[1:]), params))


def build_scalar_vars(mods, net):
    fn = ScalarVarsNet(mods["chainrule"], net.n_inputs).compile(mods["chainrule"])
    cols = columns(net.X, net.Y)
    return lambda: scalar_vars_call(fn, cols, net.params)


def build_scalar_vars_epoch(mods, net):
    fn = ScalarVarsNet(mods["chainrule"], net.n_inputs).compile(mods["chainrule"])
    cols, order = columns(net.X, net.Y), epoch_order(len(net.X))

    def epoch():
        shuffled = [c[order] for c in cols]
        theta = flat_params(net.params)
        for s in range(0, len(order), BATCH):
            _, *grads = fn(*[c[s:s + BATCH] for c in shuffled], *theta.tolist())
            theta = theta - LR * np.array(grads)
        return unflat_params(theta, net.params)

    return epoch


def has_arrays(cr):
    return hasattr(cr, "ExprArray")


def arrays_loss(cr, n_in):
    """(J, parameters, inputs) with array variables, written against DESIGN.md's API."""
    x, y = cr.var("x", shape=(n_in,)), cr.var("y", shape=(OUTPUTS,))
    W1, b1 = cr.var("W1", shape=(HIDDEN, n_in)), cr.var("b1", shape=(HIDDEN,))
    W2, b2 = cr.var("W2", shape=(OUTPUTS, HIDDEN)), cr.var("b2", shape=(OUTPUTS,))
    yhat = cr.sigmoid(W2 @ cr.sigmoid(W1 @ x + b1) + b2)
    return cr.mean(((y - yhat) ** 2).sum()), [W1, b1, W2, b2], [x, y, W1, b1, W2, b2]


def arrays_function(cr, n_in):
    J, params, inputs = arrays_loss(cr, n_in)
    return cr.compile([J, *cr.grad(J, params)], inputs=inputs)


def build_arrays(mods, net):
    fn = arrays_function(mods["chainrule arrays"], net.n_inputs)
    return lambda: fn(net.X, net.Y, *net.params)


def build_arrays_epoch(mods, net):
    fn = arrays_function(mods["chainrule arrays"], net.n_inputs)
    order = epoch_order(len(net.X))

    def epoch():
        Xs, Ys = net.X[order], net.Y[order]
        params = net.params
        for s in range(0, len(order), BATCH):
            _, *grads = fn(Xs[s:s + BATCH], Ys[s:s + BATCH], *params)
            params = [p - LR * g for p, g in zip(params, grads, strict=True)]
        return params

    return epoch


def numpy_epoch(net):
    order = epoch_order(len(net.X))
    Xs, Ys = net.X[order], net.Y[order]
    params = [p.copy() for p in net.params]
    for s in range(0, len(order), BATCH):
        _, *grads = numpy_value_grad(Xs[s:s + BATCH], Ys[s:s + BATCH], *params)
        for p, g in zip(params, grads, strict=True):
            p -= LR * g
    return params


def build_numpy_epoch(mods, net):
    return lambda: numpy_epoch(net)


# (row name, library it needs, builder); the matmuls alone are timed, not checked. The "1 BLAS
# thread" rows are there because OpenBLAS's threads wait for each other by spinning: on the
# shared 2-core machine at load 5-9, NumPy's W8 value + gradient took a median of 195 ms with
# 2 BLAS threads against a minimum of 1.05 ms, and a ratio to that says nothing.
VALUE_GRAD_ROWS = (
    ("numpy", "numpy", build_numpy),
    ("numpy, 1 BLAS thread", "numpy 1 BLAS thread", build_numpy),
    ("numpy matmuls only", "numpy", build_numpy_matmuls),
    ("numpy matmuls only, 1 BLAS thread", "numpy 1 BLAS thread", build_numpy_matmuls),
    ("jax jit(value_and_grad)", "jax", build_jax),
    ("chainrule scalar-vars", "chainrule", build_scalar_vars),
    ("chainrule arrays", "chainrule arrays", build_arrays),
)
EPOCH_ROWS = (
    ("numpy", "numpy", build_numpy_epoch),
    ("numpy, 1 BLAS thread", "numpy 1 BLAS thread", build_numpy_epoch),
    ("jax jit per step", "jax", build_jax_epoch),
    ("jax lax.scan", "jax", build_jax_scan),
    ("chainrule scalar-vars", "chainrule", build_scalar_vars_epoch),
    ("chainrule arrays", "chainrule arrays", build_arrays_epoch),
)


# --------------------------------------------------------------------------
# Loading, checking, timing
# --------------------------------------------------------------------------


def one_blas_thread():
    """A context that limits BLAS to one thread (threadpoolctl), or None without it."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return lambda: threadpool_limits(limits=1, user_api="blas")


def load_libraries(no_jax):
    """(modules, reasons for the missing): 'jax' and 'chainrule' when they import,
    'chainrule arrays' when chainrule has array variables, and 'numpy 1 BLAS thread' (a
    context factory) when threadpoolctl can limit BLAS's threads."""
    mods, missing = {"numpy": np}, {}
    if one_blas_thread():
        mods["numpy 1 BLAS thread"] = one_blas_thread()
    else:
        missing["numpy 1 BLAS thread"] = "skipped: threadpoolctl not installed"
    if no_jax:
        missing["jax"] = "not installed (--no-jax)"
    else:
        try:
            mods["jax"] = run._load_jax(None)
        except ImportError as exc:
            missing["jax"] = f"not installed ({run.first_line(exc)})"
    try:
        import chainrule

        mods["chainrule"] = chainrule
    except ImportError as exc:
        missing["chainrule"] = f"not installed ({run.first_line(exc)})"
    if "chainrule" in mods and has_arrays(mods["chainrule"]):
        mods["chainrule arrays"] = mods["chainrule"]
    elif "chainrule" in mods:
        missing["chainrule arrays"] = ARRAYS_MISSING
    else:
        missing["chainrule arrays"] = missing["chainrule"]
    return mods, missing


def prepare_rows(rows, mods, missing, net, ref, workload):
    """Build and check every row; a failed check leaves the row untimed."""
    cands = []
    for name, lib, build in rows:
        if lib not in mods:
            cands.append(run.Candidate(name, status=missing[lib]))
        elif build is build_numpy_matmuls:
            cand = run.Candidate(name)
            cand.runs["run"] = build(mods, net)
            cands.append(cand)
        else:
            refs = [("run", ref)]
            cands.append(run.prepare(name, mods, build, net, refs, workload=workload))
        # Set around a whole timed run: threadpoolctl's own cost stays out of the timing.
        cands[-1].limits = mods[lib] if lib == "numpy 1 BLAS thread" else contextlib.nullcontext
        if cands[-1].status.startswith(("MISMATCH", "ERROR")):
            print(f"!! {workload} {name}: {cands[-1].status}", file=sys.stderr)
    return cands


def calls_per_run(cand, round_s):
    """Calls in one timed run, from a measured estimate: at least round_s long."""
    fn = cand.runs["run"]
    with cand.limits():
        t0, k = time.perf_counter(), 0
        while k < 2 or time.perf_counter() - t0 < round_s / 4:
            fn()
            k += 1
    return max(1, math.ceil(round_s / ((time.perf_counter() - t0) / k)))


def time_interleaved(cands, repeat, round_s):
    """Seconds per call of each checked row, interleaved round by round so that the
    machine's noise falls on all of them alike."""
    jobs = [(c, c.runs["run"], calls_per_run(c, round_s)) for c in cands if c.ok]
    for c, _, _ in jobs:
        c.samples["run"] = []
    for r in range(repeat):
        gc.collect()
        k = r % len(jobs) if jobs else 0
        for c, fn, calls in jobs[k:] + jobs[:k]:
            time.sleep(run.SETTLE_S)  # lets other libraries' spinning threads go to sleep
            with c.limits():
                t0 = time.perf_counter()
                for _ in range(calls):
                    fn()
                c.samples["run"].append((time.perf_counter() - t0) / calls)


def speed_table(title, cands, baselines, per_step=None):
    """A section of medians in ms with ratios against the baseline rows."""
    med = {c.name: run.median(c.samples["run"]) for c in cands if c.ok and c.samples.get("run")}
    base = [b for b in baselines if b in med]
    header = ["impl", "median ms", "min ms", "IQR %",
              *(["µs / step"] if per_step else []),
              *[f"vs {b}" for b in base], "max rel err", "status"]
    section = run.Section(title, header, failed=run.failed(cands), notes=run.failure_notes(cands))
    for c in cands:
        s = c.samples.get("run", [])
        m = run.median(s) if s else None
        section.rows.append([
            c.name, run.fmt(m * 1e3 if m else None), run.fmt(min(s) * 1e3 if s else None),
            run.fmt(run.iqr_percent(s), 2),
            *([run.fmt(m * 1e6 / per_step if m else None)] if per_step else []),
            *[run.fmt_ratio(run.ratio(m, med[b])) for b in base],
            run.err_cell(c), run.status_cell(c)])
    return section, med


# --------------------------------------------------------------------------
# (d) first result, in fresh processes
# --------------------------------------------------------------------------


def child_numpy(net):
    laps = run.Laps()
    out = numpy_value_grad(net.X, net.Y, *net.params)
    laps.lap("first_call")
    return laps.times, out, lambda: numpy_value_grad(net.X, net.Y, *net.params)


def child_jax(net):
    laps = run.Laps()
    jax = run._load_jax(None)
    laps.lap("import")
    step = jax.jit(jax.value_and_grad(jax_loss(jax)))
    lowered = step.lower(net.params, net.X, net.Y)  # tracing runs the differentiation
    laps.lap("grad")
    compiled = lowered.compile()
    laps.lap("compile")
    out = flat_jax(jax, compiled(net.params, net.X, net.Y))
    laps.lap("first_call")
    return laps.times, out, lambda: flat_jax(jax, compiled(net.params, net.X, net.Y))


def child_scalar_vars(net):
    laps = run.Laps()
    import chainrule as cr

    laps.lap("import")
    model = ScalarVarsNet(cr, net.n_inputs)
    laps.lap("build")
    grads = cr.grad(model.loss, model.param_vars)
    laps.lap("grad")
    fn = cr.compile([model.loss, *grads], inputs=[*model.data_vars, *model.param_vars])
    laps.lap("compile")
    cols = columns(net.X, net.Y)
    out = scalar_vars_call(fn, cols, net.params)
    laps.lap("first_call")
    return laps.times, out, lambda: scalar_vars_call(fn, cols, net.params)


def child_arrays(net):
    laps = run.Laps()
    import chainrule as cr

    laps.lap("import")
    if not has_arrays(cr):
        return {"skipped": ARRAYS_MISSING}, None, None
    J, params, inputs = arrays_loss(cr, net.n_inputs)
    laps.lap("build")
    grads = cr.grad(J, params)
    laps.lap("grad")
    fn = cr.compile([J, *grads], inputs=inputs)
    laps.lap("compile")
    out = fn(net.X, net.Y, *net.params)
    laps.lap("first_call")
    return laps.times, out, lambda: fn(net.X, net.Y, *net.params)


CHILDREN = {
    "numpy": ("numpy", child_numpy),
    "jax": ("jax", child_jax),
    "chainrule scalar-vars": ("chainrule", child_scalar_vars),
    "chainrule arrays": ("chainrule arrays", child_arrays),
}


def child_main(spec_json):
    """Entry point of a measuring subprocess: prints one JSON line."""
    spec = json.loads(spec_json)
    net = big_net(spec["n"])
    try:
        times, out, again = CHILDREN[spec["impl"]][1](net)
        if out is not None:
            err = run.assert_close(f"(d) {spec['impl']}", run.as_outputs(out),
                                   numpy_value_grad(net.X, net.Y, *net.params))
            times = {**times, "steady": median_call(again), "err": err}
        result = times
    except run.Mismatch as exc:
        result = {"mismatch": str(exc)}
    except Exception as exc:  # noqa: BLE001 - the parent reports it
        result = {"error": f"{type(exc).__name__}: {run.first_line(exc)}"}
    print(json.dumps(result), flush=True)
    return 0


def median_call(fn, budget_s=1.0):
    samples, start = [], time.perf_counter()
    while len(samples) < 3 or (time.perf_counter() - start < budget_s and len(samples) < 50):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return run.median(samples)


def run_child(spec):
    """One measurement in a fresh interpreter; never raises."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_child", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
                              check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"not finished within {CHILD_TIMEOUT_S:.0f} s (killed)"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"child exited {proc.returncode}: {tail}"}
    return json.loads(lines[-1])


FIRST = ("build", "grad", "compile", "first_call")


def first_result_section(mods, missing, sizes):
    impls = [name for name, (lib, _) in CHILDREN.items() if lib in mods]
    results = {name: [] for name in impls}
    for rep in range(sizes.children):
        k = rep % len(impls)
        for name in impls[k:] + impls[:k]:
            results[name].append(run_child({"impl": name, "n": sizes.n_big}))
    header = ["impl", "runs", "import ms", "build ms", "grad ms", "compile ms", "first call ms",
              "first result ms", "vs jax", "steady call ms", "max rel err", "status"]
    section = run.Section(f"(d) 784-30-10, {sizes.n_big:,} samples: first result in a fresh "
                          "process", header)
    first = {}
    for name in impls:
        good = [r for r in results[name] if not ({"error", "mismatch", "skipped"} & r.keys())]
        bad = [r for r in results[name] if r not in good]
        first[name] = run.median([sum(r.get(k, 0.0) for k in FIRST) for r in good]) if good \
            else None
        section.rows.append([name, str(len(good)),
                             *[phase_ms(good, k) for k in ("import", *FIRST)],
                             run.fmt(first[name] * 1e3 if first[name] else None), None,
                             phase_ms(good, "steady"),
                             run.fmt(max(r["err"] for r in good), 2) if good else "—",
                             child_status(bad[0]) if bad else "ok"])
    for row in section.rows:
        row[8] = run.fmt_ratio(run.ratio(first[row[0]], first.get("jax")))
    for name, (lib, _) in CHILDREN.items():
        if lib not in mods:
            section.rows.append([name, "0", *["—"] * 9, missing[lib]])
    section.failed = any(r[-1].startswith(("MISMATCH", "ERROR")) for r in section.rows)
    for row in section.rows:
        if row[-1].startswith(("MISMATCH", "ERROR")):
            section.notes.append(f"{row[0]}: {row[-1]}")
            row[-1] = row[-1].split(":")[0]
    section.notes.insert(0, (
        f"Medians over {sizes.children} fresh process(es) per library, interleaved. first "
        "result = build + grad + compile + first call, from NumPy arrays in memory (the "
        "import is its own column). JAX: grad = tracing (jit(value_and_grad).lower), compile "
        "= XLA, arguments passed as NumPy arrays. chainrule scalar-vars: the first call "
        "includes making the 794 columns contiguous. Each child checks its result against "
        "NumPy's."))
    return section, first


def phase_ms(good, key):
    vals = [r[key] * 1e3 for r in good if key in r]
    return run.fmt(run.median(vals)) if vals else "—"


def child_status(res):
    if "skipped" in res:
        return res["skipped"]
    if "mismatch" in res:
        return f"MISMATCH: {res['mismatch']}"
    return f"ERROR: {res['error']}"


# --------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------


MATMULS = ("numpy matmuls only", "numpy matmuls only, 1 BLAS thread")
TARGETS = (
    # (workload, what, rows compared with (the fastest counts), limit): issue 20's targets.
    ("a", "W8 value + gradient <= 0.5 x NumPy's matmul time (the faster BLAS setting)",
     MATMULS, 0.5),
    ("a", "W8 value + gradient <= JAX", ("jax jit(value_and_grad)",), 1.0),
    ("b", "W8 SGD epoch <= 2 x JAX lax.scan", ("jax lax.scan",), 2.0),
    ("c", "784-30-10 value + gradient <= JAX", ("jax jit(value_and_grad)",), 1.0),
    ("d", "784-30-10 first result <= JAX's jit + first call", ("jax",), 1.0),
)


def targets_section(medians):
    header = ["target", "chainrule arrays", "chainrule scalar-vars"]
    section = run.Section("Targets of issue 20 (ratio to the named anchor; met when <= limit)",
                          header)
    for workload, what, anchors, limit in TARGETS:
        if workload not in medians:
            continue
        med = medians[workload]
        anchor = min((med[a] for a in anchors if med.get(a)), default=None)
        cells = []
        for row in ("chainrule arrays", "chainrule scalar-vars"):
            r = run.ratio(med.get(row), anchor)
            verdict = "not measured" if r is None else ("met" if r <= limit else "not met")
            cells.append(f"{run.fmt_ratio(r)} ({verdict})" if r is not None else verdict)
        section.rows.append([what, *cells])
    return section


def thread_facts(mods):
    try:
        from threadpoolctl import threadpool_info

        blas = ", ".join(f"{i['internal_api']} {i['num_threads']} "
                         f"({Path(i['filepath']).parent.name})"
                         for i in threadpool_info() if i["user_api"] == "blas") or "none found"
    except ImportError:
        blas = "unknown (threadpoolctl not installed)"
    parts = [f"numpy BLAS (matmuls) {blas}; numpy elementwise 1"]
    if "jax" in mods:
        parts.append("jax XLA CPU default (not controlled)")
    if "chainrule" in mods:
        parts.append(f"chainrule {mods['chainrule'].get_num_threads()}")
    return "; ".join(parts)


def environment(mods, missing, quick, repeat, load_start, nets):
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    versions = {name: run.version_of(name) or "not installed"
                for name in ("numpy", "jax", "jaxlib", "chainrule")}
    if "jax" in missing:
        versions["jax"] = missing["jax"]
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": ("QUICK smoke run" if quick else "full run") + f", {repeat} interleaved rounds",
        "cpu": run.cpu_model(),
        "cores": f"{cores} logical, {usable} usable by this process",
        "python": platform.python_version(),
        **versions,
        "threads": thread_facts(mods),
        "data": "; ".join(f"{k}: {v}" for k, v in nets.items()),
        "load average": run.facts_load(load_start, run.load_average()),
        "command": f"`{shlex.join([Path(sys.executable).name, *sys.argv])}`",
    }


def parse_args(argv):
    p = argparse.ArgumentParser(prog="benches/dense.py", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help=f"{QUICK.n_big:,} samples in (c) and (d), {QUICK.repeat} rounds")
    p.add_argument("--workloads", default=",".join(ALL_WORKLOADS),
                   help="comma list from " + ",".join(ALL_WORKLOADS))
    p.add_argument("--repeat", type=int, default=None, help="interleaved rounds per workload")
    p.add_argument("--no-jax", action="store_true", help="leave JAX out, as if not installed")
    p.add_argument("--out", default=None, help="write the markdown report to this file")
    p.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def cross_check(mods, missing, workloads, digits, big):
    """Build every row and check it against NumPy (itself checked by complex step) before
    anything is timed. Returns workload -> (title, rows, candidates)."""
    verify_numpy_gradient(digits)
    verify_numpy_gradient(big)
    plan = {}
    if "a" in workloads:
        ref = numpy_value_grad(digits.X, digits.Y, *digits.params)
        plan["a"] = (f"(a) W8 64-30-10, {len(digits.X):,} samples: one full-batch value + "
                     "gradient", VALUE_GRAD_ROWS, digits, ref)
    if "b" in workloads:
        steps = len(epoch_order(len(digits.X))) // BATCH
        plan["b"] = (f"(b) W8 64-30-10: one epoch of batch-{BATCH} SGD ({steps} steps, "
                     f"lr {LR})", EPOCH_ROWS, digits, numpy_epoch(digits))
    if "c" in workloads:
        ref = numpy_value_grad(big.X, big.Y, *big.params)
        plan["c"] = (f"(c) 784-30-10, {len(big.X):,} samples: one value + gradient",
                     VALUE_GRAD_ROWS, big, ref)
    checked = {}
    for key, (title, rows, net, ref) in plan.items():
        cands = prepare_rows(rows, mods, missing, net, ref, key)
        checked[key] = (title, cands)
    every = [c for _, cands in checked.values() for c in cands if c.name != "numpy"]
    agree = sorted({c.name for c in every if c.ok and c.err is not None})
    broken = sorted({c.name for c in every if c.status.startswith(("MISMATCH", "ERROR"))})
    print(f"cross-check ran in {', '.join(checked) or 'no workload'}: NumPy's gradient equals "
          f"complex-step derivatives; agree with NumPy (rtol {run.RTOL:g}): "
          f"{', '.join(agree) or 'none'}; failed: {', '.join(broken) or 'none'}", flush=True)
    return checked


def main(argv=None) -> int:
    """Check, time and report; return 0, or 1 if any row failed its check."""
    args = parse_args(argv)
    if args._child:
        return child_main(args._child)
    workloads = run.split_list(args.workloads, ALL_WORKLOADS, "workloads")
    sizes = QUICK if args.quick else FULL
    repeat = args.repeat or sizes.repeat
    load_start = run.load_average()
    mods, missing = load_libraries(args.no_jax)
    for lib, why in missing.items():
        print(f"{lib}: {why}", flush=True)
    digits, big = digits_net(), big_net(sizes.n_big)
    t0 = time.perf_counter()
    try:
        checked = cross_check(mods, missing, workloads, digits, big)
    except run.Mismatch as exc:
        print(f"!! the NumPy reference is wrong: {exc}", file=sys.stderr)
        return 1
    print(f"(building and checking took {time.perf_counter() - t0:.1f} s)\n", flush=True)
    sections, medians = [], {}
    for key, (title, cands) in checked.items():
        t0 = time.perf_counter()
        time_interleaved(cands, repeat, sizes.round_s)
        if key == "b":
            per_step = len(epoch_order(len(digits.X))) // BATCH
            section, medians[key] = speed_table(title, cands, ("numpy", "jax jit per step",
                                                               "jax lax.scan"), per_step)
        else:
            section, medians[key] = speed_table(title, cands, ("numpy", *MATMULS,
                                                               "jax jit(value_and_grad)"))
        sections.append(section)
        print(f"{run.render(section)}({key} took {time.perf_counter() - t0:.1f} s)\n", flush=True)
    if "d" in workloads:
        t0 = time.perf_counter()
        section, medians["d"] = first_result_section(mods, missing, sizes)
        sections.append(section)
        print(f"{run.render(section)}(d took {time.perf_counter() - t0:.1f} s)\n", flush=True)
    sections.append(targets_section(medians))
    print(run.render(sections[-1]), flush=True)
    facts = environment(mods, missing, args.quick, repeat, load_start,
                        {"W8": digits.source, "784-30-10": big.source})
    text = report(facts, sections)
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    broken = [s.title for s in sections if s.failed]
    for title in broken:
        print(f"!! failures in: {title}", file=sys.stderr)
    return 1 if broken else 0


def report(facts, sections):
    lines = ["## Dense sigmoid networks (issue 20): chainrule against NumPy and JAX", ""]
    lines += [f"- **{k}**: {v}" for k, v in facts.items()]
    lines += ["", (
        "J = (1/N) sum over samples and the 10 outputs of (y - yhat)^2. Every row is checked "
        f"against NumPy's hand-written backprop (rtol {run.RTOL:g}; NumPy's own gradient "
        "against complex-step derivatives) before any timing. Medians of interleaved rounds; "
        "vs X = time(row) / time(X), below 1 is faster. NumPy: matmuls via @ (BLAS, threaded), "
        "elementwise in place. JAX: jit, float64, inputs on the device beforehand. chainrule "
        "scalar-vars: one scalar variable per weight, the way nn.SigmoidNetwork builds "
        "networks today; parameters passed as floats and the gradient packed into arrays "
        "inside the timing, data columns made contiguous once outside it."), ""]
    return "\n".join(lines + [run.render(s) for s in sections])


if __name__ == "__main__":
    sys.exit(main())
