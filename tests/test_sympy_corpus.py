"""The SymPy readability corpus (benches/sympy_corpus.py): every derivative in it equals SymPy's.

Only the equality checks run here; the length ratios are the benchmark's report, not a test.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr

sympy = pytest.importorskip("sympy")
mpmath = pytest.importorskip("mpmath")

_PATH = Path(__file__).resolve().parents[1] / "benches" / "sympy_corpus.py"
_spec = importlib.util.spec_from_file_location("sympy_corpus", _PATH)
corpus = importlib.util.module_from_spec(_spec)
sys.modules["sympy_corpus"] = corpus  # dataclasses look the module up while it executes
_spec.loader.exec_module(corpus)

ENTRIES = {entry.name: entry for entry in corpus.CORPUS}


def test_corpus_is_large_and_names_are_unique():
    assert len(ENTRIES) == len(corpus.CORPUS)
    assert sum(not corpus.missing(e, cr) for e in corpus.CORPUS) >= 40


@pytest.mark.parametrize("name", list(ENTRIES))
def test_chainrule_derivative_equals_sympy(name):
    entry = ENTRIES[name]
    names = corpus.missing(entry, cr)
    if names:
        pytest.skip(f"chainrule has no {', '.join(names)} yet")
    d_cr, cr_vars, d_sp, sp_vars = corpus.derivatives(entry)
    corpus.check_equal(entry, d_cr, cr_vars, d_sp, sp_vars, np.random.default_rng(7))


@pytest.mark.parametrize("name", [e.name for e in corpus.CORPUS if e.needs])
def test_op_wave_entries_are_right_on_the_sympy_side(name):
    # These wait for chainrule's functions; until then, check that the entry itself is sound, so
    # it does not fail for its own reasons the day the function lands: SymPy's derivative
    # against mpmath's numerical one of the same function.
    entry = ENTRIES[name]
    symbols = sympy.symbols(entry.variables, real=True)
    f = entry.build(corpus._sympy_namespace(), *symbols)
    d = sympy.diff(f, symbols[entry.variables.index(entry.wrt)], entry.order)
    fn = sympy.lambdify(symbols, f, modules="mpmath")
    dn = sympy.lambdify(symbols, d, modules="mpmath")
    k = entry.variables.index(entry.wrt)
    args = corpus.sample(entry, np.random.default_rng(3), points=2)
    with mpmath.workdps(30):
        for i in range(2):
            point = [mpmath.mpf(float(a[i])) for a in args]

            def along(t, point=point):
                return fn(*point[:k], t, *point[k + 1:])

            want = mpmath.diff(along, point[k], entry.order)
            assert float(dn(*point)) == pytest.approx(float(want), rel=1e-12, abs=1e-15)


def test_check_catches_a_wrong_derivative():
    entry = ENTRIES["sin(cos(x))"]
    d_cr, cr_vars, d_sp, sp_vars = corpus.derivatives(entry)
    with pytest.raises(AssertionError, match="sin\\(cos\\(x\\)\\)"):
        corpus.check_equal(entry, d_cr * (1 + 1e-8), cr_vars, d_sp, sp_vars,
                           np.random.default_rng(0))


def test_node_counts_see_shared_subexpressions_once():
    x = cr.var("x")
    square = x * x
    # x, x*x, sin(x*x), and the sum: x*x is one node though used twice.
    assert corpus.chainrule_nodes(cr.sin(square) + square) == 4
    X = sympy.Symbol("x")
    # x, 2, x**2, sin(x**2), the sum
    assert corpus.sympy_nodes([sympy.sin(X**2) + X**2]) == 5


def test_cse_form_is_counted_with_its_replacements():
    X = sympy.Symbol("x")
    text = corpus.sympy_cse_text(sympy.exp(X**2) * X**2 + sympy.sin(X**2))
    assert text.splitlines()[0] == "x0 = x**2"
    assert text.splitlines()[-1] == "x0*exp(x0) + sin(x0)"
    assert corpus.chars(text) == len("x0=x**2x0*exp(x0)+sin(x0)")


def test_report_states_the_targets(tmp_path):
    entries = [ENTRIES["sin(x)**2"], ENTRIES["d4 sin(x)*exp(x)"]]
    results, skipped = corpus.run(entries)
    text = corpus.report(results, skipped, "python benches/sympy_corpus.py")
    ratios = sorted(r.ratio for r in results)
    assert f"max ratio: **{ratios[-1]:.2f}**" in text
    assert f"median ratio chainrule/SymPy: **{sum(ratios) / 2:.2f}**" in text
    verdict = "met" if ratios[-1] <= 1.0 else "NOT met"
    assert f"targets: {verdict}" in text
