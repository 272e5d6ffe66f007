"""Every bad input gets a clear Python exception of the documented type, names the culprit, and
leaves the expression or function usable afterwards."""

from __future__ import annotations

import re

import numpy as np
import pytest

import chainrule as cr

x, y, w = cr.vars("x y w")


def test_exception_hierarchy():
    assert issubclass(cr.ChainruleError, ValueError)
    assert issubclass(cr.ParseError, cr.ChainruleError)
    assert issubclass(cr.ShapeError, cr.ChainruleError)


# -- compile and call ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "outputs, inputs, missing",
    [(x * y, [x], "y"), ([x, cr.sin(w)], [x], "w"), (cr.mean(y), [x], "y"),
     (cr.sum(x, over=w), [x], "w"), (x, [], "x")],
)
def test_variable_not_in_inputs(outputs, inputs, missing):
    with pytest.raises(ValueError, match=f"'{missing}'"):
        cr.compile(outputs, inputs=inputs)(*[1.0] * len(inputs))


FN = cr.compile(x * y, inputs=[x, y])

CALLS = [
    ((1.0,), {}, TypeError, "y"),
    ((), {}, TypeError, "x"),
    ((1.0, 2.0, 3.0), {}, TypeError, "3"),
    ((1.0,), {"z": 2.0}, TypeError, "z"),
    ((1.0, 2.0), {"x": 2.0}, TypeError, "x"),
    ((), {"x": 1.0}, TypeError, "y"),
]


@pytest.mark.parametrize("args, kwargs, exc, names", CALLS)
def test_wrong_arguments(args, kwargs, exc, names):
    with pytest.raises(exc, match=names):
        FN(*args, **kwargs)


@pytest.mark.parametrize(
    "a, b",
    [((3,), (4,)), ((2, 3), (3, 2)), ((5,), (2, 4)), ((0,), (2,)), ((3, 1, 2), (4, 3))],
)
def test_shapes_that_do_not_broadcast(a, b):
    with pytest.raises(cr.ShapeError) as info:
        FN(np.ones(a), np.ones(b))
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert str(a) in message and str(b) in message, message


def test_shape_error_for_reduction_over_variable():
    fn = cr.compile(cr.grad(cr.sum(w * x), w), inputs=[x, w])
    with pytest.raises(cr.ShapeError):
        fn(np.ones((2, 3)), np.ones(4))


BAD_VALUES = [
    1j,
    np.complex64(1),
    np.ones(3, dtype=complex),
    "1.0",
    np.array(["a", "b"]),
    np.array([1.0, None], dtype=object),
    None,
    {"a": 1},
    object(),
    np.array(["2020-01-01"], dtype="datetime64[D]"),
    x,
    [[1.0, 2.0], [3.0]],
]


@pytest.mark.parametrize("bad", BAD_VALUES, ids=lambda v: type(v).__name__)
def test_non_numeric_arguments(bad):
    with pytest.raises(TypeError, match="'x'|x"):
        FN(bad, 1.0)
    with pytest.raises(TypeError):
        FN(x=1.0, y=bad)


@pytest.mark.parametrize("value,shown", [(10**400, "1000…000 (401 digits)"),
                                         (-(10**5000) - 7, "-1000…007 (5001 digits)")],
                         ids=["401 digits", "5001 digits"])
def test_too_large_integer(value, shown):
    # The message shows the ends and the digit count: all 401 digits were unreadable, and past
    # 4,300 digits str() itself raised instead of the message.
    too_large = f"{re.escape(shown)} is too large for float64$"
    with pytest.raises(ValueError, match=f"^argument 'x': integer {too_large}"):
        FN(value, 1.0)
    with pytest.raises(ValueError, match=f"^the number {too_large}"):
        x + value


def test_function_still_works_after_errors():
    fn = cr.compile([x * y, cr.sum(x * y)], inputs=[x, y])
    for args in [(np.ones(3), np.ones(4)), (1j, 1.0), (1.0,)]:
        with pytest.raises((TypeError, ValueError)):
            fn(*args)
    got = fn(np.arange(3.0), 2.0)
    np.testing.assert_array_equal(got[0], [0.0, 2.0, 4.0])
    assert got[1] == 6.0


@pytest.mark.parametrize(
    "inputs",
    [[x * 2], [1.0], ["x"], [x, None], [cr.sin(x)]],
    ids=["expr", "number", "str", "none", "function"],
)
def test_inputs_must_be_variables(inputs):
    with pytest.raises(TypeError):
        cr.compile(x, inputs=inputs)


def test_duplicate_inputs():
    with pytest.raises(ValueError, match="x"):
        cr.compile(x, inputs=[x, x])


@pytest.mark.parametrize("bad", ["x", None, [x, "y"], object()])
def test_outputs_must_be_expressions(bad):
    with pytest.raises(TypeError):
        cr.compile(bad, inputs=[x])


# -- grad ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "wrt",
    [x * y, cr.expr.as_expr(2.0), 2.0, "x", None, [x, x * 2], [x, "y"], cr.sin(x), cr.sum(x)],
    ids=["product", "const", "float", "str", "none", "list-expr", "list-str", "sin", "sum"],
)
def test_grad_wrt_non_variable(wrt):
    with pytest.raises(TypeError):
        cr.grad(x * y, wrt)


@pytest.mark.parametrize("bad", ["x", None, object()])
def test_grad_of_non_expression(bad):
    with pytest.raises(TypeError):
        cr.grad(bad, x)


# -- variables, reductions, threads ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "1x", "a b", "x+y", "sin", "sum", "mean"])
def test_invalid_variable_names(name):
    with pytest.raises(ValueError):
        cr.var(name)


@pytest.mark.parametrize("name", [None, 1, b"x", x])
def test_variable_name_must_be_str(name):
    with pytest.raises(TypeError):
        cr.var(name)


@pytest.mark.parametrize("over", [x * y, 2.0, 3, [x, 1]])
def test_sum_over_needs_variables(over):
    """The message names the argument, not an iteration detail."""
    with pytest.raises(TypeError, match=r"^over= takes"):
        cr.sum(x, over=over)


@pytest.mark.parametrize("n", [0, -1, 1.5, "2", None, True, 100_000, 2**64, 10**30])
def test_bad_thread_counts(n, restore_threads):
    before = cr.get_num_threads()
    with pytest.raises((ValueError, TypeError)):
        cr.set_num_threads(n)
    assert cr.get_num_threads() == before


@pytest.mark.parametrize("n", [100_000, 2**64])
def test_absurd_thread_counts_are_refused_naming_the_limit(n, restore_threads):
    """A count of 100,000 was accepted, and the next large call spawned threads for minutes."""
    limit = cr._core.max_threads()
    for attempt in (lambda: cr.set_num_threads(n), lambda: cr.using_threads(n).__enter__()):
        with pytest.raises(ValueError, match=f"at most {limit}.*not {n}"):
            attempt()
    cr.set_num_threads(limit)  # the limit itself is a count like any other
    assert cr.get_num_threads() == limit
    with cr.using_threads(limit):
        assert cr.get_num_threads() == limit


# -- parse and evaluate ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["sin(x +* 2)", "x +", "(x", "x)", "frobnicate(x)", "x $ y", ""])
def test_parse_errors_are_parse_errors(text):
    with pytest.raises(cr.ParseError):
        cr.parse(text)
    with pytest.raises(cr.ParseError):
        cr.evaluate(text, x=1.0, y=1.0)


def test_evaluate_missing_variable():
    with pytest.raises(ValueError, match="'z'"):
        cr.evaluate("x + z", x=1.0)


def test_evaluate_bad_value():
    with pytest.raises(TypeError):
        cr.evaluate("x + 1", x="one")
    with pytest.raises(cr.ShapeError):
        cr.evaluate("x + y", x=np.ones(2), y=np.ones(3))
