//! A compiled function's arguments and `out=` arrays as the evaluator takes them. The kinds a
//! call usually passes are read here: Python floats, ints and bools, NumPy scalars of any real
//! dtype, and NumPy arrays (`numpy.ndarray` itself) of real dtypes. Anything else (lists, array
//! subclasses such as masked arrays, Dask arrays, expressions, complex or object values) is
//! left to the Python path in `arguments.py`, which converts what it can and raises the
//! documented errors; so is any call this path would refuse (a missing or unknown argument,
//! shapes that do not broadcast, an integer too large for float64), so the messages are the
//! ones `tests/test_errors.py` states, written once.

use std::ffi::c_int;

use numpy::npyffi::{self, NpyTypes, PY_ARRAY_API};
use numpy::{PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyList, PyTuple};

use chainrule_core::InputView;

use crate::errors::{guarded, ShapeError};
use crate::function::view_of;
use crate::function::FLOAT64;

/// One argument as read, before any copy: its shape is known, its data not yet converted.
pub(crate) enum Value<'py> {
    Scalar(f64),
    Array(Bound<'py, PyUntypedArray>),
}

impl Value<'_> {
    pub(crate) fn shape(&self) -> Vec<usize> {
        match self {
            Value::Scalar(_) => Vec::new(),
            Value::Array(a) => a.shape().to_vec(),
        }
    }

    /// The one value of a scalar, or of an aligned float64 array of one element.
    pub(crate) fn single(&self) -> Option<f64> {
        match self {
            Value::Scalar(v) => Some(*v),
            Value::Array(a) if a.len() == 1 && a.is_aligned() => {
                // SAFETY: an aligned float64 array of one element holds one native f64 at its
                // data pointer, whatever its shape and strides.
                a.cast::<PyArrayDyn<f64>>().ok().map(|f| unsafe { *f.data() })
            }
            Value::Array(_) => None,
        }
    }
}

/// Whether `obj`'s type is the NumPy type `ty` itself.
fn is_type(obj: &Bound<'_, PyAny>, ty: NpyTypes) -> bool {
    // SAFETY: reads a type pointer from NumPy's API table (imported on first use).
    obj.get_type().as_type_ptr() == unsafe { npyffi::get_type_object(obj.py(), ty) }
}

/// Whether a dtype kind reads as float64: bool, signed, unsigned or float.
fn is_real(kind: u8) -> bool {
    matches!(kind, b'b' | b'i' | b'u' | b'f')
}

/// Reads one argument if it is a kind this path knows; None sends the call to Python's path.
pub(crate) fn read<'py>(obj: &Bound<'py, PyAny>) -> Option<Value<'py>> {
    if let Ok(f) = obj.cast_exact::<PyFloat>() {
        return Some(Value::Scalar(f.value()));
    }
    let py = obj.py();
    if is_type(obj, NpyTypes::PyArray_Type) {
        // SAFETY: the type is exactly numpy.ndarray.
        let array = unsafe { obj.cast_unchecked::<PyUntypedArray>() };
        return is_real(array.dtype().kind()).then(|| Value::Array(array.clone()));
    }
    if is_type(obj, NpyTypes::PyDoubleArrType_Type) {
        // numpy.float64 subclasses float and holds its value as one.
        return obj.cast::<PyFloat>().ok().map(|f| Value::Scalar(f.value()));
    }
    if let Ok(b) = obj.cast_exact::<PyBool>() {
        return Some(Value::Scalar(if b.is_true() { 1.0 } else { 0.0 }));
    }
    if let Ok(i) = obj.cast_exact::<PyInt>() {
        // Rust's `as` rounds to nearest, ties to even, as Python's float(int) does; larger
        // integers take Python's path, which says whether they fit.
        return i.extract::<i64>().ok().map(|v| Value::Scalar(v as f64));
    }
    // SAFETY: as in `is_type`; PyObject_TypeCheck only reads the object's type.
    let generic = unsafe { npyffi::get_type_object(py, NpyTypes::PyGenericArrType_Type) };
    if unsafe { pyo3::ffi::PyObject_TypeCheck(obj.as_ptr(), generic) } == 0 {
        return None;
    }
    numpy_scalar(obj)
}

/// A NumPy scalar of a real dtype, cast to float64 by NumPy itself (as float() does).
fn numpy_scalar(obj: &Bound<'_, PyAny>) -> Option<Value<'static>> {
    let py = obj.py();
    let f64_descr = FLOAT64.get_or_init(py, || numpy::dtype::<f64>(py).unbind()).bind(py);
    // SAFETY: `obj` is a NumPy scalar; DescrFromScalar returns a new reference (or NULL), and
    // CastScalarToCtype writes one value of `f64_descr`'s type (8 bytes) to `out`.
    unsafe {
        let descr = PY_ARRAY_API.PyArray_DescrFromScalar(py, obj.as_ptr());
        let descr = Bound::from_owned_ptr_or_opt(py, descr.cast::<pyo3::ffi::PyObject>())?;
        let kind = descr.cast::<numpy::PyArrayDescr>().ok()?.kind();
        if !is_real(kind) {
            return None;
        }
        let mut out = 0.0f64;
        let status = PY_ARRAY_API.PyArray_CastScalarToCtype(py, obj.as_ptr(), (&raw mut out).cast(), f64_descr.as_dtype_ptr());
        if status != 0 {
            PyErr::take(py);
            return None;
        }
        Some(Value::Scalar(out))
    }
}

/// An argument's data as the evaluator reads it: one value, or an aligned float64 array of
/// any strides, read in place (held, so the data outlives the call).
pub(crate) enum Data<'py> {
    Scalar([f64; 1]),
    Array(Bound<'py, PyArrayDyn<f64>>),
}

impl Data<'_> {
    /// The data as the core's view: an array's own strides, so columns, reversed, every-other
    /// and broadcast (zero-stride) arrays are read where they are.
    pub(crate) fn view(&self) -> PyResult<InputView<'_>> {
        match self {
            Data::Scalar(v) => guarded(|| InputView::contiguous(v, &[])),
            // Python code cannot run while the call reads it except other threads' (the GIL
            // is released), as with NumPy's own functions; no `out=` array overlaps it.
            Data::Array(a) => view_of(a),
        }
    }
}

/// `value`'s data as aligned float64: the array itself where it is one (of any strides), else
/// a copy cast by NumPy (as `np.require(a, np.float64, "CA")` makes, bit for bit). An array
/// whose memory overlaps one of `outs` is copied, so no chunk's output overwrites input that
/// another chunk has yet to read (NumPy's ufuncs copy such inputs too).
pub(crate) fn data<'py>(value: Value<'py>, outs: &[Option<Bound<'py, PyArrayDyn<f64>>>]) -> PyResult<Data<'py>> {
    let array = match value {
        Value::Scalar(v) => return Ok(Data::Scalar([v])),
        Value::Array(a) => a,
    };
    let ready = array.is_aligned();
    let array = match array.cast::<PyArrayDyn<f64>>() {
        Ok(a) if ready => a.clone(),
        _ => cast_copy(&array, npyffi::NPY_ARRAY_C_CONTIGUOUS | npyffi::NPY_ARRAY_ALIGNED | npyffi::NPY_ARRAY_FORCECAST)?,
    };
    let memory = extent(array.as_untyped());
    if !outs.iter().flatten().any(|o| overlap(memory, extent(o.as_untyped()))) {
        return Ok(Data::Array(array));
    }
    let py = array.py();
    // SAFETY: NewCopy makes a fresh C-ordered array of the same dtype (float64), or NULL.
    let copy = unsafe { PY_ARRAY_API.PyArray_NewCopy(py, array.as_array_ptr(), npyffi::NPY_ORDER::NPY_CORDER) };
    let copy = unsafe { Bound::from_owned_ptr_or_err(py, copy)? };
    Ok(Data::Array(copy.cast_into::<PyArrayDyn<f64>>().map_err(PyErr::from)?))
}

/// The bytes an array's elements span, from its lowest to past its highest element
/// (empty for an array of no elements), whatever its strides.
fn extent(array: &Bound<'_, PyUntypedArray>) -> (usize, usize) {
    let shape = array.shape();
    if shape.contains(&0) {
        return (0, 0);
    }
    // SAFETY: reads the data pointer of a live array.
    let data = unsafe { (*npyffi::objects::_PyArray_GET_ITEM_DATA(array.as_array_ptr())).data } as isize;
    let strides = array.strides();
    let (mut lo, mut hi) = (data, data);
    for (&n, &s) in shape.iter().zip(strides) {
        let reach = s * (n as isize - 1);
        if reach < 0 {
            lo += reach;
        } else {
            hi += reach;
        }
    }
    (lo as usize, hi as usize + array.dtype().itemsize())
}

fn overlap(a: (usize, usize), b: (usize, usize)) -> bool {
    a.0 < a.1 && b.0 < b.1 && a.0 < b.1 && b.0 < a.1
}

/// `array` converted to float64 by PyArray_FromAny with `flags`.
fn cast_copy<'py>(array: &Bound<'py, PyUntypedArray>, flags: c_int) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
    let py = array.py();
    let descr = FLOAT64.get_or_init(py, || numpy::dtype::<f64>(py).unbind()).bind(py);
    // SAFETY: FromAny steals a reference to the descriptor, so it is given a new one; it
    // returns a new reference to a float64 array, or NULL with an exception set.
    unsafe {
        pyo3::ffi::Py_INCREF(descr.as_ptr());
        let obj = PY_ARRAY_API.PyArray_FromAny(py, array.as_ptr(), descr.as_dtype_ptr(), 0, 0, flags, std::ptr::null_mut());
        Bound::from_owned_ptr_or_err(py, obj)?.cast_into::<PyArrayDyn<f64>>().map_err(PyErr::from)
    }
}

/// The `out=` arrays, one entry per output (None: allocate that one), each checked against
/// the output's shape and against the other entries.
pub(crate) fn outs<'py>(
    out: &Bound<'py, PyAny>,
    shapes: &[Vec<usize>],
    single: bool,
) -> PyResult<Vec<Option<Bound<'py, PyArrayDyn<f64>>>>> {
    let entries: Vec<Bound<'py, PyAny>> = if let Ok(t) = out.cast::<PyTuple>() {
        t.iter().collect()
    } else if let Ok(l) = out.cast::<PyList>() {
        l.iter().collect()
    } else if single {
        vec![out.clone()]
    } else {
        return Err(PyTypeError::new_err(format!(
            "out must be a tuple of {} float64 arrays (or None entries), one per output, not {}",
            shapes.len(),
            out.get_type().name()?
        )));
    };
    if entries.len() != shapes.len() {
        return Err(PyValueError::new_err(format!("out has {} entries; the function has {} outputs", entries.len(), shapes.len())));
    }
    let name = |i: usize| if single { "out".to_string() } else { format!("out[{i}]") };
    let mut arrays: Vec<Option<Bound<'py, PyArrayDyn<f64>>>> = Vec::with_capacity(entries.len());
    for (i, (entry, shape)) in entries.iter().zip(shapes).enumerate() {
        if entry.is_none() {
            arrays.push(None);
            continue;
        }
        let array = out_array(entry, &name(i), shape)?;
        let memory = extent(array.as_untyped());
        if let Some(j) = arrays.iter().position(|a| a.as_ref().is_some_and(|a| overlap(memory, extent(a.as_untyped())))) {
            return Err(PyValueError::new_err(format!("{} and {} overlap; each output needs its own array", name(j), name(i))));
        }
        arrays.push(Some(array));
    }
    Ok(arrays)
}

/// One `out=` entry, checked: a float64 array of the output's shape, C-contiguous, aligned
/// and writeable.
fn out_array<'py>(entry: &Bound<'py, PyAny>, name: &str, shape: &[usize]) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
    let array = entry.cast::<PyUntypedArray>().map_err(|_| {
        let ty = entry.get_type().name().map_or_else(|_| "?".into(), |n| n.to_string());
        PyTypeError::new_err(format!("{name} must be a float64 NumPy array or None, not {ty}"))
    })?;
    let dtype = array.dtype();
    if !dtype.is_equiv_to(&numpy::dtype::<f64>(entry.py())) {
        return Err(PyTypeError::new_err(format!("{name} has dtype {dtype}; out arrays must be float64 (np.empty(shape))")));
    }
    if array.shape() != shape {
        return Err(ShapeError::new_err(format!(
            "{name} has shape {}; the output has shape {}",
            shape_text(array.shape()),
            shape_text(shape)
        )));
    }
    if !array.is_c_contiguous() || !array.is_aligned() {
        return Err(PyValueError::new_err(format!("{name} must be C-contiguous and aligned (as np.empty(shape) makes it)")));
    }
    // SAFETY: reads the flags of a live array.
    if unsafe { (*npyffi::objects::_PyArray_GET_ITEM_DATA(array.as_array_ptr())).flags } & npyffi::NPY_ARRAY_WRITEABLE == 0 {
        return Err(PyValueError::new_err(format!("{name} is read-only")));
    }
    array.cast::<PyArrayDyn<f64>>().cloned().map_err(PyErr::from)
}

/// A shape as Python prints a tuple: `(3,)`, `(2, 4)`, `()`.
pub(crate) fn shape_text(shape: &[usize]) -> String {
    match shape {
        [n] => format!("({n},)"),
        _ => format!("({})", shape.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")),
    }
}
