"""The dense-network benchmark (benches/dense.py): its quick run finishes after its cross-check,
and the cross-check catches a wrong gradient. Nothing here asserts how fast anything is.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr

_PATH = Path(__file__).resolve().parents[1] / "benches" / "dense.py"
_spec = importlib.util.spec_from_file_location("dense_bench", _PATH)
dense = importlib.util.module_from_spec(_spec)
sys.modules["dense_bench"] = dense  # dataclasses look the module up while it executes
_spec.loader.exec_module(dense)
nets = dense.nets  # benches/dense_nets.py: the networks, per library

JAX_ROWS = {"jax jit(value_and_grad)", "jax jit per step", "jax lax.scan"}


def agreeing_rows(stdout: str) -> tuple[str, set[str], str]:
    """The workloads, the rows that agreed with NumPy and the failed ones, from the line the
    script prints after its cross-check."""
    line = next(ln for ln in stdout.splitlines() if ln.startswith("cross-check ran in "))
    workloads = line.removeprefix("cross-check ran in ").split(":")[0]
    agree, failed = line.split("agree with NumPy (rtol 1e-09): ")[1].split("; failed: ")
    return workloads, set(agree.split(", ")), failed


def test_quick_run_exits_0_after_its_cross_check(tmp_path):
    out = tmp_path / "dense.md"
    proc = subprocess.run([sys.executable, str(_PATH), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    workloads, agree, failed = agreeing_rows(proc.stdout)
    assert workloads == "a, b, c" and failed == "none"
    assert "chainrule scalar-vars" in agree
    if importlib.util.find_spec("jax") is not None:
        assert JAX_ROWS <= agree
    if hasattr(cr, "ExprArray"):
        assert "chainrule arrays" in agree
    text = out.read_text()
    for title in ("(a) W8 64-30-10", "(b) W8 64-30-10", "(c) 784-30-10", "(d) 784-30-10",
                  "Targets of issue 20"):
        assert f"### {title}" in text
    # (d) checks each fresh process's result too: a row that ran reports its error.
    rows = [ln for ln in text.splitlines() if ln.startswith("| chainrule scalar-vars | 1 |")]
    assert len(rows) == 1 and rows[0].endswith("| ok |")


def test_without_jax_and_threadpoolctl_their_rows_say_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)
    out = tmp_path / "dense.md"
    assert dense.main(["--quick", "--no-jax", "--workloads", "a", "--out", str(out)]) == 0
    workloads, agree, failed = agreeing_rows(capsys.readouterr().out)
    assert workloads == "a" and failed == "none" and not JAX_ROWS & agree
    text = out.read_text()
    row = next(ln for ln in text.splitlines() if ln.startswith("| jax jit("))
    assert row.endswith("| not installed (--no-jax) |")
    row = next(ln for ln in text.splitlines() if ln.startswith("| numpy, 1 BLAS thread |"))
    assert row.endswith("| skipped: threadpoolctl not installed |")
    assert "numpy BLAS (matmuls) unknown (threadpoolctl not installed)" in text


def test_numpy_reference_is_checked_against_the_complex_step(monkeypatch):
    net = nets.digits_net()
    nets.verify_numpy_gradient(net)
    right = nets.numpy_value_grad

    def forgets_the_factor_2(*args):
        J, gW1, gb1, gW2, gb2 = right(*args)
        return J, gW1, gb1, gW2, gb2 / 2

    monkeypatch.setattr(nets, "numpy_value_grad", forgets_the_factor_2)
    with pytest.raises(dense.run.Mismatch, match="complex step"):
        nets.verify_numpy_gradient(net)


def test_w8_data_without_scikit_learn_has_the_digits_shape(monkeypatch):
    for name in ("sklearn", "sklearn.datasets"):  # importing them now raises ImportError
        monkeypatch.setitem(sys.modules, name, None)
    net, again = nets.digits_net(), nets.digits_net()
    assert net.source.startswith("synthetic")
    assert net.X.shape == (1_797, 64) and net.Y.shape == (1_797, 10)
    assert net.X.min() >= 0 and net.X.max() <= 1 and np.all(net.Y.sum(axis=1) == 1)
    assert np.array_equal(net.X, again.X) and np.array_equal(net.Y, again.Y)  # seeded


class FakeArray:
    """Stands in for cr.ExprArray until chainrule has it: follows shapes by NumPy's rules and
    remembers what grad was taken of, so that the benchmark's array rows can be run."""

    def __init__(self, shape, name=None, wrt=None):
        self.shape, self.name, self.wrt = tuple(shape), name, wrt

    def _broadcast(self, other):
        other_shape = other.shape if isinstance(other, FakeArray) else ()
        return FakeArray(np.broadcast_shapes(self.shape, other_shape))

    __add__ = __radd__ = __sub__ = __rsub__ = __pow__ = _broadcast

    def __matmul__(self, other):
        return FakeArray((np.zeros(self.shape) @ np.zeros(other.shape)).shape)

    def sum(self):
        return FakeArray(())


class FakeChainrule:
    """The array API of DESIGN.md, with NumPy's backprop (times `scale`) as the compiled
    function: whether the benchmark calls the API consistently, and what its check does
    with a wrong gradient."""

    ExprArray = FakeArray

    def __init__(self, scale=1.0):
        self.scale = scale

    def var(self, name, shape):
        return FakeArray(shape, name)

    def sigmoid(self, a):
        return FakeArray(a.shape)

    def mean(self, a):
        return FakeArray(a.shape)

    def grad(self, J, wrt):
        assert J.shape == ()
        return [FakeArray(w.shape, wrt=w) for w in wrt]

    def compile(self, outputs, inputs):
        names = [v.name for v in inputs]
        assert names == ["x", "y", "W1", "b1", "W2", "b2"]
        assert outputs[0].shape == () and [g.wrt for g in outputs[1:]] == inputs[2:]

        def fn(X, Y, *params):
            for arg, var in zip((X, Y), inputs[:2], strict=True):
                assert arg.shape[1:] == var.shape, (var.name, arg.shape)
            for arg, var in zip(params, inputs[2:], strict=True):
                assert arg.shape == var.shape, (var.name, arg.shape)
            J, *grads = nets.numpy_value_grad(X, Y, *params)
            return (J, *[g * self.scale for g in grads])

        return fn


@pytest.mark.parametrize("rows, workload", [(nets.VALUE_GRAD_ROWS, "a"), (nets.EPOCH_ROWS, "b")])
def test_array_rows_are_checked_before_timing(rows, workload):
    net = nets.digits_net()
    ref = (nets.numpy_value_grad(net.X, net.Y, *net.params) if workload == "a"
           else nets.numpy_epoch(net))
    arrays = [row for row in rows if row[0] == "chainrule arrays"]
    for scale, status in ((1.0, "ok"), (1.0 + 1e-6, "MISMATCH")):
        mods = {"numpy": np, "chainrule arrays": FakeChainrule(scale)}
        (cand,) = dense.prepare_rows(arrays, mods, {}, net, ref, workload)
        assert cand.status.split(":")[0] == status
    dense.time_interleaved([cand], repeat=1, round_s=0.0)
    assert cand.samples == {}  # a row that failed its check is not timed


def test_array_first_result_runs_lap_by_lap(monkeypatch):
    # The fresh process imports chainrule itself; here it finds the stand-in instead.
    monkeypatch.setitem(sys.modules, "chainrule", FakeChainrule())
    net = nets.big_net(20)
    times, out, again = nets.child_arrays(net)
    assert list(times) == ["import", "build", "grad", "compile", "first_call"]
    ref = nets.numpy_value_grad(net.X, net.Y, *net.params)
    assert dense.run.assert_close("arrays", out, ref) == 0
    assert dense.run.assert_close("arrays, again", again(), ref) == 0
