//! The compiled function's base class (`chainrule.Function` subclasses it in Python): compiling,
//! the call (the one-float-per-input latency path, then every argument kind `arguments.rs`
//! reads, by position or keyword, with `out=`), evaluating over arrays with the GIL released
//! straight into the arrays returned, and Ctrl-C between chunks.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use chainrule_core::train::{Rows, Sgd};
use chainrule_core::{Call, Expr, InputView};
use numpy::npyffi::PY_ARRAY_API;
use numpy::{
    PyArray1, PyArrayDescr, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyReadwriteArray1,
    PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyMemoryError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyFloat, PyString, PyTuple};

use crate::arguments::{self, Data, Value};
use crate::array_call::{self, LastCall};
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

/// A compiled function: the base class of `chainrule.Function`, which adds the Python path
/// for other arguments (lists, Dask, refused calls and their messages) and pickling. Calls
/// whose arguments `arguments::read` knows are answered here without entering Python code;
/// every other call goes to the subclass's `_call`.
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
    /// Each input's position by name, for keywords; made on the first call with keywords.
    positions: OnceLock<HashMap<String, usize>>,
    /// The call `_call_arrays` last prepared, for the next of the same shapes.
    last_array_call: LastCall,
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
            positions: OnceLock::new(),
            last_array_call: LastCall::default(),
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
    /// Every argument kind the fast path reads (see `arguments.rs`) is answered here too;
    /// the rest, and every call that would raise, go to the subclass's `_call`.
    #[pyo3(signature = (*args, **kwargs))]
    fn __call__<'py>(
        slf: &Bound<'py, Self>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let this = slf.get();
        let py = slf.py();
        if kwargs.is_none_or(|k| k.is_empty()) {
            if let Some(result) = this.call_scalars(py, args)? {
                return Ok(result);
            }
        }
        if let Some(results) = this.call_fast(py, args, kwargs)? {
            return this.finish(py, results);
        }
        slf.call_method(intern!(py, "_call"), args, kwargs)
    }

    /// Evaluates on `args` (Python floats, or float64 arrays, as `arguments.convert` makes
    /// them) into `out` (None, or the `out=` arrays). Returns a list with, per output, an
    /// array (the out array where one was given), or a `numpy.float64` where the output is a
    /// single value and no out array was given.
    #[pyo3(name = "_evaluate", signature = (args, out=None))]
    fn evaluate<'py>(
        &self,
        py: Python<'py>,
        args: Vec<Bound<'py, PyAny>>,
        out: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let values = args
            .iter()
            .map(|a| arguments::read(a).ok_or_else(|| PyTypeError::new_err("arguments must be floats or float64 arrays")))
            .collect::<PyResult<Vec<_>>>()?;
        let shapes: Vec<Vec<usize>> = values.iter().map(Value::shape).collect();
        let call = guarded(|| self.core.prepare(&shapes))?;
        self.run_call(py, &call, values, out)
    }

    /// Evaluates an `ArrayFunction`'s call with each array passed as one block (see
    /// `array_call.rs`): `values` per argument (an aligned float64 array of shape batch +
    /// the variable's shape where `element_shapes` gives one, else a scalar variable's
    /// argument), `output_element_shapes` per output of the array function (None for a scalar
    /// output), `batch` the arguments' broadcast batch shape (an output of no elements takes
    /// it). Returns one result per output (an output whose elements differ in shape as a list
    /// of its elements' results), or None where the call is left to Python's path.
    #[pyo3(name = "_call_arrays")]
    fn call_arrays<'py>(
        &self,
        py: Python<'py>,
        values: Vec<Bound<'py, PyAny>>,
        element_shapes: Vec<Option<Vec<usize>>>,
        output_element_shapes: Vec<Option<Vec<usize>>>,
        batch: Vec<usize>,
    ) -> PyResult<Option<Vec<Bound<'py, PyAny>>>> {
        array_call::call(self, py, &values, &element_shapes, &output_element_shapes, &batch)
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

    /// One epoch of mini-batch gradient descent in the core (see `chainrule_core::train`):
    /// `data` are C-contiguous (N, width) arrays for the leading inputs, `params` the
    /// remaining inputs' values, updated in place; `order` the samples to visit (a shuffle),
    /// by default all in order. Returns each step's loss. The GIL is released; Ctrl-C stops
    /// between steps.
    #[pyo3(name = "_sgd_epoch", signature = (data, params, lr, batch, order=None))]
    fn sgd_epoch<'py>(
        &self,
        py: Python<'py>,
        data: Vec<PyReadonlyArray2<'py, f64>>,
        mut params: PyReadwriteArray1<'py, f64>,
        lr: f64,
        batch: usize,
        order: Option<PyReadonlyArray1<'py, i64>>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let not_contiguous = || PyTypeError::new_err("epoch data and parameters must be C-contiguous float64 arrays");
        let rows = data
            .iter()
            .map(|d| Ok(Rows { values: d.as_slice().map_err(|_| not_contiguous())?, width: d.shape()[1] }))
            .collect::<PyResult<Vec<_>>>()?;
        let params = params.as_slice_mut().map_err(|_| not_contiguous())?;
        let order = match &order {
            Some(o) => Some(
                o.as_array()
                    .iter()
                    .map(|&i| {
                        usize::try_from(i).map_err(|_| PyValueError::new_err(format!("sample index {i} in the epoch's order is negative")))
                    })
                    .collect::<PyResult<Vec<usize>>>()?,
            ),
            None => None,
        };
        let sgd = Sgd { lr, batch };
        let losses = interruptibly(py, |stop| self.core.sgd_epoch(&rows, params, order.as_deref(), sgd, stop))?;
        Ok(PyArray1::from_vec(py, losses))
    }
}

impl PyFunction {
    /// The compiled function in the core.
    pub(crate) fn core(&self) -> &chainrule_core::Function {
        &self.core
    }

    /// The call `_call_arrays` last prepared.
    pub(crate) fn last_array_call(&self) -> &LastCall {
        &self.last_array_call
    }

    /// The latency path: if `args` are exactly the inputs, each a Python float, returns the
    /// results as `numpy.float64` (one, or a tuple when `single` is false); else None, and
    /// the caller takes the general path.
    fn call_scalars<'py>(&self, py: Python<'py>, args: &Bound<'py, PyTuple>) -> PyResult<Option<Bound<'py, PyAny>>> {
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
        self.scalar_results(py, &values).and_then(|r| self.finish(py, r)).map(Some)
    }

    /// One `numpy.float64` per output, at single values.
    fn scalar_results<'py>(&self, py: Python<'py>, values: &[f64]) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let mut out = Vec::new();
        guarded(|| self.core.call_scalars(values, &mut out))?;
        out.into_iter().map(|v| float64(py, v)).collect()
    }

    /// The result of a call: the one output, or a tuple of them.
    fn finish<'py>(&self, py: Python<'py>, results: Vec<Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
        if self.single {
            Ok(results.into_iter().next().expect("one output"))
        } else {
            Ok(PyTuple::new(py, results)?.into_any())
        }
    }

    /// The fast path for every argument kind `arguments::read` knows, by position or keyword,
    /// with `out=`: the results, or None where the call is left to Python's path (another
    /// kind of argument, or a call that would raise: Python's path raises the documented
    /// error). An input named `out` takes the keyword; that function has no `out=`.
    fn call_fast<'py>(
        &self,
        py: Python<'py>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Option<Vec<Bound<'py, PyAny>>>> {
        let n = self.core.inputs().len();
        if args.len() > n {
            return Ok(None);
        }
        let mut slots: Vec<Option<Value<'py>>> = Vec::with_capacity(n);
        for a in args.iter() {
            let Some(v) = arguments::read(&a) else { return Ok(None) };
            slots.push(Some(v));
        }
        slots.resize_with(n, || None);
        let mut out = None;
        for (key, value) in kwargs.into_iter().flat_map(|k| k.iter()) {
            let Ok(key) = key.cast::<PyString>() else { return Ok(None) };
            let key = key.to_str()?;
            match self.position(key) {
                Some(i) if slots[i].is_none() => {
                    let Some(v) = arguments::read(&value) else { return Ok(None) };
                    slots[i] = Some(v);
                }
                None if key == "out" => out = Some(value),
                _ => return Ok(None),
            }
        }
        let Some(values) = slots.into_iter().collect::<Option<Vec<_>>>() else { return Ok(None) };
        let shapes: Vec<Vec<usize>> = values.iter().map(Value::shape).collect();
        if out.is_none() {
            if let Some(point) = values.iter().map(Value::single).collect::<Option<Vec<f64>>>() {
                return self.point_results(py, &point, &shapes);
            }
        }
        let Ok(call) = guarded(|| self.core.prepare(&shapes)) else { return Ok(None) };
        self.run_call(py, &call, values, out.as_ref()).map(Some)
    }

    /// A call whose every argument holds one value (`point`; `shapes` are the arguments'):
    /// the point's results, each in its output's shape, with no tape run over arrays (the
    /// point's values are the same bit for bit). None where the shapes are refused.
    /// Measured (W4 on 1-element arrays, minima of interleaved timeit runs): 1.36 -> 0.79 µs
    /// against preparing the call and running its tape.
    fn point_results<'py>(&self, py: Python<'py>, point: &[f64], shapes: &[Vec<usize>]) -> PyResult<Option<Vec<Bound<'py, PyAny>>>> {
        let all_scalars = shapes.iter().all(Vec::is_empty);
        let output_shapes = if all_scalars {
            None
        } else {
            let Ok(s) = guarded(|| self.core.shapes(shapes)) else { return Ok(None) };
            Some(s.outputs)
        };
        let mut values = Vec::new();
        guarded(|| self.core.call_scalars(point, &mut values))?;
        let mut results = Vec::with_capacity(values.len());
        for (o, v) in values.into_iter().enumerate() {
            let shape = output_shapes.as_ref().map_or(&[][..], |s| s[o].as_slice());
            results.push(if shape.is_empty() {
                float64(py, v)?
            } else {
                let array = new_output(py, shape)?;
                // SAFETY: a new array of one element (every argument holds one), not shared yet.
                unsafe { array.as_slice_mut() }.map_err(|e| PyRuntimeError::new_err(e.to_string()))?.fill(v);
                array.into_any()
            });
        }
        Ok(Some(results))
    }

    /// Input `name`'s position.
    fn position(&self, name: &str) -> Option<usize> {
        let positions = self.positions.get_or_init(|| {
            self.core.inputs().iter().enumerate().map(|(i, v)| (v.as_var().expect("inputs are variables").to_string(), i)).collect()
        });
        positions.get(name).copied()
    }

    /// Runs a prepared call on `values` into the `out=` arrays given and new ones for the
    /// rest: per-sample outputs are written straight into the arrays returned.
    fn run_call<'py>(
        &self,
        py: Python<'py>,
        call: &Call,
        values: Vec<Value<'py>>,
        out: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let shapes = &call.output_shapes;
        let given = match out {
            Some(o) if !o.is_none() => arguments::outs(o, shapes, self.single)?,
            _ => (0..shapes.len()).map(|_| None).collect(),
        };
        let data = values.into_iter().map(|v| arguments::data(v, &given)).collect::<PyResult<Vec<_>>>()?;
        let inputs = data.iter().map(Data::view).collect::<PyResult<Vec<_>>>()?;
        let mut arrays: Vec<Bound<'py, PyArrayDyn<f64>>> = Vec::with_capacity(shapes.len());
        let mut singles: Vec<[f64; 1]> = vec![[0.0]; shapes.len()];
        let mut reduced = vec![false; shapes.len()];
        for (o, (shape, g)) in shapes.iter().zip(given).enumerate() {
            match g {
                Some(g) => arrays.push(g),
                None if shape.is_empty() => reduced[o] = true,
                None => arrays.push(new_output(py, shape)?),
            }
        }
        let mut views: Vec<&mut [f64]> = Vec::with_capacity(shapes.len());
        let mut next = arrays.iter();
        for (single, reduced) in singles.iter_mut().zip(&reduced) {
            views.push(if *reduced {
                single
            } else {
                // SAFETY: new arrays are not shared with Python yet; `out=` arrays were checked
                // (C-contiguous, aligned, writeable, overlapping no other output, and every
                // input that overlaps one was copied). The call writes every element.
                unsafe { next.next().expect("one array per output").as_slice_mut() }.map_err(|e| PyRuntimeError::new_err(e.to_string()))?
            });
        }
        run_interruptibly(py, &self.core, call, &inputs, &mut views)?;
        drop(views);
        let mut arrays = arrays.into_iter();
        let mut results = Vec::with_capacity(shapes.len());
        for (single, reduced) in singles.iter().zip(reduced) {
            results.push(if reduced { float64(py, single[0])? } else { arrays.next().expect("one array per output").into_any() });
        }
        Ok(results)
    }
}

/// A new float64 array for an output of `shape`, uninitialised: the evaluator writes every
/// element before it is read.
pub(crate) fn new_output<'py>(py: Python<'py>, shape: &[usize]) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
    let size = shape.iter().try_fold(8usize, |acc, n| acc.checked_mul(*n));
    if size.is_none_or(|bytes| bytes > isize::MAX as usize) {
        return Err(PyMemoryError::new_err(format!("an output of shape {shape:?} is too large to allocate")));
    }
    // SAFETY: see above. A failed allocation panics inside numpy's wrapper; it becomes a
    // MemoryError here.
    catch_unwind(AssertUnwindSafe(|| unsafe { PyArrayDyn::<f64>::new(py, shape, false) }))
        .map_err(|_| PyMemoryError::new_err(format!("cannot allocate an output of shape {shape:?}")))
}

/// An array argument read where it is: NumPy's byte strides as element strides, over the span
/// of memory its elements occupy. A column of a C-ordered matrix, a reversed or every-other
/// view, a transpose or a `np.broadcast_to` view is never copied (a copy was 4.7x W11's time,
/// and 22 GiB for a 3e9-sample broadcast view).
pub(crate) fn view_of<'a>(arr: &'a Bound<'_, PyArrayDyn<f64>>) -> PyResult<InputView<'a>> {
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
pub(crate) fn element_strides(ptr: *const f64, bytes: &[isize]) -> Option<Vec<isize>> {
    const ITEM: isize = std::mem::size_of::<f64>() as isize;
    (ptr.is_aligned() && bytes.iter().all(|b| b % ITEM == 0)).then(|| bytes.iter().map(|b| b / ITEM).collect())
}

/// The lowest and highest element offsets an array of `shape` (no zero size) reaches.
pub(crate) fn reach(shape: &[usize], strides: &[isize]) -> (isize, isize) {
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
fn base_span(arr: &Bound<'_, PyArrayDyn<f64>>) -> Option<(*const f64, *const f64)> {
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
/// pool's threads) and between its grabs of chunks checks Python's signal handlers (see
/// [`interruptibly`]), so Ctrl-C cancels between chunks and raises KeyboardInterrupt promptly
/// instead of after the whole evaluation.
pub(crate) fn run_interruptibly(
    py: Python<'_>,
    f: &chainrule_core::Function,
    call: &Call,
    data: &[InputView],
    views: &mut [&mut [f64]],
) -> PyResult<()> {
    interruptibly(py, |stop| f.run_views(call, data, views, stop))
}

/// Runs `work` with the GIL released, handing it a `stop` that checks Python's signal handlers,
/// at most every [`SIGNAL_CHECK`]; the exception a handler raised (KeyboardInterrupt) is
/// returned in place of the work's result.
pub(crate) fn interruptibly<T: Send>(
    py: Python<'_>,
    work: impl FnOnce(&mut dyn FnMut() -> bool) -> chainrule_core::Result<T> + Send,
) -> PyResult<T> {
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
    let result = py.detach(|| guarded(|| work(&mut stop)));
    match signal {
        Some(e) => Err(e),
        None => result,
    }
}
