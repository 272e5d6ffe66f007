//! Fused tape instructions (`sin_cos`, two-op `Fused` loops) and the evaluator's copy-free
//! loads and stores change no bit: arithmetic-only tapes equal the reference evaluator exactly
//! (both round after every IEEE op), and a fused `sin_cos` equals the separate kernels.

mod common;
use chainrule_core::{kernels, reference, Expr, Function};
use common::*;

/// Runs `outputs` on the fast evaluator; inputs are (name, data, shape).
fn fast(outputs: &[Expr], inputs: &[(&str, &[f64], &[usize])]) -> Vec<Vec<f64>> {
    let vars: Vec<Expr> = inputs.iter().map(|(n, _, _)| v(n)).collect();
    let f = Function::new(outputs, &vars).expect("compiles");
    let shapes: Vec<Vec<usize>> = inputs.iter().map(|i| i.2.to_vec()).collect();
    let call = f.prepare(&shapes).expect("broadcasts");
    let mut outs: Vec<Vec<f64>> = call.output_shapes.iter().map(|s| vec![f64::NAN; s.iter().product()]).collect();
    let data: Vec<&[f64]> = inputs.iter().map(|i| i.1).collect();
    let mut views: Vec<&mut [f64]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
    f.run(&call, &data, &mut views).expect("runs");
    outs
}

fn listing(text: &str, inputs: &[&str]) -> String {
    let vars: Vec<Expr> = inputs.iter().map(|n| v(n)).collect();
    let f = Function::new(&[p(text)], &vars).expect("compiles");
    f.tape(&vec![false; inputs.len()]).to_string()
}

fn assert_bitwise(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()), "{what} element {i}: fast {g:e} vs {w:e}");
    }
}

#[test]
fn listings_show_fused_instructions() {
    let t = listing("sin(x) * cos(x)", &["x"]);
    assert!(t.contains("r1, r2 = sin_cos(r0)"), "{t}");
    let t = listing("x * y + 1", &["x", "y"]);
    assert!(t.contains(") + s0"), "{t}");
    let t = listing("sigmoid(x) * sigmoid(-x)", &["x"]);
    assert!(t.contains(" = sigmoid_slope(r0)") && !t.contains("-r0"), "{t}");
    // tanh's slope, 4 * sigmoid(2 * x) * sigmoid(-2 * x), negated through the constant.
    let t = listing("sigmoid(2 * x) * sigmoid(-2 * x)", &["x"]);
    assert!(t.contains(" = sigmoid_slope(r") && t.matches(" * r0").count() == 1, "{t}");
    // Either sigmoid may be the one the kernel gives with the slope, the other must have no
    // other reader.
    let t = listing("sigmoid(x) * sigmoid(-x) + sigmoid(-x)", &["x"]);
    assert!(t.contains(" = sigmoid_slope(r1)"), "{t}");
    let t = listing("sigmoid(x) * sigmoid(-x) + sigmoid(-x) + sigmoid(x)", &["x"]);
    assert!(!t.contains("sigmoid_slope"), "{t}");
    // Not the negated argument.
    let t = listing("sigmoid(x) * sigmoid(x + 1)", &["x"]);
    assert!(!t.contains("sigmoid_slope"), "{t}");
    let t = listing("-(x * y)", &["x", "y"]);
    assert!(t.contains("= -(r"), "{t}");
}

#[test]
fn arithmetic_tapes_equal_the_reference_bit_for_bit() {
    let n = 3000; // several chunks and a ragged tail
    let (xs, ys, zs) = (values(n, 1, -3.0, 3.0), values(n, 2, -3.0, 3.0), values(n, 3, 0.1, 2.0));
    let w = [0.75];
    let mut specials = xs.clone();
    specials[..6].copy_from_slice(&[0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1e-310]);
    let exprs = [
        "x * y + z",
        "z - x * y",
        "(x - y) / z",
        "z / (x + y)",
        "-(x / z)",
        "-(x * w)",
        "x * (1 - x)",
        "(w - x) * y",
        "x * x + 1",
        "w * x + y",
        "(x * y) * (x + z)",
        "x * y - (x + z) * w",
        "((x + y) * z - x) / (z + w)",
        "-(x * y) + -(z * w)",
        "x / (y * z) - w / (x - z)",
    ];
    for text in exprs {
        let e = p(text);
        // The value, twice (one direct write, one copy) and scaled (a read after the direct
        // write), and an input passed straight through.
        let outputs = [e.clone(), e.clone(), build_mul2(&e), v("x")];
        for xdata in [&xs, &specials] {
            let inputs: [(&str, &[f64], &[usize]); 4] = [("x", xdata, &[n]), ("y", &ys, &[n]), ("z", &zs, &[n]), ("w", &w, &[])];
            let got = fast(&outputs, &inputs);
            let want = reference::evaluate(&outputs, &inputs).expect("reference");
            for (o, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_bitwise(g, w, &format!("{text} output {o}"));
            }
        }
    }
}

fn build_mul2(e: &Expr) -> Expr {
    chainrule_core::build::mul(&chainrule_core::build::constant(2.0), e)
}

#[test]
fn broadcast_operands_are_still_gathered() {
    let (xs, ys) = (values(30, 4, -2.0, 2.0), values(700, 5, -2.0, 2.0));
    let outputs = [p("x * y + x"), p("y - x * x")];
    let inputs: [(&str, &[f64], &[usize]); 2] = [("x", &xs, &[30, 1]), ("y", &ys, &[700])];
    let got = fast(&outputs, &inputs);
    let want = reference::evaluate(&outputs, &inputs).expect("reference");
    for (o, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_bitwise(g, w, &format!("output {o}"));
    }
}

#[test]
fn fused_sin_cos_equals_the_separate_kernels() {
    let n = 2500;
    let mut xs = values(n, 6, -20.0, 20.0);
    xs[..5].copy_from_slice(&[0.0, -0.0, f64::NAN, 3e6, -1e-9]);
    let got = fast(&[p("sin(x)"), p("cos(x)"), p("sin(x) * cos(x)")], &[("x", &xs, &[n])]);
    let (mut s, mut c) = (vec![0.0; n], vec![0.0; n]);
    kernels::sin(&xs, &mut s);
    kernels::cos(&xs, &mut c);
    let prod: Vec<f64> = s.iter().zip(&c).map(|(a, b)| a * b).collect();
    assert_bitwise(&got[0], &s, "sin");
    assert_bitwise(&got[1], &c, "cos");
    assert_bitwise(&got[2], &prod, "sin * cos");
}

#[test]
fn fused_sigmoid_slope_equals_the_kernel_and_arithmetic() {
    let n = 2500;
    let mut xs = values(n, 7, -50.0, 50.0);
    xs[..6].copy_from_slice(&[0.0, -0.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -800.0]);
    let outputs = [p("sigmoid(x)"), p("sigmoid(x) * sigmoid(-x)"), p("sigmoid(-x) * sigmoid(x) * x")];
    let got = fast(&outputs, &[("x", &xs, &[n])]);
    let (mut s, mut s_neg) = (vec![0.0; n], vec![0.0; n]);
    kernels::sigmoid(&xs, &mut s);
    kernels::sigmoid(&xs.iter().map(|x| -x).collect::<Vec<_>>(), &mut s_neg);
    let slope: Vec<f64> = s.iter().zip(&s_neg).map(|(v, w)| v * w).collect();
    let scaled: Vec<f64> = slope.iter().zip(&xs).map(|(d, x)| d * x).collect();
    assert_bitwise(&got[0], &s, "sigmoid");
    assert_bitwise(&got[1], &slope, "slope");
    assert_bitwise(&got[2], &scaled, "slope * x");
}

/// A sigmoid-with-slope of `w * x + b` (uniform `w`, `b`) forms its argument in the kernel's
/// loop; values and slopes, and the network gradients built from them, are bit for bit those of
/// the unfused tape (the argument kept in a register because it is also an output).
#[test]
fn affine_sigmoid_slope_equals_the_unfused_tape() {
    let t = listing("sigmoid(w * x + b) * sigmoid(-(w * x + b))", &["x", "w", "b"]);
    assert!(!t.contains("sigmoid_slope(("), "w, b per sample: no affine fusion\n{t}");
    let vars: Vec<Expr> = ["x", "w", "b"].iter().map(|n| v(n)).collect();
    let f = Function::new(&[p("sigmoid(w * x + b) * sigmoid(-(w * x + b))")], &vars).expect("compiles");
    let t = f.tape(&[false, true, true]).to_string();
    assert!(t.contains("= sigmoid_slope((s") && t.contains(" * r0) + s") && !t.contains(" = (s"), "{t}");

    let n = 3000; // several chunks and a ragged tail
    let mut xs = values(n, 8, -60.0, 60.0);
    xs[..6].copy_from_slice(&[0.0, -0.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -800.0]);
    let ys = values(2 * n, 9, 0.0, 1.0);
    let exprs = ["sigmoid(w * x + b)", "sigmoid(x * w - b)", "sigmoid(b + x * w)", "sigmoid(w * sigmoid(w * x + b) + b)"];
    for text in exprs {
        let e = p(text);
        let arg = p(&text["sigmoid(".len()..text.len() - 1]);
        let slope = chainrule_core::build::mul(&e, &chainrule_core::build::sigmoid(&chainrule_core::build::neg(&arg)));
        let j = p(&format!("mean((y - {text}) ** 2)"));
        let mut fused = vec![e.clone(), slope.clone(), j.clone()];
        fused.extend(grad(&j, &[v("w"), v("b")]));
        // The same outputs plus the argument itself: it then has a second reader and stays
        // a register, so that tape is the unfused one.
        let mut unfused = fused.clone();
        unfused.push(arg);
        let uniform_wb = [false, false, true, true];
        let vars: Vec<Expr> = ["x", "y", "w", "b"].iter().map(|n| v(n)).collect();
        let t = Function::new(&fused, &vars).expect("compiles").tape(&uniform_wb).to_string();
        assert!(t.contains("sigmoid_slope((s"), "{text}: fused\n{t}");
        let t = Function::new(&unfused, &vars).expect("compiles").tape(&uniform_wb).to_string();
        assert!(t.matches("sigmoid_slope((s").count() < 1 + usize::from(text.contains("sigmoid(w * sigmoid")), "{text}: unfused\n{t}");
        for (w, b) in [(0.7, -0.2), (-2.0, 1.5)] {
            for (xshape, xdata) in [(vec![n], &xs[..]), (vec![n / 3, 1], &xs[..n / 3]), (vec![], &xs[7..8])] {
                let (w, b) = ([w], [b]);
                let ys2: &[f64] = if xshape.len() == 2 { &ys[..n / 3 * 5] } else { &ys[..n] };
                let yshape: Vec<usize> = if xshape.len() == 2 { vec![n / 3, 5] } else { vec![ys2.len()] };
                let inputs: [(&str, &[f64], &[usize]); 4] = [("x", xdata, &xshape), ("y", ys2, &yshape), ("w", &w, &[]), ("b", &b, &[])];
                let got = fast(&fused, &inputs);
                let want = fast(&unfused, &inputs);
                for (o, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert_bitwise(g, w, &format!("{text} x{xshape:?} output {o}"));
                }
            }
        }
    }
}

/// python/chainrule/compiled.py shows this listing in a doctest (its slot numbers depend on
/// how the expression was built, so only the chunk code is compared).
#[test]
fn listing_of_the_python_doctest_is_unchanged() {
    let t = listing("sin(x) * 2", &["x"]);
    let s = if t.starts_with("s0 = 2") { "s0" } else { "s1" };
    let want = format!("pass 0: 2 registers of 1024 samples\n  for each chunk:\n    r0 = load in0\n    r1 = sin(r0)\n    r0 = {s} * r1\n    out0 <- r0\nout0 = stored chunks\n");
    assert!(t.ends_with(&want), "{t}");
}

/// Runs `outputs` with `threads` threads and returns their bits (nan as one pattern).
fn bits_with_threads(outputs: &[Expr], inputs: &[(&str, &[f64], &[usize])], threads: usize) -> Vec<Vec<u64>> {
    let previous = chainrule_core::pool::set_thread_override(Some(threads));
    let got = fast(outputs, inputs);
    chainrule_core::pool::set_thread_override(previous);
    got.iter().map(|o| o.iter().map(|v| if v.is_nan() { f64::NAN.to_bits() } else { v.to_bits() }).collect()).collect()
}

/// The operands of every sum in `outputs`' graph (a test helper; graphs here are small).
fn summed_operands(outputs: &[Expr]) -> Vec<Expr> {
    let (mut seen, mut stack, mut found) = (std::collections::HashSet::new(), outputs.to_vec(), Vec::new());
    while let Some(e) = stack.pop() {
        if !seen.insert(e.id()) {
            continue;
        }
        if let chainrule_core::Kind::Sum(_) = e.kind() {
            found.push(e.arg0().expect("sum operand").clone());
        }
        stack.extend(e.args().cloned());
    }
    found
}

/// `outputs` and the same outputs with every summed value also an output: a second reader
/// keeps each summed value in a register of its own, so the second tape sums registers only.
fn fused_and_unfused(outputs: &[Expr]) -> (Vec<Expr>, Vec<Expr>) {
    let mut unfused = outputs.to_vec();
    unfused.extend(summed_operands(outputs));
    (outputs.to_vec(), unfused)
}

/// A listing with register and slot numbers replaced by `#` (`r3` -> `r#`).
fn numbers_hidden(listing: &str) -> String {
    let mut out = String::with_capacity(listing.len());
    let mut chars = listing.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if (c == 'r' || c == 's') && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('#');
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
        }
    }
    out
}

/// A negation, a product or a negated product that only a sum reads is formed in the
/// summation loop (`acc0 -= sum(r0 * r1)`, no register written), and the sums are bit for bit
/// those of the unfused tape: over ragged chunk tails, 1 to 16 threads, uniform and broadcast
/// operands, and chunks whose values cancel (negating a cancelled chunk's +0 partial would
/// give -0; subtracting in the loop keeps +0).
#[test]
fn sums_of_products_and_negations_equal_the_unfused_tape() {
    // (summed expression, the accumulate the fused tape shows, numbers hidden).
    let cases = [
        ("x * y", "acc0 += sum(r# * r#)"),
        ("-x", "acc0 -= sum(r#)"),
        ("-(x * y)", "acc0 -= sum(r# * r#)"),
        ("x * w", "acc0 += sum(r# * s#)"),
        ("w * x", "acc0 += sum(r# * s#)"),
        ("-(w * x)", "acc0 -= sum(r# * s#)"),
        ("x * x", "acc0 += sum(r# * r#)"),
        ("-(sin(x) * y)", "acc0 -= sum(r# * r#)"),
        // The negation folded, its operand a fused two-op loop of its own.
        ("-(x + y) * w", "acc0 -= sum(r#)"),
        // Not folded: a product of a fused loop and a third operand, a quotient.
        ("(x * y) * w", "acc0 += sum(r#)"),
        ("x / y", "acc0 += sum(r#)"),
    ];
    let vars: Vec<Expr> = ["x", "y", "w"].iter().map(|n| v(n)).collect();
    let big = 3 * 8 * 1024 + 13; // enough chunks for the pool, and a ragged tail
    let xs = values(big, 31, -3.0, 3.0);
    let ys = values(big, 32, -3.0, 3.0);
    let mut cancel = vec![0.0; big];
    for (i, c) in cancel.iter_mut().enumerate() {
        *c = if i / 8 % 2 == 0 { 1.5 } else { -1.5 }; // every lane of every full chunk sums to +0
    }
    let ones = vec![1.0; big];
    let w = [0.75];
    for (text, shown) in cases {
        let (fused, unfused) = fused_and_unfused(&[p(&format!("sum({text})")), p(&format!("mean({text}) * 2"))]);
        let t = numbers_hidden(&Function::new(&fused, &vars).expect("compiles").tape(&[false, false, true]).to_string());
        assert!(t.contains(&format!("    {shown}\n")) && t.matches("sum(").count() == 1, "{text}: fused\n{t}");
        let u = numbers_hidden(&Function::new(&unfused, &vars).expect("compiles").tape(&[false, false, true]).to_string());
        assert!(u.contains("    acc0 += sum(r#)\n") && u.matches("sum(").count() == 1, "{text}: unfused\n{u}");
        let broadcast: (&[usize], &[usize]) = (&[97, 1], &[1, 103]);
        for (n, xshape, yshape) in [
            (1, vec![1], vec![1]),
            (7, vec![7], vec![7]),
            (1031, vec![1031], vec![1031]),
            (big, vec![big], vec![big]),
            (97 * 103, broadcast.0.to_vec(), broadcast.1.to_vec()),
        ] {
            let sizes = (xshape.iter().product::<usize>(), yshape.iter().product::<usize>());
            for (xdata, ydata) in [(&xs, &ys), (&cancel, &ones)] {
                let inputs: [(&str, &[f64], &[usize]); 3] =
                    [("x", &xdata[..sizes.0], &xshape), ("y", &ydata[..sizes.1], &yshape), ("w", &w, &[])];
                let want = bits_with_threads(&unfused, &inputs, 1);
                for threads in [1, 2, 4, 16] {
                    let got = bits_with_threads(&fused, &inputs, threads);
                    assert_eq!(got[..], want[..fused.len()], "{text}, n = {n}, {threads} threads");
                }
            }
        }
        let whole = 3 * 8 * 1024;
        let inputs: [(&str, &[f64], &[usize]); 3] =
            [("x", &cancel[..whole], &[whole]), ("y", &ones[..whole], &[whole]), ("w", &[1.0], &[])];
        if ["x * y", "-x", "-(x * y)", "x * w", "w * x", "-(w * x)"].contains(&text) {
            let got = bits_with_threads(&fused, &inputs, 2);
            assert_eq!(got[0][0], 0.0f64.to_bits(), "{text}: sum of cancelling chunks is +0");
        }
    }
}

/// W1, the article's network: its five sums are all folded, and the loss and gradients are
/// bit for bit those of the unfused tape for any thread count; a summed value that is also
/// an output stays a register of its own.
#[test]
fn network_sums_equal_the_unfused_tape() {
    let vars: Vec<Expr> = ["x", "y", "w1", "b1", "w2", "b2"].iter().map(|n| v(n)).collect();
    let j = p("mean((y - sigmoid(w2 * sigmoid(w1 * x + b1) + b2)) ** 2)");
    let mut outputs = vec![j.clone()];
    outputs.extend(grad(&j, &vars[2..]));
    let (fused, unfused) = fused_and_unfused(&outputs);
    let uniform = [false, false, true, true, true, true];
    let t = Function::new(&fused, &vars).expect("compiles").tape(&uniform).to_string();
    assert_eq!(t.matches("-= sum(").count() + t.matches("+= sum(r6 * r6)").count(), 5, "{t}");
    let u = numbers_hidden(&Function::new(&unfused, &vars).expect("compiles").tape(&uniform).to_string());
    assert_eq!(u.matches("+= sum(r#)\n").count(), 5, "{u}");
    let n = 5 * 4096 + 3;
    let (xs, ys) = (values(n, 33, -3.0, 3.0), values(n, 34, 0.0, 1.0));
    let params = [[0.7], [-0.3], [1.3], [0.2]];
    let inputs: [(&str, &[f64], &[usize]); 6] = [
        ("x", &xs, &[n]),
        ("y", &ys, &[n]),
        ("w1", &params[0], &[]),
        ("b1", &params[1], &[]),
        ("w2", &params[2], &[]),
        ("b2", &params[3], &[]),
    ];
    let want = bits_with_threads(&unfused, &inputs, 1);
    for threads in [1, 2, 4, 16] {
        assert_eq!(bits_with_threads(&fused, &inputs, threads)[..], want[..fused.len()], "{threads} threads");
    }
}

/// The text of the folded sums. `x * y` has three readers (a negation, a sum, an addition),
/// so it stays a register, and the sums of it and of its negation read that register.
#[test]
fn listing_of_folded_sums() {
    // Steps are scheduled in node order, and the tests share one node store and run in
    // parallel: names no other test uses keep these nodes in this test's order of creation.
    let vars: Vec<Expr> = ["fx", "fy", "fw"].iter().map(|n| v(n)).collect();
    let outputs = [
        p("sum(-(fx * fy))"),
        p("sum(-fx)"),
        p("sum(fx * fw)"),
        p("sum(fy * fy)"),
        p("sum(fx * fy) + sum(fx * fy + 1)"),
        p("sum(-(fx * fy) * fw)"),
    ];
    let t = Function::new(&outputs, &vars).expect("compiles").tape(&[false, false, true]).to_string();
    let chunk_code = &t[t.find("  for each chunk:").expect("chunk code")..t.find("pass 1").expect("two passes")];
    let want = "  for each chunk:
    r0 = load in0
    r1 = load in1
    r2 = r0 * r1
    acc0 -= sum(r2)
    acc1 -= sum(r0)
    acc2 += sum(r0 * s0)
    acc3 += sum(r1 * r1)
    r1 = r2 + s6
    acc6 -= sum(r2 * s0)
    acc4 += sum(r2)
    acc5 += sum(r1)
";
    // Slots are numbered in node order, and a constant another test interned first (the tests
    // share one node store and run in parallel) comes earlier: compare with slots renamed in
    // order of appearance.
    assert_eq!(slots_renamed(chunk_code), slots_renamed(want), "{t}");
}

/// `text` with each distinct slot (`s7`) renamed `S0`, `S1`, ... in order of first appearance.
fn slots_renamed(text: &str) -> String {
    let mut names: Vec<String> = Vec::new();
    text.split_inclusive(|c: char| !c.is_ascii_alphanumeric())
        .map(|token| {
            let word = token.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
            let rest = &token[word.len()..];
            if word.len() > 1 && word.starts_with('s') && word[1..].bytes().all(|b| b.is_ascii_digit()) {
                let k = names.iter().position(|n| n == word).unwrap_or_else(|| {
                    names.push(word.to_string());
                    names.len() - 1
                });
                format!("S{k}{rest}")
            } else {
                token.to_string()
            }
        })
        .collect()
}
