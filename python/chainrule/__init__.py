"""chainrule: gradients of expressions over large NumPy batches.

Build expressions with variables, operators and functions; ``grad`` differentiates them
symbolically (reverse mode, in Rust); ``compile`` turns them into a fused, multithreaded
evaluator over NumPy arrays.

>>> import chainrule as cr
>>> x = cr.var("x")
>>> print(cr.grad(cr.sin(cr.cos(x)), x))
-cos(cos(x)) * sin(x)
"""

from ._core import ChainruleError, ParseError, ShapeError
from .arrays import ExprArray
from .compiled import (
    ArrayFunction,
    Function,
    compile,
    evaluate,
    get_num_threads,
    set_num_threads,
    using_threads,
)
from .expr import Expr, e, grad, hessian, jacobian, latex, parse, pi, substitute, var, vars
from .functions import (  # piecewise, comparisons and logic
    abs,
    acos,
    acosh,
    arccos,
    arccosh,
    arcsin,
    arcsinh,
    arctan,
    arctan2,
    arctanh,
    asin,
    asinh,
    atan,
    atan2,
    atanh,
    cbrt,
    ceil,
    clip,
    copysign,
    cos,
    cosh,
    equal,
    erf,
    erfc,
    exp,
    exp2,
    expm1,
    floor,
    fmod,
    greater,
    greater_equal,
    hypot,
    less,
    less_equal,
    log,
    log1p,
    log2,
    log10,
    log_sigmoid,
    logaddexp,
    logical_and,
    logical_not,
    logical_or,
    maximum,
    mean,
    minimum,
    nextafter,
    not_equal,
    relu,
    round,
    sigmoid,
    sign,
    sin,
    sinh,
    softplus,
    sqrt,
    square,
    step,
    sum,
    tan,
    tanh,
    trunc,
    where,
    xlogy,
)
from .gradcheck import GradCheck, check_grad
from .nn import SigmoidNetwork

__version__ = "0.1.0"

__all__ = [
    "ChainruleError", "ParseError", "ShapeError",
    "Expr", "ExprArray", "Function", "ArrayFunction",
    "var", "vars", "parse", "grad", "jacobian", "hessian", "substitute", "latex", "compile",
    "evaluate",
    "pi", "e",
    "set_num_threads", "get_num_threads", "using_threads",
    "sin", "cos", "tan", "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "abs", "step", "sign",
    "xlogy", "sum", "mean",
    "exp2", "expm1", "log2", "log10", "log1p", "cbrt", "square", "hypot",
    "erf", "erfc", "softplus", "log_sigmoid", "logaddexp",
    # inverse trig and hyperbolic
    "asin", "acos", "atan", "atan2", "sinh", "cosh", "asinh", "acosh", "atanh",
    "arcsin", "arccos", "arctan", "arctan2", "arcsinh", "arccosh", "arctanh",
    # piecewise, comparisons and logic
    "minimum", "maximum", "clip", "floor", "ceil", "round", "trunc", "fmod", "copysign",
    "nextafter", "less", "less_equal", "greater", "greater_equal", "equal", "not_equal",
    "logical_and", "logical_or", "logical_not", "where",
    "check_grad", "GradCheck", "SigmoidNetwork",
]
