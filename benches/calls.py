"""Per-call costs by argument kind and batch size: chainrule against NumPy and JAX.

Usage::

    python benches/calls.py [--repeat K] [--out benches/RESULTS-calls.md]

Rows are W2's value and gradient (f, df/dx, df/dy; W4 is its single point) called on the
same values passed as different kinds, and W1's network (J and its 4 partials) on 32 and
1,000 samples. Every result is checked against the NumPy reference of `run.py` first. The
timings are medians of interleaved rounds, each round a batch of calls long enough (~2 ms)
to be above the clock's noise; chainrule is timed with its default thread count and with
one thread, so the two columns show whether waking the pool ever costs a small call.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402 - the workloads and references live there

HERE = Path(__file__).resolve().parent
ROUND_S = 0.002


def w2_rows():
    """(kind, samples, x, y, keywords?) for W2: the same point as every kind, then arrays."""
    x0, y0 = run.W4_POINT
    rows = [
        ("Python float", 1, x0, y0, False),
        ("Python float, keywords", 1, x0, y0, True),
        ("Python int", 1, 1, -2, False),
        ("np.float64", 1, np.float64(x0), np.float64(y0), False),
        ("np.float32", 1, np.float32(x0), np.float32(y0), False),
        ("np.int64", 1, np.int64(1), np.int64(-2), False),
        ("0-d array", 1, np.array(x0), np.array(y0), False),
        ("1-element array", 1, np.array([x0]), np.array([y0]), False),
    ]
    rng = np.random.default_rng(run.SEED)
    for n in (32, 100, 1_000, 10_000, 100_000):
        a, b = rng.uniform(-2, 2, n), rng.uniform(-2, 2, n)
        rows.append((f"float64 array, {n:,}", n, a, b, False))
    a = rng.uniform(-2, 2, 1_000)
    a32, b32 = a.astype(np.float32), a[::-1].astype(np.float32)
    rows.append(("float32 array, 1,000", 1_000, a32, b32, False))
    return rows


def calls_for(fn):
    """Calls per round, from a measured estimate of one call."""
    t0, k = time.perf_counter(), 0
    while time.perf_counter() - t0 < 0.01:
        fn()
        k += 1
    return max(1, int(ROUND_S / ((time.perf_counter() - t0) / k)))


def batch(fn, calls, threads=None):
    """`calls` calls of fn, on `threads` threads if given (set once around the batch, so the
    setting's own cost is not in the time per call)."""
    import chainrule as cr

    def go():
        for _ in range(calls):
            fn()

    def on_threads():
        with cr.using_threads(threads):
            go()

    return on_threads if threads else go


def time_rows(jobs, repeat):
    """jobs: list of (key, fn, threads); returns key -> median seconds per call, interleaved."""
    prepared = []
    for key, fn, threads in jobs:
        calls = calls_for(fn)
        prepared.append((key, batch(fn, calls, threads), calls))
    samples = {key: [] for key, _, _ in prepared}
    for r in range(repeat):
        gc.collect()
        k = r % len(prepared)
        for key, go, calls in prepared[k:] + prepared[:k]:
            t0 = time.perf_counter()
            go()
            samples[key].append((time.perf_counter() - t0) / calls)
    return {key: statistics.median(v) for key, v in samples.items()}


def build(cr, jax):
    """Rows of (label, {impl: callable}) with every callable's result checked."""
    fn = run.w2_chainrule_fn(cr)
    jax_point = jax.jit(run.w2_jax_fn(jax)) if jax else None
    jax_batch = jax.jit(jax.vmap(run.w2_jax_fn(jax))) if jax else None
    rows = []
    for kind, n, a, b, keywords in w2_rows():
        ref = run.w2_numpy(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
        if keywords:
            impls = {"chainrule": lambda a=a, b=b: fn(x=a, y=b)}
        else:
            impls = {"chainrule": lambda a=a, b=b: fn(a, b)}
        impls["numpy"] = lambda a=a, b=b: run.w2_numpy(a, b)
        # JAX computes float32 arguments in float32: other work, left out.
        if jax and np.result_type(a) != np.float32:
            step = jax_batch if np.ndim(a) else jax_point
            impls["jax"] = lambda a=a, b=b, step=step: jax.block_until_ready(flat_jax(step(a, b)))
        rows.append((f"W2, {kind}", n, impls, ref))
        if n == 100_000:
            out = (np.empty(n), np.empty(n), np.empty(n))
            impls = dict(impls, chainrule=lambda a=a, b=b, out=out: fn(a, b, out=out))
            rows.append((f"W2, {kind}, out=", n, impls, ref))
    w1 = run.w1_build_chainrule
    for n in (32, 1_000):
        d = run.w1_data(n)
        ref = run.w1_numpy(d.x, d.y, *d.params)
        impls = {"chainrule": w1(cr, d), "numpy": run.w1_build_numpy(np, d)}
        if jax:
            impls["jax"] = run.w1_build_jax(jax, d)
        rows.append((f"W1 network, {n:,} samples", n, impls, ref))
    for label, _, impls, ref in rows:
        impls["chainrule, 1 thread"] = impls["chainrule"]
        for name, f in list(impls.items()):
            try:
                got = f()
            except TypeError:
                if name != "jax":
                    raise
                del impls[name]  # jax.grad refuses integer arguments: a dash in the table
                continue
            if name != "numpy":
                run.assert_close(f"{label} {name}", [np.asarray(g, dtype=np.float64) for g in got],
                                 [np.asarray(w) for w in ref])
    return rows


def flat_jax(result):
    value, (gx, gy) = result
    return value, gx, gy


def table(rows, medians, names):
    head = ["call", *[f"{n} µs" for n in names], "chainrule / numpy", "chainrule / jax",
            "2 threads / 1"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, *_ in rows:
        t = {n: medians.get((label, n)) for n in names}
        cells = [label, *[run.fmt(t[n] * 1e6) if t[n] else "—" for n in names]]
        for other in ("numpy", "jax"):
            cells.append(run.fmt_ratio(run.ratio(t["chainrule"], t.get(other))))
        cells.append(run.fmt_ratio(run.ratio(t["chainrule"], t["chainrule, 1 thread"])))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="benches/calls.py", description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=21)
    p.add_argument("--out", default=str(HERE / "RESULTS-calls.md"))
    args = p.parse_args(argv)
    import chainrule as cr

    try:
        jax = run._load_jax(None)
    except ImportError:
        jax = None
    load_start = run.load_average()
    rows = build(cr, jax)
    names = ["chainrule", "chainrule, 1 thread", "numpy", *(["jax"] if jax else [])]
    jobs = [((label, n), impls[n], 1 if n.endswith("1 thread") else None)
            for label, _, impls, _ in rows for n in names if n in impls]
    medians = time_rows(jobs, args.repeat)
    facts = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": run.cpu_model(),
        "cores": f"{os.cpu_count()} logical; chainrule threads {cr.get_num_threads()}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "jax": jax.__version__ if jax else "not installed",
        "load average": f"{load_start} at start, {run.load_average()} at end",
        "command": f"`{shlex.join([Path(sys.executable).name, *sys.argv])}`",
    }
    text = "\n".join([
        "# Per-call costs by argument kind and batch size",
        "",
        *[f"- **{k}**: {v}" for k, v in facts.items()],
        "",
        f"Medians of {args.repeat} interleaved rounds of ~2 ms of calls; µs per call. Every "
        "result is checked against the NumPy reference first. W2 is f, df/dx and df/dy; NumPy "
        "is the hand-derived gradient (run.py's), JAX `jit(value_and_grad)` (with `vmap` "
        "over arrays), given the same objects; it refuses integer arguments to grad and "
        "computes float32 ones in float32, hence the dashes. 2 threads / 1: chainrule's "
        "default thread count against one thread. `out=`: chainrule writes into arrays "
        "allocated once (NumPy and JAX as in the row above).",
        "",
        table(rows, medians, names),
        "",
    ])
    print(text)
    if args.out != "-":
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
