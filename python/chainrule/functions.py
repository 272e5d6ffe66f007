"""Elementwise functions and batch reductions on expressions (numbers promote to constants)."""

from __future__ import annotations

from collections.abc import Iterable

from . import _core
from .expr import Expr, as_expr

__all__ = [
    "sin", "cos", "tan", "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "abs",
    "step", "sign", "xlogy", "sum", "mean",
    # inverse trig and hyperbolic
    "asin", "acos", "atan", "atan2", "sinh", "cosh", "asinh", "acosh", "atanh",
    "arcsin", "arccos", "arctan", "arctan2", "arcsinh", "arccosh", "arctanh",
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


# inverse trig and hyperbolic

def asin(x: object) -> Expr:
    """Inverse sine, in [-pi/2, pi/2]; nan outside [-1, 1]. Its derivative 1 / sqrt(1 - x**2)
    is inf at x = -1 and 1 (as JAX's). numexpr's spelling ``arcsin`` is an alias.

    >>> print(asin(1), arcsin(0))
    1.5707963267948966 0
    """
    return _unary("asin", x)


def acos(x: object) -> Expr:
    """Inverse cosine, in [0, pi]; nan outside [-1, 1]. Its derivative -1 / sqrt(1 - x**2) is
    -inf at x = -1 and 1. numexpr's spelling ``arccos`` is an alias.

    >>> print(acos(1))
    0
    """
    return _unary("acos", x)


def atan(x: object) -> Expr:
    """Inverse tangent, in [-pi/2, pi/2]; its derivative is 1 / (1 + x**2). numexpr's spelling
    ``arctan`` is an alias.

    >>> print(atan(0))
    0
    """
    return _unary("atan", x)


def atan2(y: object, x: object) -> Expr:
    """The angle of the point (x, y) from the positive x axis, in [-pi, pi], with C's and
    NumPy's signed zeros (``atan2(0, -1)`` is pi, ``atan2(-0.0, -1)`` is -pi). Its partial
    derivatives x / (x**2 + y**2) and -y / (x**2 + y**2) are written with the squares, so they
    flush to 0 where |x|, |y| > 1e154 (true values below 1e-154) and are inf at the origin and
    where both are below 1e-154. numexpr's spelling ``arctan2`` is an alias.

    >>> from chainrule import var
    >>> print(atan2(0, -1), atan2(var("y"), var("x")))
    pi atan2(y, x)
    """
    return _core.apply("atan2", y, x)


def sinh(x: object) -> Expr:
    """Hyperbolic sine; its derivative is cosh(x).

    >>> print(sinh(0))
    0
    """
    return _unary("sinh", x)


def cosh(x: object) -> Expr:
    """Hyperbolic cosine; its derivative is sinh(x).

    >>> print(cosh(0))
    1
    """
    return _unary("cosh", x)


def asinh(x: object) -> Expr:
    """Inverse hyperbolic sine. Its derivative 1 / sqrt(1 + x**2) flushes to 0 where
    |x| > 1e154 (true value below 1e-154). numexpr's spelling ``arcsinh`` is an alias.

    >>> print(asinh(0))
    0
    """
    return _unary("asinh", x)


def acosh(x: object) -> Expr:
    """Inverse hyperbolic cosine, nan below 1. Its derivative 1 / sqrt(x**2 - 1) is inf at
    x = 1 (as JAX's). numexpr's spelling ``arccosh`` is an alias.

    >>> print(acosh(1))
    0
    """
    return _unary("acosh", x)


def atanh(x: object) -> Expr:
    """Inverse hyperbolic tangent: -inf and inf at -1 and 1, nan beyond. Its derivative
    1 / (1 - x**2) is inf at x = -1 and 1. numexpr's spelling ``arctanh`` is an alias.

    >>> print(atanh(0))
    0
    """
    return _unary("atanh", x)


arcsin, arccos, arctan, arctan2 = asin, acos, atan, atan2
arcsinh, arccosh, arctanh = asinh, acosh, atanh


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
    mean((y - x) * (y - x))
    """
    return _core.mean(as_expr(x))
