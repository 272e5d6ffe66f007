//! The fast evaluator against the reference one: broadcasting, nested and partial reductions,
//! special values, chunk tails, and bitwise equality across thread counts.

mod common;
use chainrule_core::{pool, reference, Expr, Function};
use common::*;

/// Runs `outputs` both ways and compares; returns the fast results.
fn check(outputs: &[Expr], inputs: &[(&str, Vec<f64>, Vec<usize>)], tol: f64) -> Vec<Vec<f64>> {
    let vars: Vec<Expr> = inputs.iter().map(|(n, _, _)| v(n)).collect();
    let f = Function::new(outputs, &vars).expect("compiles");
    let shapes: Vec<Vec<usize>> = inputs.iter().map(|i| i.2.clone()).collect();
    let call = f.prepare(&shapes).expect("broadcasts");
    let mut outs: Vec<Vec<f64>> = call.output_shapes.iter().map(|s| vec![f64::NAN; s.iter().product()]).collect();
    let data: Vec<&[f64]> = inputs.iter().map(|i| i.1.as_slice()).collect();
    let mut views: Vec<&mut [f64]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
    f.run(&call, &data, &mut views).expect("runs");
    let refs: Vec<(&str, &[f64], &[usize])> = inputs.iter().map(|(n, d, s)| (*n, d.as_slice(), s.as_slice())).collect();
    let want = reference::evaluate(outputs, &refs).expect("reference");
    for (o, (got, want)) in outs.iter().zip(&want).enumerate() {
        if want.is_empty() {
            continue;
        }
        // A reduced output holds one value per group; the reference repeats it per sample, so
        // compare each fast value with the reference at the first sample of its group.
        let firsts = first_samples(&call.output_shapes[o], &call.batch);
        for (i, g) in got.iter().enumerate() {
            let w = want[firsts[i]];
            let same = (g.is_nan() && w.is_nan()) || g == &w || rel(*g, w) <= tol;
            assert!(same, "output {o} element {i}: fast {g} vs reference {w} ({:?})", outputs[o]);
        }
    }
    outs
}

/// For each element of an output of `shape`, the flat batch index of the first sample it
/// stands for.
fn first_samples(shape: &[usize], batch: &[usize]) -> Vec<usize> {
    let mut padded = vec![1; batch.len() - shape.len()];
    padded.extend_from_slice(shape);
    let size: usize = padded.iter().product();
    (0..size)
        .map(|mut j| {
            let mut flat = 0;
            let mut step = 1;
            for d in (0..batch.len()).rev() {
                let idx = j % padded[d];
                j /= padded[d];
                flat += idx * step;
                step *= batch[d];
            }
            flat
        })
        .collect()
}

#[test]
fn gradient_field_matches_the_reference() {
    let n = 5000; // several chunks and a ragged tail
    let f = p("sin(cos(x)) * exp(-y ** 2) + log(1 + x ** 2) * sigmoid(x * y)");
    let (x, y) = (v("x"), v("y"));
    let mut outputs = vec![f.clone()];
    outputs.extend(grad(&f, &[x, y]));
    check(&outputs, &[("x", values(n, 1, -3.0, 3.0), vec![n]), ("y", values(n, 2, -3.0, 3.0), vec![n])], 1e-14);
}

#[test]
fn broadcasting_scalars_rows_and_columns() {
    let outputs = [p("x * y + z"), p("sin(x) - z")];
    check(
        &outputs,
        &[("x", values(3, 3, -1.0, 1.0), vec![3, 1]), ("y", values(4, 4, -1.0, 1.0), vec![4]), ("z", vec![0.5], vec![])],
        1e-15,
    );
    check(
        &outputs,
        &[
            ("x", values(6, 5, -1.0, 1.0), vec![2, 1, 3]),
            ("y", values(4, 6, -1.0, 1.0), vec![4, 1]),
            ("z", values(3, 7, -1.0, 1.0), vec![3]),
        ],
        1e-15,
    );
}

#[test]
fn training_gradients_are_means_for_scalar_weights() {
    let j = p("mean((y - sigmoid(w * x + b)) ** 2)");
    let (w, b) = (v("w"), v("b"));
    let mut outputs = vec![j.clone()];
    outputs.extend(grad(&j, &[w, b]));
    let n = 10_000;
    let got = check(
        &outputs,
        &[
            ("x", values(n, 8, 0.0, 1.0), vec![n]),
            ("y", values(n, 9, 0.0, 1.0), vec![n]),
            ("w", vec![0.7], vec![]),
            ("b", vec![-0.2], vec![]),
        ],
        1e-12,
    );
    assert!(got.iter().all(|o| o.len() == 1));
}

#[test]
fn nested_and_partial_reductions() {
    let x = v("x");
    let w = v("w");
    let var_x = p("mean((x - mean(x)) ** 2)");
    let centred = p("w * x - mean(w * x)");
    let outputs = vec![var_x.clone(), grad(&var_x, std::slice::from_ref(&x)).remove(0), grad(&centred, std::slice::from_ref(&w)).remove(0)];
    let xs = values(3000, 10, -2.0, 2.0);
    let got = check(&outputs, &[("x", xs.clone(), vec![3000]), ("w", vec![1.5], vec![])], 1e-11);
    // d/dw (w x_i - mean(w x)) = x_i - mean(x)
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    assert!(rel(got[2][17], xs[17] - mean) < 1e-12);
    // Partial: x of shape (3, 1) against a (3, 4) batch gets a (3, 1) gradient of sum(x * y).
    let s = grad(&p("sum(x * y)"), std::slice::from_ref(&x)).remove(0);
    let got = check(
        std::slice::from_ref(&s),
        &[("x", vec![1.0, 2.0, 3.0], vec![3, 1]), ("y", (0..12).map(f64::from).collect(), vec![3, 4])],
        1e-15,
    );
    assert_eq!(got[0], vec![6.0, 22.0, 38.0]);
}

#[test]
fn grouped_reductions_over_many_blocks() {
    // Batches of several grouping blocks (256 chunks each), with a tail: groups along the
    // outer dimension (few, each spanning blocks) and the inner one (many, each in every
    // block), partial-sum outputs, and a gradient with respect to a broadcast weight; equal to
    // the reference, and bitwise for any thread count.
    let (a, b) = (v("a"), v("b"));
    let outputs = vec![
        p("sum(sin(x) * a, over=a)"),
        p("sum(x * b, over=b) * a"),
        p("x - sum(x, over=a) / sum(1, over=a)"),
        grad(&p("mean((x - sigmoid(a * x + b)) ** 2)"), &[a.clone(), b.clone()]).remove(0),
        grad(&p("mean((x - sigmoid(a * x + b)) ** 2)"), &[a.clone(), b.clone()]).remove(1),
        // Groups of one sample each (the sum is its operand): by the batch-shaped x, and by a
        // and b together.
        p("sum(sin(x) * a, over=(a, b)) + sum(x, over=x) * sum(cos(x), over=x)"),
        grad(&p("mean(x * mean(x))"), &[v("x")]).remove(0),
    ];
    let (rows, cols) = (3, 100_003);
    let xs = values(rows * cols, 21, -2.0, 2.0);
    let inputs =
        [("x", xs, vec![rows, cols]), ("a", values(rows, 22, 0.5, 1.5), vec![rows, 1]), ("b", values(cols, 23, -1.0, 1.0), vec![cols])];
    let one = {
        pool::set_num_threads(1);
        check(&outputs, &inputs, 1e-9)
    };
    pool::set_num_threads(2);
    let two = check(&outputs, &inputs, 1e-9);
    pool::set_num_threads(1);
    let bits = |o: &Vec<Vec<f64>>| o.iter().map(|o| o.iter().map(|v| v.to_bits()).collect::<Vec<u64>>()).collect::<Vec<_>>();
    assert!(bits(&one) == bits(&two), "2 threads differ from one");
    assert_eq!(one[0].len(), rows);
    assert_eq!(one[4].len(), cols);
}

#[test]
fn special_values_behave_like_numpy() {
    let outputs = [p("log(x)"), p("1 / x"), p("sqrt(x)"), p("exp(x)"), p("sigmoid(x)"), p("relu(x)"), p("x ** 0.5")];
    let xs = vec![-1.0, 0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1e-310, 710.0, -746.0, 1e300];
    let n = xs.len();
    let got = check(&outputs, &[("x", xs, vec![n])], 4.0 * f64::EPSILON);
    assert!(got[0][0].is_nan() && got[0][1] == f64::NEG_INFINITY);
    assert_eq!(got[1][1], f64::INFINITY);
    assert_eq!(got[1][2], f64::NEG_INFINITY);
}

#[test]
fn empty_batches() {
    let outputs = [p("sin(x)"), p("sum(x)"), p("mean(x)")];
    let got = check(&outputs, &[("x", vec![], vec![0])], 0.0);
    assert!(got[0].is_empty());
    assert_eq!(got[1], vec![0.0]);
    assert!(got[2][0].is_nan());
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let f = p("sin(cos(x)) * exp(-y ** 2) + log(1 + x ** 2) * sigmoid(x * y)");
    let (x, y) = (v("x"), v("y"));
    let mut outputs = vec![f.clone(), p("sum(sin(x) * y)"), p("mean(x) * y - sum(y)")];
    outputs.extend(grad(&p("mean(sin(x * y))"), &[x.clone(), y.clone()]));
    let fun = Function::new(&outputs, &[x, y]).expect("compiles");
    let n = 300_001;
    let (xs, ys) = (values(n, 11, -3.0, 3.0), values(n, 12, -3.0, 3.0));
    let run = |threads: usize| {
        pool::set_num_threads(threads);
        let call = fun.prepare(&[vec![n], vec![n]]).expect("shapes");
        let mut outs: Vec<Vec<f64>> = call.output_shapes.iter().map(|s| vec![0.0; s.iter().product()]).collect();
        let mut views: Vec<&mut [f64]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
        fun.run(&call, &[&xs, &ys], &mut views).expect("runs");
        outs.iter().map(|o| o.iter().map(|v| v.to_bits()).collect::<Vec<u64>>()).collect::<Vec<_>>()
    };
    let one = run(1);
    for threads in [2, 3, 4, 16] {
        assert!(run(threads) == one, "{threads} threads differ from one");
    }
}

#[test]
fn reductions_of_reductions_differentiate_through_every_sample() {
    let x = v("x");
    let xs = vec![1.0, 2.0, 3.0];
    let run = |e: &Expr| {
        check(std::slice::from_ref(&grad(e, std::slice::from_ref(&x)).remove(0)), &[("x", xs.clone(), vec![3])], 1e-14).remove(0)
    };
    // sum(x * sum(x)) = (sum x)^2: every element's derivative is 2 * sum(x).
    assert_eq!(run(&p("sum(x * sum(x))")), vec![12.0, 12.0, 12.0]);
    // The variance's gradient with respect to the samples: 2 (x - mean(x)) / N.
    let got = run(&p("mean((x - mean(x)) ** 2)"));
    for (g, want) in got.iter().zip([-2.0 / 3.0, 0.0, 2.0 / 3.0]) {
        assert!((g - want).abs() < 1e-15, "{got:?}");
    }
}

#[test]
fn a_reductions_zero_gradient_has_the_variables_shape() {
    let w = v("w");
    let d = grad(&p("mean(x)"), std::slice::from_ref(&w)).remove(0);
    let f = Function::new(&[d], &[v("x"), w]).expect("compiles");
    let call = f.prepare(&[vec![4], vec![]]).expect("shapes");
    assert_eq!(call.output_shapes, vec![Vec::<usize>::new()]);
    assert_eq!(call.output_reduced, vec![true]);
}

/// Inputs where kernels and libm part ways: signed zeros, subnormals, infinities, nan, the
/// sigmoid's and exp's tail boundaries, trig's libm hand-over (2^20) and huge arguments.
fn sweep() -> Vec<f64> {
    let mut xs = vec![
        0.0,
        -0.0,
        5e-324,
        -5e-324,
        2.2e-308,
        f64::MIN_POSITIVE,
        1e-300,
        3.7e-9,
        1.5e-8,
        0.3,
        -0.3,
        0.5,
        0.87,
        1.0,
        -1.0,
        2.0,
        std::f64::consts::FRAC_PI_2,
        3.0,
        -3.5,
        19.1,
        22.5,
        -36.5,
        37.6,
        40.5,
        -45.5,
        91.106186954104,
        709.79,
        710.0,
        -745.2,
        -746.0,
        1_048_577.0,
        -1_048_577.0,
        1e22,
        1e300,
        -1e300,
        f64::MAX,
        f64::MIN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
    ];
    xs.extend(values(200, 7, -50.0, 50.0));
    xs
}

/// Every op gives the same bits on single values (the latency path) as over a chunk, with the
/// operands as chunks or as single values beside a chunk: both paths come from the op table's
/// kernel column.
#[test]
fn single_values_and_chunks_agree_bitwise_for_every_op() {
    use chainrule_core::ops::Op;
    let xs = sweep();
    let (x, y) = (v("x"), v("y"));
    for &op in Op::ALL {
        let e = chainrule_core::build::apply(op, &x, (op.arity() == 2).then_some(&y));
        let f = Function::new(std::slice::from_ref(&e), &[x.clone(), y.clone()]).expect("compiles");
        // Pairs (a, b) over the sweep; a unary op reads only `a`.
        let pairs: Vec<(f64, f64)> = if op.arity() == 1 {
            xs.iter().map(|&a| (a, 0.0)).collect()
        } else {
            xs.iter().flat_map(|&a| xs.iter().map(move |&b| (a, b))).collect()
        };
        let single = |a: f64, b: f64| {
            let mut out = Vec::new();
            f.call_scalars(&[a, b], &mut out).expect("calls");
            out[0]
        };
        let chunked = |a: &[f64], b: &[f64]| {
            let call = f.prepare(&[vec![a.len()], vec![b.len()]]).expect("broadcasts");
            let mut out = vec![0.0; call.len()];
            f.run(&call, &[a, b], &mut [out.as_mut_slice()]).expect("runs");
            out
        };
        let (a, b): (Vec<f64>, Vec<f64>) = pairs.iter().copied().unzip();
        let both = chunked(&a, &b);
        for (i, &(a, b)) in pairs.iter().enumerate() {
            let want = single(a, b);
            assert_eq!(both[i].to_bits(), want.to_bits(), "{op:?}({a:e}, {b:e}): chunk {} vs single {want}", both[i]);
        }
        // One operand a single value beside a chunk of the other (a slot operand in the loop).
        if op.arity() == 2 {
            for &b in &xs {
                let got = chunked(&xs, &[b]);
                for (i, &a) in xs.iter().enumerate() {
                    assert_eq!(got[i].to_bits(), single(a, b).to_bits(), "{op:?}({a:e}, {b:e}) with b single");
                }
            }
        }
    }
}
