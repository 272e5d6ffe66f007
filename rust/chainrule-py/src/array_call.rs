//! A call of an `ArrayFunction` (`compiled.py`) on its flat scalar function, one block per
//! array: each array argument comes in as one array, and the scalar inputs its elements are
//! become views of it made here (the element's offset, the batch axes' strides), with no Python
//! object per element; each array output goes out as one new array, every element's values
//! written by the evaluator straight into their segment of it. The Python path made a NumPy
//! view per element (23,520 for a 784x30 weight) and stacked the thousands of results back.
//!
//! An output whose elements have one shape S (all reduced to single values, or all per
//! sample) is one array (elements..., S...) in C order, returned as its transposed view
//! (S..., elements...): the evaluator writes each element's samples contiguously, and a copy
//! into C order is one more pass over the output, a transposing one (timeit minima beside the
//! call: 5% of a 64 -> 10 sigmoid layer's call on 1,797 samples, 120% of a 3 -> 30 layer's
//! on 100,000). Elements of mixed shapes are returned one by one, for Python to assemble.

use numpy::{PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use std::sync::Mutex;

use chainrule_core::{Call, InputView};

use crate::arguments::{self, Data};
use crate::errors::guarded;
use crate::function::{element_strides, float64, new_output, reach, run_interruptibly, PyFunction};

/// One argument of the array call: an array variable's argument (batch + element shape), or
/// a scalar variable's, read as a flat call reads it.
enum Argument<'py> {
    Block { array: Bound<'py, PyArrayDyn<f64>>, element_rank: usize },
    Scalar(Data<'py>),
}

/// A call's arguments' shapes as the flat call's depend on them: each argument's shape, and
/// for an array variable's the rank of its element shape.
type CallKey = Vec<(Vec<usize>, Option<usize>)>;

impl Argument<'_> {
    fn key(&self) -> (Vec<usize>, Option<usize>) {
        match self {
            Argument::Block { array, element_rank } => (array.shape().to_vec(), Some(*element_rank)),
            Argument::Scalar(Data::Scalar(_)) => (Vec::new(), None),
            Argument::Scalar(Data::Array(a)) => (a.shape().to_vec(), None),
        }
    }
}

/// The call an array call last prepared, kept for the next call with arguments of the same
/// shapes: preparing checks and pads every flat input's shape (23,860 of them for
/// 784-30-10) and finds the tape, ~0.2 ms of W8's ~1.4 ms. A call that finds it busy (another
/// thread's call is running it) prepares its own.
#[derive(Default)]
pub(crate) struct LastCall(Mutex<Option<(CallKey, Call)>>);

impl LastCall {
    fn take(&self, key: &CallKey) -> Option<Call> {
        let mut last = self.0.lock().ok()?;
        match last.take() {
            Some((k, call)) if k == *key => Some(call),
            other => {
                *last = other;
                None
            }
        }
    }

    fn put(&self, key: CallKey, call: Call) {
        if let Ok(mut last) = self.0.lock() {
            *last = Some((key, call));
        }
    }
}

/// Where one flat output's values go.
enum Slot<'py> {
    /// A single value, returned as `numpy.float64`.
    Single,
    Array(Bound<'py, PyArrayDyn<f64>>),
}

/// What an output of the array function is made of.
enum Output<'py> {
    /// A scalar output: one flat output.
    One(Slot<'py>),
    /// An array output whose `elements` share one shape: one array (elements..., shape...),
    /// each element `segment` values of it.
    Block { array: Bound<'py, PyArrayDyn<f64>>, elements: usize, segment: usize, element_rank: usize },
    /// An array output of no elements: zeros of shape batch + its shape, as NumPy gives.
    Empty(Bound<'py, PyArrayDyn<f64>>),
    /// An array output whose elements have mixed shapes: one slot each.
    Mixed(Vec<Slot<'py>>),
}

/// Evaluates `f` on `values` (see `PyFunction::call_arrays`); None where the call is left to
/// Python's path (an argument this path does not read, or shapes the core refuses: Python's
/// path raises the documented error).
pub(crate) fn call<'py>(
    f: &PyFunction,
    py: Python<'py>,
    values: &[Bound<'py, PyAny>],
    element_shapes: &[Option<Vec<usize>>],
    output_element_shapes: &[Option<Vec<usize>>],
    batch: &[usize],
) -> PyResult<Option<Vec<Bound<'py, PyAny>>>> {
    if values.len() != element_shapes.len() {
        return Err(PyTypeError::new_err("one element shape (or None) per argument"));
    }
    let mut arguments = Vec::with_capacity(values.len());
    for (value, shape) in values.iter().zip(element_shapes) {
        let Some(argument) = argument(value, shape.as_deref())? else { return Ok(None) };
        arguments.push(argument);
    }
    let mut inputs: Vec<InputView> = Vec::with_capacity(f.core().inputs().len());
    // Each input's one value, while every input holds one (see below).
    let mut point: Option<Vec<f64>> = Some(Vec::with_capacity(f.core().inputs().len()));
    for a in &arguments {
        match a {
            Argument::Block { array, element_rank } => element_views(array, *element_rank, &mut inputs, &mut point)?,
            Argument::Scalar(data) => {
                inputs.push(data.view()?);
                point = point.zip(single(data)).map(|(mut p, v)| {
                    p.push(v);
                    p
                });
            }
        }
    }
    let shapes = || inputs.iter().map(|v| v.shape().to_vec()).collect::<Vec<Vec<usize>>>();
    let key: CallKey = arguments.iter().map(Argument::key).collect();
    let call = match point {
        Some(_) => None,
        None => match f.last_array_call().take(&key) {
            Some(call) => Some(call),
            None => match guarded(|| f.core().prepare(&shapes())) {
                Ok(call) => Some(call),
                Err(_) => return Ok(None),
            },
        },
    };
    let resolved;
    let (output_shapes, shape_ids) = match &call {
        Some(call) => (&call.output_shapes, Some(call.output_shape_ids.as_slice())),
        None => {
            let Ok(r) = guarded(|| f.core().shapes(&shapes())) else { return Ok(None) };
            resolved = r;
            (&resolved.outputs, None)
        }
    };
    let mut outputs = Vec::with_capacity(output_element_shapes.len());
    let mut at = 0;
    for shape in output_element_shapes {
        let (output, used) = plan(py, output_shapes, shape_ids, at, shape.as_deref(), batch)?;
        outputs.push(output);
        at += used;
    }
    if at != output_shapes.len() {
        return Err(PyTypeError::new_err("the output element shapes do not cover the function's outputs"));
    }
    let mut singles = vec![[0.0f64]; at];
    let mut views: Vec<&mut [f64]> = Vec::with_capacity(at);
    let mut next_single = singles.iter_mut();
    for output in &outputs {
        match output {
            Output::One(slot) => views.push(slot_view(slot, next_single.next().expect("one per flat output"))?),
            Output::Mixed(slots) => {
                for slot in slots {
                    views.push(slot_view(slot, next_single.next().expect("one per flat output"))?);
                }
            }
            Output::Block { array, elements, segment, .. } => {
                // SAFETY: made by `plan` for this call and not shared with Python until it
                // returns; this is the only slice taken of it, and the evaluator writes each
                // element once.
                let whole = unsafe { array.as_slice_mut() }.map_err(not_contiguous)?;
                if *segment == 0 {
                    views.extend((0..*elements).map(|_| <&mut [f64]>::default()));
                } else {
                    views.extend(whole.chunks_mut(*segment));
                }
                next_single.by_ref().take(*elements).for_each(drop);
            }
            Output::Empty(_) => {}
        }
    }
    // Every input holds one value (a single sample, as SGD steps of batch 1 take): the
    // point's results, the same bit for bit as the tape's, with no tape prepared for the
    // call. Measured (the W8 network on one sample, interleaved medians): preparing and
    // running the tape took 554 µs where the element-by-element path, which called the
    // flat function at the point, took 434; this takes 378 (that path 407 in the run).
    if let Some(point) = point {
        let mut values = Vec::with_capacity(views.len());
        guarded(|| f.core().call_scalars(&point, &mut values))?;
        for (view, v) in views.iter_mut().zip(values) {
            view.fill(v);
        }
    } else if let Some(call) = call {
        let ran = run_interruptibly(py, f.core(), &call, &inputs, &mut views);
        f.last_array_call().put(key, call);
        ran?;
    }
    drop(views);
    let mut results = Vec::with_capacity(outputs.len());
    let mut next_single = singles.iter();
    for output in outputs {
        results.push(match output {
            Output::One(slot) => slot_result(py, slot, next_single.next().expect("one per flat output"))?,
            Output::Mixed(slots) => {
                let items = slots.into_iter().map(|s| slot_result(py, s, next_single.next().expect("one per flat output")));
                PyList::new(py, items.collect::<PyResult<Vec<_>>>()?)?.into_any()
            }
            Output::Block { array, elements, element_rank, .. } => {
                next_single.by_ref().take(elements).for_each(drop);
                sample_axes_first(array, element_rank)?
            }
            Output::Empty(array) => array.into_any(),
        });
    }
    Ok(Some(results))
}

/// One argument as this path reads it; None where Python's path is to take the call.
fn argument<'py>(value: &Bound<'py, PyAny>, element_shape: Option<&[usize]>) -> PyResult<Option<Argument<'py>>> {
    let Some(element_shape) = element_shape else {
        let Some(v) = arguments::read(value) else { return Ok(None) };
        return arguments::data(v, &[]).map(|d| Some(Argument::Scalar(d)));
    };
    let Ok(array) = value.cast::<PyArrayDyn<f64>>() else {
        return Err(PyTypeError::new_err("an array variable's argument must be a float64 array here"));
    };
    let shape = array.shape();
    let k = element_shape.len();
    if shape.len() < k || shape[shape.len() - k..] != *element_shape {
        return Err(PyTypeError::new_err("an array variable's argument must end in the variable's shape here"));
    }
    if !array.is_aligned() || element_strides(array.data(), array.strides()).is_none() {
        return Ok(None);
    }
    Ok(Some(Argument::Block { array: array.clone(), element_rank: k }))
}

/// The scalar inputs an array argument holds, one view per element in C order over the
/// element axes: the array's own data at the element's offset, the batch axes' strides. The
/// views share the span of the whole array, so the evaluator sees adjacent elements of one
/// sample as adjacent columns of one matrix and reads them together.
/// Where every element holds one value (a batch of one sample), `point` gets them too; else
/// it becomes None.
fn element_views<'a>(
    array: &'a Bound<'_, PyArrayDyn<f64>>,
    element_rank: usize,
    out: &mut Vec<InputView<'a>>,
    point: &mut Option<Vec<f64>>,
) -> PyResult<()> {
    let shape = array.shape();
    let ptr = array.data().cast_const();
    let strides = element_strides(ptr, array.strides()).expect("checked by `argument`");
    let (batch, elements) = shape.split_at(shape.len() - element_rank);
    let (batch_strides, element_strides) = strides.split_at(shape.len() - element_rank);
    let count: usize = elements.iter().product();
    if count == 0 {
        return Ok(());
    }
    if batch.iter().product::<usize>() != 1 {
        *point = None;
    }
    if batch.contains(&0) {
        for _ in 0..count {
            out.push(guarded(|| InputView::strided(&[], 0, batch, batch_strides))?);
        }
        return Ok(());
    }
    let (low, high) = reach(shape, &strides);
    // SAFETY: NumPy places every element of a valid array at data + sum(i * stride), inside
    // its buffer, so `low..=high` (element offsets from `ptr`) spans this array's elements;
    // the array is borrowed for 'a, and the views check their own reads against the span.
    let span = unsafe { std::slice::from_raw_parts(ptr.offset(low), (high - low) as usize + 1) };
    let origin = -low;
    // The element index, counted in C order like an odometer, and its offset from `ptr`.
    let mut index = vec![0usize; element_rank];
    let mut offset = 0isize;
    out.reserve(count);
    for _ in 0..count {
        let at = usize::try_from(origin + offset).map_err(|_| PyRuntimeError::new_err("an element offset left its array"))?;
        out.push(match batch.is_empty() {
            // No batch axes (parameters passed as they are): a single value each.
            true => InputView::single(span, at).ok_or_else(|| PyRuntimeError::new_err("an element offset left its array"))?,
            false => guarded(|| InputView::strided(span, at, batch, batch_strides))?,
        });
        if let Some(p) = point {
            p.push(span[at]);
        }
        for d in (0..element_rank).rev() {
            index[d] += 1;
            offset += element_strides[d];
            if index[d] < elements[d] {
                break;
            }
            offset -= element_strides[d] * elements[d] as isize;
            index[d] = 0;
        }
    }
    Ok(())
}

/// The one value of a scalar argument that holds one.
fn single(data: &Data<'_>) -> Option<f64> {
    match data {
        Data::Scalar([v]) => Some(*v),
        // SAFETY: `Data` holds aligned float64 arrays, so one element is one f64 at `data()`.
        Data::Array(a) if a.len() == 1 => Some(unsafe { *a.data() }),
        Data::Array(_) => None,
    }
}

/// How output `at` (a scalar output, `element_shape` None) or outputs `at..` (the elements of
/// an array output) are written; returns the plan and how many flat outputs it takes.
fn plan<'py>(
    py: Python<'py>,
    shapes: &[Vec<usize>],
    shape_ids: Option<&[u32]>,
    at: usize,
    element_shape: Option<&[usize]>,
    batch: &[usize],
) -> PyResult<(Output<'py>, usize)> {
    let Some(element_shape) = element_shape else {
        let shape = shapes.get(at).ok_or_else(too_few)?;
        return Ok((Output::One(slot(py, shape)?), 1));
    };
    let elements: usize = element_shape.iter().product();
    let Some(own) = shapes.get(at..at + elements) else { return Err(too_few()) };
    if elements == 0 {
        let shape = [batch, element_shape].concat();
        return Ok((Output::Empty(PyArrayDyn::zeros(py, shape, false)), 0));
    }
    let mixed = match shape_ids {
        Some(ids) => ids[at..at + elements].iter().any(|&i| i != ids[at]),
        None => own.iter().any(|s| *s != own[0]),
    };
    if mixed {
        return Ok((Output::Mixed(own.iter().map(|s| slot(py, s)).collect::<PyResult<_>>()?), elements));
    }
    let array = new_output(py, &[element_shape, &own[0]].concat())?;
    let segment = own[0].iter().product();
    Ok((Output::Block { array, elements, segment, element_rank: element_shape.len() }, elements))
}

fn too_few() -> PyErr {
    PyTypeError::new_err("the output element shapes need more outputs than the function has")
}

/// A flat output of `shape` on its own: a single value where the shape is `()` (as a flat
/// call returns it), else a new array.
fn slot<'py>(py: Python<'py>, shape: &[usize]) -> PyResult<Slot<'py>> {
    Ok(if shape.is_empty() { Slot::Single } else { Slot::Array(new_output(py, shape)?) })
}

fn slot_view<'s>(slot: &'s Slot<'_>, single: &'s mut [f64; 1]) -> PyResult<&'s mut [f64]> {
    match slot {
        Slot::Single => Ok(single),
        // SAFETY: as for a block's array in `call`: made by `slot` for this call, the only
        // slice taken of it.
        Slot::Array(a) => unsafe { a.as_slice_mut() }.map_err(not_contiguous),
    }
}

fn slot_result<'py>(py: Python<'py>, slot: Slot<'py>, single: &[f64; 1]) -> PyResult<Bound<'py, PyAny>> {
    match slot {
        Slot::Single => float64(py, single[0]),
        Slot::Array(a) => Ok(a.into_any()),
    }
}

/// A new output array whose data could not be borrowed (it always can: it is made contiguous).
fn not_contiguous(e: impl std::fmt::Display) -> PyErr {
    PyRuntimeError::new_err(e.to_string())
}

/// `array` (elements..., samples...) as (samples..., elements...): a transposed view where
/// both parts have axes, the array itself otherwise.
fn sample_axes_first<'py>(array: Bound<'py, PyArrayDyn<f64>>, element_rank: usize) -> PyResult<Bound<'py, PyAny>> {
    let rank = array.ndim();
    if element_rank == 0 || element_rank == rank {
        return Ok(array.into_any());
    }
    let axes: Vec<usize> = (element_rank..rank).chain(0..element_rank).collect();
    array.call_method1("transpose", (PyTuple::new(array.py(), axes)?,))
}
