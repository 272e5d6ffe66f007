//! Symbolic reverse mode, graph to graph.
//!
//! Gradients are taken element by element (DESIGN.md): each element of an output is
//! differentiated with respect to the element of the variable's argument it was computed from,
//! and a reduction sums. Nodes are *global* (one value for the whole batch: constants, full
//! sums, and what is computed from them only) or *local* (vary with the samples).
//!
//! A global root (a loss, say) is differentiated by one reverse sweep through everything,
//! sums included. Local nodes carry per-sample adjoint fields and global nodes plain values:
//! a global node used in per-sample work collects the sum of its adjoint field; a full sum
//! hands its adjoint to every sample of its operand; a partial `sum(g, over=V)` hands each
//! sample the sum of the adjoint field over its group. The gradient is then
//! `sum(adjoint of w, over=w)`: the shape of `w`'s argument, summed where it was broadcast.
//!
//! A local root (per-sample work) wants, for each sample, the derivative with respect to that
//! sample's element of `w` only, which one reverse sweep over all samples at once cannot give
//! once reductions mix samples. So its per-sample region (what it reaches without crossing a
//! `sum`) gets one sweep, giving the partial adjoints of `w` and of the reductions `r` on its
//! frontier, and the total is `adj[w] + sum over r of adj[r] * D(r, w)` with `D(r, w)` the
//! derivative of the reduction itself: for a full sum, the global gradient above; for a
//! partial sum (they come from gradients of gradients), its group's total derivative, see
//! `Sweeper::partial`. Every sweep is linear in what it visits: one sweep per reduction
//! boundary.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::build::{add, apply, constant, div, logical_or, mul, select, sum, sum_over, sum_over_set};
use crate::error::{Error, Result};
use crate::expr::{Expr, Kind, Over, Tag};
use crate::graph::{Graph, NodeId};
use crate::ops::{Op, Signed};

/// Derivatives of `output` with respect to each variable in `wrt`. The `wrt` expressions
/// must be variables; the caller checks.
pub fn grad(output: &Expr, wrt: &[Expr]) -> Result<Vec<Expr>> {
    let graph = Graph::new(std::slice::from_ref(output));
    let wrt_ids: Vec<Option<NodeId>> = wrt.iter().map(|w| graph.id_of(w)).collect();
    let active = active_nodes(&graph, &wrt_ids);
    let global = global_nodes(&graph);
    let root = graph.roots[0];
    if output.as_const().is_some() {
        return Ok(vec![constant(0.0); wrt.len()]);
    }
    let has_sums = graph.ids().any(|id| graph.tag(id) == Tag::Sum);
    let mut sweeper = Sweeper::new(&graph, &active, &global, has_sums);
    if global[root.index()] {
        if let Some(total) = mean_total(&graph, root) {
            // mean(e) = sum(e) / N: its gradient is the mean of e's, `sum(de, over=w) / N`, rather
            // than the per-sample sum of `1 / N * de` that the division's rule hands down. One
            // division of the total instead of a rounded 1/N times every term: at least as
            // accurate, and it reads (and prints) as `mean(de, over=w)`.
            let fields = sweeper.through_sums(total, &wrt_ids);
            let count = sum(&constant(1.0));
            return Ok(fields
                .into_iter()
                .zip(wrt)
                .map(|(f, w)| match f {
                    Some(f) => div(&sum_over(&f, &[var_name(w)]), &count),
                    None => sum_over(&constant(0.0), &[var_name(w)]),
                })
                .collect());
        }
        let fields = sweeper.through_sums(root, &wrt_ids);
        return Ok(fields.into_iter().zip(wrt).map(|(f, w)| sum_over(&f.unwrap_or_else(|| constant(0.0)), &[var_name(w)])).collect());
    }
    // D(r, w) per reduction node r, per variable; reductions come children first. A map:
    // reductions are few, and a dense array was 24 bytes per node of fresh memory.
    let mut reductions: Derivatives = FxHashMap::default();
    // Tags first: reading every node for its kind was a cache miss per node.
    for id in graph.ids().filter(|&id| graph.tag(id) == Tag::Sum && active[id.index()]) {
        let Kind::Sum(over) = graph.node(id).kind() else { unreachable!("tagged a sum") };
        let d: Vec<Option<Reduced>> = if global[id.index()] {
            let fields = sweeper.through_sums(id, &wrt_ids);
            fields.into_iter().zip(wrt).map(|(f, w)| f.map(|f| Reduced::full(sum_over(&f, &[var_name(w)])))).collect()
        } else {
            let operand = graph.args(id)[0].expect("sum has an operand");
            sweeper.partial(operand, over, wrt, &wrt_ids, &reductions)?
        };
        reductions.insert(id, d);
    }
    let totals = if active[root.index()] { sweeper.totals(root, &wrt_ids, &reductions) } else { vec![None; wrt.len()] };
    let results: Vec<Expr> = totals.into_iter().map(|t| t.unwrap_or_else(|| constant(0.0))).collect();
    if !has_sums || !per_sample(&graph)[root.index()] {
        return Ok(results);
    }
    // Through a reduction, the derivative of a per-sample expression can be one value for the
    // whole batch; it is still a per-sample gradient and keeps the batch's shape.
    let derived = Graph::new(&results);
    let flags = per_sample(&derived);
    Ok(derived.roots.iter().zip(results).map(|(r, e)| if flags[r.index()] { e } else { apply(Op::PerSample, &e, None) }).collect())
}

/// `D(r, w)` of a reduction `r` (at each sample, the derivative of the sample's group total
/// with respect to the sample's element of `w`), and when known, how it splits by which
/// elements of `w` it depends on. An enclosing partial sum whose group spans several elements
/// of `w` needs that split: its samples also count the derivatives of their own group totals
/// with respect to *other* samples' elements.
#[derive(Clone)]
struct Reduced {
    d: Expr,
    split: Option<Split>,
}

/// `J[j, k]`, the derivative of sample j's group total with respect to element k of `w`,
/// written as `sum(L, over=U + {w})` taken where `w` is k (the `own` part: the sum of
/// per-sample partials of the group's samples computed from element k) plus
/// `sum over t of coefficient_t[j] * G_t[k]`, with `G_t` the gradient of a full reduction `t`.
#[derive(Clone)]
struct Split {
    /// `sum(L, over=U + {w})`, or None where zero.
    own: Option<Expr>,
    /// Whether the group holds one element of `w` (`w` in `U`), so `own` is zero for others.
    own_element: bool,
    /// `(coefficient_t, G_t)` pairs.
    across: Vec<(Expr, Expr)>,
}

impl Reduced {
    /// A full reduction: one value, depending on every element of `w` through its gradient.
    fn full(gradient: Expr) -> Reduced {
        let across = vec![(constant(1.0), gradient.clone())];
        Reduced { d: gradient, split: Some(Split { own: None, own_element: true, across }) }
    }
}

type Derivatives = FxHashMap<NodeId, Vec<Option<Reduced>>>;

fn var_name(w: &Expr) -> &str {
    w.as_var().expect("wrt holds variables")
}

/// The full sum `sum(e)` of a root `mean(e)`, which the builder writes `sum(e) / sum(1)`.
fn mean_total(graph: &Graph, root: NodeId) -> Option<NodeId> {
    let full_sum = |id: NodeId| matches!(graph.node(id).kind(), Kind::Sum(over) if over.is_empty());
    let [Some(total), Some(count)] = graph.args(root) else { return None };
    let counts_samples = graph.args(count)[0].is_some_and(|one| graph.node(one).is_const(1.0));
    (graph.node(root).as_op() == Some(Op::Div) && full_sum(total) && full_sum(count) && counts_samples).then_some(total)
}

/// Whether each node has one value for the whole batch: constants, full sums, and pointwise
/// ops of those only.
fn global_nodes(graph: &Graph) -> Vec<bool> {
    let mut global = vec![false; graph.len()];
    for id in graph.ids() {
        global[id.index()] = match graph.tag(id) {
            Tag::Const => true,
            Tag::Var | Tag::Apply(Op::PerSample) => false,
            Tag::Sum => matches!(graph.node(id).kind(), Kind::Sum(over) if over.is_empty()),
            Tag::Apply(_) => graph.args(id).iter().flatten().all(|a| global[a.index()]),
        };
    }
    global
}

/// Whether each node varies per sample: reaches a variable without crossing a reduction.
fn per_sample(graph: &Graph) -> Vec<bool> {
    let mut flags = vec![false; graph.len()];
    for id in graph.ids() {
        flags[id.index()] = match graph.tag(id) {
            Tag::Var | Tag::Apply(Op::PerSample) => true,
            Tag::Const | Tag::Sum => false,
            Tag::Apply(_) => graph.args(id).iter().flatten().any(|a| flags[a.index()]),
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
        if graph.args(id).iter().flatten().any(|a| active[a.index()]) {
            active[id.index()] = true;
        }
    }
    active
}

fn leaf_over(node: &Expr) -> &Over {
    match node.kind() {
        Kind::Sum(over) => over,
        _ => unreachable!("frontier leaves with a derivative are reductions"),
    }
}

fn names(over: &Over) -> String {
    match &over[..] {
        [one] => one.to_string(),
        many => format!("({})", many.join(", ")),
    }
}

/// `a + b`, plus `w` when given, as a canonical set.
fn union(a: &Over, b: &Over, w: Option<&Expr>) -> Over {
    let mut names: Vec<Arc<str>> = a.iter().chain(b.iter()).cloned().collect();
    names.extend(w.map(|w| Arc::from(var_name(w))));
    names.sort();
    names.dedup();
    names.into()
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

/// Adds a term to a symbolic sum that may still be empty (an adjoint or a derivative's total).
fn add_term(slot: &mut Option<Expr>, contribution: Expr) {
    *slot = Some(match slot.take() {
        Some(sum) => add(&sum, &contribution),
        None => contribution,
    });
}

/// [`add_term`] for adjoints that keep their signs apart.
fn add_signed_term(slot: &mut Option<Signed>, contribution: Signed) {
    *slot = Some(match slot.take() {
        Some(sum) => plus_selected(sum, contribution),
        None => contribution,
    });
}

/// `a + b`, keeping `where`'s selections outermost, so that [`Sweeper::pull`] still finds one to
/// keep outside a node's local derivative, which may be nan or inf where no branch using the
/// node is taken. Adjoints that meet at a node used in several branches share the conditions
/// both are selected by (`select(c, x) + select(c, y)` -> `select(c, x + y)`); of what remains,
/// two selected terms are wrapped in their union (`select(c | d, ...)`), except for a
/// condition and its negation, whose union is everything. Exact where a branch is taken; -0.0
/// elsewhere.
fn plus_selected(a: Signed, b: Signed) -> Signed {
    if a.e.as_op() != Some(Op::Select) || b.e.as_op() != Some(Op::Select) {
        return a.plus_term(b);
    }
    let (mut x, mut y) = (a.e, b.e);
    let mut common = Vec::new();
    while let Some(q) = {
        let cy = conditions(&y);
        conditions(&x).into_iter().find(|q| cy.contains(q))
    } {
        x = without(&x, &q);
        y = without(&y, &q);
        common.push(q);
    }
    let union = match (conditions(&x).first(), conditions(&y).first()) {
        (Some(c), Some(d)) if !complementary(c, d) => Some(logical_or(c, d)),
        _ => None,
    };
    let sum = Signed { e: x, negated: a.negated }.plus_term(Signed { e: y, negated: b.negated });
    let e = union.iter().chain(common.iter().rev()).fold(sum.e, |e, q| select(q, &e));
    Signed { e, negated: sum.negated }
}

/// The conditions of the selections `e` is wrapped in, outermost first.
fn conditions(e: &Expr) -> Vec<Expr> {
    let mut found = Vec::new();
    let mut e = e;
    while let (Some(Op::Select), Some(c), Some(inner)) = (e.as_op(), e.arg0(), e.arg1()) {
        found.push(c.clone());
        e = inner;
    }
    found
}

/// `e` with its selection by `q` taken out (the caller selects by `q` again outside).
fn without(e: &Expr, q: &Expr) -> Expr {
    let mut outer = Vec::new();
    let mut e = e;
    while let (Some(Op::Select), Some(c), Some(inner)) = (e.as_op(), e.arg0(), e.arg1()) {
        if c == q {
            return outer.iter().rev().fold(inner.clone(), |e, c| select(c, &e));
        }
        outer.push(c.clone());
        e = inner;
    }
    unreachable!("a condition from the chain")
}

/// Whether one condition is `~` the other: one of them is true at every sample.
fn complementary(c: &Expr, d: &Expr) -> bool {
    let negates = |n: &Expr, of: &Expr| n.as_op() == Some(Op::Not) && n.arg0() == Some(of);
    negates(c, d) || negates(d, c)
}

/// Reverse sweeps over one graph, with dense per-node scratch reused between sweeps (each
/// sweep clears only what it touched, so many small sweeps stay linear overall).
struct Sweeper<'g> {
    graph: &'g Graph,
    active: &'g [bool],
    global: &'g [bool],
    /// Adjoints with their signs apart (see [`Op::pullback`]); a negation is built only when
    /// an adjoint is read out as a value.
    adjoint: Vec<Option<Signed>>,
    in_region: Vec<bool>,
    /// Whether the graph has sums: without them, its one root's region is all of it.
    has_sums: bool,
}

impl<'g> Sweeper<'g> {
    fn new(graph: &'g Graph, active: &'g [bool], global: &'g [bool], has_sums: bool) -> Self {
        Sweeper { graph, active, global, adjoint: vec![None; graph.len()], in_region: vec![false; graph.len()], has_sums }
    }

    /// One reverse sweep from a global `root` through everything, sums included; returns the
    /// per-sample adjoint field of each `wrt` variable (None where structurally zero).
    fn through_sums(&mut self, root: NodeId, wrt: &[Option<NodeId>]) -> Vec<Option<Expr>> {
        let reach = self.reachable(root, true);
        self.adjoint[root.index()] = Some(Signed::plus(constant(1.0)));
        for &id in reach.iter().rev() {
            let Some(adj) = self.adjoint[id.index()].take() else { continue };
            let node = self.graph.node(id);
            let args = self.graph.args(id);
            match node.kind() {
                Kind::Var(_) => self.adjoint[id.index()] = Some(adj),
                Kind::Const(_) => {}
                Kind::Sum(over) => {
                    let operand = args[0].expect("sum operand");
                    if !self.active[operand.index()] {
                        continue;
                    }
                    // A full sum's adjoint is one value: every sample of the operand gets it
                    // (and an operand that is itself one value was counted N times). A partial
                    // sum's is a field: each sample gets its group's total.
                    let field = match (over.is_empty(), self.global[operand.index()]) {
                        (true, false) => adj,
                        (true, true) => Signed { e: mul(&adj.e, &sum(&constant(1.0))), ..adj },
                        (false, _) => Signed { e: sum_over_set(&adj.e, over.clone()), ..adj },
                    };
                    self.send(id, operand, field);
                }
                Kind::Apply(op) => self.pull(id, *op, &adj, true),
            }
        }
        let fields = wrt.iter().map(|w| w.and_then(|w| self.adjoint[w.index()].take()).map(Signed::value)).collect();
        for id in reach {
            self.adjoint[id.index()] = None;
            self.in_region[id.index()] = false;
        }
        fields
    }

    /// Applies op node `id`'s pullback to `adj`, adding the contributions to its active
    /// operands; `through_sums` selects [`Sweeper::send`]'s rule for global operands (a sweep
    /// that stops at sums keeps per-sample partials instead).
    fn pull(&mut self, id: NodeId, op: Op, adj: &Signed, through_sums: bool) {
        // An adjoint that came out as the constant 0 (from `a - a` in a higher derivative) is
        // structurally zero: its contributions would be `0 * d` terms, +-0 (or nan where d is
        // not finite) added to the true derivative, so leaving them out is at least as accurate.
        if adj.e.as_const() == Some(0.0) {
            return;
        }
        let node = self.graph.node(id);
        let args = self.graph.args(id);
        // The operands from the view rather than from the node: no wait on the node's memory.
        let a = self.graph.node(args[0].expect("ops have an operand"));
        let b = args[1].map_or(a, |b| self.graph.node(b));
        let need = [0, 1].map(|i| args[i].is_some_and(|x| self.active[x.index()]));
        // where's branches: an adjoint `select(c, inner)` is applied as `select(c, inner * d)`,
        // never `select(c, inner) * d`, so the untaken branch's local derivative `d` (nan or inf
        // where it is not defined) is never multiplied into the gradient.
        let mut inner = &adj.e;
        let mut conditions: Vec<&Expr> = Vec::new();
        while let (Some(Op::Select), Some(c), Some(x)) = (inner.as_op(), inner.arg0(), inner.arg1()) {
            conditions.push(c);
            inner = x;
        }
        for (contribution, arg) in op.pullback(a, b, node, inner, need).into_iter().zip(args) {
            if let (Some(c), Some(arg)) = (contribution, arg) {
                let c = c.times_sign(adj.negated);
                let c = conditions.iter().rev().fold(c, |c, cond| Signed { e: select(cond, &c.e), ..c });
                if !self.active[arg.index()] {
                    continue;
                }
                if through_sums {
                    self.send(id, arg, c);
                } else {
                    add_signed_term(&mut self.adjoint[arg.index()], c);
                }
            }
        }
    }

    /// Adds `c`, the adjoint contribution from `from` to its operand `to`. A global node used
    /// by per-sample work has one value, whose adjoint is the total of the field.
    fn send(&mut self, from: NodeId, to: NodeId, c: Signed) {
        let c = if self.global[to.index()] && !self.global[from.index()] { Signed { e: sum(&c.e), ..c } } else { c };
        add_signed_term(&mut self.adjoint[to.index()], c);
    }

    /// Total per-sample derivatives of `root` with respect to each `wrt`: one reverse sweep
    /// over the root's per-sample region, then the frontier reductions' contributions.
    fn totals(&mut self, root: NodeId, wrt: &[Option<NodeId>], reductions: &Derivatives) -> Vec<Option<Expr>> {
        let leaves = self.sweep(root);
        let mut totals: Vec<Option<Signed>> = wrt.iter().map(|w| w.and_then(|w| self.adjoint[w.index()].clone())).collect();
        for &leaf in &leaves {
            let Some(d) = reductions.get(&leaf) else { continue };
            let adj = self.adjoint[leaf.index()].as_ref().expect("leaves have adjoints");
            for (total, d) in totals.iter_mut().zip(d) {
                if let Some(d) = d {
                    add_signed_term(total, Signed { e: mul(&adj.e, &d.d), negated: adj.negated });
                }
            }
        }
        for leaf in leaves {
            self.adjoint[leaf.index()] = None;
        }
        totals.into_iter().map(|t| t.map(Signed::value)).collect()
    }

    /// `D(r, w)` for a partial sum `r = sum(operand, over=V)`: at each sample i, the sum over
    /// the samples j of i's group of the total derivative of `operand[j]` with respect to i's
    /// element of `w`. One sweep over the operand's region gives the per-sample partials `L`
    /// and the adjoints of the frontier reductions; then by [`Split`] of each reduction `s`
    /// (over `U`) it holds:
    /// - `L`, and `adj_s * D(s, w)` for a confined `s`, reach only the element sample j was
    ///   computed from: summed over `V + {w}`;
    /// - `coefficient_t * G_t`, the part through a full reduction: `sum(adj_s * coefficient_t,
    ///   over=V) * G_t`;
    /// - the `own` part `M = sum(L_s, over=U + {w})` of an `s` whose groups span several
    ///   elements: sum over the j of i's group of `adj_s[j] * M` taken at j's `U` coordinates
    ///   and i's `w` coordinates, which regroups as
    ///   `sum(sum(adj_s, over=V + U) * M / sum(1, over=U + V + {w}), over=V + {w})`
    ///   (the count divides out positions that differ only outside all three sets).
    ///
    /// When `w` is in `V` every sample of the group was computed from one element, and all of
    /// it is `sum(L + adj_s * D(s, w), over=V)`.
    fn partial(
        &mut self,
        operand: NodeId,
        over: &Over,
        wrt: &[Expr],
        wrt_ids: &[Option<NodeId>],
        reductions: &Derivatives,
    ) -> Result<Vec<Option<Reduced>>> {
        let leaves = self.sweep(operand);
        let mut result = vec![None; wrt.len()];
        for (k, (w, id)) in wrt.iter().zip(wrt_ids).enumerate() {
            let name = var_name(w);
            let own_element = over.iter().any(|v| &**v == name);
            let mut own = id.and_then(|id| self.adjoint_value(id));
            let mut whole = own.clone();
            let mut across: Vec<(Expr, Expr)> = Vec::new();
            let mut spanning: Option<Expr> = None;
            let mut split_known = true;
            for &leaf in &leaves {
                let Some(Some(inner)) = reductions.get(&leaf).map(|d| &d[k]) else { continue };
                let adj = &self.adjoint_value(leaf).expect("leaves have adjoints");
                add_term(&mut whole, mul(adj, &inner.d));
                let Some(split) = &inner.split else {
                    if own_element {
                        split_known = false;
                        continue;
                    }
                    return Err(self.unsupported(name, over, leaf));
                };
                for (coefficient, gradient) in &split.across {
                    across.push((sum_over_set(&mul(adj, coefficient), over.clone()), gradient.clone()));
                }
                let Some(m) = &split.own else { continue };
                if split.own_element {
                    add_term(&mut own, mul(adj, m));
                } else if own_element {
                    split_known = false;
                } else {
                    let inner_over = leaf_over(self.graph.node(leaf));
                    let grouped = sum_over_set(adj, union(over, inner_over, None));
                    let count = sum_over_set(&constant(1.0), union(over, inner_over, Some(w)));
                    add_term(&mut spanning, sum_over_set(&div(&mul(&grouped, m), &count), with_var(over, w)));
                    split_known = false;
                }
            }
            let d = if own_element {
                whole.map(|t| sum_over_set(&t, over.clone()))
            } else {
                let mut d = own.as_ref().map(|t| sum_over_set(t, with_var(over, w)));
                if let Some(s) = &spanning {
                    add_term(&mut d, s.clone());
                }
                for (coefficient, gradient) in &across {
                    add_term(&mut d, mul(coefficient, gradient));
                }
                d
            };
            let split = split_known.then(|| Split { own: own.map(|t| sum_over_set(&t, with_var(over, w))), own_element, across });
            result[k] = d.map(|d| Reduced { d, split });
        }
        for leaf in leaves {
            self.adjoint[leaf.index()] = None;
        }
        Ok(result)
    }

    /// The adjoint of `id` as one expression.
    fn adjoint_value(&self, id: NodeId) -> Option<Expr> {
        self.adjoint[id.index()].clone().map(Signed::value)
    }

    fn unsupported(&self, name: &str, over: &Over, leaf: NodeId) -> Error {
        // Three nested groupings that each span several elements of w: the derivative is a
        // contraction over four index sets, which sums over one grouping at a time cannot
        // write down.
        Error::Unsupported(format!(
            "the derivative with respect to {name} of sum(..., over={}) whose operand holds sum(..., over={}) \
             over further partial sums that each span several elements of {name}: add {name} to an over= \
             or differentiate the terms separately",
            names(over),
            names(leaf_over(self.graph.node(leaf)))
        ))
    }

    /// Reverse sweep from `root` (seed 1) over its region, stopping at `sum` nodes. Leaves the
    /// adjoints of the region's active leaves (variables and frontier reductions) in
    /// `self.adjoint` and returns those leaves in topological order.
    fn sweep(&mut self, root: NodeId) -> Vec<NodeId> {
        let region = self.region(root);
        self.adjoint[root.index()] = Some(Signed::plus(constant(1.0)));
        let mut leaves = Vec::new();
        for &id in region.iter().rev() {
            self.in_region[id.index()] = false;
            let op = match self.graph.tag(id) {
                Tag::Apply(op) => op,
                _ => {
                    if self.adjoint[id.index()].is_some() {
                        leaves.push(id);
                    }
                    continue;
                }
            };
            let Some(adj) = self.adjoint[id.index()].take() else { continue };
            self.pull(id, op, &adj, false);
        }
        leaves.reverse();
        leaves
    }

    /// The active nodes reachable from `root` without entering a `sum`, in topological order.
    fn region(&mut self, root: NodeId) -> Vec<NodeId> {
        // The view is of one root: without sums, its region is every active node, and a walk
        // to find them (a stack push per operand) was ~4% of W5's grad.
        if !self.has_sums && self.graph.roots == [root] {
            return self.graph.ids().filter(|id| self.active[id.index()]).collect();
        }
        self.reachable(root, false)
    }

    /// The active nodes reachable from `root`, entering sums or not, in topological order;
    /// marks them in `in_region` (the caller clears the marks).
    fn reachable(&mut self, root: NodeId, through_sums: bool) -> Vec<NodeId> {
        let mut stack = vec![root];
        let mut found = Vec::new();
        while let Some(id) = stack.pop() {
            if !self.active[id.index()] || self.in_region[id.index()] {
                continue;
            }
            self.in_region[id.index()] = true;
            found.push(id);
            if through_sums || self.graph.tag(id) != Tag::Sum {
                stack.extend(self.graph.args(id).iter().flatten());
            }
        }
        // Everything below the root, in order, is a scan of the marks when the region is a good
        // part of it (W5's sweep covers the whole graph: sorting its 80,000 ids took ~2 ms); a
        // small region is sorted, so that many small sweeps stay linear in what they visit.
        let below = root.index() + 1;
        if found.len() * 8 >= below {
            let marks = &self.in_region[..below];
            found.clear();
            found.extend((0..below as u32).map(NodeId).filter(|id| marks[id.index()]));
        } else {
            found.sort_unstable();
        }
        found
    }
}
