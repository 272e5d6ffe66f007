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

use crate::build::{add, apply, constant, mul, sum_over_set};
use crate::ops::Op;
use crate::expr::{Expr, Kind, Over};
use crate::graph::{Graph, NodeId};

/// Derivatives of `output` with respect to each variable in `wrt` (zero where independent).
/// The `wrt` expressions must be variables; the caller checks.
pub fn grad(output: &Expr, wrt: &[Expr]) -> Vec<Expr> {
    let graph = Graph::new(std::slice::from_ref(output));
    let wrt_ids: Vec<Option<NodeId>> = wrt.iter().map(|w| graph.id_of(w)).collect();
    let active = active_nodes(&graph, &wrt_ids);
    let mut sweeper = Sweeper::new(&graph, &active);
    // D(r, w) per reduction node r, per variable; reductions come children first.
    let mut reductions: Vec<Option<Vec<Option<Expr>>>> = vec![None; graph.len()];
    for id in graph.ids() {
        if let Kind::Sum(over) = graph.node(id).kind() {
            let operand = graph.args[id.index()][0].expect("sum has an operand");
            if !active[operand.index()] {
                continue;
            }
            let totals = sweeper.totals(operand, &wrt_ids, &reductions);
            let d = totals.iter().zip(wrt).map(|(t, w)| t.as_ref().map(|t| sum_over_set(t, with_var(over, w)))).collect();
            reductions[id.index()] = Some(d);
        }
    }
    let root = graph.roots[0];
    let totals = if active[root.index()] { sweeper.totals(root, &wrt_ids, &reductions) } else { vec![None; wrt.len()] };
    let results: Vec<Expr> = totals.into_iter().map(|t| t.unwrap_or_else(|| constant(0.0))).collect();
    if reductions.iter().all(Option::is_none) || !per_sample(&graph)[root.index()] {
        return results;
    }
    // Through a reduction, the derivative of a per-sample expression can be one value for the
    // whole batch; it is still a per-sample gradient and keeps the batch's shape.
    let derived = Graph::new(&results);
    let flags = per_sample(&derived);
    derived.roots.iter().zip(results).map(|(r, e)| if flags[r.index()] { e } else { apply(Op::PerSample, &e, None) }).collect()
}

/// Whether each node varies per sample: reaches a variable without crossing a reduction.
fn per_sample(graph: &Graph) -> Vec<bool> {
    let mut flags = vec![false; graph.len()];
    for id in graph.ids() {
        flags[id.index()] = match graph.node(id).kind() {
            Kind::Var(_) => true,
            Kind::Apply(Op::PerSample) => true,
            Kind::Const(_) | Kind::Sum(_) => false,
            Kind::Apply(_) => graph.args[id.index()].iter().flatten().any(|a| flags[a.index()]),
        };
    }
    flags
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

fn accumulate(slot: &mut Option<Expr>, contribution: Expr) {
    *slot = Some(match slot.take() {
        Some(sum) => add(&sum, &contribution),
        None => contribution,
    });
}

/// Reverse sweeps over one graph, with dense per-node scratch reused between sweeps (each
/// sweep clears only what it touched, so many small sweeps stay linear overall).
struct Sweeper<'g> {
    graph: &'g Graph,
    active: &'g [bool],
    adjoint: Vec<Option<Expr>>,
    in_region: Vec<bool>,
}

impl<'g> Sweeper<'g> {
    fn new(graph: &'g Graph, active: &'g [bool]) -> Self {
        Sweeper { graph, active, adjoint: vec![None; graph.len()], in_region: vec![false; graph.len()] }
    }

    /// Total per-sample derivatives of `root` with respect to each `wrt`: one reverse sweep
    /// over the root's per-sample region, then the frontier reductions' contributions.
    fn totals(&mut self, root: NodeId, wrt: &[Option<NodeId>], reductions: &[Option<Vec<Option<Expr>>>]) -> Vec<Option<Expr>> {
        let leaves = self.sweep(root);
        let mut totals: Vec<Option<Expr>> = wrt.iter().map(|w| w.and_then(|w| self.adjoint[w.index()].clone())).collect();
        for &leaf in &leaves {
            let Some(d) = &reductions[leaf.index()] else { continue };
            let adj = self.adjoint[leaf.index()].as_ref().expect("leaves have adjoints");
            for (total, d) in totals.iter_mut().zip(d) {
                if let Some(d) = d {
                    accumulate(total, mul(adj, d));
                }
            }
        }
        for leaf in leaves {
            self.adjoint[leaf.index()] = None;
        }
        totals
    }

    /// Reverse sweep from `root` (seed 1) over its region, stopping at `sum` nodes. Leaves the
    /// adjoints of the region's active leaves (variables and frontier reductions) in
    /// `self.adjoint` and returns those leaves in topological order.
    fn sweep(&mut self, root: NodeId) -> Vec<NodeId> {
        let region = self.region(root);
        self.adjoint[root.index()] = Some(constant(1.0));
        let mut leaves = Vec::new();
        for &id in region.iter().rev() {
            self.in_region[id.index()] = false;
            let node = self.graph.node(id);
            let op = match node.kind() {
                Kind::Apply(op) => *op,
                _ => {
                    if self.adjoint[id.index()].is_some() {
                        leaves.push(id);
                    }
                    continue;
                }
            };
            let Some(adj) = self.adjoint[id.index()].take() else { continue };
            let args = self.graph.args[id.index()];
            let a = node.arg0().expect("ops have an operand");
            let b = node.arg1().unwrap_or(a);
            let need = [0, 1].map(|i| args[i].is_some_and(|x| self.active[x.index()]));
            for (contribution, arg) in op.pullback(a, b, node, &adj, need).into_iter().zip(args) {
                if let (Some(c), Some(arg)) = (contribution, arg) {
                    if self.active[arg.index()] {
                        accumulate(&mut self.adjoint[arg.index()], c);
                    }
                }
            }
        }
        leaves.reverse();
        leaves
    }

    /// The active nodes reachable from `root` without entering a `sum`, in topological order.
    fn region(&mut self, root: NodeId) -> Vec<NodeId> {
        let mut stack = vec![root];
        let mut found = Vec::new();
        while let Some(id) = stack.pop() {
            if !self.active[id.index()] || self.in_region[id.index()] {
                continue;
            }
            self.in_region[id.index()] = true;
            found.push(id);
            if !matches!(self.graph.node(id).kind(), Kind::Sum(_)) {
                stack.extend(self.graph.args[id.index()].iter().flatten());
            }
        }
        found.sort_unstable();
        found
    }
}
