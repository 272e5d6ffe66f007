"""Inputs that fight back: read-only, non-contiguous, misaligned, big-endian, 0-d, empty, object
and exotic-dtype arrays, lists, Python ints beyond float range, nan and inf, arrays rewritten by
another thread during a call, huge shapes (in a memory-capped subprocess), and pickled bytes that
are corrupt or from a newer format. Each either works exactly as NumPy would, or raises a clear
TypeError/ValueError that names the argument; nothing crashes."""

from __future__ import annotations

import array
import fractions
import json
import pickle
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import chainrule as cr
from chainrule import _core
from chainrule.expr import _load

x, y = cr.vars("x y")
OUTPUTS = [cr.sin(x) * y + x, cr.sum(x * y), cr.grad(cr.sum(cr.exp(x) * y), x)]
FN = cr.compile(OUTPUTS, inputs=[x, y])
BASE = np.linspace(-2.0, 3.5, 12).reshape(3, 4)


def expected(xv, yv):
    """What NumPy gives for FN's outputs, with x and y converted to float64 as NumPy would;
    each with the absolute error a different summation order may cause."""
    xf, yf = np.asarray(xv, dtype=np.float64), np.asarray(yv, dtype=np.float64)
    with np.errstate(all="ignore"):
        per_sample = np.sin(xf) * yf + xf
        terms = xf * yf * np.ones(per_sample.shape)
        full = np.exp(xf) * yf * np.ones(per_sample.shape)  # d sum(exp(x) y) / dx, per sample
        extra = full.ndim - xf.ndim
        broadcast = tuple(i for i, n in enumerate(xf.shape) if n == 1)
        grad = full.sum(axis=tuple(range(extra))).sum(axis=broadcast, keepdims=True)
        scale = np.abs(full).sum(axis=tuple(range(extra))).sum(axis=broadcast, keepdims=True)
        return [(per_sample, 0.0), (np.float64(np.sum(terms)), 1e-14 * np.sum(np.abs(terms))),
                (grad.reshape(xf.shape), 1e-14 * scale.reshape(xf.shape))]


def assert_like_numpy(xv, yv=2.0):
    """FN(xv, yv) equals NumPy's results: types, shapes and values (nan where NumPy has nan)."""
    got = FN(xv, yv)
    for k, (g, (w, atol)) in enumerate(zip(got, expected(xv, yv), strict=True)):
        what = f"output {k} for x={xv!r}"
        if np.ndim(w) == 0:
            assert type(g) is np.float64, f"{what}: {g!r} should be a numpy.float64"
        else:
            assert isinstance(g, np.ndarray) and g.dtype == np.float64, f"{what}: {g!r}"
        assert np.shape(g) == np.shape(w), f"{what}: shape {np.shape(g)}, NumPy {np.shape(w)}"
        with np.errstate(invalid="ignore"):
            close = (g == w) | (np.isnan(g) & np.isnan(w)) | (np.abs(g - w) <= 1e-13 * np.abs(w)
                                                              + atol)
        assert np.all(close), f"{what}: got {g!r}, NumPy {w!r}"


def misaligned(values: np.ndarray) -> np.ndarray:
    """A C-contiguous float64 array whose data is not 8-byte aligned."""
    buf = bytearray(values.nbytes + 1)
    out = np.frombuffer(buf, dtype=np.float64, count=values.size, offset=1).reshape(values.shape)
    out[...] = values
    assert not out.flags.aligned and out.flags.c_contiguous
    return out


def read_only(values: np.ndarray) -> np.ndarray:
    out = values.copy()
    out.flags.writeable = False
    return out


SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 5e-324, -1e-310, np.finfo(float).max,
                    -np.finfo(float).max, 1e300, 710.0, -746.0, 1e22, np.pi / 2, -1.0, 2.0**60])

WORKS = {
    "float64": lambda: BASE,
    "read-only": lambda: read_only(BASE),
    "broadcast view": lambda: np.broadcast_to(BASE[0], (3, 4)),
    "every other column": lambda: np.linspace(-3, 3, 24).reshape(3, 8)[:, ::2],
    "transposed": lambda: np.linspace(-3, 3, 12).reshape(4, 3).T,
    "reversed": lambda: BASE[::-1, ::-1],
    "fortran order": lambda: np.asfortranarray(BASE),
    "misaligned": lambda: misaligned(BASE),
    "big-endian": lambda: BASE.astype(">f8"),
    "float16": lambda: BASE.astype(np.float16),
    "float32": lambda: BASE.astype(np.float32),
    "longdouble": lambda: BASE.astype(np.longdouble),
    "int8": lambda: np.arange(-6, 6, dtype=np.int8).reshape(3, 4),
    "int64 beyond 2**53": lambda: np.array([2**62 + 1, -(2**63), 2**53 + 1, 7], dtype=np.int64),
    "uint64 max": lambda: np.array([2**64 - 1, 0], dtype=np.uint64),
    "bool": lambda: BASE > 0,
    "nan and inf everywhere": lambda: SPECIAL,
    "nan and inf, misaligned": lambda: misaligned(SPECIAL),
    "list": lambda: BASE.tolist(),
    "list of ints": lambda: [[1, 2, 3], [4, 5, 6]],
    "tuple": lambda: tuple(BASE[0]),
    "memoryview": lambda: memoryview(array.array("d", [1.0, -2.0, 3.5])),
    "array.array": lambda: array.array("d", [1.0, -2.0, 3.5]),
    "matrix": lambda: np.asmatrix(BASE),
    "empty": lambda: np.zeros(0),
    "empty 2-d": lambda: np.zeros((0, 4)),
    "empty int": lambda: np.zeros((2, 0), dtype=np.int32),
    "0-d float64": lambda: np.array(1.5),
    "0-d int": lambda: np.array(3),
    "0-d float32": lambda: np.array(1.5, dtype=np.float32),
    "0-d big-endian": lambda: np.array(1.5, dtype=">f8"),
    "numpy bool scalar": lambda: np.bool_(True),
    "numpy float32 scalar": lambda: np.float32(1.5),
    "numpy int scalar": lambda: np.int16(-7),
    "python int": lambda: 12345678901234567890,
    "python bool": lambda: True,
    "fraction": lambda: fractions.Fraction(1, 3),
    "nan": lambda: float("nan"),
    "-inf": lambda: float("-inf"),
    "largest finite int": lambda: int(np.finfo(float).max),
    # NumPy 2 allows 64 dimensions; np.broadcast_shapes only 32.
    "33 dimensions": lambda: BASE.reshape((1,) * 31 + (3, 4)),
    "64 dimensions": lambda: BASE.reshape((1,) * 62 + (3, 4)),
    "64 dimensions, strided": lambda: np.linspace(-3, 3, 24).reshape((1,) * 62 + (3, 8))[..., ::2],
}


@pytest.mark.parametrize("name", list(WORKS))
def test_argument_works_like_numpy(name):
    assert_like_numpy(WORKS[name]())


@pytest.mark.parametrize("name", ["misaligned", "big-endian", "every other column", "0-d int",
                                  "numpy bool scalar", "nan and inf everywhere"])
def test_argument_works_like_numpy_as_y_and_by_keyword(name):
    value = WORKS[name]()
    want = FN(x=np.float64(0.25), y=np.array(value, dtype=np.float64))
    got = FN(y=value, x=0.25)
    for g, w in zip(got, want, strict=True):
        assert np.shape(g) == np.shape(w) and type(g) is type(w)
        np.testing.assert_array_equal(g, w)


REJECTED = {
    "object array": (lambda: np.array([1.0, 2.0], dtype=object), TypeError),
    "object array of big ints": (lambda: np.array([1, 10**400], dtype=object), TypeError),
    "list with a big int": (lambda: [1.0, 10**400], (TypeError, ValueError)),
    "int beyond float range": (lambda: 10**400, ValueError),
    "negative int beyond float range": (lambda: -(10**309), ValueError),
    "ragged list": (lambda: [[1.0], [2.0, 3.0]], TypeError),
    "complex array": (lambda: np.ones(3, dtype=complex), TypeError),
    "complex scalar": (lambda: 1 + 2j, TypeError),
    "numpy complex scalar": (lambda: np.complex64(1), TypeError),
    "string": (lambda: "1.5", TypeError),
    "bytes": (lambda: b"\x00" * 8, TypeError),
    "datetime64": (lambda: np.array(["2024-01-01"], dtype="M8[D]"), TypeError),
    "timedelta64": (lambda: np.array([1], dtype="m8[s]"), TypeError),
    "structured": (lambda: np.zeros(2, dtype=[("a", "f8")]), TypeError),
    "None": (lambda: None, TypeError),
    "dict": (lambda: {"a": 1.0}, TypeError),
    "an expression": (lambda: cr.var("x") + 1, TypeError),
}


@pytest.mark.parametrize("name", list(REJECTED))
def test_bad_argument_raises_naming_it(name):
    make, exc = REJECTED[name]
    with pytest.raises(exc) as info:
        FN(make(), 2.0)
    assert "'x'" in str(info.value), str(info.value)
    assert_like_numpy(BASE)  # and the function still works


def test_int_beyond_float_range_in_an_expression():
    with pytest.raises(ValueError, match="too large"):
        _ = x + 10**400


@pytest.mark.parametrize("shape_x, shape_y", [((3,), (4,)), ((2, 3), (3, 2)), ((0,), (2,)),
                                              ((5, 1, 2), (4, 3)),
                                              ((1,) * 32 + (3,), (4,)),
                                              ((2,) + (1,) * 63, (3,) + (1,) * 63),
                                              ((1,) * 40 + (0,), (1,) * 50 + (2,))])
def test_shapes_that_do_not_broadcast_name_the_arguments(shape_x, shape_y):
    with pytest.raises(cr.ShapeError) as info:
        FN(np.ones(shape_x), np.ones(shape_y))
    message = str(info.value)
    assert str(shape_x) in message and str(shape_y) in message and "x" in message, message
    with pytest.raises(cr.ShapeError) as info:
        cr.evaluate("sin(x) * y", y=np.ones(shape_y), x=np.ones(shape_x))
    message = str(info.value)
    assert str(shape_x) in message and str(shape_y) in message and "x" in message, message


def test_many_dimensions_in_evaluate_and_the_gradient_shape():
    """64 dimensions through evaluate and through a reduced gradient's summation over the
    argument's broadcast dimensions, as NumPy gives them."""
    xs = np.linspace(-1, 1, 6).reshape((1,) * 61 + (2, 1, 3))
    ys = np.linspace(0, 2, 4).reshape((1,) * 60 + (2, 1, 2, 1))
    np.testing.assert_allclose(cr.evaluate("sin(x) * y", x=xs, y=ys), np.sin(xs) * ys, rtol=1e-15)
    gy = cr.compile(cr.grad(cr.sum(cr.sin(x) * y), y), inputs=[x, y])(xs, ys)
    # NumPy's own broadcasting helpers stop at 32 dimensions: the reference drops the unit ones.
    want = (np.sin(xs.reshape(2, 1, 3)) * np.ones((2, 2, 2, 3))).sum(axis=(1, 3), keepdims=True)
    assert gy.shape == ys.shape
    np.testing.assert_allclose(gy, want.reshape(ys.shape), rtol=1e-14)


MASKED = {
    "masked array": lambda: np.ma.masked_array([1.0, 1e300, 3.0], mask=[False, True, False]),
    "masked array with nothing masked": lambda: np.ma.masked_array(BASE),
    "masked constant": lambda: np.ma.masked,
    "masked int array": lambda: np.ma.masked_less(np.arange(4), 2),
}


@pytest.mark.parametrize("name", list(MASKED))
def test_masked_arrays_are_refused_with_the_fix_named(name):
    """A mask has no meaning to the evaluator, and dropping it would sum a masked 1e300:
    every call path refuses, and the message says what to pass instead."""
    calls = {
        "by position": lambda m: FN(m, 2.0),
        "as y by keyword": lambda m: FN(y=m, x=0.5),
        "evaluate": lambda m: cr.evaluate("x * 2", x=m),
        "a single output": lambda m: cr.compile(cr.sum(x), inputs=[x])(m),
    }
    for how, call in calls.items():
        with pytest.raises(TypeError) as info:
            call(MASKED[name]())
        message = str(info.value)
        assert "masked" in message and ".filled(" in message and ".data" in message, (how, message)
    assert_like_numpy(BASE)


def test_masked_and_many_dimensional_dask_arguments():
    """The Dask path converts in-memory arguments as a plain call does, and refuses a Dask
    array of masked blocks before any task runs; past 32 dimensions it works where no
    rechunking is needed and says what to change where it is."""
    da = pytest.importorskip("dask.array")
    dask = pytest.importorskip("dask")
    masked = np.ma.masked_array([1.0, 1e300], mask=[False, True])
    dask_masked = da.ma.masked_array(da.ones(2), mask=[0, 1])
    for call in (lambda: FN(da.ones(2), masked), lambda: FN(dask_masked, 1.0)):
        with pytest.raises(TypeError, match=r"masked.*\.filled\(.*\.data"):
            call()
    xs = BASE.reshape((1,) * 38 + (3, 4))
    got = dask.compute(*FN(da.from_array(xs), BASE[0]))
    for g, w in zip(got, FN(xs, BASE[0]), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-14)
    with pytest.raises(cr.ShapeError, match="32 dimensions"):
        FN(da.from_array(xs, chunks=1), BASE[0])


# -- an argument rewritten while a call reads it ------------------------------------------------


def test_argument_rewritten_by_another_thread_during_calls():
    """A writer thread flips every element between 0 and 1 while calls run (the GIL is released
    during evaluation): each output element is 2 sin(a) + b with a, b each 0 or 1 (what NumPy's
    own np.sin(x) * 2 + x, which reads x twice, may give), never anything else, and the sum is
    a whole number of ones; nothing crashes."""
    n = 1 << 21
    data = np.zeros(n)
    fn = cr.compile([cr.sin(x) * 2 + x, cr.sum(x)], inputs=[x])
    allowed = np.array([np.sin(a) * 2 + b for a in (0.0, 1.0) for b in (0.0, 1.0)])
    stop = threading.Event()

    def writer():
        while not stop.is_set():
            data[:] = 1.0
            data[:] = 0.0

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(20):
            per_sample, total = fn(data)
            assert np.isin(per_sample, allowed).all()
            assert 0 <= total <= n and total == np.round(total)
    finally:
        stop.set()
        thread.join()


# -- huge shapes, in a subprocess whose address space is capped ---------------------------------

HUGE = textwrap.dedent("""
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
    import numpy as np
    import chainrule as cr
    x, y = cr.vars("x y")
    fn = cr.compile([cr.sin(x) * y, cr.sum(x)], inputs=[x, y])
    def view(shape):
        return np.broadcast_to(np.float64(1.0), shape)
    args = {args}
    try:
        out = fn(*args)
        result = {{"shapes": [list(np.shape(o)) for o in out]}}
    except BaseException as exc:
        result = {{"error": [c.__name__ for c in type(exc).__mro__], "message": str(exc)}}
    print(json.dumps(result))
""")


def run_capped(args: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", HUGE.format(args=args)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"crashed ({proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("args, shapes", [
    ("(view((2**40,)), np.ones(3))", ["(1099511627776,)", "(3,)"]),
    ("(view((2**20, 2**20)), np.ones((3, 5)))", ["(1048576, 1048576)", "(3, 5)"]),
    ("(np.ones(3), view((7, 2**36)))", ["(3,)", "(7, 68719476736)"]),
])
def test_huge_shapes_that_do_not_broadcast(args, shapes):
    """Shapes are checked before anything of the broadcast size is allocated: a ShapeError
    naming the shapes, not a MemoryError from copying a broadcast view."""
    result = run_capped(args)
    assert "ShapeError" in result.get("error", []), result
    assert all(s in result["message"] for s in shapes), result


@pytest.mark.parametrize("args", ["(np.ones((2**16, 1)), np.ones((1, 2**16)))",
                                  "(np.ones((2**17, 1)), np.ones((1, 2**17)))"])
def test_broadcast_result_too_large_for_memory(args):
    """Arguments that broadcast to more than memory holds: a MemoryError or ValueError, not a
    Rust panic (pyo3's PanicException) and not a crash."""
    result = run_capped(args)
    error = result.get("error", [])
    assert "MemoryError" in error or "ValueError" in error, result
    assert "PanicException" not in error, result


def test_large_zero_size_shape():
    """An empty batch with one enormous dimension costs nothing."""
    per_sample, total, grad = FN(np.zeros((2**40, 0)), np.zeros((1, 0)))
    assert per_sample.shape == grad.shape == (2**40, 0) and total == 0.0


# -- pickled bytes ---------------------------------------------------------------------------


class Load:
    """Pickles as chainrule's loader called on ``data``: a pickle with that payload."""

    def __init__(self, data: bytes):
        self.data = data

    def __reduce__(self):
        return (_load, (self.data,))


def _payload(e: cr.Expr) -> bytes:
    return _core.encode([e])


@pytest.mark.parametrize("version", [0, 2, 3, 127, 255])
def test_pickle_from_another_format_version(version):
    """The byte format starts b"CRG" and a version byte (1 today); other versions are refused
    by name, with the advice to upgrade."""
    data = bytearray(_payload(cr.sin(x) * y))
    assert data[:4] == b"CRG\x01"
    data[3] = version
    with pytest.raises(cr.ChainruleError, match=f"version {version}.*upgrade"):
        pickle.loads(pickle.dumps(Load(bytes(data))))


CORRUPT = {
    "empty": b"",
    "bad magic": b"CRX\x01\x01\x01\x01x\x01\x00",
    "truncated": None,
    "unknown node tag": b"CRG\x01\x01\x07\x01\x00",
    "unknown op code": b"CRG\x01\x02\x01\x01x\x02\xff\x00\x01\x01",
    "operand index ahead": b"CRG\x01\x02\x01\x01x\x02\x06\x05\x01\x01",
    "bad variable name": b"CRG\x01\x01\x01\x03sin\x01\x00",
    "non-UTF-8 name": b"CRG\x01\x01\x01\x02\xff\xfe\x01\x00",
    "huge count": b"CRG\x01\xff\xff\xff\xff\xff\xff\xff\xff\x7f",
    "overlong varint": b"CRG\x01" + b"\x80" * 12 + b"\x00",
    "trailing bytes": None,
}


@pytest.mark.parametrize("name", list(CORRUPT))
def test_corrupt_pickle_raises_a_clear_error(name):
    good = _payload(cr.sin(x) * y)
    data = {"truncated": good[:-2], "trailing bytes": good + b"\x00"}.get(name, CORRUPT[name])
    with pytest.raises(cr.ChainruleError, match="cannot load chainrule data"):
        pickle.loads(pickle.dumps(Load(data)))


# -- every argument kind on the fast path -------------------------------------------------------
# The compiled function's call reads floats, ints, NumPy scalars and arrays of every real dtype in
# Rust; anything else goes through arguments.py. Each kind must give, bit for bit, what the same
# values give as a C-contiguous float64 array, and what the Python path (Function._call, which
# converts in Python first) gives.

KINDS = {
    "float": 0.3,
    "negative zero": -0.0,
    "int": 7,
    "int rounded to float64": 2**53 + 1,
    "int at the int64 limit": -(2**63),
    "bool": True,
    "np.float64": np.float64(-1.25),
    "np.float32": np.float32(0.1),
    "np.float16": np.float16(0.1),
    "np.longdouble": np.longdouble(1) / 3,
    "np.int8": np.int8(-5),
    "np.int64": np.int64(2**60 + 1),
    "np.uint64 max": np.uint64(2**64 - 1),
    "np.bool_": np.bool_(True),
    "0-d float64": np.array(0.7),
    "0-d float32": np.array(0.7, dtype=np.float32),
    "0-d int": np.array(3),
    "1 element": np.array([0.7]),
    "1 element int32": np.array([3], dtype=np.int32),
    "small": np.linspace(-1.0, 2.0, 5),
    "one chunk and a bit": np.linspace(-1.0, 2.0, 1500),
    "many chunks": np.linspace(-1.0, 2.0, 40_000),
    "2-d": BASE,
    "Fortran order": np.asfortranarray(BASE),
    "every other element": np.linspace(-1.0, 2.0, 10)[::2],
    "reversed": np.linspace(-1.0, 2.0, 7)[::-1],
    "big-endian": np.linspace(-1.0, 2.0, 6).astype(">f8"),
    "misaligned": misaligned(np.linspace(-1.0, 2.0, 6)),
    "read-only": read_only(np.linspace(-1.0, 2.0, 6)),
    "float32 array": np.linspace(-1.0, 2.0, 6, dtype=np.float32),
    "uint8 array": np.arange(6, dtype=np.uint8),
    "bool array": np.array([True, False, True]),
    "float16 array": np.linspace(-1.0, 2.0, 6).astype(np.float16),
}


def same_results(got, want, what):
    assert len(got) == len(want), what
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        assert type(g) is type(w), f"{what}, output {k}: {type(g)} against {type(w)}"
        assert np.shape(g) == np.shape(w), f"{what}, output {k}"
        assert np.asarray(g).tobytes() == np.asarray(w).tobytes(), f"{what}, {k}: {g!r} != {w!r}"


@pytest.mark.parametrize("other", [2.5, np.linspace(0.5, 1.5, 5)[:1], np.float64(-0.5)],
                         ids=["float", "1 element", "np.float64"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_every_argument_kind_equals_the_contiguous_array_bit_for_bit(kind, other):
    value = KINDS[kind]
    contiguous = np.array(value, dtype=np.float64, order="C")  # NumPy's own cast
    if np.ndim(value) == 0 and not isinstance(value, np.ndarray):
        contiguous = contiguous.reshape(())
    want = FN(contiguous, other)
    same_results(FN(value, other), want, f"x = {kind}")
    same_results(FN(other, value), FN(other, contiguous), f"y = {kind}")
    same_results(FN(x=value, y=other), want, f"x = {kind} by keyword")
    same_results(FN(y=other, x=value), want, f"x = {kind} by keyword, reversed")
    same_results(FN._call(value, other), want, f"x = {kind} through Python's path")


def test_scalar_kinds_give_numpy_float64_and_arrays_keep_their_shape():
    f = cr.compile([x * y, cr.sum(x)], inputs=[x, y])
    for value in (1.5, 2, True, np.float32(1.5), np.int16(2), np.array(1.5)):
        got = f(value, 2.0)
        assert all(type(g) is np.float64 for g in got), value
    got = f(np.array([1.5]), 2.0)
    assert got[0].shape == (1,) and type(got[1]) is np.float64


# Calls the fast path does not answer go to Python's path, which raises the documented error:
# the message is the one the Python path gives on its own.
REFUSED = [
    ((10**400, 1.0), {}, ValueError),
    ((np.complex128(1 + 2j), 1.0), {}, TypeError),
    ((np.array([1 + 2j]), 1.0), {}, TypeError),
    ((np.array(["a"]), 1.0), {}, TypeError),
    ((np.datetime64("2020-01-01"), 1.0), {}, TypeError),
    ((np.array([1.0, 2.0]), np.zeros(3)), {}, cr.ShapeError),
    ((1.0,), {}, TypeError),
    ((1.0, 2.0, 3.0), {}, TypeError),
    ((1.0,), {"x": 2.0}, TypeError),
    ((), {"x": 1.0, "z": 2.0}, TypeError),
    ((), {"x": 1.0}, TypeError),
    ((x, 1.0), {}, TypeError),
    ((np.ma.masked_array([1.0, 2.0], mask=[0, 1]), 1.0), {}, TypeError),
    (("1.0", 1.0), {}, TypeError),
]


@pytest.mark.parametrize("args, kwargs, error", REFUSED, ids=lambda v: repr(v)[:40])
def test_refused_arguments_raise_the_python_paths_error(args, kwargs, error):
    with pytest.raises(error) as fast:
        FN(*args, **kwargs)
    with pytest.raises(error) as python:
        FN._call(*args, **kwargs)
    assert str(fast.value) == str(python.value)


def test_an_input_named_out_takes_the_keyword():
    out = cr.var("out")
    f = cr.compile(out * 2, inputs=[out])
    assert f(out=3.0) == 6.0
    np.testing.assert_array_equal(f(out=np.array([1.0, 2.0])), [2.0, 4.0])


def test_every_kind_is_answered_without_pythons_path(monkeypatch):
    """The kinds above never reach Function._call (the Python conversion path), by position,
    keyword or with out=: the fast path answers them all."""
    def refuse(*args, **kwargs):
        raise AssertionError("the call went to Python's path")

    want = {kind: FN(value, 2.0) for kind, value in KINDS.items()}
    monkeypatch.setattr(cr.Function, "_call", refuse)
    for kind, value in KINDS.items():
        same_results(FN(value, 2.0), want[kind], kind)
        same_results(FN(y=2.0, x=value), want[kind], kind)
    out = (np.empty(5), None, np.empty(5))
    got = FN(KINDS["small"], 2.0, out=out)
    assert got[0] is out[0] and got[2] is out[2]


@pytest.mark.parametrize("shape_x, shape_y",
                         [((1,), ()), ((1, 1), (1,)), ((), (1, 1, 1)), ((1,), (1,))])
def test_one_element_arguments_of_any_shape_match_pythons_path(shape_x, shape_y):
    """A call whose every argument holds one value is answered at that point and laid out in
    the output shapes; Python's path prepares the call and runs its tape."""
    f = cr.compile([cr.sin(x) * y, cr.sum(x * y), cr.grad(cr.sum(cr.exp(x) * y), x), 2.5 + 0 * x,
                    cr.mean(x), cr.grad(cr.mean(x * y), y)], inputs=[x, y])
    a, b = np.full(shape_x, 0.3), np.full(shape_y, -1.7)
    same_results(f(a, b), f._call(a, b), f"{shape_x} and {shape_y}")
