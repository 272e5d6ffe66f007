//! The slow, obviously correct evaluator that the fast one is tested against: every input is
//! broadcast to a full batch-sized vector, every node becomes such a vector using only the op
//! table's scalar `eval`, and a reduction adds up, for each sample, the samples of its group
//! (those that agree with it on every dimension some variable of `over` is not broadcast
//! along). Quadratic-free but memory-hungry: for tests, not for users.

use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::expr::{Expr, Kind};
use crate::graph::Graph;
use crate::shape::broadcast;

/// Evaluates `outputs` with `inputs` (name, C-contiguous data, shape); returns each output as
/// one value per sample of the broadcast batch, in C order.
pub fn evaluate(outputs: &[Expr], inputs: &[(&str, &[f64], &[usize])]) -> Result<Vec<Vec<f64>>> {
    let shapes: Vec<&[usize]> = inputs.iter().map(|i| i.2).collect();
    let batch = broadcast(&shapes).ok_or_else(|| Error::Shape { shapes: format!("{shapes:?}"), names: String::new() })?;
    let n: usize = batch.iter().product();
    let index_of = |i: usize| -> Vec<usize> {
        let mut rest = i;
        let mut idx = vec![0; batch.len()];
        for d in (0..batch.len()).rev() {
            idx[d] = rest % batch[d];
            rest /= batch[d];
        }
        idx
    };
    let spread = |data: &[f64], shape: &[usize]| -> Vec<f64> {
        let pad = batch.len() - shape.len();
        (0..n)
            .map(|i| {
                let idx = index_of(i);
                let off = shape.iter().enumerate().fold(0, |off, (d, &s)| off * s + if s == 1 { 0 } else { idx[pad + d] });
                data[off]
            })
            .collect()
    };
    let by_name: FxHashMap<&str, usize> = inputs.iter().enumerate().map(|(k, i)| (i.0, k)).collect();
    let graph = Graph::new(outputs);
    let mut values: Vec<Vec<f64>> = Vec::with_capacity(graph.len());
    for id in graph.ids() {
        let args = graph.args(id);
        let value = match graph.node(id).kind() {
            Kind::Const(c) => vec![*c; n],
            Kind::Var(name) => {
                let k =
                    *by_name.get(name.as_str()).ok_or_else(|| Error::UnknownVariable { name: name.to_string(), inputs: String::new() })?;
                spread(inputs[k].1, inputs[k].2)
            }
            Kind::Apply(op) => {
                let a = &values[args[0].expect("operand").index()];
                match args[1] {
                    Some(b) => a.iter().zip(&values[b.index()]).map(|(x, y)| op.eval(*x, *y)).collect(),
                    None => a.iter().map(|x| op.eval(*x, 0.0)).collect(),
                }
            }
            Kind::Sum(over) => {
                let g = &values[args[0].expect("operand").index()];
                // A dimension is kept (not summed) if some variable of `over` varies along it.
                let kept: Vec<bool> = (0..batch.len())
                    .map(|d| {
                        over.iter().any(|name| {
                            let shape = by_name.get(&**name).map_or(&[][..], |k| inputs[*k].2);
                            let pad = batch.len() - shape.len();
                            d >= pad && shape[d - pad] != 1
                        })
                    })
                    .collect();
                let key = |i: usize| -> Vec<usize> { index_of(i).into_iter().zip(&kept).map(|(x, k)| if *k { x } else { 0 }).collect() };
                let mut totals: FxHashMap<Vec<usize>, f64> = FxHashMap::default();
                for (i, v) in g.iter().enumerate() {
                    *totals.entry(key(i)).or_insert(0.0) += v;
                }
                (0..n).map(|i| totals[&key(i)]).collect()
            }
        };
        values.push(value);
    }
    Ok(graph.roots.iter().map(|r| values[r.index()].clone()).collect())
}
