//! Substitution: rebuilding a graph with some nodes replaced, in one forward pass, children
//! first (never recursive). The CLI's `--check`, `Expr.subs` and the compiler's dropped
//! reductions all go through [`rebuild_graph`].

use rustc_hash::FxHashMap;

use crate::build::rebuild;
use crate::expr::Expr;
use crate::graph::{Graph, NodeId};

/// Rebuilds `roots` with every occurrence of each `from` node replaced by its `to` node
/// (one forward pass over the graph, children first; replaced nodes are not descended into).
pub fn substitute(roots: &[Expr], replacements: &[(Expr, Expr)]) -> Vec<Expr> {
    // Expr hashes and compares by identity; a node's atomic parent count is not part of it.
    #[allow(clippy::mutable_key_type)]
    let map: FxHashMap<&Expr, &Expr> = replacements.iter().map(|(f, t)| (f, t)).collect();
    let graph = Graph::collect(roots, |e| !map.contains_key(e));
    rebuild_graph(&graph, |_, node, _| map.get(node).map(|to| (*to).clone()))
}

/// Rebuilds `graph`'s roots node by node, children first: each node becomes what `replace`
/// returns for it (given its rebuilt operands), or else the same kind of node on the rebuilt
/// operands.
pub(crate) fn rebuild_graph(graph: &Graph, replace: impl Fn(NodeId, &Expr, &[Expr]) -> Option<Expr>) -> Vec<Expr> {
    let mut rebuilt: Vec<Expr> = Vec::with_capacity(graph.len());
    for id in graph.ids() {
        let node = graph.node(id);
        let args: Vec<Expr> = graph.args(id).iter().flatten().map(|a| rebuilt[a.index()].clone()).collect();
        let new = replace(id, node, &args).unwrap_or_else(|| if args.is_empty() { node.clone() } else { rebuild(node.kind(), &args) });
        rebuilt.push(new);
    }
    graph.roots.iter().map(|r| rebuilt[r.index()].clone()).collect()
}
