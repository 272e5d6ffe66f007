"""Expressions: variables, constants, operators, parsing and symbolic gradients.

An :class:`Expr` is a node of the Rust core's hash-consed graph: equal expressions are the same
node, so ``==`` and ``hash`` are by structure, and expressions are immutable. Python and
NumPy numbers promote to constants in arithmetic.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence

from . import _core

__all__ = ["Expr", "var", "vars", "parse", "grad", "as_expr"]


# The class is defined in the extension (see rust/chainrule-py): creating and unwrapping a
# Python wrapper per node cost more than the core's work on large graphs.
Expr = _core.Expr


def _load(data: bytes) -> Expr:
    nodes = _core.decode(data)
    if len(nodes) != 1:
        raise _core.ChainruleError(
            f"cannot load chainrule data: an expression has one root, found {len(nodes)}")
    return nodes[0]


def as_expr(value: object) -> Expr:
    """Converts a number (Python or NumPy, real) to a constant; returns expressions as they are.

    >>> print(as_expr(2.5))
    2.5
    """
    if isinstance(value, Expr):
        return value
    if isinstance(value, bool | numbers.Real) and not isinstance(value, complex):
        try:
            return _core.constant(float(value))
        except OverflowError:
            shown = short_int(value) if isinstance(value, int) else repr(value)
            raise ValueError(f"the number {shown} is too large for float64") from None
    if isinstance(value, numbers.Complex):
        raise TypeError(f"complex constants are not supported: {value!r}")
    if getattr(value, "shape", None) == ():  # a 0-d NumPy array
        return as_expr(value[()])
    raise TypeError(f"cannot use {type(value).__name__} {value!r} in an expression; use numbers "
                    f"or chainrule expressions")


def short_int(value: int) -> str:
    """An integer as a message shows it: all its digits if few, else the ends and the count.

    An int too large for float64 has over 300 digits (and str() refuses those past 4,300).

    >>> short_int(-10**400 - 7)
    '-1000…007 (401 digits)'
    """
    sign, value = ("-", -value) if value < 0 else ("", value)
    digits = max(1, int(value.bit_length() * 0.30102999566398120))
    while 10**digits <= value:
        digits += 1
    if digits <= 20:
        return f"{sign}{value}"
    return f"{sign}{value // 10 ** (digits - 4)}…{value % 1000:03d} ({digits} digits)"


def var(name: str) -> Expr:
    """A variable. The same name is the same variable.

    >>> var("x") == var("x")
    True
    """
    if not isinstance(name, str):
        raise TypeError(f"a variable name must be a str, not {type(name).__name__}")
    return _core.var(name)


def vars(names: str | Iterable[str]) -> tuple[Expr, ...]:  # noqa: A001 - the API's name
    """Several variables at once, from a space- or comma-separated string or an iterable.

    >>> x, y = vars("x y")
    >>> print(x + y)
    x + y
    """
    if isinstance(names, str):
        names = names.replace(",", " ").split()
    return tuple(var(n) for n in names)


def parse(text: str) -> Expr:
    """Reads the syntax ``str(expr)`` prints (including ``t1 = ...`` lines for shared parts).

    >>> print(parse("sin(cos(x)) + x**2"))
    sin(cos(x)) + x * x
    """
    if not isinstance(text, str):
        raise TypeError(f"parse() takes a str, not {type(text).__name__}")
    try:
        nodes = _core.parse(text)
    except UnicodeEncodeError as exc:  # a lone surrogate cannot cross into Rust
        raise _core.ParseError(
            f"invalid character at position {exc.start}: {text[exc.start]!r}") from None
    if len(nodes) != 1:
        raise _core.ParseError(f"expected exactly one expression, found {len(nodes)} result lines")
    return nodes[0]


def grad(f: Expr | float, wrt: Expr | Sequence[Expr]) -> Expr | list[Expr]:
    """Symbolic derivative(s) of ``f``: an expression for a variable, a list for a list.

    Per-sample expressions have per-sample derivatives; the derivative of a reduction has the
    shape of the variable's argument (see the README's conventions).

    >>> x = var("x")
    >>> print(grad(x**3, x))
    3 * (x * x)
    """
    f = as_expr(f)
    single = isinstance(wrt, Expr)
    targets = [wrt] if single else list(wrt) if isinstance(wrt, Sequence) else None
    if targets is None:
        raise TypeError(f"grad() needs a variable or a list of variables, not {type(wrt).__name__}")
    result = _core.grad(f, targets)
    return result[0] if single else result
