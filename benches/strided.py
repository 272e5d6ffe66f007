"""Strided and broadcast arguments read in place (issue 19, item 2).

Usage::

    python benches/strided.py [--n 200000] [--repeat 41] [--threads T] [--broadcast 3e9]

W11's logistic regression, its loss mean(softplus(-y * (w . x + b))) and 21 partials, with the
20 features passed as column views ``X[:, j]`` of a C-ordered (N, 20) matrix, against the same
call with each column made contiguous first (``np.ascontiguousarray``, not timed) and against
hand-written NumPy. Calls are interleaved and summarised by medians (the machine is shared and
noisy); the ratio column is each median over the contiguous call's.

``--broadcast N`` also times ``cr.sum(x * 2)`` over ``np.broadcast_to(1.0, (N,))`` in a fresh
process and reports the peak RSS growth (VmHWM), which a copy would make 8 N bytes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np

import chainrule as cr

FEATURES = 20


def logistic(n_features: int = FEATURES) -> cr.Function:
    xs = [cr.var(f"x{j}") for j in range(n_features)]
    ws = [cr.var(f"w{j}") for j in range(n_features)]
    b, y = cr.vars("b y")
    z = b
    for w, x in zip(ws, xs, strict=True):
        z = z + w * x
    # softplus(-y z), spelled with the ops every build of the core has.
    loss = cr.mean(-cr.log(cr.sigmoid(y * z)))
    return cr.compile([loss, *cr.grad(loss, [*ws, b])], inputs=[*xs, y, *ws, b])


def numpy_logistic(columns, y, w, b):
    z = b + sum(wj * xj for wj, xj in zip(w, columns, strict=True))
    t = -y * z
    loss = np.mean(np.logaddexp(0.0, t))
    slope = -y / (1.0 + np.exp(-t)) / len(y)
    return [loss, *(np.dot(slope, xj) for xj in columns), slope.sum()]


def timed(fn) -> tuple[float, float]:
    """Wall time and the process's CPU time (all threads) of one call: on a shared machine the
    CPU time is the steadier of the two, as waiting for a core does not count."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def bench_columns(n: int, repeat: int) -> None:
    rng = np.random.default_rng(19)
    X = rng.normal(size=(n, FEATURES))
    y = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    w = list(rng.normal(size=FEATURES) * 0.3)
    b = 0.1
    fn = logistic()
    views = [X[:, j] for j in range(FEATURES)]
    contiguous = [np.ascontiguousarray(c) for c in views]
    got, want = fn(*views, y, *w, b), fn(*contiguous, y, *w, b)
    if any(g.tobytes() != e.tobytes() for g, e in zip(got, want, strict=True)):
        sys.exit("column views and contiguous columns disagree")
    ref = numpy_logistic(contiguous, y, w, b)
    if not np.allclose(got, ref, rtol=1e-9, atol=1e-12):
        sys.exit("chainrule disagrees with the NumPy reference")
    runs = {
        "chainrule, X[:, j] views": lambda: fn(*views, y, *w, b),
        "chainrule, contiguous columns": lambda: fn(*contiguous, y, *w, b),
        "chainrule, np.ascontiguousarray per call":
            lambda: fn(*[np.ascontiguousarray(c) for c in views], y, *w, b),
        "NumPy, X[:, j] views": lambda: numpy_logistic(views, y, w, b),
    }
    walls: dict[str, list[float]] = {k: [] for k in runs}
    cpus: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(3):
        for run in runs.values():
            run()
    for _ in range(repeat):
        for name, run in runs.items():
            wall, cpu = timed(run)
            walls[name].append(wall)
            cpus[name].append(cpu)
    base = "chainrule, contiguous columns"
    wall0, cpu0 = statistics.median(walls[base]), statistics.median(cpus[base])
    print(f"W11 logistic regression, N = {n}, {FEATURES} features, "
          f"{cr.get_num_threads()} thread(s), medians of {repeat} interleaved calls")
    print("| call | wall ms (IQR) | / contiguous | CPU ms (IQR) | / contiguous |")
    print("|---|---|---|---|---|")
    for name in runs:
        w, c = walls[name], cpus[name]
        wq, cq = statistics.quantiles(w, n=4), statistics.quantiles(c, n=4)
        wm, cm = statistics.median(w), statistics.median(c)
        print(f"| {name} | {wm * 1e3:.2f} ({(wq[2] - wq[0]) * 1e3:.2f}) | {wm / wall0:.2f}x "
              f"| {cm * 1e3:.2f} ({(cq[2] - cq[0]) * 1e3:.2f}) | {cm / cpu0:.2f}x |")


BROADCAST_CHILD = """
import sys, time
import numpy as np
import chainrule as cr

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

n = int(float(sys.argv[1]))
x = cr.var("x")
fn = cr.compile(cr.sum(x * 2), inputs=[x])
fn(np.broadcast_to(1.0, (4096,)))
before = hwm()
start = time.perf_counter()
total = fn(np.broadcast_to(1.0, (n,)))
print(total, time.perf_counter() - start, hwm() - before)
"""


def bench_broadcast(n: int) -> None:
    env = {**os.environ, "CHAINRULE_NUM_THREADS": str(cr.get_num_threads())}
    out = subprocess.run([sys.executable, "-c", BROADCAST_CHILD, str(n)], capture_output=True,
                         text=True, check=True, env=env)
    total, seconds, grown = out.stdout.split()
    print(f"\ncr.sum(x * 2) over np.broadcast_to(1.0, ({int(n)},)), "
          f"{cr.get_num_threads()} thread(s): "
          f"{float(total)!r} (exact: {2.0 * int(n)!r}) in {float(seconds):.2f} s, "
          f"peak RSS growth {int(grown) / 2**20:.1f} MiB (a copy: {8 * int(n) / 2**30:.1f} GiB)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=41)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--broadcast", type=float,
                        help="also time a sum over a broadcast view of this size")
    args = parser.parse_args(argv)
    if args.threads:
        cr.set_num_threads(args.threads)
    bench_columns(args.n, args.repeat)
    if args.broadcast:
        bench_broadcast(args.broadcast)


if __name__ == "__main__":
    main()
