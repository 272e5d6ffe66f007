//! Arrays of expressions, built a block at a time: the elements of an array variable, an op
//! applied elementwise, sums along an axis and matrix products, each one call over a flat,
//! row-major list of element nodes. Shapes, broadcasting and indexing are the caller's (the
//! Python `ExprArray` does them with NumPy on arrays of element positions), so a 784x30 layer
//! is a handful of calls here, not a loop in Python over its 23,520 elements.
//!
//! A matrix product's element is the dot product `a[i,0]*b[0,j] + a[i,1]*b[1,j] + ...`
//! summed left to right, one node per product and per partial sum; the compiler recognises
//! these chains (see `compile::dense`) and runs groups of them as matrix products.

use crate::build;
use crate::error::{Error, Result};
use crate::expr::Expr;
use crate::ops::Op;

/// The elements of an array variable `name` of `shape`, in row-major order, named
/// `name[i,j,...]` (so they print and parse as `W[3,7]`); the one element of a 0-d array is
/// the variable `name` itself.
pub fn vars(name: &str, shape: &[usize]) -> Result<Vec<Expr>> {
    if !build::is_valid_name(name) || name.contains('[') {
        return Err(Error::InvalidName(name.to_string()));
    }
    if shape.is_empty() {
        return Ok(vec![build::var(name)?]);
    }
    let size = shape
        .iter()
        .try_fold(1usize, |acc, &n| acc.checked_mul(n))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| Error::Unsupported(format!("an array variable of shape {shape:?} has more than {MAX_ELEMENTS} elements")))?;
    let mut index = vec![0usize; shape.len()];
    let mut out = Vec::with_capacity(size);
    for _ in 0..size {
        let parts: Vec<String> = index.iter().map(usize::to_string).collect();
        out.push(build::var(&format!("{name}[{}]", parts.join(",")))?);
        for axis in (0..shape.len()).rev() {
            index[axis] += 1;
            if index[axis] < shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    Ok(out)
}

/// The most elements an array variable may have (each is a node and, compiled, an argument).
pub const MAX_ELEMENTS: usize = 1 << 26;

/// `op` applied to each element of `a` (and, for a binary op, the element of `b` at the same
/// position: the caller has broadcast both to one length).
pub fn apply(op: Op, a: &[Expr], b: Option<&[Expr]>) -> Result<Vec<Expr>> {
    match b {
        None if op.arity() == 1 => Ok(a.iter().map(|x| build::apply(op, x, None)).collect()),
        Some(b) if op.arity() == 2 && a.len() == b.len() => Ok(a.iter().zip(b).map(|(x, y)| build::apply(op, x, Some(y))).collect()),
        Some(b) if op.arity() == 2 => Err(Error::Internal(format!("{} of {} and {} elements", op.name(), a.len(), b.len()))),
        _ => Err(Error::Internal(format!("{} takes {} operand(s)", op.name(), op.arity()))),
    }
}

/// The sum of each run of `k` consecutive elements of `items` (a row-major array whose last
/// axis has length `k`), left to right; an empty run sums to 0.
pub fn sum_runs(items: &[Expr], k: usize) -> Result<Vec<Expr>> {
    if k == 0 {
        return Ok(vec![build::constant(0.0)]);
    }
    if !items.len().is_multiple_of(k) {
        return Err(Error::Internal(format!("{} elements do not split into runs of {k}", items.len())));
    }
    Ok(items.chunks(k).map(|run| run[1..].iter().fold(run[0].clone(), |acc, x| build::add(&acc, x))).collect())
}

/// The matrix product of `a` (`n x k`, row-major) and `b` (`k x m`), `n x m` row-major: each
/// element the dot product of a row of `a` and a column of `b`, summed left to right (see the
/// module doc). With `k = 0` every element is 0.
pub fn matmul(a: &[Expr], b: &[Expr], n: usize, k: usize, m: usize) -> Result<Vec<Expr>> {
    if a.len() != n * k || b.len() != k * m {
        return Err(Error::Internal(format!("matmul of {} and {} elements as ({n}, {k}) @ ({k}, {m})", a.len(), b.len())));
    }
    let mut out = Vec::with_capacity(n * m);
    for i in 0..n {
        for j in 0..m {
            let mut acc: Option<Expr> = None;
            for p in 0..k {
                let term = build::mul(&a[i * k + p], &b[p * m + j]);
                acc = Some(match acc {
                    None => term,
                    Some(s) => build::add(&s, &term),
                });
            }
            out.push(acc.unwrap_or_else(|| build::constant(0.0)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::print::to_text;

    #[test]
    fn elements_are_named_as_they_parse() {
        let w = vars("W", &[2, 3]).unwrap();
        assert_eq!(w.len(), 6);
        assert_eq!(to_text(&[w[5].clone()]), "W[1,2]");
        assert_eq!(crate::parse::parse_one("W[1, 2]").unwrap(), w[5]);
        assert!(vars("W[0]", &[2]).is_err());
        assert!(vars("sin", &[2]).is_err());
        assert_eq!(vars("s", &[]).unwrap().len(), 1);
    }

    #[test]
    fn matmul_is_rows_dot_columns() {
        let a = vars("A", &[2, 2]).unwrap();
        let x = vars("x", &[2]).unwrap();
        let y = matmul(&a, &x, 2, 2, 1).unwrap();
        assert_eq!(to_text(&y[1..]), "A[1,0] * x[0] + A[1,1] * x[1]");
        assert!(matmul(&a, &x, 2, 3, 1).is_err());
        assert_eq!(to_text(&sum_runs(&x, 2).unwrap()), "x[0] + x[1]");
    }
}
