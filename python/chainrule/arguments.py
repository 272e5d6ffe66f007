"""Arguments of compiled functions as the core takes them: checked, and converted to Python
floats or aligned float64 arrays (of any strides: the core reads views in place). Used by
in-memory calls and by the Dask path alike.
"""

from __future__ import annotations

import numbers

import numpy as np

from . import _core
from .expr import Expr, short_int

__all__ = ["check_dtype", "check_shapes", "convert"]

_FLOAT64 = np.dtype(np.float64)


def _known_shape(value: object) -> tuple | None:
    """The value's shape if it is a tuple of known sizes (a lazy array's may not be yet)."""
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple) and all(isinstance(n, int) for n in shape):
        return shape
    return None


def check_shapes(names: tuple, values: list) -> None:
    """Shapes are checked before any argument is copied, so a huge broadcast view that does
    not fit gives a ShapeError rather than an attempt to allocate its full size.

    >>> check_shapes(("x", "y"), [np.zeros(3), np.zeros((2, 1))])
    >>> check_shapes(("x", "y"), [np.zeros(3), np.zeros(2)])
    Traceback (most recent call last):
    ...
    chainrule.ShapeError: argument shapes do not broadcast together (x: (3,), y: (2,))
    """
    shapes = [_known_shape(v) for v in values]
    if all(s is None or s == () for s in shapes):
        return
    if broadcast_shapes(*[s for s in shapes if s is not None]) is None:
        described = ", ".join(
            f"{n}: {s}" for n, s in zip(names, shapes, strict=True) if s is not None)
        raise _core.ShapeError(f"argument shapes do not broadcast together ({described})")


def broadcast_shapes(*shapes: tuple[int, ...]) -> tuple[int, ...] | None:
    """NumPy's broadcast of ``shapes``, or None where they do not broadcast. Written out
    because ``np.broadcast_shapes`` stops at 32 dimensions (RuntimeError) and arrays have up
    to 64.

    >>> broadcast_shapes((3, 1), (4,)), broadcast_shapes((3,), (4,))
    ((3, 4), None)
    """
    ndim = max(map(len, shapes), default=0)
    out = [1] * ndim
    for shape in shapes:
        for i, n in enumerate(shape, ndim - len(shape)):
            if n != 1:
                if out[i] not in (1, n):
                    return None
                out[i] = n
    return tuple(out)


def convert(name: str, value: object):
    """One argument as the core takes it: a Python float, or an aligned float64 array (a view
    of any strides stays a view).

    >>> convert("x", 2)
    2.0
    >>> convert("x", np.arange(3, dtype=np.int32))
    array([0., 1., 2.])
    """
    if type(value) is float:
        return value
    if isinstance(value, bool | numbers.Integral):
        try:
            return float(value)
        except OverflowError:
            shown = short_int(int(value))
            raise ValueError(
                f"argument {name!r}: integer {shown} is too large for float64") from None
    if isinstance(value, numbers.Real) and not isinstance(value, np.ndarray):
        return float(value)
    if isinstance(value, Expr):
        raise TypeError(f"argument {name!r} is an expression; pass numbers or arrays to evaluate")
    refuse_masked(name, value)
    try:
        array = np.asarray(value)
    except Exception as exc:  # noqa: BLE001 - report any conversion failure the same way
        raise TypeError(f"argument {name!r} cannot be read as a numeric array: {exc}") from None
    check_dtype(name, array.dtype)
    # A float64 view of any strides (a column, a reversed or broadcast view) is read in place,
    # chunk by chunk: copying a broadcast view costs its full size.
    if array.dtype == _FLOAT64 and array.flags.aligned and array.dtype.isnative:
        return array
    # The one copy left is the float64 reading of another dtype (or of a misaligned buffer,
    # which ascontiguousarray would keep as it is; require() copies it).
    return np.require(array, np.float64, ["C", "A"])


def refuse_masked(name: str, value: object) -> None:
    """Refuses a masked array: np.asarray would drop the mask and use the values under it as
    if they were data.

    >>> refuse_masked("x", np.ma.masked_array([1.0, 2.0], mask=[0, 1]))
    Traceback (most recent call last):
    ...
    TypeError: argument 'x' is a masked array, and chainrule does not apply masks; pass ...
    """
    if isinstance(value, np.ma.MaskedArray):
        raise TypeError(f"argument {name!r} is a masked array, and chainrule does not apply masks; "
                        f"pass {name}.filled(value) to choose what masked entries become, or "
                        f"{name}.data to use the values under the mask")


def check_dtype(name: str, dtype: np.dtype) -> None:
    """Refuses an argument's dtype unless it reads as float64: bool, integer or float.

    >>> check_dtype("x", np.dtype(np.int8))
    >>> check_dtype("x", np.dtype(np.complex128))
    Traceback (most recent call last):
    ...
    TypeError: argument 'x' is complex (complex128); chainrule evaluates real float64 values
    """
    kind = dtype.kind
    if kind == "c":
        raise TypeError(f"argument {name!r} is complex ({dtype}); chainrule evaluates real "
                        f"float64 values")
    if kind not in "biuf":
        raise TypeError(f"argument {name!r} has dtype {dtype}; pass a numeric (bool, int or "
                        f"float) array")
