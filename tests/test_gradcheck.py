"""check_grad: finite differences against symbolic gradients, with cr.grad's conventions."""

import numpy as np
import pytest

import chainrule as cr
from chainrule.gradcheck import GradCheck, Where, check_grad

x, y, w = cr.vars("x y w")
XS = np.linspace(-1.0, 2.0, 7)


@pytest.mark.parametrize("expr, wrt, at", [
    (cr.sin(cr.cos(x)), x, {"x": XS}),
    (cr.sin(w * x) * cr.exp(-y * y), [w, y], {"x": XS, "w": 0.7, "y": 0.3}),
    (cr.log(1 + x * x) * cr.sigmoid(x * y), None, {"x": XS, "y": XS[::-1]}),
    (cr.mean((y - cr.sigmoid(w * x)) ** 2), "w", {"x": XS, "y": XS / 3, "w": 0.4}),
    (cr.sum(x * x * w), ["x", "w"], {"x": XS, "w": 1.5}),
    (w * x - cr.mean(w * x), None, {"x": XS, "w": 0.9}),
    (x * w, None, {"x": XS.reshape(7, 1), "w": np.ones((7, 3))}),
    ("sqrt(x) / (1 + x)", "x", {"x": np.linspace(0.1, 3, 5)}),
])
def test_correct_gradients_pass(expr, wrt, at):
    result = check_grad(expr, wrt, at=at)
    assert isinstance(result, GradCheck)
    assert result.ok and bool(result)
    assert result.max_rel_error < 1e-7
    assert result.checked > 0
    assert str(result).startswith("gradient check passed")


def test_reduction_of_an_array_variable_is_checked_per_element():
    # d sum(x**3) / dx_i = 3 x_i**2: each element is moved on its own.
    result = check_grad(cr.sum(x ** 3), x, at={"x": XS})
    assert result.ok and result.checked == len(XS)


def test_wrong_gradient_fails_and_reports_the_worst_point():
    wrong = 3 * x * x + 0.01 * x ** 3  # off by 0.01 x**3, relatively worst at x = 2
    result = check_grad(x ** 3, x, at={"x": XS}, grad=wrong)
    assert not result.ok
    assert result.where == Where("x", (6,), {"x": 2.0}, 12.08, pytest.approx(12.0, rel=1e-8))
    assert result.max_rel_error == pytest.approx(0.08 / 12.08, rel=1e-6)
    text = str(result)
    assert "FAILED" in text and "d/dx at x=2" in text and "index (6,)" in text


def test_the_articles_mistake_is_caught():
    result = check_grad("sin(x)**2", "x", at={"x": XS}, grad="cos(x**2) * 2 * x")
    assert not result.ok and result.max_rel_error > 0.1


def test_where_names_all_variables_of_a_per_sample_point():
    result = check_grad(x * y, y, at={"x": XS, "y": 2.0}, grad=x + 0.001 * x * x)
    assert result.where.point == {"x": 2.0, "y": 2.0}
    assert not result.ok


def test_points_outside_the_domain_are_skipped():
    result = check_grad(cr.log(x), x, at={"x": np.array([-1.0, 0.5, 2.0])})
    assert result.ok and result.checked == 2 and result.skipped == 1
    assert "1 skipped" in str(result)


def test_eps_and_tol_are_used():
    coarse = check_grad(cr.exp(x), x, at={"x": 1.0}, eps=1e-2)
    fine = check_grad(cr.exp(x), x, at={"x": 1.0})
    assert coarse.max_rel_error > 1e-6 > fine.max_rel_error
    assert not check_grad(cr.exp(x), x, at={"x": 1.0}, eps=1e-2, tol=1e-6).ok


def test_missing_values_and_bad_arguments():
    with pytest.raises(ValueError, match="no value for y"):
        check_grad(x * y, x, at={"x": 1.0})
    with pytest.raises(TypeError, match="dict"):
        check_grad(x, x, at=[1.0])
    with pytest.raises(ValueError, match="1 expression"):
        check_grad(x * y, [x, y], at={"x": 1.0, "y": 1.0}, grad=[y])
    with pytest.raises(cr.ParseError):
        check_grad("sin(x", x, at={"x": 1.0})
