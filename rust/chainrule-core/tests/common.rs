//! Helpers shared by the integration tests (included with `mod common;`).
#![allow(dead_code)]

use chainrule_core::{build, parse, Expr};

/// Parses one expression, panicking with the parse error on failure.
pub fn p(text: &str) -> Expr {
    parse::parse_one(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

/// Derivatives of `e` with respect to `wrt`, panicking on a derivative the core refuses.
pub fn grad(e: &Expr, wrt: &[Expr]) -> Vec<Expr> {
    chainrule_core::grad::grad(e, wrt).unwrap_or_else(|err| panic!("grad of {e:?}: {err}"))
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

/// Deterministic pseudo-random values in [lo, hi) (xorshift; the same for a seed everywhere).
pub fn values(n: usize, seed: u64, lo: f64, hi: f64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            lo + (hi - lo) * ((s >> 11) as f64 / (1u64 << 53) as f64)
        })
        .collect()
}
