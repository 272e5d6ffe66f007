//! Memory follows references: dropped graphs leave the weak intern table. Alone in its own
//! test binary, so no other test's nodes come and go while it counts.

mod common;
use chainrule_core::build;
use common::*;

#[test]
fn dropped_graphs_leave_the_intern_table() {
    let before = chainrule_core::expr::live_nodes();
    for k in 0..200 {
        let x = v("leak_probe");
        let e = build::exp(&build::add(&build::add(&x, &build::constant(k as f64 + 0.5)), &build::constant(100.0)));
        drop(grad(&e, std::slice::from_ref(&x)));
    }
    let after = chainrule_core::expr::live_nodes();
    assert!(after < before + 50, "{before} -> {after} live nodes");
}
