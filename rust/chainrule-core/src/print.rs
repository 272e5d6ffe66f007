//! Text output: readable infix with minimal parentheses (Python's precedence), which
//! [`crate::parse`] reads back into the very same nodes. A subexpression used more than once
//! and not tiny is printed once, as a named line `t1 = ...`, so the text stays linear in the
//! graph's size. The emitter works from an explicit stack: a chain a million deep prints
//! without recursion and without quadratic string building.

use std::fmt::{self, Write};

use rustc_hash::FxHashSet;

use crate::expr::{Expr, Kind};
use crate::graph::{Graph, NodeId};
use crate::ops::Op;

/// Precedence of atoms (names, numbers, calls): never parenthesised.
const ATOM: u8 = 8;
/// Precedence of unary minus, which negative constants share.
const UNARY: u8 = 6;

/// Prints `roots`: named shared subexpressions first, then one line per root.
pub fn to_text(roots: &[Expr]) -> String {
    let graph = Graph::new(roots);
    let names = choose_names(&graph);
    let mut out = String::new();
    for id in graph.ids() {
        if let Some(name) = &names[id.index()] {
            let _ = write!(out, "{name} = ");
            emit(&graph, &names, id, &mut out);
            out.push('\n');
        }
    }
    for (i, &root) in graph.roots.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match &names[root.index()] {
            Some(name) => out.push_str(name),
            None => emit(&graph, &names, root, &mut out),
        }
    }
    out
}

/// Formats a number so that it parses back to the same bits; the float64 values of pi and e
/// print by name, as the text format reads them.
pub fn number(c: f64) -> String {
    if c.abs() == std::f64::consts::PI || c.abs() == std::f64::consts::E {
        let name = if c.abs() == std::f64::consts::PI { "pi" } else { "e" };
        if c < 0.0 {
            format!("-{name}")
        } else {
            name.into()
        }
    } else if c.is_nan() {
        "nan".into()
    } else if c.is_infinite() {
        if c > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        }
    } else if c != 0.0 && (c.abs() >= 1e16 || c.abs() < 1e-4) {
        format!("{c:e}")
    } else {
        format!("{c}")
    }
}

/// A node is inlined wherever it is used if its text is at most this long: naming `y - x`
/// would make the text longer, not clearer.
const TINY: usize = 10;

/// Rough inline text length of each node (named children count as their name), saturated so
/// the estimate stays cheap; and the names of shared nodes that are not tiny.
fn choose_names(graph: &Graph) -> Vec<Option<String>> {
    let mut uses = graph.use_counts();
    for r in &graph.roots {
        uses[r.index()] += 1;
    }
    let taken: FxHashSet<&str> = graph.nodes().iter().filter_map(Expr::as_var).collect();
    let mut counter = 0;
    let mut fresh = || loop {
        counter += 1;
        let name = format!("t{counter}");
        if !taken.contains(name.as_str()) {
            return name;
        }
    };
    let mut names: Vec<Option<String>> = Vec::with_capacity(graph.len());
    let mut len: Vec<usize> = Vec::with_capacity(graph.len());
    for id in graph.ids() {
        let arg_len = |i: usize| graph.args(id)[i].map_or(0, |a| names[a.index()].as_ref().map_or(len[a.index()], String::len));
        let own = match graph.node(id).kind() {
            Kind::Const(c) => number(*c).len(),
            Kind::Var(name) => name.len(),
            Kind::Apply(op) => op.name().len() + 2 + arg_len(0) + arg_len(1),
            Kind::Sum(over) => 5 + arg_len(0) + over.iter().map(|n| n.len() + 7).sum::<usize>(),
        };
        let own = own.min(4 * TINY);
        names.push((uses[id.index()] > 1 && own > TINY).then(&mut fresh));
        len.push(own);
    }
    names
}

enum Task<'a> {
    Node(NodeId, u8),
    Text(&'a str),
    Owned(String),
}

/// The precedence a node prints with.
fn precedence(e: &Expr) -> u8 {
    match e.kind() {
        Kind::Const(c) => {
            if c.is_sign_negative() && !c.is_nan() {
                UNARY
            } else {
                ATOM
            }
        }
        Kind::Apply(op) => op.infix().unwrap_or(ATOM),
        Kind::Var(_) | Kind::Sum(_) => ATOM,
    }
}

/// `sum(e) / sum(1)`, which `mean(e)` lowers to, prints back as `mean(e)`.
fn mean_operand(graph: &Graph, names: &[Option<String>], id: NodeId) -> Option<NodeId> {
    let e = graph.node(id);
    if e.as_op() != Some(Op::Div) {
        return None;
    }
    let [Some(num), Some(den)] = graph.args(id) else { return None };
    let full_sum = |n: NodeId| matches!(graph.node(n).kind(), Kind::Sum(over) if over.is_empty()) && names[n.index()].is_none();
    let den_operand = graph.args(den)[0]?;
    (full_sum(num) && full_sum(den) && graph.node(den_operand).is_const(1.0)).then(|| graph.args(num)[0]).flatten()
}

// piecewise, comparisons and logic

/// `select(c, a) + select(~c, b)`, which `where(c, a, b)` lowers to, prints back as
/// `where(c, a, b)`; returns `[c, a, b]`.
fn where_operands(graph: &Graph, names: &[Option<String>], id: NodeId) -> Option<[NodeId; 3]> {
    if graph.node(id).as_op() != Some(Op::Add) {
        return None;
    }
    let [Some(taken), Some(other)] = graph.args(id) else { return None };
    let select = |n: NodeId| match (graph.node(n).as_op(), graph.args(n), &names[n.index()]) {
        (Some(Op::Select), [Some(c), Some(x)], None) => Some((c, x)),
        _ => None,
    };
    let ((c, a), (not_c, b)) = (select(taken)?, select(other)?);
    (graph.node(not_c).as_op() == Some(Op::Not) && graph.args(not_c)[0] == Some(c)).then_some([c, a, b])
}

fn emit(graph: &Graph, names: &[Option<String>], top: NodeId, out: &mut String) {
    let mut stack = vec![Task::Node(top, 0)];
    while let Some(task) = stack.pop() {
        let (id, min_prec) = match task {
            Task::Text(t) => {
                out.push_str(t);
                continue;
            }
            Task::Owned(t) => {
                out.push_str(&t);
                continue;
            }
            Task::Node(id, p) => (id, p),
        };
        if id != top {
            if let Some(name) = &names[id.index()] {
                out.push_str(name);
                continue;
            }
        }
        let e = graph.node(id);
        let mean = mean_operand(graph, names, id);
        let branches = where_operands(graph, names, id);
        let prec = if mean.is_some() || branches.is_some() { ATOM } else { precedence(e) };
        if prec < min_prec {
            out.push('(');
            stack.push(Task::Text(")"));
        }
        let [a, b] = graph.args(id);
        if let Some(m) = mean {
            out.push_str("mean(");
            stack.push(Task::Text(")"));
            stack.push(Task::Node(m, 0));
            continue;
        }
        if let Some([c, x, y]) = branches {
            out.push_str("where(");
            stack.extend([Task::Text(")"), Task::Node(y, 0), Task::Text(", "), Task::Node(x, 0), Task::Text(", "), Task::Node(c, 0)]);
            continue;
        }
        match e.kind() {
            Kind::Const(c) => out.push_str(&number(*c)),
            Kind::Var(name) => out.push_str(name),
            Kind::Sum(over) => {
                out.push_str("sum(");
                stack.push(Task::Owned(match over.len() {
                    0 => ")".to_string(),
                    1 => format!(", over={})", over[0]),
                    _ => format!(", over=({}))", over.join(", ")),
                }));
                stack.push(Task::Node(a.expect("sum operand"), 0));
            }
            Kind::Apply(op) => match (op.infix(), b) {
                (None, b) => {
                    out.push_str(op.name());
                    out.push('(');
                    stack.push(Task::Text(")"));
                    if let Some(b) = b {
                        stack.push(Task::Node(b, 0));
                        stack.push(Task::Text(", "));
                    }
                    stack.push(Task::Node(a.expect("operand"), 0));
                }
                (Some(p), None) => {
                    out.push_str(op.name());
                    stack.push(Task::Node(a.expect("operand"), p));
                }
                (Some(p), Some(b)) => {
                    // Left-associative operators need a strictly tighter right operand for the
                    // text to parse back to the same tree; `**` is right-associative, and its
                    // left operand must be an atom because `-x ** 2` is `-(x ** 2)`.
                    // Comparisons do not chain (`a < b < c` is refused): both operands tighter.
                    let (left, right) = match op {
                        Op::Pow => (ATOM, UNARY),
                        Op::Less | Op::LessEqual | Op::Greater | Op::GreaterEqual | Op::Equal | Op::NotEqual => (p + 1, p + 1),
                        _ => (p, p + 1),
                    };
                    stack.push(Task::Node(b, right));
                    stack.push(Task::Owned(format!(" {} ", op.name())));
                    stack.push(Task::Node(a.expect("operand"), left));
                }
            },
        }
    }
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", to_text(std::slice::from_ref(self)))
    }
}
