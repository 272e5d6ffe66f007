"""Scale-out benchmark: W1 and W2 evaluated over Dask arrays on a LocalCluster, against the same
compiled function called in memory on the same data.

    python benches/scaleout.py            # N = 1e8 (in memory needs ~5 GB, the cluster ~5 GB)
    python benches/scaleout.py --quick    # N = 1e7

W2 is the gradient field f = sin(cos(x))*exp(-y**2) + log(1 + x**2)*sigmoid(x*y) with df/dx and
df/dy, per sample; on Dask its outputs are persisted on the workers (where the next step of a
pipeline would use them), and, once, gathered to the client. W1 is the article's network: J and
dJ/d(w1, b1, w2, b2), five numbers, so a run is one Dask computation, like one training epoch;
it is also timed at N = 1e5, where the fixed cost of a Dask computation dominates. Inputs are
generated on the workers and persisted there before timing (data already where it is used);
the in-memory run gets the same values, fetched from the cluster. Every timing is the median
of --repeat runs; results are checked against the in-memory ones before they are reported.

Appends a section to benches/RESULTS-scaleout.md (--out - writes none). Needs
`pip install "dask[array]" distributed`. Standalone: it does not use benches/run.py.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="N = 1e7 instead of 1e8")
    p.add_argument("--n", type=float, default=None, help="samples (overrides --quick)")
    p.add_argument("--chunk", type=float, default=None, help="samples per chunk (default N/20)")
    p.add_argument("--repeat", type=int, default=3, help="runs per timing; the median is shown")
    p.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes")
    p.add_argument("--threads-per-worker", type=int, default=1)
    p.add_argument("--out", default=str(HERE / "RESULTS-scaleout.md"), help="report; - for none")
    args = p.parse_args(argv)
    args.n = int(args.n or (1e7 if args.quick else 1e8))
    args.chunk = int(args.chunk or max(1, args.n // 20))
    return args


def workloads():
    import chainrule as cr

    x, y = cr.vars("x y")
    f = cr.sin(cr.cos(x)) * cr.exp(-(y**2)) + cr.log(1 + x**2) * cr.sigmoid(x * y)
    w2 = cr.compile([f, *cr.grad(f, [x, y])], inputs=[x, y])
    w1_, b1, w2_, b2 = cr.vars("w1 b1 w2 b2")
    yhat = cr.sigmoid(w2_ * cr.sigmoid(w1_ * x + b1) + b2)
    loss = cr.mean((y - yhat) ** 2)
    w1 = cr.compile([loss, *cr.grad(loss, [w1_, b1, w2_, b2])], inputs=[x, y, w1_, b1, w2_, b2])
    return w1, w2


PARAMS = (0.7, -0.2, 1.3, 0.1)


def timed(fn, repeat: int) -> tuple[float, list[float]]:
    """Median wall time of ``repeat`` calls (and all of them)."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    import dask
    import dask.array as da
    import distributed

    import chainrule as cr

    w1, w2 = workloads()
    n, chunk, rep = args.n, args.chunk, args.repeat
    rows: list[tuple[str, str, float | None, float | None, float | None, str]] = []
    load = os.getloadavg()[0]
    print(f"N = {n:.0e}, chunks of {chunk:.0e}, {args.workers} workers x "
          f"{args.threads_per_worker} threads, load {load:.1f}", flush=True)

    t0 = time.perf_counter()
    cluster = distributed.LocalCluster(n_workers=args.workers,
                                       threads_per_worker=args.threads_per_worker,
                                       processes=True, host="127.0.0.1", dashboard_address=None)
    client = distributed.Client(cluster)
    start = time.perf_counter() - t0
    rng = da.random.default_rng(0)
    xd = rng.uniform(-2, 2, n, chunks=chunk).persist()
    yd = rng.uniform(-2, 2, n, chunks=chunk).persist()
    td = rng.uniform(0, 1, n, chunks=chunk).persist()  # W1's targets
    distributed.wait([xd, yd, td])

    # -- on the cluster ------------------------------------------------------------------------
    def w2_persist():
        outs = client.persist(list(w2(xd, yd)))
        distributed.wait(outs)
        return outs

    w2_c, _ = timed(w2_persist, rep)
    kept = w2_persist()
    w1_c, _ = timed(lambda: dask.compute(*w1(xd, td, *PARAMS)), rep)
    w1_lazy = dask.compute(*w1(xd, td, *PARAMS))
    small = 100_000
    xs_d, ts_d = xd[:small].persist(), td[:small].persist()
    w1s_c, _ = timed(lambda: dask.compute(*w1(xs_d, ts_d, *PARAMS)), max(rep, 5))
    gather_c, _ = timed(lambda: dask.compute(*w2(xd, yd)), 1)

    # -- in memory, same values ---------------------------------------------------------------
    # Arrays gathered from workers can sit in unaligned buffers, which chainrule rejects.
    x, y, t = (np.require(a.compute(), np.float64, "CA") for a in (xd, yd, td))
    w2_m, _ = timed(lambda: w2(x, y), rep)
    expected = w2(x, y)
    # Per sample: bitwise, checked at both ends.
    for lazy, exact in zip(kept, expected, strict=True):
        for part in (slice(0, chunk + 10), slice(n - chunk - 10, n)):
            assert np.array_equal(lazy[part].compute(), exact[part]), "W2 mismatch"
    del expected, kept
    w1_m, _ = timed(lambda: w1(x, t, *PARAMS), rep)
    for a, b in zip(w1_lazy, w1(x, t, *PARAMS), strict=True):
        assert abs(a - b) <= 1e-12 * abs(b), ("W1 mismatch", a, b)
    w1s_m, _ = timed(lambda: w1(x[:small], t[:small], *PARAMS), max(rep, 5))
    client.close()
    cluster.close()

    # -- Dask's threaded scheduler in this process, on the in-memory arrays --------------------
    xt, yt, tt = (da.from_array(a, chunks=chunk) for a in (x, y, t))
    w2_t, _ = timed(lambda: dask.persist(*w2(xt, yt), scheduler="threads"), rep)
    w1_t, _ = timed(lambda: dask.compute(*w1(xt, tt, *PARAMS), scheduler="threads"), rep)

    cl = f"LocalCluster {args.workers}x{args.threads_per_worker}"
    rows += [
        ("W2 f, df/dx, df/dy (persist on workers)", f"{n:.0e}", w2_m, w2_t, w2_c, cl),
        ("W2, results gathered to the client", f"{n:.0e}", w2_m, None, gather_c, cl + ", once"),
        ("W1 J, dJ/dtheta (one training step)", f"{n:.0e}", w1_m, w1_t, w1_c, cl),
        ("W1 fixed cost per computation", f"{small:.0e}", w1s_m, None, w1s_c, cl),
    ]
    report = render(args, rows, start, load, cr, dask, distributed)
    print(report)
    if args.out != "-":
        path = Path(args.out)
        head = "" if path.exists() else HEADER
        with path.open("a") as fh:
            fh.write(head + report + "\n")
        print(f"appended to {path}")
    return 0


HEADER = """# Scale-out results (benches/scaleout.py)

chainrule over Dask arrays on a LocalCluster against the same compiled function in memory.
Each section is one run, appended by `python benches/scaleout.py [--quick]`. The development
machine has 2 cores, shared with other jobs: the cluster and the in-memory call compete for the
same 2 cores, so these numbers show the cost of going through Dask, not a speed-up (that needs
more machines, or more cores than one process uses).

"""


def render(args, rows, start: float, load: float, cr, dask, distributed) -> str:
    def cell(v):
        return "-" if v is None else f"{v:.3f}"

    def ratio(a, b):
        return "-" if a is None or b is None else f"{b / a:.2f}"

    cmd = "python benches/scaleout.py " + " ".join(sys.argv[1:]) if argv_is_cli() else "main()"
    lines = [
        f"## {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}, N = {args.n:.0e}",
        "",
        f"- command: `{cmd.strip()}`",
        (f"- machine: {os.cpu_count()} cores (shared; load average {load:.1f} at start), "
         f"{platform.machine()}, {platform.system()}; Python {platform.python_version()}"),
        (f"- versions: chainrule {cr.__version__}, numpy {np.__version__}, "
         f"dask {dask.__version__}, distributed {distributed.__version__}"),
        (f"- in memory: one call, {cr.get_num_threads()} chainrule threads; Dask: chunks of "
         f"{args.chunk:.0e} samples, one chainrule thread per task (the default inside "
         f"workers); cluster start {start:.1f} s (not in the timings)"),
        f"- median of {args.repeat} runs (5 for N = 1e5), seconds",
        "",
        "| workload | N | in memory | Dask threads | cluster | cluster / memory | cluster |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, n, mem, thr, clu, how in rows:
        lines.append(f"| {name} | {n} | {cell(mem)} | {cell(thr)} | {cell(clu)} | "
                     f"{ratio(mem, clu)} | {how} |")
    return "\n".join(lines) + "\n"


def argv_is_cli() -> bool:
    return Path(sys.argv[0]).name == "scaleout.py"


if __name__ == "__main__":
    sys.exit(main())
