//! Fuzzing the core's two readers of untrusted input, with a fixed seed and case count: the
//! parser on arbitrary text and token soups never panics and either parses or returns
//! `Error::Parse` (with a position inside the text); `serial::decode` on arbitrary and mutated
//! bytes never panics and returns `Ok` or `Error::Corrupt`; and printing then parsing a random
//! expression (special constants, partial sums and shared parts included) gives the same node.

use chainrule_core::ops::Op;
use chainrule_core::{build, error::Error, parse, print, serial, Expr};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

/// Cases per property: the whole file runs in a few seconds in release mode.
const CASES: u32 = 10_000;

fn config() -> Config {
    Config { cases: CASES, failure_persistence: None, rng_seed: RngSeed::Fixed(0x00C0_FFEE), ..Config::default() }
}

/// Tokens the lexer knows, their near misses, and characters it does not know.
#[rustfmt::skip]
const TOKENS: &[&str] = &[
    "x", "y", "z", "_a", "t1", "t2", "sin", "cos", "log", "per_sample", "sum", "mean", "over", "inf",
    "nan", "(", ")", "+", "-", "*", "/", "**", "***", "=", ",", ";", "\n", " ", "\t", "\r", "0", "1",
    "2.5", ".5", "1.", "1e", "1e-", "1e400", "1e-400", "5e-324", "0x1", "1_0", "é", "∑", "\u{0}",
    "#", "$", "\\", "[", "]", "{", "'", "\"", ".", "e", "E",
];

fn soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..40).prop_map(|t| t.concat())
}

/// Checks one parse outcome: success, or a parse error that points inside the text.
fn check_parse(text: &str) -> Result<(), TestCaseError> {
    match parse::parse(text) {
        Ok(results) => {
            // Whatever parsed prints back to text that parses to the same nodes.
            let printed = print::to_text(&results);
            let again = parse::parse(&printed).map_err(|e| TestCaseError::fail(format!("{text:?} printed as {printed:?}: {e}")))?;
            prop_assert_eq!(again, results, "{:?} printed as {:?}", text, printed);
        }
        Err(e @ Error::Parse { pos, .. }) => {
            prop_assert!(pos <= text.len(), "position {} past the end of {:?}", pos, text);
            prop_assert!(!e.to_string().is_empty());
        }
        Err(other) => prop_assert!(false, "{:?}: expected a parse error, got {:?}", text, other),
    }
    Ok(())
}

/// Checks one decode outcome: loaded nodes, or a `Corrupt` error.
fn check_decode(bytes: &[u8]) -> Result<(), TestCaseError> {
    match serial::decode(bytes) {
        Ok(roots) => {
            // What loaded encodes back to bytes that load to the same nodes.
            prop_assert_eq!(serial::decode(&serial::encode(&roots)).ok(), Some(roots));
        }
        Err(Error::Corrupt(message)) => prop_assert!(!message.is_empty()),
        Err(other) => prop_assert!(false, "{:?}: expected Error::Corrupt, got {:?}", bytes, other),
    }
    Ok(())
}

/// Constants that stress printing: signed zeros, subnormals, extremes, non-finite values.
#[rustfmt::skip]
const SPECIAL: &[f64] = &[
    0.0, -0.0, 1.0, -1.0, 2.0, 0.5, -2.5, 0.1, 1.0 / 3.0, 1e-4, 9.999e-5, 1e16, 1e300, -1e300,
    f64::MAX, f64::MIN_POSITIVE, 5e-324, -5e-324, f64::INFINITY, f64::NEG_INFINITY, f64::NAN,
];

/// A random expression as a plan: leaves, then ops naming earlier entries (so parts are shared).
#[derive(Clone, Debug)]
enum Step {
    Var(usize),
    Const(f64),
    Apply(usize, usize, usize),
    Sum(usize, Vec<usize>),
    Mean(usize),
}

const NAMES: &[&str] = &["x", "y", "z", "t1", "w_2"];

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..NAMES.len()).prop_map(Step::Var),
        prop_oneof![prop::sample::select(SPECIAL), any::<f64>()].prop_map(Step::Const),
        (0..Op::ALL.len(), any::<usize>(), any::<usize>()).prop_map(|(o, a, b)| Step::Apply(o, a, b)),
        (0..Op::ALL.len(), any::<usize>(), any::<usize>()).prop_map(|(o, a, b)| Step::Apply(o, a, b)),
        (any::<usize>(), prop::collection::vec(0..NAMES.len(), 0..3)).prop_map(|(a, o)| Step::Sum(a, o)),
        any::<usize>().prop_map(Step::Mean),
    ]
}

fn build_plan(plan: &[Step]) -> Vec<Expr> {
    let mut built: Vec<Expr> = vec![build::var("x").expect("valid name")];
    for s in plan {
        let pick = |i: &usize| built[i % built.len()].clone();
        let e = match s {
            Step::Var(k) => build::var(NAMES[*k]).expect("valid name"),
            Step::Const(c) => build::constant(*c),
            Step::Apply(o, a, b) => {
                let op = Op::ALL[*o];
                build::apply(op, &pick(a), (op.arity() == 2).then(|| pick(b)).as_ref())
            }
            Step::Sum(a, over) => build::sum_over(&pick(a), &over.iter().map(|k| NAMES[*k]).collect::<Vec<_>>()),
            Step::Mean(a) => build::mean(&pick(a)),
        };
        built.push(e);
    }
    built
}

fn plans() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(step(), 1..30)
}

/// One byte-level edit of an encoding.
#[derive(Clone, Debug)]
enum Mutation {
    Set(usize, u8),
    Flip(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), 0u8..8).prop_map(|(i, bit)| Mutation::Flip(i, bit)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(bytes: &mut Vec<u8>, m: &Mutation) {
    let n = bytes.len();
    match *m {
        Mutation::Set(i, b) if n > 0 => bytes[i % n] = b,
        Mutation::Flip(i, bit) if n > 0 => bytes[i % n] ^= 1 << bit,
        Mutation::Insert(i, b) => bytes.insert(i % (n + 1), b),
        Mutation::Remove(i) if n > 0 => {
            bytes.remove(i % n);
        }
        Mutation::Truncate(i) => bytes.truncate(i % (n + 1)),
        _ => {}
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn parser_takes_any_text(text in any::<String>()) {
        check_parse(&text)?;
    }

    #[test]
    fn parser_takes_token_soups(text in soup()) {
        check_parse(&text)?;
    }

    #[test]
    fn decoder_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        check_decode(&bytes)?;
    }

    #[test]
    fn decoder_takes_any_bytes_after_the_header(tail in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut bytes = b"CRG\x01".to_vec();
        bytes.extend(tail);
        check_decode(&bytes)?;
    }

    #[test]
    fn decoder_takes_mutated_encodings(plan in plans(), edits in prop::collection::vec(mutation(), 1..4)) {
        let built = build_plan(&plan);
        let mut bytes = serial::encode(&built[built.len() - 2..]);
        for m in &edits {
            mutate(&mut bytes, m);
        }
        check_decode(&bytes)?;
    }

    #[test]
    fn parser_takes_mangled_printed_text(plan in plans(), edits in prop::collection::vec((any::<usize>(), prop::sample::select(TOKENS), any::<bool>()), 1..4)) {
        let built = build_plan(&plan);
        let mut text = print::to_text(&built[built.len() - 2..]);
        for (at, token, delete) in &edits {
            let mut i = at % (text.len() + 1);
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            if *delete {
                let end = text[i..].chars().next().map_or(i, |c| i + c.len_utf8());
                text.replace_range(i..end, "");
            } else {
                text.insert_str(i, token);
            }
        }
        check_parse(&text)?;
    }

    #[test]
    fn print_then_parse_is_the_same_node(plan in plans()) {
        let built = build_plan(&plan);
        let e = built.last().expect("one node at least");
        let text = print::to_text(std::slice::from_ref(e));
        let back = parse::parse_one(&text).map_err(|err| TestCaseError::fail(format!("{text:?}: {err}")))?;
        prop_assert_eq!(&back, e, "{}", text);
        prop_assert_eq!(serial::decode(&serial::encode(std::slice::from_ref(e))).ok(), Some(vec![e.clone()]));
    }

    #[test]
    fn print_then_parse_keeps_several_roots(plan in plans()) {
        let built = build_plan(&plan);
        let roots = built[built.len().saturating_sub(3)..].to_vec();
        let text = print::to_text(&roots);
        prop_assert_eq!(parse::parse(&text).ok(), Some(roots), "{}", text);
    }
}

#[test]
fn every_other_version_byte_is_refused_by_name() {
    let good = serial::encode(&[build::sin(&build::var("x").expect("valid name"))]);
    assert!(serial::decode(&good).is_ok());
    for version in (0..=255u8).filter(|v| *v != serial::VERSION) {
        let mut bytes = good.clone();
        bytes[3] = version;
        match serial::decode(&bytes) {
            Err(Error::Corrupt(message)) => {
                assert!(message.contains(&format!("version {version}")), "{message}")
            }
            other => panic!("version {version}: expected Error::Corrupt, got {other:?}"),
        }
    }
}

#[test]
fn every_truncation_and_single_byte_change_is_handled() {
    let x = build::var("x").expect("valid name");
    let y = build::var("y").expect("valid name");
    let e = build::add(&build::sum_over(&build::mul(&x, &build::sin(&y)), &["y"]), &build::constant(f64::NAN));
    let good = serial::encode(&[e.clone(), build::mean(&e)]);
    for len in 0..good.len() {
        assert!(matches!(serial::decode(&good[..len]), Err(Error::Corrupt(_))), "truncated to {len} bytes");
    }
    for i in 0..good.len() {
        for b in 0..=255u8 {
            let mut bytes = good.clone();
            bytes[i] = b;
            match serial::decode(&bytes) {
                Ok(_) | Err(Error::Corrupt(_)) => {}
                Err(other) => panic!("byte {i} set to {b}: {other:?}"),
            }
        }
    }
}
