//! Timing of the public workloads W1 and W2 through the core API (no Python), for tuning the
//! evaluator: `cargo test --release -p chainrule-core --test engine_timing -- --ignored --nocapture`;
//! and of W5's build cost per phase (`... engine_timing w5 -- --ignored --nocapture`).
//! Prints medians; asserts nothing about speed (DESIGN.md: speed is shown, never asserted).

mod common;
use std::time::Instant;

use chainrule_core::{pool, Expr, Function};
use common::*;

struct Workload {
    name: &'static str,
    f: Function,
    shapes: Vec<Vec<usize>>,
    data: Vec<Vec<f64>>,
}

fn w1(n: usize) -> Workload {
    let j = p("mean((y - sigmoid(w2 * sigmoid(w1 * x + b1) + b2)) ** 2)");
    let wrt: Vec<Expr> = ["w1", "b1", "w2", "b2"].iter().map(|s| v(s)).collect();
    let mut outputs = vec![j.clone()];
    outputs.extend(grad(&j, &wrt));
    let inputs: Vec<Expr> = ["x", "y", "w1", "b1", "w2", "b2"].iter().map(|s| v(s)).collect();
    let f = Function::new(&outputs, &inputs).expect("compiles");
    let shapes = vec![vec![n], vec![n], vec![], vec![], vec![], vec![]];
    let data = vec![values(n, 1, -2.0, 2.0), values(n, 2, 0.0, 1.0), vec![0.7], vec![-0.2], vec![1.3], vec![0.1]];
    Workload { name: "W1", f, shapes, data }
}

fn w2(n: usize) -> Workload {
    let e = p("sin(cos(x)) * exp(-y ** 2) + log(1 + x ** 2) * sigmoid(x * y)");
    let (x, y) = (v("x"), v("y"));
    let mut outputs = vec![e.clone()];
    outputs.extend(grad(&e, &[x.clone(), y.clone()]));
    let f = Function::new(&outputs, &[x, y]).expect("compiles");
    Workload { name: "W2", f, shapes: vec![vec![n], vec![n]], data: vec![values(n, 1, -3.0, 3.0), values(n, 2, -3.0, 3.0)] }
}

/// CPU time this thread has run, in ns (Linux; `None` elsewhere). On a shared machine it
/// leaves out the time the thread waited for a core, which wall time does not.
#[cfg(target_os = "linux")]
fn thread_cpu_ns() -> Option<u64> {
    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut t = Timespec { sec: 0, nsec: 0 };
    // SAFETY: `t` is a valid timespec for the call to fill.
    let ok = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut t) } == 0;
    ok.then(|| t.sec as u64 * 1_000_000_000 + t.nsec as u64)
}

#[cfg(not(target_os = "linux"))]
fn thread_cpu_ns() -> Option<u64> {
    None
}

/// One timed call: wall time and (meaningful with one thread only) this thread's CPU time,
/// in milliseconds.
fn once(w: &Workload, outs: &mut [Vec<f64>]) -> (f64, f64) {
    let call = w.f.prepare(&w.shapes).expect("shapes");
    let inputs: Vec<&[f64]> = w.data.iter().map(Vec::as_slice).collect();
    let mut views: Vec<&mut [f64]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
    let cpu = thread_cpu_ns();
    let t = Instant::now();
    w.f.run(&call, &inputs, &mut views).expect("runs");
    let wall = t.elapsed().as_secs_f64() * 1e3;
    (wall, thread_cpu_ns().zip(cpu).map_or(f64::NAN, |(b, a)| (b - a) as f64 * 1e-6))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
#[ignore]
fn engine_timing() {
    let n: usize = std::env::var("N").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let reps: usize = std::env::var("REPS").ok().and_then(|s| s.parse().ok()).unwrap_or(41);
    // ONLY=W1 (or W2) times one workload, e.g. under a profiler.
    let only = std::env::var("ONLY").ok();
    let loads: Vec<Workload> = [w1(n), w2(n)].into_iter().filter(|w| only.as_deref().is_none_or(|o| o == w.name)).collect();
    for w in &loads {
        println!("{} tape:\n{}", w.name, w.f.tape(&w.shapes.iter().map(|s| s.is_empty()).collect::<Vec<_>>()));
    }
    let threads: Vec<usize> = match std::env::var("THREADS") {
        Ok(t) => t.split(',').filter_map(|t| t.parse().ok()).collect(),
        Err(_) => vec![1, 2],
    };
    for threads in threads {
        pool::set_num_threads(threads);
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); loads.len()];
        let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); loads.len()];
        let mut outs: Vec<Vec<Vec<f64>>> = loads
            .iter()
            .map(|w| w.f.prepare(&w.shapes).expect("shapes").output_shapes.iter().map(|s| vec![0.0; s.iter().product()]).collect())
            .collect();
        for _ in 0..3 {
            for (w, o) in loads.iter().zip(outs.iter_mut()) {
                once(w, o);
            }
        }
        // Interleaved, so background load hits every workload alike.
        for _ in 0..reps {
            for (i, w) in loads.iter().enumerate() {
                let (wall, c) = once(w, &mut outs[i]);
                times[i].push(wall);
                cpu[i].push(c);
            }
        }
        for ((w, t), c) in loads.iter().zip(times).zip(cpu) {
            let min = t.iter().copied().fold(f64::INFINITY, f64::min);
            let cpu = if threads == 1 { format!(", cpu median {:.2} ms", median(c)) } else { String::new() };
            println!("{} threads={threads}: median {:.2} ms, min {:.2} ms{cpu}", w.name, median(t), min);
        }
    }
}

/// W5 build cost through the core API: build f, differentiate with respect to all n inputs,
/// compile, first scalar call; per phase, medians of thread CPU time over `REPS` rounds.
/// `cargo test --release -p chainrule-core --test engine_timing w5 -- --ignored --nocapture`
/// (`N` sets n, default 10,000).
#[test]
#[ignore]
fn w5_build_timing() {
    use chainrule_core::build;
    let n: usize = std::env::var("N").ok().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let reps: usize = std::env::var("REPS").ok().and_then(|s| s.parse().ok()).unwrap_or(11);
    let xs: Vec<Expr> = (0..n).map(|i| v(&format!("x{i}"))).collect();
    let point = values(n, 3, -1.0, 1.0);
    let phases = ["expr", "grad", "Function::new", "first call", "drop", "total"];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); phases.len()];
    for _ in 0..reps {
        let mut lap = Vec::new();
        let mut t = thread_cpu_ns().unwrap_or(0);
        let mut mark = |lap: &mut Vec<f64>| {
            let now = thread_cpu_ns().unwrap_or(0);
            lap.push((now - t) as f64 * 1e-6);
            t = now;
        };
        let neg_sq = |a: &Expr| build::exp(&build::neg(&build::mul(a, a)));
        let mut f = neg_sq(&xs[n - 1]);
        for w in xs.windows(2) {
            f = build::add(&build::add(&f, &build::sin(&build::mul(&w[0], &w[1]))), &neg_sq(&w[0]));
        }
        mark(&mut lap);
        let mut outputs = vec![f.clone()];
        outputs.extend(grad(&f, &xs));
        mark(&mut lap);
        let fun = Function::new(&outputs, &xs).expect("compiles");
        mark(&mut lap);
        let mut out = Vec::new();
        fun.call_scalars(&point, &mut out).expect("runs");
        mark(&mut lap);
        drop((fun, outputs, f));
        mark(&mut lap);
        let total: f64 = lap.iter().sum();
        lap.push(total);
        for (t, l) in times.iter_mut().zip(lap) {
            t.push(l);
        }
    }
    for (name, t) in phases.iter().zip(times) {
        println!("W5 n={n} {name}: median {:.2} ms cpu", median(t));
    }
}
