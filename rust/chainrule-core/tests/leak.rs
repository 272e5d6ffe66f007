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
    let before = chainrule_core::live_nodes();
    for k in 0..200 {
        let x = v("leak_probe");
        let e = build::exp(&build::add(&build::add(&x, &build::constant(k as f64 + 0.5)), &build::constant(100.0)));
        drop(grad(&e, std::slice::from_ref(&x)));
    }
    let after = chainrule_core::live_nodes();
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
    let live = chainrule_core::live_nodes();
    let first = v("dead_probe_before").id();
    let gradient = grad(&f, &xs);
    let created = v("dead_probe_after").id() - first - 1;
    let kept = chainrule_core::live_nodes() - live - 2;
    assert!(created as usize <= kept + xs.len(), "grad created {created} nodes and kept {kept}");
    drop(gradient);
}

/// Registry pages in use, once whatever the builders keep for good (shared constants) exists.
fn registry_pages_after_warm_up() -> usize {
    let x = v("registry_warm_up");
    drop(build::mul(&build::add(&build::sin(&x), &build::constant(0.5)), &x));
    chainrule_core::registry_pages()
}

/// The node registry (operand ids by node id, for graph walks) frees a page of records once
/// every node in it has died, so memory follows the live nodes there too.
#[test]
fn dropped_graphs_free_their_registry_pages() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let before = registry_pages_after_warm_up();
    let x = v("registry_probe_x");
    let chain = (0..50_000).fold(x.clone(), |e, k| build::add(&build::sin(&e), &build::constant(k as f64 + 0.25)));
    let grown = chainrule_core::registry_pages();
    assert!(grown >= before + 140, "{before} -> {grown} pages for 150,000 nodes");
    drop(chain);
    let after = chainrule_core::registry_pages();
    // The page that new ids are still being handed out from stays.
    assert!(after <= before + 1, "{before} -> {grown} -> {after} pages");
}

/// Threads that build, walk and drop graphs at once: every walk sees its own graph whole, and
/// afterwards the registry holds no page of the dead nodes.
#[test]
fn concurrent_builds_walks_and_drops_keep_the_registry_whole() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let before = registry_pages_after_warm_up();
    std::thread::scope(|s| {
        for t in 0..4 {
            s.spawn(move || {
                for round in 0..20 {
                    let x = v(&format!("registry_thread_{t}"));
                    let terms = 500 + 37 * round;
                    let e = (0..terms)
                        .fold(x.clone(), |e, k| build::mul(&build::add(&e, &build::constant((t * 100_000 + k) as f64 + 0.5)), &x));
                    let graph = chainrule_core::Graph::new(std::slice::from_ref(&e));
                    // x, and per term a constant, a sum and a product.
                    assert_eq!(graph.len(), 1 + 3 * terms);
                    let mut seen = std::collections::HashSet::new();
                    for id in graph.ids() {
                        for a in graph.args(id).iter().flatten() {
                            assert!(a < &id && seen.contains(a), "operands come first");
                        }
                        seen.insert(id);
                    }
                }
            });
        }
    });
    let after = chainrule_core::registry_pages();
    assert!(after <= before + 1, "{before} -> {after} pages");
}

/// A graph view keeps its nodes alive by itself: after the caller drops the roots it was built
/// from, every node stays until the view goes.
#[test]
fn a_graph_view_outlives_the_roots_it_was_built_from() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let before = chainrule_core::live_nodes();
    let x = v("view_owner_x");
    let e = build::exp(&build::add(&build::sin(&x), &build::constant(0.75)));
    let graph = chainrule_core::Graph::new(std::slice::from_ref(&e));
    let built = chainrule_core::live_nodes();
    drop((x, e));
    assert_eq!(chainrule_core::live_nodes(), built, "the view's nodes died with the roots");
    let names: Vec<String> = graph.nodes().iter().map(|n| format!("{n:?}")).collect();
    assert_eq!(names.last().map(String::as_str), Some("exp(sin(view_owner_x) + 0.75)"));
    drop(graph);
    assert!(chainrule_core::live_nodes() <= before, "{before} -> {} live nodes", chainrule_core::live_nodes());
}
