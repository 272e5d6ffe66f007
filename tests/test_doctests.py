"""The public docstrings' examples run and print what they claim (doctest on installed modules)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["chainrule", "chainrule.expr", "chainrule.functions", "chainrule.compiled",
           "chainrule.arguments",
           "chainrule.explain", "chainrule.cli"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name, restore_threads):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
    assert result.attempted > 0, f"{name} has no examples"


@pytest.mark.parametrize("name", MODULES[1:])
def test_every_public_function_has_an_example(name):
    module = importlib.import_module(name)
    missing = []
    for attr in getattr(module, "__all__", []):
        obj = getattr(module, attr)
        if callable(obj) and ">>>" not in (obj.__doc__ or ""):
            missing.append(attr)
    assert not missing, f"{name}: no >>> example in {missing}"
