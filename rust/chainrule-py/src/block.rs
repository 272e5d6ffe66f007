//! `Block`: the elements of a `chainrule.ExprArray`, a flat list of expressions held in Rust.
//! The Python class keeps the shape and an array of element positions, and does indexing,
//! slicing, transposes and broadcasting with NumPy on those positions; every function here
//! builds a whole array of nodes in one call, so that a layer of a network is a handful of
//! calls rather than a Python call per element.

use chainrule_core::{array, build, print, serial, Expr};
use numpy::{PyReadonlyArray1, PyReadonlyArrayDyn};
use pyo3::exceptions::{PyIndexError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::guarded;
use crate::expr::{expr_of, op_named, variables_of, NewExpr, PyExpr};

/// The elements of an expression array, in the order its positions refer to.
#[pyclass(frozen, module = "chainrule._core", name = "Block")]
pub(crate) struct Block(pub(crate) Vec<Expr>);

fn positions(block: &Block, index: &PyReadonlyArrayDyn<'_, isize>) -> PyResult<Vec<Expr>> {
    let n = block.0.len();
    let index = index.as_array();
    let mut out = Vec::with_capacity(index.len());
    for &i in index.iter() {
        let at = usize::try_from(i).ok().filter(|&i| i < n).ok_or_else(|| PyIndexError::new_err(format!("position {i} of {n}")))?;
        out.push(block.0[at].clone());
    }
    Ok(out)
}

#[pymethods]
impl Block {
    fn __len__(&self) -> usize {
        self.0.len()
    }

    /// The elements at `index` (any shape, read in C order), as a new block.
    fn take(&self, index: PyReadonlyArrayDyn<'_, isize>) -> PyResult<Block> {
        positions(self, &index).map(Block)
    }

    /// The elements at `index` as expressions.
    fn items(&self, index: PyReadonlyArrayDyn<'_, isize>) -> PyResult<Vec<NewExpr>> {
        Ok(positions(self, &index)?.into_iter().map(NewExpr).collect())
    }

    /// Whether each element is a variable.
    fn are_variables(&self) -> Vec<bool> {
        self.0.iter().map(|e| e.as_var().is_some()).collect()
    }

    /// The elements' text, one string each (shared subexpressions printed in full).
    fn texts(&self, py: Python<'_>) -> Vec<String> {
        py.detach(|| self.0.iter().map(|e| print::to_text(std::slice::from_ref(e))).collect())
    }

    /// The elements' text, printed together (shared subexpressions named once).
    fn text(&self, py: Python<'_>) -> String {
        py.detach(|| print::to_text(&self.0))
    }

    fn encode<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let bytes = py.detach(|| serial::encode(&self.0));
        PyBytes::new(py, &bytes)
    }
}

/// The elements of an array variable `name` of `shape` (`name[i,j]`).
#[pyfunction]
pub(crate) fn block_vars(name: &str, shape: Vec<usize>) -> PyResult<Block> {
    guarded(|| array::vars(name, &shape)).map(Block)
}

/// Constants, one per value.
#[pyfunction]
pub(crate) fn block_constants(values: PyReadonlyArray1<'_, f64>) -> Block {
    Block(values.as_array().iter().map(|&v| build::constant(v)).collect())
}

/// Expressions and numbers, as a block.
#[pyfunction]
pub(crate) fn block_of(items: Vec<Bound<'_, PyAny>>) -> PyResult<Block> {
    items.iter().map(expr_of).collect::<PyResult<Vec<_>>>().map(Block)
}

/// A block decoded from `Block.encode`'s bytes.
#[pyfunction]
pub(crate) fn block_decode(py: Python<'_>, data: &[u8]) -> PyResult<Block> {
    py.detach(|| guarded(|| serial::decode(data))).map(Block)
}

/// `op` elementwise over `a` (and `b`, of the same length).
#[pyfunction]
#[pyo3(signature = (op, a, b=None))]
pub(crate) fn block_apply(py: Python<'_>, op: &str, a: &Block, b: Option<&Block>) -> PyResult<Block> {
    let op = op_named(op)?;
    py.detach(|| guarded(|| array::apply(op, &a.0, b.map(|b| b.0.as_slice())))).map(Block)
}

/// `where(c, a, b)` elementwise (three blocks of one length).
#[pyfunction]
pub(crate) fn block_where(py: Python<'_>, c: &Block, a: &Block, b: &Block) -> PyResult<Block> {
    same_lengths(&[c, a, b])?;
    Ok(Block(py.detach(|| c.0.iter().zip(&a.0).zip(&b.0).map(|((c, a), b)| build::where_(c, a, b)).collect())))
}

/// `clip(a, lo, hi)` elementwise (three blocks of one length).
#[pyfunction]
pub(crate) fn block_clip(py: Python<'_>, a: &Block, lo: &Block, hi: &Block) -> PyResult<Block> {
    same_lengths(&[a, lo, hi])?;
    Ok(Block(py.detach(|| a.0.iter().zip(&lo.0).zip(&hi.0).map(|((a, lo), hi)| build::clip(a, lo, hi)).collect())))
}

fn same_lengths(blocks: &[&Block]) -> PyResult<()> {
    if blocks.iter().any(|b| b.0.len() != blocks[0].0.len()) {
        return Err(PyTypeError::new_err("elementwise operands must be broadcast to one length first"));
    }
    Ok(())
}

/// Batch reductions of each element: `sum` (over the variables `over`, or the whole batch)
/// or `mean`.
#[pyfunction]
#[pyo3(signature = (kind, a, over=Vec::new()))]
pub(crate) fn block_reduce(py: Python<'_>, kind: &str, a: &Block, over: Vec<String>) -> PyResult<Block> {
    if let Some(bad) = over.iter().find(|n| !build::is_valid_name(n)) {
        return Err(PyTypeError::new_err(format!("over= takes variable names, not {bad:?}")));
    }
    match kind {
        "sum" => Ok(Block(py.detach(|| a.0.iter().map(|e| build::sum_over(e, &over)).collect()))),
        "mean" => Ok(Block(py.detach(|| a.0.iter().map(build::mean).collect()))),
        _ => Err(PyTypeError::new_err(format!("unknown reduction {kind:?}"))),
    }
}

/// The sum of each run of `k` consecutive elements.
#[pyfunction]
pub(crate) fn block_sum_runs(py: Python<'_>, a: &Block, k: usize) -> PyResult<Block> {
    py.detach(|| guarded(|| array::sum_runs(&a.0, k))).map(Block)
}

/// The matrix product of `a` (`n x k`) and `b` (`k x m`), both row-major.
#[pyfunction]
pub(crate) fn block_matmul(py: Python<'_>, a: &Block, b: &Block, n: usize, k: usize, m: usize) -> PyResult<Block> {
    py.detach(|| guarded(|| array::matmul(&a.0, &b.0, n, k, m))).map(Block)
}

/// The gradient of `output` with respect to each variable of `wrt`, in its order.
#[pyfunction]
pub(crate) fn block_grad(py: Python<'_>, output: PyRef<'_, PyExpr>, wrt: &Block) -> PyResult<Block> {
    if let Some(bad) = wrt.0.iter().find(|e| e.as_var().is_none()) {
        let shown = print::to_text(std::slice::from_ref(bad));
        return Err(PyTypeError::new_err(format!("can only differentiate with respect to variables, not {shown}")));
    }
    let output = output.0.clone();
    py.detach(|| guarded(|| chainrule_core::grad::grad(&output, &wrt.0))).map(Block)
}

/// `a` with each variable of `from` replaced by the expression at the same position of `to`.
#[pyfunction]
pub(crate) fn block_substitute(py: Python<'_>, a: &Block, from: Vec<Bound<'_, PyAny>>, to: Vec<Bound<'_, PyAny>>) -> PyResult<Block> {
    let from = variables_of(&from, "can only substitute variables")?;
    let to = to.iter().map(expr_of).collect::<PyResult<Vec<_>>>()?;
    let pairs: Vec<(Expr, Expr)> = from.into_iter().zip(to).collect();
    Ok(Block(py.detach(|| chainrule_core::substitute(&a.0, &pairs))))
}

/// The blocks one after another, as one block.
#[pyfunction]
pub(crate) fn block_concat(blocks: Vec<PyRef<'_, Block>>) -> Block {
    Block(blocks.iter().flat_map(|b| b.0.iter().cloned()).collect())
}
