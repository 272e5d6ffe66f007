//! Text input: reads exactly what [`crate::print`] writes. Lines (separated by newlines or
//! `;`) are either definitions `name = expr`, which later lines may use, or results. The
//! expression grammar is Python's for the operators it has: comparisons `< <= > >= == !=`
//! (which do not chain) < `|` < `&` < `+ -` < `* / %` < unary `-` and `~` < `**`
//! (right-associative, and `-x ** 2` is `-(x ** 2)`), calls `f(e)`, `where(c, a, b)`, `sum(e)`,
//! `sum(e, over=w)`, `sum(e, over=(v, w))`, `mean(e)`, `mean(e, over=w)` (`sum(e, over=w) /
//! sum(1)`, how a mean's gradient prints), numbers with exponents, `inf`, `nan`,
//! and the constants `pi` and `e`.
//! An operator-precedence (shunting-yard) parser with explicit stacks: nesting depth costs
//! heap, never stack.

use rustc_hash::FxHashMap;

use crate::build;
use crate::error::{Error, Result};
use crate::expr::Expr;
use crate::ops::Op;

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(f64),
    Name(String),
    Sym(&'static str),
    End,
}

struct Lexer<'a> {
    text: &'a str,
    pos: usize,
}

const SYMBOLS: &[&str] = &["**", "+", "-", "*", "/", "(", ")", ",", "=", "\n", ";"];
// piecewise, comparisons and logic: looked up before SYMBOLS, where "=" would take "==" apart.
const LOGIC_SYMBOLS: &[&str] = &["<=", ">=", "==", "!=", "<", ">", "%", "&", "|", "~"];

impl Lexer<'_> {
    /// The next token and its byte offset.
    fn next(&mut self) -> Result<(Tok, usize)> {
        let bytes = self.text.as_bytes();
        while self.pos < bytes.len() && matches!(bytes[self.pos], b' ' | b'\t' | b'\r') {
            self.pos += 1;
        }
        let start = self.pos;
        let Some(&c) = bytes.get(start) else { return Ok((Tok::End, start)) };
        if c.is_ascii_digit() || (c == b'.' && bytes.get(start + 1).is_some_and(u8::is_ascii_digit)) {
            return self.number(start);
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            let end = start + bytes[start..].iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_').count();
            self.pos = end;
            let mut name = self.text[start..end].to_string();
            if let Some((index, after)) = element_index(&self.text[end..]) {
                name.push_str(&index);
                self.pos = end + after;
            }
            return Ok((Tok::Name(name), start));
        }
        for sym in LOGIC_SYMBOLS.iter().chain(SYMBOLS) {
            if self.text[start..].starts_with(sym) {
                self.pos += sym.len();
                return Ok((Tok::Sym(sym), start));
            }
        }
        let ch = self.text[start..].chars().next().unwrap_or('?');
        Err(Error::parse(self.text, start, format!("unexpected character {ch:?}")))
    }

    fn number(&mut self, start: usize) -> Result<(Tok, usize)> {
        let bytes = self.text.as_bytes();
        let digits = |mut i: usize| {
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            i
        };
        let mut end = digits(start);
        if bytes.get(end) == Some(&b'.') {
            end = digits(end + 1);
        }
        if matches!(bytes.get(end), Some(b'e' | b'E')) {
            let mut exp = end + 1;
            if matches!(bytes.get(exp), Some(b'+' | b'-')) {
                exp += 1;
            }
            let exp_end = digits(exp);
            if exp_end == exp {
                return Err(Error::parse(self.text, end, "malformed exponent in number"));
            }
            end = exp_end;
        }
        self.pos = end;
        let value = self.text[start..end].parse::<f64>().map_err(|_| Error::parse(self.text, start, "malformed number"))?;
        Ok((Tok::Num(value), start))
    }
}

/// A pending operator on the operator stack.
enum Pending {
    Unary(Op),
    Binary(Op, u8),
    Paren(usize),
    Call { name: String, pos: usize, args: usize, over: Option<Vec<String>> },
}

/// An element index right after a name (`[3, 7]` in `W[3, 7]`: an element of an array
/// variable), written as variable names spell it (`[3,7]`), and how many bytes it took.
fn element_index(rest: &str) -> Option<(String, usize)> {
    let inner_end = rest.strip_prefix('[')?.find(']')? + 1;
    let parts: Vec<&str> = rest[1..inner_end].split(',').map(str::trim).collect();
    let digits = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    parts.iter().all(digits).then(|| (format!("[{}]", parts.join(",")), inner_end + 1))
}

/// Parses text into its result expressions (one per non-definition line).
pub fn parse(text: &str) -> Result<Vec<Expr>> {
    Parser { lexer: Lexer { text, pos: 0 }, defs: FxHashMap::default(), peeked: None }.lines()
}

/// Parses text that must hold exactly one result expression.
pub fn parse_one(text: &str) -> Result<Expr> {
    let mut results = parse(text)?;
    match results.len() {
        1 => Ok(results.pop().expect("one result")),
        0 => Err(Error::parse(text, text.len(), "expected an expression")),
        n => Err(Error::parse(text, text.len(), format!("expected one expression, found {n} result lines"))),
    }
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    defs: FxHashMap<String, Expr>,
    peeked: Option<(Tok, usize)>,
}

impl Parser<'_> {
    fn next(&mut self) -> Result<(Tok, usize)> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lexer.next(),
        }
    }

    fn peek(&mut self) -> Result<&Tok> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lexer.next()?);
        }
        Ok(&self.peeked.as_ref().expect("just peeked").0)
    }

    fn error(&self, pos: usize, message: impl Into<String>) -> Error {
        Error::parse(self.lexer.text, pos, message)
    }

    fn lines(mut self) -> Result<Vec<Expr>> {
        let mut results = Vec::new();
        loop {
            let (tok, pos) = self.next()?;
            match tok {
                Tok::End => return Ok(results),
                Tok::Sym("\n" | ";") => continue,
                Tok::Name(name) if self.peek()? == &Tok::Sym("=") => {
                    self.next()?;
                    if !build::is_valid_name(&name) {
                        return Err(self.error(pos, format!("cannot define reserved name '{name}'")));
                    }
                    let e = self.expression(None)?;
                    self.defs.insert(name, e);
                }
                first => results.push(self.expression(Some((first, pos)))?),
            }
        }
    }

    /// Parses one expression up to the end of its line.
    fn expression(&mut self, first: Option<(Tok, usize)>) -> Result<Expr> {
        let mut pending = first;
        let mut values: Vec<Expr> = Vec::new();
        let mut ops: Vec<Pending> = Vec::new();
        let mut expect_operand = true;
        loop {
            let (tok, pos) = match pending.take() {
                Some(t) => t,
                None => self.next()?,
            };
            if expect_operand {
                expect_operand = self.operand(tok, pos, &mut values, &mut ops)?;
                continue;
            }
            match tok {
                Tok::Sym(s) if binary_op(s).is_some() => {
                    let op = binary_op(s).expect("just checked");
                    let prec = op.infix().expect("operator");
                    let right_assoc = op == Op::Pow;
                    while let Some(top) = ops.last() {
                        let top_prec = match top {
                            Pending::Unary(op) => op.infix().expect("prefix operator"),
                            Pending::Binary(_, p) => *p,
                            _ => break,
                        };
                        if top_prec == prec && is_comparison(op) {
                            return Err(self.error(pos, "chained comparisons are not supported: write (a < b) & (b < c)"));
                        }
                        if top_prec > prec || (top_prec == prec && !right_assoc) {
                            reduce(&mut values, ops.pop().expect("top"));
                        } else {
                            break;
                        }
                    }
                    ops.push(Pending::Binary(op, prec));
                    expect_operand = true;
                }
                Tok::Sym(")") => {
                    self.close(pos, &mut values, &mut ops)?;
                }
                Tok::Sym(",") => {
                    self.comma(pos, &mut values, &mut ops)?;
                    expect_operand = self.after_comma(&mut ops)?;
                }
                Tok::End | Tok::Sym("\n" | ";") => {
                    while let Some(op) = ops.pop() {
                        match op {
                            Pending::Paren(p) | Pending::Call { pos: p, .. } => return Err(self.error(p, "unclosed parenthesis")),
                            op => reduce(&mut values, op),
                        }
                    }
                    debug_assert_eq!(values.len(), 1);
                    return values.pop().ok_or_else(|| self.error(pos, "expected an expression"));
                }
                other => return Err(self.error(pos, format!("expected an operator, found {}", describe(&other)))),
            }
        }
    }

    /// Handles a token where an operand is expected; returns whether one is still expected.
    fn operand(&mut self, tok: Tok, pos: usize, values: &mut Vec<Expr>, ops: &mut Vec<Pending>) -> Result<bool> {
        match tok {
            Tok::Num(v) => values.push(build::constant(v)),
            Tok::Sym("-") => {
                ops.push(Pending::Unary(Op::Neg));
                return Ok(true);
            }
            Tok::Sym("~") => {
                ops.push(Pending::Unary(Op::Not));
                return Ok(true);
            }
            Tok::Sym("+") => return Ok(true),
            Tok::Sym("(") => {
                ops.push(Pending::Paren(pos));
                return Ok(true);
            }
            Tok::Name(name) if self.peek()? == &Tok::Sym("(") => {
                self.next()?;
                if !matches!(name.as_str(), "sum" | "mean") && Op::from_call_name(&name).is_none() && sugar_arity(&name).is_none() {
                    return Err(self.error(pos, unknown_function(&name)));
                }
                ops.push(Pending::Call { name, pos, args: 0, over: None });
                return Ok(true);
            }
            Tok::Name(name) => values.push(self.name(&name, pos)?),
            other => return Err(self.error(pos, format!("expected an operand, found {}", describe(&other)))),
        }
        Ok(false)
    }

    fn name(&self, name: &str, pos: usize) -> Result<Expr> {
        if let Some(e) = self.defs.get(name) {
            return Ok(e.clone());
        }
        match name {
            "inf" => Ok(build::constant(f64::INFINITY)),
            "nan" => Ok(build::constant(f64::NAN)),
            "pi" => Ok(build::constant(std::f64::consts::PI)),
            "e" => Ok(build::constant(std::f64::consts::E)),
            _ => build::var(name).map_err(|_| self.error(pos, format!("'{name}' cannot be used as a variable name"))),
        }
    }

    fn unwind_to_group(&self, pos: usize, values: &mut Vec<Expr>, ops: &mut Vec<Pending>) -> Result<()> {
        while let Some(top) = ops.last() {
            match top {
                Pending::Paren(_) | Pending::Call { .. } => return Ok(()),
                _ => reduce(values, ops.pop().expect("top")),
            }
        }
        Err(self.error(pos, "unmatched closing parenthesis or stray comma"))
    }

    fn comma(&mut self, pos: usize, values: &mut Vec<Expr>, ops: &mut Vec<Pending>) -> Result<()> {
        self.unwind_to_group(pos, values, ops)?;
        match ops.last_mut() {
            Some(Pending::Call { args, .. }) => {
                *args += 1;
                Ok(())
            }
            _ => Err(self.error(pos, "a comma is only allowed between function arguments")),
        }
    }

    /// After a comma inside a call: reads `over=...` for `sum`, else expects another operand.
    fn after_comma(&mut self, ops: &mut [Pending]) -> Result<bool> {
        let Some(Pending::Call { name, over, .. }) = ops.last_mut() else { return Ok(true) };
        if !matches!(name.as_str(), "sum" | "mean") || self.peek()? != &Tok::Name("over".into()) {
            return Ok(true);
        }
        self.next()?;
        self.expect("=")?;
        let mut names = Vec::new();
        let (tok, pos) = self.next()?;
        match tok {
            Tok::Name(n) => names.push(self.over_name(n, pos)?),
            Tok::Sym("(") => loop {
                let (tok, pos) = self.next()?;
                let Tok::Name(n) = tok else { return Err(self.error(pos, "expected a variable name in over=(...)")) };
                names.push(self.over_name(n, pos)?);
                let (tok, pos) = self.next()?;
                match tok {
                    Tok::Sym(",") => continue,
                    Tok::Sym(")") => break,
                    _ => return Err(self.error(pos, "expected ',' or ')' in over=(...)")),
                }
            },
            _ => return Err(self.error(pos, "expected a variable name after over=")),
        }
        *over = Some(names);
        let (tok, pos) = self.next()?;
        if tok != Tok::Sym(")") {
            return Err(self.error(pos, "expected ')' after over=..."));
        }
        self.peeked = Some((Tok::Sym(")"), pos));
        Ok(false)
    }

    fn over_name(&self, name: String, pos: usize) -> Result<String> {
        if build::is_valid_name(&name) {
            Ok(name)
        } else {
            Err(self.error(pos, format!("'{name}' is not a variable name")))
        }
    }

    fn expect(&mut self, sym: &'static str) -> Result<()> {
        let (tok, pos) = self.next()?;
        if tok == Tok::Sym(sym) {
            Ok(())
        } else {
            Err(self.error(pos, format!("expected '{sym}', found {}", describe(&tok))))
        }
    }

    fn close(&self, pos: usize, values: &mut Vec<Expr>, ops: &mut Vec<Pending>) -> Result<()> {
        self.unwind_to_group(pos, values, ops)?;
        match ops.pop() {
            Some(Pending::Call { name, pos: call_pos, args, over }) => {
                let given = args + 1 - usize::from(over.is_some());
                let op = Op::from_call_name(&name);
                let takes = op.map_or_else(|| sugar_arity(&name).unwrap_or(1), |op| op.arity());
                if given != takes {
                    let s = if takes == 1 { "" } else { "s" };
                    return Err(self.error(call_pos, format!("{name}() takes {takes} argument{s}, {given} given")));
                }
                let mut args = values.split_off(values.len() - takes);
                let a = args.remove(0);
                values.push(match (name.as_str(), op) {
                    ("sum", _) => build::sum_over(&a, &over.unwrap_or_default()),
                    // A mean's gradient: the batch total over w's broadcast dimensions, over N.
                    ("mean", _) => build::div(&build::sum_over(&a, &over.unwrap_or_default()), &build::sum(&build::constant(1.0))),
                    (_, Some(op)) => build::apply(op, &a, args.first()),
                    (sugar, None) => build_sugar(sugar, &a, &args),
                });
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

fn reduce(values: &mut Vec<Expr>, op: Pending) {
    match op {
        Pending::Unary(op) => {
            let a = values.pop().expect("operand");
            values.push(build::apply(op, &a, None));
        }
        Pending::Binary(op, _) => {
            let b = values.pop().expect("right operand");
            let a = values.pop().expect("left operand");
            values.push(build::apply(op, &a, Some(&b)));
        }
        Pending::Paren(_) | Pending::Call { .. } => unreachable!("groups are closed by ')'"),
    }
}

/// "unknown function 'arctan3'; did you mean arctan2?", naming the known functions closest
/// in spelling (those within a third of the name's length in edits), so that a typo or
/// another library's spelling points at ours.
fn unknown_function(name: &str) -> String {
    let aliases = Op::ALIASES.iter().map(|&(alias, _)| alias);
    let known = Op::ALL
        .iter()
        .filter(|op| op.infix().is_none())
        .map(|op| op.name())
        .chain(aliases)
        .chain(["sum", "mean"])
        .chain(SUGAR.iter().map(|s| s.0));
    let limit = name.chars().count().div_ceil(3).max(1);
    let mut near: Vec<(usize, &str)> = known.map(|k| (edit_distance(name, k), k)).filter(|&(d, _)| d <= limit).collect();
    near.sort();
    near.dedup();
    let near: Vec<&str> = near.iter().take(3).map(|&(_, k)| k).collect();
    match near.as_slice() {
        [] => format!("unknown function '{name}'"),
        [one] => format!("unknown function '{name}'; did you mean {one}?"),
        [init @ .., last] => format!("unknown function '{name}'; did you mean {} or {last}?", init.join(", ")),
    }
}

/// Levenshtein distance between two short names (one row of the table at a time).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// The binary operator spelled `sym` in text.
fn binary_op(sym: &str) -> Option<Op> {
    Op::ALL.iter().copied().find(|op| op.arity() == 2 && op.infix().is_some() && op.name() == sym)
}

// piecewise, comparisons and logic

/// Whether `op` compares: Python reads `a < b < c` as `a < b and b < c`, which a left-leaning
/// tree would silently misread, so a chain is refused.
fn is_comparison(op: Op) -> bool {
    matches!(op, Op::Less | Op::LessEqual | Op::Greater | Op::GreaterEqual | Op::Equal | Op::NotEqual)
}

/// Calls that text accepts and the builders lower (no op of their own), with their arity:
/// `where` and `clip`, and numexpr's helpers that are trivial for real input.
const SUGAR: &[(&str, usize)] =
    &[("square", 1), ("where", 3), ("clip", 3), ("conj", 1), ("real", 1), ("imag", 1), ("copy", 1), ("ones_like", 1)];

fn sugar_arity(name: &str) -> Option<usize> {
    SUGAR.iter().find(|s| s.0 == name).map(|s| s.1)
}

fn build_sugar(name: &str, a: &Expr, rest: &[Expr]) -> Expr {
    match (name, rest) {
        ("where", [x, y]) => build::where_(a, x, y),
        ("clip", [lo, hi]) => build::clip(a, lo, hi),
        // As `a ** 2`: the same node as `a * a`.
        ("square", _) => build::mul(a, a),
        ("imag", _) => build::constant(0.0),
        ("ones_like", _) => build::constant(1.0),
        _ => a.clone(),
    }
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Num(v) => format!("number {v}"),
        Tok::Name(n) => format!("name '{n}'"),
        Tok::Sym("\n") => "end of line".into(),
        Tok::Sym(s) => format!("'{s}'"),
        Tok::End => "end of input".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pi_and_e_read_as_constants_and_print_back() {
        let e = parse_one("pi * x + e").expect("parses");
        assert_eq!(crate::print::to_text(std::slice::from_ref(&e)), "pi * x + e");
        assert_eq!(parse_one("pi").expect("parses"), build::constant(std::f64::consts::PI));
        assert!(build::var("e").is_err() && build::var("pi").is_err());
    }

    #[test]
    fn unknown_function_names_the_nearest() {
        assert_eq!(edit_distance("arctan3", "arctan2"), 1);
        assert_eq!(edit_distance("", "exp"), 3);
        assert_eq!(unknown_function("tanhh"), "unknown function 'tanhh'; did you mean tanh, atanh or tan?");
        assert_eq!(unknown_function("frobnicate"), "unknown function 'frobnicate'");
    }
}
