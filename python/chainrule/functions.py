"""Elementwise functions and batch reductions on expressions (numbers promote to constants)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol, overload

from . import _core, arrays
from .arrays import ExprArray
from .expr import Expr, as_expr

__all__ = [
    "sin", "cos", "tan", "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "abs",
    "step", "sign", "xlogy", "sum", "mean",
    # exponentials, logarithms, roots
    "exp2", "expm1", "log2", "log10", "log1p", "cbrt", "square", "hypot",
    # special and numerically stable functions
    "erf", "erfc", "softplus", "log_sigmoid", "logaddexp",
    # inverse trig and hyperbolic
    "asin", "acos", "atan", "atan2", "sinh", "cosh", "asinh", "acosh", "atanh",
    "arcsin", "arccos", "arctan", "arctan2", "arcsinh", "arccosh", "arctanh",
    # piecewise, comparisons and logic
    "minimum", "maximum", "clip", "floor", "ceil", "round", "trunc", "fmod", "copysign",
    "nextafter", "less", "less_equal", "greater", "greater_equal", "equal", "not_equal",
    "logical_and", "logical_or", "logical_not", "where",
]


class _Elementwise(Protocol):
    """How mypy sees a function of one operand: an ExprArray for an ExprArray, else an Expr."""

    @overload
    def __call__(self, x: ExprArray) -> ExprArray: ...
    @overload
    def __call__(self, x: Expr | float) -> Expr: ...


class _Elementwise2(Protocol):
    """How mypy sees a function of two operands: an ExprArray if either is one."""

    @overload
    def __call__(self, x: ExprArray, y: object) -> ExprArray: ...
    @overload
    def __call__(self, x: object, y: ExprArray) -> ExprArray: ...
    @overload
    def __call__(self, x: Expr | float, y: Expr | float) -> Expr: ...


def _elementwise(f: Callable[[object], Expr]) -> _Elementwise:
    return f  # type: ignore[return-value]  # the runtime function is unchanged


def _elementwise2(f: Callable[[object, object], Expr]) -> _Elementwise2:
    return f  # type: ignore[return-value]


@_elementwise2
def xlogy(x: object, y: object) -> Expr:
    """x * log(y), and 0 where x is 0 (unless y is nan), as ``scipy.special.xlogy``; the
    derivative of ``x ** y`` in the exponent is ``xlogy(x ** y, x)``, 0 at x = 0.

    >>> from chainrule import var
    >>> print(xlogy(0, 0), xlogy(var("x"), var("y")))
    0 xlogy(x, y)
    """
    return _binary("xlogy", x, y)


def _unary(op: str, x: object) -> Expr:
    if isinstance(x, ExprArray):
        return arrays.unary(op, x)  # type: ignore[return-value]
    return _core.apply(op, x)  # promotes numbers as as_expr does


@_elementwise
def sin(x: object) -> Expr:
    """Sine. ``cr.sin(x)``

    >>> print(sin(cos(as_expr(0.0))))
    0.8414709848078965
    """
    return _unary("sin", x)


@_elementwise
def cos(x: object) -> Expr:
    """Cosine.

    >>> print(cos(0))
    1
    """
    return _unary("cos", x)


@_elementwise
def tan(x: object) -> Expr:
    """Tangent.

    >>> print(tan(0))
    0
    """
    return _unary("tan", x)


@_elementwise
def exp(x: object) -> Expr:
    """Exponential.

    >>> print(exp(0))
    1
    """
    return _unary("exp", x)


@_elementwise
def log(x: object) -> Expr:
    """Natural logarithm (nan below 0, -inf at 0, like NumPy).

    >>> print(log(1))
    0
    """
    return _unary("log", x)


@_elementwise
def sqrt(x: object) -> Expr:
    """Square root.

    >>> print(sqrt(4))
    2
    """
    return _unary("sqrt", x)


@_elementwise
def tanh(x: object) -> Expr:
    """Hyperbolic tangent.

    >>> print(tanh(0))
    0
    """
    return _unary("tanh", x)


@_elementwise
def sigmoid(x: object) -> Expr:
    """The logistic function 1 / (1 + exp(-x)); its derivative is s(x) * s(-x) = s * (1 - s).

    >>> print(sigmoid(0))
    0.5
    """
    return _unary("sigmoid", x)


@_elementwise
def relu(x: object) -> Expr:
    """max(x, 0); its derivative at 0 is taken to be 0.

    >>> print(relu(-3))
    0
    """
    return _unary("relu", x)


@_elementwise
def abs(x: object) -> Expr:  # noqa: A001 - mirrors numpy.abs
    """Absolute value; its derivative at 0 is taken to be 0.

    >>> print(abs(-3))
    3
    """
    return _unary("abs", x)


@_elementwise
def step(x: object) -> Expr:
    """1 where x > 0, else 0 (the derivative of relu).

    >>> print(step(2))
    1
    """
    return _unary("step", x)


@_elementwise
def sign(x: object) -> Expr:
    """-1, 0 or 1 (the derivative of abs).

    >>> print(sign(-2))
    -1
    """
    return _unary("sign", x)


# inverse trig and hyperbolic

@_elementwise
def asin(x: object) -> Expr:
    """Inverse sine, in [-pi/2, pi/2]; nan outside [-1, 1]. Its derivative 1 / sqrt(1 - x**2)
    is inf at x = -1 and 1 (as JAX's). numexpr's spelling ``arcsin`` is an alias.

    >>> print(asin(1), arcsin(0))
    1.5707963267948966 0
    """
    return _unary("asin", x)


@_elementwise
def acos(x: object) -> Expr:
    """Inverse cosine, in [0, pi]; nan outside [-1, 1]. Its derivative -1 / sqrt(1 - x**2) is
    -inf at x = -1 and 1. numexpr's spelling ``arccos`` is an alias.

    >>> print(acos(1))
    0
    """
    return _unary("acos", x)


@_elementwise
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
    return _binary("atan2", y, x)


@_elementwise
def sinh(x: object) -> Expr:
    """Hyperbolic sine; its derivative is cosh(x).

    >>> print(sinh(0))
    0
    """
    return _unary("sinh", x)


@_elementwise
def cosh(x: object) -> Expr:
    """Hyperbolic cosine; its derivative is sinh(x).

    >>> print(cosh(0))
    1
    """
    return _unary("cosh", x)


@_elementwise
def asinh(x: object) -> Expr:
    """Inverse hyperbolic sine. Its derivative 1 / sqrt(1 + x**2) flushes to 0 where
    |x| > 1e154 (true value below 1e-154). numexpr's spelling ``arcsinh`` is an alias.

    >>> print(asinh(0))
    0
    """
    return _unary("asinh", x)


@_elementwise
def acosh(x: object) -> Expr:
    """Inverse hyperbolic cosine, nan below 1. Its derivative 1 / sqrt(x**2 - 1) is inf at
    x = 1 (as JAX's). numexpr's spelling ``arccosh`` is an alias.

    >>> print(acosh(1))
    0
    """
    return _unary("acosh", x)


@_elementwise
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
    if isinstance(over, ExprArray):
        return [v.name for v in over.tolist_flat()]
    if isinstance(over, Expr | str):
        items = [over]
    elif isinstance(over, Iterable):
        items = list(over)
    else:
        raise TypeError(f"over= takes a variable, a name or a sequence of them, not "
                        f"{type(over).__name__}")
    names = []
    for item in items:
        if isinstance(item, ExprArray):
            names.extend(v.name for v in item.tolist_flat())
            continue
        name = item.name if isinstance(item, Expr) else item
        if not isinstance(name, str):
            raise TypeError(f"over= takes variables, not {item!r}")
        names.append(name)
    return names


@overload
def sum(x: ExprArray, over: object = None) -> ExprArray: ...  # noqa: A001
@overload
def sum(x: Expr | float, over: Expr | str | Iterable[Expr | str] | None = None) -> Expr: ...  # noqa: A001


def sum(x: object, over: object = None) -> Expr | ExprArray:  # noqa: A001
    """Sum over the batch: a single value. With ``over=w``, sums only over the dimensions along
    which ``w``'s argument is broadcast (what a gradient with respect to ``w`` needs).

    >>> from chainrule import var
    >>> print(sum(var("x") * 2))
    sum(2 * x)
    """
    if isinstance(x, ExprArray):
        return arrays.reduce("sum", x, _over_names(over))
    return _core.sum(as_expr(x), _over_names(over))


@overload
def mean(x: ExprArray) -> ExprArray: ...
@overload
def mean(x: Expr | float) -> Expr: ...


def mean(x: object) -> Expr | ExprArray:
    """Mean over the batch: ``sum(x) / sum(1)``, printed as ``mean(x)``.

    >>> from chainrule import var
    >>> print(mean((var("y") - var("x")) ** 2))
    mean((y - x) ** 2)
    """
    if isinstance(x, ExprArray):
        return arrays.reduce("mean", x)
    return _core.mean(as_expr(x))


# -- exponentials, logarithms, roots ----------------------------------------------------------


@_elementwise
def exp2(x: object) -> Expr:
    """2 ** x, with 2 ** n exact for integers n.

    >>> print(exp2(10))
    1024
    """
    return _unary("exp2", x)


@_elementwise
def expm1(x: object) -> Expr:
    """exp(x) - 1, accurate near 0 where the subtraction would cancel; its derivative is exp(x).

    >>> print(expm1(1e-20))
    1e-20
    """
    return _unary("expm1", x)


@_elementwise
def log2(x: object) -> Expr:
    """Base-2 logarithm (nan below 0, -inf at 0); the derivative at 0 is inf.

    >>> print(log2(8))
    3
    """
    return _unary("log2", x)


@_elementwise
def log10(x: object) -> Expr:
    """Base-10 logarithm (nan below 0, -inf at 0); the derivative at 0 is inf.

    >>> print(log10(1000))
    3
    """
    return _unary("log10", x)


@_elementwise
def log1p(x: object) -> Expr:
    """log(1 + x), accurate near 0 (log1p(1e-300) is 1e-300); -inf at -1, nan below, and the
    derivative 1 / (1 + x) is inf at -1.

    >>> print(log1p(1e-300))
    1e-300
    """
    return _unary("log1p", x)


@_elementwise
def cbrt(x: object) -> Expr:
    """Real cube root, negative for negative x; the derivative 1 / (3 cbrt(x)**2) is inf at 0.

    >>> print(cbrt(-27))
    -3
    """
    return _unary("cbrt", x)


@_elementwise
def square(x: object) -> Expr:
    """x * x: the same node as ``x * x`` and ``x ** 2`` (sugar, as in the text form).

    >>> from chainrule import var
    >>> print(square(var("x")), square(var("x")) == var("x") ** 2)
    x ** 2 True
    """
    e = x if isinstance(x, ExprArray) else as_expr(x)
    return _binary("mul", e, e)


@_elementwise2
def hypot(x: object, y: object) -> Expr:
    """sqrt(x*x + y*y) without overflow or underflow; inf if either is infinite, even when the
    other is nan (as C's). Its gradient (x, y) / hypot(x, y) is taken to be 0 at the origin, as
    JAX's (hypot(x, 0) is abs(x), whose derivative at 0 is 0).

    >>> print(hypot(3, 4))
    5
    """
    return _binary("hypot", x, y)
# -- special and numerically stable functions ------------------------------------------------


@_elementwise
def erf(x: object) -> Expr:
    """The error function, 2/sqrt(pi) times the integral of exp(-t**2) from 0 to x.

    Its derivative is 2/sqrt(pi) * exp(-x**2), finite everywhere; it is formed from the rounded
    x * x, so its relative error grows as x**2 * 1.1e-16 (1e-14 at |x| = 10, where it is 4e-44).

    >>> print(erf(0), erf(float("inf")))
    0 1
    """
    return _unary("erf", x)


@_elementwise
def erfc(x: object) -> Expr:
    """1 - erf(x), with full relative accuracy in the right tail (erfc(26) = 5.7e-296, where
    1 - erf(x) is 0); it underflows to 0 from x = 27.3 on.

    Its derivative is -2/sqrt(pi) * exp(-x**2) (see :func:`erf`).

    >>> print(erfc(0), erfc(30))
    1 0
    """
    return _unary("erfc", x)


@_elementwise
def softplus(x: object) -> Expr:
    """log(1 + exp(x)), computed as max(x, 0) + log1p(exp(-|x|)) so neither tail overflows or
    loses digits: softplus(1000) = 1000, softplus(-1000) = exp(-1000) (0 in float64). Its
    derivative is sigmoid(x), as accurate in the tails.

    >>> print(softplus(1000), softplus(0))
    1000 0.6931471805599453
    """
    return _unary("softplus", x)


@_elementwise
def log_sigmoid(x: object) -> Expr:
    """log(sigmoid(x)) = -softplus(-x), exact in both tails: log_sigmoid(-1000) = -1000. Its
    derivative is sigmoid(-x).

    >>> print(log_sigmoid(-1000))
    -1000
    """
    return _unary("logsigmoid", x)


@_elementwise2
def logaddexp(x: object, y: object) -> Expr:
    """log(exp(x) + exp(y)) without overflow or underflow, as ``numpy.logaddexp``:
    max(x, y) + log1p(exp(-|x - y|)); logaddexp(inf, inf) = inf, logaddexp(-inf, -inf) = -inf.

    Its partial derivatives are sigmoid(x - y) and sigmoid(y - x). Where x = y = inf or
    x = y = -inf, x - y is nan and so are both partials (as PyTorch's).

    >>> print(logaddexp(1000, 1000), logaddexp(-1000, 0))
    1000.6931471805599 0
    """
    return _binary("logaddexp", x, y)
# -- piecewise, comparisons and logic -------------------------------------------------------


def _binary(op: str, x: object, y: object) -> Expr:
    if isinstance(x, ExprArray) or isinstance(y, ExprArray):
        return arrays.elementwise(op, x, y)  # type: ignore[return-value]
    return _core.apply(op, x, y)


@_elementwise2
def minimum(x: object, y: object) -> Expr:
    """The smaller of x and y, nan if either is (as ``np.minimum``); at a tie the gradient is
    split 0.5/0.5, as JAX's.

    >>> from chainrule import var
    >>> print(minimum(var("x"), 0), minimum(2, 3))
    minimum(x, 0) 2
    """
    return _binary("minimum", x, y)


@_elementwise2
def maximum(x: object, y: object) -> Expr:
    """The larger of x and y, nan if either is (as ``np.maximum``); at a tie the gradient is
    split 0.5/0.5, as JAX's.

    >>> print(maximum(2, 3))
    3
    """
    return _binary("maximum", x, y)


def clip(x: object, lo: object, hi: object) -> Expr:
    """``minimum(maximum(x, lo), hi)``, as ``np.clip`` and ``jnp.clip`` (and so its gradient:
    1 inside, 0 outside, 0.5 at a bound).

    >>> from chainrule import var
    >>> print(clip(var("x"), 0, 1))
    minimum(maximum(x, 0), 1)
    """
    return minimum(maximum(x, lo), hi)


@_elementwise
def floor(x: object) -> Expr:
    """The largest integer not above x; zero gradient.

    >>> print(floor(-2.5))
    -3
    """
    return _unary("floor", x)


@_elementwise
def ceil(x: object) -> Expr:
    """The smallest integer not below x; zero gradient.

    >>> print(ceil(-2.5))
    -2
    """
    return _unary("ceil", x)


@_elementwise
def round(x: object) -> Expr:  # noqa: A001 - mirrors numpy.round
    """The nearest integer, halves to even (as ``np.round``, not half away from zero); zero
    gradient.

    >>> print(round(2.5), round(3.5))
    2 4
    """
    return _unary("round", x)


@_elementwise
def trunc(x: object) -> Expr:
    """x rounded towards zero; zero gradient.

    >>> print(trunc(-2.5))
    -2
    """
    return _unary("trunc", x)


@_elementwise2
def fmod(x: object, y: object) -> Expr:
    """C's remainder of x / y, with the sign of x (``np.fmod``); d/dx = 1, d/dy = -trunc(x / y).

    >>> print(fmod(-7, 3))
    -1
    """
    return _binary("fmod", x, y)


@_elementwise2
def copysign(x: object, y: object) -> Expr:
    """|x| with the sign of y (its sign bit: -0.0 counts as negative); d/dx is 1 where the signs
    of x and the result agree, -1 where not, 0 at x = 0; d/dy = 0.

    >>> print(copysign(3, -0.0))
    -3
    """
    return _binary("copysign", x, y)


@_elementwise2
def nextafter(x: object, y: object) -> Expr:
    """The next float after x towards y (``np.nextafter``); d/dx = 1 (it is x to one ulp, as
    finite differences see it; JAX gives 0), d/dy = 0.

    >>> print(nextafter(1, 2))
    1.0000000000000002
    """
    return _binary("nextafter", x, y)


@_elementwise2
def less(x: object, y: object) -> Expr:
    """1.0 where x < y, else 0.0 (also ``x < y``); zero gradient.

    >>> from chainrule import var
    >>> print(less(var("x"), 1), less(1, 2))
    x < 1 1
    """
    return _binary("less", x, y)


@_elementwise2
def less_equal(x: object, y: object) -> Expr:
    """1.0 where x <= y, else 0.0 (also ``x <= y``); zero gradient.

    >>> print(less_equal(2, 2))
    1
    """
    return _binary("lessequal", x, y)


@_elementwise2
def greater(x: object, y: object) -> Expr:
    """1.0 where x > y, else 0.0 (also ``x > y``); zero gradient.

    >>> print(greater(2, 2))
    0
    """
    return _binary("greater", x, y)


@_elementwise2
def greater_equal(x: object, y: object) -> Expr:
    """1.0 where x >= y, else 0.0 (also ``x >= y``); zero gradient.

    >>> print(greater_equal(2, 2))
    1
    """
    return _binary("greaterequal", x, y)


@_elementwise2
def equal(x: object, y: object) -> Expr:
    """1.0 where x == y, else 0.0 (``==`` in text; in Python ``==`` compares expressions by
    structure); zero gradient.

    >>> from chainrule import var
    >>> print(equal(var("x"), 0))
    x == 0
    """
    return _binary("equal", x, y)


@_elementwise2
def not_equal(x: object, y: object) -> Expr:
    """1.0 where x != y (and where either is nan), else 0.0 (``!=`` in text); zero gradient.

    >>> print(not_equal(1, 2))
    1
    """
    return _binary("notequal", x, y)


@_elementwise2
def logical_and(x: object, y: object) -> Expr:
    """1.0 where both are nonzero (nan counts as true, as NumPy's), else 0.0; also ``x & y``.

    >>> from chainrule import var
    >>> x = var("x")
    >>> print(logical_and(x > 0, x < 1))
    (x > 0) & (x < 1)
    """
    return _binary("and", x, y)


@_elementwise2
def logical_or(x: object, y: object) -> Expr:
    """1.0 where either is nonzero (nan counts as true), else 0.0; also ``x | y``.

    >>> print(logical_or(0, 2))
    1
    """
    return _binary("or", x, y)


@_elementwise
def logical_not(x: object) -> Expr:
    """1.0 where x is zero, else 0.0 (nan counts as true, so gives 0.0); also ``~x``.

    >>> print(logical_not(0))
    1
    """
    return _unary("not", x)


@overload
def where(condition: ExprArray, x: object, y: object) -> ExprArray: ...
@overload
def where(condition: object, x: ExprArray, y: object) -> ExprArray: ...
@overload
def where(condition: object, x: object, y: ExprArray) -> ExprArray: ...
@overload
def where(condition: Expr | float, x: Expr | float, y: Expr | float) -> Expr: ...


def where(condition: object, x: object, y: object) -> Expr | ExprArray:
    """x where ``condition`` is nonzero (nan counts as true, as ``np.where``), else y, per
    sample; and so is its gradient: a nan or inf in the branch not taken never reaches the
    value or the gradient (JAX's ``where`` leaks it into the gradient).

    >>> import chainrule as cr
    >>> x = cr.var("x")
    >>> f = where(x > 0, cr.sqrt(x), 0)
    >>> print(f)
    where(x > 0, sqrt(x), 0)
    >>> float(cr.compile(cr.grad(f, x), inputs=[x])(-1.0))  # JAX: nan
    -0.0
    """
    if any(isinstance(v, ExprArray) for v in (condition, x, y)):
        return arrays.where(condition, x, y)
    c = as_expr(condition)
    return _binary("select", c, x) + _binary("select", ~c, y)
