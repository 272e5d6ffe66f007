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

The networks themselves, per library, are in ``dense_nets.py``; this file checks, times and
reports them. Every implementation's results are checked against NumPy's (rtol 1e-9,
relative to each output's largest magnitude) before anything is timed; a disagreement marks
the row MISMATCH and the script exits with 1. Timings are medians of interleaved rounds in
one process.
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
import dense_nets as nets  # noqa: E402 - the networks, per library
import run  # noqa: E402 - timing, checking and formatting helpers live there

ALL_WORKLOADS = ("a", "b", "c", "d")
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
    if "chainrule" in mods and nets.has_arrays(mods["chainrule"]):
        mods["chainrule arrays"] = mods["chainrule"]
    elif "chainrule" in mods:
        missing["chainrule arrays"] = nets.ARRAYS_MISSING
    else:
        missing["chainrule arrays"] = missing["chainrule"]
    return mods, missing


def prepare_rows(rows, mods, missing, net, ref, workload):
    """Build and check every row; a failed check leaves the row untimed."""
    cands = []
    for name, lib, build in rows:
        if lib not in mods:
            cands.append(run.Candidate(name, status=missing[lib]))
        elif build is nets.build_numpy_matmuls:
            cand = run.Candidate(name)
            cand.runs["run"] = build(mods, net)
            cands.append(cand)
        else:
            refs = [("run", ref)]
            cands.append(run.prepare(name, mods, build, net, refs, workload=workload))
        # Set around a whole timed run: threadpoolctl's own cost stays out of the timing.
        cands[-1].limits = mods.get(lib) if lib == "numpy 1 BLAS thread" and lib in mods \
            else contextlib.nullcontext
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


def child_main(spec_json):
    """Entry point of a measuring subprocess: prints one JSON line."""
    spec = json.loads(spec_json)
    net = nets.big_net(spec["n"])
    try:
        times, out, again = nets.CHILDREN[spec["impl"]][1](net)
        if out is not None:
            err = run.assert_close(f"(d) {spec['impl']}", run.as_outputs(out),
                                   nets.numpy_value_grad(net.X, net.Y, *net.params))
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
    impls = [name for name, (lib, _) in nets.CHILDREN.items() if lib in mods]
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
    for name, (lib, _) in nets.CHILDREN.items():
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
    # The issue's words also read as "half of NumPy's time, NumPy doing its products with
    # matmul"; W8's five products are 17.0 MFLOP, and half the matmul time asks for ~108
    # GFLOP/s, more than this machine's two cores reach in one large dgemm.
    ("a", "W8 value + gradient <= 0.5 x NumPy's time (hand-written backprop on matmuls)",
     ("numpy", "numpy, 1 BLAS thread"), 0.5),
    ("a", "W8 value + gradient <= JAX", ("jax jit(value_and_grad)",), 1.0),
    ("b", "W8 SGD epoch <= 2 x JAX lax.scan", ("jax lax.scan",), 2.0),
    ("c", "784-30-10 value + gradient <= JAX", ("jax jit(value_and_grad)",), 1.0),
    ("d", "784-30-10 first result <= JAX's jit + first call", ("jax",), 1.0),
)


def targets_section(medians):
    rows = ("chainrule arrays", "chainrule arrays, epoch in the core", "chainrule scalar-vars")
    header = ["target", *rows]
    section = run.Section("Targets of issue 20 (ratio to the named anchor; met when <= limit)",
                          header)
    for workload, what, anchors, limit in TARGETS:
        if workload not in medians:
            continue
        med = medians[workload]
        anchor = min((med[a] for a in anchors if med.get(a)), default=None)
        cells = []
        for row in rows:
            r = run.ratio(med.get(row), anchor)
            verdict = "—" if r is None else ("met" if r <= limit else "not met")
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


def environment(mods, missing, quick, repeat, load_start, data):
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
        "data": "; ".join(f"{k}: {v}" for k, v in data.items()),
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
    nets.verify_numpy_gradient(digits)
    nets.verify_numpy_gradient(big)
    plan = {}
    if "a" in workloads:
        ref = nets.numpy_value_grad(digits.X, digits.Y, *digits.params)
        plan["a"] = (f"(a) W8 64-30-10, {len(digits.X):,} samples: one full-batch value + "
                     "gradient", nets.VALUE_GRAD_ROWS, digits, ref)
    if "b" in workloads:
        steps = len(nets.epoch_order(len(digits.X))) // nets.BATCH
        plan["b"] = (f"(b) W8 64-30-10: one epoch of batch-{nets.BATCH} SGD ({steps} steps, "
                     f"lr {nets.LR})", nets.EPOCH_ROWS, digits, nets.numpy_epoch(digits))
    if "c" in workloads:
        ref = nets.numpy_value_grad(big.X, big.Y, *big.params)
        plan["c"] = (f"(c) 784-30-10, {len(big.X):,} samples: one value + gradient",
                     nets.VALUE_GRAD_ROWS, big, ref)
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
    digits, big = nets.digits_net(), nets.big_net(sizes.n_big)
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
            per_step = len(nets.epoch_order(len(digits.X))) // nets.BATCH
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
