"""Checking symbolic gradients against central finite differences.

``check_grad(f, wrt, at={...})`` evaluates ``cr.grad(f, v)`` and the central difference
``(f(v + h) - f(v - h)) / 2h`` at the given values and reports the worst disagreement. It follows
the gradient conventions of ``cr.grad``: a per-sample expression has a per-sample derivative, and
the derivative of a reduced expression (``sum``, ``mean``) has the shape of the variable's value,
each element being the derivative of the total with respect to that element.

The error of one value is ``|symbolic - numeric| / max(|symbolic|, |numeric|, 1)``: relative for
large derivatives, absolute below 1, where the finite difference's own rounding error is absolute.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

import chainrule as cr
from chainrule.expr import as_expr

__all__ = ["GradCheck", "Where", "check_grad", "has_reduction"]

# cbrt(machine epsilon) balances truncation (h**2) against rounding (eps / h) for central
# differences: about 1e-10 relative accuracy on smooth functions.
DEFAULT_EPS = float(np.finfo(np.float64).eps) ** (1 / 3)
DEFAULT_TOL = 1e-5
# Element-by-element differencing costs two evaluations per element; check a sample above this.
MAX_ELEMENTS = 256


@dataclass(frozen=True)
class Where:
    """Where the worst error is: the variable, the index into its derivative, the values of the
    variables there, and the two derivative values."""

    variable: str
    index: tuple[int, ...]
    point: dict[str, float] = field(default_factory=dict)
    symbolic: float = float("nan")
    numeric: float = float("nan")

    def __str__(self) -> str:
        at = ", ".join(f"{k}={v:.6g}" for k, v in self.point.items())
        idx = f" (index {self.index})" if self.index else ""
        return (f"d/d{self.variable} at {at or 'the given values'}{idx}: symbolic "
                f"{self.symbolic:.10g}, finite difference {self.numeric:.10g}")


@dataclass(frozen=True)
class GradCheck:
    """The result of :func:`check_grad`. ``ok`` is ``max_rel_error <= tol`` with at least one
    value compared; ``skipped`` counts values where the finite difference was not finite."""

    max_rel_error: float
    where: Where | None
    ok: bool
    tol: float
    checked: int
    skipped: int = 0

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        verdict = "passed" if self.ok else "FAILED"
        text = (f"gradient check {verdict}: max relative error {self.max_rel_error:.3g} "
                f"(tolerance {self.tol:.3g}) over {self.checked} value(s)")
        if self.skipped:
            text += f", {self.skipped} skipped (finite difference not finite)"
        if self.where is not None:
            text += f"\n  worst: {self.where}"
        return text


def check_grad(expr: cr.Expr | str, wrt: cr.Expr | str | Sequence[cr.Expr | str] | None,
               at: Mapping[str, object], eps: float | None = None, tol: float = DEFAULT_TOL,
               *, grad: cr.Expr | str | Sequence[cr.Expr | str] | None = None) -> GradCheck:
    """Compares ``cr.grad(expr, v)`` with central finite differences for each variable ``v`` of
    ``wrt`` (a variable, its name, a list of them, or None for all), at the values ``at``
    (name -> float or array). ``eps`` is the relative step (default cbrt(machine epsilon)).
    ``grad`` checks other derivative expressions instead (one per variable, e.g. hand-derived).

    >>> import numpy as np
    >>> import chainrule as cr
    >>> x, w = cr.vars("x w")
    >>> check_grad(cr.sin(w * x), w, at={"x": np.linspace(-1, 1, 5), "w": 0.7}).ok
    True
    >>> check_grad(cr.mean((w * x - 1) ** 2), "w", at={"x": [1.0, 2.0], "w": 0.3}).ok
    True
    >>> print(check_grad(x ** 3, x, at={"x": 2.0}, grad=3 * x))
    gradient check FAILED: max relative error 0.5 (tolerance 1e-05) over 1 value(s)
      worst: d/dx at x=2: symbolic 6, finite difference 12
    """
    f = cr.parse(expr) if isinstance(expr, str) else expr
    if not isinstance(f, cr.Expr):
        raise TypeError(f"check_grad() takes an expression or its text, not {type(f).__name__}")
    names = _wrt_names(f, wrt)
    derivatives = _derivatives(f, names, grad)
    values = _check_values([f, *derivatives], names, at)
    step = DEFAULT_EPS if eps is None else float(eps)
    inputs = [cr.var(n) for n in values]
    symbolic = cr.compile([f, *derivatives], inputs=inputs)(**values)[1:]
    f_only = cr.compile(f, inputs=inputs)
    reduced = has_reduction(f)
    worst, checked, skipped = (-1.0, None), 0, 0
    for name, g in zip(names, symbolic, strict=True):
        g = np.asarray(g, dtype=float)
        numeric, done = _finite_difference(f_only, values, name, g.shape, step, reduced)
        err, where, n_checked, n_skipped = _compare(g, numeric, done, name, values)
        checked, skipped = checked + n_checked, skipped + n_skipped
        if where is not None and err > worst[0]:
            worst = (err, where)
    max_err = max(worst[0], 0.0)
    return GradCheck(max_err, worst[1], bool(checked and max_err <= tol), tol, checked, skipped)


def _wrt_names(f: cr.Expr, wrt) -> list[str]:
    if wrt is None:
        return [v.name for v in f.variables]
    items = [wrt] if isinstance(wrt, cr.Expr | str) else list(wrt)
    names = []
    for item in items:
        name = item if isinstance(item, str) else item.name
        if not isinstance(name, str):
            raise TypeError(f"wrt takes variables or their names, not {item!r}")
        names.append(name)
    return names


def _derivatives(f: cr.Expr, names: list[str], grad) -> list[cr.Expr]:
    if grad is None:
        return cr.grad(f, [cr.var(n) for n in names])
    items = [grad] if isinstance(grad, cr.Expr | str) else list(grad)
    if len(items) != len(names):
        raise ValueError(f"grad= has {len(items)} expression(s) for {len(names)} variable(s)")
    return [cr.parse(g) if isinstance(g, str) else as_expr(g) for g in items]


def _check_values(exprs: list[cr.Expr], names: list[str],
                  at: Mapping[str, object]) -> dict[str, np.ndarray]:
    if not isinstance(at, Mapping):
        raise TypeError("at= must be a dict mapping variable names to values")
    needed = [v.name for e in exprs for v in e.variables] + names
    missing = [n for n in dict.fromkeys(needed) if n not in at]
    if missing:
        raise ValueError(f"no value for {', '.join(missing)}; pass at={{{missing[0]!r}: ...}}")
    return {name: np.array(value, dtype=np.float64) for name, value in at.items()}


def has_reduction(f: cr.Expr) -> bool:
    """Whether a sum/mean occurs anywhere (an explicit stack: graphs may be deep).

    >>> x = cr.var("x")
    >>> has_reduction(x * 2), has_reduction(x - cr.mean(x))
    (False, True)
    """
    stack, seen = [f], set()
    while stack:
        node = stack.pop()
        if node._kind == "sum":
            return True
        if node._id not in seen:
            seen.add(node._id)
            stack.extend(node._args)
    return False


def _finite_difference(fn, values, name, shape, eps, per_element):
    """Central differences of ``fn`` in variable ``name``, laid out like its symbolic gradient
    (``shape``), and a mask of the entries computed.

    Without reductions each output depends only on its own element of the variable, so moving
    all elements at once gives every derivative in two evaluations. With a reduction, outputs
    depend on every element: move one element at a time and keep the outputs computed from it.
    """
    v = values[name]
    h = eps * np.maximum(1.0, np.abs(v))
    if not per_element or v.size == 1:
        plus, minus = v + h, v - h
        # Divide by the step as represented, not 2h, to cancel the rounding of v +- h.
        numeric = _difference(fn, values, name, plus, minus) / (plus - minus)
        return numeric, np.ones(numeric.shape, dtype=bool)
    numeric, done = np.full(shape, np.nan), np.zeros(shape, dtype=bool)
    # Which element of v each gradient entry belongs to (the gradient may be broadcast wider).
    owner = np.broadcast_to(np.arange(v.size).reshape(v.shape), shape)
    for k in _sample(v.size):
        plus, minus = v.copy(), v.copy()
        plus.flat[k] += h.flat[k]
        minus.flat[k] -= h.flat[k]
        d = _difference(fn, values, name, plus, minus) / (plus.flat[k] - minus.flat[k])
        mine = owner == k
        numeric[mine] = np.broadcast_to(d, shape)[mine]
        done |= mine
    return numeric, done


def _difference(fn, values, name, plus, minus) -> np.ndarray:
    up = np.asarray(fn(**{**values, name: plus}), dtype=float)
    return up - np.asarray(fn(**{**values, name: minus}), dtype=float)


def _sample(size: int) -> np.ndarray:
    if size <= MAX_ELEMENTS:
        return np.arange(size)
    return np.sort(np.random.default_rng(0).choice(size, MAX_ELEMENTS, replace=False))


def _compare(g, numeric, done, name, values) -> tuple[float, Where | None, int, int]:
    """The worst error over the computed entries whose finite difference is finite."""
    # A derivative that simplified to a reduction (e.g. -mean(x)) comes back as one number.
    shape = np.broadcast_shapes(g.shape, numeric.shape)
    g, numeric, done = (np.broadcast_to(a, shape) for a in (g, numeric, done))
    defined = done & np.isfinite(numeric)
    err = np.abs(g - numeric) / np.maximum(np.maximum(np.abs(g), np.abs(numeric)), 1.0)
    err = np.where(defined, np.where(np.isfinite(err), err, np.inf), -1.0)
    skipped = int(np.count_nonzero(done & ~defined))
    if not defined.any():
        return -1.0, None, 0, skipped
    index = np.unravel_index(int(np.argmax(err)), g.shape) if g.ndim else ()
    index = tuple(int(i) for i in index)
    where = Where(name, index, _point(values, name, g.shape, index), float(g[index]),
                  float(numeric[index]))
    return float(err[index]), where, int(np.count_nonzero(defined)), skipped


def _point(values, name, shape, index) -> dict[str, float]:
    """The variables' values at a gradient index: all of them for a per-sample gradient, just
    the variable itself for the gradient of a reduction."""
    try:
        full = np.broadcast_shapes(*(v.shape for v in values.values()))
    except ValueError:
        full = None
    if full == shape:
        return {n: float(np.broadcast_to(v, shape)[index]) for n, v in values.items()}
    v = values[name]
    return {name: float(v[index])} if v.shape == shape else {}
