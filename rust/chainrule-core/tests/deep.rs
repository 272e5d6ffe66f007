//! A chain a million deep goes through every algorithm on the default 2 MiB test-thread stack:
//! anything recursive would overflow.

mod common;
use chainrule_core::{build, parse, print, serial, Function};
use common::*;

const DEPTH: usize = 1_000_000;

#[test]
fn million_deep_chain() {
    let x = v("x");
    let mut e = x.clone();
    for _ in 0..DEPTH {
        e = build::add(&build::mul(&build::constant(0.5), &e), &x);
    }
    let text = print::to_text(std::slice::from_ref(&e));
    assert_eq!(parse::parse_one(&text).expect("parses"), e);
    let bytes = serial::encode(std::slice::from_ref(&e));
    assert_eq!(serial::decode(&bytes).expect("loads"), vec![e.clone()]);
    let d = grad(&e, std::slice::from_ref(&x)).remove(0);
    let f = Function::new(&[e.clone(), d.clone()], std::slice::from_ref(&x)).expect("compiles");
    let call = f.prepare(&[vec![3]]).expect("shapes");
    let (mut value, mut slope) = (vec![0.0; 3], vec![0.0; 3]);
    f.run(&call, &[&[1.0, 2.0, 0.0]], &mut [&mut value, &mut slope]).expect("runs");
    // e = x * (1 + 1/2 + 1/4 + ...) = 2x in the limit; de/dx = 2.
    assert!(rel(value[1], 4.0) < 1e-12 && rel(slope[0], 2.0) < 1e-12, "{value:?} {slope:?}");
    drop((e, d, f, text));
}

#[test]
fn dropping_a_deep_chain_does_not_recurse() {
    let mut e = v("y");
    for _ in 0..DEPTH {
        e = build::sin(&e);
    }
    drop(e);
}
