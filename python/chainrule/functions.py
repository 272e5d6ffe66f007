"""Elementwise functions and batch reductions on expressions (numbers promote to constants)."""

from __future__ import annotations

from collections.abc import Iterable

from . import _core
from .expr import Expr, as_expr

__all__ = [
    "sin", "cos", "tan", "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "abs",
    "step", "sign", "xlogy", "sum", "mean",
]


def xlogy(x: object, y: object) -> Expr:
    """x * log(y), and 0 where x is 0 (unless y is nan), as ``scipy.special.xlogy``; the
    derivative of ``x ** y`` in the exponent is ``xlogy(x ** y, x)``, 0 at x = 0.

    >>> from chainrule import var
    >>> print(xlogy(0, 0), xlogy(var("x"), var("y")))
    0 xlogy(x, y)
    """
    return _core.apply("xlogy", x, y)


def _unary(op: str, x: object) -> Expr:
    return _core.apply(op, x)  # promotes numbers as as_expr does


def sin(x: object) -> Expr:
    """Sine. ``cr.sin(x)``

    >>> print(sin(cos(as_expr(0.0))))
    0.8414709848078965
    """
    return _unary("sin", x)


def cos(x: object) -> Expr:
    """Cosine.

    >>> print(cos(0))
    1
    """
    return _unary("cos", x)


def tan(x: object) -> Expr:
    """Tangent.

    >>> print(tan(0))
    0
    """
    return _unary("tan", x)


def exp(x: object) -> Expr:
    """Exponential.

    >>> print(exp(0))
    1
    """
    return _unary("exp", x)


def log(x: object) -> Expr:
    """Natural logarithm (nan below 0, -inf at 0, like NumPy).

    >>> print(log(1))
    0
    """
    return _unary("log", x)


def sqrt(x: object) -> Expr:
    """Square root.

    >>> print(sqrt(4))
    2
    """
    return _unary("sqrt", x)


def tanh(x: object) -> Expr:
    """Hyperbolic tangent.

    >>> print(tanh(0))
    0
    """
    return _unary("tanh", x)


def sigmoid(x: object) -> Expr:
    """The logistic function 1 / (1 + exp(-x)); its derivative is s(x) * s(-x) = s * (1 - s).

    >>> print(sigmoid(0))
    0.5
    """
    return _unary("sigmoid", x)


def relu(x: object) -> Expr:
    """max(x, 0); its derivative at 0 is taken to be 0.

    >>> print(relu(-3))
    0
    """
    return _unary("relu", x)


def abs(x: object) -> Expr:  # noqa: A001 - mirrors numpy.abs
    """Absolute value; its derivative at 0 is taken to be 0.

    >>> print(abs(-3))
    3
    """
    return _unary("abs", x)


def step(x: object) -> Expr:
    """1 where x > 0, else 0 (the derivative of relu).

    >>> print(step(2))
    1
    """
    return _unary("step", x)


def sign(x: object) -> Expr:
    """-1, 0 or 1 (the derivative of abs).

    >>> print(sign(-2))
    -1
    """
    return _unary("sign", x)


def _over_names(over: object) -> list[str]:
    if over is None:
        return []
    if isinstance(over, Expr | str):
        items = [over]
    elif isinstance(over, Iterable):
        items = list(over)
    else:
        raise TypeError(f"over= takes a variable, a name or a sequence of them, not "
                        f"{type(over).__name__}")
    names = []
    for item in items:
        name = item.name if isinstance(item, Expr) else item
        if not isinstance(name, str):
            raise TypeError(f"over= takes variables, not {item!r}")
        names.append(name)
    return names


def sum(x: object, over: Expr | str | Iterable[Expr | str] | None = None) -> Expr:  # noqa: A001
    """Sum over the batch: a single value. With ``over=w``, sums only over the dimensions along
    which ``w``'s argument is broadcast (what a gradient with respect to ``w`` needs).

    >>> from chainrule import var
    >>> print(sum(var("x") * 2))
    sum(2 * x)
    """
    return _core.sum(as_expr(x), _over_names(over))


def mean(x: object) -> Expr:
    """Mean over the batch: ``sum(x) / sum(1)``, printed as ``mean(x)``.

    >>> from chainrule import var
    >>> print(mean((var("y") - var("x")) ** 2))
    mean((y - x) ** 2)
    """
    return _core.mean(as_expr(x))
