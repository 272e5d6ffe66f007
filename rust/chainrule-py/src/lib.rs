//! `chainrule._core`: the layer between Python and the core, split by class: `expr.rs` (the
//! `Expr` class and the functions on expressions), `function.rs` (the compiled function's base
//! class), `arguments.rs` (a call's arguments and `out=` arrays), `errors.rs` (core errors as
//! Python exceptions); this file registers the module. Everything that thinks lives in
//! `chainrule-core`; docs, and the argument handling off the hot paths (lists, Dask, array
//! subclasses, the error messages of refused calls), live in Python.
//!
//! Some paths live here rather than in Python because a Python step per item was a measured
//! share of the workloads (W4: one call at a single point; W5: n = 10,000 inputs):
//! - `Expr` is this module's class, not a Python wrapper around a core handle: wrapping grad's
//!   10,000 results cost 4.8 ms and unwrapping them for compile ~4 ms of W5.
//! - The operators promote Python floats and integers that fit 64 bits here, with no Python
//!   object for the constant: building W5's expression 52 -> 29 ms (best of 5).
//! - Compiling reads the outputs and inputs here and names the inputs only when asked: a
//!   Python step per item and 10,000 name strings were ~2.5 ms and ~180 page faults of W5's
//!   compile.
//! - A call is answered in `Function.__call__` (a C slot) without a Python frame: the
//!   forwarding Python `__call__` was ~0.25 µs of a ~0.93 µs W4 call; results are made as
//!   `numpy.float64` through NumPy's C API (W4 1.2 -> 0.68 µs). Every argument kind a call
//!   usually passes (floats, ints, NumPy scalars, arrays of real dtypes, keywords, `out=`) is
//!   read here too: the Python binding and conversion before the core was most of a small
//!   call. W4 (timeit minima, same process): np.float64 arguments 5.5 -> 0.42 µs, 0-d arrays
//!   6.5 -> 0.43, 1-element arrays 8.5 -> 1.3, 100 samples 11.1 -> 3.9; keywords 4.3 -> 0.56;
//!   W1's network on 32 samples 11.0 -> 2.7 µs (1.8-2.2 with registers sized to the call).
//! - An `ArrayFunction` call passes each array argument as one array and gets each array
//!   output back as one (`array_call.rs`): the element views made in Python (23,520 for a
//!   784x30 weight) and the stacking of the returned elements were 1.76 -> 1.48 ms of W8's
//!   value and gradient and 61.9 -> 52.2 ms of 784-30-10's on 10,000 samples (interleaved
//!   medians).
//! - Expressions are untracked by the cycle collector (they hold no Python objects): W5's grad
//!   27.1 -> 25.1 ms. The allocator is mimalloc (below): W5 78.7 -> 47.2 ms.

mod arguments;
mod array_call;
mod block;
mod errors;
mod expr;
mod function;

use chainrule_core::ops::Op;
use chainrule_core::pool;
use pyo3::prelude::*;

use errors::{ChainruleError, ParseError, ShapeError};
use expr::{OpInfo, PyExpr};
use function::PyFunction;

/// mimalloc rather than the system allocator, for the memory that building graphs touches
/// for the first time. Every node, registry record and per-node array of a new graph is fresh
/// memory, faulted in 4 KiB at a time from glibc's heap (~5,700 page faults for W5 at
/// n = 10,000, a quarter or more of its time on this 2-core VM). mimalloc takes memory from
/// the OS in arenas it marks for transparent huge pages, 2 MiB a fault (~470 faults), and
/// reuses what one phase frees in the next. W5 (n = 10,000, the benchmark's child process,
/// paired medians of 10 interleaved runs): grad 0.70x, compile 0.73x, first call 0.64x, in
/// all 0.70x (78.7 -> 47.2 ms). The cost: freed memory is kept for reuse (after W5, RSS
/// stays ~29 MiB higher until [`release_memory`] or mimalloc's own delayed purge).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Returns the memory the allocator keeps for reuse to the OS (for tests that measure RSS).
#[pyfunction]
fn release_memory() {
    // SAFETY: no preconditions; it only frees memory no allocation uses.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

#[pyfunction]
fn live_nodes() -> usize {
    chainrule_core::live_nodes()
}

/// Counts above `max_threads()` are capped by the core; Python refuses them before this.
#[pyfunction]
fn set_num_threads(n: usize) {
    pool::set_num_threads(n);
}

#[pyfunction]
fn max_threads() -> usize {
    pool::max_threads()
}

#[pyfunction]
fn get_num_threads() -> usize {
    pool::current_num_threads()
}

/// Sets the calling thread's own thread count (None: the process's) and returns the previous.
#[pyfunction]
fn set_thread_override(n: Option<usize>) -> Option<usize> {
    pool::set_thread_override(n)
}

/// The module declares that it needs the GIL (`gil_used`): the binding has not been tested
/// on free-threaded CPython, which would otherwise run it without one (README: not supported).
#[pymodule(gil_used = true)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("ChainruleError", py.get_type::<ChainruleError>())?;
    m.add("ParseError", py.get_type::<ParseError>())?;
    m.add("ShapeError", py.get_type::<ShapeError>())?;
    m.add_class::<OpInfo>()?;
    m.add("OPS", Op::ALL.iter().map(|op| OpInfo::new(*op)).collect::<Vec<_>>())?;
    m.add_class::<PyExpr>()?;
    m.add_class::<PyFunction>()?;
    m.add_function(wrap_pyfunction!(expr::constant, m)?)?;
    m.add_function(wrap_pyfunction!(expr::var, m)?)?;
    m.add_function(wrap_pyfunction!(expr::apply, m)?)?;
    m.add_function(wrap_pyfunction!(expr::sum, m)?)?;
    m.add_function(wrap_pyfunction!(expr::mean, m)?)?;
    m.add_function(wrap_pyfunction!(expr::text, m)?)?;
    m.add_function(wrap_pyfunction!(expr::latex, m)?)?;
    m.add_function(wrap_pyfunction!(expr::parse, m)?)?;
    m.add_function(wrap_pyfunction!(expr::grad, m)?)?;
    m.add_function(wrap_pyfunction!(expr::encode, m)?)?;
    m.add_function(wrap_pyfunction!(expr::decode, m)?)?;
    m.add_function(wrap_pyfunction!(live_nodes, m)?)?;
    m.add_function(wrap_pyfunction!(release_memory, m)?)?;
    m.add_function(wrap_pyfunction!(expr::variables, m)?)?;
    m.add_function(wrap_pyfunction!(expr::substitute, m)?)?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(max_threads, m)?)?;
    m.add_function(wrap_pyfunction!(set_thread_override, m)?)?;
    m.add_class::<block::Block>()?;
    m.add_function(wrap_pyfunction!(block::block_vars, m)?)?;
    m.add_function(wrap_pyfunction!(block::block_constants, m)?)?;
    m.add_function(wrap_pyfunction!(block::block_of, m)?)?;
    m.add_function(wrap_pyfunction!(block::block_decode, m)?)?;
    m.add_function(wrap_pyfunction!(block::block_apply, m)?)?;
    m.add_function(wrap_pyfunction!(block::block_where, m)?)?;
    m.add_function(wrap_pyfunction!(block::block_clip, m)?)?;
    m.add_function(wrap_pyfunction!(block::block_reduce, m)?)?;
    m.add_function(wrap_pyfunction!(block::block_sum_runs, m)?)?;
    m.add_function(wrap_pyfunction!(block::block_matmul, m)?)?;
    m.add_function(wrap_pyfunction!(block::block_grad, m)?)?;
    m.add_function(wrap_pyfunction!(block::block_substitute, m)?)?;
    m.add_function(wrap_pyfunction!(block::block_concat, m)?)?;
    Ok(())
}
