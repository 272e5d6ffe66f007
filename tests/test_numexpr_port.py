"""A port of the expression list of numexpr's own test suite (its tests/test_numexpr.py), the
real-valued cases: each is evaluated by ``cr.evaluate`` over numexpr's arrays and compared with
NumPy evaluating the same text. A case whose function or operator chainrule does not have yet
is skipped, naming what it lacks, so it runs the day that lands.

The list follows numexpr's groups: miscellaneous expressions; the arithmetic operators against
arrays, constants, negative, fractional and zero operands; comparisons; one-argument functions
of a sum; two-argument functions; powers with assorted constant exponents. Written from its
description: the complex-only cases (``.real``) are left out, and numexpr-only helpers (``copy``,
``ones_like``, ``conj``) are listed like the missing functions.
"""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule import _core

N = 100

# numexpr spells the inverse functions arc*; chainrule's names are NumPy's short ones.
CR_NAME = {"arcsin": "asin", "arccos": "acos", "arctan": "atan", "arctan2": "atan2",
           "arcsinh": "asinh", "arccosh": "acosh", "arctanh": "atanh"}
NP_NAME = {"abs": "absolute", "where": "where", "copy": "copy", "ones_like": "ones_like"}
# numexpr's helpers that no other library spells so (conj is complex conjugation)
NUMEXPR_ONLY = {"copy", "ones_like", "conj"}


def _cases():
    # numexpr's "b*c+d*e": in chainrule's text e is Euler's number (as pi is pi), so the fifth
    # array is g here
    misc = ["b*c+d*g", "2*a+3*b", "-a", "sinh(a)", "2*a + (cos(3)+5)*sinh(cos(b))",
            "2*a + arctan2(a, b)", "arcsin(0.5)", "where(a != 0.0, 2, a)",
            "where(a > 10, b < a, b > a)", "0.25 * (a < 5) + 0.33 * (a >= 5)", "cos(1+1)", "1+1",
            "1", "cos(a2)"]
    ops = []
    for op in ["+", "-", "*", "/", "%", "**"]:
        ops += [f"(a+1) {op} (b+3)", f"3 {op} (b+3)", f"(a+1) {op} 4", f"2 {op} (b+3)",
                f"(a+1) {op} 2", f"(a+1) {op} -1", f"(a+1) {op} 0.5", f"(a+1) {op} 0"]
    comparisons = []
    for op in ["<", "<=", "==", ">=", ">", "!="]:
        comparisons += [f"a/2+5 {op} b", f"a/2+5 {op} 7", f"7 {op} b", f"7.0 {op} 5"]
    unary = [f"a + {f}(b+c)" for f in [
        "copy", "ones_like", "sqrt", "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh",
        "cosh", "tanh", "arcsinh", "arccosh", "arctanh", "log", "log1p", "log10", "exp", "expm1",
        "abs", "conj", "ceil", "floor"]]
    binary = []
    for f in ["arctan2", "fmod"]:
        binary += [f"a + {f}(b+c, d+1)", f"a + {f}(b+c, 1)", f"a + {f}(1, d+1)"]
    powers = [f"(a+1)**{n}" for n in ("-7", "-2.5", "-1.5", "-1.3", "-.5", "0", "0.0", "1",
                                      "2.3", "2.5", "3")]
    return [*misc, *ops, *comparisons, *unary, *binary, *powers]


CASES = _cases()
FUNCTION = __import__("re").compile(r"([A-Za-z_][A-Za-z_0-9]*)\s*\(")
SPELLINGS = {op[1] for op in _core.OPS}


def _parses_as_call(name: str) -> bool:
    """Whether text may call ``name`` (numexpr's helpers for real input parse, with no builder)."""
    try:
        cr.parse(f"{name}(x)")
    except cr.ParseError:
        return False
    return True


def _missing(text: str) -> str | None:
    """What chainrule lacks for this case: a function (by its chainrule name) or an operator."""
    for name in FUNCTION.findall(text):
        if not hasattr(cr, CR_NAME.get(name, name)) and not _parses_as_call(name):
            if name in NUMEXPR_ONLY:
                return f"function {name!r} (numexpr-only, not in chainrule's list)"
            return f"function {CR_NAME.get(name, name)!r} (numexpr's {name})"
    stripped = text.replace("**", " ")
    for op in ["%", "<=", ">=", "==", "!=", "<", ">"]:
        if op in stripped and op not in SPELLINGS:
            return f"operator {op!r}"
        stripped = stripped.replace(op, " ")
    return None


def _arrays(dtype):
    """numexpr's test arrays: a = 0, 2, 4, ...; b in [0, 1); c, d, g = 0, 1, 2, ...; a2 zeros."""
    values = {"a": np.arange(2 * N)[::2], "b": np.arange(N) / N, "c": np.arange(N),
              "d": np.arange(N), "g": np.arange(N), "a2": np.zeros((N, N))}
    # chainrule reads integer and float32 arrays as float64; b is fractional, so stays float64
    return {k: v if k == "b" else v.astype(dtype) for k, v in values.items()}


def _numpy(text: str, arrays):
    space = {name: getattr(np, NP_NAME.get(name, name)) for name in FUNCTION.findall(text)}
    space.update({k: v.astype(np.float64) for k, v in arrays.items()})
    with np.errstate(all="ignore"):
        return np.asarray(eval(text, {"__builtins__": {}}, space), dtype=np.float64)  # noqa: S307


@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.float32])
@pytest.mark.parametrize("text", CASES)
def test_case_matches_numpy(text, dtype):
    missing = _missing(text)
    if missing is not None:
        pytest.skip(f"chainrule has no {missing}")
    arrays = _arrays(dtype)
    want = _numpy(text, arrays)
    got = np.asarray(cr.evaluate(text, local_dict=arrays, global_dict={}))
    assert got.dtype == np.float64
    got, want = np.broadcast_arrays(got, want)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=text)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0, equal_nan=True, err_msg=text)


def test_the_port_is_complete_and_mostly_runs():
    # numexpr's groups: 14 + 48 + 24 + 24 + 6 + 11 real-valued cases
    assert len(CASES) == len(set(CASES)) == 127
    runnable = [t for t in CASES if _missing(t) is None]
    # everything this branch's functions cover runs: the exponentials and logarithms among them
    assert {"a + log1p(b+c)", "a + log10(b+c)", "a + expm1(b+c)", "(a+1)**-1.3"} <= set(runnable)
    assert len(runnable) >= 68
