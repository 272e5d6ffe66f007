"""Benchmark harness: chainrule against NumPy, numexpr, JAX, PyTorch and ``math``.

Usage::

    python benches/run.py [--quick] [--workloads W1,W2,W4,W5,W6,W10,MEM,W11]
                          [--impls numpy,math,numexpr,jax,torch,chainrule]
                          [--repeat K] [--threads T] [--out benches/RESULTS.md]

Every implementation is cross-checked against a hand-derived NumPy reference
(itself verified by complex-step differentiation) before it is timed. Timings
are taken round-robin in one process and summarised by medians, because the
target machine is small, shared and noisy. Build-cost (W5) and memory (MEM)
figures come from fresh subprocesses so that caches and earlier allocations
cannot flatter them.

The file is deliberately self-contained (standard library + NumPy) so that the
package CLI can run a copy of it; ``main(argv)`` is the entry point.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib.metadata
import itertools
import json
import math
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

HERE = Path(__file__).resolve().parent
ALL_WORKLOADS = ("W1", "W2", "W4", "W5", "W6", "W10", "MEM", "W11")
ALL_IMPLS = ("numpy", "math", "numexpr", "jax", "torch", "chainrule")
RTOL = 1e-9
SEED = 20240601
W4_POINT = (0.3, -0.7)
W1_PARAMS = (0.7, -0.3, 1.3, 0.2)  # w1, b1, w2, b2
CHAINRULE_CHILD_CAP_S = 900.0


@dataclass(frozen=True)
class Sizes:
    """Problem sizes and repeat counts for one run mode."""

    n_w1: int
    n_w2: int
    w4_calls: int
    w5_ns: tuple
    w6_n: int
    w6_samples: int
    n_mem: int
    repeat: int
    w5_repeat: int
    n_w11: int = 200_000
    w10_steps: int = 10_000


# W5 runs 7 fresh processes per implementation and size: on the shared machine a process now
# and then runs all its phases at half speed (other tenants; the same code, the same page
# faults), and with 3 runs one such process could set the median.
FULL = Sizes(1_000_000, 1_000_000, 2_000, (1_000, 10_000), 100, 10_000, 20_000_000, 11, 7)
QUICK = Sizes(100_000, 100_000, 300, (100,), 100, 1_000, 1_000_000, 5, 1, n_w11=20_000,
              w10_steps=1_000)


class Mismatch(AssertionError):
    """An implementation disagrees with the NumPy reference."""


# --------------------------------------------------------------------------
# Loading the implementations
# --------------------------------------------------------------------------


def _load_numexpr(threads):
    import numexpr

    if threads:
        numexpr.set_num_threads(threads)
    return numexpr


def _load_jax(threads):
    # Without this JAX probes for GPU/TPU plugins and warns; the anchor is CPU.
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax

    jax.config.update("jax_enable_x64", True)
    return jax


def _load_torch(threads):
    import torch

    if threads:
        torch.set_num_threads(threads)
    return torch


def _load_chainrule(threads):
    import chainrule

    if threads:
        chainrule.set_num_threads(threads)
    return chainrule


LOADERS = {
    "numpy": lambda threads: np,
    "math": lambda threads: math,
    "numexpr": _load_numexpr,
    "jax": _load_jax,
    "torch": _load_torch,
    "chainrule": _load_chainrule,
}


def load_impls(names, threads):
    """Import each wanted implementation; return (modules, reasons for the missing)."""
    mods, missing = {}, {}
    for name in names:
        try:
            mods[name] = LOADERS[name](threads)
        except Exception as exc:  # noqa: BLE001 - a half-built package may fail in any way
            missing[name] = f"{type(exc).__name__}: {first_line(exc)}"
    return mods, missing


def first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def version_of(name):
    """Installed version of a distribution, or None."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        mod = sys.modules.get(name)
        return getattr(mod, "__version__", None)


def thread_settings(mods):
    """Human-readable thread configuration of each loaded implementation."""
    out = {"numpy": "1 (element-wise ufuncs are single-threaded)"}
    if "numexpr" in mods:
        out["numexpr"] = str(mods["numexpr"].get_num_threads())
    if "jax" in mods:
        out["jax"] = "XLA CPU default (not controlled)"
    if "torch" in mods:
        out["torch"] = str(mods["torch"].get_num_threads())
    if "chainrule" in mods:
        try:
            out["chainrule"] = str(mods["chainrule"].get_num_threads())
        except Exception as exc:  # noqa: BLE001 - the report must survive a partial API
            out["chainrule"] = f"unknown ({type(exc).__name__})"
    return out


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


def uniform(rng, n, low, high):
    """Uniform samples generated in place, so memory peaks are not inflated."""
    out = np.empty(n)
    rng.random(out=out)
    out *= high - low
    out += low
    return out


def w1_data(n):
    rng = np.random.default_rng(SEED)
    # Targets in (0, 1) because yhat is a sigmoid output.
    return SimpleNamespace(
        x=uniform(rng, n, -2.0, 2.0), y=uniform(rng, n, 0.0, 1.0), params=W1_PARAMS
    )


def w2_data(n):
    rng = np.random.default_rng(SEED + 1)
    return SimpleNamespace(x=uniform(rng, n, -2.0, 2.0), y=uniform(rng, n, -2.0, 2.0))


def w4_data():
    return SimpleNamespace(x=W4_POINT[0], y=W4_POINT[1])


def w5_values(n):
    rng = np.random.default_rng(SEED + 2)
    return [float(v) for v in uniform(rng, n, -1.0, 1.0)]


W11_FEATURES = 20


def w11_data(n):
    """Logistic regression: X (n, 20) C-ordered, labels y in {-1, 1}, weights near a fit."""
    rng = np.random.default_rng(SEED + 11)
    X = uniform(rng, n * W11_FEATURES, -2.0, 2.0).reshape(n, W11_FEATURES)
    w = uniform(rng, W11_FEATURES, -1.0, 1.0)
    y = np.where(X @ w + rng.normal(0.0, 1.0, n) > 0, 1.0, -1.0)
    return SimpleNamespace(X=X, y=y, w=w * 0.5, b=0.1)


def w6_data(n, samples):
    rng = np.random.default_rng(SEED + 3)
    return SimpleNamespace(X=uniform(rng, n * samples, -1.0, 1.0).reshape(n, samples))


# --------------------------------------------------------------------------
# Hand-derived references (NumPy); they accept complex input for the check
# --------------------------------------------------------------------------


def sigmoid_np(z):
    return 1.0 / (1.0 + np.exp(-z))


def w1_numpy(x, y, w1, b1, w2, b2):
    """J = mean((y - yhat)^2) and dJ/d(w1, b1, w2, b2) for the 1-1-1 network."""
    n = x.size
    h = sigmoid_np(w1 * x + b1)
    yhat = sigmoid_np(w2 * h + b2)
    r = yhat - y
    d2 = (2.0 / n) * r * yhat * (1.0 - yhat)  # dJ/dz2 per sample
    d1 = (w2 * d2) * h * (1.0 - h)  # dJ/dz1 per sample
    # np.dot (not vdot) so that complex-step checking sees no conjugation.
    return (r @ r) / n, d1 @ x, d1.sum(), d2 @ h, d2.sum()


def w2_numpy(x, y):
    """f = sin(cos x) exp(-y^2) + log(1 + x^2) sigmoid(xy), with df/dx and df/dy."""
    cx = np.cos(x)
    e = np.exp(-y * y)
    a = np.sin(cx) * e
    u = 1.0 + x * x
    log_u = np.log(u)
    s = sigmoid_np(x * y)
    ds = log_u * s * (1.0 - s)  # derivative of log(u) * sigmoid(z) w.r.t. z = x*y
    f = a + log_u * s
    gx = -np.cos(cx) * np.sin(x) * e + (2.0 * x / u) * s + ds * y
    gy = -2.0 * y * a + ds * x
    return f, gx, gy


def w2_math(x, y):
    """W2 on python floats, same derivation as w2_numpy."""
    cx = math.cos(x)
    e = math.exp(-y * y)
    a = math.sin(cx) * e
    u = 1.0 + x * x
    log_u = math.log(u)
    s = 1.0 / (1.0 + math.exp(-x * y))
    ds = log_u * s * (1.0 - s)
    return (
        a + log_u * s,
        -math.cos(cx) * math.sin(x) * e + (2.0 * x / u) * s + ds * y,
        -2.0 * y * a + ds * x,
    )


def w11_numpy(X, y, w, b):
    """loss = mean(softplus(-y (X w + b))) and dloss/d(w, b): with m = -y z, softplus'(m) is
    sigmoid(m), so dloss/dz = -y sigmoid(m) / N, dloss/dw = X^T (dloss/dz), dloss/db = its sum."""
    n = y.size
    m = -y * (X @ w + b)
    loss = np.logaddexp(0.0, m).mean()
    g = (-y / n) * (0.5 * np.tanh(0.5 * m) + 0.5)  # the sigmoid without overflow
    return (loss, *(g @ X), g.sum())


def w11_value_complex(X, y, w, b):
    """W11's loss in a form complex-step differentiation can go through (moderate values)."""
    return np.mean(np.log(1.0 + np.exp(-y * (X @ w + b))))


def chain_value_numpy(X):
    """W5/W6 f over axis 0: sum_i sin(x_i x_{i+1}) + exp(-x_i^2)."""
    return np.sin(X[:-1] * X[1:]).sum(axis=0) + np.exp(-X * X).sum(axis=0)


def chain_numpy(X):
    """W5/W6 f and its gradient (same shape as X) over axis 0."""
    p = X[:-1] * X[1:]
    e = np.exp(-X * X)
    f = np.sin(p).sum(axis=0) + e.sum(axis=0)
    c = np.cos(p)
    g = -2.0 * X * e
    g[:-1] += c * X[1:]
    g[1:] += c * X[:-1]
    return f, g


def chain_expr(m, xs):
    """The W5 expression built term by term from a module with sin/exp (chainrule, jnp)."""
    acc = m.exp(-(xs[-1] ** 2))
    for a, b in itertools.pairwise(xs):
        acc = acc + m.sin(a * b) + m.exp(-(a**2))
    return acc


def complex_step(fn, args, i, direction=1.0, h=1e-30):
    """Directional derivative of fn in args[i], exact to rounding (no cancellation)."""
    args = list(args)
    args[i] = args[i] + 1j * h * direction
    return np.imag(fn(*args)) / h


def verify_references():
    """Check the hand-derived gradients, so that a wrong formula cannot pass as truth."""
    d = w1_data(64)
    args = (d.x, d.y, *d.params)
    got = w1_numpy(*args)
    for k in range(4):
        want = complex_step(lambda *a: w1_numpy(*a)[0], args, 2 + k)
        assert_close(f"reference W1 dJ/d{('w1', 'b1', 'w2', 'b2')[k]}", [got[1 + k]], [want])
    d = w2_data(64)
    got = w2_numpy(d.x, d.y)
    for k in range(2):
        want = complex_step(lambda *a: w2_numpy(*a)[0], (d.x, d.y), k)
        assert_close(f"reference W2 df/d{'xy'[k]}", [got[1 + k]], [want])
    assert_close("reference W4 math", w2_math(*W4_POINT), w2_numpy(*W4_POINT))
    d = w11_data(64)
    got = w11_numpy(d.X, d.y, d.w, d.b)
    args = (d.X, d.y, d.w, d.b)
    want = [complex_step(w11_value_complex, args, 2, np.eye(W11_FEATURES)[j]) for j in range(20)]
    want.append(complex_step(w11_value_complex, args, 3))
    assert_close("reference W11 gradient", [np.array(got[1:])], [np.array(want)])
    x = np.array(w5_values(7))
    _, g = chain_numpy(x)
    want = [complex_step(chain_value_numpy, (x,), 0, np.eye(7)[i]) for i in range(7)]
    assert_close("reference W5 gradient", [g], [np.array(want)])


# --------------------------------------------------------------------------
# Cross-checking
# --------------------------------------------------------------------------


def as_outputs(out):
    """Normalise one implementation's result to a list of arrays."""
    if not isinstance(out, (tuple, list)):
        out = [out]
    return [np.asarray(o) for o in out]


def assert_close(name, got, ref, rtol=RTOL):
    """Raise Mismatch unless got matches ref output by output; return max relative error.

    The tolerance is relative to each output's largest magnitude, since
    gradients cross zero and a purely element-wise rtol would be meaningless
    there. Outputs that come as one stacked array (e.g. a gradient matrix) are
    compared with the reference flattened when the output counts differ.
    """
    got, ref = as_outputs(got), as_outputs(ref)
    if len(got) != len(ref):
        got, ref = [flat(got)], [flat(ref)]
    worst = 0.0
    for k, (g, r) in enumerate(zip(got, ref, strict=True)):
        if g.dtype != np.float64:
            raise Mismatch(f"{name}: output {k} has dtype {g.dtype}, expected float64")
        if g.shape != r.shape:
            raise Mismatch(f"{name}: output {k} has shape {g.shape}, expected {r.shape}")
        scale = float(np.max(np.abs(r))) if r.size else 0.0
        err = float(np.max(np.abs(g - r))) if r.size else 0.0
        if not np.isfinite(err) or err > rtol * max(scale, 1e-300):
            raise Mismatch(
                f"{name}: output {k} differs from the NumPy reference: "
                f"max abs err {err:.3e}, max |ref| {scale:.3e} (rtol {rtol:g}); "
                f"{worst_element(g, r)}"
            )
        worst = max(worst, err / scale if scale else err)
    return worst


def worst_element(got, ref):
    diff = np.abs(np.ravel(got) - np.ravel(ref))
    i = int(np.nanargmax(diff)) if np.isfinite(diff).any() else 0
    if np.isnan(diff).any():
        i = int(np.flatnonzero(np.isnan(diff))[0])
    return f"at flat index {i}: got {float(np.ravel(got)[i])!r}, want {float(np.ravel(ref)[i])!r}"


def flat(outputs):
    return np.concatenate([np.ravel(o) for o in outputs]) if outputs else np.empty(0)


# --------------------------------------------------------------------------
# Builders: builder(module, data) -> zero-argument callable returning outputs.
# Everything done before the callable is returned (tracing, differentiation,
# compilation) counts towards "first result", not towards the timed runs.
# --------------------------------------------------------------------------


def w1_build_numpy(np_, d):
    return lambda: w1_numpy(d.x, d.y, *d.params)


def w1_build_numexpr(ne, d):
    n = d.x.size

    def run():
        w1, b1, w2, b2 = d.params
        env = {"x": d.x, "y": d.y, "w1": w1, "b1": b1, "w2": w2, "b2": b2, "k": 2.0 / n}
        env["h"] = ne.evaluate("1 / (1 + exp(-(w1 * x + b1)))", local_dict=env)
        env["yhat"] = ne.evaluate("1 / (1 + exp(-(w2 * h + b2)))", local_dict=env)
        env["r"] = r = ne.evaluate("yhat - y", local_dict=env)
        env["d2"] = d2 = ne.evaluate("k * r * yhat * (1 - yhat)", local_dict=env)
        d1 = ne.evaluate("w2 * d2 * h * (1 - h)", local_dict=env)
        # Reductions go through BLAS dot: numexpr's own sum() is single-threaded.
        return (r @ r) / n, d1 @ d.x, d1.sum(), d2 @ env["h"], d2.sum()

    return run


def w1_build_jax(jax, d):
    jnp = jax.numpy

    def loss(w1, b1, w2, b2, x, y):
        h = jax.nn.sigmoid(w1 * x + b1)
        yhat = jax.nn.sigmoid(w2 * h + b2)
        return jnp.mean((y - yhat) ** 2)

    step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3)))
    x, y = jax.device_put(d.x), jax.device_put(d.y)

    def run():
        value, grads = step(*d.params, x, y)
        return jax.block_until_ready((value, *grads))

    return run


def w1_build_torch(torch, d):
    x, y = torch.from_numpy(d.x), torch.from_numpy(d.y)

    def run():
        w = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in d.params]
        h = torch.sigmoid(w[0] * x + w[1])
        yhat = torch.sigmoid(w[2] * h + w[3])
        loss = torch.mean((y - yhat) ** 2)
        return (loss.detach(), *torch.autograd.grad(loss, w))

    return run


def w1_build_chainrule(cr, d):
    x, y, w1, b1, w2, b2 = cr.vars("x y w1 b1 w2 b2")
    h = cr.sigmoid(w1 * x + b1)
    yhat = cr.sigmoid(w2 * h + b2)
    loss = cr.mean((y - yhat) ** 2)
    fn = cr.compile([loss, *cr.grad(loss, [w1, b1, w2, b2])], inputs=[x, y, w1, b1, w2, b2])
    return lambda: fn(d.x, d.y, *d.params)


def w2_build_numpy(np_, d):
    return lambda: w2_numpy(d.x, d.y)


def w2_build_math(math_, d):
    return lambda: w2_math(d.x, d.y)


def w2_build_numexpr(ne, d):
    def run():
        ev = ne.evaluate
        env = {"x": d.x, "y": d.y}
        # Shared factors are materialised once; each transcendental runs once
        # per sample except sin(cos x), which is cheaper to redo than to store.
        env["e"] = ev("exp(-y * y)", local_dict=env)
        env["c"] = ev("cos(x)", local_dict=env)
        env["s"] = ev("1 / (1 + exp(-x * y))", local_dict=env)
        env["L"] = ev("log(1 + x * x)", local_dict=env)
        f = ev("sin(c) * e + L * s", local_dict=env)
        gx = ev(
            "-cos(c) * sin(x) * e + 2 * x / (1 + x * x) * s + L * s * (1 - s) * y", local_dict=env
        )
        gy = ev("-2 * y * sin(c) * e + L * s * (1 - s) * x", local_dict=env)
        return f, gx, gy

    return run


def w2_jax_fn(jax):
    jnp = jax.numpy

    def f(x, y):
        return jnp.sin(jnp.cos(x)) * jnp.exp(-(y**2)) + jnp.log(1 + x**2) * jax.nn.sigmoid(x * y)

    return jax.value_and_grad(f, argnums=(0, 1))


def w2_build_jax(jax, d):
    step = jax.jit(jax.vmap(w2_jax_fn(jax)))
    x, y = jax.device_put(d.x), jax.device_put(d.y)

    def run():
        value, (gx, gy) = step(x, y)
        return jax.block_until_ready((value, gx, gy))

    return run


def w4_build_jax(jax, d):
    step = jax.jit(w2_jax_fn(jax))

    def run():
        value, (gx, gy) = step(d.x, d.y)
        return jax.block_until_ready((value, gx, gy))

    return run


def w2_build_torch(torch, d):
    x0 = torch.as_tensor(d.x, dtype=torch.float64)
    y0 = torch.as_tensor(d.y, dtype=torch.float64)

    def run():
        x, y = x0.detach().requires_grad_(), y0.detach().requires_grad_()
        f = torch.sin(torch.cos(x)) * torch.exp(-(y**2)) + torch.log(1 + x**2) * torch.sigmoid(
            x * y
        )
        # Samples are independent, so the gradient of the sum is the per-sample gradient.
        gx, gy = torch.autograd.grad(f, (x, y), grad_outputs=torch.ones_like(f))
        return f.detach(), gx, gy

    return run


def w2_chainrule_fn(cr):
    x, y = cr.vars("x y")
    f = cr.sin(cr.cos(x)) * cr.exp(-(y**2)) + cr.log(1 + x**2) * cr.sigmoid(x * y)
    dfdx, dfdy = cr.grad(f, [x, y])
    return cr.compile([f, dfdx, dfdy], inputs=[x, y])


def w2_build_chainrule(cr, d):
    fn = w2_chainrule_fn(cr)
    return lambda: fn(d.x, d.y)


def w6_build_numpy(np_, d):
    return (lambda: chain_value_numpy(d.X)), (lambda: chain_numpy(d.X))


def w6_build_numexpr(ne, d):
    env = {"X": d.X, "A": d.X[:-1], "B": d.X[1:]}

    def value():
        return ne.evaluate("sin(A * B)", local_dict=env).sum(axis=0) + ne.evaluate(
            "exp(-X * X)", local_dict=env
        ).sum(axis=0)

    def value_and_grad():
        e = ne.evaluate("exp(-X * X)", local_dict=env)
        f = ne.evaluate("sin(A * B)", local_dict=env).sum(axis=0) + e.sum(axis=0)
        c = ne.evaluate("cos(A * B)", local_dict=env)
        g = ne.evaluate("-2 * X * e", local_dict={"X": d.X, "e": e})
        g[:-1] += ne.evaluate("c * B", local_dict={"c": c, "B": env["B"]})
        g[1:] += ne.evaluate("c * A", local_dict={"c": c, "A": env["A"]})
        return f, g

    return value, value_and_grad


def w6_build_jax(jax, d):
    jnp = jax.numpy

    def f(v):
        return jnp.sum(jnp.sin(v[:-1] * v[1:])) + jnp.sum(jnp.exp(-(v**2)))

    # Samples lie along axis 1; out_axes puts the gradient in the same (n, N) layout.
    f_only = jax.jit(jax.vmap(f, in_axes=1))
    f_grad = jax.jit(jax.vmap(jax.value_and_grad(f), in_axes=1, out_axes=(0, 1)))
    X = jax.device_put(d.X)
    return ((lambda: jax.block_until_ready(f_only(X))), (lambda: jax.block_until_ready(f_grad(X))))


def w6_build_torch(torch, d):
    X0 = torch.from_numpy(d.X)

    def f(X):
        return torch.sin(X[:-1] * X[1:]).sum(dim=0) + torch.exp(-(X**2)).sum(dim=0)

    def value():
        with torch.no_grad():
            return f(X0)

    def value_and_grad():
        X = X0.detach().requires_grad_()
        y = f(X)
        (g,) = torch.autograd.grad(y, (X,), grad_outputs=torch.ones_like(y))
        return y.detach(), g

    return value, value_and_grad


def w6_build_chainrule(cr, d):
    n = d.X.shape[0]
    xs = list(cr.vars(" ".join(f"x{i}" for i in range(n))))
    f = chain_expr(cr, xs)
    fn_f = cr.compile([f], inputs=xs)
    fn_fg = cr.compile([f, *cr.grad(f, xs)], inputs=xs)
    rows = list(d.X)  # contiguous row views, one array per variable
    return (lambda: fn_f(*rows)), (lambda: fn_fg(*rows))


def w11_build_numpy(np_, d):
    return lambda: w11_numpy(d.X, d.y, d.w, d.b)


def w11_build_jax(jax, d):
    jnp = jax.numpy

    def loss(w, b, X, y):
        return jnp.mean(jax.nn.softplus(-y * (X @ w + b)))

    step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    X, y = jax.device_put(d.X), jax.device_put(d.y)

    def run():
        value, (gw, gb) = step(jnp.asarray(d.w), d.b, X, y)
        value, gw, gb = jax.block_until_ready((value, gw, gb))
        return (value, *np.asarray(gw), gb)

    return run


def w11_build_torch(torch, d):
    X, y = torch.from_numpy(d.X), torch.from_numpy(d.y)

    def run():
        w = torch.tensor(d.w, dtype=torch.float64, requires_grad=True)
        b = torch.tensor(d.b, dtype=torch.float64, requires_grad=True)
        loss = torch.mean(torch.nn.functional.softplus(-y * (X @ w + b)))
        gw, gb = torch.autograd.grad(loss, [w, b])
        return (loss.detach(), *gw.numpy(), gb)

    return run


def w11_build_chainrule(cr, d):
    xs = cr.vars(" ".join(f"x{j}" for j in range(W11_FEATURES)))
    ws = cr.vars(" ".join(f"w{j}" for j in range(W11_FEATURES)))
    y, b = cr.vars("y b")
    z = b
    for wj, xj in zip(ws, xs, strict=True):
        z = z + wj * xj
    loss = cr.mean(cr.softplus(-y * z))
    fn = cr.compile([loss, *cr.grad(loss, [*ws, b])], inputs=[*xs, y, *ws, b])
    columns = [d.X[:, j] for j in range(W11_FEATURES)]  # strided views, as the workload says
    weights = [float(v) for v in d.w]
    return lambda: fn(*columns, d.y, *weights, d.b)


BUILDERS = {
    "W1": {
        "numpy": w1_build_numpy,
        "numexpr": w1_build_numexpr,
        "jax": w1_build_jax,
        "torch": w1_build_torch,
        "chainrule": w1_build_chainrule,
    },
    "W2": {
        "numpy": w2_build_numpy,
        "numexpr": w2_build_numexpr,
        "jax": w2_build_jax,
        "torch": w2_build_torch,
        "chainrule": w2_build_chainrule,
    },
    "W4": {
        "math": w2_build_math,
        "numpy": w2_build_numpy,
        "jax": w4_build_jax,
        "torch": w2_build_torch,
        "chainrule": w2_build_chainrule,
    },
    "W11": {
        "numpy": w11_build_numpy,
        "jax": w11_build_jax,
        "torch": w11_build_torch,
        "chainrule": w11_build_chainrule,
    },
    "W6": {
        "numpy": w6_build_numpy,
        "numexpr": w6_build_numexpr,
        "jax": w6_build_jax,
        "torch": w6_build_torch,
        "chainrule": w6_build_chainrule,
    },
}


# --------------------------------------------------------------------------
# Preparing and timing in-process workloads (W1, W2, W4, W6)
# --------------------------------------------------------------------------


@dataclass
class Candidate:
    """One implementation of one workload, with its timing samples."""

    name: str
    runs: dict = field(default_factory=dict)  # label -> timed callable
    samples: dict = field(default_factory=dict)  # label -> seconds per run
    faults: dict = field(default_factory=dict)  # label -> minor page faults per run
    setup_s: float | None = None
    err: float | None = None
    status: str = "ok"

    @property
    def ok(self):
        return self.status == "ok"


def repeat_calls(fn, calls):
    """A batch of calls, so that sub-microsecond calls are timed above clock noise."""

    def run():
        for _ in range(calls):
            fn()

    return run


def prepare(name, mod, build, data, refs, calls=1, workload=""):
    """Build one implementation, time its first result, cross-check it, warm it up.

    refs is a list of (label, reference outputs), one per callable the builder
    returns. A disagreement or an exception marks the candidate as failed
    rather than aborting, so the rest of the table is still produced.
    """
    cand = Candidate(name)
    try:
        t0 = time.perf_counter()
        fns = build(mod, data)
        fns = fns if isinstance(fns, tuple) else (fns,)
        outs = [fn() for fn in fns]
        cand.setup_s = time.perf_counter() - t0
        cand.err = max(
            assert_close(f"{workload} {name} ({label})", out, ref)
            for (label, ref), out in zip(refs, outs, strict=True)
        )
        for (label, ref), fn in zip(refs, fns, strict=True):
            # A second checked call catches state carried between calls (caches,
            # reused buffers) and warms up pages the first call faulted in.
            assert_close(f"{workload} {name} ({label}, second call)", fn(), ref)
            cand.runs[label] = repeat_calls(fn, calls) if calls > 1 else fn
    except Mismatch as exc:
        cand.status = f"MISMATCH: {exc}"
    except Exception as exc:  # noqa: BLE001 - report it in the table, keep going
        cand.status = f"ERROR: {type(exc).__name__}: {first_line(exc)}"
    return cand


def prepare_all(ctx, workload, data, refs, calls=1):
    cands = []
    for name, build in BUILDERS[workload].items():
        if name in ctx.mods:
            cands.append(prepare(name, ctx.mods[name], build, data, refs, calls, workload))
        elif name in ctx.missing:
            cands.append(Candidate(name, status="skipped (not importable)"))
    for cand in cands:
        if cand.status.startswith(("MISMATCH", "ERROR")):
            print(f"!! {workload} {cand.name}: {cand.status}", file=sys.stderr)
    return cands


# Pause before each timed run. Measured, W1 with torch in the rotation (2 cores, quiet
# machine): chainrule's median 11.2 ms with an IQR of 25% without it, against 6.15 ms (IQR
# 12%) with torch's OpenMP threads made to sleep at once (OMP_WAIT_POLICY=PASSIVE).
SETTLE_S = 0.02


def time_round_robin(cands, repeat):
    """Interleave every timed callable so that machine noise hits all of them alike."""
    jobs = [(c, label, fn) for c in cands if c.ok for label, fn in c.runs.items()]
    for c, label, _ in jobs:
        c.samples[label], c.faults[label] = [], []
    for r in range(repeat):
        gc.collect()
        k = r % len(jobs) if jobs else 0  # rotate so no one always runs first
        for c, label, fn in jobs[k:] + jobs[:k]:
            # Untimed: thread pools that spin after their work (OpenMP's in torch, for ~10 ms
            # by default) would otherwise take the cores from whatever is timed next.
            time.sleep(SETTLE_S)
            f0 = minor_faults()
            t0 = time.perf_counter()
            fn()
            c.samples[label].append(time.perf_counter() - t0)
            c.faults[label].append(minor_faults() - f0)


def minor_faults():
    # Fresh pages are slow to fault in on this VM, so allocation-heavy code is
    # noisy; the fault count per run explains much of the spread.
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def iqr_percent(xs):
    if len(xs) < 4:
        return float("nan")
    q1, _, q3 = statistics.quantiles(xs, n=4)
    return 100.0 * (q3 - q1) / statistics.median(xs)


# --------------------------------------------------------------------------
# Report sections
# --------------------------------------------------------------------------


@dataclass
class Section:
    """A titled markdown table plus free-text notes."""

    title: str
    header: list
    rows: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    failed: bool = False


def fmt(value, digits=3):
    """Three significant digits, or a dash for missing values."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if value == 0:
        return "0"
    if abs(value) >= 10**digits:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}" if abs(value) >= 1e-3 else f"{value:.2e}"


def ratio(a, b):
    return a / b if a and b and math.isfinite(a) and math.isfinite(b) else None


def fmt_ratio(r):
    """Ratios with two decimals near 1, where the differences that matter live."""
    if r is None:
        return "—"
    if r >= 100:
        return f"{r:,.0f}"
    if r >= 10:
        return f"{r:.1f}"
    return f"{r:.2f}" if r >= 0.1 else f"{r:.2g}"


def status_cell(cand):
    """The status kind only; failure details are in the section notes."""
    if cand.status.startswith(("MISMATCH", "ERROR")):
        return cand.status.split(":")[0]
    return cand.status


def failed(cands):
    return any(c.status.startswith(("MISMATCH", "ERROR")) for c in cands)


def failure_notes(cands):
    return [f"{c.name}: {c.status}" for c in cands if c.status.startswith(("MISMATCH", "ERROR"))]


def speed_section(title, cands, unit, scale, baselines, calls=1):
    """Table of per-run times with ratios against the baseline implementations."""
    med = {c.name: median(c.samples.get("run", [])) * scale for c in cands if c.ok}
    base = [b for b in baselines if b in med]
    header = [
        "impl",
        f"median {unit}",
        f"min {unit}",
        "IQR %",
        *[f"vs {b}" for b in base],
        "first result ms",
        "page faults / call",
        "max rel err",
        "status",
    ]
    section = Section(title, header, failed=failed(cands), notes=failure_notes(cands))
    for c in cands:
        s = [x * scale for x in c.samples.get("run", [])]
        faults = c.faults.get("run")
        section.rows.append(
            [
                c.name,
                fmt(median(s)),
                fmt(min(s) if s else None),
                fmt(iqr_percent(s), 2),
                *[fmt_ratio(ratio(med.get(c.name), med[b])) for b in base],
                fmt(c.setup_s * 1e3 if c.setup_s is not None else None),
                fmt(median(faults) / calls if faults else None),
                err_cell(c),
                status_cell(c),
            ]
        )
    return section


def err_cell(cand):
    return fmt(cand.err, 2) if cand.err is not None else "—"


def w6_section(title, cands):
    """Cheap-gradient table: time(f and all partials) / time(f) per implementation."""
    f_ms = {c.name: median(c.samples.get("f", [])) * 1e3 for c in cands if c.ok}
    fg_ms = {c.name: median(c.samples.get("f+grad", [])) * 1e3 for c in cands if c.ok}
    header = [
        "impl",
        "f ms",
        "f + grads ms",
        "(f + grads) / f",
        "f + grads vs numpy",
        "first result ms",
        "page faults f / f + grads",
        "max rel err",
        "status",
    ]
    section = Section(title, header, failed=failed(cands), notes=failure_notes(cands))
    for c in cands:
        section.rows.append(
            [
                c.name,
                fmt(f_ms.get(c.name)),
                fmt(fg_ms.get(c.name)),
                fmt_ratio(ratio(fg_ms.get(c.name), f_ms.get(c.name))),
                fmt_ratio(ratio(fg_ms.get(c.name), fg_ms.get("numpy"))),
                fmt(c.setup_s * 1e3 if c.setup_s is not None else None),
                fault_pair(c),
                err_cell(c),
                status_cell(c),
            ]
        )
    return section


def fault_pair(cand):
    if not cand.ok:
        return "—"
    return " / ".join(fmt(median(cand.faults.get(k, []))) for k in ("f", "f+grad"))


def render(section):
    """Markdown for one section."""
    lines = [f"### {section.title}", ""]
    lines.append("| " + " | ".join(section.header) + " |")
    lines.append("|" + "|".join("---" for _ in section.header) + "|")
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in section.rows]
    lines += [""] + [f"- {note}" for note in section.notes]
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------
# Workloads run in this process
# --------------------------------------------------------------------------


def run_w1(ctx):
    n = ctx.sizes.n_w1
    data = w1_data(n)
    ref = w1_numpy(data.x, data.y, *data.params)
    cands = prepare_all(ctx, "W1", data, [("run", ref)])
    time_round_robin(cands, ctx.repeat)
    section = speed_section(
        f"W1 network: J and dJ/d(w1, b1, w2, b2), N = {n:,}", cands, "ms", 1e3, ("numpy", "jax")
    )
    section.notes.insert(
        0,
        "Outputs: J = mean((y - yhat)^2) and its 4 partials "
        "(scalars); x, y float64 arrays, weights python floats.",
    )
    return section


def run_w2(ctx):
    n = ctx.sizes.n_w2
    data = w2_data(n)
    cands = prepare_all(ctx, "W2", data, [("run", w2_numpy(data.x, data.y))])
    time_round_robin(cands, ctx.repeat)
    section = speed_section(
        f"W2 gradient field: f, df/dx, df/dy, N = {n:,}", cands, "ms", 1e3, ("numpy", "jax")
    )
    section.notes.insert(
        0,
        "f = sin(cos x) exp(-y^2) + log(1 + x^2) sigmoid(xy); "
        "first result = build + differentiate + compile + first call.",
    )
    return section


def run_w11(ctx):
    n = ctx.sizes.n_w11
    data = w11_data(n)
    ref = w11_numpy(data.X, data.y, data.w, data.b)
    cands = prepare_all(ctx, "W11", data, [("run", ref)])
    time_round_robin(cands, ctx.repeat)
    section = speed_section(
        f"W11 logistic regression: loss and its 21 partials, N = {n:,}, 20 features",
        cands, "ms", 1e3, ("numpy", "jax"),
    )
    section.notes.insert(
        0,
        "loss = mean(softplus(-y (w . x + b))); chainrule reads X (C order) as 20 column "
        "views X[:, j]; NumPy, JAX and PyTorch take X whole (X @ w, X^T g).",
    )
    return section


def run_w4(ctx):
    calls = ctx.sizes.w4_calls
    data = w4_data()
    cands = prepare_all(ctx, "W4", data, [("run", w2_numpy(data.x, data.y))], calls)
    time_round_robin(cands, ctx.repeat)
    section = speed_section(
        f"W4 latency: W2 at one point {W4_POINT}, µs per call",
        cands,
        "µs",
        1e6 / calls,
        ("math", "numpy", "jax"),
        calls,
    )
    section.notes.insert(
        0,
        f"Each timed run is a batch of {calls} calls with python "
        "float arguments; the table shows time per call.",
    )
    return section


def run_w6(ctx):
    n, samples = ctx.sizes.w6_n, ctx.sizes.w6_samples
    data = w6_data(n, samples)
    f_ref, (_, g_ref) = chain_value_numpy(data.X), chain_numpy(data.X)
    refs = [("f", (f_ref,)), ("f+grad", (f_ref, g_ref))]
    cands = prepare_all(ctx, "W6", data, refs)
    time_round_robin(cands, ctx.repeat)
    section = w6_section(f"W6 cheap gradient: n = {n} inputs, N = {samples:,} samples", cands)
    section.notes.insert(
        0,
        "Ratio = time(f and all n partials) / time(f alone). "
        "NumPy/numexpr/JAX/torch use one stacked (n, N) array; "
        "chainrule gets its n rows as separate arrays.",
    )
    return section


# --------------------------------------------------------------------------
# W10 mini-batch SGD: W1's network, batch 32. Every implementation takes the same steps:
# epochs over W10_SAMPLES samples, each in the order of the next permutation drawn from
# default_rng(SEED + 10) (the generator nn.SigmoidNetwork.fit(seed=SEED + 10) draws from),
# each epoch's data gathered once and stepped over in slices of W10_BATCH.
# --------------------------------------------------------------------------

W10_BATCH = 32
W10_SAMPLES = 3_200
W10_LR = 0.5


def w10_data(steps):
    data = w1_data(W10_SAMPLES)
    per_epoch = W10_SAMPLES // W10_BATCH
    data.steps, data.epochs = steps, steps // per_epoch
    return data


def w10_orders(epochs):
    rng = np.random.default_rng(SEED + 10)
    return [rng.permutation(W10_SAMPLES) for _ in range(epochs)]


def w10_loop(d, step):
    """Runs the epochs, calling step(x_batch, y_batch, theta) -> theta; returns theta."""
    theta = list(d.params)
    for order in w10_orders(d.epochs):
        xs, ys = d.x[order], d.y[order]
        for start in range(0, W10_SAMPLES, W10_BATCH):
            stop = start + W10_BATCH
            theta = step(xs[start:stop], ys[start:stop], theta)
    return theta


def w10_build_numpy(np_, d):
    def step(x, y, theta):
        _, *grads = w1_numpy(x, y, *theta)
        return [t - W10_LR * g for t, g in zip(theta, grads, strict=True)]

    return lambda: w10_loop(d, step)


def w10_jax_update(jax):
    def loss(theta, x, y):
        w1, b1, w2, b2 = theta
        h = jax.nn.sigmoid(w1 * x + b1)
        yhat = jax.nn.sigmoid(w2 * h + b2)
        return jax.numpy.mean((y - yhat) ** 2)

    def update(theta, x, y):
        grads = jax.grad(loss)(theta, x, y)
        return tuple(t - W10_LR * g for t, g in zip(theta, grads, strict=True))

    return update


def w10_build_jax_jit(jax, d):
    update = jax.jit(w10_jax_update(jax))

    # Batches are NumPy slices, as the other loops take them: slicing a device array is a
    # dispatched op of its own, ~100 µs a step here.
    def run():
        theta = tuple(jax.numpy.float64(p) for p in d.params)
        for order in w10_orders(d.epochs):
            xs, ys = d.x[order], d.y[order]
            for start in range(0, W10_SAMPLES, W10_BATCH):
                theta = update(theta, xs[start:start + W10_BATCH], ys[start:start + W10_BATCH])
        return [np.asarray(t) for t in jax.block_until_ready(theta)]

    return run


def w10_build_jax_scan(jax, d):
    update = w10_jax_update(jax)

    @jax.jit
    def train(theta, xb, yb):
        return jax.lax.scan(lambda th, batch: (update(th, *batch), None), theta, (xb, yb))[0]

    def run():
        orders = np.concatenate(w10_orders(d.epochs))
        xb = d.x[orders].reshape(-1, W10_BATCH)
        yb = d.y[orders].reshape(-1, W10_BATCH)
        theta = tuple(jax.numpy.float64(p) for p in d.params)
        return [np.asarray(t) for t in jax.block_until_ready(train(theta, xb, yb))]

    return run


def w10_build_chainrule(cr, d):
    x, y, w1, b1, w2, b2 = cr.vars("x y w1 b1 w2 b2")
    yhat = cr.sigmoid(w2 * cr.sigmoid(w1 * x + b1) + b2)
    loss = cr.mean((y - yhat) ** 2)
    fn = cr.compile([loss, *cr.grad(loss, [w1, b1, w2, b2])], inputs=[x, y, w1, b1, w2, b2])

    def step(xb, yb, theta):
        _, *grads = fn(xb, yb, *theta)
        return [t - W10_LR * g for t, g in zip(theta, grads, strict=True)]

    return lambda: w10_loop(d, step)


def w10_build_fit(cr, d):
    from chainrule import nn

    net = nn.SigmoidNetwork(seed=0)

    def run():
        net.params = dict(zip(("w1", "b1", "w2", "b2"), d.params, strict=True))
        net.fit(d.x, d.y, lr=W10_LR, epochs=d.epochs, batch_size=W10_BATCH, seed=SEED + 10)
        return list(net.params.values())

    return run


W10_BUILDERS = (
    ("numpy", "numpy", w10_build_numpy),
    ("jax jit per step", "jax", w10_build_jax_jit),
    ("jax lax.scan", "jax", w10_build_jax_scan),
    ("chainrule hand loop", "chainrule", w10_build_chainrule),
    ("chainrule fit", "chainrule", w10_build_fit),
)


def run_w10(ctx):
    d = w10_data(ctx.sizes.w10_steps)
    steps = d.epochs * (W10_SAMPLES // W10_BATCH)
    ref = [np.float64(t) for t in w10_build_numpy(np, d)()]
    cands = []
    for name, module, build in W10_BUILDERS:
        if module in ctx.mods:
            cands.append(prepare(name, ctx.mods[module], build, d, [("run", ref)], 1, "W10"))
        elif module in ctx.missing:
            cands.append(Candidate(name, status="skipped (not importable)"))
    time_round_robin(cands, ctx.repeat)
    section = speed_section(
        f"W10 mini-batch SGD: W1's network, batch {W10_BATCH}, {steps:,} steps, µs per step",
        cands, "µs", 1e6 / steps, ("numpy", "jax jit per step", "chainrule hand loop"))
    section.notes.insert(
        0,
        f"{d.epochs} epochs over {W10_SAMPLES:,} samples, each shuffled by the same seeded "
        "permutations for every implementation, gathered once per epoch and stepped over in "
        "slices; checked: the final (w1, b1, w2, b2) against NumPy's hand-derived gradient "
        "loop. The chainrule hand loop calls the compiled J and dJ/dtheta per step; fit is "
        "nn.SigmoidNetwork.fit(batch_size=32), which also takes the full-batch loss once per "
        "epoch. jax lax.scan's time includes stacking the batches.",
    )
    return section


# --------------------------------------------------------------------------
# Subprocess workloads: W5 build cost and peak memory
# --------------------------------------------------------------------------


class Laps:
    """Consecutive stopwatch laps, in seconds."""

    def __init__(self):
        self.times = {}
        self._last = time.perf_counter()

    def lap(self, name):
        now = time.perf_counter()
        self.times[name] = now - self._last
        self._last = now


def steady_time(fn, budget_s=1.0, max_calls=200):
    """Median call time once warm; at least 3 calls, otherwise bounded by budget_s."""
    samples, start = [], time.perf_counter()
    while len(samples) < 3 or (time.perf_counter() - start < budget_s and len(samples) < max_calls):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def w5_child_numpy(np_, values):
    laps = Laps()
    x = np.array(values)
    out = chain_numpy(x)
    laps.lap("first_call")
    return laps.times, out, (lambda: chain_numpy(x))


def w5_child_jax(jax, values):
    laps = Laps()
    step = jax.jit(jax.value_and_grad(lambda xs: chain_expr(jax.numpy, xs)))
    lowered = step.lower(values)  # tracing runs the autodiff transformation
    laps.lap("grad")
    compiled = lowered.compile()
    laps.lap("compile")
    out = jax.block_until_ready(compiled(values))
    laps.lap("first_call")
    return laps.times, out, (lambda: jax.block_until_ready(compiled(values)))


def w5_child_chainrule(cr, values):
    laps = Laps()
    xs = list(cr.vars(" ".join(f"x{i}" for i in range(len(values)))))
    f = chain_expr(cr, xs)
    laps.lap("expr")
    grads = cr.grad(f, xs)
    laps.lap("grad")
    fn = cr.compile([f, *grads], inputs=xs)
    laps.lap("compile")
    out = fn(*values)
    laps.lap("first_call")
    return laps.times, out, (lambda: fn(*values))


W5_CHILDREN = {"numpy": w5_child_numpy, "jax": w5_child_jax, "chainrule": w5_child_chainrule}
MEM_IMPLS = ("numpy", "numexpr", "jax", "torch", "chainrule")


def child_w5(spec):
    mods, missing = load_impls([spec["impl"]], spec.get("threads"))
    if missing:
        return {"error": missing[spec["impl"]]}
    values = w5_values(spec["n"])
    times, out, again = W5_CHILDREN[spec["impl"]](mods[spec["impl"]], values)
    ref = chain_numpy(np.array(values))
    err = assert_close(f"W5 {spec['impl']} n={spec['n']}", as_outputs(out), ref)
    return {**times, "steady": steady_time(again), "err": err}


def status_kib(key):
    """A VmXXX field of /proc/self/status in KiB, or None off Linux."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss():
    """Restart VmHWM so import-time transients do not count (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def child_mem(spec):
    impl, n = spec["impl"], spec["n"]
    mods, missing = load_impls([impl], spec.get("threads"))
    if missing:
        return {"error": missing[impl]}
    build = BUILDERS["W2"][impl]
    build(mods[impl], w2_data(1000))()  # loads lazy code paths and thread pools first
    gc.collect()
    reset = reset_peak_rss()
    baseline = status_kib("VmRSS")
    data = w2_data(n)
    out = build(mods[impl], data)()
    peak = status_kib("VmHWM") if reset else None
    if peak is None:  # ru_maxrss is in KiB on Linux, but it covers the whole life
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    del out
    return {"baseline_kib": baseline, "peak_kib": peak, "io_bytes": 5 * 8 * n, "hwm_reset": reset}


def child_main(spec_json):
    """Entry point of a measuring subprocess: prints one JSON line."""
    spec = json.loads(spec_json)
    task = {"w5": child_w5, "mem": child_mem}[spec["task"]]
    try:
        result = task(spec)
    except Mismatch as exc:
        result = {"mismatch": str(exc)}
    except Exception as exc:  # noqa: BLE001 - the parent reports it
        result = {"error": f"{type(exc).__name__}: {first_line(exc)}"}
    print(json.dumps(result), flush=True)
    return 0


def run_child(spec, timeout):
    """Run one measurement in a fresh interpreter; never raises."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_child", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"timeout": timeout}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"child exited {proc.returncode}: {tail}"}
    return json.loads(lines[-1])


def child_problem(res):
    """A one-line description of a failed child result, or None when it succeeded."""
    if "timeout" in res and "cap" in res:
        return (
            f"no result within the {res['cap']:.0f} s cap (killed after "
            f"{res['timeout']:.0f} s including start-up)"
        )
    if "timeout" in res:
        return f"not finished within {res['timeout']:.0f} s (killed)"
    if "mismatch" in res:
        return f"MISMATCH: {res['mismatch']}"
    if "error" in res:
        return f"ERROR: {res['error']}"
    return None


def w5_attempts(ctx, impl, n, rep):
    """Whether to run another W5 repetition, and with what time limit."""
    if impl != "jax":
        return CHAINRULE_CHILD_CAP_S
    if ctx.jax_w5_cap <= 0 or (n > 1000 and rep > 0):
        return None  # JAX at large n is attempted once only: it costs minutes
    return ctx.jax_w5_cap + 30.0  # allowance for interpreter start and import


def collect_w5(ctx, impls):
    results = {(impl, n): [] for impl in impls for n in ctx.sizes.w5_ns}
    for n in ctx.sizes.w5_ns:
        for rep in range(ctx.sizes.w5_repeat):
            k = rep % len(impls)
            for impl in impls[k:] + impls[:k]:
                runs = results[(impl, n)]
                timeout = w5_attempts(ctx, impl, n, rep)
                if timeout is None or any(child_problem(r) for r in runs):
                    continue
                spec = {"task": "w5", "impl": impl, "n": n, "threads": ctx.threads}
                res = run_child(spec, timeout)
                if impl == "jax" and "timeout" in res:
                    res["cap"] = ctx.jax_w5_cap
                runs.append(res)
    return results


def w5_row(impl, n, runs):
    problems = [p for p in map(child_problem, runs) if p]
    good = [r for r in runs if not child_problem(r)]

    def med(*keys):
        # A phase an implementation does not have (numpy has no compile) shows as a dash.
        vals = [sum(r[k] for k in keys if k in r) * 1e3 for r in good if any(k in r for k in keys)]
        return median(vals) if vals else None

    expr = med("expr")
    status = problems[0] if problems else ("ok" if good else "not run")
    return [
        impl,
        f"{n:,}",
        str(len(good)),
        fmt(expr),
        fmt(med("grad", "compile")),
        fmt(med("grad", "compile", "first_call")),
        fmt(med("steady")),
        fmt(max(r["err"] for r in good), 2) if good else "—",
        status,
    ]


def run_w5(ctx):
    impls = [i for i in W5_CHILDREN if i in ctx.mods]
    results = collect_w5(ctx, impls)
    header = [
        "impl",
        "n",
        "runs",
        "build expr ms",
        "grad + compile ms",
        "first result ms",
        "steady call ms",
        "max rel err",
        "status",
    ]
    section = Section("W5 build cost: f = Σ sin(x_i x_{i+1}) + exp(-x_i²), n scalar inputs", header)
    for n in ctx.sizes.w5_ns:
        for impl in impls:
            section.rows.append(w5_row(impl, n, results[(impl, n)]))
    for impl in W5_CHILDREN:
        if impl in ctx.missing:
            section.rows.append([impl, "—", "0", *["—"] * 5, "skipped (not importable)"])
    section.notes.append(
        "Each run is a fresh subprocess; medians over runs. first result = grad + compile "
        "+ first call (chainrule's expression construction is the separate column)."
    )
    section.notes.append(
        "numpy: hand-derived vectorised gradient over an array of the n values (no build "
        "step); its first result is a single call."
    )
    if "jax" in impls:
        section.notes.append(
            f"jax: jit(value_and_grad) of the unrolled n-input function; grad = trace "
            f"(lower), then XLA compile. Capped at {ctx.jax_w5_cap:.0f} s; n > 1,000 is "
            "attempted once."
        )
    move_details_to_notes(section)
    return section


def move_details_to_notes(section):
    """Shorten failure cells to their kind; the full text goes to the notes."""
    section.failed = any(r[-1].startswith(("MISMATCH", "ERROR")) for r in section.rows)
    for row in section.rows:
        if row[-1].startswith(("MISMATCH", "ERROR")):
            section.notes.append(f"{row[0]} N/n = {row[1]}: {row[-1]}")
            row[-1] = row[-1].split(":")[0]


def mem_row(impl, n, res):
    problem = child_problem(res)
    if problem:
        return [impl, f"{n:,}", *["—"] * 4, problem]
    mib = 1024.0
    base, peak = res["baseline_kib"] / mib, res["peak_kib"] / mib
    io = res["io_bytes"] / 2**20
    note = "ok" if res.get("hwm_reset") else "ok (peak since start: VmHWM reset failed)"
    return [impl, f"{n:,}", fmt(peak), fmt(base), fmt(peak - base), fmt(peak - base - io), note]


def run_mem(ctx):
    n = ctx.sizes.n_mem
    header = [
        "impl",
        "N",
        "peak RSS MiB",
        "baseline MiB",
        "peak − baseline MiB",
        "above inputs+outputs MiB",
        "status",
    ]
    section = Section(f"Memory: W2 at N = {n:,}, peak RSS in a fresh process", header)
    for impl in MEM_IMPLS:
        if impl in ctx.mods:
            res = run_child(
                {"task": "mem", "impl": impl, "n": n, "threads": ctx.threads}, CHAINRULE_CHILD_CAP_S
            )
            section.rows.append(mem_row(impl, n, res))
        elif impl in ctx.missing:
            section.rows.append([impl, f"{n:,}", *["—"] * 4, "skipped (not importable)"])
    io_mib = 5 * 8 * n / 2**20
    section.notes.append(
        f"Inputs + outputs = 5 float64 arrays = {io_mib:,.0f} MiB. baseline = RSS after "
        "imports and a small warm-up call, before the inputs are allocated; the peak "
        "(VmHWM) is reset at that point."
    )
    if "jax" in ctx.mods:
        section.notes.append(
            "jax copies the NumPy inputs to device buffers, which counts as extra memory."
        )
    move_details_to_notes(section)
    return section


# --------------------------------------------------------------------------
# Environment description and the report file
# --------------------------------------------------------------------------


def cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average():
    try:
        return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        return "n/a"


def environment(ctx):
    """Key/value facts about the machine and the software measured."""
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    facts = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": f"{cores} logical, {usable} usable by this process",
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    for name in ("numpy", "numexpr", "jax", "jaxlib", "torch", "chainrule"):
        facts[name] = version_of(name) or "not installed"
    for name in ("numexpr", "jax", "torch", "chainrule"):
        if name in ctx.missing:
            facts[name] += f" (not importable: {ctx.missing[name]})"
    threads = thread_settings(ctx.mods)
    facts["threads"] = "; ".join(f"{k} {v}" for k, v in threads.items())
    return facts


def report_text(ctx, facts, sections, load_end):
    mode = "QUICK smoke run (small sizes, few repeats)" if ctx.quick else "full run"
    lines = [
        "# chainrule benchmark results",
        "",
        f"Mode: {mode}; {ctx.repeat} interleaved repeats, medians reported.",
        "",
    ]
    lines += [f"- **{k}**: {v}" for k, v in facts.items()]
    lines += [
        f"- **load average**: {facts_load(ctx.load_start, load_end)}",
        f"- **command**: `{ctx.command}`",
        "",
    ]
    lines += [
        (
            "Ratios are time(row) / time(column impl): above 1 is slower, below 1 "
            "faster. See benches/README.md."
        ),
        "",
    ]
    for section in sections:
        lines.append(render(section))
    return "\n".join(lines)


def facts_load(start, end):
    return f"{start} at start, {end} at end (1, 5, 15 min; 2 cores, shared machine)"


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


RUNNERS = {
    "W1": run_w1, "W2": run_w2, "W4": run_w4, "W5": run_w5, "W6": run_w6, "W10": run_w10,
    "MEM": run_mem,
    "W11": run_w11,
}


# --------------------------------------------------------------------------
# Powers (issue 18): W9 softened gravity, a Lennard-Jones energy written with '**' as users
# write it, and a field of x**3, y**0.5, q**1.5; each with its hand-derived NumPy anchor.
# --------------------------------------------------------------------------

W9_SOFTENING = 0.01


def separations(seed, n, r_low, r_high):
    """Separation vectors with lengths uniform in [r_low, r_high] and uniform directions."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(3, n))
    u /= np.sqrt((u * u).sum(axis=0))
    r = rng.uniform(r_low, r_high, n)
    return SimpleNamespace(dx=u[0] * r, dy=u[1] * r, dz=u[2] * r)


def w9_data(n):
    return separations(SEED + 9, n, 0.0, 2.0)


def lj_data(n):
    return separations(SEED + 10, n, 0.9, 2.5)


def field_data(n):
    rng = np.random.default_rng(SEED + 11)
    return SimpleNamespace(
        x=uniform(rng, n, -2.0, 2.0), y=uniform(rng, n, 0.1, 4.0), q=uniform(rng, n, 0.1, 4.0)
    )


def w9_numpy(dx, dy, dz):
    """E = -1/sqrt(s), s = |d|^2 + eps; force = -dE/dd = -d / s^1.5."""
    inv = 1.0 / np.sqrt(dx * dx + dy * dy + dz * dz + W9_SOFTENING)
    k = -(inv * inv * inv)
    return -inv, k * dx, k * dy, k * dz


def lj_numpy(dx, dy, dz):
    """E = 4 (r^-12 - r^-6); force = (48 r^-12 - 24 r^-6) / r^2 * d."""
    ir2 = 1.0 / (dx * dx + dy * dy + dz * dz)
    ir6 = ir2 * ir2 * ir2
    ir12 = ir6 * ir6
    k = (48.0 * ir12 - 24.0 * ir6) * ir2
    return 4.0 * (ir12 - ir6), k * dx, k * dy, k * dz


def field_numpy(x, y, q):
    """f = x^3 + y^0.5 q^1.5 and its partials, written with products and square roots."""
    sy, sq = np.sqrt(y), np.sqrt(q)
    q15 = q * sq
    return x * x * x + sy * q15, 3.0 * x * x, 0.5 * q15 / sy, 1.5 * sy * sq


def w9_energy(dx, dy, dz):
    return -1 / (dx**2 + dy**2 + dz**2 + W9_SOFTENING) ** 0.5


def lj_energy(sqrt, dx, dy, dz):
    r = sqrt(dx**2 + dy**2 + dz**2)
    return 4 * ((1 / r) ** 12 - (1 / r) ** 6)


def field_value(x, y, q):
    return x**3 + y**0.5 * q**1.5


POWER_WORKLOADS = {
    # name: (title, data, numpy anchor, chainrule/jax energy given (sqrt, *args), names, forces?)
    "W9": ("W9 softened gravity: E and the forces -dE/d(dx, dy, dz)", w9_data, w9_numpy,
           lambda sqrt, *a: w9_energy(*a), "dx dy dz", True),
    "LJ": ("Lennard-Jones 4((1/r)**12 - (1/r)**6): E and the forces", lj_data, lj_numpy,
           lj_energy, "dx dy dz", True),
    "FIELD": ("Field x**3 + y**0.5 * q**1.5 and its three partials", field_data, field_numpy,
              lambda sqrt, *a: field_value(*a), "x y q", False),
}  # fmt: skip


def power_args(name, d):
    return [getattr(d, v) for v in POWER_WORKLOADS[name][4].split()]


def power_build_numpy(name):
    return lambda np_, d: lambda: POWER_WORKLOADS[name][2](*power_args(name, d))


def power_build_chainrule(name):
    def build(cr, d):
        _, _, _, energy, names, forces = POWER_WORKLOADS[name]
        xs = cr.vars(names)
        e = energy(cr.sqrt, *xs)
        grads = cr.grad(e, list(xs))
        fn = cr.compile([e, *(-g if forces else g for g in grads)], inputs=list(xs))
        args = power_args(name, d)
        return lambda: fn(*args)

    return build


def power_build_jax(name):
    def build(jax, d):
        _, _, _, energy, names, forces = POWER_WORKLOADS[name]
        jnp = jax.numpy
        k = len(names.split())
        vg = jax.value_and_grad(lambda *a: energy(jnp.sqrt, *a), argnums=tuple(range(k)))
        step = jax.jit(jax.vmap(vg))
        args = [jax.device_put(a) for a in power_args(name, d)]

        def run():
            value, grads = step(*args)
            grads = [-g if forces else g for g in grads]
            return jax.block_until_ready((value, *grads))

        return run

    return build


def power_build_numexpr(name):
    texts = {
        "W9": ("s = dx*dx + dy*dy + dz*dz + 0.01", "-1 / sqrt(s)", "-d / (s * sqrt(s))"),
        "LJ": ("ir2 = 1 / (dx*dx + dy*dy + dz*dz)", "4 * (ir2**6 - ir2**3)",
               "(48 * ir2**6 - 24 * ir2**3) * ir2 * d"),
    }  # fmt: skip

    def build(ne, d):
        if name not in texts:
            return lambda: field_numexpr(ne, d)
        first, value, force = texts[name]
        target, expr = (t.strip() for t in first.split("="))

        def run():
            env = {"dx": d.dx, "dy": d.dy, "dz": d.dz}
            env[target] = ne.evaluate(expr, local_dict=env)
            out = [ne.evaluate(value, local_dict=env)]
            for v in ("dx", "dy", "dz"):
                out.append(ne.evaluate(force, local_dict={**env, "d": env[v]}))
            return tuple(out)

        return run

    return build


def field_numexpr(ne, d):
    env = {"x": d.x, "y": d.y, "q": d.q}
    return (
        ne.evaluate("x**3 + sqrt(y) * q * sqrt(q)", local_dict=env),
        ne.evaluate("3 * x * x", local_dict=env),
        ne.evaluate("0.5 * q * sqrt(q) / sqrt(y)", local_dict=env),
        ne.evaluate("1.5 * sqrt(y) * sqrt(q)", local_dict=env),
    )


def power_runner(name):
    def run(ctx):
        title, make, anchor = POWER_WORKLOADS[name][:3]
        n = ctx.sizes.n_w2
        data = make(n)
        cands = prepare_all(ctx, name, data, [("run", anchor(*power_args(name, data)))])
        time_round_robin(cands, ctx.repeat)
        section = speed_section(f"{title}, N = {n:,}", cands, "ms", 1e3, ("numpy", "jax"))
        section.notes.insert(
            0,
            "NumPy anchor hand-derived with products and square roots; chainrule and JAX "
            "differentiate the '**' form as written.",
        )
        return section

    return run


for _name in POWER_WORKLOADS:
    BUILDERS[_name] = {
        "numpy": power_build_numpy(_name),
        "numexpr": power_build_numexpr(_name),
        "jax": power_build_jax(_name),
        "chainrule": power_build_chainrule(_name),
    }
    RUNNERS[_name] = power_runner(_name)
ALL_WORKLOADS = (*ALL_WORKLOADS[:-1], *POWER_WORKLOADS, ALL_WORKLOADS[-1])


def parse_args(argv):
    p = argparse.ArgumentParser(prog="benches/run.py", description=__doc__.splitlines()[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="small sizes and 5 repeats: a smoke test of well under a minute",
    )
    p.add_argument(
        "--workloads",
        default=",".join(ALL_WORKLOADS),
        help="comma list from " + ",".join(ALL_WORKLOADS),
    )
    p.add_argument(
        "--impls",
        default=None,
        help="comma list from " + ",".join(ALL_IMPLS) + " (default: all that import)",
    )
    p.add_argument("--repeat", type=int, default=None, help="interleaved repeats per workload")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for numexpr, torch and chainrule (default: their own)",
    )
    p.add_argument(
        "--jax-w5-cap",
        type=float,
        default=60.0,
        help="seconds allowed for JAX's W5 first result; 0 skips JAX in W5",
    )
    p.add_argument(
        "--out",
        default=None,
        help="markdown report path; '-' for none (default benches/RESULTS.md, "
        "or benches/RESULTS-quick.md with --quick)",
    )
    p.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def split_list(text, allowed, what):
    items = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in items if s not in allowed]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)}; choose from {', '.join(allowed)}")
    return items


def make_context(args, argv):
    explicit = args.impls is not None
    impls = split_list(args.impls, ALL_IMPLS, "impls") if explicit else list(ALL_IMPLS)
    if "numpy" not in impls:
        impls.insert(0, "numpy")  # every ratio and the memory comparison need it
    mods, missing = load_impls(impls, args.threads)
    sizes = QUICK if args.quick else FULL
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    if argv is not None:
        command += f"  (main argv: {shlex.join(argv)})"
    return SimpleNamespace(
        mods=mods,
        missing=missing,
        explicit=explicit,
        quick=args.quick,
        sizes=sizes,
        repeat=args.repeat or sizes.repeat,
        threads=args.threads,
        jax_w5_cap=args.jax_w5_cap,
        command=command,
        load_start=load_average(),
    )


def output_path(args):
    if args.out == "-":
        return None
    if args.out:
        return Path(args.out)
    return HERE / ("RESULTS-quick.md" if args.quick else "RESULTS.md")


def main(argv=None) -> int:
    """Run the selected workloads; return 0, or 1 if any implementation failed."""
    args = parse_args(argv)
    if args._child:
        return child_main(args._child)
    workloads = split_list(args.workloads, ALL_WORKLOADS, "workloads")
    ctx = make_context(args, argv)
    verify_references()
    facts = environment(ctx)
    print("\n".join(f"{k}: {v}" for k, v in facts.items()), flush=True)
    sections = []
    for name in workloads:
        t0 = time.perf_counter()
        sections.append(RUNNERS[name](ctx))
        print(f"\n{render(sections[-1])}({name} took {time.perf_counter() - t0:.1f} s)", flush=True)
    path = output_path(args)
    if path is not None:
        path.write_text(report_text(ctx, facts, sections, load_average()))
        print(f"\nwrote {path}")
    return exit_code(ctx, sections)


def exit_code(ctx, sections):
    broken = [s.title for s in sections if s.failed]
    # An implementation asked for by name must be there; defaults may be absent.
    absent = [n for n in ctx.missing if ctx.explicit]
    for name in absent:
        print(
            f"!! requested implementation not importable: {name}: {ctx.missing[name]}",
            file=sys.stderr,
        )
    for title in broken:
        print(f"!! failures in: {title}", file=sys.stderr)
    return 1 if broken or absent else 0


if __name__ == "__main__":
    sys.exit(main())
