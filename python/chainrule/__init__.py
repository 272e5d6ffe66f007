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
from .compiled import Function, compile, evaluate, get_num_threads, set_num_threads, using_threads
from .expr import Expr, e, grad, hessian, jacobian, latex, parse, pi, substitute, var, vars
from .functions import (
    abs,
    cos,
    exp,
    log,
    mean,
    relu,
    sigmoid,
    sign,
    sin,
    sqrt,
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
    "var", "vars", "parse", "grad", "jacobian", "hessian", "substitute", "latex", "compile",
    "evaluate",
    "pi", "e",
    "set_num_threads", "get_num_threads", "using_threads",
    "sin", "cos", "tan", "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "abs", "step", "sign",
    "xlogy", "sum", "mean",
    "check_grad", "GradCheck", "SigmoidNetwork",
]
