//! The compiled function's base class (`chainrule.Function` subclasses it in Python): compiling,
//! the one-float-per-input latency path, evaluating over arrays with the GIL released, and
//! Ctrl-C between chunks.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use chainrule_core::{Call, Expr, InputView};
use numpy::npyffi::PY_ARRAY_API;
use numpy::{PyArrayDescr, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyMemoryError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyFloat, PyTuple};

use crate::errors::guarded;
use crate::expr::{as_expr, variables_of, PyExpr};

pub(crate) static FLOAT64: PyOnceLock<Py<PyArrayDescr>> = PyOnceLock::new();

/// `numpy.float64(value)` through NumPy's C API rather than by calling the type (~110 ns a
/// value, most of a one-output scalar call). Measured, not interleaved: a one-output call on
/// two floats 0.44 -> 0.19 µs, W4 (three outputs) 1.2 -> 0.68 µs in the core method.
pub(crate) fn float64<'py>(py: Python<'py>, value: f64) -> PyResult<Bound<'py, PyAny>> {
    let descr = FLOAT64.get_or_init(py, || numpy::dtype::<f64>(py).unbind()).bind(py);
    let mut value = value;
    // SAFETY: PyArray_Scalar copies the 8 bytes at `data` into a new scalar of `descr`'s type
    // (it borrows `descr` and needs no base for a fixed-size type); NULL is an error.
    unsafe {
        let obj = PY_ARRAY_API.PyArray_Scalar(py, (&raw mut value).cast(), descr.as_dtype_ptr(), std::ptr::null_mut());
        Bound::from_owned_ptr_or_err(py, obj)
    }
}

/// A compiled function: the base class of `chainrule.Function`, which adds argument binding,
/// Dask and pickling in Python. Calls with exactly one Python float per input (the latency
/// path) are answered here without entering Python code; every other call goes to the
/// subclass's `_call`.
#[pyclass(frozen, subclass, module = "chainrule._core", name = "Function")]
pub(crate) struct PyFunction {
    core: chainrule_core::Function,
    /// Whether the function has one output (a result, not a tuple of them).
    single: bool,
    outputs: Py<PyTuple>,
    inputs: Py<PyTuple>,
    /// The inputs' names, made when first needed (keywords, messages): W5's 10,000 strings
    /// cost ~0.8 ms, and calls with one float per input never need them.
    names: PyOnceLock<Py<PyTuple>>,
}

/// One argument, as the core reads it.
pub(crate) enum Argument<'py> {
    Scalar(f64),
    Array(PyReadonlyArrayDyn<'py, f64>),
}

impl Argument<'_> {
    fn shape(&self) -> Vec<usize> {
        match self {
            Argument::Scalar(_) => Vec::new(),
            Argument::Array(a) => a.shape().to_vec(),
        }
    }
}

#[pymethods]
impl PyFunction {
    /// Compiles `outputs` (expressions or numbers) as functions of `inputs` (variables).
    /// Arguments are read here, not in Python: a Python step per item was ~2.5 ms of W5's
    /// 10,000 outputs and inputs.
    #[new]
    fn new(py: Python<'_>, outputs: &Bound<'_, PyAny>, inputs: &Bound<'_, PyAny>, single: bool) -> PyResult<Self> {
        let inputs: Vec<Bound<'_, PyAny>> = inputs.try_iter()?.collect::<PyResult<_>>()?;
        let input_exprs = variables_of(&inputs, "inputs must be variables")?;
        let outputs: Vec<Bound<'_, PyExpr>> = outputs.try_iter()?.map(|o| as_expr(&o?)).collect::<PyResult<_>>()?;
        let output_exprs: Vec<Expr> = outputs.iter().map(|o| o.get().0.clone()).collect();
        let core = py.detach(|| guarded(|| chainrule_core::Function::new(&output_exprs, &input_exprs)))?;
        Ok(PyFunction {
            core,
            single,
            outputs: PyTuple::new(py, outputs)?.unbind(),
            inputs: PyTuple::new(py, inputs)?.unbind(),
            names: PyOnceLock::new(),
        })
    }

    /// The output expressions.
    #[getter]
    fn _outputs(&self, py: Python<'_>) -> Py<PyTuple> {
        self.outputs.clone_ref(py)
    }

    /// The input variables, in call order.
    #[getter]
    fn _inputs(&self, py: Python<'_>) -> Py<PyTuple> {
        self.inputs.clone_ref(py)
    }

    /// The input variables' names, in call order.
    #[getter]
    fn _names(&self, py: Python<'_>) -> PyResult<Py<PyTuple>> {
        let names = self.names.get_or_try_init(py, || {
            let names = self.core.inputs().iter().map(|v| v.as_var().expect("inputs are variables"));
            PyTuple::new(py, names).map(Bound::unbind)
        })?;
        Ok(names.clone_ref(py))
    }

    /// Whether the function has one output (a result, not a tuple of them).
    #[getter]
    fn _single(&self) -> bool {
        self.single
    }

    /// Measured (timeit medians, W4: three outputs at one point): a Python `__call__` that
    /// forwards here costs ~0.25 µs of a ~0.93 µs call; answering in this slot removes it.
    #[pyo3(signature = (*args, **kwargs))]
    fn __call__<'py>(
        slf: &Bound<'py, Self>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if kwargs.is_none_or(|k| k.is_empty()) {
            if let Some(result) = slf.get().call_scalars(slf.py(), args)? {
                return Ok(result);
            }
        }
        slf.call_method(intern!(slf.py(), "_call"), args, kwargs)
    }

    /// Evaluates on `args` (Python floats, or aligned float64 arrays of any strides, read in place). Returns a list with,
    /// per output, an array, or a `numpy.float64` where the output is a single reduced value.
    #[pyo3(name = "_evaluate")]
    fn evaluate<'py>(&self, py: Python<'py>, args: Vec<Bound<'py, PyAny>>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let mut converted = Vec::with_capacity(args.len());
        for a in &args {
            converted.push(match a.cast::<PyFloat>() {
                Ok(f) => Argument::Scalar(f.value()),
                Err(_) => Argument::Array(
                    a.cast::<PyArrayDyn<f64>>()
                        .map_err(|_| PyTypeError::new_err("arguments must be floats or float64 arrays"))?
                        .try_readonly()
                        .map_err(|e| PyValueError::new_err(e.to_string()))?,
                ),
            });
        }
        let shapes: Vec<Vec<usize>> = converted.iter().map(Argument::shape).collect();
        let call = guarded(|| self.core.prepare(&shapes))?;
        let scalars: Vec<[f64; 1]> = converted.iter().map(|a| [if let Argument::Scalar(v) = a { *v } else { 0.0 }]).collect();
        let mut data: Vec<InputView> = Vec::with_capacity(converted.len());
        for (a, s) in converted.iter().zip(&scalars) {
            data.push(match a {
                Argument::Scalar(_) => guarded(|| InputView::contiguous(s, &[]))?,
                Argument::Array(arr) => view_of(arr)?,
            });
        }
        let mut singles: Vec<[f64; 1]> = vec![[0.0]; call.output_shapes.len()];
        let mut arrays: Vec<Option<Bound<'py, PyArrayDyn<f64>>>> = Vec::new();
        for shape in &call.output_shapes {
            let size = shape.iter().try_fold(8usize, |acc, n| acc.checked_mul(*n));
            if size.is_none_or(|bytes| bytes > isize::MAX as usize) {
                return Err(PyMemoryError::new_err(format!("an output of shape {shape:?} is too large to allocate")));
            }
            if shape.is_empty() {
                arrays.push(None);
                continue;
            }
            // SAFETY: the evaluator writes every element of every output before it is read. A
            // failed allocation panics inside numpy's wrapper; it becomes a MemoryError here.
            let array = catch_unwind(AssertUnwindSafe(|| unsafe { PyArrayDyn::<f64>::new(py, shape.as_slice(), false) }))
                .map_err(|_| PyMemoryError::new_err(format!("cannot allocate an output of shape {shape:?}")))?;
            arrays.push(Some(array));
        }
        let mut views: Vec<&mut [f64]> = Vec::with_capacity(arrays.len());
        let mut single_iter = singles.iter_mut();
        for a in &arrays {
            let single = single_iter.next().expect("one per output");
            // SAFETY: freshly created arrays, not shared with Python yet.
            views.push(match a {
                Some(a) => unsafe { a.as_slice_mut() }.map_err(|e| PyRuntimeError::new_err(e.to_string()))?,
                None => single,
            });
        }
        run_interruptibly(py, &self.core, &call, &data, &mut views)?;
        drop(views);
        let mut out = Vec::with_capacity(arrays.len());
        for (a, s) in arrays.into_iter().zip(&singles) {
            out.push(match a {
                Some(a) => a.into_any(),
                None => float64(py, s[0])?,
            });
        }
        Ok(out)
    }

    /// Whether each output is a reduction.
    #[pyo3(name = "_reduced")]
    fn reduced(&self, shapes: Vec<Vec<usize>>) -> PyResult<Vec<bool>> {
        guarded(|| self.core.prepare(&shapes)).map(|c| c.output_reduced)
    }

    /// The tape a call with arguments of these shapes runs, as text.
    #[pyo3(name = "_tape")]
    fn tape(&self, shapes: Vec<Vec<usize>>) -> PyResult<String> {
        guarded(|| self.core.prepare(&shapes)).map(|c| c.tape().to_string())
    }
}

impl PyFunction {
    /// The latency path: if `args` are exactly the inputs, each a Python float, returns the
    /// results as `numpy.float64` (one, or a tuple when `single` is false); else None, and
    /// the caller takes the general path.
    fn call_scalars<'py>(&self, py: Python<'py>, args: &Bound<'py, PyTuple>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let single = self.single;
        if args.len() != self.core.inputs().len() {
            return Ok(None);
        }
        let mut values = Vec::with_capacity(args.len());
        for a in args.iter() {
            match a.cast_exact::<PyFloat>() {
                Ok(f) => values.push(f.value()),
                Err(_) => return Ok(None),
            }
        }
        let mut out = Vec::new();
        guarded(|| self.core.call_scalars(&values, &mut out))?;
        let results = out.into_iter().map(|v| float64(py, v)).collect::<PyResult<Vec<_>>>()?;
        Ok(Some(if single { results.into_iter().next().expect("one output") } else { PyTuple::new(py, results)?.into_any() }))
    }
}

/// An array argument read where it is: NumPy's byte strides as element strides, over the span
/// of memory its elements occupy. A column of a C-ordered matrix, a reversed or every-other
/// view, a transpose or a `np.broadcast_to` view is never copied (a copy was 4.7x W11's time,
/// and 22 GiB for a 3e9-sample broadcast view).
fn view_of<'a>(arr: &'a PyReadonlyArrayDyn<'_, f64>) -> PyResult<InputView<'a>> {
    let shape = arr.shape();
    let ptr = arr.data().cast_const();
    let strides = element_strides(ptr, arr.strides())
        .ok_or_else(|| PyTypeError::new_err("array arguments must be aligned float64 (strides in whole elements)"))?;
    if shape.contains(&0) {
        return guarded(|| InputView::strided(&[], 0, shape, &strides));
    }
    let (low, high) = reach(shape, &strides);
    // SAFETY: NumPy places every element of a valid array at data + sum(i * stride) inside its
    // buffer, so these offsets stay in it.
    let (mut from, mut to) = unsafe { (ptr.offset(low), ptr.offset(high)) };
    // A view of a float64 array (a column, a reversed or every-other view) is read through the
    // span of the array it views: views of one matrix then share a span, and the core reads
    // adjacent columns together.
    if !arr.is_c_contiguous() {
        if let Some((b_from, b_to)) = base_span(arr) {
            if b_from <= from && to <= b_to {
                (from, to) = (b_from, b_to);
            }
        }
    }
    // SAFETY: `from..=to` spans elements of this array or of the array it views, which it
    // keeps alive for 'a (the read-only borrow); both ends are aligned float64 elements and
    // `ptr` lies between them. The view checks its own reads against the span.
    let (span, origin) = unsafe { (std::slice::from_raw_parts(from, to.offset_from(from) as usize + 1), ptr.offset_from(from) as usize) };
    guarded(|| InputView::strided(span, origin, shape, &strides))
}

/// Byte strides as float64 element strides, for an aligned pointer and strides in whole elements.
fn element_strides(ptr: *const f64, bytes: &[isize]) -> Option<Vec<isize>> {
    const ITEM: isize = std::mem::size_of::<f64>() as isize;
    (ptr.is_aligned() && bytes.iter().all(|b| b % ITEM == 0)).then(|| bytes.iter().map(|b| b / ITEM).collect())
}

/// The lowest and highest element offsets an array of `shape` (no zero size) reaches.
fn reach(shape: &[usize], strides: &[isize]) -> (isize, isize) {
    let (mut low, mut high) = (0isize, 0isize);
    for (&n, &s) in shape.iter().zip(strides) {
        let r = (n as isize - 1) * s;
        if r < 0 {
            low += r;
        } else {
            high += r;
        }
    }
    (low, high)
}

/// The first and last element of the aligned float64 array `arr` is a view of, if it is one.
fn base_span(arr: &PyReadonlyArrayDyn<'_, f64>) -> Option<(*const f64, *const f64)> {
    // SAFETY: `arr` is a live array; `base` is NULL or a reference it owns.
    let base = unsafe { (*arr.as_array_ptr()).fields.base };
    if base.is_null() {
        return None;
    }
    // SAFETY: a valid object pointer, borrowed for this function while `arr` holds it.
    let base = unsafe { Bound::from_borrowed_ptr(arr.py(), base) };
    let base = base.cast::<PyArrayDyn<f64>>().ok()?;
    let ptr = base.data().cast_const();
    let strides = element_strides(ptr, base.strides())?;
    if base.shape().contains(&0) {
        return None;
    }
    let (low, high) = reach(base.shape(), &strides);
    // SAFETY: offsets of the base array's own first and last elements.
    Some(unsafe { (ptr.offset(low), ptr.offset(high)) })
}

/// How often a running call checks Python's signal handlers.
pub(crate) const SIGNAL_CHECK: Duration = Duration::from_millis(50);

/// Runs a call with the GIL released. The calling thread evaluates chunks itself (beside the
/// pool's threads) and between its grabs of chunks, at most every 50 ms, checks Python's signal
/// handlers, so Ctrl-C cancels between chunks and raises KeyboardInterrupt promptly instead
/// of after the whole evaluation.
pub(crate) fn run_interruptibly(
    py: Python<'_>,
    f: &chainrule_core::Function,
    call: &Call,
    data: &[InputView],
    views: &mut [&mut [f64]],
) -> PyResult<()> {
    let mut signal: Option<PyErr> = None;
    let mut checked = Instant::now();
    let mut stop = || {
        if checked.elapsed() < SIGNAL_CHECK {
            return false;
        }
        checked = Instant::now();
        if let Err(e) = Python::attach(|py| py.check_signals()) {
            signal = Some(e);
            return true;
        }
        false
    };
    let result = py.detach(|| guarded(|| f.run_views(call, data, views, &mut stop)));
    match signal {
        Some(e) => Err(e),
        None => result,
    }
}
