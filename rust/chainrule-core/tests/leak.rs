//! Memory follows references: dropped graphs leave the weak intern table. In their own test
//! binary, one test at a time, so no other test's nodes come and go while they count.

mod common;
use std::sync::Mutex;

use chainrule_core::{build, Expr};
use common::*;

static ALONE: Mutex<()> = Mutex::new(());

#[test]
fn dropped_graphs_leave_the_intern_table() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let before = chainrule_core::expr::live_nodes();
    for k in 0..200 {
        let x = v("leak_probe");
        let e = build::exp(&build::add(&build::add(&x, &build::constant(k as f64 + 0.5)), &build::constant(100.0)));
        drop(grad(&e, std::slice::from_ref(&x)));
    }
    let after = chainrule_core::expr::live_nodes();
    assert!(after < before + 50, "{before} -> {after} live nodes");
}

/// Differentiation builds almost only nodes its results keep: signs travel with the adjoints
/// rather than as negations that the next pullback or sum takes apart (`ops::Signed`). A result
/// that ends negative may build one node more (`-(2 * y)` is spelled `-2 * y`). Node ids are
/// handed out in order, so a fresh variable before and after counts what grad created (829
/// nodes for 509 kept when negations were built at once).
#[test]
fn gradients_build_at_most_one_node_per_result_they_do_not_keep() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let xs: Vec<Expr> = (0..40).map(|i| v(&format!("dead_probe_x{i}"))).collect();
    let neg_sq = |a: &Expr| build::exp(&build::neg(&build::mul(a, a)));
    // W5's terms, and negations from subtraction, cos and a quotient's denominator.
    let mut f = neg_sq(&xs[0]);
    for w in xs.windows(2) {
        f = build::add(&build::add(&f, &build::sin(&build::mul(&w[0], &w[1]))), &neg_sq(&w[1]));
        f = build::sub(&f, &build::div(&build::cos(&w[0]), &build::add(&w[1], &build::constant(3.0))));
    }
    let live = chainrule_core::expr::live_nodes();
    let first = v("dead_probe_before").id();
    let gradient = grad(&f, &xs);
    let created = v("dead_probe_after").id() - first - 1;
    let kept = chainrule_core::expr::live_nodes() - live - 2;
    assert!(created as usize <= kept + xs.len(), "grad created {created} nodes and kept {kept}");
    drop(gradient);
}
