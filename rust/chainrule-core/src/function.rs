//! A compiled function: a graph analysed once, tapes compiled from it on first use for each
//! pattern of single-value inputs and cached, and calls, whose shapes it resolves before the
//! evaluator runs the tape. Data flows one way: [`crate::compile`] turns the analysis into a
//! tape, [`crate::eval`] runs a tape.

use std::sync::{Arc, Mutex, OnceLock};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::compile::{compile, Analysis, ShapeClass};
use crate::error::{Error, Result};
use crate::eval::{self, Call};
use crate::expr::{Expr, Kind, Tag};
use crate::graph::NodeId;
use crate::kernels::loops::scalar_op;
use crate::shape::{broadcast, groups_of, padded, shape_text, InputView};
use crate::tape::Tape;

/// Which inputs are uniform and which grouped reductions have one sample per group.
type SpanningKey = (Vec<bool>, Vec<NodeId>);

/// A call's shapes: the batch (the arguments' broadcast shape) and, per output, its shape and
/// whether it is a reduction.
pub struct Shapes {
    /// The broadcast shape of all arguments.
    pub batch: Vec<usize>,
    /// Each output's shape.
    pub outputs: Vec<Vec<usize>>,
    /// Whether each output is a reduction.
    pub reduced: Vec<bool>,
}

/// A compiled function: outputs as a graph, inputs by name, and its cached tapes.
pub struct Function {
    analysis: Analysis,
    tapes: Mutex<FxHashMap<Vec<bool>, Arc<Tape>>>,
    /// Tapes for calls where some grouped reductions have one sample per group, by the
    /// uniform inputs and those reductions.
    spanning_tapes: Mutex<FxHashMap<SpanningKey, Arc<Tape>>>,
    scalar_tape: OnceLock<Arc<Tape>>,
    /// See [`Function::call_graph`].
    constants: OnceLock<Vec<f64>>,
}

impl Function {
    /// Compiles `outputs` as a function of the variables `inputs`, in that order.
    pub fn new(outputs: &[Expr], inputs: &[Expr]) -> Result<Function> {
        Ok(Function {
            analysis: Analysis::new(outputs, inputs)?,
            tapes: Mutex::default(),
            spanning_tapes: Mutex::default(),
            scalar_tape: OnceLock::new(),
            constants: OnceLock::new(),
        })
    }

    /// The input variables, in call order.
    pub fn inputs(&self) -> &[Expr] {
        &self.analysis.inputs
    }

    /// The output expressions.
    pub fn outputs(&self) -> Vec<Expr> {
        self.analysis.outputs.clone()
    }

    /// The shape class of each output.
    pub fn output_classes(&self) -> Vec<ShapeClass> {
        self.analysis.classes.clone()
    }

    /// The tape for calls whose inputs are single values exactly where `uniform` is true.
    pub fn tape(&self, uniform: &[bool]) -> Arc<Tape> {
        let mut cache = self.tapes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = cache.get(uniform) {
            return t.clone();
        }
        let tape = Arc::new(compile(&self.analysis, uniform));
        cache.insert(uniform.to_vec(), tape.clone());
        tape
    }

    /// The tape for calls whose inputs are single values where `uniform` is true and whose
    /// grouped reductions `spanning` have one sample per group (their groups span the batch:
    /// a gradient with respect to an argument of the batch's shape, say). Such a sum is its
    /// operand, so the tape is that of the outputs with those sums dropped: no pass boundary
    /// and no group array the size of the batch.
    pub(crate) fn tape_spanning(&self, uniform: &[bool], spanning: &[NodeId]) -> Result<Arc<Tape>> {
        if spanning.is_empty() {
            return Ok(self.tape(uniform));
        }
        let key = (uniform.to_vec(), spanning.to_vec());
        if let Some(t) = self.spanning_tapes.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(t.clone());
        }
        let dropped: FxHashSet<NodeId> = spanning.iter().copied().collect();
        let outputs = crate::subst::rebuild_graph(&self.analysis.graph, |id, _, args| dropped.contains(&id).then(|| args[0].clone()));
        let tape = Function::new(&outputs, &self.analysis.inputs)?.tape(uniform);
        self.spanning_tapes.lock().unwrap_or_else(|e| e.into_inner()).insert(key, tape.clone());
        Ok(tape)
    }

    /// Evaluates at single values (`values`, one per input) when nothing is reduced, straight
    /// from the graph, node i in slot i: the scalar tape of such a function would be the
    /// graph's tags and operands written out again. Returns false, and does nothing, for a
    /// function with reductions. W5's first call (n = 10,000) no longer writes 110,000
    /// instructions (1.7 MB of fresh memory) before running them.
    pub(crate) fn call_graph(&self, values: &[f64], out: &mut Vec<f64>) -> bool {
        if !self.analysis.sums.is_empty() {
            return false;
        }
        let g = &self.analysis.graph;
        let start = self.constants.get_or_init(|| {
            g.ids().map(|id| if g.tag(id) == Tag::Const { g.node(id).as_const().expect("tagged a constant") } else { 0.0 }).collect()
        });
        let mut slots = start.clone();
        for id in g.ids() {
            let i = id.index();
            match g.tag(id) {
                Tag::Var => slots[i] = values[self.analysis.input_of[i] as usize],
                Tag::Apply(op) => {
                    let [a, b] = g.args(id);
                    let a = a.expect("ops have an operand").index();
                    slots[i] = scalar_op(op, slots[a], slots[b.map_or(a, NodeId::index)]);
                }
                Tag::Const | Tag::Sum => {}
            }
        }
        out.clear();
        out.extend(g.roots.iter().map(|r| slots[r.index()]));
        true
    }

    /// The tape for calls with every input a single value (kept apart: it is the latency path).
    pub fn scalar_tape(&self) -> &Arc<Tape> {
        self.scalar_tape.get_or_init(|| self.tape(&vec![true; self.analysis.inputs.len()]))
    }

    /// Output `o`'s value when every group of samples is empty. Such an output is a reduction
    /// class (all its variables sit inside sums), and a sum over no samples is 0, so it is a
    /// constant: the output evaluated with each outermost sum replaced by 0.
    pub(crate) fn value_over_empty_groups(&self, o: usize) -> f64 {
        let mut values = vec![f64::NAN; self.analysis.graph.len()];
        for id in self.analysis.graph.ids() {
            let args = self.analysis.graph.args(id);
            let arg = |i: usize| args[i].map_or(0.0, |a| values[a.index()]);
            values[id.index()] = match self.analysis.graph.node(id).kind() {
                Kind::Const(c) => *c,
                Kind::Sum(_) => 0.0,
                Kind::Var(_) => f64::NAN,
                Kind::Apply(op) => op.eval(arg(0), arg(1)),
            };
        }
        values[self.analysis.graph.roots[o].index()]
    }

    /// Checks argument shapes and resolves the batch and output shapes.
    pub fn prepare(&self, shapes: &[Vec<usize>]) -> Result<Call> {
        let Shapes { batch, outputs: output_shapes, reduced: output_reduced } = self.shapes(shapes)?;
        let uniform: Vec<bool> = shapes.iter().map(|s| s.iter().product::<usize>() == 1).collect();
        let inputs: Vec<Vec<usize>> = shapes.iter().map(|s| padded(s, batch.len())).collect();
        let spanning: Vec<_> = self
            .analysis
            .grouped_sums()
            .filter(|(_, over)| !over.iter().all(|k| uniform[*k]) && groups_of(&inputs, over, batch.len()) == batch)
            .map(|(id, _)| id)
            .collect();
        let tape = self.tape_spanning(&uniform, &spanning)?;
        let size = |s: &Vec<usize>| s.iter().product();
        let (input_sizes, output_sizes): (Vec<usize>, Vec<usize>) =
            (inputs.iter().map(size).collect(), output_shapes.iter().map(size).collect());
        let singles_from = input_sizes.iter().rposition(|&n| n != 1).map_or(0, |k| k + 1);
        let mut distinct: Vec<&Vec<usize>> = Vec::new();
        let output_shape_ids = output_shapes
            .iter()
            .map(|s| {
                let id = distinct.iter().position(|d| *d == s).unwrap_or_else(|| {
                    distinct.push(s);
                    distinct.len() - 1
                });
                id as u32
            })
            .collect();
        Ok(Call { output_shapes, output_reduced, output_shape_ids, inputs, input_sizes, singles_from, output_sizes, tape, batch })
    }

    /// The batch and output shapes of a call with arguments of `shapes`, checked, without
    /// the tape [`Function::prepare`] finds for it (a call at one point needs only these).
    pub fn shapes(&self, shapes: &[Vec<usize>]) -> Result<Shapes> {
        let names = || self.inputs().iter().filter_map(|v| v.as_var()).collect::<Vec<_>>().join(", ");
        if shapes.len() != self.inputs().len() {
            return Err(Error::InputCount { expected: self.inputs().len(), given: shapes.len(), inputs: names() });
        }
        let refs: Vec<&[usize]> = shapes.iter().map(Vec::as_slice).collect();
        let batch = broadcast(&refs)
            .ok_or_else(|| Error::Shape { shapes: refs.iter().map(|s| shape_text(s)).collect::<Vec<_>>().join(", "), names: names() })?;
        let mut outputs = Vec::with_capacity(self.analysis.classes.len());
        let mut reduced = Vec::with_capacity(self.analysis.classes.len());
        for class in &self.analysis.classes {
            let (shape, r) = match class {
                ShapeClass::Neutral | ShapeClass::PerSample => (batch.clone(), false),
                ShapeClass::Reduced(over) => {
                    let s: Vec<&[usize]> = over.iter().map(|k| refs[*k]).collect();
                    (broadcast(&s).expect("sub-broadcast of a valid broadcast"), true)
                }
            };
            outputs.push(shape);
            reduced.push(r);
        }
        Ok(Shapes { batch, outputs, reduced })
    }

    /// Runs a prepared call. `inputs` are C-contiguous float64 data of the shapes given to
    /// `prepare`; `outputs` are buffers of the call's output shapes.
    pub fn run(&self, call: &Call, inputs: &[&[f64]], outputs: &mut [&mut [f64]]) -> Result<()> {
        self.run_watched(call, inputs, outputs, &mut || false)
    }

    /// [`Function::run`], calling `stop` on the calling thread every few chunks it evaluates;
    /// once `stop` returns true every thread stops between chunks, and the call returns
    /// [`Error::Interrupted`] (outputs are then incomplete). The calling thread evaluates
    /// chunks itself, beside the pool's threads: no thread is started or handed the whole call.
    pub fn run_watched(&self, call: &Call, inputs: &[&[f64]], outputs: &mut [&mut [f64]], stop: &mut dyn FnMut() -> bool) -> Result<()> {
        let fits = |d: &[f64], s: &[usize]| d.len() == s.iter().product::<usize>();
        if inputs.len() != call.inputs.len() || !inputs.iter().zip(&call.inputs).all(|(d, s)| fits(d, s)) {
            return Err(Error::Internal("argument buffer sizes do not match the prepared shapes".into()));
        }
        let views = inputs.iter().zip(&call.inputs).map(|(d, s)| InputView::contiguous(d, s)).collect::<Result<Vec<_>>>()?;
        self.run_views(call, &views, outputs, stop)
    }

    /// [`Function::run_watched`] with each input read through a view (strided, reversed,
    /// broadcast or contiguous) of the shape given to `prepare`, where it is: no input is
    /// copied beyond a chunk at a time.
    pub fn run_views(&self, call: &Call, inputs: &[InputView], outputs: &mut [&mut [f64]], stop: &mut dyn FnMut() -> bool) -> Result<()> {
        eval::run(call, eval::Args::views(inputs), outputs, stop, &|o| self.value_over_empty_groups(o))
    }

    /// Evaluates at one point, every input a single value: the latency path (no shapes, no
    /// buffers; the tape is all scalar code). Writes one value per output into `out`.
    pub fn call_scalars(&self, values: &[f64], out: &mut Vec<f64>) -> Result<()> {
        if values.len() != self.inputs().len() {
            let inputs = self.inputs().iter().filter_map(|v| v.as_var()).collect::<Vec<_>>().join(", ");
            return Err(Error::InputCount { expected: self.inputs().len(), given: values.len(), inputs });
        }
        if self.call_graph(values, out) {
            return Ok(());
        }
        let tape = self.scalar_tape();
        eval::run_scalars(tape, values, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_one;

    /// Evaluating straight from the graph gives, bit for bit, what the tape gives on
    /// one-sample arrays.
    #[test]
    fn graph_calls_match_the_tape() {
        let vars: Vec<Expr> = ["x", "y", "w"].iter().map(|n| crate::build::var(n).expect("valid name")).collect();
        let texts = [
            "sin(cos(x)) * exp(-y ** 2) + log(1 + x ** 2) * sigmoid(x * y)",
            "x",
            "2.5",
            "w * (x - 3) / (y + 0.5) + -x",
            "tanh(x) ** w",
            "tan(w) - sqrt(x) * relu(y) + abs(w) / cos(y)",
        ];
        for text in texts {
            let e = parse_one(text).expect("parses");
            let mut outputs = vec![e.clone(), crate::build::constant(1.5)];
            outputs.extend(crate::grad::grad(&e, &vars).expect("differentiates"));
            let f = Function::new(&outputs, &vars).expect("compiles");
            for point in [[0.3, -0.7, 1.9], [2.5, 0.25, -3.0], [-1e300, 0.0, f64::NAN]] {
                let mut direct = Vec::new();
                assert!(f.call_graph(&point, &mut direct), "{text}");
                let call = f.prepare(&[vec![1], vec![1], vec![1]]).expect("shapes");
                let data: Vec<[f64; 1]> = point.iter().map(|&v| [v]).collect();
                let inputs: Vec<&[f64]> = data.iter().map(|d| d.as_slice()).collect();
                let mut outs = vec![[0.0]; outputs.len()];
                let mut views: Vec<&mut [f64]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
                f.run(&call, &inputs, &mut views).expect("runs");
                let taped: Vec<u64> = outs.iter().map(|o| o[0].to_bits()).collect();
                assert_eq!(direct.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), taped, "{text} at {point:?}");
            }
        }
    }

    /// A function with reductions does not take the graph path.
    #[test]
    fn graph_calls_leave_reductions_to_the_tape() {
        let x = crate::build::var("x").expect("valid name");
        let f = Function::new(&[crate::build::sum(&crate::build::sin(&x))], &[x]).expect("compiles");
        assert!(!f.call_graph(&[0.5], &mut Vec::new()));
    }
}
