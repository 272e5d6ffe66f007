"""``chainrule diff --explain``: the chain-rule steps of a derivative, as text.

The walk starts at the top of the expression, one step per composite piece: the rule that
applies (chain, product, quotient, sum, power, ...), the pieces and their derivatives, the rule's
formula filled in, and the simplified derivative from ``cr.grad``. Pieces that need their own
explanation get a later step; unary functions of the variable itself are basic derivatives.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable

import chainrule as cr

from . import _core

__all__ = ["MAX_EXPLAIN_STEPS", "explain", "labelled"]

MAX_EXPLAIN_STEPS = 50
MAX_INLINE = 400

# The functions a user can call, from the core's op table (internal ops have no public name).
_UNARY: dict[str, Callable] = {
    op.kind: getattr(cr, op.kind)
    for op in _core.OPS if op.arity == 1 and not op.infix and hasattr(cr, op.kind)
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
    lines.append(labelled(f"d/d{x.name}", cr.grad(f, x)))
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
        at_inner = _core.substitute([d_outer], [(u, inner)])[0]
        product = _mul(_piece(at_inner), _piece(d_inner))
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


def labelled(label: str, e: cr.Expr) -> str:
    """``label = e``, with a multi-line expression (shared parts named) indented below the label.

    >>> labelled("d/dx", cr.cos(cr.var("x")))
    'd/dx = cos(x)'
    """
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
