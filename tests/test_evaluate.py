"""cr.evaluate as numexpr users call it: out=, local_dict=, global_dict=, the caller's frame,
numexpr's other keywords refused by name, and unknown functions with near names."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr

XS = np.linspace(-1.0, 1.0, 5)
GLOBAL_SCALE = 3.0


# -- out= ---------------------------------------------------------------------------------------


def test_out_receives_the_result_and_is_returned():
    out = np.full((3, 3), np.nan)
    a, b = np.arange(3.0).reshape(3, 1), np.arange(3.0)
    result = cr.evaluate("a * b + 1", a=a, b=b, out=out)
    assert result is out
    np.testing.assert_array_equal(out, a * b + 1)


def test_out_of_the_wrong_shape_is_a_shape_error_naming_both():
    """The issue's case: a (3, 1) out for a (3, 3) result came back as a new (3, 3) array."""
    out = np.zeros((3, 1))
    with pytest.raises(cr.ShapeError, match=r"out has shape \(3, 1\).*result has shape \(3, 3\)"):
        cr.evaluate("a * b", a=np.ones((3, 1)), b=np.ones(3), out=out)
    assert (out == 0).all()


def test_out_may_be_a_view_and_receives_a_reduction_as_0d():
    buffer = np.zeros((2, 5))
    cr.evaluate("sin(x)", x=XS, out=buffer[1])
    np.testing.assert_array_equal(buffer[1], np.sin(XS))
    assert (buffer[0] == 0).all()
    total = np.zeros(())
    assert cr.evaluate("sum(x * x)", x=XS, out=total) is total
    assert total[()] == pytest.approx(np.sum(XS * XS), rel=1e-15)


@pytest.mark.parametrize("out, exc, match", [
    (np.zeros(5, dtype=np.float32), TypeError, "float64 array.*not float32"),
    (np.zeros(5, dtype=np.int64), TypeError, "not int64"),
    ([0.0] * 5, TypeError, "NumPy array, not list"),
])
def test_out_must_be_a_float64_array(out, exc, match):
    with pytest.raises(exc, match=match):
        cr.evaluate("x + 1", x=XS, out=out)


def test_read_only_out_is_refused():
    out = np.zeros(5)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        cr.evaluate("x + 1", x=XS, out=out)


# -- where variables come from ------------------------------------------------------------------


def test_local_dict_then_global_dict_then_keywords_first():
    local, glob = {"a": 1.0, "b": 2.0}, {"b": 20.0, "c": 300.0}
    assert cr.evaluate("a + b + c", local_dict=local, global_dict=glob) == 303.0
    assert cr.evaluate("a + b + c", local_dict=local, global_dict=glob, a=4000.0) == 4302.0


def test_without_dicts_names_come_from_the_callers_frame():
    a = XS  # noqa: F841 - read by evaluate from this frame
    GLOBAL_SCALE_local = 2.0  # noqa: N806, F841 - a local shadows nothing here
    np.testing.assert_array_equal(cr.evaluate("a * GLOBAL_SCALE"), XS * GLOBAL_SCALE)
    np.testing.assert_array_equal(cr.evaluate("a * GLOBAL_SCALE_local"), XS * 2.0)


def test_a_local_shadows_a_global_as_in_python():
    GLOBAL_SCALE = -1.0  # noqa: N806, F841
    assert cr.evaluate("GLOBAL_SCALE * 2") == -2.0


def test_local_dict_replaces_the_callers_locals_but_globals_still_come_from_the_frame():
    hidden = 5.0  # noqa: F841 - must not be found: local_dict stands for the locals
    assert cr.evaluate("v * GLOBAL_SCALE", local_dict={"v": 2.0}) == 6.0
    with pytest.raises(cr.ChainruleError, match="'hidden' is used but not given"):
        cr.evaluate("hidden + 1", local_dict={})


def test_global_dict_replaces_the_callers_globals():
    with pytest.raises(cr.ChainruleError, match="'GLOBAL_SCALE' is used but not given"):
        cr.evaluate("GLOBAL_SCALE + 1", global_dict={})


def test_a_missing_name_is_named():
    with pytest.raises(cr.ChainruleError, match=r"'nowhere' is used but not given; pass nowhere="):
        cr.evaluate("nowhere + 1")


def test_frame_lookups_and_keywords_share_the_cache_correctly():
    """The same text with values from different places: each call answers with its own."""
    for k in range(3):
        b = float(k)  # noqa: F841
        assert cr.evaluate("b * 10") == 10.0 * k
        assert cr.evaluate("b * 10", b=7.0) == 70.0


def test_expressions_work_as_well_as_text():
    x = cr.var("x")
    t = XS  # noqa: F841
    np.testing.assert_array_equal(cr.evaluate(cr.sin(x), x=XS), np.sin(XS))
    np.testing.assert_array_equal(cr.evaluate(cr.var("t") * 2), XS * 2)


# -- numexpr's other keywords -------------------------------------------------------------------


@pytest.mark.parametrize("keyword, value", [("order", "K"), ("casting", "safe"),
                                            ("optimization", "aggressive"), ("truediv", True),
                                            ("sanitize", False), ("_frame_depth", 1)])
def test_numexpr_keywords_are_refused_by_name(keyword, value):
    with pytest.raises(TypeError, match=f"numexpr's '{keyword}' keyword"):
        cr.evaluate("x + 1", x=XS, **{keyword: value})


def test_a_variable_named_like_a_numexpr_keyword_goes_through_local_dict():
    assert cr.evaluate("order + 1", local_dict={"order": 2.0}) == 3.0


# -- unknown functions --------------------------------------------------------------------------


@pytest.mark.parametrize("text, near", [("sinn(x)", "sin"), ("sigmod(x)", "sigmoid"),
                                        ("expp(x)", "exp"), ("sqr(x)", "sqrt")])
def test_unknown_function_suggests_near_names(text, near):
    with pytest.raises(cr.ParseError, match=rf"did you mean .*\b{near}\b"):
        cr.evaluate(text, x=XS)
