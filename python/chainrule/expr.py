"""Expressions: variables, constants, operators, parsing and symbolic gradients.

An :class:`Expr` wraps a node of the Rust core's hash-consed graph: equal expressions are the
same node, so ``==`` and ``hash`` are by structure, and expressions are immutable. Python and
NumPy numbers promote to constants in arithmetic.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence

from . import _core

__all__ = ["Expr", "var", "vars", "parse", "grad", "as_expr"]


class Expr:
    """An expression graph node. Build with :func:`var`, operators and the functions.

    >>> x = var("x")
    >>> print(x * 2 + 1)
    2 * x + 1
    """

    __slots__ = ("_node", "__weakref__")
    # Keep NumPy from broadcasting an Expr into an object array: `np.float64(2) * x` then
    # falls back to Expr.__rmul__.
    __array_ufunc__ = None

    def __init__(self, node: _core.Node) -> None:
        if not isinstance(node, _core.Node):
            raise TypeError("Expr wraps a core node; build expressions with cr.var(), operators and functions")
        self._node = node

    # -- arithmetic ------------------------------------------------------------------
    def __add__(self, other: object) -> Expr:
        return _binary("add", self, other)

    def __radd__(self, other: object) -> Expr:
        return _binary("add", other, self)

    def __sub__(self, other: object) -> Expr:
        return _binary("sub", self, other)

    def __rsub__(self, other: object) -> Expr:
        return _binary("sub", other, self)

    def __mul__(self, other: object) -> Expr:
        return _binary("mul", self, other)

    def __rmul__(self, other: object) -> Expr:
        return _binary("mul", other, self)

    def __truediv__(self, other: object) -> Expr:
        return _binary("div", self, other)

    def __rtruediv__(self, other: object) -> Expr:
        return _binary("div", other, self)

    def __pow__(self, other: object) -> Expr:
        return _binary("pow", self, other)

    def __rpow__(self, other: object) -> Expr:
        return _binary("pow", other, self)

    def __neg__(self) -> Expr:
        return Expr(_core.apply("neg", self._node))

    def __pos__(self) -> Expr:
        return self

    def __abs__(self) -> Expr:
        return Expr(_core.apply("abs", self._node))

    # -- identity ----------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expr) and other._node.id == self._node.id

    def __hash__(self) -> int:
        return hash(self._node.id)

    def __bool__(self) -> bool:
        raise TypeError("an expression has no truth value; compare values after evaluating it")

    # -- text --------------------------------------------------------------------------
    def __str__(self) -> str:
        return _core.text([self._node])

    def __repr__(self) -> str:
        return f"chainrule.parse({str(self)!r})"

    def __reduce__(self):
        return (_load, (_core.encode([self._node]),))

    # -- structure -------------------------------------------------------------------------
    @property
    def name(self) -> str | None:
        """The variable's name, or None if this is not a variable.

        >>> var("x").name
        'x'
        """
        return self._node.var_name

    @property
    def is_var(self) -> bool:
        """Whether this expression is a single variable."""
        return self._node.var_name is not None

    @property
    def value(self) -> float | None:
        """The constant's value, or None if this is not a constant.

        >>> (var("x") * 0 + 2).value is None
        True
        """
        return self._node.const_value

    @property
    def variables(self) -> list[Expr]:
        """The variables the expression uses, sorted by name.

        >>> [v.name for v in (var("y") * var("x")).variables]
        ['x', 'y']
        """
        return [Expr(_core.var(n)) for n in _core.variables([self._node])]


def _variable_names(items: list, what: str) -> list[str]:
    """The names of ``items``, which must all be variables (else a TypeError: ``what, not item``).
    One core call for the whole list: a property read per item cost ~7 ms of W5's 10,000."""
    if all(type(v) is Expr for v in items):
        names = _core.var_names([v._node for v in items])
    else:
        names = [v.name if isinstance(v, Expr) else None for v in items]
    for item, name in zip(items, names, strict=True):
        if name is None:
            raise TypeError(f"{what}, not {item!r}")
    return names


def _load(data: bytes) -> Expr:
    nodes = _core.decode(data)
    if len(nodes) != 1:
        raise _core.ChainruleError(f"cannot load chainrule data: an expression has one root, found {len(nodes)}")
    return Expr(nodes[0])


def as_expr(value: object) -> Expr:
    """Converts a number (Python or NumPy, real) to a constant; returns expressions as they are.

    >>> print(as_expr(2.5))
    2.5
    """
    if isinstance(value, Expr):
        return value
    if isinstance(value, bool | numbers.Real) and not isinstance(value, complex):
        try:
            return Expr(_core.constant(float(value)))
        except OverflowError:
            raise ValueError(f"the number {value!r} is too large for float64") from None
    if isinstance(value, numbers.Complex):
        raise TypeError(f"complex constants are not supported: {value!r}")
    if getattr(value, "shape", None) == ():  # a 0-d NumPy array
        return as_expr(value[()])
    raise TypeError(f"cannot use {type(value).__name__} {value!r} in an expression; use numbers or chainrule expressions")


def _binary(op: str, a: object, b: object) -> Expr:
    try:
        na, nb = as_expr(a)._node, as_expr(b)._node
    except TypeError:
        return NotImplemented
    return Expr(_core.apply(op, na, nb))


def var(name: str) -> Expr:
    """A variable. The same name is the same variable.

    >>> var("x") == var("x")
    True
    """
    if not isinstance(name, str):
        raise TypeError(f"a variable name must be a str, not {type(name).__name__}")
    return Expr(_core.var(name))


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
        raise _core.ParseError(f"invalid character at position {exc.start}: {text[exc.start]!r}") from None
    if len(nodes) != 1:
        raise _core.ParseError(f"expected exactly one expression, found {len(nodes)} result lines")
    return Expr(nodes[0])


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
    _variable_names(targets, "can only differentiate with respect to a variable")
    result = [Expr(n) for n in _core.grad(f._node, [w._node for w in targets])]
    return result[0] if single else result
