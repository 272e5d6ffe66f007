"""chainrule: gradients of expressions over large NumPy batches.

Build expressions with variables, operators and functions; ``grad`` differentiates them
symbolically (reverse mode, in Rust); ``compile`` turns them into a fused, multithreaded
evaluator over NumPy arrays.

>>> import chainrule as cr
>>> x = cr.var("x")
>>> print(cr.grad(cr.sin(cr.cos(x)), x))
-(cos(cos(x)) * sin(x))
"""

from ._core import ChainruleError, ParseError, ShapeError
from .compiled import Function, compile, evaluate, get_num_threads, set_num_threads, using_threads
from .expr import Expr, e, grad, hessian, jacobian, parse, pi, substitute, var, vars
from .functions import (
    abs,
    cbrt,
    cos,
    erf,
    erfc,
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
    cos,
    cosh,
    exp,
    exp2,
    expm1,
    hypot,
    log,
    log1p,
    log2,
    log10,
    log_sigmoid,
    logaddexp,
    mean,
    relu,
    sigmoid,
    sign,
    sin,
    softplus,
    sinh,
    sqrt,
    square,
    step,
    sum,
    tan,
    tanh,
    xlogy,
)
from .gradcheck import GradCheck, check_grad
from .nn import SigmoidNetwork

__version__ = "0.1.0"

__all__ = [
    "ChainruleError", "ParseError", "ShapeError",
    "Expr", "Function",
    "var", "vars", "parse", "grad", "jacobian", "hessian", "substitute", "compile", "evaluate",
    "pi", "e",
    "set_num_threads", "get_num_threads", "using_threads",
    "sin", "cos", "tan", "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "abs", "step", "sign",
    "xlogy", "sum", "mean",
    "exp2", "expm1", "log2", "log10", "log1p", "cbrt", "square", "hypot",
    "erf", "erfc", "softplus", "log_sigmoid", "logaddexp",
    # inverse trig and hyperbolic
    "asin", "acos", "atan", "atan2", "sinh", "cosh", "asinh", "acosh", "atanh",
    "arcsin", "arccos", "arctan", "arctan2", "arcsinh", "arccosh", "arctanh",
    "check_grad", "GradCheck", "SigmoidNetwork",
]
