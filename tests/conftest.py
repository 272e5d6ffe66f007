"""Shared test helpers: the one NumPy reference per op (``NP``, ``PARTIALS``), finite
differences, a NumPy/dual-number oracle over expression trees, and Hypothesis strategies for
random expressions over every op in ``chainrule._core.OPS``.

A random expression is drawn as a plain tree of tuples — ``("var", name)``,
``("const", value)`` or ``(kind, child, ...)`` — so the oracle never reads chainrule's own
graph: :func:`to_expr` builds the chainrule expression, :func:`np_eval` evaluates the same tree
with NumPy, and :func:`dual_eval` runs forward mode (exact to rounding) on it.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st

import chainrule as cr
from chainrule import _core

# Property tests draw the same examples on every run (so CI sees what a developer saw), from
# each test's own source; CHAINRULE_HYPOTHESIS=explore draws new ones each run to look for
# failures. Explored failures at extreme magnitudes (gradients through products of 1e-305
# and 1e274 that underflow in reverse order) are listed in README's conventions.
settings.register_profile("fixed", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("CHAINRULE_HYPOTHESIS", "fixed"))

OPS = list(_core.OPS)
UNARY = [kind for kind, _, arity, _ in OPS if arity == 1]
BINARY = [kind for kind, _, arity, _ in OPS if arity == 2]
DOMAIN = {kind: dom for kind, _, _, dom in OPS}
ARITY = {kind: arity for kind, _, arity, _ in OPS}
KINKED = {"relu", "abs", "step", "sign"}  # derivative jumps or value jumps at 0
EPS = np.finfo(np.float64).eps

# -- building chainrule expressions from op kinds -------------------------------------------

BUILD = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a**b,
    "neg": lambda a: -a,
    # Every op of the table that the public API spells as a function, under the same name.
    **{kind: getattr(cr, kind) for kind, _, _, _ in OPS if kind in cr.__all__},
    "sum": cr.sum, "mean": cr.mean,
    # piecewise, comparisons and logic: the operators, and the kinds whose public name differs
    "mod": lambda a, b: a % b,
    "less": lambda a, b: a < b, "lessequal": lambda a, b: a <= b,
    "greater": lambda a, b: a > b, "greaterequal": lambda a, b: a >= b,
    "equal": cr.equal, "notequal": cr.not_equal,
    "and": lambda a, b: a & b, "or": lambda a, b: a | b, "not": lambda a: ~a,
}


def apply_op(kind: str, *args: cr.Expr) -> cr.Expr:
    """Applies an op by kind: the public builder where there is one, else the core's."""
    if kind in BUILD:
        return BUILD[kind](*args)
    return _core.apply(kind, *args)


def _sigmoid(a):
    # The stable form: 1 / (1 + exp(-a)) overflows to 0 below -709 where sigmoid is still normal.
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _erf(a, complement):
    # NumPy has no erf: math.erf/erfc (the C library's, within an ulp) element by element.
    f = math.erfc if complement else math.erf
    return np.vectorize(f, otypes=[float])(a)


# The one NumPy reference per op, for every test that needs an op's value: each op of
# ``_core.OPS`` has a row (test_ops checks), nan propagates as in the core (relu(nan) and
# step(nan) are nan).
NP = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
    "pow": np.power, "neg": np.negative, "sin": np.sin, "cos": np.cos, "tan": np.tan,
    "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "tanh": np.tanh, "sigmoid": _sigmoid,
    "relu": lambda a: np.where((a > 0) | np.isnan(a), a, 0.0),
    "abs": np.abs,
    "step": lambda a: np.where(a > 0, 1.0, np.where(np.isnan(a), a, 0.0)),
    "sign": np.sign,
    "persample": np.positive,
    "xlogy": lambda a, b: np.where((a == 0) & ~np.isnan(b), 0.0, a * np.log(b)),
    # exponentials, logarithms, roots
    "exp2": np.exp2, "expm1": np.expm1, "log2": np.log2, "log10": np.log10, "log1p": np.log1p,
    "cbrt": np.cbrt, "hypot": np.hypot,
    # special and numerically stable functions
    "erf": lambda a: _erf(a, complement=False),
    "erfc": lambda a: _erf(a, complement=True),
    "softplus": lambda a: np.logaddexp(0.0, a),
    "logsigmoid": lambda a: -np.logaddexp(0.0, -a),
    "logaddexp": np.logaddexp,
    # inverse trig and hyperbolic
    "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan, "atan2": np.arctan2,
    "sinh": np.sinh, "cosh": np.cosh, "asinh": np.arcsinh, "acosh": np.arccosh,
    "atanh": np.arctanh,
    # piecewise, comparisons and logic
    "minimum": np.minimum, "maximum": np.maximum, "floor": np.floor, "ceil": np.ceil,
    "round": np.round, "trunc": np.trunc, "fmod": np.fmod, "copysign": np.copysign,
    "nextafter": np.nextafter, "mod": np.remainder,
    "less": lambda a, b: np.less(a, b) * 1.0, "lessequal": lambda a, b: np.less_equal(a, b) * 1.0,
    "greater": lambda a, b: np.greater(a, b) * 1.0,
    "greaterequal": lambda a, b: np.greater_equal(a, b) * 1.0,
    "equal": lambda a, b: np.equal(a, b) * 1.0, "notequal": lambda a, b: np.not_equal(a, b) * 1.0,
    "and": lambda a, b: np.logical_and(a, b) * 1.0, "or": lambda a, b: np.logical_or(a, b) * 1.0,
    "not": lambda a: np.logical_not(a) * 1.0,
    "select": lambda c, a: np.where(c != 0, a, -0.0),
}

def _tie_weight(a, b):
    """minimum's d/da: 1 below b, 0.5 at a tie (JAX's convention), 0 above."""
    return np.where(a < b, 1.0, np.where(a == b, 0.5, 0.0))


# Each op's partial derivatives, from its operands and its value v (for forward mode and the
# hand rules the symbolic gradients are checked against).
PARTIALS = {
    "add": lambda a, b, v: (1.0, 1.0),
    "sub": lambda a, b, v: (1.0, -1.0),
    "mul": lambda a, b, v: (b, a),
    "div": lambda a, b, v: (1.0 / b, -v / b),
    "pow": lambda a, b, v: (b * np.power(a, b - 1.0), np.log(a) * v),
    "xlogy": lambda a, b, v: (np.log(b), a / b),
    "neg": lambda a, v: (-1.0,),
    "sin": lambda a, v: (np.cos(a),),
    "cos": lambda a, v: (-np.sin(a),),
    "tan": lambda a, v: (1.0 + v * v,),
    "exp": lambda a, v: (v,),
    "log": lambda a, v: (1.0 / a,),
    "sqrt": lambda a, v: (0.5 / v,),
    "tanh": lambda a, v: (1.0 - v * v,),
    "sigmoid": lambda a, v: (v * (1.0 - v),),
    "relu": lambda a, v: (np.where(a > 0, 1.0, 0.0),),
    "abs": lambda a, v: (np.sign(a),),
    "step": lambda a, v: (0.0,),
    "sign": lambda a, v: (0.0,),
    "persample": lambda a, v: (1.0,),
    # exponentials, logarithms, roots (hypot's gradient is 0 at the origin, as JAX's)
    "exp2": lambda a, v: (v * np.log(2.0),),
    "expm1": lambda a, v: (np.exp(a),),
    "log2": lambda a, v: (np.log2(np.e) / a,),
    "log10": lambda a, v: (np.log10(np.e) / a,),
    "log1p": lambda a, v: (1.0 / (1.0 + a),),
    "cbrt": lambda a, v: (1.0 / (3.0 * (v * v)),),
    "hypot": lambda a, b, v: (np.where(v == 0, 0.0, a / v), np.where(v == 0, 0.0, b / v)),
    # special and numerically stable functions
    "erf": lambda a, v: (2.0 / np.sqrt(np.pi) * np.exp(-a * a),),
    "erfc": lambda a, v: (-2.0 / np.sqrt(np.pi) * np.exp(-a * a),),
    "softplus": lambda a, v: (_sigmoid(a),),
    "logsigmoid": lambda a, v: (_sigmoid(-a),),
    "logaddexp": lambda a, b, v: (_sigmoid(a - b), _sigmoid(b - a)),
    # inverse trig and hyperbolic
    "asin": lambda a, v: (1.0 / np.sqrt((1.0 - a) * (1.0 + a)),),
    "acos": lambda a, v: (-1.0 / np.sqrt((1.0 - a) * (1.0 + a)),),
    "atan": lambda a, v: (1.0 / (1.0 + a * a),),
    "atan2": lambda a, b, v: (b / (a * a + b * b), -a / (a * a + b * b)),
    "sinh": lambda a, v: (np.cosh(a),),
    "cosh": lambda a, v: (np.sinh(a),),
    "asinh": lambda a, v: (1.0 / np.sqrt(1.0 + a * a),),
    "acosh": lambda a, v: (1.0 / (np.sqrt(a - 1.0) * np.sqrt(a + 1.0)),),
    "atanh": lambda a, v: (1.0 / ((1.0 - a) * (1.0 + a)),),
    # piecewise, comparisons and logic
    "minimum": lambda a, b, v: (_tie_weight(a, b), _tie_weight(b, a)),
    "maximum": lambda a, b, v: (_tie_weight(b, a), _tie_weight(a, b)),
    "floor": lambda a, v: (0.0,), "ceil": lambda a, v: (0.0,), "round": lambda a, v: (0.0,),
    "trunc": lambda a, v: (0.0,),
    "fmod": lambda a, b, v: (1.0, -np.trunc(a / b)),
    "mod": lambda a, b, v: (1.0, -np.floor(a / b)),
    "copysign": lambda a, b, v: (np.sign(a) * np.sign(v), 0.0),
    "nextafter": lambda a, b, v: (1.0, 0.0),
    **{kind: (lambda a, b, v: (0.0, 0.0)) for kind in (
        "less", "lessequal", "greater", "greaterequal", "equal", "notequal", "and", "or")},
    "not": lambda a, v: (0.0,),
    "select": lambda c, a, v: (0.0, np.where(c != 0, 1.0, 0.0)),
}

# piecewise, comparisons and logic: where each op's value (or derivative) jumps, as the
# distance of each operand from the nearest jump; an operand within rounding of one is a kink
# for the random-expression tests (its value may fall on either side in chainrule and NumPy).
_FRAC = lambda a: np.abs(a - np.round(a))  # noqa: E731
JUMPS = {
    "minimum": lambda a, b: (np.abs(a - b), np.abs(a - b)),
    "maximum": lambda a, b: (np.abs(a - b), np.abs(a - b)),
    "floor": lambda a: (_FRAC(a),), "ceil": lambda a: (_FRAC(a),), "trunc": lambda a: (_FRAC(a),),
    "round": lambda a: (_FRAC(a - 0.5),),
    "fmod": lambda a, b: (np.abs(a - b * np.round(a / b)), np.abs(b) * _FRAC(a / b)),
    "mod": lambda a, b: (np.abs(a - b * np.round(a / b)), np.abs(b) * _FRAC(a / b)),
    "copysign": lambda a, b: (np.abs(a), np.abs(b)),
    **{kind: (lambda a, b: (np.abs(a - b), np.abs(a - b))) for kind in (
        "less", "lessequal", "greater", "greaterequal", "equal", "notequal")},
    "and": lambda a, b: (np.abs(a), np.abs(b)), "or": lambda a, b: (np.abs(a), np.abs(b)),
    "not": lambda a: (np.abs(a),), "select": lambda c, a: (np.abs(c), np.inf),
}


def to_expr(tree) -> cr.Expr:
    """The chainrule expression for a tree."""
    head = tree[0]
    if head == "var":
        return cr.var(tree[1])
    if head == "const":
        return cr.expr.as_expr(tree[1])
    return apply_op(head, *(to_expr(child) for child in tree[1:]))


class Point:
    """The oracle's result at a batch of points: value, derivative, bounds and output class.

    ``scale`` bounds the value's rounding error (error <= ~eps * scale: the running error
    analysis |v| + sum |d op/d child| * scale(child)); ``dscale`` does the same for the
    derivative; ``near_kink`` marks samples where a kinked op's argument is within rounding of 0,
    or where an intermediate value or derivative is subnormal (unusable for relative checks).
    ``cls`` is "const" (no variables), "sample" (a per-sample output) or "reduced" (a number).
    """

    def __init__(self, value, deriv, scale, dscale, near_kink, cls):
        self.value, self.deriv, self.scale = value, deriv, scale
        self.dscale, self.near_kink, self.cls = dscale, near_kink, cls


def _combine_class(classes):
    if "sample" in classes:
        return "sample"
    return "reduced" if "reduced" in classes else "const"


def _leaf(node, env, wrt, seed):
    head, name = node
    value = np.asarray(env[name] if head == "var" else name, dtype=float)
    deriv = None
    if head == "var" and name == wrt:
        deriv = np.broadcast_to(seed, np.broadcast_shapes(value.shape, np.shape(seed)))
    zero = np.zeros_like(value)
    return Point(value, deriv, np.abs(value), zero, np.zeros(value.shape, bool),
                 "sample" if head == "var" else "const")


def _reduce(head, a: Point, batch) -> Point:
    count = float(np.prod(batch)) if head == "mean" else 1.0

    def total(v):
        return np.sum(np.broadcast_to(v, batch)) / count

    value = total(a.value)
    deriv = None if a.deriv is None else total(a.deriv)
    scale = total(a.scale) + np.abs(value)
    dscale = total(a.dscale) + (0.0 if a.deriv is None else total(np.abs(a.deriv)))
    return Point(value, deriv, scale, dscale, np.any(a.near_kink), "reduced")


# |d partial / d value| of the unary ops whose partial is computed from their rounded value
# v, as every implementation does (tanh' = 1 - v^2, as in JAX and PyTorch): the partial then
# carries v's rounding error, which for tanh and sigmoid near 1 is most of the partial itself
# (tanh(exp(1.875)) leaves 1 - v^2 = 8.7e-6 with a relative error of ~1e-11).
PARTIAL_SENSITIVITY = {
    "tan": lambda v: 2.0 * np.abs(v),
    "tanh": lambda v: 2.0 * np.abs(v),
    "sigmoid": lambda v: np.abs(1.0 - 2.0 * v),
    "exp": lambda v: 1.0,
    "sqrt": lambda v: 0.5 / (v * v),
    # exponentials, logarithms, roots
    "exp2": lambda v: np.log(2.0),
    "cbrt": lambda v: 2.0 / (3.0 * np.abs(v) ** 3),
    "hypot": lambda v: 1.0 / v,
}


def _subnormal(v):
    with np.errstate(invalid="ignore"):
        return (v != 0) & (np.abs(v) < np.finfo(np.float64).tiny)


def _apply(head, args: list[Point]) -> Point:
    values = [a.value for a in args]
    value = NP[head](*values)
    partials = PARTIALS[head](*values, value)
    deriv, scale, dscale = None, np.abs(value), 0.0
    for a, p in zip(args, partials, strict=True):
        scale = scale + np.abs(p) * a.scale
    for a, p in zip(args, partials, strict=True):
        dscale = dscale + np.abs(p) * a.dscale
        if a.deriv is not None:
            deriv = p * a.deriv if deriv is None else deriv + p * a.deriv
            dscale = dscale + np.abs(p * a.deriv)
            if head in PARTIAL_SENSITIVITY:
                dscale = dscale + np.abs(a.deriv) * PARTIAL_SENSITIVITY[head](value) * scale
    near = np.zeros(np.shape(value), bool)
    for a in args:
        near = near | a.near_kink
    if head in KINKED:
        near = near | (np.abs(values[0]) <= 1e3 * EPS * args[0].scale)
    if head in JUMPS:
        for a, distance in zip(args, JUMPS[head](*values), strict=True):
            near = near | (distance <= 1e3 * EPS * (a.scale + np.abs(a.value)))
    # A subnormal result is rounded to an absolute step, not a relative one, so the relative
    # error bounds above do not hold downstream of it ((y / x) ** 0.5 with y = -2.2e-313).
    near = near | _subnormal(value) | (deriv is not None and _subnormal(deriv))
    # per_sample keeps a batch's shape whatever its operand is (see grad's per-sample results).
    cls = "sample" if head == "persample" else _combine_class([a.cls for a in args])
    return Point(value, deriv, scale, np.asarray(dscale), near, cls)


def dual_eval(tree, env: dict, wrt: str | None = None, seed=1.0) -> Point:
    """Evaluates a tree with NumPy in forward mode: value and the derivative along ``seed``.

    The tangent of variable ``wrt`` is ``seed`` (1: the derivative for a scalar argument, or
    per sample; a one-hot array: column i of the Jacobian, for the element-by-element rule
    across reductions). ``sum``/``mean`` nodes reduce over the batch (the broadcast of all
    arguments). A structurally zero tangent is ``None``, so pow's log(base) term is skipped
    for a constant exponent, as the symbolic rule does. Iterative post-order.
    """
    batch = np.broadcast_shapes(*(np.shape(v) for v in env.values()))
    with np.errstate(all="ignore"):
        done: dict[int, Point] = {}
        stack = [(tree, False)]
        while stack:
            node, expanded = stack.pop()
            if id(node) in done:
                continue
            if node[0] in ("var", "const"):
                done[id(node)] = _leaf(node, env, wrt, seed)
            elif not expanded:
                stack.append((node, True))
                stack.extend((c, False) for c in node[1:])
            else:
                args = [done[id(c)] for c in node[1:]]
                reduce = node[0] in ("sum", "mean")
                done[id(node)] = (_reduce(node[0], args[0], batch) if reduce
                                  else _apply(node[0], args))
        root = done[id(tree)]
        deriv = np.zeros_like(root.value) if root.deriv is None else root.deriv
        fields = (root.value, deriv, root.scale, root.dscale, root.near_kink)
        return Point(*(np.broadcast_to(a, batch) for a in fields), root.cls)


def np_eval(tree, env: dict) -> np.ndarray:
    """The tree's value, evaluated op by op with NumPy."""
    return dual_eval(tree, env).value


def central_diff(f, x, h=None):
    """Central finite difference of an elementwise function f at the points x."""
    x = np.asarray(x, dtype=float)
    if h is None:
        h = 1e-6 * np.maximum(1.0, np.abs(x))
    return (f(x + h) - f(x - h)) / (2 * h)


def assert_fd(fn, x, grad, rtol=1e-6, atol=1e-8, h=None):
    """Asserts that grad (the claimed derivative at x) matches central differences of fn."""
    np.testing.assert_allclose(grad, central_diff(fn, x, h), rtol=rtol, atol=atol)


# -- Hypothesis strategies ----------------------------------------------------------------

VARIABLES = ("x", "y", "z")
CONSTANTS = st.sampled_from([0.5, 1.0, 2.0, 3.0, -1.0, -2.5, 0.1, 1e-3, 10.0])


def leaves():
    return st.one_of(
        st.sampled_from(VARIABLES).map(lambda n: ("var", n)),
        CONSTANTS.map(lambda c: ("const", c)),
    )


def _extend(unary_ops):
    def extend(children):
        unary = st.tuples(st.sampled_from(unary_ops), children)
        binary = st.tuples(st.sampled_from(BINARY), children, children)
        return st.one_of(unary, binary)
    return extend


def trees(max_leaves: int = 10, reductions: bool = False):
    """Random expression trees over every op of the op table (and sum/mean, if asked)."""
    unary = UNARY + ["sum", "mean"] * (len(UNARY) // 4) if reductions else UNARY
    tree = st.recursive(leaves(), _extend(unary), max_leaves=max_leaves)
    if reductions:  # half of them reduced at the root, where nested reductions matter most
        return st.one_of(tree, st.tuples(st.sampled_from(["sum", "mean"]), tree))
    return tree


def env_points(n: int = 8, lo: float = -2.0, hi: float = 2.0):
    """A batch of n points per variable."""
    floats = st.floats(lo, hi, allow_nan=False, allow_infinity=False)
    batch = st.lists(floats, min_size=n, max_size=n).map(np.array)
    return st.fixed_dictionaries({name: batch for name in VARIABLES})


@pytest.fixture
def restore_threads():
    """Restores the evaluator's thread count after a test changes it."""
    before = cr.get_num_threads()
    yield
    cr.set_num_threads(before)
