"""The ``chainrule`` command line: ``train``, ``diff`` (with ``--explain``, ``--check`` and
``--latex``) and ``bench``.

Every command returns an exit code instead of raising: 0 on success; 1 when the command ran but
the answer is "no" (a wrong ``--check`` candidate, an expression too big to explain) or something
it needs is missing (matplotlib, the benchmark runner); 2 for bad input (argparse errors,
expressions that do not parse).

``--explain`` is :mod:`chainrule.explain`.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from pathlib import Path

import numpy as np

import chainrule as cr

from . import data
from .explain import MAX_EXPLAIN_STEPS, explain, labelled
from .gradcheck import has_reduction

__all__ = ["main"]

CHECK_RTOL = 1e-8


# -- the parser ------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chainrule",
        description="Symbolic reverse-mode gradients over NumPy batches: train the article's "
                    "sigmoid network, differentiate expressions, run the benchmarks.")
    parser.add_argument("--version", action="version", version=f"chainrule {cr.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_train(sub)
    _add_diff(sub)
    bench = sub.add_parser(
        "bench", add_help=False, help="run the benchmarks (benches/run.py; arguments pass through)",
        description="Runs benches/run.py from a chainrule checkout; every argument is passed on.")
    bench.set_defaults(handler=_bench)
    return parser


def _add_train(sub) -> None:
    p = sub.add_parser(
        "train", help="train the sigmoid network on a built-in data set",
        description="Trains a sigmoid network (by default the article's: one input, one sigmoid "
                    "hidden node, sigmoid output) by gradient descent on J = mean((y - yhat)**2), "
                    "then prints the learned parameters, the final loss and the accuracy (on "
                    "held-out samples too for digits). Settings left out take the data set's "
                    "defaults.")
    # argparse formats help with %, so a literal percent sign must be doubled.
    sets = "; ".join(f"{name}: {text}" for name, text in data.DESCRIPTIONS.items()).replace(
        "%", "%%")
    p.add_argument("--data", choices=data.NAMES, default="scurve",
                   help=f"built-in data set (default: scurve). {sets}")
    p.add_argument("--hidden", type=_widths, default=None, metavar="W[,W...]",
                   help="hidden layer widths, e.g. 4 or 8,4 (default: 1 for scurve, 30 for digits, "
                        "4 otherwise)")
    p.add_argument("--epochs", type=_non_negative, default=None,
                   help="passes over the data (default: the data set's, 2000 for scurve, 30 for "
                        "digits)")
    p.add_argument("--lr", type=_positive_float, default=None,
                   help="learning rate alpha in theta := theta - alpha * dJ/dtheta "
                        "(default: the data set's, 2.0 for scurve)")
    p.add_argument("--batch-size", type=_positive, default=None, metavar="N",
                   help="shuffled mini-batches of N samples (default: 20 for digits, full batch "
                        "otherwise)")
    p.add_argument("--seed", type=int, default=0, help="seed for the initial weights and "
                   "the mini-batch order (default: 0)")
    p.add_argument("--plot", metavar="FILE.png", default=None,
                   help="draw the loss curve and the fitted function, or for digits the "
                        "misclassified test digits (needs matplotlib)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(handler=_train)


def _add_diff(sub) -> None:
    p = sub.add_parser(
        "diff", help="differentiate an expression",
        description="Prints the derivative of EXPR (syntax as printed by chainrule, e.g. "
                    "'sin(cos(x))', 'x**2 * exp(-y)').",
        epilog="examples: chainrule diff 'sin(cos(x))' --explain;  "
               "chainrule diff 'sin(x)**2' --check 'cos(x**2)*2*x'")
    p.add_argument("expr", metavar="EXPR", help="the expression to differentiate")
    p.add_argument("--wrt", action="append", default=None, metavar="VARS",
                   help="variable(s) to differentiate by: x, or x,y, or repeat --wrt "
                        "(default: all variables)")
    p.add_argument("--explain", action="store_true",
                   help="walk through the chain rule step by step")
    p.add_argument("--latex", action="store_true",
                   help="print the derivative as LaTeX (\\frac, \\sqrt, powers; shared parts "
                        "as aligned lines)")
    p.add_argument("--check", metavar="CANDIDATE", default=None,
                   help="compare a hand-derived derivative with the true one at random points "
                        "(exit code 1 if it is wrong)")
    p.add_argument("--points", type=_positive, default=200,
                   help="how many random points --check uses (default: 200)")
    p.add_argument("--seed", type=int, default=0, help="seed of the --check points (default: 0)")
    p.set_defaults(handler=_diff)


def _widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        widths = ()
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"expected widths like 4 or 8,4, not {text!r}")
    return widths


def _positive(text: str) -> int:
    value = _non_negative(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, not {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, not {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit code.

    >>> main(["diff", "sin(cos(x))", "--wrt", "x"])
    d/dx = -cos(cos(x)) * sin(x)
    0
    """
    parser = _parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        if extra and args.command != "bench":
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # --help and argparse errors: return the code rather than exit
        return exc.code if isinstance(exc.code, int) else 2
    return args.handler(args, extra)


def _fail(message: str, code: int) -> int:
    print(f"chainrule: {message}", file=sys.stderr)
    return code


# -- train ------------------------------------------------------------------------------------
def _train(args: argparse.Namespace, _extra: list[str]) -> int:
    from .nn import SigmoidNetwork

    if args.plot is not None and not _have_matplotlib():
        # Checked before training so nobody waits for a run that cannot be drawn.
        return _fail("install matplotlib (pip install 'chainrule[plot]') to use --plot", 1)
    settings = data.SETTINGS[args.data]
    hidden = args.hidden or settings["hidden"]
    lr = args.lr if args.lr is not None else settings["lr"]
    epochs = args.epochs if args.epochs is not None else settings["epochs"]
    batch_size = args.batch_size if args.batch_size is not None else settings.get("batch_size")
    try:
        X, Y = data.load(args.data)
    except ImportError as exc:  # an optional extra (scikit-learn for digits) is missing
        return _fail(str(exc), 1)
    test = None
    if "test_fraction" in settings:
        X, Y, *test = data.split(X, Y, settings["test_fraction"])
    n_inputs = 1 if X.ndim == 1 else X.shape[1]
    n_outputs = settings.get("n_outputs", 1)
    net = SigmoidNetwork(n_inputs=n_inputs, hidden=hidden, n_outputs=n_outputs, seed=args.seed)
    inputs = _count(n_inputs, "input")
    article = " (the article's network)" if net.article else ""
    batches = "full batch" if batch_size is None else f"mini-batches of {batch_size}"
    samples = _count(len(Y) + (0 if test is None else len(test[1])), "sample")
    if test is not None:
        samples += f" ({len(Y)} to train on, {len(test[1])} held out to test)"
    n_params = sum(int(np.size(value)) for value in net.params.values())
    print(f"data: {args.data}, {samples}, {inputs}")
    print(f"network: {inputs} -> hidden {','.join(map(str, hidden))} (sigmoid) -> "
          f"{_count(n_outputs, 'sigmoid output')}, {n_params} parameters{article}")
    print(f"training: {epochs} epochs, lr {lr:g}, {batches}, seed {args.seed}", flush=True)
    history = net.fit(X, Y, lr=lr, epochs=epochs, batch_size=batch_size,
                      progress=not args.no_progress, seed=args.seed)
    _report(net, X, Y, history, test)
    if args.plot is None:
        return 0
    if test is None:
        return _save(_fit_figure(net, X, Y, history), args.plot)
    X_test, Y_test = test
    return _save(_digits_figure(history, X_test, net.predict(X_test).argmax(axis=1), Y_test),
                 args.plot)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("s" if n != 1 else "")


def _report(net, X: np.ndarray, Y: np.ndarray, history: np.ndarray, test=None) -> None:
    from .nn import is_binary

    print("learned parameters:")
    _print_params(net.params)
    if len(history):
        print(f"initial loss: {history[0]:.6g}")
    print(f"final loss: {net.loss(X, Y):.6g}")
    if net.n_outputs > 1:
        rule = "the largest output names the class"
    elif is_binary(Y):
        rule = "prediction on the target's side of 0.5"
    else:
        rule = "prediction within 0.1 of the target"
    if test is None:
        print(f"accuracy: {100 * net.accuracy(X, Y):.1f}% ({rule})")
        return
    print(f"train accuracy: {100 * net.accuracy(X, Y):.1f}% ({_count(len(Y), 'sample')}; {rule})")
    print(f"test accuracy: {100 * net.accuracy(*test):.1f}% ({len(test[1])} held-out samples)")


def _have_matplotlib() -> bool:
    try:
        import matplotlib.figure  # noqa: F401 - only whether it imports
    except ImportError:
        return False
    return True


def _print_params(params: dict, per_line: int = 4) -> None:
    """The article's floats in full, several to a line; an array of a dense network as its
    shape, norm and range, since its hundreds of numbers would bury the report."""
    width = max(map(len, params))
    if all(np.ndim(value) == 0 for value in params.values()):
        items = [f"{name:>{width}} = {value:>10.6f}" for name, value in params.items()]
        for start in range(0, len(items), per_line):
            print("  " + "   ".join(items[start:start + per_line]))
        return
    shapes = {name: str(np.shape(value)) for name, value in params.items()}
    shape_width = max(map(len, shapes.values()))
    for name, value in params.items():
        array = np.asarray(value, dtype=float)
        print(f"  {name:>{width}}  shape {shapes[name]:<{shape_width}}  "
              f"norm {np.linalg.norm(array):>9.4f}  min {array.min():>8.4f}  "
              f"max {array.max():>8.4f}")


def _save(fig, path: str) -> int:
    try:
        fig.savefig(path)
    except (OSError, ValueError) as exc:
        return _fail(f"cannot write the plot to {path}: {exc}", 1)
    print(f"plot written to {path}")
    return 0


def _loss_axes(ax, history: np.ndarray) -> None:
    ax.plot(np.arange(len(history)), history)
    ax.set(xlabel="epoch", ylabel="J = mean((y - yhat)^2)", title="loss", yscale="log")


def _fit_figure(net, X: np.ndarray, Y: np.ndarray, history: np.ndarray):
    # The object-oriented API draws off screen without choosing a global backend.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_loss, ax_fit = fig.subplots(1, 2)
    _loss_axes(ax_loss, history)
    if X.ndim == 1:
        grid = np.linspace(X.min(), X.max(), 400)
        ax_fit.scatter(X, Y, s=8, color="0.6", label="data")
        ax_fit.plot(grid, net.predict(grid), color="C1", label="network")
        ax_fit.set(xlabel="x", ylabel="y", title="fit")
        ax_fit.legend()
    else:
        g0, g1 = np.meshgrid(np.linspace(0, 1, 120), np.linspace(0, 1, 120))
        pred = net.predict(np.column_stack([g0.ravel(), g1.ravel()])).reshape(g0.shape)
        filled = ax_fit.contourf(g0, g1, pred, levels=20, cmap="coolwarm", vmin=0, vmax=1)
        ax_fit.scatter(X[:, 0], X[:, 1], c=Y, cmap="coolwarm", vmin=0, vmax=1, edgecolors="k",
                       linewidths=0.5, s=18)
        fig.colorbar(filled, ax=ax_fit, label="network output")
        ax_fit.set(xlabel="x0", ylabel="x1", title="fit (points: data)")
    return fig


def _digits_figure(history: np.ndarray, images: np.ndarray, predicted, labels, limit: int = 40,
                   columns: int = 8):
    """The loss curve beside a grid of the misclassified test digits (the first ``limit``),
    each titled with the network's class and the true one."""
    from matplotlib.figure import Figure

    predicted, labels = np.asarray(predicted).astype(int), np.asarray(labels).astype(int)
    wrong = np.flatnonzero(predicted != labels)
    shown = wrong[:limit]
    fig = Figure(figsize=(12, 5), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=(1, 1.3))
    _loss_axes(left.subplots(), history)
    title = f"misclassified test digits: {len(wrong)} of {len(labels)}"
    if len(wrong) > len(shown):
        title += f" (the first {len(shown)})"
    right.suptitle(title + "; predicted (true)")
    if not len(shown):
        ax = right.subplots()
        ax.axis("off")
        ax.text(0.5, 0.5, "none", ha="center", va="center")
        return fig
    side = int(round(np.sqrt(images.shape[1])))
    axes = right.subplots(-(-len(shown) // columns), columns, squeeze=False).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, i in zip(axes, shown, strict=False):
        ax.imshow(images[i].reshape(side, side), cmap="gray_r", vmin=0, vmax=1)
        ax.set_title(f"{predicted[i]} ({labels[i]})", fontsize=9)
    return fig


# -- diff -------------------------------------------------------------------------------------
def _diff(args: argparse.Namespace, _extra: list[str]) -> int:
    try:
        f = cr.parse(args.expr)
    except cr.ParseError as exc:
        return _fail(f"cannot parse the expression:\n{exc}", 2)
    names = _wrt_names(args.wrt, f)
    if isinstance(names, str):
        return _fail(names, 2)
    present = {v.name for v in f.variables}
    for name in names:
        if name not in present:
            print(f"note: {name} does not occur in {args.expr}, so d/d{name} = 0", file=sys.stderr)
    if args.latex and (args.explain or args.check is not None):
        return _fail("--latex prints the derivative; it does not combine with --explain or "
                     "--check", 2)
    if args.check is not None:
        return _check(args, f, names)
    if args.latex:
        for name in names:
            # One derivative is printed bare, so it can be pasted or piped; several are told
            # apart by a LaTeX comment line naming each.
            if len(names) > 1:
                print(f"% d/d{name}")
            print(cr.latex(cr.grad(f, cr.var(name))))
        return 0
    for name in names:
        if args.explain:
            lines = explain(f, cr.var(name))
            if lines is None:
                print(labelled(f"d/d{name}", cr.grad(f, cr.var(name))))
                return _fail(f"--explain is for small expressions; this one needs more than "
                             f"{MAX_EXPLAIN_STEPS} steps (the derivative is printed above)", 1)
            print("\n".join(lines))
        else:
            print(labelled(f"d/d{name}", cr.grad(f, cr.var(name))))
    return 0


def _wrt_names(wrt: list[str] | None, f: cr.Expr) -> list[str] | str:
    """The variables to differentiate by, or an error message."""
    if not wrt:
        names = [v.name for v in f.variables]
        return names or "the expression has no variables; nothing to differentiate by"
    names = [n.strip() for item in wrt for n in item.replace(" ", ",").split(",") if n.strip()]
    bad = [n for n in names if not n.isidentifier()]
    if bad or not names:
        return f"--wrt takes variable names like x or x,y, not {', '.join(bad) or repr(wrt)}"
    return list(dict.fromkeys(names))


# -- diff --check -----------------------------------------------------------------------------
def _check(args: argparse.Namespace, f: cr.Expr, names: list[str]) -> int:
    if len(names) != 1:
        return _fail("--check compares one derivative; choose its variable with --wrt", 2)
    try:
        candidate = cr.parse(args.check)
    except cr.ParseError as exc:
        return _fail(f"cannot parse the candidate:\n{exc}", 2)
    if has_reduction(f) or has_reduction(candidate):
        return _fail("--check compares per-sample expressions; leave out sum() and mean()", 2)
    name = names[0]
    truth = cr.grad(f, cr.var(name))
    extra = sorted({v.name for v in candidate.variables} - {v.name for v in f.variables})
    if extra:
        print(f"note: the candidate uses {', '.join(extra)}, which {args.expr} does not")
    points, ranges = _sample_points([f, truth, candidate], args.points, args.seed)
    if points is None:
        return _fail("could not find points where both derivatives are finite", 1)
    n = len(next(iter(points.values())))
    true_v, cand_v = (np.broadcast_to(np.asarray(v, dtype=float), (n,)) for v in
                      cr.compile([truth, candidate], inputs=[cr.var(v) for v in points])(**points))
    bad = np.abs(true_v - cand_v) > CHECK_RTOL * np.maximum(1.0, np.abs(true_v))
    where_text = f"{ranges}, seed {args.seed}"
    label = f"d/d{name} of {args.expr}"
    print(labelled(f"true derivative: d/d{name}", truth))
    print(labelled(f"your candidate:  d/d{name}", candidate))
    if not bad.any():
        print(f"correct: the candidate agrees with {label} at all {len(true_v)} random points "
              f"({where_text})")
        return 0
    print(f"wrong: the candidate differs from {label} at {np.count_nonzero(bad)} of "
          f"{len(true_v)} random points ({where_text}); for example:")
    _print_table(points, true_v, cand_v, bad, f"d/d{name}")
    return 1


def _sample_points(exprs: list[cr.Expr], n: int, seed: int):
    """Random points (name -> array) for every variable where all ``exprs`` are finite, and a
    description. From [-3, 3] if nearly all points there are usable; otherwise (log, sqrt, ...)
    from whichever of [-3, 3] and [0.05, 3] has more usable points."""
    names = sorted({v.name for e in exprs for v in e.variables}) or ["x"]
    fn = cr.compile(exprs, inputs=[cr.var(v) for v in names])
    best = None
    for low, high in ((-3.0, 3.0), (0.05, 3.0)):
        rng = np.random.default_rng(seed)
        points = {v: rng.uniform(low, high, n) for v in names}
        if len(names) == 1:  # sorted, so the table of differences reads left to right
            points = {v: np.sort(p) for v, p in points.items()}
        ok = np.ones(n, dtype=bool)
        for value in fn(**points):
            ok &= np.isfinite(np.broadcast_to(value, (n,)))
        text = f"{', '.join(names)} uniform in [{low:g}, {high:g}]"
        if best is None or ok.sum() > best[0]:
            best = (int(ok.sum()), {v: p[ok] for v, p in points.items()}, text)
        if ok.sum() >= 0.9 * n:
            break
    return (best[1], best[2]) if best[0] else (None, None)


def _print_table(points, true_v, cand_v, bad, label: str, rows: int = 5) -> None:
    idx = np.flatnonzero(bad)
    # Spread the examples over the sampled range instead of showing only its left end.
    shown = idx[np.linspace(0, len(idx) - 1, min(rows, len(idx))).round().astype(int)]
    heads = [*points, label, "candidate"]
    print("  " + "".join(f"{h:>14}" for h in heads))
    for i in shown:
        cells = [points[v][i] for v in points] + [true_v[i], cand_v[i]]
        print("  " + "".join(f"{c:>14.6g}" for c in cells))


# -- bench ------------------------------------------------------------------------------------
def _bench(args: argparse.Namespace, extra: list[str]) -> int:
    runner = find_bench_runner()
    if runner is None:
        return _fail("the benchmark runner benches/run.py is not installed with the package; "
                     "run it from a chainrule checkout: python benches/run.py [--quick]", 1)
    if "-h" in extra or "--help" in extra:
        print(f"chainrule bench passes its arguments to {runner}:\n", flush=True)
    spec = importlib.util.spec_from_file_location("chainrule_bench_run", runner)
    module = importlib.util.module_from_spec(spec)
    # Registered before running it: dataclasses look their module up in sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    try:
        return int(module.main(extra) or 0)
    except SystemExit as exc:  # its argparse exits on --help and bad options
        return exc.code if isinstance(exc.code, int) else 1


def find_bench_runner(start: Path | None = None) -> Path | None:
    """``benches/run.py`` of a chainrule checkout: the current directory's (or a parent's), else
    the one next to the package source (an editable install or a run from the source tree).

    >>> runner = find_bench_runner()
    >>> runner is None or runner.name == "run.py"
    True
    """
    start = (start or Path.cwd()).resolve()
    package_root = Path(__file__).resolve().parent.parent.parent
    for root in (start, *start.parents, package_root):
        runner = root / "benches" / "run.py"
        if runner.is_file() and _is_chainrule_checkout(root):
            return runner
    return None


def _is_chainrule_checkout(root: Path) -> bool:
    try:
        text = (root / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return False
    return re.search(r'^name\s*=\s*"chainrule"', text, re.MULTILINE) is not None
