"""Per-function kernel speed: nanoseconds per value of each elementwise function, chainrule on one
thread against NumPy's ufunc, in one run with interleaved repeats (medians).

    python benches/kernels.py                  # every function both libraries have
    python benches/kernels.py --only sin,erf   # a few
    python benches/kernels.py --out benches/RESULTS-kernels.md

A function gets a row when chainrule has it (``cr.<name>``) and ``REFERENCE`` names its NumPy
spelling and a domain to sample; functions chainrule lacks are listed as skipped. chainrule's
time is a compiled ``f(x)`` over a float64 array, so it includes the call and the output
allocation, as NumPy's does.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time

import numpy as np

# name -> (NumPy function, low, high): the domain is where the function is finite and away from
# its special-case paths, so the row measures the common path of both libraries.
REFERENCE = {
    "sin": (np.sin, -10.0, 10.0),
    "cos": (np.cos, -10.0, 10.0),
    "tan": (np.tan, -1.5, 1.5),
    "exp": (np.exp, -50.0, 50.0),
    "log": (np.log, 1e-3, 1e3),
    "sqrt": (np.sqrt, 0.0, 1e3),
    "tanh": (np.tanh, -10.0, 10.0),
    "sigmoid": (lambda x: 0.5 * np.tanh(0.5 * x) + 0.5, -30.0, 30.0),
    "asin": (np.arcsin, -1.0, 1.0),
    "acos": (np.arccos, -1.0, 1.0),
    "atan": (np.arctan, -10.0, 10.0),
    "sinh": (np.sinh, -10.0, 10.0),
    "cosh": (np.cosh, -10.0, 10.0),
    "asinh": (np.arcsinh, -100.0, 100.0),
    "acosh": (np.arccosh, 1.0, 100.0),
    "atanh": (np.arctanh, -0.99, 0.99),
    "exp2": (np.exp2, -50.0, 50.0),
    "expm1": (np.expm1, -5.0, 5.0),
    "log2": (np.log2, 1e-3, 1e3),
    "log10": (np.log10, 1e-3, 1e3),
    "log1p": (np.log1p, -0.5, 1e3),
    "cbrt": (np.cbrt, -1e3, 1e3),
    "erf": (None, -5.0, 5.0),  # NumPy has no erf; scipy.special's when installed
    "erfc": (None, -5.0, 25.0),
    "softplus": (lambda x: np.logaddexp(0.0, x), -30.0, 30.0),
    "log_sigmoid": (lambda x: -np.logaddexp(0.0, -x), -30.0, 30.0),
    # piecewise, comparisons and logic
    "floor": (np.floor, -1e3, 1e3),
    "ceil": (np.ceil, -1e3, 1e3),
    "round": (np.round, -1e3, 1e3),
    "trunc": (np.trunc, -1e3, 1e3),
}
BINARY_REFERENCE = {
    "atan2": (np.arctan2, -10.0, 10.0),
    "hypot": (np.hypot, -10.0, 10.0),
    "logaddexp": (np.logaddexp, -30.0, 30.0),
    "pow": (np.power, 0.1, 10.0),
    # piecewise, comparisons and logic
    "minimum": (np.minimum, -10.0, 10.0),
    "maximum": (np.maximum, -10.0, 10.0),
    "fmod": (np.fmod, 0.1, 10.0),
    "copysign": (np.copysign, -10.0, 10.0),
    "nextafter": (np.nextafter, -10.0, 10.0),
    "less": (np.less, -10.0, 10.0),
    "where": (lambda c, a: np.where(c > 0, a, -a), -10.0, 10.0),
}


def _scipy(name):
    try:
        import scipy.special as sp
    except ImportError:
        return None
    return getattr(sp, name, None)


def _median_ns(fn, n, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e9 / n


def _rows(cr, names, n, repeat):
    rng = np.random.default_rng(0)
    rows, skipped = [], []
    x, y = cr.var("x"), cr.var("y")
    table = {**{k: (v, 1) for k, v in REFERENCE.items()},
             **{k: (v, 2) for k, v in BINARY_REFERENCE.items()}}
    for name in names:
        (ref, lo, hi), arity = table[name]
        if name == "pow":
            build = lambda a, b: a ** b  # noqa: E731 - the operator, not a function
        elif name == "where":  # as its reference: select by a comparison
            build = lambda c, a: cr.where(c > 0, a, -a)  # noqa: E731
        else:
            build = getattr(cr, name, None)
        ref = ref or _scipy(name)
        if build is None or ref is None:
            why = "chainrule lacks it" if build is None else "no NumPy/SciPy reference"
            skipped.append((name, why))
            continue
        args = [rng.uniform(lo, hi, n) for _ in range(arity)]
        fn = cr.compile(build(*(x, y)[:arity]), inputs=[x, y][:arity])
        fn(*args)
        ref(*args)
        times_cr, times_np = [], []
        for _ in range(repeat):  # interleaved: a burst of load hits both
            times_cr.append(_median_ns(lambda: fn(*args), n, 1))  # noqa: B023 - called at once
            times_np.append(_median_ns(lambda: ref(*args), n, 1))  # noqa: B023
        ns_cr, ns_np = statistics.median(times_cr), statistics.median(times_np)
        rows.append((name, ns_cr, ns_np, ns_cr / ns_np))
    return rows, skipped


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma list of function names")
    parser.add_argument("--n", type=int, default=1_000_000, help="values per call")
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--out", help="also write the markdown table here")
    args = parser.parse_args(argv)
    import chainrule as cr

    names = args.only.split(",") if args.only else [*REFERENCE, *BINARY_REFERENCE]
    with cr.using_threads(1):
        rows, skipped = _rows(cr, names, args.n, args.repeat)
    lines = [
        "### Kernels: ns per value, one thread",
        "",
        f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; "
        f"cores: {os.cpu_count()}; cpu: {platform.processor() or platform.machine()}; "
        f"numpy {np.__version__}; "
        f"{args.repeat} interleaved repeats of {args.n:,} values, medians",
        f"- command: `python benches/kernels.py{' ' + ' '.join(argv or sys.argv[1:])}`".rstrip(),
        "",
        "| function | chainrule ns/value | NumPy ns/value | ratio (below 1: faster) |",
        "|---|---|---|---|",
        *(f"| {n} | {a:.2f} | {b:.2f} | {r:.2f} |" for n, a, b, r in rows),
    ]
    if skipped:
        lines += ["", "Skipped: " + "; ".join(f"{n} ({why})" for n, why in skipped)]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
