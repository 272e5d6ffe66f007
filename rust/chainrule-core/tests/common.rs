//! Helpers shared by the integration tests (included with `mod common;`).
#![allow(dead_code)]

use chainrule_core::{build, parse, Expr};

/// Parses one expression, panicking with the parse error on failure.
pub fn p(text: &str) -> Expr {
    parse::parse_one(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

/// A variable.
pub fn v(name: &str) -> Expr {
    build::var(name).expect("valid name")
}

/// Evaluates a per-sample expression at one point with the reference evaluator.
pub fn at(e: &Expr, point: &[(&str, f64)]) -> f64 {
    let data: Vec<[f64; 1]> = point.iter().map(|(_, x)| [*x]).collect();
    let inputs: Vec<(&str, &[f64], &[usize])> = point.iter().zip(&data).map(|((n, _), d)| (*n, &d[..], &[][..])).collect();
    chainrule_core::reference::evaluate(std::slice::from_ref(e), &inputs).expect("evaluates")[0][0]
}

/// Relative distance that tolerates values near zero.
pub fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / (1.0 + a.abs().max(b.abs()))
}
