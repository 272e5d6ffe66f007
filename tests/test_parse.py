"""Parsing: text to the same node as the builder makes, print/parse round trips, named lines,
minimal parentheses, and parse errors that point at the position with a caret."""

from __future__ import annotations

import math
import re

import pytest

import chainrule as cr
from chainrule import _core

x, y, w = cr.vars("x y w")

PARSED = [
    ("x", x),
    ("sin(cos(x))", cr.sin(cr.cos(x))),
    ("1 + 2 * x", 1 + 2 * x),
    ("(1 + 2) * x", 3 * x),
    ("x - y - w", (x - y) - w),
    ("x - (y - w)", x - (y - w)),
    ("x / y / w", (x / y) / w),
    ("x ** y ** w", x ** (y**w)),
    ("(x ** y) ** w", (x**y) ** w),
    ("-x ** 2", -(x**2)),
    ("(-x) ** 2", (-x) ** 2),
    ("2 ** -x", 2 ** (-x)),
    ("x ** -1", x**-1),
    ("x**2", x**2),
    ("  x*y\t+  1 ", x * y + 1),
    ("1e-3 * x", 1e-3 * x),
    ("2.5E2 * x", 250.0 * x),
    (".5 * x", 0.5 * x),
    ("abs(x) + relu(y)", abs(x) + cr.relu(y)),
    ("tan(x) + exp(x) + log(x) + sqrt(x)", cr.tan(x) + cr.exp(x) + cr.log(x) + cr.sqrt(x)),
    ("tanh(x) * sigmoid(y) * step(w) * sign(x)",
     cr.tanh(x) * cr.sigmoid(y) * cr.step(w) * cr.sign(x)),
    ("sum(x * y)", cr.sum(x * y)),
    ("mean((y - x) ** 2)", cr.mean((y - x) ** 2)),
    ("sum(x, over=w)", cr.sum(x, over=w)),
    ("x - mean(x)", x - cr.mean(x)),
    ("x_1 + _y2", cr.var("x_1") + cr.var("_y2")),
]


@pytest.mark.parametrize("text, expected", PARSED, ids=[t for t, _ in PARSED])
def test_parse_builds_the_same_node(text, expected):
    assert cr.parse(text) == expected


@pytest.mark.parametrize("text, expected", PARSED, ids=[t for t, _ in PARSED])
def test_print_parse_round_trip(text, expected):
    assert cr.parse(str(expected)) == expected
    assert str(cr.parse(str(expected))) == str(expected)


def _article():
    return cr.sin(cr.cos(x)) * cr.exp(-(y**2)) + cr.log(1 + x**2) * cr.sigmoid(x * y)


ROUND_TRIPS = [
    _article(),
    *cr.grad(_article(), [x, y]),
    cr.grad(cr.grad(_article(), x), y),
    cr.grad(cr.mean((y - cr.sigmoid(w * x)) ** 2), w),
    cr.grad(w * x - cr.mean(w * x), w),
    cr.mean((x - cr.mean(x)) ** 2),
    x * -3.0,
    -3.0 * x,
    x + -0.5,
    x * 1e300 + 1e-300,
    x * 0.1 + 1 / 3,
    x * float("inf"),
    2 ** (x * y),
    (x - y) ** (w - 1),
    -(x * -1.0),
    -cr.sin(x) ** 2,
    cr.pi * x + cr.e,
    -cr.pi * x - cr.e ** x,
    x ** -cr.e,
]


@pytest.mark.parametrize("e", ROUND_TRIPS, ids=lambda e: str(e)[:40])
def test_round_trip(e):
    assert cr.parse(str(e)) == e


def test_constants_round_trip_bit_exactly():
    for c in [0.1, 1 / 3, 2.0**-1074, 1.7976931348623157e308, 123456789.123456789, -0.0]:
        assert cr.parse(str(x * c)) == x * c, c


# -- constants -----------------------------------------------------------------------------------


@pytest.mark.parametrize("text, value", [("pi", math.pi), ("e", math.e), ("-pi", -math.pi),
                                         ("2 * pi", 2 * math.pi), ("e ** 2", math.e**2)])
def test_pi_and_e_parse_as_constants(text, value):
    c = cr.parse(text)
    assert not c.is_var and c.value == value


def test_pi_and_e_print_by_name_and_other_constants_by_value():
    assert str(cr.pi) == "pi" and str(cr.e) == "e" and str(-cr.pi) == "-pi"
    assert str(cr.pi * x + cr.e) == "pi * x + e"
    assert cr.pi.value == math.pi and cr.e.value == math.e
    # Only the float64 values of pi and e themselves: a neighbour prints as its digits.
    near = math.nextafter(math.pi, 4.0)
    assert str(x * near) == f"{near!r} * x"
    assert str(cr.parse("x * 3.141592653589793")) == "pi * x"


@pytest.mark.parametrize("name", ["pi", "e"])
def test_pi_and_e_are_not_variable_names(name):
    with pytest.raises(ValueError, match=f"'{name}'.*reserve"):
        cr.var(name)
    with pytest.raises(ValueError):
        _core.var(name)
    with pytest.raises(cr.ParseError, match="reserved"):
        cr.parse(f"{name} = x\n{name} + 1")
    with pytest.raises(ValueError):
        cr.sum(x, over=[name])


def test_names_that_contain_pi_and_e_are_still_variables():
    for name in ["pie", "e1", "ex", "_e", "pi_"]:
        assert cr.parse(f"{name} + 1") == cr.var(name) + 1


# -- named lines ------------------------------------------------------------------------------

NAMED = [
    ("t1 = sin(x)\nt1 * t1 + t1", cr.sin(x) * cr.sin(x) + cr.sin(x)),
    ("a = x + 1\nb = a * y\nb + a", (x + 1) * y + (x + 1)),
    ("t1 = x * y\nt2 = t1 + 1\n\nt2 * t1\n", (x * y + 1) * (x * y)),
    ("t1 = sum(x)\nx / t1", x / cr.sum(x)),
]


@pytest.mark.parametrize("text, expected", NAMED, ids=[t.split("\n")[0] for t, _ in NAMED])
def test_named_lines(text, expected):
    assert cr.parse(text) == expected


def test_printed_names_parse_back():
    shared = cr.sin(x * y + 1) * cr.cos(x)
    e = cr.exp(shared) * cr.log(shared) + shared
    text = str(e)
    assert re.match(r"\w+ = ", text)
    assert cr.parse(text) == e


# -- minimal parentheses ------------------------------------------------------------------------


def _paren_pairs(text):
    """Positions of matching parentheses that are grouping (not a function call's)."""
    stack, pairs = [], []
    for i, ch in enumerate(text):
        if ch == "(":
            stack.append(i)
        elif ch == ")":
            start = stack.pop()
            if start == 0 or not (text[start - 1].isalnum() or text[start - 1] == "_"):
                pairs.append((start, i))
    return pairs


MINIMAL = [
    x - (y - w), x / (y * w), x * (y + w), (x**y) ** w, (x + y) ** w, x ** (y + w),
    (-x) ** 2, -(x + y), cr.sin(x + y) * (x - y), x / (y / w), 2 ** (-x), x - (y + w),
    (x + y) * (x - y) / (w + 1), cr.sin(x) ** (y - 1),
]


@pytest.mark.parametrize("e", MINIMAL, ids=lambda e: str(e)[:40])
def test_parentheses_are_minimal(e):
    """Removing any grouping pair of parentheses changes what the text means.

    (Only for expressions the builder does not canonicalise: it may rewrite, e.g., -x * y to
    -(x * y), so for those the parse is the same node either way.)
    """
    text = str(e).splitlines()[-1]
    prefix = str(e)[: len(str(e)) - len(text)]
    for start, end in _paren_pairs(text):
        stripped = text[:start] + text[start + 1 : end] + text[end + 1 :]
        try:
            changed = cr.parse(prefix + stripped) != e
        except cr.ParseError:
            changed = True
        assert changed, f"parentheses at {start} are redundant in {text!r}"


# -- errors ---------------------------------------------------------------------------------------

BAD = [
    ("sin(x +* 2)", 7),
    ("x +", 3),
    ("x y", 2),
    ("(x", 0),
    ("x)", 1),
    ("x $ y", 2),
    ("frobnicate(x)", 0),
    ("sin(x, y)", 0),
    ("1.2.3", 3),
    ("x + * y", 4),
    ("sin x", 0),
    ("t1 = sin(x)\nt1 +* 2", 16),
    ("a = x\n\nb = a $ 2\nb", 13),
]


@pytest.mark.parametrize("text, pos", BAD, ids=[t for t, _ in BAD])
def test_parse_error_points_at_position(text, pos):
    with pytest.raises(cr.ParseError) as info:
        cr.parse(text)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, cr.ChainruleError)
    lines = str(info.value).splitlines()
    line_start = text.rfind("\n", 0, pos) + 1
    line_end = text.find("\n", pos)
    source = text[line_start : line_end if line_end >= 0 else None]
    echoed = [i for i, ln in enumerate(lines[:-1]) if ln.rstrip().endswith(source.rstrip())]
    assert echoed, f"the offending line {source!r} is not shown in {str(info.value)!r}"
    i = echoed[-1]
    column = lines[i].rstrip().rindex(source.rstrip()) + (pos - line_start)
    caret = lines[i + 1]
    assert caret.rstrip().endswith("^") and caret.index("^") == column, str(info.value)
    assert str(pos) in lines[0] or str(pos - line_start) in lines[0]


CALL_NAMES = sorted({name for _, name, _, _ in _core.OPS if name.isidentifier()} |
                    {"sum", "mean"})


@pytest.mark.parametrize("name", CALL_NAMES)
def test_unknown_function_suggests_the_near_names(name):
    """A one-letter slip in any known function's name gets that name suggested, derived from
    the op table, so new functions are suggested as they arrive."""
    with pytest.raises(cr.ParseError, match=r"did you mean ([a-z_0-9]+, )*([a-z_0-9]+ or )?"
                       + name + r"\b") as info:
        cr.parse(f"{name}q(x)")
    assert f"unknown function '{name}q'" in str(info.value)


def test_unknown_function_far_from_every_name_suggests_nothing():
    with pytest.raises(cr.ParseError, match="unknown function 'frobnicate'") as info:
        cr.parse("frobnicate(x)")
    assert "did you mean" not in str(info.value)


def test_unknown_function_suggests_the_closest_first():
    with pytest.raises(cr.ParseError, match=r"'tanhh'; did you mean tanh, atanh or tan\?"):
        cr.parse("tanhh(x)")


@pytest.mark.parametrize("text", ["", "   ", "\n\n", "t1 = x", "x\ny"])
def test_parse_needs_exactly_one_result(text):
    with pytest.raises(cr.ParseError):
        cr.parse(text)


@pytest.mark.parametrize("bad", [None, 5, b"x + 1", x])
def test_parse_takes_a_str(bad):
    with pytest.raises(TypeError):
        cr.parse(bad)
