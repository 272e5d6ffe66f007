"""The ``chainrule`` command line: ``train``, ``diff`` (with ``--explain`` and ``--check``) and
``bench``.

Every command returns an exit code instead of raising: 0 on success; 1 when the command ran but
the answer is "no" (a wrong ``--check`` candidate, an expression too big to explain) or something
it needs is missing (matplotlib, the benchmark runner); 2 for bad input (argparse errors,
expressions that do not parse).

``--explain`` walks the expression from the top, one step per composite piece: the rule that
applies (chain, product, quotient, sum, power, ...), the pieces and their derivatives, the rule's
formula filled in, and the simplified derivative from ``cr.grad``. Pieces that need their own
explanation get a later step; unary functions of the variable itself are basic derivatives.
"""

from __future__ import annotations

import argparse
import importlib.util
import operator
import re
import sys
from collections import deque
from collections.abc import Callable
from pathlib import Path

import numpy as np

import chainrule as cr

from . import _core, data
from .expr import as_expr
from .gradcheck import _has_reduction

__all__ = ["explain", "main"]

MAX_EXPLAIN_STEPS = 50
CHECK_RTOL = 1e-8
MAX_INLINE = 400


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
        description="Trains the article's network (one input, one sigmoid hidden node, sigmoid "
                    "output) by gradient descent on J = mean((y - yhat)**2), then prints the "
                    "learned parameters, the final loss and the accuracy. Settings left out "
                    "take the data set's defaults.")
    sets = "; ".join(f"{name}: {text}" for name, text in data.DESCRIPTIONS.items())
    p.add_argument("--data", choices=data.NAMES, default="scurve",
                   help=f"built-in data set (default: scurve). {sets}")
    p.add_argument("--hidden", type=_widths, default=None, metavar="W[,W...]",
                   help="hidden layer widths, e.g. 4 or 8,4 (default: 1 for scurve, 4 otherwise)")
    p.add_argument("--epochs", type=_non_negative, default=None,
                   help="passes over the data (default: the data set's, 2000 for scurve)")
    p.add_argument("--lr", type=_positive_float, default=None,
                   help="learning rate alpha in theta := theta - alpha * dJ/dtheta "
                        "(default: the data set's, 2.0 for scurve)")
    p.add_argument("--batch-size", type=_positive, default=None, metavar="N",
                   help="shuffled mini-batches of N samples (default: full batch)")
    p.add_argument("--seed", type=int, default=0, help="seed for the initial weights and "
                   "the mini-batch order (default: 0)")
    p.add_argument("--plot", metavar="FILE.png", default=None,
                   help="draw the loss curve and the fitted function (needs matplotlib)")
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
    d/dx = -(cos(cos(x)) * sin(x))
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
    X, Y = data.load(args.data)
    n_inputs = 1 if X.ndim == 1 else X.shape[1]
    net = SigmoidNetwork(n_inputs=n_inputs, hidden=hidden, seed=args.seed)
    inputs = f"{n_inputs} input" + ("s" if n_inputs > 1 else "")
    article = " (the article's network)" if net.param_names == ("w1", "b1", "w2", "b2") else ""
    batches = "full batch" if args.batch_size is None else f"mini-batches of {args.batch_size}"
    print(f"data: {args.data}, {len(Y)} samples, {inputs}")
    print(f"network: {inputs} -> hidden {','.join(map(str, hidden))} (sigmoid) -> "
          f"1 sigmoid output, {len(net.param_names)} parameters{article}")
    print(f"training: {epochs} epochs, lr {lr:g}, {batches}, seed {args.seed}", flush=True)
    history = net.fit(X, Y, lr=lr, epochs=epochs, batch_size=args.batch_size,
                      progress=not args.no_progress, seed=args.seed)
    _report(net, X, Y, history)
    return 0 if args.plot is None else _plot(args.plot, net, X, Y, history)


def _report(net, X: np.ndarray, Y: np.ndarray, history: np.ndarray) -> None:
    from .nn import is_binary

    print("learned parameters:")
    _print_params(net.params)
    if len(history):
        print(f"initial loss: {history[0]:.6g}")
    print(f"final loss: {net.loss(X, Y):.6g}")
    rule = "prediction on the target's side of 0.5" if is_binary(Y) else \
        "prediction within 0.1 of the target"
    print(f"accuracy: {100 * net.accuracy(X, Y):.1f}% ({rule})")


def _have_matplotlib() -> bool:
    try:
        import matplotlib.figure  # noqa: F401 - only whether it imports
    except ImportError:
        return False
    return True


def _print_params(params: dict[str, float], per_line: int = 4) -> None:
    width = max(map(len, params))
    items = [f"{name:>{width}} = {value:>10.6f}" for name, value in params.items()]
    for start in range(0, len(items), per_line):
        print("  " + "   ".join(items[start:start + per_line]))


def _plot(path: str, net, X: np.ndarray, Y: np.ndarray, history: np.ndarray) -> int:
    # The object-oriented API draws off screen without choosing a global backend.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_loss, ax_fit = fig.subplots(1, 2)
    ax_loss.plot(np.arange(len(history)), history)
    ax_loss.set(xlabel="epoch", ylabel="J = mean((y - yhat)^2)", title="loss", yscale="log")
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
    try:
        fig.savefig(path)
    except (OSError, ValueError) as exc:
        return _fail(f"cannot write the plot to {path}: {exc}", 1)
    print(f"plot written to {path}")
    return 0


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
    if args.check is not None:
        return _check(args, f, names)
    for name in names:
        if args.explain:
            lines = explain(f, cr.var(name))
            if lines is None:
                print(_labelled(f"d/d{name}", cr.grad(f, cr.var(name))))
                return _fail(f"--explain is for small expressions; this one needs more than "
                             f"{MAX_EXPLAIN_STEPS} steps (the derivative is printed above)", 1)
            print("\n".join(lines))
        else:
            print(_labelled(f"d/d{name}", cr.grad(f, cr.var(name))))
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


def _labelled(label: str, e: cr.Expr) -> str:
    text = str(e)
    if "\n" not in text:
        return f"{label} = {text}"
    return f"{label} =\n" + "\n".join("  " + line for line in text.splitlines())


def _one_line(e: cr.Expr) -> str:
    """The expression on one line, with the printer's shared ``t1 = ...`` parts written inline
    (explanations are of small expressions, where inline reads better than names)."""
    printed = str(e)
    *shared, text = printed.splitlines()
    parts: dict[str, str] = {}
    for line in shared:
        name, _, body = line.partition(" = ")
        parts[name] = _inline(body, parts)
        # Inlining repeats shared parts, which can grow exponentially with depth: keep names then.
        if len(parts[name]) > MAX_INLINE:
            return printed.replace("\n", "; ")
    inline = _inline(text, parts)
    return inline if len(inline) <= MAX_INLINE else printed.replace("\n", "; ")


def _inline(text: str, parts: dict[str, str]) -> str:
    if not parts:
        return text

    def expand(match: re.Match) -> str:
        body = parts[match.group(0)]
        before, after = text[match.start() - 1:match.start()], text[match.end():match.end() + 1]
        alone = before != "" and before in "(," and after != "" and after in "),"
        return body if alone or _is_atom(body) else f"({body})"

    return re.sub(r"\b(?:" + "|".join(map(re.escape, parts)) + r")\b", expand, text)


def _is_atom(text: str) -> bool:
    """Whether printed text needs no parentheses as an operand: a name, a number or a call."""
    if re.fullmatch(r"[\w.]+", text):
        return True
    if not re.match(r"[A-Za-z_]\w*\(", text) or not text.endswith(")"):
        return False
    depth = 0
    for i, ch in enumerate(text):
        depth += (ch == "(") - (ch == ")")
        if depth == 0 and ch == ")":
            return i == len(text) - 1
    return False


# -- diff --check -----------------------------------------------------------------------------
def _check(args: argparse.Namespace, f: cr.Expr, names: list[str]) -> int:
    if len(names) != 1:
        return _fail("--check compares one derivative; choose its variable with --wrt", 2)
    try:
        candidate = cr.parse(args.check)
    except cr.ParseError as exc:
        return _fail(f"cannot parse the candidate:\n{exc}", 2)
    if _has_reduction(f) or _has_reduction(candidate):
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
    print(_labelled(f"true derivative: d/d{name}", truth))
    print(_labelled(f"your candidate:  d/d{name}", candidate))
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


# -- diff --explain ---------------------------------------------------------------------------
# The functions a user can call, from the core's op table (internal ops have no public name).
_UNARY: dict[str, Callable] = {
    op.kind: getattr(cr, op.kind) for op in _core.OPS if op.arity == 1 and not op.infix and hasattr(cr, op.kind)
}
_BINARY: dict[str, Callable] = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul,
    "div": operator.truediv, "pow": operator.pow,
}
# Binding strength of the printed forms, to know where the filled-in formulas need parentheses.
_PREC = {op.kind: op.precedence for op in _core.OPS if op.infix}
_ATOM = 5


def explain(f: cr.Expr, x: cr.Expr, max_steps: int = MAX_EXPLAIN_STEPS) -> list[str] | None:
    """The chain-rule walk for d f / d x as lines of text, or None if it needs more than
    ``max_steps`` steps.

    >>> x = cr.var("x")
    >>> print("\\n".join(explain(cr.sin(cr.cos(x)), x)))
    derivative of sin(cos(x)) with respect to x
    <BLANKLINE>
    step 1: sin(cos(x))
      chain rule: d/dx f(u) = f'(u) * du/dx
      outer: sin(u)
      inner: u = cos(x)
      d/du sin(u) = cos(u)
      du/dx = -sin(x)   (basic derivative of cos)
      product: cos(cos(x)) * -sin(x)
      simplified: -(cos(cos(x)) * sin(x))
    <BLANKLINE>
    d/dx = -(cos(cos(x)) * sin(x))
    """
    walk = _Walk(f, x, max_steps)
    lines = [f"derivative of {_one_line(f)} with respect to {x.name}", ""]
    if not walk.run():
        return None
    for number, step in enumerate(walk.steps, start=1):
        lines += [f"step {number}: {_one_line(step[0])}", *("  " + s for s in step[1]), ""]
    if not walk.steps:
        lines += [walk.trivial, ""]
    lines.append(_labelled(f"d/d{x.name}", cr.grad(f, x)))
    return lines


class _Walk:
    """Explains one node per step, top down; pieces that need explaining queue a later step."""

    def __init__(self, f: cr.Expr, x: cr.Expr, max_steps: int) -> None:
        self.f, self.x, self.max_steps = f, x, max_steps
        self.steps: list[tuple[cr.Expr, list[str]]] = []
        self.numbers: dict[cr.Expr, int] = {}
        self.queue: deque[cr.Expr] = deque()
        self.trivial = ""
        taken = {v.name for v in f.variables}
        self.u = next(n for n in ("u", "g", "z", "u_") if n not in taken)

    def run(self) -> bool:
        if self._is_constant(self.f) or self.f == self.x:
            self.trivial = "the expression is " + (
                "the variable itself: the derivative is 1" if self.f == self.x else
                f"constant in {self.x.name}: the derivative is 0")
            return True
        self._number(self.f)
        while self.queue:
            e = self.queue.popleft()
            self.steps.append((e, self._explain(e)))
        return len(self.numbers) <= self.max_steps

    def _number(self, e: cr.Expr) -> int:
        if e not in self.numbers:
            self.numbers[e] = len(self.numbers) + 1
            # Past the limit, keep numbering but stop explaining: run() then reports failure.
            if len(self.numbers) <= self.max_steps:
                self.queue.append(e)
        return self.numbers[e]

    def _is_constant(self, e: cr.Expr) -> bool:
        return self.x.name not in {v.name for v in e.variables}

    def _d(self, e: cr.Expr, label: str) -> tuple[cr.Expr, str]:
        """The derivative of a piece and the line that states it (with where it comes from)."""
        de = cr.grad(e, self.x)
        kind = e._kind
        if self._is_constant(e):
            note = f"(constant in {self.x.name})"
        elif e == self.x:
            note = ""
        elif kind in _UNARY and e._args[0] == self.x:
            note = f"(basic derivative of {kind})"
        else:
            note = f"(step {self._number(e)})"
        return de, f"{label} = {_one_line(de)}" + (f"   {note}" if note else "")

    def _explain(self, e: cr.Expr) -> list[str]:
        kind = e._kind
        if kind in _UNARY:
            lines = self._chain(e)
        elif kind == "neg":
            lines = self._negation(e)
        elif kind in ("add", "sub"):
            lines = self._sum(e, kind)
        elif kind == "mul":
            lines = self._product(e)
        elif kind == "div":
            lines = self._quotient(e)
        elif kind == "pow":
            lines = self._power(e)
        elif kind == "sum":
            lines = self._reduction(e)
        else:  # a kind added to the core later: still give the answer
            lines = [f"({kind}: no rule to show)"]
        return lines + [f"simplified: {_one_line(cr.grad(e, self.x))}"]

    def _chain(self, e: cr.Expr) -> list[str]:
        kind, (inner,) = e._kind, e._args
        u = cr.var(self.u)
        outer = _UNARY[kind](u)
        d_outer = cr.grad(outer, u)
        x = self.x.name
        if inner == self.x:
            return [f"basic derivative: d/d{x} {kind}({x}) = {_one_line(cr.grad(e, self.x))}"]
        d_inner, inner_line = self._d(inner, f"d{self.u}/d{x}")
        product = _mul(_piece(_substitute(d_outer, self.u, inner)), _piece(d_inner))
        return [f"chain rule: d/d{x} f({self.u}) = f'({self.u}) * d{self.u}/d{x}",
                f"outer: {_one_line(outer)}",
                f"inner: {self.u} = {_one_line(inner)}",
                f"d/d{self.u} {_one_line(outer)} = {_one_line(d_outer)}",
                inner_line,
                f"product: {product[0]}"]

    def _negation(self, e: cr.Expr) -> list[str]:
        (u,) = e._args
        du, line = self._d(u, "u'")
        return ["negation: (-u)' = -u'", f"u = {_one_line(u)}", line,
                f"-u' = {_neg(_piece(du))[0]}"]

    def _sum(self, e: cr.Expr, kind: str) -> list[str]:
        u, v = e._args
        (du, line_u), (dv, line_v) = self._d(u, "u'"), self._d(v, "v'")
        sign = "+" if kind == "add" else "-"
        name = "sum rule" if kind == "add" else "difference rule"
        filled = _binary(sign, _piece(du), _piece(dv), 1)
        return [f"{name}: (u {sign} v)' = u' {sign} v'", f"u = {_one_line(u)}",
                f"v = {_one_line(v)}", line_u, line_v, f"u' {sign} v' = {filled[0]}"]

    def _product(self, e: cr.Expr) -> list[str]:
        u, v = e._args
        if u == v:
            du, line = self._d(u, "u'")
            filled = _mul(_mul(("2", _ATOM), _piece(u)), _piece(du))
            return ["power rule: (u * u)' = (u**2)' = 2 * u * u'", f"u = {_one_line(u)}", line,
                    f"2 * u * u' = {filled[0]}"]
        for c, w, order in ((u, v, "c * u"), (v, u, "u * c")):
            if self._is_constant(c):
                dw, line = self._d(w, "u'")
                filled = _mul(_piece(c), _piece(dw))
                return [f"constant factor: ({order})' = c * u'", f"c = {_one_line(c)}",
                        f"u = {_one_line(w)}", line, f"c * u' = {filled[0]}"]
        (du, line_u), (dv, line_v) = self._d(u, "u'"), self._d(v, "v'")
        filled = _binary("+", _mul(_piece(du), _piece(v)), _mul(_piece(u), _piece(dv)), 1)
        return ["product rule: (u * v)' = u' * v + u * v'", f"u = {_one_line(u)}",
                f"v = {_one_line(v)}", line_u, line_v, f"u' * v + u * v' = {filled[0]}"]

    def _quotient(self, e: cr.Expr) -> list[str]:
        u, v = e._args
        if u._kind == "sum" and _is_count(v):
            (w,) = u._args
            dw, line = self._d(w, "u'")
            return ["mean rule: mean(u)' = mean(u')   (for a variable bound to one number)",
                    f"u = {_one_line(w)}", line, f"mean(u') = mean({_one_line(dw)})"]
        if self._is_constant(v):
            du, line = self._d(u, "u'")
            return ["constant divisor: (u / c)' = u' / c", f"u = {_one_line(u)}",
                    f"c = {_one_line(v)}", line,
                    f"u' / c = {_binary('/', _piece(du), _piece(v), 2)[0]}"]
        (du, line_u), (dv, line_v) = self._d(u, "u'"), self._d(v, "v'")
        top = _binary("-", _mul(_piece(du), _piece(v)), _mul(_piece(u), _piece(dv)), 1)
        filled = _binary("/", top, _binary("**", _piece(v), ("2", _ATOM), 4), 2)
        return ["quotient rule: (u / v)' = (u' * v - u * v') / v**2", f"u = {_one_line(u)}",
                f"v = {_one_line(v)}", line_u, line_v,
                f"(u' * v - u * v') / v**2 = {filled[0]}"]

    def _power(self, e: cr.Expr) -> list[str]:
        u, v = e._args
        if self._is_constant(v):
            du, line = self._d(u, "u'")
            c1 = _piece(v - 1)
            filled = _mul(_mul(_piece(v), _binary("**", _piece(u), c1, 4)), _piece(du))
            return ["power rule: (u**c)' = c * u**(c - 1) * u'", f"u = {_one_line(u)}",
                    f"c = {_one_line(v)}", line, f"c * u**(c - 1) * u' = {filled[0]}"]
        dv, line_v = self._d(v, "v'")
        if self._is_constant(u):
            log_c = (f"log({_one_line(u)})", _ATOM)
            filled = _mul(_mul(_piece(e), log_c), _piece(dv))
            return ["exponential rule: (c**v)' = c**v * log(c) * v'", f"c = {_one_line(u)}",
                    f"v = {_one_line(v)}", line_v, f"c**v * log(c) * v' = {filled[0]}"]
        du, line_u = self._d(u, "u'")
        log_u = (f"log({_one_line(u)})", _ATOM)
        inside = _binary("+", _mul(_piece(dv), log_u),
                         _binary("/", _mul(_piece(v), _piece(du)), _piece(u), 2), 1)
        filled = _mul(_piece(e), inside)
        return ["general power rule: (u**v)' = u**v * (v' * log(u) + v * u' / u)",
                f"u = {_one_line(u)}", f"v = {_one_line(v)}", line_u, line_v,
                f"u**v * (v' * log(u) + v * u' / u) = {filled[0]}"]

    def _reduction(self, e: cr.Expr) -> list[str]:
        (u,) = e._args
        du, line = self._d(u, "u'")
        return ["sum rule over the batch: sum(u)' = sum(u')   (for a variable bound to one number)",
                f"u = {_one_line(u)}", line, f"sum(u') = sum({_one_line(du)})"]


def _is_count(e: cr.Expr) -> bool:
    """Whether ``e`` is sum(1), the batch size that mean divides by."""
    return e._kind == "sum" and e._args[0]._kind == "const" and e._args[0].value == 1


# Filled-in formulas are text, not expressions: building them as expressions would let the core
# simplify them (a * -b prints as -(a * b)), hiding the rule's shape.
def _piece(e: cr.Expr) -> tuple[str, int]:
    if e._kind == "const":
        return _one_line(e), 3 if e.value < 0 else _ATOM
    return _one_line(e), _PREC.get(e._kind, _ATOM)


def _binary(op: str, a: tuple[str, int], b: tuple[str, int], prec: int) -> tuple[str, int]:
    # Left operands may bind as loosely as the operator (left-associative), right ones tighter;
    # ** is right-associative and its base must be tighter still.
    left_ok = a[1] > prec if op == "**" else a[1] >= prec
    right_ok = b[1] >= 3 if op == "**" else b[1] > prec
    left = a[0] if left_ok else f"({a[0]})"
    right = b[0] if right_ok else f"({b[0]})"
    return f"{left} {op} {right}", prec


def _mul(a: tuple[str, int], b: tuple[str, int]) -> tuple[str, int]:
    return _binary("*", a, b, 2)


def _neg(a: tuple[str, int]) -> tuple[str, int]:
    return (f"-{a[0]}" if a[1] >= 4 else f"-({a[0]})"), 3


def _substitute(e: cr.Expr, name: str, replacement: cr.Expr) -> cr.Expr:
    """``e`` with variable ``name`` replaced, rebuilt bottom-up with an explicit stack."""
    done: dict[int, cr.Expr] = {}
    stack = [(e, False)]
    while stack:
        node, ready = stack.pop()
        if node._id in done:
            continue
        if not ready:
            stack.append((node, True))
            stack.extend((a, False) for a in node._args)
            continue
        args = [done[a._id] for a in node._args]
        done[node._id] = _rebuild(node, args, name, replacement)
    return done[e._id]


def _rebuild(node, args: list[cr.Expr], name: str, replacement: cr.Expr) -> cr.Expr:
    kind = node._kind
    if kind == "var":
        return replacement if node.name == name else cr.var(node.name)
    if kind == "const":
        return as_expr(node.value)
    if kind == "sum":
        return cr.sum(args[0], over=list(node._over) or None)
    if kind == "neg":
        return -args[0]
    if kind in _UNARY:
        return _UNARY[kind](args[0])
    return _BINARY[kind](*args)


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
