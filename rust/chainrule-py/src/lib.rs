//! `chainrule._core`: the thin layer between Python and the core. It converts arguments,
//! releases the GIL around evaluation, and maps core errors to Python exceptions; everything
//! that thinks lives in `chainrule-core`, and argument handling and docs live in Python.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use chainrule_core::{build, error::Error, eval::Call, expr::Expr, ops::Op, pool, print, serial};
use numpy::npyffi::PY_ARRAY_API;
use numpy::{PyArrayDescr, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::{create_exception, intern, IntoPyObjectExt};
use pyo3::exceptions::{PyMemoryError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyFloat, PyInt, PyString, PyTuple};

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

create_exception!(chainrule, ChainruleError, PyValueError, "Base class of chainrule's errors (a ValueError).");
create_exception!(chainrule, ParseError, ChainruleError, "Text that is not a valid expression; the message points at the position.");
create_exception!(chainrule, ShapeError, ChainruleError, "Argument shapes that do not broadcast together.");

fn to_py(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        Error::Parse { .. } => ParseError::new_err(msg),
        Error::Shape { .. } => ShapeError::new_err(msg),
        Error::InputCount { .. } => PyTypeError::new_err(msg),
        Error::Internal(_) | Error::Interrupted => PyRuntimeError::new_err(msg),
        Error::UnknownVariable { .. } | Error::DuplicateInput(_) | Error::InvalidName(_) | Error::Corrupt(_) | Error::Unsupported(_) => {
            ChainruleError::new_err(msg)
        }
    }
}

/// Runs core code that takes user input, turning a panic (a bug) into a Python exception.
fn guarded<T>(f: impl FnOnce() -> Result<T, Error>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(to_py),
        Err(_) => Err(PyRuntimeError::new_err("internal error in chainrule (please report it)")),
    }
}

static FLOAT64: PyOnceLock<Py<PyArrayDescr>> = PyOnceLock::new();

/// `numpy.float64(value)` through NumPy's C API rather than by calling the type (~110 ns a
/// value, most of a one-output scalar call). Measured, not interleaved: a one-output call on
/// two floats 0.44 -> 0.19 µs, W4 (three outputs) 1.2 -> 0.68 µs in the core method.
fn float64<'py>(py: Python<'py>, value: f64) -> PyResult<Bound<'py, PyAny>> {
    let descr = FLOAT64.get_or_init(py, || numpy::dtype::<f64>(py).unbind()).bind(py);
    let mut value = value;
    // SAFETY: PyArray_Scalar copies the 8 bytes at `data` into a new scalar of `descr`'s type
    // (it borrows `descr` and needs no base for a fixed-size type); NULL is an error.
    unsafe {
        let obj = PY_ARRAY_API.PyArray_Scalar(py, (&raw mut value).cast(), descr.as_dtype_ptr(), std::ptr::null_mut());
        Bound::from_owned_ptr_or_err(py, obj)
    }
}

// The class lives here rather than as a Python wrapper around a core handle: wrapping was a
// Python call per node (W5 at n = 10,000: 4.8 ms to wrap grad's results, ~4 ms more to unwrap
// them for compile), and every operator went through Python code twice. Argument handling off
// the fast path (NumPy numbers, 0-d arrays, the error for an unusable operand) stays in
// Python, in `chainrule.expr.as_expr`.
/// An expression graph node. Build with `var`, operators and the functions. Equal expressions
/// are the same node, so `==` and `hash` are by structure; expressions are immutable and
/// pickle. Python and NumPy numbers promote to constants in arithmetic.
///
/// >>> import chainrule as cr
/// >>> x, y = cr.vars("x y")
/// >>> print(x * 2 + 1)
/// 2 * x + 1
/// >>> x.name, x.value, (x * 0 + 2).value, [v.name for v in (y * x).variables]
/// ('x', None, None, ['x', 'y'])
#[pyclass(frozen, weakref, module = "chainrule", name = "Expr")]
struct PyExpr(Expr);

fn exprs(list: Vec<PyRef<'_, PyExpr>>) -> Vec<Expr> {
    list.iter().map(|n| n.0.clone()).collect()
}

fn wrap(list: Vec<Expr>) -> Vec<NewExpr> {
    list.into_iter().map(NewExpr).collect()
}

/// An expression on its way to Python, as a `PyExpr` object that Python's cycle collector
/// does not track. PyO3 makes every class collectable, but an expression holds no Python
/// objects, so it can be in no cycle, and tracked ones made each collection call PyO3's
/// traverse on every live expression (W5 at n = 10,000, paired medians of 10 runs with the
/// collector off: grad 27.1 -> 25.1 ms).
struct NewExpr(Expr);

impl<'py> IntoPyObject<'py> for NewExpr {
    type Target = PyExpr;
    type Output = Bound<'py, PyExpr>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyExpr>> {
        let object = Bound::new(py, PyExpr(self.0))?;
        // SAFETY: a live object of a collectable type; untracking one that holds no Python
        // references is allowed at any time, and its dealloc's own untrack then does nothing.
        unsafe { pyo3::ffi::PyObject_GC_UnTrack(object.as_ptr().cast()) };
        Ok(object)
    }
}

/// A Python function of `chainrule.expr`, looked up once.
fn expr_helper<'py>(py: Python<'py>, cell: &'static PyOnceLock<Py<PyAny>>, name: &str) -> PyResult<&'py Bound<'py, PyAny>> {
    cell.get_or_try_init(py, || Ok::<_, PyErr>(py.import("chainrule.expr")?.getattr(name)?.unbind())).map(|f| f.bind(py))
}

/// `value` as an expression: itself, or a number promoted to a constant. Python floats and
/// integers that fit 64 bits are read here, with no Python object made for the constant (the
/// operators' hot path: `2 * x`, `x ** 2`); anything else goes to `chainrule.expr.as_expr`,
/// which raises the TypeError for what cannot be one.
fn expr_of(value: &Bound<'_, PyAny>) -> PyResult<Expr> {
    if let Ok(e) = value.cast::<PyExpr>() {
        return Ok(e.get().0.clone());
    }
    if let Ok(f) = value.cast_exact::<PyFloat>() {
        return Ok(build::constant(f.value()));
    }
    // Rust's i64 -> f64 rounds to nearest, ties to even, as float() does.
    if let Some(i) = value.cast_exact::<PyInt>().ok().and_then(|i| i.extract::<i64>().ok()) {
        return Ok(build::constant(i as f64));
    }
    static AS_EXPR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let e = expr_helper(value.py(), &AS_EXPR, "as_expr")?.call1((value,))?;
    Ok(e.cast::<PyExpr>()?.get().0.clone())
}

/// [`expr_of`] as a Python object: `value` itself when it is an expression.
fn as_expr<'py>(value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyExpr>> {
    match value.cast::<PyExpr>() {
        Ok(e) => Ok(e.clone()),
        Err(_) => NewExpr(expr_of(value)?).into_pyobject(value.py()),
    }
}

/// `value` as an operand (see [`expr_of`]); None for what cannot be one, so that the operator
/// returns NotImplemented and Python raises its own TypeError.
fn operand(value: &Bound<'_, PyAny>) -> PyResult<Option<Expr>> {
    match expr_of(value) {
        Ok(e) => Ok(Some(e)),
        Err(e) if e.is_instance_of::<PyTypeError>(value.py()) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The expressions of `items`, which must all be variables; else a TypeError naming the first
/// that is not: "`what`, not `repr(item)`".
fn variables_of(items: &[Bound<'_, PyAny>], what: &str) -> PyResult<Vec<Expr>> {
    let mut found = Vec::with_capacity(items.len());
    for item in items {
        match item.cast::<PyExpr>() {
            Ok(e) if e.get().0.as_var().is_some() => found.push(e.get().0.clone()),
            _ => return Err(PyTypeError::new_err(format!("{what}, not {}", item.repr()?))),
        }
    }
    Ok(found)
}

fn binary(py: Python<'_>, op: Op, a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    match (operand(a)?, operand(b)?) {
        (Some(a), Some(b)) => NewExpr(build::apply(op, &a, Some(&b))).into_py_any(py),
        _ => Ok(py.NotImplemented()),
    }
}

/// `a ** b`. Three-argument `pow` has no meaning for expressions: NotImplemented, so Python
/// raises its TypeError.
fn power(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>, modulo: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
    if modulo.is_some_and(|m| !m.is_none()) {
        return Ok(a.py().NotImplemented());
    }
    binary(a.py(), Op::Pow, a, b)
}

#[pymethods]
impl PyExpr {
    fn __add__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binary(slf.py(), Op::Add, slf, other)
    }

    fn __radd__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binary(slf.py(), Op::Add, other, slf)
    }

    fn __sub__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binary(slf.py(), Op::Sub, slf, other)
    }

    fn __rsub__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binary(slf.py(), Op::Sub, other, slf)
    }

    fn __mul__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binary(slf.py(), Op::Mul, slf, other)
    }

    fn __rmul__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binary(slf.py(), Op::Mul, other, slf)
    }

    fn __truediv__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binary(slf.py(), Op::Div, slf, other)
    }

    fn __rtruediv__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binary(slf.py(), Op::Div, other, slf)
    }

    fn __pow__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>, modulo: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        power(slf, other, modulo)
    }

    fn __rpow__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>, modulo: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        power(other, slf, modulo)
    }

    fn __neg__(&self) -> NewExpr {
        NewExpr(build::apply(Op::Neg, &self.0, None))
    }

    fn __pos__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __abs__(&self) -> NewExpr {
        NewExpr(build::apply(Op::Abs, &self.0, None))
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<PyExpr>().is_ok_and(|o| o.get().0 == self.0)
    }

    fn __hash__(&self) -> u64 {
        self.0.id()
    }

    fn __bool__(&self) -> PyResult<bool> {
        Err(PyTypeError::new_err("an expression has no truth value; compare values after evaluating it"))
    }

    fn __str__(&self, py: Python<'_>) -> String {
        py.detach(|| print::to_text(std::slice::from_ref(&self.0)))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let text = PyString::new(py, &self.__str__(py));
        Ok(format!("chainrule.parse({})", text.repr()?))
    }

    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyBytes>,))> {
        static LOAD: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let bytes = py.detach(|| serial::encode(std::slice::from_ref(&self.0)));
        Ok((expr_helper(py, &LOAD, "_load")?.clone(), (PyBytes::new(py, &bytes),)))
    }

    /// Keeps NumPy from broadcasting an Expr into an object array: `np.float64(2) * x` then
    /// falls back to `Expr.__rmul__`.
    #[classattr]
    fn __array_ufunc__(py: Python<'_>) -> Py<PyAny> {
        py.None()
    }

    /// The variable's name, or None if this is not a variable.
    #[getter]
    fn name(&self) -> Option<&str> {
        self.0.as_var()
    }

    /// Whether this expression is a single variable.
    #[getter]
    fn is_var(&self) -> bool {
        self.0.as_var().is_some()
    }

    /// The constant's value, or None if this is not a constant.
    #[getter]
    fn value(&self) -> Option<f64> {
        self.0.as_const()
    }

    /// The variables the expression uses, sorted by name.
    #[getter]
    fn variables(&self) -> Vec<NewExpr> {
        wrap(variables_in(std::slice::from_ref(&self.0)))
    }

    /// Unique id of the node; equal expressions are the same node.
    #[getter]
    fn _id(&self) -> u64 {
        self.0.id()
    }

    /// The kind of node: "const", "var", "sum" or an op name ("add", "sin", ...).
    #[getter]
    fn _kind(&self) -> String {
        match self.0.kind() {
            chainrule_core::expr::Kind::Const(_) => "const".into(),
            chainrule_core::expr::Kind::Var(_) => "var".into(),
            chainrule_core::expr::Kind::Sum(_) => "sum".into(),
            chainrule_core::expr::Kind::Apply(op) => kind_name(*op),
        }
    }

    /// The operands.
    #[getter]
    fn _args(&self) -> Vec<NewExpr> {
        self.0.args().cloned().map(NewExpr).collect()
    }

    /// For a sum, the variables it sums over (empty: the whole batch).
    #[getter]
    fn _over(&self) -> Vec<String> {
        match self.0.kind() {
            chainrule_core::expr::Kind::Sum(over) => over.iter().map(|s| s.to_string()).collect(),
            _ => Vec::new(),
        }
    }
}

#[pyfunction]
fn constant(value: f64) -> NewExpr {
    NewExpr(build::constant(value))
}

#[pyfunction]
fn var(name: &str) -> PyResult<NewExpr> {
    guarded(|| build::var(name)).map(NewExpr)
}

/// Ops by the lowercase name of their variant ("add", "sin", ...), as Python names them.
static OPS_BY_KIND: LazyLock<HashMap<String, Op>> = LazyLock::new(|| Op::ALL.iter().map(|op| (kind_name(*op), *op)).collect());

fn kind_name(op: Op) -> String {
    format!("{op:?}").to_lowercase()
}

/// One row of the op table, as Python reads it in `_core.OPS`: the name Python gives the op
/// (`kind`), its spelling in text, arity, binding strength when infix (`precedence`, None for a
/// call), whether it is an infix operator, and the domain its tests sample. It unpacks as
/// `(kind, text, arity, domain)`, the form the tests' sweeps read.
#[pyclass(frozen, get_all, module = "chainrule._core", name = "OpInfo")]
struct OpInfo {
    kind: String,
    text: &'static str,
    arity: usize,
    precedence: Option<u8>,
    infix: bool,
    domain: (f64, f64),
}

impl OpInfo {
    fn new(op: Op) -> OpInfo {
        OpInfo { kind: kind_name(op), text: op.name(), arity: op.arity(), precedence: op.infix(), infix: op.infix().is_some(), domain: op.domain() }
    }

    fn row<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        (self.kind.as_str(), self.text, self.arity, self.domain).into_pyobject(py)
    }
}

#[pymethods]
impl OpInfo {
    fn __len__(&self) -> usize {
        4
    }

    fn __getitem__<'py>(&self, py: Python<'py>, index: isize) -> PyResult<Bound<'py, PyAny>> {
        let row = self.row(py)?;
        let i = if index < 0 { index + 4 } else { index };
        if !(0..4).contains(&i) {
            return Err(pyo3::exceptions::PyIndexError::new_err("OpInfo index out of range"));
        }
        row.get_item(i as usize)
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyIterator>> {
        self.row(py)?.try_iter()
    }

    fn __repr__(&self) -> String {
        format!(
            "OpInfo(kind={:?}, text={:?}, arity={}, precedence={}, infix={}, domain={:?})",
            self.kind,
            self.text,
            self.arity,
            self.precedence.map_or("None".to_string(), |p| p.to_string()),
            if self.infix { "True" } else { "False" },
            self.domain
        )
    }
}

fn op_named(name: &str) -> PyResult<Op> {
    OPS_BY_KIND.get(name).copied().ok_or_else(|| PyValueError::new_err(format!("unknown op '{name}'")))
}

/// `op` of its operands, expressions or numbers (promoted as by [`expr_of`]).
#[pyfunction]
#[pyo3(signature = (op, a, b=None))]
fn apply(op: &str, a: &Bound<'_, PyAny>, b: Option<&Bound<'_, PyAny>>) -> PyResult<NewExpr> {
    let op = op_named(op)?;
    if (op.arity() == 2) != b.is_some() {
        return Err(PyTypeError::new_err(format!("{op:?} takes {} operands", op.arity())));
    }
    let a = expr_of(a)?;
    let b = b.map(expr_of).transpose()?;
    Ok(NewExpr(build::apply(op, &a, b.as_ref())))
}

#[pyfunction]
#[pyo3(signature = (a, over=Vec::new()))]
fn sum(a: PyRef<'_, PyExpr>, over: Vec<String>) -> PyResult<NewExpr> {
    if let Some(bad) = over.iter().find(|n| !build::is_valid_name(n)) {
        return Err(to_py(Error::InvalidName(bad.clone())));
    }
    Ok(NewExpr(build::sum_over(&a.0, &over)))
}

#[pyfunction]
fn mean(a: PyRef<'_, PyExpr>) -> NewExpr {
    NewExpr(build::mean(&a.0))
}

#[pyfunction]
fn text(py: Python<'_>, roots: Vec<PyRef<'_, PyExpr>>) -> String {
    let roots = exprs(roots);
    py.detach(|| print::to_text(&roots))
}

#[pyfunction]
fn parse(py: Python<'_>, source: &str) -> PyResult<Vec<NewExpr>> {
    py.detach(|| guarded(|| chainrule_core::parse::parse(source))).map(wrap)
}

#[pyfunction]
fn grad(py: Python<'_>, output: PyRef<'_, PyExpr>, wrt: Vec<Bound<'_, PyAny>>) -> PyResult<Vec<NewExpr>> {
    let output = output.0.clone();
    let wrt = variables_of(&wrt, "can only differentiate with respect to a variable")?;
    py.detach(|| guarded(|| chainrule_core::grad::grad(&output, &wrt))).map(wrap)
}

#[pyfunction]
fn encode<'py>(py: Python<'py>, roots: Vec<PyRef<'_, PyExpr>>) -> Bound<'py, PyBytes> {
    let roots = exprs(roots);
    let bytes = py.detach(|| serial::encode(&roots));
    PyBytes::new(py, &bytes)
}

#[pyfunction]
fn decode(py: Python<'_>, data: &[u8]) -> PyResult<Vec<NewExpr>> {
    py.detach(|| guarded(|| serial::decode(data))).map(wrap)
}

#[pyfunction]
fn substitute(py: Python<'_>, roots: Vec<PyRef<'_, PyExpr>>, replacements: Vec<(PyRef<'_, PyExpr>, PyRef<'_, PyExpr>)>) -> Vec<NewExpr> {
    let roots = exprs(roots);
    let pairs: Vec<(Expr, Expr)> = replacements.iter().map(|(f, t)| (f.0.clone(), t.0.clone())).collect();
    wrap(py.detach(|| build::substitute(&roots, &pairs)))
}

#[pyfunction]
fn variables(roots: Vec<PyRef<'_, PyExpr>>) -> Vec<String> {
    variables_in(&exprs(roots)).iter().filter_map(|v| v.as_var().map(str::to_string)).collect()
}

/// The variables `roots` use, sorted by name.
fn variables_in(roots: &[Expr]) -> Vec<Expr> {
    let graph = chainrule_core::graph::Graph::new(roots);
    let mut found: Vec<Expr> = graph.nodes().iter().filter(|n| n.as_var().is_some()).cloned().collect();
    found.sort_by(|a, b| a.as_var().cmp(&b.as_var()));
    found
}

/// Returns the memory the allocator keeps for reuse to the OS (for tests that measure RSS).
#[pyfunction]
fn release_memory() {
    // SAFETY: no preconditions; it only frees memory no allocation uses.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

#[pyfunction]
fn live_nodes() -> usize {
    chainrule_core::expr::live_nodes()
}

#[pyfunction]
fn set_num_threads(n: usize) {
    pool::set_num_threads(n);
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

/// A compiled function: the base class of `chainrule.Function`, which adds argument binding,
/// Dask and pickling in Python. Calls with exactly one Python float per input (the latency
/// path) are answered here without entering Python code; every other call goes to the
/// subclass's `_call`.
#[pyclass(frozen, subclass, module = "chainrule._core", name = "Function")]
struct Function {
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
enum Argument<'py> {
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
impl Function {
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
        Ok(Function {
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
    fn __call__<'py>(slf: &Bound<'py, Self>, args: &Bound<'py, PyTuple>, kwargs: Option<&Bound<'py, PyDict>>) -> PyResult<Bound<'py, PyAny>> {
        if kwargs.is_none_or(|k| k.is_empty()) {
            if let Some(result) = slf.get().call_scalars(slf.py(), args)? {
                return Ok(result);
            }
        }
        slf.call_method(intern!(slf.py(), "_call"), args, kwargs)
    }

    /// Evaluates on `args` (Python floats, or C-contiguous float64 arrays). Returns a list with,
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
        let mut data: Vec<&[f64]> = Vec::with_capacity(converted.len());
        for (a, s) in converted.iter().zip(&scalars) {
            data.push(match a {
                Argument::Scalar(_) => s,
                Argument::Array(arr) => arr.as_slice().map_err(|_| PyTypeError::new_err("array arguments must be C-contiguous and aligned float64"))?,
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

impl Function {
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

/// How often a running call checks Python's signal handlers.
const SIGNAL_CHECK: Duration = Duration::from_millis(50);

/// Runs a call with the GIL released. The calling thread evaluates chunks itself (beside the
/// pool's threads) and between its grabs of chunks, at most every 50 ms, checks Python's signal
/// handlers, so Ctrl-C cancels between chunks and raises KeyboardInterrupt promptly instead
/// of after the whole evaluation.
fn run_interruptibly(py: Python<'_>, f: &chainrule_core::Function, call: &Call, data: &[&[f64]], views: &mut [&mut [f64]]) -> PyResult<()> {
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
    let result = py.detach(|| guarded(|| f.run_watched(call, data, views, &mut stop)));
    match signal {
        Some(e) => Err(e),
        None => result,
    }
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
    m.add_class::<Function>()?;
    m.add_function(wrap_pyfunction!(constant, m)?)?;
    m.add_function(wrap_pyfunction!(var, m)?)?;
    m.add_function(wrap_pyfunction!(apply, m)?)?;
    m.add_function(wrap_pyfunction!(sum, m)?)?;
    m.add_function(wrap_pyfunction!(mean, m)?)?;
    m.add_function(wrap_pyfunction!(text, m)?)?;
    m.add_function(wrap_pyfunction!(parse, m)?)?;
    m.add_function(wrap_pyfunction!(grad, m)?)?;
    m.add_function(wrap_pyfunction!(encode, m)?)?;
    m.add_function(wrap_pyfunction!(decode, m)?)?;
    m.add_function(wrap_pyfunction!(live_nodes, m)?)?;
    m.add_function(wrap_pyfunction!(release_memory, m)?)?;
    m.add_function(wrap_pyfunction!(variables, m)?)?;
    m.add_function(wrap_pyfunction!(substitute, m)?)?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(set_thread_override, m)?)?;
    Ok(())
}
