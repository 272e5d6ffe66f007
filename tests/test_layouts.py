"""Argument layouts read in place (issue 19, item 2): column views, every other element, reversed,
Fortran-ordered, transposed, broadcast and stride-0 arrays, alone and mixed in one call, give
the same bits as the same data made C-contiguous, on one thread and on two, through per-sample
outputs, reductions, sums over an argument's broadcast dimensions and nested reductions. A
float64 view is handed to the core as it is (no copy), errors are the ones a contiguous array
gets, and a sum over a 1e9-sample broadcast view allocates nothing of the batch's size."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import chainrule as cr
from chainrule.arguments import convert

X, Y, Z = cr.vars("x y z")
F = cr.sin(X) * Y + cr.exp(-(X * Z) ** 2) * Z + X / (1 + Y * Y)
FN = cr.compile([
    F, *cr.grad(F, [X, Y, Z]),                       # per sample
    cr.sum(F), cr.mean(F * Y),                        # reduced over the batch
    *cr.grad(cr.sum(F), [X, Y, Z]),                   # summed over each argument's broadcast dims
    X - cr.mean(X * Y),                               # a reduction inside per-sample work
    *cr.grad(cr.mean(cr.tanh(X * Y - cr.mean(Z))), [X, Z]),
], inputs=[X, Y, Z])

RNG = np.random.default_rng(19)
# 12,000 samples in a column, 84,000 in the matrix: enough chunks that two threads share the work.
M = RNG.normal(size=(12000, 7))
N = len(M)
T = RNG.normal(size=(7, 12000))
ROW = RNG.normal(size=7)


def stride0(values: np.ndarray, shape: tuple) -> np.ndarray:
    """``values`` repeated along new leading axes by a zero stride (not through broadcast_to)."""
    strides = (0,) * (len(shape) - values.ndim) + values.strides
    return np.lib.stride_tricks.as_strided(values, shape=shape, strides=strides, writeable=False)


LAYOUTS = {
    "column views": lambda: (M[:, 0], M[:, 3], M[:, 6]),
    "adjacent column views": lambda: (M[:, 1], M[:, 2], M[:, 3]),
    "every other element": lambda: (M[::2, 0], M[1::2, 1], M.ravel()[::14]),
    "reversed": lambda: (M[::-1, ::-1], M[:, ::-1], T.T[::-1]),
    "reversed columns": lambda: (M[::-1, 4], M[::-1, 5], M[::-1, 6]),
    "fortran order": lambda: (np.asfortranarray(M), np.asfortranarray(M * 2), 0.5),
    "transposed 2-d": lambda: (T.T, M, T.T[::-1]),
    "column vector views": lambda: (M[:, 2:3], M[None, :5, 1], M[:, 4:5]),
    "broadcast_to": lambda: (np.broadcast_to(M[:, :1], M.shape), M, np.broadcast_to(ROW, M.shape)),
    "broadcast scalar": lambda: (np.broadcast_to(1.25, (M.size,)), M.ravel(),
                                 np.broadcast_to(-0.5, (M.size,))),
    "stride-0": lambda: (stride0(ROW, M.shape), M, stride0(np.array(0.75), M.shape)),
    "stride-0 column": lambda: (M, np.lib.stride_tricks.as_strided(M[:, 0], shape=M.shape,
                                                                   strides=(56, 0)), ROW),
    "mixed": lambda: (M[:, 5], np.asfortranarray(M)[::-1, 2], np.broadcast_to(2.0, (N,))),
    "mixed 2-d": lambda: (T.T[::2], np.broadcast_to(M[::2, 3:4], (N // 2, 7)),
                          stride0(ROW[::-1], (N // 2, 7))),
    "3-d strided": lambda: (M.reshape(6, 2000, 7)[:, ::-2, 1:6], M[:6, None, :5],
                            T[:5].T[None, :1000]),
    "misaligned and big-endian views": lambda: (M.astype(">f8")[:, 2:3], misaligned(M)[:, ::3],
                                                1.5),
    "other dtypes, strided": lambda: (M.astype(np.float32)[:, 1], (M > 0)[:, 2],
                                      np.arange(M.size).reshape(M.shape)[:, 3]),
}


def misaligned(values: np.ndarray) -> np.ndarray:
    """A float64 array whose data is not 8-byte aligned (the core gets an aligned copy)."""
    buf = bytearray(values.nbytes + 1)
    out = np.frombuffer(buf, dtype=np.float64, count=values.size, offset=1).reshape(values.shape)
    out[...] = values
    return out


def contiguous(args: tuple) -> tuple:
    return tuple(np.ascontiguousarray(a, dtype=np.float64) if isinstance(a, np.ndarray) else a
                 for a in args)


def assert_same_bits(got: tuple, want: tuple, what: str) -> None:
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        g, w = np.asarray(g), np.asarray(w)
        assert g.shape == w.shape, f"{what}: output {i} shape {g.shape}, contiguous {w.shape}"
        assert g.tobytes() == w.tobytes(), f"{what}: output {i} differs from the contiguous call"


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", list(LAYOUTS))
def test_layout_matches_contiguous(name, threads):
    args = LAYOUTS[name]()
    assert any(isinstance(a, np.ndarray) and not a.flags.c_contiguous for a in args), name
    with cr.using_threads(threads):
        got = FN(*args)
        want = FN(*contiguous(args))
    assert_same_bits(got, want, name)
    # Reduced gradients take each argument's own shape, as for contiguous arguments.
    for i, a in enumerate(args):
        assert np.shape(got[6 + i]) == np.shape(a), f"{name}: gradient {i}"


@pytest.mark.parametrize("name", ["column views", "reversed", "broadcast_to", "mixed 2-d"])
def test_layouts_by_keyword_and_one_shot(name):
    args = LAYOUTS[name]()
    assert_same_bits(FN(**dict(zip("xyz", args, strict=True))), FN(*contiguous(args)), name)
    text = "sin(x) * y + exp(-(x * z) ** 2) * z"
    got = cr.evaluate(text, **dict(zip("xyz", args, strict=True)))
    want = cr.evaluate(text, **dict(zip("xyz", contiguous(args), strict=True)))
    assert_same_bits((got,), (want,), name)


@pytest.mark.parametrize("view", [
    M[:, 3], M[::-1, 2], M[::2], np.asfortranarray(M), T.T,
    np.broadcast_to(1.0, (10**12,)), stride0(ROW, (10**9, 7)),
], ids=["column", "reversed", "every other", "fortran", "transposed", "broadcast", "stride-0"])
def test_float64_views_are_not_copied(view):
    """The Python side hands a float64 view to the core as it is: the core reads it in place."""
    assert convert("x", view) is view


def test_other_dtypes_are_still_read_as_float64():
    out = convert("x", M.astype(np.float32)[:, 1])
    assert out.dtype == np.float64 and out.flags.c_contiguous
    assert np.array_equal(out, M.astype(np.float32)[:, 1].astype(np.float64))


def test_errors_are_unchanged_for_views():
    a, b = M[:, 1], M[::-2, 3]  # (12000,) and (6000,)
    with pytest.raises(cr.ShapeError) as strided:
        FN(a, b, 1.0)
    with pytest.raises(cr.ShapeError) as plain:
        FN(*contiguous((a, b)), 1.0)
    assert str(strided.value) == str(plain.value)
    assert "(12000,)" in str(strided.value) and "(6000,)" in str(strided.value)
    with pytest.raises(cr.ShapeError):
        FN(np.broadcast_to(1.0, (5, 7)), M[:, ::2], 1.0)
    with pytest.raises(TypeError, match="complex"):
        FN((M + 1j)[:, 2], 1.0, 1.0)
    with pytest.raises(TypeError, match="function takes 3 arguments"):
        FN(M[:, 0], M[:, 1], M[:, 2], M[:, 3])


# -- memory: a broadcast argument is never copied ------------------------------------------------

MEMORY = textwrap.dedent("""
    import json, resource, time
    import numpy as np
    import chainrule as cr

    def peak():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024

    x = cr.var("x")
    fn = cr.compile([cr.sum(x * 2), cr.mean(cr.sin(x) * 3)], inputs=[x])
    # Size the call from a measured one: about 2 s of work, at most 1e9 samples and at least
    # 1.25e8 (a copy of 1 GB, far above the bound checked).
    probe = 2**23
    fn(np.broadcast_to(1.0, (probe,)))
    start = time.perf_counter()
    fn(np.broadcast_to(1.0, (probe,)))
    per_sample = (time.perf_counter() - start) / probe
    n = int(min(1e9, max(1.25e8, 2.0 / max(per_sample, 1e-12))))
    # A copy of the argument would need 8 n bytes: the address space allows far less.
    vm = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
    cap = vm + min(8 * n // 4, 1 << 30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = peak()
    try:
        total, mean = fn(np.broadcast_to(1.0, (n,)))
        error = None
    except MemoryError as exc:
        total, mean, error = 0.0, 0.0, repr(exc)
    print(json.dumps({"n": n, "total": float(total), "mean": float(mean), "grown": peak() - before,
                      "error": error}))
""")


def test_sum_over_broadcast_view_allocates_nothing_of_its_size():
    """cr.sum over np.broadcast_to(1.0, (n,)) with n up to 1e9: the exact sum, and the peak RSS
    grows by a small fraction of the 8 n bytes a copy would take (the address space is capped
    below that, so a copy fails instead of filling the machine's memory)."""
    proc = subprocess.run([sys.executable, "-c", MEMORY], capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    n = result["n"]
    assert result["error"] is None, result
    assert result["total"] == 2.0 * n, result
    assert result["mean"] == pytest.approx(3.0 * np.sin(1.0), rel=1e-12), result
    grown = result["grown"] / 2**20
    assert grown < 16, f"peak RSS grew {grown:.1f} MiB for {n} samples"
