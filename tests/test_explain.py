"""The chain-rule explainer (``chainrule diff --explain``) called directly: its steps agree with
``cr.grad``, and the formulas it fills in are the derivative (the CLI's output is in test_cli)."""

import numpy as np
import pytest

import chainrule as cr
from chainrule.explain import explain
from conftest import UNARY

x = cr.var("x")
FUNCTIONS = [kind for kind in UNARY if kind in cr.__all__]


def test_explain_function_matches_grad_on_every_step():
    f = cr.tanh(cr.log(x) * x) / (x + 1)
    lines = explain(f, x)
    steps = [line for line in lines if line.startswith("step ")]
    assert steps[0] == "step 1: tanh(log(x) * x) / (x + 1)" and len(steps) == 4
    assert sum("simplified: " in line for line in lines) == 4
    last = lines[-1].splitlines()
    assert last[0].startswith("d/dx =")
    assert [line.strip() for line in last[1:]] == str(cr.grad(f, x)).splitlines()


@pytest.mark.parametrize("kind", FUNCTIONS)
def test_chain_rule_product_is_the_derivative(kind):
    # The product line writes f'(u) with the inner expression substituted for u: read back, it
    # must be the derivative, for every function of the public API.
    f = getattr(cr, kind)(x * x + 1)
    (product,) = [line for line in explain(f, x) if line.startswith("  product: ")]
    filled = cr.parse(product.removeprefix("  product: "))
    xs = np.linspace(-2.0, 2.0, 41)
    got, want = cr.compile([filled, cr.grad(f, x)], inputs=[x])(xs)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
