//! Symbolic reverse mode, graph to graph.
//!
//! Gradients are taken element by element (DESIGN.md): each element of an output is
//! differentiated with respect to the element of the variable's argument it was computed from,
//! and a reduction sums. Within the per-sample region of a root (what it reaches without
//! crossing a `sum`) one reverse sweep gives the partial adjoints of the variables and of the
//! `sum` nodes on its frontier. A frontier reduction `r = sum(g, over=V)` depends on `w`
//! through all the samples it adds up, so its derivative is itself a reduction,
//! `D(r, w) = sum(dg/dw, over=V + {w})`, summed only over the samples that share `r`'s group
//! and `w`'s element. The total derivative is then `adj[w] + sum over r of adj[r] * D(r, w)`.
//! Reductions are visited children first, so each `D` is built from `D`s already known: one
//! sweep per reduction boundary, each linear in its region.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::build::{add, constant, mul, sum_over_set};
use crate::expr::{Expr, Kind, Over};
use crate::graph::{Graph, NodeId};

/// Derivatives of `output` with respect to each variable in `wrt` (zero where independent).
/// The `wrt` expressions must be variables; the caller checks.
pub fn grad(output: &Expr, wrt: &[Expr]) -> Vec<Expr> {
    let graph = Graph::new(std::slice::from_ref(output));
    let wrt_ids: Vec<Option<NodeId>> = wrt.iter().map(|w| graph.id_of(w)).collect();
    let active = active_nodes(&graph, &wrt_ids);
    let mut reductions: FxHashMap<NodeId, Vec<Option<Expr>>> = FxHashMap::default();
    for id in graph.ids() {
        if let Kind::Sum(over) = graph.node(id).kind() {
            let operand = graph.args[id.index()][0].expect("sum has an operand");
            if !active[operand.index()] {
                continue;
            }
            let totals = totals(&graph, operand, &wrt_ids, &active, &reductions);
            let d = totals
                .iter()
                .zip(wrt)
                .map(|(t, w)| t.as_ref().map(|t| sum_over_set(t, with_var(over, w))))
                .collect();
            reductions.insert(id, d);
        }
    }
    let root = graph.roots[0];
    let totals = if active[root.index()] { totals(&graph, root, &wrt_ids, &active, &reductions) } else { vec![None; wrt.len()] };
    totals.into_iter().map(|t| t.unwrap_or_else(|| constant(0.0))).collect()
}

/// Marks the nodes that depend on any variable in `wrt`, through anything.
fn active_nodes(graph: &Graph, wrt: &[Option<NodeId>]) -> Vec<bool> {
    let mut active = vec![false; graph.len()];
    for w in wrt.iter().flatten() {
        active[w.index()] = true;
    }
    for id in graph.ids() {
        if graph.args[id.index()].iter().flatten().any(|a| active[a.index()]) {
            active[id.index()] = true;
        }
    }
    active
}

fn with_var(over: &Over, w: &Expr) -> Over {
    let name: Arc<str> = Arc::from(w.as_var().expect("wrt holds variables"));
    let mut names: Vec<Arc<str>> = over.to_vec();
    if !names.contains(&name) {
        names.push(name);
        names.sort();
    }
    names.into()
}

/// Total per-sample derivatives of `root` with respect to each `wrt`: one reverse sweep over
/// the root's per-sample region, then the frontier reductions' contributions.
fn totals(
    graph: &Graph,
    root: NodeId,
    wrt: &[Option<NodeId>],
    active: &[bool],
    reductions: &FxHashMap<NodeId, Vec<Option<Expr>>>,
) -> Vec<Option<Expr>> {
    let adjoint = sweep(graph, root, active);
    let by_id: FxHashMap<NodeId, &Expr> = adjoint.iter().map(|(id, a)| (*id, a)).collect();
    let mut totals: Vec<Option<Expr>> = wrt.iter().map(|w| w.and_then(|w| by_id.get(&w).map(|a| (*a).clone()))).collect();
    for (node, adj) in &adjoint {
        let Some(d) = reductions.get(node) else { continue };
        for (total, d) in totals.iter_mut().zip(d) {
            if let Some(d) = d {
                accumulate(total, mul(adj, d));
            }
        }
    }
    totals
}

fn accumulate(slot: &mut Option<Expr>, contribution: Expr) {
    *slot = Some(match slot.take() {
        Some(sum) => add(&sum, &contribution),
        None => contribution,
    });
}

/// Reverse sweep from `root` (seed 1) over its region, stopping at `sum` nodes. Returns the
/// adjoint of every active leaf of the region (variables and frontier reductions), in
/// topological order so that the graphs built from them do not depend on hashing.
fn sweep(graph: &Graph, root: NodeId, active: &[bool]) -> Vec<(NodeId, Expr)> {
    let region = region(graph, root, active);
    let mut adjoint: FxHashMap<NodeId, Expr> = FxHashMap::default();
    adjoint.insert(root, constant(1.0));
    let mut leaves = Vec::new();
    for &id in region.iter().rev() {
        let Some(adj) = adjoint.remove(&id) else { continue };
        let node = graph.node(id);
        let op = match node.kind() {
            Kind::Apply(op) => *op,
            _ => {
                leaves.push((id, adj));
                continue;
            }
        };
        let args = graph.args[id.index()];
        let a = node.arg0().expect("ops have an operand");
        let b = node.arg1().unwrap_or(a);
        let need = [0, 1].map(|i| args[i].is_some_and(|x| active[x.index()]));
        for (contribution, arg) in op.pullback(a, b, node, &adj, need).into_iter().zip(args) {
            if let (Some(c), Some(arg)) = (contribution, arg) {
                if active[arg.index()] {
                    let mut slot = adjoint.remove(&arg);
                    accumulate(&mut slot, c);
                    adjoint.insert(arg, slot.expect("just accumulated"));
                }
            }
        }
    }
    leaves.reverse();
    leaves
}

/// The active nodes reachable from `root` without entering a `sum`, in topological order.
fn region(graph: &Graph, root: NodeId, active: &[bool]) -> Vec<NodeId> {
    let mut seen = rustc_hash::FxHashSet::default();
    let mut stack = vec![root];
    let mut found = Vec::new();
    while let Some(id) = stack.pop() {
        if !active[id.index()] || !seen.insert(id) {
            continue;
        }
        found.push(id);
        if !matches!(graph.node(id).kind(), Kind::Sum(_)) {
            stack.extend(graph.args[id.index()].iter().flatten());
        }
    }
    found.sort_unstable();
    found
}
