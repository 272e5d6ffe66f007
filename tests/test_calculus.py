"""Calculus helpers: grad's accepted and refused arguments, jacobian, hessian, substitution,
and the constants pi and e; their types as mypy sees them in typical usage."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import chainrule as cr

x, y, z = cr.vars("x y z")
F = cr.sin(cr.cos(x)) * cr.exp(-(y**2)) + cr.log(1 + x**2) * cr.sigmoid(x * y)
POINTS = {"x": np.linspace(-2.0, 2.0, 7), "y": np.linspace(1.5, -1.0, 7)}


def values(e: cr.Expr) -> np.ndarray:
    """``e`` at POINTS, filled out to their shape."""
    return np.broadcast_to(cr.compile(e, inputs=[x, y])(**POINTS), (7,))


def numeric_grad(e: cr.Expr, v: cr.Expr, h: float = 1e-6) -> np.ndarray:
    fn = cr.compile(e, inputs=[x, y])
    up, down = dict(POINTS), dict(POINTS)
    up[v.name] = up[v.name] + h
    down[v.name] = down[v.name] - h
    return (fn(**up) - fn(**down)) / (2 * h)


# -- grad: what JAX users pass ----------------------------------------------------------------


def test_grad_returns_the_kind_it_is_given():
    assert isinstance(cr.grad(F, x), cr.Expr)
    as_list = cr.grad(F, [x, y])
    as_tuple = cr.grad(F, (x, y))
    assert type(as_list) is list and type(as_tuple) is tuple
    assert list(as_tuple) == as_list == [cr.grad(F, x), cr.grad(F, y)]
    assert cr.grad(F, []) == [] and cr.grad(F, ()) == ()


def test_grad_of_a_number_is_zero():
    assert cr.grad(3.0, x).value == 0.0


@pytest.mark.parametrize("wrt, fix", [
    ("x", r"not the name 'x'; pass cr\.var\('x'\)"),
    (["x", "y"], r"pass cr\.var\('x'\)"),
    (x * y, r"not the expression x \* y; pass variables made by cr\.var"),
    ([x, cr.sin(y)], r"not the expression sin\(y\)"),
    ({"x": x}, r"not a dict; pass a list of its variables"),
    ({x, y}, r"not a set; pass a variable or a list or tuple of variables"),
    (iter([x]), r"pass a variable or a list or tuple of variables"),
    (1.0, r"not a float"),
    ([x, 2.0], r"not 2\.0"),
    (None, r"not a NoneType"),
])
def test_grad_refuses_the_rest_naming_the_fix(wrt, fix):
    with pytest.raises(TypeError, match=fix):
        cr.grad(F, wrt)


def test_grad_of_several_outputs_points_at_jacobian():
    with pytest.raises(TypeError, match=r"cr\.jacobian"):
        cr.grad([F, x], x)
    with pytest.raises(TypeError, match="differentiates an expression, not str"):
        cr.grad("sin(x)", x)


# -- jacobian and hessian -----------------------------------------------------------------------


def test_jacobian_rows_are_gradients_of_the_outputs():
    outputs = [F, F * y, x - y]
    J = cr.jacobian(outputs, [x, y])
    assert [len(row) for row in J] == [2, 2, 2]
    for row, f in zip(J, outputs, strict=True):
        assert row == cr.grad(f, [x, y])
    assert cr.jacobian(F, x) == [[cr.grad(F, x)]]
    assert cr.jacobian((F,), (x, y)) == [cr.grad(F, [x, y])]


def test_jacobian_matches_finite_differences():
    J = cr.jacobian([F, F * y], [x, y])
    for row, f in zip(J, [F, F * y], strict=True):
        for d, v in zip(row, [x, y], strict=True):
            np.testing.assert_allclose(values(d), numeric_grad(f, v), rtol=1e-6, atol=1e-8)


def test_hessian_is_symmetric_and_matches_finite_differences_of_the_gradient():
    H = cr.hessian(F, [x, y])
    g = cr.grad(F, [x, y])
    for i in range(2):
        for j in range(2):
            np.testing.assert_allclose(values(H[i][j]), values(H[j][i]), rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(values(H[i][j]), numeric_grad(g[i], [x, y][j]),
                                       rtol=1e-6, atol=1e-8)


def test_hessian_rows_share_the_gradient_nodes():
    """Each row differentiates a gradient component, so the rows and the gradient are one
    graph: the rows printed together name shared parts once, and are no longer than the rows
    printed one by one."""
    H = cr.hessian(F, [x, y])
    g = cr.grad(F, [x, y])
    assert H[0] == cr.grad(g[0], [x, y]) and H[1] == cr.grad(g[1], [x, y])
    from chainrule import _core

    together = len(_core.text([*H[0], *H[1]]))
    apart = sum(len(_core.text([d])) for row in H for d in row)
    assert together < apart


def test_hessian_of_a_quadratic_form_is_its_matrix():
    q = 3 * x * x + 2 * x * y + 5 * y * y + z
    H = cr.hessian(q, [x, y, z])
    assert [[d.value for d in row] for row in H] == [[6, 2, 0], [2, 10, 0], [0, 0, 0]]


@pytest.mark.parametrize("call", [lambda: cr.jacobian({F}, [x]), lambda: cr.jacobian([F], "x"),
                                  lambda: cr.hessian(F, x * y), lambda: cr.hessian([F], [x]),
                                  lambda: cr.jacobian([F, "y"], [x])])
def test_jacobian_and_hessian_refuse_what_grad_refuses(call):
    with pytest.raises(TypeError):
        call()


# -- substitution -------------------------------------------------------------------------------


def test_subs_replaces_variables_by_expressions_and_numbers():
    assert F.subs({y: 2 * x}) == (cr.sin(cr.cos(x)) * cr.exp(-((2 * x) ** 2))
                                  + cr.log(1 + x**2) * cr.sigmoid(x * (2 * x)))
    assert (x * y + z).subs({"y": 2, z: x}) == x * 2 + x
    assert (x * y).subs({}) == x * y


def test_substitution_is_simultaneous():
    assert (x - y).subs({x: y, y: x}) == y - x
    assert (x + 2 * y).subs({x: y, y: z}) == y + 2 * z


def test_substitute_keeps_the_container_kind():
    assert cr.substitute(x * y, {y: 3}) == x * 3
    assert cr.substitute([x, y], {y: 3}) == [x, cr.parse("3")]
    assert cr.substitute((x, y), {x: y}) == (y, y)


def test_substitute_into_a_derivative_evaluates_as_the_derivative_at_that_point():
    d = cr.grad(F, x).subs({y: 0.5})
    fn = cr.compile(cr.grad(F, x), inputs=[x, y])
    np.testing.assert_array_equal(cr.compile(d, inputs=[x])(POINTS["x"]), fn(POINTS["x"], 0.5))


@pytest.mark.parametrize("mapping, exc, match", [
    ({x * y: 1}, TypeError, r"replaces variables, not the expression x \* y"),
    ({1.0: x}, TypeError, r"replaces variables, not 1\.0"),
    ([(x, 1)], TypeError, "a dict of variable -> expression or number, not list"),
    ({x: "y"}, TypeError, "cannot use str"),
    ({"1x": y}, ValueError, "invalid variable name"),
])
def test_substitute_refuses_bad_mappings(mapping, exc, match):
    with pytest.raises(exc, match=match):
        (x * y).subs(mapping)


def test_substitute_refuses_a_non_expression():
    with pytest.raises(TypeError, match="expression or a list"):
        cr.substitute({x}, {x: 1})


# -- constants ----------------------------------------------------------------------------------


def test_pi_and_e_are_the_float64_constants():
    assert cr.pi.value == math.pi and cr.e.value == math.e
    assert cr.evaluate("sin(pi / 2) + log(e)") == 2.0
    assert cr.parse("pi * x") == cr.pi * x
    assert cr.compile(cr.e**x, inputs=[x])(1.0) == math.e


# -- types --------------------------------------------------------------------------------------

USAGE = """
import numpy as np
import chainrule as cr

x, y = cr.vars("x y")
f = cr.sin(cr.cos(x)) * cr.exp(-y**2) + cr.log(1 + x**2) * cr.sigmoid(x * y)
dfdx = cr.grad(f, x)
dfdx, dfdy = cr.grad(f, [x, y])
gx, gy = cr.grad(f, (x, y))
second: cr.Expr = cr.grad(cr.grad(f, x), y)
many: list[cr.Expr] = cr.grad(f, [x, y])
J, H = cr.jacobian([f, f * y], [x, y]), cr.hessian(f, [x, y])
corner: cr.Expr = J[0][1] + H[1][0]
g: cr.Expr = f.subs({y: 2 * x})
gs: list[cr.Expr] = cr.substitute([f, dfdx], {"x": 1.0})
c: cr.Expr = cr.pi * x + cr.e
fn = cr.compile([f, dfdx, dfdy], inputs=[x, y])
xs = np.linspace(0.0, 1.0, 5)
v, gxs, gys = fn(xs, xs)
out = np.empty(5)
cr.evaluate("sin(x)**2 + y", x=xs, y=xs, out=out)
"""

MISUSE = """
import chainrule as cr

x, y = cr.vars("x y")
one: cr.Expr = cr.grad(x * y, [x, y])
"""


def _mypy(tmp_path, source: str) -> subprocess.CompletedProcess:
    pytest.importorskip("mypy")
    path = tmp_path / "usage.py"
    path.write_text(textwrap.dedent(source))
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", "--cache-dir",
         str(tmp_path / ".mypy_cache"), "--follow-imports=silent", str(path)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)


def test_mypy_accepts_typical_usage(tmp_path):
    result = _mypy(tmp_path, USAGE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_catches_a_list_taken_for_one_derivative(tmp_path):
    """The overloads carry information: a list of derivatives is not an expression."""
    result = _mypy(tmp_path, MISUSE)
    assert result.returncode == 1 and "usage.py:5" in result.stdout, result.stdout + result.stderr
