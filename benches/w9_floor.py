"""W9's floor on this machine: what reading W9's 3 inputs and writing its 4 outputs costs, against
W9 itself in chainrule and NumPy, and where NumPy's time goes.

Every case is timed interleaved with the others (a burst of load from other processes hits all
of them), medians of ``--repeat`` rounds. Also reports minor page faults per call and whether
an output array landed on transparent huge pages (``AnonHugePages`` of its mapping in
``/proc/self/smaps``).

    python benches/w9_floor.py [--n 1000000] [--repeat 41]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time

import numpy as np

import chainrule as cr

EPS = 0.01


def w9_numpy(dx, dy, dz):
    inv = 1.0 / np.sqrt(dx * dx + dy * dy + dz * dz + EPS)
    k = -(inv * inv * inv)
    return -inv, k * dx, k * dy, k * dz


DEAD_AFTER = {"sum": ("dx*dx", "dy*dy"), "sum2": ("sum", "dz*dz"), "+eps": ("sum2",),
              "sqrt": ("+eps",), "1/": ("sqrt",), "*inv": ("inv*inv",), "-k": ("*inv",)}


def numpy_split(dx, dy, dz, laps):
    """benches/run.py's NumPy W9, one step at a time: appends each step's seconds to laps."""
    steps = [
        ("dx*dx", lambda v: dx * dx),
        ("dy*dy", lambda v: dy * dy),
        ("sum", lambda v: v["dx*dx"] + v["dy*dy"]),
        ("dz*dz", lambda v: dz * dz),
        ("sum2", lambda v: v["sum"] + v["dz*dz"]),
        ("+eps", lambda v: v["sum2"] + EPS),
        ("sqrt", lambda v: np.sqrt(v["+eps"])),
        ("1/", lambda v: 1.0 / v["sqrt"]),
        ("inv*inv", lambda v: v["1/"] * v["1/"]),
        ("*inv", lambda v: v["inv*inv"] * v["1/"]),
        ("-k", lambda v: -v["*inv"]),
        ("-inv", lambda v: -v["1/"]),
        ("k*dx", lambda v: v["-k"] * dx),
        ("k*dy", lambda v: v["-k"] * dy),
        ("k*dz", lambda v: v["-k"] * dz),
    ]
    v = {}
    for name, f in steps:
        t0 = time.perf_counter()
        v[name] = f(v)
        laps.setdefault(name, []).append(time.perf_counter() - t0)
        # Temporaries die where NumPy's expression drops them (so the allocator reuses them).
        for dead in DEAD_AFTER.get(name, ()):
            del v[dead]
    return v


def huge_kib(arr) -> int:
    """AnonHugePages (KiB) of the mapping that holds arr's first byte."""
    addr = arr.ctypes.data
    inside = False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()[0]
            if "-" in head and ":" not in head:
                lo, hi = (int(v, 16) for v in head.split("-"))
                inside = lo <= addr < hi
            elif inside and head == "AnonHugePages:":
                return int(line.split()[1])
    return -1


def cases(n):
    rng = np.random.default_rng(9)
    dx, dy, dz = (rng.uniform(-1.2, 1.2, n) for _ in range(3))
    x, y, z = cr.vars("dx dy dz")
    e = -1 / (x**2 + y**2 + z**2 + EPS) ** 0.5
    w9 = cr.compile([e, *(-g for g in cr.grad(e, [x, y, z]))], inputs=[x, y, z])
    # The cheapest function with W9's traffic: 3 inputs read, 4 outputs written, one add each.
    move = cr.compile([x + y, y + z, z + x, x + y + z], inputs=[x, y, z])
    outs = [np.empty(n) for _ in range(4)]
    tmp = [np.empty(n) for _ in range(4)]

    def numpy_pre():  # NumPy's W9 with every temporary preallocated: no allocation at all
        s, t, u, k = tmp
        np.multiply(dx, dx, out=s)
        np.multiply(dy, dy, out=t)
        np.add(s, t, out=s)
        np.multiply(dz, dz, out=t)
        np.add(s, t, out=s)
        np.add(s, EPS, out=s)
        np.sqrt(s, out=s)
        np.divide(1.0, s, out=u)
        np.multiply(u, u, out=k)
        np.multiply(k, u, out=k)
        np.negative(k, out=k)
        np.negative(u, out=outs[0])
        np.multiply(k, dx, out=outs[1])
        np.multiply(k, dy, out=outs[2])
        np.multiply(k, dz, out=outs[3])

    def numpy_stream():  # NumPy's cheapest 3-in/4-out pass over preallocated outputs
        np.add(dx, dy, out=outs[0])
        np.add(dy, dz, out=outs[1])
        np.add(dz, dx, out=outs[2])
        np.add(outs[0], dz, out=outs[3])

    def fresh4():  # four fresh 8 MB arrays, each written once (the page-fault cost)
        return [np.ones(n) for _ in range(4)]

    table = {
        "numpy W9 (as benches/run.py)": lambda: w9_numpy(dx, dy, dz),
        "numpy W9, temporaries preallocated": numpy_pre,
        "numpy 3-in/4-out adds, out=": numpy_stream,
        "numpy 4 fresh arrays written (np.ones)": fresh4,
    }
    for t in (1, 2):
        table[f"chainrule move 3-in/4-out, fresh, {t} thr"] = (t, lambda: move(dx, dy, dz))
        table[f"chainrule move 3-in/4-out, out=, {t} thr"] = (t, lambda: move(dx, dy, dz, out=outs))
        table[f"chainrule W9, fresh, {t} thr"] = (t, lambda: w9(dx, dy, dz))
        table[f"chainrule W9, out=, {t} thr"] = (t, lambda: w9(dx, dy, dz, out=outs))
    return table, (w9, move, dx, dy, dz)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=41)
    args = p.parse_args(argv)
    table, (w9, move, dx, dy, dz) = cases(args.n)
    runs = {}
    for name, case in table.items():
        threads, fn = case if isinstance(case, tuple) else (1, case)
        runs[name] = (threads, fn)
        with cr.using_threads(threads):
            fn()
    times = {name: [] for name in runs}
    faults = {name: [] for name in runs}
    for _ in range(args.repeat):
        for name, (threads, fn) in runs.items():
            with cr.using_threads(threads):
                f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
                faults[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
    laps = {}
    for _ in range(args.repeat):
        numpy_split(dx, dy, dz, laps)
    print(f"n = {args.n}, {args.repeat} interleaved rounds, load {os.getloadavg()}")
    print("| case | median ms | min ms | page faults / call |")
    print("|---|---|---|---|")
    for name in runs:
        t = times[name]
        med, low, pf = statistics.median(t) * 1e3, min(t) * 1e3, statistics.median(faults[name])
        print(f"| {name} | {med:.2f} | {low:.2f} | {pf:.0f} |")
    print("NumPy W9 step by step (median ms):",
          ", ".join(f"{k} {statistics.median(t) * 1e3:.2f}" for k, t in laps.items()),
          f"; sum {sum(statistics.median(t) for t in laps.values()) * 1e3:.2f}")
    out = w9(dx, dy, dz)
    ref = w9_numpy(dx, dy, dz)
    print("huge pages (KiB) in the mapping of a chainrule output:", huge_kib(out[1]),
          "; of a NumPy result:", huge_kib(ref[1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
