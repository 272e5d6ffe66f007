"""Expressions: variables, constants, operators, parsing and symbolic gradients.

An :class:`Expr` is a node of the Rust core's hash-consed graph: equal expressions are the same
node, so ``==`` and ``hash`` are by structure, and expressions are immutable. Python and
NumPy numbers promote to constants in arithmetic.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, overload

from . import _core

if TYPE_CHECKING:
    from .arrays import ExprArray

__all__ = ["Expr", "var", "vars", "parse", "grad", "as_expr", "pi", "e", "jacobian", "hessian",
           "substitute"]


# The class is defined in the extension (see rust/chainrule-py): creating and unwrapping a
# Python wrapper per node cost more than the core's work on large graphs.
Expr = _core.Expr

#: The constant pi (float64); it prints as ``pi``, and ``pi`` in text reads as it.
pi: Expr = _core.constant(math.pi)
#: The constant e (float64); it prints as ``e``, and ``e`` in text reads as it.
e: Expr = _core.constant(math.e)

# Names the text format reads as constants, so a variable of that name could not parse back.
_CONSTANT_NAMES = {"pi": "cr.pi", "e": "cr.e", "inf": "float('inf')", "nan": "float('nan')"}


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


@overload
def var(name: str) -> Expr: ...
@overload
def var(name: str, shape: int | Sequence[int]) -> ExprArray: ...


def var(name: str, shape: int | Sequence[int] | None = None) -> Expr | ExprArray:
    """A variable. The same name is the same variable. With ``shape``, an array of variables
    (a :class:`~chainrule.ExprArray`) whose elements are named ``name[i,j,...]``.

    >>> var("x") == var("x")
    True
    >>> print(var("W", shape=(2, 3))[1, 2])
    W[1,2]
    """
    if shape is not None:
        from .arrays import array_var

        _check_name(name)
        return array_var(name, shape)
    _check_name(name)
    return _core.var(name)


def _check_name(name: object) -> None:
    if not isinstance(name, str):
        raise TypeError(f"a variable name must be a str, not {type(name).__name__}")
    if name in _CONSTANT_NAMES:
        raise _core.ChainruleError(
            f"{name!r} cannot name a variable: the text format reserves it for a constant "
            f"(use {_CONSTANT_NAMES[name]}); choose another name")


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
    sin(cos(x)) + x ** 2
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


@overload
def grad(f: Expr | float, wrt: Expr) -> Expr: ...
@overload
def grad(f: Expr | float, wrt: list[Expr]) -> list[Expr]: ...
@overload
def grad(f: Expr | float, wrt: tuple[Expr, ...]) -> tuple[Expr, ...]: ...
@overload
def grad(f: Expr | float, wrt: ExprArray) -> ExprArray: ...
@overload  # with arrays among them: an ExprArray for each array, an Expr for each variable
def grad(f: Expr | float, wrt: list[Expr | ExprArray]) -> list[Any]: ...
@overload
def grad(f: Expr | float, wrt: tuple[Expr | ExprArray, ...]) -> tuple[Any, ...]: ...


def grad(f: Expr | float, wrt: Expr | ExprArray | list | tuple) -> Any:
    """Symbolic derivative(s) of ``f``: an expression for a variable, a list for a list, a
    tuple for a tuple (as JAX's ``argnums``). Grad of grad works (higher order).

    Per-sample expressions have per-sample derivatives; the derivative of a reduction has the
    shape of the variable's argument (see the README's conventions).

    >>> x, y = vars("x y")
    >>> print(grad(x**3, x))
    3 * x ** 2
    >>> dfdx, dfdy = grad(x * y, [x, y])
    >>> print(dfdx, dfdy)
    y x
    """
    f = _output(f, "grad")
    from .arrays import ExprArray, grad_arrays

    if isinstance(wrt, ExprArray) or (
            isinstance(wrt, list | tuple) and any(isinstance(w, ExprArray) for w in wrt)):
        return grad_arrays(f, wrt)
    return _like(wrt, _core.grad(f, _variables(wrt, "grad")))


def _like(given: object, results: list[Expr]) -> Expr | list[Expr] | tuple[Expr, ...]:
    """``results`` in the form ``given`` came in: one expression, a tuple or a list."""
    if isinstance(given, Expr):
        return results[0]
    return tuple(results) if isinstance(given, tuple) else results


def _output(f: object, caller: str) -> Expr:
    """``f`` as the one expression ``caller`` differentiates; a TypeError names the fix."""
    if isinstance(f, list | tuple):
        raise TypeError(f"{caller}() differentiates one expression, not a {type(f).__name__}; "
                        f"for several outputs use cr.jacobian(outputs, wrt)")
    if hasattr(f, "_block"):  # an ExprArray
        raise TypeError(f"{caller}() differentiates one scalar expression, not an ExprArray of "
                        f"shape {f.shape}; sum it first (.sum()) or use cr.jacobian")
    try:
        return as_expr(f)
    except TypeError:
        raise TypeError(f"{caller}() differentiates an expression, not {type(f).__name__} "
                        f"{f!r}") from None


def _variables(wrt: object, caller: str) -> list[Expr]:
    """The variables of ``wrt`` (one variable, or a list or tuple of them), or a TypeError
    that names the fix for what users of other libraries pass."""
    items = [wrt] if isinstance(wrt, Expr | str) else wrt
    if not isinstance(items, list | tuple):
        kind = type(wrt).__name__
        fix = ("pass a list of its variables, e.g. list(d.values())" if isinstance(wrt, Mapping)
               else "pass a variable or a list or tuple of variables, e.g. [x, y]")
        raise TypeError(f"{caller}() differentiates with respect to variables, not a {kind}; {fix}")
    for item in items:
        if isinstance(item, str):
            raise TypeError(f"{caller}() differentiates with respect to variables, not the name "
                            f"{item!r}; pass cr.var({item!r})")
        if not isinstance(item, Expr) or not item.is_var:
            what = f"the expression {item}" if isinstance(item, Expr) else repr(item)
            raise TypeError(f"{caller}() differentiates with respect to variables, not {what}; "
                            f"pass variables made by cr.var (substitute first to differentiate "
                            f"by an expression)")
    return list(items)


def jacobian(outputs: Expr | float | Sequence[Expr | float],
             wrt: Expr | Sequence[Expr]) -> list[list[Expr]]:
    """The Jacobian as a list of rows: ``J[i][j]`` is d outputs[i] / d wrt[j]. A single output
    or variable counts as a list of one. Rows come from one reverse sweep each and share nodes
    with each other and with the outputs.

    >>> x, y = vars("x y")
    >>> [[str(d) for d in row] for row in jacobian([x * y, x + y], [x, y])]
    [['y', 'x'], ['1', '1']]
    """
    rows = [outputs] if isinstance(outputs, Expr | numbers.Real) else outputs
    if not isinstance(rows, list | tuple):
        raise TypeError(f"jacobian() takes an expression or a list of them, not "
                        f"{type(outputs).__name__}")
    targets = _variables(wrt, "jacobian")
    return [_core.grad(_output(f, "jacobian"), targets) for f in rows]


def hessian(f: Expr | float, wrt: Expr | Sequence[Expr]) -> list[list[Expr]]:
    """The matrix of second derivatives as a list of rows: the Jacobian of the gradient, so
    the rows share the gradient's nodes (one reverse sweep per row).

    >>> x, y = vars("x y")
    >>> [[str(d) for d in row] for row in hessian(x * x * y, [x, y])]
    [['2 * y', '2 * x'], ['2 * x', '0']]
    """
    targets = _variables(wrt, "hessian")
    return jacobian(_core.grad(_output(f, "hessian"), targets), targets)


@overload
def substitute(expr: Expr, mapping: Mapping[Expr | str, Expr | float]) -> Expr: ...
@overload
def substitute(expr: list[Expr], mapping: Mapping[Expr | str, Expr | float]) -> list[Expr]: ...
@overload
def substitute(expr: tuple[Expr, ...], mapping: Mapping[Expr | str, Expr | float]
               ) -> tuple[Expr, ...]: ...


def substitute(expr: Expr | list[Expr] | tuple[Expr, ...],
               mapping: Mapping[Expr | str, Expr | float]) -> Expr | list[Expr] | tuple[Expr, ...]:
    """Replaces variables (given as expressions or by name) by expressions or numbers, all at
    once: ``{x: y, y: x}`` swaps them. One expression in, one out; a list or tuple gives the
    same kind back.

    >>> x, y = vars("x y")
    >>> print(substitute(x - y, {x: y, "y": x}))
    y - x
    >>> [str(d) for d in substitute([x, x * y], {y: 2})]
    ['x', '2 * x']
    """
    if not isinstance(mapping, Mapping):
        raise TypeError(f"substitute() takes a dict of variable -> expression or number, not "
                        f"{type(mapping).__name__}")
    pairs = []
    for key, value in mapping.items():
        target = var(key) if isinstance(key, str) else key
        if not isinstance(target, Expr) or not target.is_var:
            shown = f"the expression {target}" if isinstance(target, Expr) else repr(key)
            raise TypeError(f"substitute() replaces variables, not {shown}; use variables made "
                            f"by cr.var (or their names) as keys")
        pairs.append((target, as_expr(value)))
    roots = [expr] if isinstance(expr, Expr) else expr
    if not isinstance(roots, list | tuple):
        raise TypeError(f"substitute() takes an expression or a list of them, not "
                        f"{type(expr).__name__}")
    return _like(expr, _core.substitute([as_expr(r) for r in roots], pairs))


def _subs(self: Expr, mapping: Mapping[Expr | str, Expr | float]) -> Expr:
    """This expression with variables replaced, all at once (see :func:`substitute`).

    >>> x, y = vars("x y")
    >>> print((x + y).subs({y: 2 * x}))
    3 * x
    """
    return substitute(self, mapping)


def latex(expr: Expr | float | Sequence[Expr | float]) -> str:
    r"""LaTeX for an expression (or a list of them), for notebooks and papers: ``\frac``,
    ``\sqrt``, powers, ``\sigma`` for the sigmoid; parts used more than once come first as
    ``t_{1} &= ...`` lines of an ``aligned`` block, as ``str()`` names them ``t1 = ...``.

    >>> x = var("x")
    >>> print(latex(x**0.5 / (2 * x**2)))
    \frac{x^{0.5}}{2 x^{2}}
    """
    if isinstance(expr, str):
        raise TypeError("latex() takes an expression, not a str; parse() it first")
    roots = list(expr) if isinstance(expr, list | tuple) else [expr]
    try:
        exprs = [as_expr(r) for r in roots]
    except TypeError:
        raise TypeError(f"latex() takes an expression or a list of them, not "
                        f"{type(expr).__name__}") from None
    return _core.latex(exprs)


def _repr_latex_(self: Expr) -> str:
    """What Jupyter shows for an expression: its :func:`latex` in display math."""
    return f"$\\displaystyle {latex(self)}$"


# Expr is the extension's class; a method that only rearranges Python arguments is written
# here, where the rest of the Python API is, rather than crossing into Rust and back.
Expr.subs = _subs  # type: ignore[method-assign]
Expr._repr_latex_ = _repr_latex_  # type: ignore[attr-defined]
