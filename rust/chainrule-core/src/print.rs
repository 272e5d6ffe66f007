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

/// How a constant prints and its precedence: a short formula where the float64 value is that
/// formula's, folded as the parser folds it (`sqrt(2)`, `2 / sqrt(pi)`, `log(2)`, `pi / 2`), so
/// the text reads back as the same node and says where the number came from; else [`number`].
fn constant_text(c: f64) -> (String, u8) {
    let plain = number(c);
    let sign = if c.is_sign_negative() && !c.is_nan() { "-" } else { "" };
    let found = (plain.len() > 8).then(|| formula(c.abs())).flatten();
    match found {
        Some((text, prec)) if text.len() < plain.len() => {
            (format!("{sign}{text}"), if prec == ATOM && !sign.is_empty() { UNARY } else { prec })
        }
        _ => {
            let prec = if sign.is_empty() { ATOM } else { UNARY };
            (plain, prec)
        }
    }
}

/// The first formula of a short list whose folded value is `c` exactly, with its precedence.
fn formula(c: f64) -> Option<(String, u8)> {
    use std::f64::consts::{E, PI};
    let product = Op::Mul.infix().expect("infix");
    let (sqrt, log, div) = (|a: f64| Op::Sqrt.eval(a, 0.0), |a: f64| Op::Log.eval(a, 0.0), |a: f64, b: f64| Op::Div.eval(a, b));
    static TABLE: std::sync::OnceLock<Vec<(f64, String, u8)>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let two_pi = Op::Mul.eval(2.0, PI);
        let mut candidates: Vec<(f64, String, u8)> = Vec::new();
        for k in [2.0, 3.0, 5.0, 6.0, 7.0, 8.0, 10.0] {
            candidates.push((sqrt(k), format!("sqrt({k})"), ATOM));
            candidates.push((div(1.0, sqrt(k)), format!("1 / sqrt({k})"), product));
        }
        for k in [2.0, 3.0, 10.0] {
            candidates.push((log(k), format!("log({k})"), ATOM));
            candidates.push((div(1.0, log(k)), format!("1 / log({k})"), product));
        }
        candidates.extend([
            (Op::Log2.eval(E, 0.0), "log2(e)".to_string(), ATOM),
            (Op::Log10.eval(E, 0.0), "log10(e)".to_string(), ATOM),
            (sqrt(PI), "sqrt(pi)".to_string(), ATOM),
            (sqrt(two_pi), "sqrt(2 * pi)".to_string(), ATOM),
            (div(1.0, sqrt(PI)), "1 / sqrt(pi)".to_string(), product),
            (div(2.0, sqrt(PI)), "2 / sqrt(pi)".to_string(), product),
            (div(1.0, sqrt(two_pi)), "1 / sqrt(2 * pi)".to_string(), product),
            (two_pi, "2 * pi".to_string(), product),
            (div(1.0, PI), "1 / pi".to_string(), product),
            (div(2.0, PI), "2 / pi".to_string(), product),
        ]);
        for k in [2.0, 3.0, 4.0, 6.0] {
            candidates.push((div(PI, k), format!("pi / {k}"), product));
        }
        candidates
    });
    table.iter().find(|(v, _, _)| v.to_bits() == c.to_bits()).map(|(_, text, prec)| (text.clone(), *prec))
}

/// A node is inlined wherever it is used if its text is at most this long: naming `y - x`
/// would make the text longer, not clearer.
const TINY: usize = 10;
/// ... unless it is used three times or more and at least this long: `t1 = x ** 2 + 1` once
/// reads better than `x ** 2 + 1` in every factor of a third derivative.
const SHORT: usize = 9;

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
            Kind::Const(c) => constant_text(*c).0.len(),
            Kind::Var(name) => name.len(),
            Kind::Apply(op) => op.name().len() + 2 + arg_len(0) + arg_len(1),
            Kind::Sum(over) => 5 + arg_len(0) + over.iter().map(|n| n.len() + 7).sum::<usize>(),
        };
        let own = own.min(4 * TINY);
        let used = uses[id.index()];
        names.push((used > 1 && own > TINY || used > 2 && own >= SHORT).then(&mut fresh));
        len.push(own);
    }
    names
}

enum Task<'a> {
    Node(NodeId, u8),
    Text(&'a str),
    Owned(String),
}

/// How a node prints beyond its op's own spelling: readable forms that parse back to the
/// same node (`mean(e)` is built as `sum(e) / sum(1)`, `x ** 2` as `x * x`, and `-a * b` as
/// `-(a * b)`, since the builder moves negations out of products).
#[derive(Clone, Copy, PartialEq)]
enum Form {
    /// `sum(e) / sum(1)` as `mean(e)`.
    Mean(NodeId),
    /// `a * a` as `a ** 2`.
    Square(NodeId),
    /// `-(a * b)` or `-(a / b)` as `-a * b`, `-a / b`.
    NegatedProduct(NodeId),
    /// The op's own spelling.
    Plain,
}

fn form(graph: &Graph, names: &[Option<String>], id: NodeId) -> Form {
    if let Some(m) = mean_operand(graph, names, id) {
        return Form::Mean(m);
    }
    let [a, b] = graph.args(id);
    match graph.node(id).as_op() {
        Some(Op::Mul) if a == b => Form::Square(a.expect("operand")),
        Some(Op::Neg) => {
            let a = a.expect("operand");
            let product = matches!(graph.node(a).as_op(), Some(Op::Mul | Op::Div)) && names[a.index()].is_none();
            if product && form(graph, names, a) == Form::Plain && leads_with_a_factor(graph, names, a) {
                Form::NegatedProduct(a)
            } else {
                Form::Plain
            }
        }
        _ => Form::Plain,
    }
}

/// Whether the first operand of a product or quotient chain is an operand the leading `-` of
/// `-a * b` can bind to: not `x % y`, which prints at the product's level, so `-x % y / z`
/// would read back as `(-x) % y / z`, another value than `-(x % y / z)`; and not a constant
/// the builder would keep negated.
fn leads_with_a_factor(graph: &Graph, names: &[Option<String>], product: NodeId) -> bool {
    let mut at = product;
    loop {
        match graph.node(at).as_op() {
            Some(Op::Mul | Op::Div) if names[at.index()].is_none() => at = graph.args(at)[0].expect("operand"),
            Some(op) if names[at.index()].is_none() && op.infix() == Op::Mul.infix() => return false,
            // `-c * b` reads back as (-c) * b, which the builder turns back into -(c * b)
            // only for c > 0: not for 0 (-0 * b stays) or nan (`-nan` reads as nan).
            None => return graph.node(at).as_const().is_none_or(|c| c > 0.0),
            _ => return true,
        }
    }
}

/// The precedence a node prints with.
fn precedence(e: &Expr, form: Form) -> u8 {
    match form {
        Form::Mean(_) => return ATOM,
        Form::Square(_) => return Op::Pow.infix().expect("infix"),
        Form::NegatedProduct(_) => return Op::Mul.infix().expect("infix"),
        Form::Plain => {}
    }
    match e.kind() {
        Kind::Const(c) => constant_text(*c).1,
        Kind::Apply(op) => op.infix().unwrap_or(ATOM),
        Kind::Var(_) | Kind::Sum(_) => ATOM,
    }
}

/// `sum(e) / sum(1)`, which `mean(e)` lowers to, prints back as `mean(e)`.
/// So does `sum(e, over=w) / sum(1)`, the gradient of a mean, as `mean(e, over=w)`.
fn mean_operand(graph: &Graph, names: &[Option<String>], id: NodeId) -> Option<NodeId> {
    let e = graph.node(id);
    if e.as_op() != Some(Op::Div) {
        return None;
    }
    let [Some(num), Some(den)] = graph.args(id) else { return None };
    let unnamed_sum = |n: NodeId| matches!(graph.node(n).kind(), Kind::Sum(_)) && names[n.index()].is_none();
    let full_sum = |n: NodeId| matches!(graph.node(n).kind(), Kind::Sum(over) if over.is_empty()) && names[n.index()].is_none();
    let den_operand = graph.args(den)[0]?;
    (unnamed_sum(num) && full_sum(den) && graph.node(den_operand).is_const(1.0)).then(|| graph.args(num)[0]).flatten()
}

/// The text after a reduction's operand: `)`, or `, over=w)` and `, over=(v, w))`.
fn over_suffix(over: &[std::sync::Arc<str>]) -> String {
    match over.len() {
        0 => ")".to_string(),
        1 => format!(", over={})", over[0]),
        _ => format!(", over=({}))", over.join(", ")),
    }
}

/// The `over` set of the sum that a [`Form::Mean`] node divides.
fn mean_over(graph: &Graph, id: NodeId) -> &[std::sync::Arc<str>] {
    let num = graph.args(id)[0].expect("mean's sum");
    match graph.node(num).kind() {
        Kind::Sum(over) => over.as_slice(),
        _ => unreachable!("a mean divides a sum"),
    }
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
        let form = form(graph, names, id);
        let branches = where_operands(graph, names, id);
        let prec = if branches.is_some() { ATOM } else { precedence(e, form) };
        if prec < min_prec {
            out.push('(');
            stack.push(Task::Text(")"));
        }
        let [a, b] = graph.args(id);
        match form {
            Form::Mean(m) => {
                out.push_str("mean(");
                stack.push(Task::Owned(over_suffix(mean_over(graph, id))));
                stack.push(Task::Node(m, 0));
                continue;
            }
            Form::Square(a) => {
                stack.push(Task::Text(" ** 2"));
                stack.push(Task::Node(a, ATOM));
                continue;
            }
            Form::NegatedProduct(p) => {
                // `-a * b` reads as `(-a) * b`, which the builder turns back into `-(a * b)`;
                // the product's own operands keep their usual precedences.
                out.push('-');
                stack.push(Task::Node(p, Op::Mul.infix().expect("infix")));
                continue;
            }
            Form::Plain => {}
        }
        if let Some([c, x, y]) = branches {
            out.push_str("where(");
            stack.extend([Task::Text(")"), Task::Node(y, 0), Task::Text(", "), Task::Node(x, 0), Task::Text(", "), Task::Node(c, 0)]);
            continue;
        }
        match e.kind() {
            // A constant on its own line is the number a reader asked for (`asin(1)` is
            // 1.5707963267948966); inside an expression, where it came from.
            Kind::Const(c) if id == top => out.push_str(&number(*c)),
            Kind::Const(c) => out.push_str(&constant_text(*c).0),
            Kind::Var(name) => out.push_str(name),
            Kind::Sum(over) => {
                out.push_str("sum(");
                stack.push(Task::Owned(over_suffix(over)));
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

/// LaTeX for `roots`, for notebooks and `chainrule diff --latex`: `\frac`, `\sqrt`, powers
/// and the usual function names; the shared subexpressions the text names `t1 = ...` become
/// the first lines of an `aligned` block, one line per root after them. Linear in the graph,
/// from an explicit stack, as [`to_text`]. It is for reading only; nothing parses it.
pub fn to_latex(roots: &[Expr]) -> String {
    let graph = Graph::new(roots);
    let names = choose_names(&graph);
    let mut lines = Vec::new();
    for id in graph.ids() {
        if let Some(name) = &names[id.index()] {
            let mut line = format!("{} &= ", latex_name(name));
            emit_latex(&graph, &names, id, &mut line);
            lines.push(line);
        }
    }
    let defined = lines.len();
    for &root in &graph.roots {
        let mut line = String::new();
        match &names[root.index()] {
            Some(name) => line.push_str(&latex_name(name)),
            None => emit_latex(&graph, &names, root, &mut line),
        }
        lines.push(if defined > 0 || graph.roots.len() > 1 { format!("& {line}") } else { line });
    }
    if lines.len() == 1 {
        lines.pop().expect("one line")
    } else {
        format!("\\begin{{aligned}}\n{}\n\\end{{aligned}}", lines.join(" \\\\\n"))
    }
}

/// A variable's name in LaTeX: Greek letters by their command, a trailing index as a
/// subscript (`x1`, `x_1` -> `x_{1}`), and longer names upright as one word.
fn latex_name(name: &str) -> String {
    const GREEK: &[&str] = &[
        "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu", "nu", "xi", "pi", "rho",
        "sigma", "tau", "upsilon", "phi", "chi", "psi", "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma", "Phi", "Psi",
        "Omega",
    ];
    let (stem, index) = match name.split_once('_') {
        Some((stem, index)) if !stem.is_empty() && !index.is_empty() => (stem, Some(index)),
        _ => {
            let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
            if digits > 0 && digits < name.len() {
                (&name[..name.len() - digits], Some(&name[name.len() - digits..]))
            } else {
                (name, None)
            }
        }
    };
    let stem = if GREEK.contains(&stem) {
        format!("\\{stem}")
    } else if stem.chars().count() > 1 {
        format!("\\mathrm{{{stem}}}")
    } else {
        stem.to_string()
    };
    match index {
        Some(index) => format!("{stem}_{{{}}}", index.replace('_', "\\_")),
        None => stem,
    }
}

/// A number in LaTeX: `\pi`, `e`, `\infty`, and `2.5 \cdot 10^{-7}` for exponent forms.
fn latex_number(c: f64) -> String {
    let text = number(c);
    let (sign, body) = match text.strip_prefix('-') {
        Some(body) => ("-", body),
        None => ("", text.as_str()),
    };
    let body = match body {
        "pi" => "\\pi".to_string(),
        "inf" => "\\infty".to_string(),
        "nan" => "\\mathrm{NaN}".to_string(),
        _ => match body.split_once('e') {
            Some((mantissa, exponent)) if !mantissa.is_empty() => {
                if mantissa == "1" {
                    format!("10^{{{exponent}}}")
                } else {
                    format!("{mantissa} \\cdot 10^{{{exponent}}}")
                }
            }
            _ => body.to_string(),
        },
    };
    format!("{sign}{body}")
}

/// The LaTeX symbol of an infix op that has no form of its own in [`to_latex`].
fn latex_infix(op: Op) -> Option<&'static str> {
    Some(match op {
        Op::Less => " < ",
        Op::LessEqual => " \\le ",
        Op::Greater => " > ",
        Op::GreaterEqual => " \\ge ",
        Op::Equal => " = ",
        Op::NotEqual => " \\ne ",
        Op::And => " \\land ",
        Op::Or => " \\lor ",
        Op::Mod => " \\bmod ",
        _ => return None,
    })
}

/// How a call prints in LaTeX: a command of its own, or `\operatorname`.
fn latex_call(name: &str) -> String {
    match name {
        "sin" | "cos" | "tan" | "sinh" | "cosh" | "tanh" | "log" | "exp" | "arcsin" | "arccos" | "arctan" => format!("\\{name}"),
        "asin" | "acos" | "atan" => format!("\\arc{}", &name[1..]),
        "log2" => "\\log_{2}".to_string(),
        "log10" => "\\log_{10}".to_string(),
        "sigmoid" => "\\sigma".to_string(),
        _ => format!("\\operatorname{{{}}}", name.replace('_', "\\_")),
    }
}

/// Whether a product needs `\cdot` before `right`: juxtaposed digits would read as one number.
fn starts_with_digit(graph: &Graph, names: &[Option<String>], right: NodeId) -> bool {
    if names[right.index()].is_some() {
        return false;
    }
    let base = match form(graph, names, right) {
        Form::Square(a) => a,
        _ if graph.node(right).as_op() == Some(Op::Pow) => graph.args(right)[0].expect("base"),
        _ => right,
    };
    names[base.index()].is_none() && graph.node(base).as_const().is_some_and(|c| c.is_finite() && c.abs() != std::f64::consts::PI)
}

fn emit_latex(graph: &Graph, names: &[Option<String>], top: NodeId, out: &mut String) {
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
                out.push_str(&latex_name(name));
                continue;
            }
        }
        let e = graph.node(id);
        let form = form(graph, names, id);
        let branches = where_operands(graph, names, id);
        let prec = match (form, e.as_op()) {
            _ if branches.is_some() => ATOM,
            (Form::Plain, Some(Op::Div | Op::Sqrt | Op::Abs | Op::Select)) => ATOM,
            (Form::Plain, Some(Op::Exp)) => Op::Pow.infix().expect("infix"),
            _ => precedence(e, form),
        };
        if prec < min_prec {
            out.push_str("\\left(");
            stack.push(Task::Text("\\right)"));
        }
        let [a, b] = graph.args(id);
        match form {
            Form::Mean(m) => {
                out.push_str("\\operatorname{mean}");
                let over = mean_over(graph, id);
                if !over.is_empty() {
                    let over: Vec<String> = over.iter().map(|n| latex_name(n)).collect();
                    let _ = write!(out, "_{{{}}}", over.join(", "));
                }
                out.push_str("\\left(");
                stack.push(Task::Text("\\right)"));
                stack.push(Task::Node(m, 0));
                continue;
            }
            Form::Square(a) => {
                stack.push(Task::Text("^{2}"));
                stack.push(Task::Node(a, ATOM));
                continue;
            }
            Form::NegatedProduct(p) => {
                out.push('-');
                stack.push(Task::Node(p, Op::Mul.infix().expect("infix")));
                continue;
            }
            Form::Plain => {}
        }
        if let Some([c, x, y]) = branches {
            out.push_str("\\begin{cases} ");
            stack.extend([
                Task::Text(" & \\text{otherwise} \\end{cases}"),
                Task::Node(y, 0),
                Task::Text(" \\\\ "),
                Task::Node(c, 0),
                Task::Text(" & "),
                Task::Node(x, 0),
            ]);
            continue;
        }
        match e.kind() {
            Kind::Const(c) => out.push_str(&latex_number(*c)),
            Kind::Var(name) => out.push_str(&latex_name(name)),
            Kind::Sum(over) => {
                out.push_str("\\operatorname{sum}");
                if !over.is_empty() {
                    let over: Vec<String> = over.iter().map(|n| latex_name(n)).collect();
                    let _ = write!(out, "_{{{}}}", over.join(", "));
                }
                out.push_str("\\left(");
                stack.push(Task::Text("\\right)"));
                stack.push(Task::Node(a.expect("sum operand"), 0));
            }
            Kind::Apply(op) => {
                let a = a.expect("operand");
                match (op, b) {
                    (Op::Div, Some(b)) => {
                        out.push_str("\\frac{");
                        stack.push(Task::Text("}"));
                        stack.push(Task::Node(b, 0));
                        stack.push(Task::Text("}{"));
                        stack.push(Task::Node(a, 0));
                    }
                    (Op::Pow, Some(b)) => {
                        stack.push(Task::Text("}"));
                        stack.push(Task::Node(b, 0));
                        stack.push(Task::Text("^{"));
                        stack.push(Task::Node(a, ATOM));
                    }
                    (Op::Mul, Some(b)) => {
                        let p = Op::Mul.infix().expect("infix");
                        stack.push(Task::Node(b, p + 1));
                        stack.push(Task::Text(if starts_with_digit(graph, names, b) { " \\cdot " } else { " " }));
                        stack.push(Task::Node(a, p));
                    }
                    (Op::Add | Op::Sub, Some(b)) => {
                        let p = op.infix().expect("infix");
                        stack.push(Task::Node(b, p + 1));
                        stack.push(Task::Text(if *op == Op::Add { " + " } else { " - " }));
                        stack.push(Task::Node(a, p));
                    }
                    (Op::Neg, _) => {
                        out.push('-');
                        stack.push(Task::Node(a, UNARY));
                    }
                    (Op::Sqrt, _) => {
                        out.push_str("\\sqrt{");
                        stack.push(Task::Text("}"));
                        stack.push(Task::Node(a, 0));
                    }
                    (Op::Exp, _) => {
                        out.push_str("e^{");
                        stack.push(Task::Text("}"));
                        stack.push(Task::Node(a, 0));
                    }
                    (Op::Abs, _) => {
                        out.push_str("\\left|");
                        stack.push(Task::Text("\\right|"));
                        stack.push(Task::Node(a, 0));
                    }
                    // Iverson's bracket: `a` where `c` holds (the untaken side is -0.0).
                    (Op::Select, Some(b)) => {
                        out.push_str("\\left[");
                        stack.push(Task::Node(b, Op::Mul.infix().expect("infix")));
                        stack.push(Task::Text("\\right] "));
                        stack.push(Task::Node(a, 0));
                    }
                    (Op::Not, _) => {
                        out.push_str("\\lnot ");
                        stack.push(Task::Node(a, UNARY));
                    }
                    (op, Some(b)) if latex_infix(*op).is_some() => {
                        // Comparisons and logic do not chain: both sides bind tighter.
                        let p = op.infix().expect("infix");
                        let left = if *op == Op::Mod { p } else { p + 1 };
                        stack.push(Task::Node(b, p + 1));
                        stack.push(Task::Text(latex_infix(*op).expect("checked")));
                        stack.push(Task::Node(a, left));
                    }
                    (op, b) => {
                        out.push_str(&latex_call(op.name()));
                        out.push_str("\\left(");
                        stack.push(Task::Text("\\right)"));
                        if let Some(b) = b {
                            stack.push(Task::Node(b, 0));
                            stack.push(Task::Text(", "));
                        }
                        stack.push(Task::Node(a, 0));
                    }
                }
            }
        }
    }
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", to_text(std::slice::from_ref(self)))
    }
}
