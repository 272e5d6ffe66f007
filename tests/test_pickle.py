"""Pickling: expressions come back as the same node, compiled functions give bitwise identical
results, in this process and in a fresh one."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys

import numpy as np
import pytest

import chainrule as cr

x, y, w = cr.vars("x y w")


def article():
    return cr.sin(cr.cos(x)) * cr.exp(-(y**2)) + cr.log(1 + x**2) * cr.sigmoid(x * y)


EXPRS = [
    x,
    cr.expr.as_expr(2.5),
    article(),
    *cr.grad(article(), [x, y]),
    cr.grad(cr.mean((y - cr.sigmoid(w * x)) ** 2), w),
    cr.sum(x, over=w),
    x - cr.mean(x),
    x * float("inf") + float("nan"),
    x * 0.1 + 1 / 3,
]

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("e", EXPRS, ids=lambda e: str(e)[:30])
def test_expr_round_trip(e, protocol):
    back = pickle.loads(pickle.dumps(e, protocol))
    assert back == e and hash(back) == hash(e) and str(back) == str(e)


@pytest.mark.parametrize("e", EXPRS[:4], ids=lambda e: str(e)[:30])
def test_expr_copy(e):
    assert copy.copy(e) == e
    assert copy.deepcopy(e) == e


def test_containers_of_exprs():
    data = {"f": article(), "grads": cr.grad(article(), [x, y]), (x, y): 1}
    back = pickle.loads(pickle.dumps(data))
    assert back == data


def _function():
    f = article()
    J = cr.mean((y - cr.sigmoid(w * x)) ** 2)
    return cr.compile([f, *cr.grad(f, [x, y]), J, cr.grad(J, w)], inputs=[x, y, w])


ARGS = (np.linspace(-2, 2, 1001), np.linspace(1, -1, 1001), 0.7)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_function_round_trip(protocol):
    fn = _function()
    back = pickle.loads(pickle.dumps(fn, protocol))
    assert isinstance(back, cr.Function)
    assert [v.name for v in back.inputs] == ["x", "y", "w"]
    assert back.outputs == fn.outputs
    for a, b in zip(fn(*ARGS), back(*ARGS), strict=True):
        assert type(a) is type(b)
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
    assert back(x=ARGS[0], y=1.0, w=2.0)[0].shape == (1001,)


def test_single_output_function_stays_single():
    fn = pickle.loads(pickle.dumps(cr.compile(cr.sin(x), inputs=[x])))
    assert isinstance(fn(np.ones(2)), np.ndarray)
    fn = pickle.loads(pickle.dumps(cr.compile([cr.sin(x)], inputs=[x])))
    assert isinstance(fn(np.ones(2)), tuple)


def test_function_deepcopy():
    fn = _function()
    other = copy.deepcopy(fn)
    for a, b in zip(fn(*ARGS), other(*ARGS), strict=True):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()


def test_unpickle_in_fresh_process():
    fn = _function()
    payload = pickle.dumps((fn, article(), ARGS))
    script = (
        "import pickle, sys\n"
        "fn, e, args = pickle.loads(sys.stdin.buffer.read())\n"
        "import chainrule as cr, numpy as np\n"
        "out = fn(*args)\n"
        "sys.stdout.buffer.write(pickle.dumps((str(e), [np.asarray(o).tobytes() for o in out])))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], input=payload, capture_output=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    text, outs = pickle.loads(proc.stdout)
    assert text == str(article())
    assert outs == [np.asarray(o).tobytes() for o in fn(*ARGS)]


def test_pickle_is_compact():
    """A gradient that shares subexpressions pickles the DAG, not the expanded tree."""
    e = x
    for _ in range(40):
        e = cr.sin(e) * cr.cos(e)
    g = cr.grad(e, x)
    assert len(pickle.dumps(g)) < 40 * 400
    assert pickle.loads(pickle.dumps(g)) == g
