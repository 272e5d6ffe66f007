//! The `Expr` class and the functions that build, print, parse, differentiate and substitute
//! expressions, and the op table as Python reads it (`_core.OPS`).

use std::collections::HashMap;
use std::sync::LazyLock;

use chainrule_core::{build, error::Error, ops::Op, print, serial, Expr, Graph, Kind};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyFloat, PyInt, PyString, PyTuple};
use pyo3::IntoPyObjectExt;

use crate::errors::{guarded, to_py};

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
pub(crate) struct PyExpr(pub(crate) Expr);

pub(crate) fn exprs(list: Vec<PyRef<'_, PyExpr>>) -> Vec<Expr> {
    list.iter().map(|n| n.0.clone()).collect()
}

pub(crate) fn wrap(list: Vec<Expr>) -> Vec<NewExpr> {
    list.into_iter().map(NewExpr).collect()
}

/// An expression on its way to Python, as a `PyExpr` object that Python's cycle collector
/// does not track. PyO3 makes every class collectable, but an expression holds no Python
/// objects, so it can be in no cycle, and tracked ones made each collection call PyO3's
/// traverse on every live expression (W5 at n = 10,000, paired medians of 10 runs with the
/// collector off: grad 27.1 -> 25.1 ms).
pub(crate) struct NewExpr(pub(crate) Expr);

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
pub(crate) fn expr_helper<'py>(py: Python<'py>, cell: &'static PyOnceLock<Py<PyAny>>, name: &str) -> PyResult<&'py Bound<'py, PyAny>> {
    cell.get_or_try_init(py, || Ok::<_, PyErr>(py.import("chainrule.expr")?.getattr(name)?.unbind())).map(|f| f.bind(py))
}

/// `value` as an expression: itself, or a number promoted to a constant. Python floats and
/// integers that fit 64 bits are read here, with no Python object made for the constant (the
/// operators' hot path: `2 * x`, `x ** 2`); anything else goes to `chainrule.expr.as_expr`,
/// which raises the TypeError for what cannot be one.
pub(crate) fn expr_of(value: &Bound<'_, PyAny>) -> PyResult<Expr> {
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
pub(crate) fn as_expr<'py>(value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyExpr>> {
    match value.cast::<PyExpr>() {
        Ok(e) => Ok(e.clone()),
        Err(_) => NewExpr(expr_of(value)?).into_pyobject(value.py()),
    }
}

/// `value` as an operand (see [`expr_of`]); None for what cannot be one, so that the operator
/// returns NotImplemented and Python raises its own TypeError.
pub(crate) fn operand(value: &Bound<'_, PyAny>) -> PyResult<Option<Expr>> {
    match expr_of(value) {
        Ok(e) => Ok(Some(e)),
        Err(e) if e.is_instance_of::<PyTypeError>(value.py()) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The expressions of `items`, which must all be variables; else a TypeError naming the first
/// that is not: "`what`, not `repr(item)`".
pub(crate) fn variables_of(items: &[Bound<'_, PyAny>], what: &str) -> PyResult<Vec<Expr>> {
    let mut found = Vec::with_capacity(items.len());
    for item in items {
        match item.cast::<PyExpr>() {
            Ok(e) if e.get().0.as_var().is_some() => found.push(e.get().0.clone()),
            _ => return Err(PyTypeError::new_err(format!("{what}, not {}", item.repr()?))),
        }
    }
    Ok(found)
}

pub(crate) fn binary(py: Python<'_>, op: Op, a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    match (operand(a)?, operand(b)?) {
        (Some(a), Some(b)) => NewExpr(build::apply(op, &a, Some(&b))).into_py_any(py),
        _ => Ok(py.NotImplemented()),
    }
}

/// `a ** b`. Three-argument `pow` has no meaning for expressions: NotImplemented, so Python
/// raises its TypeError.
pub(crate) fn power(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>, modulo: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
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
        Err(PyTypeError::new_err(
            "an expression has no truth value (a comparison such as x < y is 0.0 or 1.0 per sample): compile it, \
             e.g. cr.compile(x < y, inputs=[x, y])(xs, ys), and test the values; for structure use ==",
        ))
    }

    // piecewise, comparisons and logic: `<` ... `>=` build 0/1 comparisons; `==` and `!=` stay
    // structural equality (hashing), cr.equal and cr.not_equal compare values.
    fn __lt__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binary(slf.py(), Op::Less, slf, other)
    }

    fn __le__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binary(slf.py(), Op::LessEqual, slf, other)
    }

    fn __gt__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binary(slf.py(), Op::Greater, slf, other)
    }

    fn __ge__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binary(slf.py(), Op::GreaterEqual, slf, other)
    }

    fn __mod__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binary(slf.py(), Op::Mod, slf, other)
    }

    fn __rmod__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binary(slf.py(), Op::Mod, other, slf)
    }

    fn __and__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binary(slf.py(), Op::And, slf, other)
    }

    fn __rand__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binary(slf.py(), Op::And, other, slf)
    }

    fn __or__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binary(slf.py(), Op::Or, slf, other)
    }

    fn __ror__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binary(slf.py(), Op::Or, other, slf)
    }

    fn __invert__(&self) -> NewExpr {
        NewExpr(build::apply(Op::Not, &self.0, None))
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
            Kind::Const(_) => "const".into(),
            Kind::Var(_) => "var".into(),
            Kind::Sum(_) => "sum".into(),
            Kind::Apply(op) => kind_name(*op),
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
            Kind::Sum(over) => over.iter().map(|s| s.to_string()).collect(),
            _ => Vec::new(),
        }
    }
}

#[pyfunction]
pub(crate) fn constant(value: f64) -> NewExpr {
    NewExpr(build::constant(value))
}

#[pyfunction]
pub(crate) fn var(name: &str) -> PyResult<NewExpr> {
    guarded(|| build::var(name)).map(NewExpr)
}

/// Ops by the lowercase name of their variant ("add", "sin", ...), as Python names them.
pub(crate) static OPS_BY_KIND: LazyLock<HashMap<String, Op>> = LazyLock::new(|| Op::ALL.iter().map(|op| (kind_name(*op), *op)).collect());

pub(crate) fn kind_name(op: Op) -> String {
    format!("{op:?}").to_lowercase()
}

/// One row of the op table, as Python reads it in `_core.OPS`: the name Python gives the op
/// (`kind`), its spelling in text, arity, binding strength when infix (`precedence`, None for a
/// call), whether it is an infix operator, and the domain its tests sample. It unpacks as
/// `(kind, text, arity, domain)`, the form the tests' sweeps read.
#[pyclass(frozen, get_all, module = "chainrule._core", name = "OpInfo")]
pub(crate) struct OpInfo {
    kind: String,
    text: &'static str,
    arity: usize,
    precedence: Option<u8>,
    infix: bool,
    domain: (f64, f64),
}

impl OpInfo {
    pub(crate) fn new(op: Op) -> OpInfo {
        OpInfo {
            kind: kind_name(op),
            text: op.name(),
            arity: op.arity(),
            precedence: op.infix(),
            infix: op.infix().is_some(),
            domain: op.domain(),
        }
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

pub(crate) fn op_named(name: &str) -> PyResult<Op> {
    OPS_BY_KIND.get(name).copied().ok_or_else(|| PyValueError::new_err(format!("unknown op '{name}'")))
}

/// `op` of its operands, expressions or numbers (promoted as by [`expr_of`]).
#[pyfunction]
#[pyo3(signature = (op, a, b=None))]
pub(crate) fn apply(op: &str, a: &Bound<'_, PyAny>, b: Option<&Bound<'_, PyAny>>) -> PyResult<NewExpr> {
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
pub(crate) fn sum(a: PyRef<'_, PyExpr>, over: Vec<String>) -> PyResult<NewExpr> {
    if let Some(bad) = over.iter().find(|n| !build::is_valid_name(n)) {
        return Err(to_py(Error::InvalidName(bad.clone())));
    }
    Ok(NewExpr(build::sum_over(&a.0, &over)))
}

#[pyfunction]
pub(crate) fn mean(a: PyRef<'_, PyExpr>) -> NewExpr {
    NewExpr(build::mean(&a.0))
}

#[pyfunction]
pub(crate) fn text(py: Python<'_>, roots: Vec<PyRef<'_, PyExpr>>) -> String {
    let roots = exprs(roots);
    py.detach(|| print::to_text(&roots))
}

#[pyfunction]
pub(crate) fn latex(py: Python<'_>, roots: Vec<PyRef<'_, PyExpr>>) -> String {
    let roots = exprs(roots);
    py.detach(|| print::to_latex(&roots))
}

#[pyfunction]
pub(crate) fn parse(py: Python<'_>, source: &str) -> PyResult<Vec<NewExpr>> {
    py.detach(|| guarded(|| chainrule_core::parse::parse(source))).map(wrap)
}

#[pyfunction]
pub(crate) fn grad(py: Python<'_>, output: PyRef<'_, PyExpr>, wrt: Vec<Bound<'_, PyAny>>) -> PyResult<Vec<NewExpr>> {
    let output = output.0.clone();
    let wrt = variables_of(&wrt, "can only differentiate with respect to a variable")?;
    py.detach(|| guarded(|| chainrule_core::grad::grad(&output, &wrt))).map(wrap)
}

#[pyfunction]
pub(crate) fn encode<'py>(py: Python<'py>, roots: Vec<PyRef<'_, PyExpr>>) -> Bound<'py, PyBytes> {
    let roots = exprs(roots);
    let bytes = py.detach(|| serial::encode(&roots));
    PyBytes::new(py, &bytes)
}

#[pyfunction]
pub(crate) fn decode(py: Python<'_>, data: &[u8]) -> PyResult<Vec<NewExpr>> {
    py.detach(|| guarded(|| serial::decode(data))).map(wrap)
}

#[pyfunction]
pub(crate) fn substitute(
    py: Python<'_>,
    roots: Vec<PyRef<'_, PyExpr>>,
    replacements: Vec<(PyRef<'_, PyExpr>, PyRef<'_, PyExpr>)>,
) -> Vec<NewExpr> {
    let roots = exprs(roots);
    let pairs: Vec<(Expr, Expr)> = replacements.iter().map(|(f, t)| (f.0.clone(), t.0.clone())).collect();
    wrap(py.detach(|| chainrule_core::substitute(&roots, &pairs)))
}

#[pyfunction]
pub(crate) fn variables(roots: Vec<PyRef<'_, PyExpr>>) -> Vec<String> {
    variables_in(&exprs(roots)).iter().filter_map(|v| v.as_var().map(str::to_string)).collect()
}

/// The variables `roots` use, sorted by name.
pub(crate) fn variables_in(roots: &[Expr]) -> Vec<Expr> {
    let graph = Graph::new(roots);
    let mut found: Vec<Expr> = graph.nodes().iter().filter(|n| n.as_var().is_some()).cloned().collect();
    found.sort_by(|a, b| a.as_var().cmp(&b.as_var()));
    found
}
