//! Running a tape over a batch (shapes resolved by [`crate::Function::prepare`]): each pass runs its
//! scalar code once and its chunk code over fixed chunks of the flattened batch, on the
//! thread pool when the batch is large enough to pay for the hand-off. Inputs are read where
//! they are, through their views: in place when laid out like the batch, else gathered a chunk
//! at a time (a broadcast axis is never expanded), so memory beyond inputs and outputs is
//! O(threads x registers x chunk) plus O(block) partial sums, for any layout.
//!
//! Determinism: chunk boundaries depend only on the batch size (never on the thread count),
//! each chunk's partial sum is computed in a fixed order, and partials are combined pairwise in
//! chunk order, so every result is bitwise identical for any number of threads.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::kernels;
use crate::kernels::loops::{accumulate, binary, fused, scalar_op, unary, Operand};
use crate::ops::Op;
use crate::pool;
use crate::shape::{for_each_offset, gather_rows, groups_of, keep_group_samples, padded, strides_for, InputView, Layout};
use crate::tape::{Affine, Arg, Instr, MatVec, OutputSource, Reg, ScalarInstr, Source, Tape};

/// Chunks per block in a pass that groups samples (a reduction over part of the batch, or an
/// output of part of the batch's shape): the pass runs block by block, its per-sample values
/// go to block-sized buffers, and each block is folded into the group arrays in sample order
/// before the next starts. Memory stays O(block) instead of O(batch), and the sums are the
/// same, bit for bit, as one in-order pass over a batch-sized buffer. 256 chunks (2 MiB per
/// buffer) keep the pool's per-block hand-off, ~20 µs, under 1% of the block's work.
const GROUPING_BLOCK_CHUNKS: usize = 256;

/// Chunks per block in a pass with batch reductions: each block's per-chunk partial sums are
/// summed pairwise when it ends, and the block sums pairwise at the end, which is the same
/// tree, bit for bit, as one pairwise sum over every chunk (a block of a power of two chunks
/// is one of its subtrees). Partials then take O(block) memory, not O(batch): 3e9 samples
/// of a broadcast argument needed 23 MB per reduction, now 128 KiB. At 16,384 chunks (16M
/// samples, ~5 ms of the cheapest work on a core) the per-block hand-off, ~20 µs, stays
/// under 0.5%.
const REDUCTION_BLOCK_CHUNKS: usize = 1 << 14;
const _: () = assert!(REDUCTION_BLOCK_CHUNKS.is_power_of_two() && GROUPING_BLOCK_CHUNKS.is_power_of_two());

/// A call's arguments: read through views, then single values for the last inputs (an
/// epoch's parameters, passed without a view each).
#[derive(Clone, Copy)]
pub struct Args<'a> {
    /// The first inputs' views.
    pub views: &'a [InputView<'a>],
    /// The values of the inputs after them, each a single value.
    pub singles: &'a [f64],
}

impl<'a> Args<'a> {
    /// Arguments that are all views.
    pub fn views(views: &'a [InputView<'a>]) -> Args<'a> {
        Args { views, singles: &[] }
    }

    /// Where input `k`'s first element is.
    fn first_ptr(&self, k: usize) -> *const f64 {
        match self.views.get(k) {
            Some(v) => v.first_ptr(),
            None => &self.singles[k - self.views.len()],
        }
    }

    /// Appends where input `k`'s elements are to `key` (see [`InputView::place`]).
    fn place(&self, k: usize, key: &mut Vec<usize>) {
        match self.views.get(k) {
            Some(v) => v.place(key),
            None => key.extend([self.first_ptr(k) as usize, 1]),
        }
    }

    /// Input `k`'s value, for an input of one element.
    fn single(&self, k: usize) -> f64 {
        match self.views.get(k) {
            Some(v) => v.first(),
            None => self.singles[k - self.views.len()],
        }
    }

    /// How the evaluator reads input `k`, broadcast to `batch`.
    fn layout(&self, k: usize, batch: &[usize]) -> Layout<'a> {
        match self.views.get(k) {
            Some(v) => v.layout(batch),
            None => {
                let at = k - self.views.len();
                Layout { data: &self.singles[at..=at], origin: 0, strides: vec![0; batch.len()] }
            }
        }
    }
}

/// A call's shapes, resolved: the batch, each output's shape, and the tape to run.
pub struct Call {
    /// The broadcast shape of all arguments.
    pub batch: Vec<usize>,
    /// Each output's shape.
    pub output_shapes: Vec<Vec<usize>>,
    /// Whether each output is a reduction (a single value is then a `numpy.float64`).
    pub output_reduced: Vec<bool>,
    /// Per output, a number shared by exactly the outputs of the same shape: telling whether
    /// thousands of outputs (a weight gradient's elements) share a shape took a pointer chase
    /// each through `output_shapes`.
    pub output_shape_ids: Vec<u32>,
    /// Each input's shape, padded to the batch's rank.
    pub(crate) inputs: Vec<Vec<usize>>,
    /// Each input's and each output's number of elements, side by side: checking thousands of
    /// arguments (a dense network's weights) through their shapes chased a pointer each.
    pub(crate) input_sizes: Vec<usize>,
    /// Inputs from this position on have one element each (an epoch's weights, passed as
    /// plain values: their sizes need no check each step).
    pub(crate) singles_from: usize,
    pub(crate) output_sizes: Vec<usize>,
    pub(crate) tape: Arc<Tape>,
}

impl Call {
    /// The tape this call runs.
    pub fn tape(&self) -> &Tape {
        &self.tape
    }

    /// Number of samples in the batch.
    pub fn len(&self) -> usize {
        self.batch.iter().product()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Runs a prepared call (see [`crate::Function::run_views`]), calling `stop` on the calling
/// thread every few chunks it evaluates; `empty_groups(o)` is output `o`'s value when it holds
/// groups of samples and every group is empty. Inputs are read where they are, through their
/// views' strides.
pub fn run(
    call: &Call,
    inputs: Args,
    outputs: &mut [&mut [f64]],
    stop: &mut dyn FnMut() -> bool,
    empty_groups: &dyn Fn(usize) -> f64,
) -> Result<()> {
    Runner::new(call).run(inputs, outputs, stop, empty_groups)
}

/// What runs of one prepared call share beyond their arguments: the per-pass analysis, the
/// slots, the reductions' partial and block sums. An epoch runs one call per step (179 steps
/// of 10 samples for W8), and rebuilding these each step cost ~10 µs of its ~70: W8 has
/// 2,261 reductions.
pub(crate) struct Runner<'c> {
    call: &'c Call,
    /// Constants where the tape has them; every other slot is written before it is read in
    /// each run (scalar code writes each of its slots, in order, before anything reads it).
    slots: Vec<f64>,
    block_sums: BlockSums,
    /// Where each collected buffer is reduced: its group and the inputs it is grouped by.
    grouping: Vec<Option<(usize, &'c [usize])>>,
    /// Outputs whose shape is not the batch's are stored per sample, then one sample per
    /// group is kept: a rare path (a reduction over part of the dimensions).
    partial_outputs: Vec<bool>,
    passes: Vec<PassPlan>,
    /// Room for the largest pass's per-chunk partial sums (each chunk writes its own before
    /// they are read, so they are never cleared).
    partials: Vec<f64>,
    /// Per pass, its scalar code in levels (see [`in_levels`]), made on the second run: a call
    /// run once keeps the listing's order and pays nothing for it.
    levels: Option<Vec<Vec<Batch>>>,
    runs: usize,
    /// Per pass, the plan of its last run and where its inputs were (see [`Plan::kept`]).
    plans: Vec<Option<(Vec<usize>, Plan<'static>)>>,
    /// Whether every output is one value kept in a slot (see [`Runner::run_values`];
    /// thousands of outputs to look at, once).
    single_values: Option<bool>,
}

/// A pass's reductions, buffers and stores, and how many chunks it runs as one block.
struct PassPlan {
    collects: Vec<usize>,
    stores: Vec<usize>,
    accs: Vec<usize>,
    stores_any: bool,
    block: usize,
}

impl<'c> Runner<'c> {
    pub(crate) fn new(call: &'c Call) -> Runner<'c> {
        let tape = &call.tape;
        let n_chunks = call.len().div_ceil(tape.chunk);
        let mut grouping: Vec<Option<(usize, &[usize])>> = vec![None; tape.n_bufs];
        // (Scanned only when there are buffers: the scalar code of a dense network's step is
        // thousands of instructions.)
        for instr in tape.passes.iter().flat_map(|p| &p.scalar_code).filter(|_| tape.n_bufs > 0) {
            if let ScalarInstr::ReduceGroups { group, buf, over } = instr {
                grouping[*buf as usize] = Some((*group as usize, &tape.overs[*over as usize]));
            }
        }
        let n_outputs = call.output_shapes.len();
        let partial_outputs: Vec<bool> = (0..n_outputs)
            .map(|o| tape.outputs[o] == OutputSource::Chunks && padded(&call.output_shapes[o], call.batch.len()) != call.batch)
            .collect();
        let any_partial = partial_outputs.contains(&true);
        let passes: Vec<PassPlan> = tape
            .passes
            .iter()
            .map(|pass| {
                let code = &pass.chunk_code;
                let collects: Vec<usize> =
                    code.iter().filter_map(|i| if let Instr::Collect { buf, .. } = i { Some(*buf) } else { None }).collect();
                let stores: Vec<usize> = (0..n_outputs)
                    .filter(|_| any_partial)
                    .filter(|&o| partial_outputs[o] && code.iter().any(|i| matches!(i, Instr::Store { out, .. } if *out == o)))
                    .collect();
                let accs: Vec<usize> = code
                    .iter()
                    .flat_map(|i| match i {
                        Instr::Accumulate { acc, .. } => std::slice::from_ref(acc),
                        Instr::OuterSum(o) => o.accs.as_slice(),
                        _ => &[],
                    })
                    .copied()
                    .collect();
                let stores_any = code.iter().any(|i| matches!(i, Instr::Store { .. }));
                let block = match (collects.is_empty() && stores.is_empty(), accs.is_empty()) {
                    (false, _) => GROUPING_BLOCK_CHUNKS,
                    (true, false) => REDUCTION_BLOCK_CHUNKS,
                    (true, true) => n_chunks.max(1),
                };
                PassPlan { collects, stores, accs, stores_any, block }
            })
            .collect();
        let most = passes.iter().filter(|p| !p.accs.is_empty()).map(|p| tape.n_accs * p.block.min(n_chunks)).max().unwrap_or(0);
        Runner {
            call,
            slots: tape.slots.clone(),
            block_sums: BlockSums::new(tape.n_accs),
            grouping,
            partial_outputs,
            passes,
            partials: vec![0.0; most],
            levels: None,
            runs: 0,
            plans: Vec::new(),
            single_values: None,
        }
    }

    /// Runs the call (see [`run`]).
    pub(crate) fn run(
        &mut self,
        inputs: Args,
        outputs: &mut [&mut [f64]],
        stop: &mut dyn FnMut() -> bool,
        empty_groups: &dyn Fn(usize) -> f64,
    ) -> Result<()> {
        check_sizes(self.call, inputs, outputs)?;
        self.run_passes(inputs, outputs, stop)?;
        let (tape, n) = (&self.call.tape, self.call.len());
        for (o, out) in outputs.iter_mut().enumerate() {
            match tape.outputs[o] {
                OutputSource::Slot(s) => out.fill(self.slots[s.0 as usize]),
                // No samples to take a group's value from: every group is empty.
                OutputSource::Chunks if n == 0 && self.partial_outputs[o] => out.fill(empty_groups(o)),
                OutputSource::Chunks => {}
            }
        }
        Ok(())
    }

    /// Runs a call whose outputs are all single values (an epoch step's loss and gradients),
    /// writing output `o` into `values[o]`: one contiguous run of thousands of values instead
    /// of a slice each.
    pub(crate) fn run_values(
        &mut self,
        inputs: Args,
        values: &mut [f64],
        stop: &mut dyn FnMut() -> bool,
        empty_groups: &dyn Fn(usize) -> f64,
    ) -> Result<()> {
        let (call, tape) = (self.call, &self.call.tape);
        let single = *self.single_values.get_or_insert_with(|| {
            tape.outputs.iter().all(|source| matches!(source, OutputSource::Slot(_))) && call.output_sizes.iter().all(|&n| n == 1)
        });
        if !single || values.len() != tape.outputs.len() {
            // Some output is computed per sample (and then reduced to its one value), or the
            // sizes are wrong, which `run` reports.
            let mut outs: Vec<&mut [f64]> = values.chunks_mut(1).collect();
            return self.run(inputs, &mut outs, stop, empty_groups);
        }
        check_inputs(self.call, inputs)?;
        // (No pass stores an output: every output is a slot's.)
        self.run_passes(inputs, &mut [], stop)?;
        for (value, source) in values.iter_mut().zip(&tape.outputs) {
            if let OutputSource::Slot(s) = source {
                *value = self.slots[s.0 as usize];
            }
        }
        Ok(())
    }

    /// Runs every pass; outputs that are single values are left in their slots. `outputs`
    /// (sizes checked) are written only by passes that store outputs.
    fn run_passes(&mut self, inputs: Args, outputs: &mut [&mut [f64]], stop: &mut dyn FnMut() -> bool) -> Result<()> {
        let Runner { call, slots, block_sums, grouping, partial_outputs: _, passes, partials, levels, runs, plans, single_values: _ } =
            self;
        let call: &Call = call;
        *runs += 1;
        if *runs == 2 {
            *levels = Some(call.tape.passes.iter().map(|p| in_levels(&p.scalar_code, slots.len())).collect());
            *plans = call.tape.passes.iter().map(|_| None).collect();
        }
        let cancel = &AtomicBool::new(false);
        let mut watch = Watch { cancel, stop };
        let tape = &call.tape;
        let n = call.len();
        let n_chunks = n.div_ceil(tape.chunk);
        block_sums.clear();
        let mut groups: Vec<Group> = (0..tape.n_groups).map(|_| Group::default()).collect();
        for (p, (pass, plan)) in tape.passes.iter().zip(passes.iter()).enumerate() {
            match levels {
                Some(levels) => run_levels(&levels[p], call, inputs, slots, block_sums, &mut groups),
                None => pass.scalar_code.iter().for_each(|instr| run_scalar(instr, call, inputs, slots, block_sums, &mut groups)),
            }
            if pass.chunk_code.is_empty() {
                continue;
            }
            let PassPlan { collects, stores, accs, stores_any, block } = plan;
            let (block, stores_any) = (*block, *stores_any);
            if n_chunks == 0 {
                block_sums.none(accs);
            }
            for &buf in collects {
                let (group, over) = grouping[buf].ok_or_else(|| Error::Internal("a collected buffer is never reduced".into()))?;
                let shape = group_shape(call, over);
                groups[group] = Group { data: vec![0.0; shape.iter().product()], shape };
            }
            let block_len = (block * tape.chunk).min(n);
            let mut bufs: Vec<Vec<f64>> =
                (0..tape.n_bufs).map(|b| if collects.contains(&b) { vec![0.0; block_len] } else { Vec::new() }).collect();
            // (Per output only where some output is per-sample and partial: thousands of reduced
            // outputs, a dense network's gradients, need no temporary each.)
            let mut temps: Vec<Vec<f64>> = match stores.is_empty() {
                true => Vec::new(),
                false => (0..outputs.len()).map(|o| if stores.contains(&o) { vec![0.0; block_len] } else { Vec::new() }).collect(),
            };
            for first in (0..n_chunks).step_by(block) {
                let chunks = first..(first + block).min(n_chunks);
                let start = first * tape.chunk;
                let end = (chunks.end * tape.chunk).min(n);
                let sources = Sources { call, inputs, groups: &groups };
                let fresh: Plan;
                let plan: &Plan = match plans.get_mut(p).map(|kept| Plan::kept(kept, &pass.chunk_code, &sources)) {
                    Some(Ok(plan)) => plan,
                    Some(Err(plan)) => {
                        fresh = plan;
                        &fresh
                    }
                    None => {
                        fresh = Plan::new(&pass.chunk_code, &sources);
                        &fresh
                    }
                };
                // Block buffers are addressed with the sample index, like the outputs: their
                // pointers are offset back by the block's start (never dereferenced outside it).
                let sinks = Sinks {
                    partials: SyncPtr(partials.as_mut_ptr().wrapping_sub(first)),
                    acc_stride: block.min(n_chunks),
                    bufs: bufs.iter_mut().map(|b| SyncPtr(b.as_mut_ptr().wrapping_sub(start))).collect(),
                    // Only a pass that stores outputs writes through these (a dense network's
                    // step has thousands of outputs, all reduced).
                    outs: outputs
                        .iter_mut()
                        .take(if stores_any { usize::MAX } else { 0 })
                        .enumerate()
                        .map(|(o, out)| match temps.get_mut(o).filter(|t| !t.is_empty()) {
                            Some(t) => SyncPtr(t.as_mut_ptr().wrapping_sub(start)),
                            None => SyncPtr(out.as_mut_ptr()),
                        })
                        .collect(),
                };
                run_chunks(&pass.chunk_code, plan, pass.n_regs, tape.chunk, n, chunks.clone(), slots, &sources, &sinks, &mut watch);
                if cancel.load(Ordering::Relaxed) {
                    return Err(Error::Interrupted);
                }
                block_sums.push(first / block, accs, partials, block.min(n_chunks), chunks.len());
                for &buf in collects {
                    let (group, _) = grouping[buf].expect("checked above");
                    let g = &mut groups[group];
                    let strides = strides_for(&g.shape, &call.batch);
                    for_each_offset(&call.batch, &strides, start..end, |i, off| g.data[off] += bufs[buf][i - start]);
                }
                for &o in stores {
                    let shape = padded(&call.output_shapes[o], call.batch.len());
                    keep_group_samples(&temps[o], &call.batch, &shape, start..end, outputs[o]);
                }
            }
        }
        Ok(())
    }
}

/// Runs a tape whose code is all scalar (every input a single value, in `values`), writing
/// one value per output into `out`.
pub fn run_scalars(tape: &Tape, values: &[f64], out: &mut Vec<f64>) -> Result<()> {
    let mut slots = tape.slots.clone();
    for instr in tape.passes.iter().flat_map(|p| &p.scalar_code) {
        match instr {
            ScalarInstr::Input { dst, input } => slots[dst.0 as usize] = values[*input as usize],
            ScalarInstr::Apply { op, dst, a, b } => slots[dst.0 as usize] = scalar_op(*op, slots[a.0 as usize], slots[b.0 as usize]),
            // A batch of one sample: a sum is its operand.
            ScalarInstr::Scale { dst, a } => slots[dst.0 as usize] = slots[a.0 as usize],
            ScalarInstr::Finish { .. } | ScalarInstr::ReduceGroups { .. } | ScalarInstr::ScaleGroups { .. } => {
                return Err(Error::Internal("a scalar tape has no chunk work".into()));
            }
        }
    }
    out.clear();
    out.extend(tape.outputs.iter().map(|o| match o {
        OutputSource::Slot(s) => slots[s.0 as usize],
        OutputSource::Chunks => f64::NAN,
    }));
    Ok(())
}

fn check_sizes(call: &Call, inputs: Args, outputs: &[&mut [f64]]) -> Result<()> {
    let outputs_ok = outputs.len() == call.output_sizes.len() && outputs.iter().zip(&call.output_sizes).all(|(d, &n)| d.len() == n);
    match outputs_ok {
        true => check_inputs(call, inputs),
        false => Err(sizes_differ()),
    }
}

fn sizes_differ() -> Error {
    Error::Internal("argument or output buffer sizes do not match the prepared shapes".into())
}

fn check_inputs(call: &Call, inputs: Args) -> Result<()> {
    let rank = call.batch.len();
    // A view's shape, padded with leading 1s to the batch's rank, is the prepared shape.
    let fits = |v: &[usize], s: &[usize]| {
        v.len() <= rank && s.len() == rank && s[..rank - v.len()].iter().all(|&d| d == 1) && s[rank - v.len()..] == *v
    };
    let at = inputs.views.len().min(call.inputs.len());
    let inputs_ok = inputs.views.len() + inputs.singles.len() == call.inputs.len()
        && inputs.views.iter().zip(&call.inputs[..at]).all(|(v, s)| fits(v.shape(), s))
        && (at >= call.singles_from || call.input_sizes[at..].iter().all(|&n| n == 1));
    match inputs_ok {
        true => Ok(()),
        false => Err(sizes_differ()),
    }
}

/// The result of a grouped reduction: an array of the group shape (padded to the batch's rank).
#[derive(Default)]
struct Group {
    data: Vec<f64>,
    shape: Vec<usize>,
}

/// The padded shape of the groups a reduction over `over` (input positions) produces.
fn group_shape(call: &Call, over: &[usize]) -> Vec<usize> {
    groups_of(&call.inputs, over, call.batch.len())
}

#[allow(clippy::too_many_arguments)]
fn run_scalar(instr: &ScalarInstr, call: &Call, inputs: Args, slots: &mut [f64], block_sums: &BlockSums, groups: &mut [Group]) {
    match instr {
        ScalarInstr::Input { dst, input } => slots[dst.0 as usize] = inputs.single(*input as usize),
        ScalarInstr::Apply { op, dst, a, b } => slots[dst.0 as usize] = scalar_op(*op, slots[a.0 as usize], slots[b.0 as usize]),
        ScalarInstr::Scale { dst, a } => slots[dst.0 as usize] = times_count(slots[a.0 as usize], call.len()),
        ScalarInstr::Finish { dst, acc } => {
            slots[dst.0 as usize] = block_sums.finish(*acc as usize);
        }
        // Folded block by block while its operand's pass ran.
        ScalarInstr::ReduceGroups { .. } => {}
        ScalarInstr::ScaleGroups { group, a, over } => {
            let shape = group_shape(call, &call.tape.overs[*over as usize]);
            let size: usize = shape.iter().product();
            let per_group = call.len().checked_div(size).unwrap_or(0);
            groups[*group as usize] = Group { data: vec![times_count(slots[a.0 as usize], per_group); size], shape };
        }
    }
}

/// Scalar instructions of one kind (and op) that depend on none of each other, run as one loop
/// with no dispatch per instruction (see [`in_levels`]).
enum Batch {
    /// `(dst, input, len)`: runs of consecutive inputs into consecutive slots (a weight array's
    /// elements are one run).
    Inputs(Vec<[u32; 3]>),
    /// `(dst, acc)` pairs.
    Finishes(Vec<[u32; 2]>),
    /// `(dst, a, b)` triples of one op.
    Applies(Op, Vec<[u32; 3]>),
    /// Anything else, run as it is.
    One(ScalarInstr),
}

/// Regroups scalar code for a runner that runs it many times: instructions are ordered by
/// dependency level (an instruction reads only slots written at lower levels, or constants),
/// and within a level, instructions of the same kind and op become one [`Batch`]. The compiler
/// gives every node its own slot, so each slot is written once, and any order that respects
/// the dependencies computes every slot bit for bit as the listing's order does. A dense
/// network's step is thousands of scalar instructions (W8: a load per weight, a finished sum
/// and a division per gradient, ~6,800), and dispatching each one was ~10 µs of a ~58 µs step.
fn in_levels(code: &[ScalarInstr], n_slots: usize) -> Vec<Batch> {
    let mut level_of = vec![0u32; n_slots];
    // Group instructions are kept in their order, after everything of their level.
    let key = |i: &ScalarInstr| match i {
        ScalarInstr::Input { .. } => (0, None),
        ScalarInstr::Finish { .. } => (1, None),
        ScalarInstr::Apply { op, .. } => (2, Some(*op)),
        _ => (3, None),
    };
    let mut order: Vec<(u32, (u8, Option<Op>), usize)> = code
        .iter()
        .enumerate()
        .map(|(j, instr)| {
            let reads: &[crate::tape::Slot] = match instr {
                ScalarInstr::Apply { a, b, .. } => &[*a, *b],
                ScalarInstr::Scale { a, .. } | ScalarInstr::ScaleGroups { a, .. } => std::slice::from_ref(a),
                _ => &[],
            };
            let level = 1 + reads.iter().map(|s| level_of[s.0 as usize]).max().unwrap_or(0);
            let written = match instr {
                ScalarInstr::Input { dst, .. }
                | ScalarInstr::Apply { dst, .. }
                | ScalarInstr::Scale { dst, .. }
                | ScalarInstr::Finish { dst, .. } => Some(dst),
                _ => None,
            };
            if let Some(dst) = written {
                level_of[dst.0 as usize] = level;
            }
            (level, key(instr), j)
        })
        .collect();
    order.sort_unstable();
    let mut batches: Vec<Batch> = Vec::new();
    for &(_, _, j) in &order {
        match (&code[j], batches.last_mut()) {
            (ScalarInstr::Input { dst, input }, Some(Batch::Inputs(runs))) => match runs.last_mut() {
                Some([d, i, len]) if *d + *len == dst.0 && *i + *len == *input => *len += 1,
                _ => runs.push([dst.0, *input, 1]),
            },
            (ScalarInstr::Input { dst, input }, _) => batches.push(Batch::Inputs(vec![[dst.0, *input, 1]])),
            (ScalarInstr::Finish { dst, acc }, Some(Batch::Finishes(items))) => items.push([dst.0, *acc]),
            (ScalarInstr::Finish { dst, acc }, _) => batches.push(Batch::Finishes(vec![[dst.0, *acc]])),
            (ScalarInstr::Apply { op, dst, a, b }, Some(Batch::Applies(last, items))) if last == op => items.push([dst.0, a.0, b.0]),
            (ScalarInstr::Apply { op, dst, a, b }, _) => batches.push(Batch::Applies(*op, vec![[dst.0, a.0, b.0]])),
            (other, _) => batches.push(Batch::One(other.clone())),
        }
    }
    batches
}

/// Runs scalar code regrouped by [`in_levels`].
fn run_levels(batches: &[Batch], call: &Call, inputs: Args, slots: &mut [f64], block_sums: &BlockSums, groups: &mut [Group]) {
    for batch in batches {
        match batch {
            Batch::Inputs(runs) => {
                let views = inputs.views.len();
                for &[dst, input, len] in runs {
                    let (dst, input, len) = (dst as usize, input as usize, len as usize);
                    match input >= views {
                        true => slots[dst..dst + len].copy_from_slice(&inputs.singles[input - views..input - views + len]),
                        false => (0..len).for_each(|i| slots[dst + i] = inputs.single(input + i)),
                    }
                }
            }
            Batch::Finishes(items) => items.iter().for_each(|&[dst, acc]| slots[dst as usize] = block_sums.finish(acc as usize)),
            Batch::Applies(op, items) => {
                // The common ops get loops of their own: `scalar_op` is a call and a dispatch.
                let mut each = |f: fn(f64, f64) -> f64| {
                    items.iter().for_each(|&[dst, a, b]| slots[dst as usize] = f(slots[a as usize], slots[b as usize]))
                };
                match op {
                    Op::Add => each(|a, b| Op::Add.eval(a, b)),
                    Op::Sub => each(|a, b| Op::Sub.eval(a, b)),
                    Op::Mul => each(|a, b| Op::Mul.eval(a, b)),
                    Op::Div => each(|a, b| Op::Div.eval(a, b)),
                    _ => items.iter().for_each(|&[dst, a, b]| slots[dst as usize] = scalar_op(*op, slots[a as usize], slots[b as usize])),
                }
            }
            Batch::One(instr) => run_scalar(instr, call, inputs, slots, block_sums, groups),
        }
    }
}

/// The sum of `count` copies of `value`: 0 for none, even if the value is nan or inf.
fn times_count(value: f64, count: usize) -> f64 {
    if count == 0 {
        0.0
    } else {
        value * count as f64
    }
}

/// Sums partials pairwise, in order: a fixed tree, independent of how chunks were scheduled.
/// An unpaired last value goes up a level unchanged, so the sum over an aligned run of a power
/// of two values is a subtree's (see [`REDUCTION_BLOCK_CHUNKS`]).
fn pairwise(values: &[f64]) -> f64 {
    match values {
        [] => 0.0,
        [v] => *v,
        // Small sums (a pass of a few chunks, for every reduction of every call) on the stack.
        _ if values.len() <= 64 => {
            let mut level = [0.0f64; 64];
            level[..values.len()].copy_from_slice(values);
            pairwise_in_place(&mut level[..values.len()])
        }
        _ => pairwise_in_place(&mut values.to_vec()),
    }
}

/// [`pairwise`], overwriting `level` with each level of the tree in turn.
fn pairwise_in_place(level: &mut [f64]) -> f64 {
    let mut len = level.len();
    while len > 1 {
        for i in 0..len / 2 {
            level[i] = level[2 * i] + level[2 * i + 1];
        }
        if len % 2 == 1 {
            level[len / 2] = level[len - 1];
        }
        len = len.div_ceil(2);
    }
    level.first().copied().unwrap_or(0.0)
}

/// Per reduction, the pairwise sums of its blocks' partials, in block order. Most passes are
/// one block, so the first block's sum has its own slot and the rest are kept only when a
/// pass has more: a call with thousands of reductions (a dense layer's weight gradients)
/// allocates nothing per reduction, and finishing one is a read.
struct BlockSums {
    /// Per reduction, its first block's sum; 0 when the pass ran no block (no samples).
    first: Vec<f64>,
    /// Per reduction, the sums of its blocks after the first (allocated on a second block).
    more: Vec<Vec<f64>>,
}

impl BlockSums {
    fn new(n: usize) -> BlockSums {
        BlockSums { first: vec![0.0; n], more: Vec::new() }
    }

    /// Forgets the later blocks' sums (for the next run of the same call); every first sum is
    /// written again by the pass that computes it.
    fn clear(&mut self) {
        self.more.iter_mut().for_each(Vec::clear);
    }

    /// Records block `block`'s sums of the reductions `accs`, each the pairwise sum of its
    /// `chunks` partials at `partials[acc * stride..]`.
    fn push(&mut self, block: usize, accs: &[usize], partials: &[f64], stride: usize, chunks: usize) {
        match (block, chunks) {
            // A step of a few samples: one chunk, thousands of reductions.
            (0, 1) => accs.iter().for_each(|&acc| self.first[acc] = partials[acc * stride]),
            (0, _) => accs.iter().for_each(|&acc| self.first[acc] = pairwise(&partials[acc * stride..acc * stride + chunks])),
            _ => {
                if self.more.is_empty() {
                    self.more = vec![Vec::new(); self.first.len()];
                }
                for &acc in accs {
                    self.more[acc].push(pairwise(&partials[acc * stride..acc * stride + chunks]));
                }
            }
        }
    }

    /// Records that a pass ran no block: its reductions are sums over no samples.
    fn none(&mut self, accs: &[usize]) {
        accs.iter().for_each(|&acc| self.first[acc] = 0.0);
    }

    /// The reduction's value: its block sums summed pairwise.
    #[inline]
    fn finish(&self, acc: usize) -> f64 {
        match self.more.get(acc).filter(|m| !m.is_empty()) {
            None => self.first[acc],
            Some(more) => pairwise(&[&[self.first[acc]], more.as_slice()].concat()),
        }
    }
}

/// A raw pointer that chunks write through; each chunk writes only its own disjoint range.
#[derive(Clone, Copy)]
struct SyncPtr(*mut f64);
// SAFETY: every use writes a range no other chunk writes, and the owner outlives the pass.
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}

struct Sources<'a> {
    call: &'a Call,
    inputs: Args<'a>,
    groups: &'a [Group],
}

struct Sinks {
    /// Chunk `c`'s partial of reduction `acc` is at `acc * acc_stride + c` (the pointer is
    /// offset back by the block's first chunk).
    partials: SyncPtr,
    acc_stride: usize,
    bufs: Vec<SyncPtr>,
    outs: Vec<SyncPtr>,
}

/// Per-pass decisions that save copies, made once per call: loads that can read their source
/// in place, and instructions whose result can be written straight into an output.
/// Measured (thread CPU time per call, N = 1e6, one thread): W1 12.4 -> 10.6 ms, W2 28.8 ->
/// 22.7 ms against gathering every load and storing every output by copy.
struct Plan<'a> {
    /// Per instruction: how a `Load` reads its source.
    loads: Vec<Option<Read<'a>>>,
    /// Per instruction and result: the output that result is written into directly (its
    /// `Store` is then skipped).
    direct: Vec<[Option<usize>; 2]>,
    /// Per instruction: a `Store` whose value was already written by [`Plan::direct`].
    skip: Vec<bool>,
    /// Per instruction: for a [`MatVec`]'s vector (index 0), or an [`OuterSum`](crate::tape::OuterSum)'s rows (0)
    /// and columns (1), the matrix those registers were loaded from, when the product can
    /// read it where it is (see [`Plan::matrices`]).
    matrices: Vec<[Option<Matrix>; 2]>,
    /// Per instruction: for a [`MatVec`] whose matrix lies evenly spaced in the slots, where
    /// (see [`slot_matrix`]); its product then reads the slots, with no packed copy.
    weights: Vec<Option<SlotMatrix>>,
}

/// A [`MatVec`]'s matrix read in the slots: element `(i, j)` is slot `first + i * row + j * column`.
#[derive(Clone, Copy)]
struct SlotMatrix {
    first: usize,
    row: isize,
    column: isize,
}

/// Where a [`MatVec`]'s matrix lies in the slots, if its elements are evenly spaced there, as a
/// weight matrix's are (and its transpose's, in the gradient).
fn slot_matrix(m: &MatVec) -> Option<SlotMatrix> {
    let (n, k) = (m.dst.len(), m.x.len());
    let at = |i: usize, j: usize| m.w[i * k + j].0 as isize;
    let first = at(0, 0);
    let column = if k > 1 { at(0, 1) - first } else { 0 };
    let row = if n > 1 { at(1, 0) - first } else { 0 };
    let even = (0..n).all(|i| (0..k).all(|j| at(i, j) == first + i as isize * row + j as isize * column));
    even.then_some(SlotMatrix { first: first as usize, row, column })
}

/// Values read by a matrix product where they are: element `j` of sample `s` (a flat batch
/// index) is at `ptr + j * element + s * sample`. The rows of an `(N, k)` argument for a
/// variable of shape `(k,)`: a dense layer's inputs.
#[derive(Clone, Copy)]
struct Matrix {
    ptr: ConstPtr,
    element: isize,
    sample: isize,
    /// The load whose source `ptr` points into (at its first element).
    load: usize,
}

/// Calls `f` with each register an instruction reads.
fn for_each_operand(instr: &Instr, mut f: impl FnMut(&Reg)) {
    let mut arg = |a: &Arg| {
        if let Arg::Reg(r) = a {
            f(r)
        }
    };
    match instr {
        Instr::Load { .. } => {}
        Instr::Unary { a, .. } | Instr::SinCos { a, .. } | Instr::SigmoidSlope { a, .. } => arg(&Arg::Reg(*a)),
        Instr::Binary { a, b, .. } => [a, b].into_iter().for_each(arg),
        Instr::Fused { a, b, c, .. } => [Some(a), Some(b), c.as_ref()].into_iter().flatten().for_each(arg),
        Instr::Accumulate { src, times, .. } => [Some(&Arg::Reg(*src)), times.as_ref()].into_iter().flatten().for_each(arg),
        Instr::MatVec(m) => m.x.iter().for_each(|r| arg(&Arg::Reg(*r))),
        Instr::OuterSum(o) => o.rows.iter().chain(&o.cols).for_each(|r| arg(&Arg::Reg(*r))),
        Instr::Collect { src, .. } | Instr::Store { src, .. } => arg(&Arg::Reg(*src)),
    }
}

/// How a load reads its source: in place where the source is laid out like the batch (the
/// common case, kept free of any copy), else gathered into its register chunk by chunk.
enum Read<'a> {
    InPlace(ConstPtr),
    Gather(Layout<'a>),
    /// The first of consecutive loads of sources with the same strides, which are not 0 or 1
    /// along the innermost dimension (columns of one matrix): it gathers them all at once, row
    /// by row, into their registers.
    Rows {
        regs: Vec<Reg>,
        layouts: Vec<Layout<'a>>,
    },
    /// A load the `Rows` before it gathered.
    Gathered,
    /// A load whose value only matrix products read, and they read it where it is.
    Unneeded,
}

/// A read-only pointer shared by the chunks of a pass.
#[derive(Clone, Copy)]
struct ConstPtr(*const f64);
// SAFETY: only read, and the owner outlives the pass.
unsafe impl Send for ConstPtr {}
unsafe impl Sync for ConstPtr {}

/// The registers an instruction writes.
fn results(instr: &Instr) -> [Option<u32>; 2] {
    match instr {
        Instr::Load { dst, .. } | Instr::Unary { dst, .. } | Instr::Binary { dst, .. } | Instr::Fused { dst, .. } => [Some(dst.0), None],
        Instr::SinCos { sin, cos, .. } => [Some(sin.0), Some(cos.0)],
        Instr::SigmoidSlope { sig, slope, .. } => [Some(sig.0), Some(slope.0)],
        Instr::Accumulate { .. } | Instr::Collect { .. } | Instr::Store { .. } => [None, None],
        // Written through the product's own buffer, never straight into an output.
        Instr::MatVec(_) | Instr::OuterSum(_) => [None, None],
    }
}

impl<'a> Plan<'a> {
    fn new(code: &[Instr], sources: &Sources<'a>) -> Plan<'a> {
        let batch = &sources.call.batch;
        let loads = code
            .iter()
            .map(|i| match i {
                Instr::Load { src, .. } => {
                    let layout = source(sources, *src);
                    Some(match layout.is_batch_order(batch) {
                        true => Read::InPlace(ConstPtr(layout.data[layout.origin..].as_ptr())),
                        false => Read::Gather(layout),
                    })
                }
                _ => None,
            })
            .collect();
        let (loads, matrices) = Plan::matrices(code, loads, batch);
        let loads = by_rows(code, loads);
        let mut direct = vec![[None; 2]; code.len()];
        let mut skip = vec![false; code.len()];
        // Per register, the instruction that last wrote it; per output, whether it has a writer.
        let mut writer: Vec<Option<usize>> = Vec::new();
        let mut taken: Vec<bool> = Vec::new();
        for (j, instr) in code.iter().enumerate() {
            for r in results(instr).into_iter().flatten() {
                let r = r as usize;
                writer.resize(writer.len().max(r + 1), None);
                writer[r] = Some(j);
            }
            if let Instr::MatVec(m) = instr {
                for r in &m.dst {
                    let r = r.0 as usize;
                    writer.resize(writer.len().max(r + 1), None);
                    writer[r] = None;
                }
            }
            let Instr::Store { src, out } = instr else { continue };
            // A load's value may be read in place, so it has no buffer to redirect.
            let Some(w) = writer[src.0 as usize].filter(|w| !matches!(code[*w], Instr::Load { .. })) else { continue };
            let k = usize::from(results(&code[w])[0] != Some(src.0));
            taken.resize(taken.len().max(out + 1), false);
            if direct[w][k].is_none() && !taken[*out] {
                direct[w][k] = Some(*out);
                skip[j] = true;
                taken[*out] = true;
            }
        }
        let weights = code.iter().map(|i| if let Instr::MatVec(m) = i { slot_matrix(m) } else { None }).collect();
        Plan { loads, direct, skip, matrices, weights }
    }

    /// The plan for a pass of a runner that ran it before: `kept`'s plan when the pass's loads
    /// read the same elements as when it was made (an epoch's steps read the same buffer), with
    /// its pointers taken afresh from this run's inputs; else a new plan, kept when it holds no
    /// borrowed layout. Making a dense network's plan was ~8 µs of a ~50 µs epoch step.
    fn kept<'k>(
        kept: &'k mut Option<(Vec<usize>, Plan<'static>)>,
        code: &[Instr],
        sources: &Sources<'a>,
    ) -> std::result::Result<&'k Plan<'static>, Plan<'a>> {
        let mut key = Vec::with_capacity(kept.as_ref().map_or(0, |(k, _)| k.len()));
        let mut keyable = true;
        for instr in code {
            match instr {
                Instr::Load { src: Source::Input(k), .. } => sources.inputs.place(*k, &mut key),
                Instr::Load { src: Source::Group(_), .. } => keyable = false,
                _ => {}
            }
        }
        match kept {
            Some((old, plan)) if keyable && *old == key => {
                // The same addresses, but this run's pointers: the old ones came from borrows
                // that have since ended.
                for (instr, read) in code.iter().zip(plan.loads.iter_mut()) {
                    if let (Instr::Load { src: Source::Input(k), .. }, Some(Read::InPlace(p))) = (instr, read) {
                        *p = ConstPtr(sources.inputs.first_ptr(*k));
                    }
                }
                for m in plan.matrices.iter_mut().flatten().flatten() {
                    let Instr::Load { src: Source::Input(k), .. } = code[m.load] else {
                        unreachable!("a matrix is read from a load of an input")
                    };
                    m.ptr = ConstPtr(sources.inputs.first_ptr(k));
                }
            }
            _ => {
                let plan = Plan::new(code, sources);
                *kept = None;
                if !keyable {
                    return Err(plan);
                }
                *kept = Some((key, plan.detached()?));
            }
        }
        Ok(&kept.as_ref().expect("kept above").1)
    }

    /// The plan with no borrowed layout in it, if it has none (every load read in place or
    /// not needed); else the plan as it is.
    fn detached(self) -> std::result::Result<Plan<'static>, Plan<'a>> {
        if self.loads.iter().flatten().any(|read| matches!(read, Read::Gather(_) | Read::Rows { .. } | Read::Gathered)) {
            return Err(self);
        }
        let loads = self
            .loads
            .into_iter()
            .map(|read| match read {
                Some(Read::InPlace(p)) => Some(Read::InPlace(p)),
                Some(Read::Unneeded) => Some(Read::Unneeded),
                _ => None,
            })
            .collect();
        Ok(Plan { loads, direct: self.direct, skip: self.skip, matrices: self.matrices, weights: self.weights })
    }

    /// Finds the operands of matrix products that are an argument's rows read in place: the
    /// registers were loaded from inputs whose views step through the batch with one stride
    /// and lie evenly spaced in memory (the elements of an `(N, k)` argument's rows, say).
    /// The product then reads that memory itself, and a load that nothing else reads is
    /// dropped: 784-30-10's 784 input columns are neither gathered into registers nor copied
    /// into the product's buffer.
    #[allow(clippy::type_complexity)]
    fn matrices(code: &[Instr], mut loads: Vec<Option<Read<'a>>>, batch: &[usize]) -> (Vec<Option<Read<'a>>>, Vec<[Option<Matrix>; 2]>) {
        let mut matrices = vec![[None; 2]; code.len()];
        if !code.iter().any(|i| matches!(i, Instr::MatVec(_) | Instr::OuterSum(_))) {
            return (loads, matrices);
        }
        // Per register, the load that last wrote it (None once anything else writes it).
        let mut loaded: Vec<Option<usize>> = Vec::new();
        let mut needed = vec![false; code.len()];
        for (i, instr) in code.iter().enumerate() {
            let groups: [&[Reg]; 2] = match instr {
                Instr::MatVec(m) => [&m.x, &[]],
                Instr::OuterSum(o) => [&o.rows, &o.cols],
                _ => [&[], &[]],
            };
            for (g, regs) in groups.iter().enumerate().filter(|(_, regs)| !regs.is_empty()) {
                matrices[i][g] = matrix_of(regs, &loaded, &loads, batch);
            }
            // A product's operand read in place needs no register; any other read does.
            let mut mark = |r: &Reg| {
                if let Some(Some(l)) = loaded.get(r.0 as usize) {
                    needed[*l] = true;
                }
            };
            match instr {
                Instr::MatVec(_) | Instr::OuterSum(_) => {
                    for (g, regs) in groups.iter().enumerate() {
                        if matrices[i][g].is_none() {
                            regs.iter().for_each(&mut mark);
                        }
                    }
                }
                _ => for_each_operand(instr, &mut mark),
            }
            let mut written = |r: u32| {
                let r = r as usize;
                if loaded.len() <= r {
                    loaded.resize(r + 1, None);
                }
                loaded[r] = matches!(instr, Instr::Load { .. }).then_some(i);
            };
            match instr {
                Instr::MatVec(m) => m.dst.iter().for_each(|r| written(r.0)),
                _ => results(instr).into_iter().flatten().for_each(written),
            }
        }
        for (i, instr) in code.iter().enumerate() {
            if matches!(instr, Instr::Load { .. }) && !needed[i] {
                loads[i] = Some(Read::Unneeded);
            }
        }
        (loads, matrices)
    }
}

/// The matrix `regs` were loaded from, if they were loaded from evenly spaced views that step
/// through the batch with one stride (see [`Plan::matrices`]).
fn matrix_of(regs: &[Reg], loaded: &[Option<usize>], loads: &[Option<Read>], batch: &[usize]) -> Option<Matrix> {
    // Where a register's samples start, and their one stride.
    let column = |r: &Reg| match loaded.get(r.0 as usize).copied().flatten().map(|l| &loads[l]) {
        Some(Some(Read::InPlace(p))) => Some((p.0, 1)),
        Some(Some(Read::Gather(l))) => Some((l.data[l.origin..].as_ptr(), sample_stride(&l.strides, batch)?)),
        _ => None,
    };
    let load = loaded.get(regs.first()?.0 as usize).copied().flatten()?;
    let (first, sample) = column(regs.first()?)?;
    let mut element = 0isize;
    for (j, r) in regs.iter().enumerate().skip(1) {
        let (p, s) = column(r)?;
        // Elements of one allocation lie a whole number of f64 apart.
        let gap = (p as isize).wrapping_sub(first as isize);
        if s != sample || gap % 8 != 0 {
            return None;
        }
        let gap = gap / 8;
        if j == 1 {
            element = gap;
        } else if Some(gap) != element.checked_mul(j as isize) {
            return None;
        }
    }
    Some(Matrix { ptr: ConstPtr(first), element, sample, load })
}

/// The one stride that steps through a layout's samples in flat batch order, if there is
/// one (each dimension's stride is the next one's times its size) and it is not 0.
fn sample_stride(strides: &[isize], batch: &[usize]) -> Option<isize> {
    let mut sample = None;
    let mut next = 0isize;
    for d in (0..batch.len()).rev() {
        if batch[d] == 1 {
            continue;
        }
        if sample.is_some() && strides[d] != next {
            return None;
        }
        sample.get_or_insert(strides[d]);
        next = strides[d].checked_mul(batch[d] as isize)?;
    }
    sample.filter(|s| *s != 0)
}

/// Joins runs of consecutive strided loads with the same strides into one [`Read::Rows`] each.
fn by_rows<'a>(code: &[Instr], mut loads: Vec<Option<Read<'a>>>) -> Vec<Option<Read<'a>>> {
    let strided = |read: &Option<Read>| match read {
        Some(Read::Gather(l)) => l.strides.last().is_some_and(|s| s.unsigned_abs() > 1).then_some(l.strides.clone()),
        _ => None,
    };
    let mut i = 0;
    while i < code.len() {
        let (Instr::Load { dst, .. }, Some(strides)) = (&code[i], strided(&loads[i])) else {
            i += 1;
            continue;
        };
        let mut regs = vec![*dst];
        let mut end = i + 1;
        while let (Some(Instr::Load { dst, .. }), Some(s)) = (code.get(end), loads.get(end).and_then(strided)) {
            if s != strides || regs.contains(dst) {
                break;
            }
            regs.push(*dst);
            end += 1;
        }
        if end - i > 1 {
            // Every load in i..end is a `Gather` (checked by `strided`): one layout per register.
            let layouts: Vec<Layout> = (i..end)
                .filter_map(|j| if let Some(Read::Gather(l)) = loads[j].replace(Read::Gathered) { Some(l) } else { None })
                .collect();
            debug_assert_eq!(layouts.len(), regs.len());
            loads[i] = Some(Read::Rows { regs, layouts });
        }
        i = end;
    }
    loads
}

/// How the chunk loops learn to stop: `cancel` is read by every thread between chunks; `stop`
/// is asked on the calling thread between its grabs of chunks, and sets `cancel`.
struct Watch<'a> {
    cancel: &'a AtomicBool,
    stop: &'a mut dyn FnMut() -> bool,
}

/// Chunks a thread takes at a time from a pass's shared counter: small enough that the threads
/// finish together and the caller asks its `stop` often (W1's chunks take ~5 µs each on one
/// core), large enough that each grab streams 64 KiB of every input.
const GRAB_CHUNKS: usize = 8;

/// A grab's estimated work at most: chunks estimated above a tenth of it are taken fewer at a
/// time (see [`grab_size`]). High enough that no elementwise tape (W2's chunk: ~7 µs
/// estimated) grabs fewer than [`GRAB_CHUNKS`].
const GRAB_NS: f64 = 80_000.0;

/// Chunks per grab for a pass of `code`: [`GRAB_CHUNKS`], or fewer when a chunk is estimated
/// at more than `GRAB_NS / GRAB_CHUNKS` of work. A dense layer's chunk is a matrix product
/// of ~100 µs: 784-30-10 on 10,000 samples is 10 chunks, and grabs of 8 left the second thread 2.
fn grab_size(code: &[Instr], chunk: usize) -> usize {
    let per_chunk = per_sample_ns(code) * chunk as f64;
    ((GRAB_NS / per_chunk.max(1.0)) as usize).clamp(1, GRAB_CHUNKS)
}

/// Runs `chunks` of a pass on the calling thread and, where [`worth_waking`] says so, the
/// pool's threads beside it: each takes the next [`grab_size`] chunks from a shared counter until
/// none are left. Which thread computes a chunk never changes a result (each chunk writes its
/// own partial sums and ranges).
///
/// The caller grabs chunks beside the pool rather than handing the pass to the pool and
/// waiting: W1 (N = 1e6, two threads, a call after a 20 ms pause as in the benchmark's
/// rotation; medians of 40 calls in each of four interleaved processes) 5.08-7.38 ms per call
/// against 8.37-8.65 ms.
#[allow(clippy::too_many_arguments)]
fn run_chunks(
    code: &[Instr],
    plan: &Plan,
    n_regs: usize,
    chunk: usize,
    n: usize,
    chunks: std::ops::Range<usize>,
    slots: &[f64],
    sources: &Sources,
    sinks: &Sinks,
    watch: &mut Watch,
) {
    let threads = pool::current_num_threads();
    // Registers as long as the longest chunk: a 32-sample call zeroed 7 x 1024-sample
    // registers (56 KiB) per pass before (W1 on 32 samples, minima under load: 3.1 -> 1.8 µs).
    let width = chunk.min(n).max(1);
    let mats = code
        .iter()
        .zip(&plan.weights)
        .map(|(i, in_slots)| match (i, in_slots) {
            (Instr::MatVec(m), None) => m.w.iter().map(|s| slots[s.0 as usize]).collect(),
            _ => Vec::new(),
        })
        .collect();
    // A product's operands read in place need no copy in its buffer.
    let copied = |regs: &[Reg], in_place: &Option<Matrix>| if in_place.is_some() { 0 } else { regs.len() * width };
    let scratch_len = code
        .iter()
        .zip(&plan.matrices)
        .map(|(i, [first, second])| match i {
            Instr::MatVec(m) => copied(&m.x, first) + m.dst.len() * width,
            Instr::OuterSum(o) => copied(&o.rows, first) + copied(&o.cols, second) + o.accs.len(),
            _ => 0,
        })
        .max()
        .unwrap_or(0);
    let ctx = Ctx { code, plan, mats, width, slots, sources, sinks };
    let next = AtomicUsize::new(chunks.start);
    let per_grab = grab_size(code, chunk);
    let cancel = watch.cancel;
    // Grabs chunks until none are left or the call is cancelled; `stop` is asked after each grab.
    let grab = |stop: &mut dyn FnMut() -> bool| {
        let mut regs = Reused::take(&REGISTERS, n_regs.max(1) * width);
        let mut view = vec![std::ptr::null(); n_regs.max(1)];
        let mut scratch = Reused::take(&SCRATCH, scratch_len);
        loop {
            let from = next.fetch_add(per_grab, Ordering::Relaxed);
            if from >= chunks.end {
                return;
            }
            for c in from..(from + per_grab).min(chunks.end) {
                if cancel.load(Ordering::Relaxed) {
                    return;
                }
                let start = c * chunk;
                let len = chunk.min(n - start);
                run_chunk(&ctx, &mut regs, &mut view, &mut scratch, c, start, len);
            }
            if stop() {
                cancel.store(true, Ordering::Relaxed);
                return;
            }
        }
    };
    if !worth_waking(code, threads, chunks.len(), (chunks.len() * chunk).min(n), per_grab) {
        grab(watch.stop);
        return;
    }
    let lease = Arc::new(Lease::default());
    let shared: &(dyn Fn(&mut dyn FnMut() -> bool) + Sync) = &grab;
    // SAFETY: the lifetime is erased so the helpers' jobs can be 'static; a helper calls it
    // only while holding the lease, and the guard below does not return (or unwind) past
    // this frame until no helper holds it.
    let job = Job(unsafe {
        std::mem::transmute::<&(dyn Fn(&mut dyn FnMut() -> bool) + Sync), &'static (dyn Fn(&mut dyn FnMut() -> bool) + Sync)>(shared)
    });
    for _ in 1..threads {
        let lease = lease.clone();
        pool::spawn(move || lease.hold(|| (job.0)(&mut || false)));
    }
    let closing = Closing(&lease);
    grab(watch.stop);
    drop(closing);
}

thread_local! {
    static REGISTERS: std::cell::Cell<Vec<f64>> = const { std::cell::Cell::new(Vec::new()) };
    static SCRATCH: std::cell::Cell<Vec<f64>> = const { std::cell::Cell::new(Vec::new()) };
}

/// A thread's register or product buffer, kept for its next pass: zeroing a fresh one cost
/// calls of a dense network more than their elementwise work (W8: ~1.2 MB of registers a
/// pass). Contents left by earlier passes are never read: every register is written before
/// it is read. Buffers above [`KEPT_BYTES`] go back to the allocator.
struct Reused {
    buf: Vec<f64>,
    home: &'static std::thread::LocalKey<std::cell::Cell<Vec<f64>>>,
}

const KEPT_BYTES: usize = 4 << 20;

impl Reused {
    fn take(home: &'static std::thread::LocalKey<std::cell::Cell<Vec<f64>>>, len: usize) -> Reused {
        let mut buf = home.with(|b| b.take());
        if buf.len() < len {
            buf = vec![0.0; len];
        }
        Reused { buf, home }
    }
}

impl std::ops::Deref for Reused {
    type Target = [f64];
    fn deref(&self) -> &[f64] {
        &self.buf
    }
}

impl std::ops::DerefMut for Reused {
    fn deref_mut(&mut self) -> &mut [f64] {
        &mut self.buf
    }
}

impl Drop for Reused {
    fn drop(&mut self) {
        if self.buf.len() * 8 <= KEPT_BYTES {
            let buf = std::mem::take(&mut self.buf);
            // A thread being torn down has no home for it any more.
            let _ = self.home.try_with(|b| b.set(buf));
        }
    }
}

/// The grab loop, shared with the pool's threads by [`Lease`].
#[derive(Clone, Copy)]
struct Job(&'static (dyn Fn(&mut dyn FnMut() -> bool) + Sync));

/// Helpers that start after the calling thread has run out of chunks do nothing and are not
/// waited for. Waiting for every spawned job (a rayon scope) made the caller wait for the
/// pool's threads to be scheduled at all, which under load takes milliseconds. W2 into `out=`
/// arrays, load average ~11 on the 2 cores, medians (p90): on 100,000 samples one thread
/// 1.25 ms, two threads 6.7 ms with the scope, 1.24 ms with the lease; on 16,384 samples (p90)
/// 0.20 ms on one thread, 3.2 ms on two with the scope, 0.20 ms with the lease. A helper takes
/// the lease before it touches the pass and gives it back after; the caller closes it and
/// waits only for helpers holding it.
#[derive(Default)]
struct Lease {
    closed: AtomicBool,
    holders: AtomicUsize,
    panicked: AtomicBool,
}

impl Lease {
    /// Runs `work` unless the lease is closed. SeqCst on both sides: a helper's increment and
    /// the caller's close are ordered, so either the caller sees the holder or the helper
    /// sees the close.
    fn hold(&self, work: impl FnOnce()) {
        self.holders.fetch_add(1, Ordering::SeqCst);
        if !self.closed.load(Ordering::SeqCst) && std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).is_err() {
            self.panicked.store(true, Ordering::SeqCst);
        }
        self.holders.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Closes a lease when dropped (also when the caller unwinds) and waits for its holders: a
/// holder runs at most one grab of chunks after the counter runs out.
struct Closing<'a>(&'a Lease);

impl Drop for Closing<'_> {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::SeqCst);
        while self.0.holders.load(Ordering::SeqCst) > 0 {
            std::thread::yield_now();
        }
        if self.0.panicked.load(Ordering::SeqCst) && !std::thread::panicking() {
            panic!("an evaluation thread panicked");
        }
    }
}

/// Estimated nanoseconds per sample of a chunk instruction, at the low end of what they
/// cost, so the estimate errs towards staying on one thread. Measured today (one thread,
/// 65,536 samples, in L2): arithmetic 0.08-0.25 ns (`x * y + 1`: 0.32 ns a sample for its
/// 4 instructions), a vectorised kernel (sin_cos, exp, log, sigmoid_slope) 2-4 ns (W2: 5
/// of them and 16 others, 14.7 ns a sample; W1: 2 and 14, 10.6 ns).
const KERNEL_NS: f64 = 1.0;
const ARITHMETIC_NS: f64 = 0.1;
/// A matrix product's multiply-add per sample (and its copies in and out), at the low end.
const MULTIPLY_ADD_NS: f64 = 0.02;

/// What waking the pool costs the calling thread, in ns: a margin above the most measured
/// today (2 cores under a load average of ~5 from other processes, the pool woken for
/// calls in which it had nothing to do: 0.9-14 µs a call).
const HAND_OFF_NS: f64 = 20_000.0;

/// Whether a pass of `chunks` chunks (`samples` samples) of `code` is worth the pool: the
/// time the other threads save, estimated from the instructions' cost, must pass the
/// hand-off's. A thread takes `grab` chunks at a time and the caller takes its first grab
/// before any helper wakes, so helpers can take at most the chunks beyond it (and at best
/// their share of all). Today's numbers (µs a call, one thread against two): `x * y + 1` on
/// 16,384 samples 5.5 against 19.0, on 65,536 20.9 against 17.9 (both stay on one thread:
/// 11.5 µs saved at most); W2 on 10,000 samples (10 chunks, 2 of them to share) 106 against
/// 177 under load (stays: 13 µs); W1 on 16,384 54.6 against 40.6, W2 145 against 78 (both
/// woken: 28 and 54 µs estimated savings).
fn worth_waking(code: &[Instr], threads: usize, chunks: usize, samples: usize, grab: usize) -> bool {
    if threads <= 1 || chunks <= grab {
        return false;
    }
    let share = chunks as f64 * (1.0 - 1.0 / threads as f64);
    let offloaded = share.min((chunks - grab) as f64);
    per_sample_ns(code) * offloaded * (samples as f64 / chunks as f64) > HAND_OFF_NS
}

/// A chunk instruction's estimated cost per sample, summed over `code`.
fn per_sample_ns(code: &[Instr]) -> f64 {
    code.iter()
        .map(|i| match i {
            Instr::Unary { .. } | Instr::SinCos { .. } | Instr::SigmoidSlope { .. } => KERNEL_NS,
            Instr::MatVec(m) => MULTIPLY_ADD_NS * (m.w.len() + m.x.len() + m.dst.len()) as f64,
            Instr::OuterSum(o) => MULTIPLY_ADD_NS * (o.accs.len() + o.rows.len() + o.cols.len()) as f64,
            _ => ARITHMETIC_NS,
        })
        .sum()
}

/// What every chunk of a pass shares.
struct Ctx<'a> {
    code: &'a [Instr],
    plan: &'a Plan<'a>,
    /// Per instruction: a [`MatVec`]'s matrix, packed row-major from its slots, unless the
    /// product reads it in the slots (else empty).
    mats: Vec<Vec<f64>>,
    width: usize,
    slots: &'a [f64],
    sources: &'a Sources<'a>,
    sinks: &'a Sinks,
}

/// Runs one chunk, with the arithmetic loops compiled for AVX2 where the CPU has it (the
/// transcendental kernels dispatch on their own). Only `avx2` is enabled, not `fma`: Rust never
/// contracts `a * b + c` into a fused multiply-add, so every result stays bit for bit the op
/// table's `eval`, on every CPU.
///
/// Measured (thread CPU time per call, N = 1e6, one thread, medians of interleaved runs, all
/// other optimisations on): W1 15.1 -> 10.6 ms, W2 28.9 -> 22.7 ms for SSE2 -> AVX2 loops.
fn run_chunk(ctx: &Ctx, regs: &mut [f64], view: &mut [*const f64], scratch: &mut [f64], chunk: usize, start: usize, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        if *AVX2.get_or_init(|| is_x86_feature_detected!("avx2")) {
            // SAFETY: AVX2 was detected at run time.
            return unsafe { run_chunk_avx2(ctx, regs, view, scratch, chunk, start, len) };
        }
    }
    run_chunk_body(ctx, regs, view, scratch, chunk, start, len)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn run_chunk_avx2(
    ctx: &Ctx,
    regs: &mut [f64],
    view: &mut [*const f64],
    scratch: &mut [f64],
    chunk: usize,
    start: usize,
    len: usize,
) {
    run_chunk_body(ctx, regs, view, scratch, chunk, start, len)
}

/// The chunk interpreter. `view[r]` is where register `r`'s current value lives: its own
/// window of `regs`, an input read in place, or the output range it was written into.
#[inline(always)]
fn run_chunk_body(ctx: &Ctx, regs: &mut [f64], view: &mut [*const f64], scratch: &mut [f64], chunk: usize, start: usize, len: usize) {
    let base = regs.as_mut_ptr();
    let (plan, sinks) = (ctx.plan, ctx.sinks);
    // SAFETY (all pointer use below): register windows are disjoint `width`-sized parts of
    // `regs`; inputs are only read; chunk `chunk` owns partial `acc * acc_stride + chunk` and the
    // range `start..start + len` of every buffer and output, and each output is the direct
    // target of at most one result. The allocator never makes an instruction's destination
    // one of its operands, so no written slice overlaps a read one.
    let read = |view: &[*const f64], r: Reg| unsafe { std::slice::from_raw_parts(view[r.0 as usize], len) };
    let arg = |view: &[*const f64], a: &Arg| match a {
        Arg::Reg(r) => Operand::Chunk(read(view, *r)),
        Arg::Slot(s) => Operand::Scalar(ctx.slots[s.0 as usize]),
    };
    for (i, instr) in ctx.code.iter().enumerate() {
        // Where result `k` (in register `r`) of this instruction goes.
        let target = |r: Reg, k: usize| -> *mut f64 {
            match plan.direct[i][k] {
                Some(out) => sinks.outs[out].0.wrapping_add(start),
                None => unsafe { base.add(r.0 as usize * ctx.width) },
            }
        };
        let write = |p: *mut f64| unsafe { std::slice::from_raw_parts_mut(p, len) };
        match instr {
            Instr::Load { dst, .. } => {
                view[dst.0 as usize] = match plan.loads[i].as_ref().expect("Plan::new gives every load a read") {
                    Read::InPlace(p) => unsafe { p.0.add(start) },
                    Read::Gather(layout) => {
                        let t = target(*dst, 0);
                        layout.gather(&ctx.sources.call.batch, start, write(t));
                        t
                    }
                    Read::Rows { regs, layouts } => {
                        // Distinct registers (checked by `by_rows`), none of them an output.
                        let mut outs: Vec<&mut [f64]> = regs.iter().map(|r| write(unsafe { base.add(r.0 as usize * ctx.width) })).collect();
                        gather_rows(&ctx.sources.call.batch, layouts, start, &mut outs);
                        for r in regs {
                            view[r.0 as usize] = unsafe { base.add(r.0 as usize * ctx.width) };
                        }
                        view[dst.0 as usize]
                    }
                    Read::Gathered | Read::Unneeded => view[dst.0 as usize],
                };
            }
            Instr::Unary { op, dst, a } => {
                let t = target(*dst, 0);
                unary(*op, read(view, *a), write(t));
                view[dst.0 as usize] = t;
            }
            Instr::Binary { op, dst, a, b } => {
                let t = target(*dst, 0);
                binary(*op, arg(view, a), arg(view, b), write(t));
                view[dst.0 as usize] = t;
            }
            Instr::SinCos { sin, cos, a } => {
                let (ts, tc) = (target(*sin, 0), target(*cos, 1));
                kernels::sin_cos(read(view, *a), write(ts), write(tc));
                (view[sin.0 as usize], view[cos.0 as usize]) = (ts, tc);
            }
            Instr::SigmoidSlope { sig, slope, a, affine } => {
                let (ts, td) = (target(*sig, 0), target(*slope, 1));
                match affine {
                    None => kernels::sigmoid_slope(read(view, *a), write(ts), write(td)),
                    Some(Affine { w, b, sub }) => {
                        let (w, b) = (ctx.slots[w.0 as usize], ctx.slots[b.0 as usize]);
                        // `t - b` is `t + -b` bit for bit (IEEE subtraction adds the negation).
                        let b = if *sub { -b } else { b };
                        kernels::sigmoid_slope_affine(read(view, *a), w, b, write(ts), write(td))
                    }
                }
                (view[sig.0 as usize], view[slope.0 as usize]) = (ts, td);
            }
            Instr::Fused { dst, inner, a, b, outer, c, swap } => {
                let t = target(*dst, 0);
                let c = c.as_ref().map_or(Operand::Scalar(0.0), |c| arg(view, c));
                fused(*inner, arg(view, a), arg(view, b), *outer, c, *swap, write(t));
                view[dst.0 as usize] = t;
            }
            Instr::Accumulate { src, times, neg, acc } => {
                let sum = accumulate(read(view, *src), times.as_ref().map(|b| arg(view, b)), *neg);
                unsafe { *sinks.partials.0.wrapping_add(acc * sinks.acc_stride + chunk) = sum }
            }
            Instr::MatVec(m) => {
                let (n, k) = (m.dst.len(), m.x.len());
                let ((xp, x_element, x_sample), rest) = product_operand(&m.x, plan.matrices[i][0], scratch, start, len, |r| read(view, r));
                // Consecutive destination registers are written in place, as rows `width` apart.
                let consecutive = m.dst.iter().enumerate().all(|(j, r)| r.0 as usize == m.dst[0].0 as usize + j);
                let (yp, y_row) = match consecutive {
                    true => (unsafe { base.add(m.dst[0].0 as usize * ctx.width) }, ctx.width),
                    false => (rest.as_mut_ptr(), len),
                };
                let (wp, w_row, w_column) = match plan.weights[i] {
                    // (From the whole of the slots: a negative stride reaches below `first`.)
                    Some(SlotMatrix { first, row, column }) => (ctx.slots.as_ptr().wrapping_add(first), row, column),
                    None => (ctx.mats[i].as_ptr(), k as isize, 1),
                };
                // SAFETY: `w` is n x k, in the packed copy or evenly spaced in the slots (checked
                // by `slot_matrix`: every element is one of the instruction's slots); the
                // vector's k x len elements lie in its argument (checked by `Plan::matrices`) or
                // in `x`; `y` is n rows of `len` values, `y_row` apart, in `rest` or in the
                // destination registers, which no operand shares.
                unsafe { matrixmultiply::dgemm(n, k, len, 1.0, wp, w_row, w_column, xp, x_element, x_sample, 0.0, yp, y_row as isize, 1) };
                for (row, d) in m.dst.iter().enumerate() {
                    let t = unsafe { base.add(d.0 as usize * ctx.width) };
                    if !consecutive {
                        write(t).copy_from_slice(&rest[row * len..(row + 1) * len]);
                    }
                    view[d.0 as usize] = t;
                }
            }
            Instr::OuterSum(o) => {
                let (nr, nc) = (o.rows.len(), o.cols.len());
                let [rows_in_place, cols_in_place] = plan.matrices[i];
                let ((ap, a_element, a_sample), rest) = product_operand(&o.rows, rows_in_place, scratch, start, len, |r| read(view, r));
                let ((bp, b_element, b_sample), rest) = product_operand(&o.cols, cols_in_place, rest, start, len, |r| read(view, r));
                let sums = &mut rest[..nr * nc];
                // Negating the product negates each sum exactly, as subtracting each product would.
                let sign = if o.neg { -1.0 } else { 1.0 };
                // SAFETY: the factors' nr x len and nc x len elements lie in their arguments
                // (checked by `Plan::matrices`) or in `a` and `b`; `sums` is nr x nc.
                unsafe {
                    matrixmultiply::dgemm(
                        nr,
                        len,
                        nc,
                        sign,
                        ap,
                        a_element,
                        a_sample,
                        bp,
                        b_sample,
                        b_element,
                        0.0,
                        sums.as_mut_ptr(),
                        nc as isize,
                        1,
                    )
                };
                for (acc, sum) in o.accs.iter().zip(sums.iter()) {
                    unsafe { *sinks.partials.0.wrapping_add(acc * sinks.acc_stride + chunk) = *sum }
                }
            }
            Instr::Collect { src, buf } => unsafe {
                std::slice::from_raw_parts_mut(sinks.bufs[*buf].0.wrapping_add(start), len).copy_from_slice(read(view, *src))
            },
            Instr::Store { .. } if plan.skip[i] => {}
            Instr::Store { src, out } => unsafe {
                std::slice::from_raw_parts_mut(sinks.outs[*out].0.wrapping_add(start), len).copy_from_slice(read(view, *src))
            },
        }
    }
}

/// A matrix product's operand, `regs.len()` rows of `len` samples from sample `start`, as
/// (pointer, element stride, sample stride): the argument's rows where they are (see
/// [`Plan::matrices`]), or the registers copied into the front of `scratch`. Returns the rest
/// of `scratch`.
fn product_operand<'s, 'r>(
    regs: &[Reg],
    in_place: Option<Matrix>,
    scratch: &'s mut [f64],
    start: usize,
    len: usize,
    read: impl Fn(Reg) -> &'r [f64],
) -> ((*const f64, isize, isize), &'s mut [f64]) {
    match in_place {
        Some(m) => ((m.ptr.0.wrapping_offset(start as isize * m.sample), m.element, m.sample), scratch),
        None => {
            let (buf, rest) = scratch.split_at_mut(regs.len() * len);
            for (j, r) in regs.iter().enumerate() {
                buf[j * len..(j + 1) * len].copy_from_slice(read(*r));
            }
            ((buf.as_ptr(), len as isize, 1), rest)
        }
    }
}

/// A source as the batch reads it: an input through its view, a group array (C-contiguous, of
/// its padded shape) broadcast.
fn source<'a>(sources: &Sources<'a>, src: Source) -> Layout<'a> {
    let batch = &sources.call.batch;
    match src {
        Source::Input(k) => sources.inputs.layout(k, batch),
        Source::Group(g) => Layout::contiguous(&sources.groups[g].data, &sources.groups[g].shape, batch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values spread over many magnitudes and both signs, so any change in the order of
    /// additions changes the bits.
    fn spread(n: usize) -> Vec<f64> {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let unit = (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
                unit * 10f64.powi((state % 31) as i32 - 15)
            })
            .collect()
    }

    /// Pairwise sums of aligned blocks of a power of two values, summed pairwise, are the
    /// pairwise sum of all values, bit for bit: what lets reductions keep O(block) partials.
    #[test]
    fn pairwise_sums_are_the_level_by_level_tree() {
        let reference = |values: &[f64]| {
            let mut level = values.to_vec();
            while level.len() > 1 {
                level = level.chunks(2).map(|p| if let [a, b] = p { a + b } else { p[0] }).collect();
            }
            level.first().copied().unwrap_or(0.0)
        };
        for n in (0..200).chain([1000, 4097]) {
            let values = spread(n);
            assert_eq!(pairwise(&values).to_bits(), reference(&values).to_bits(), "n = {n}");
        }
    }

    #[test]
    fn block_sums_are_subtrees_of_the_pairwise_tree() {
        for n in [0, 1, 2, 3, 7, 8, 9, 255, 256, 257, 1000, 3 * 256 + 5] {
            let values = spread(n);
            for block in [1, 2, 4, 64, 256, 1024] {
                let sums: Vec<f64> = values.chunks(block).map(pairwise).collect();
                assert_eq!(pairwise(&sums).to_bits(), pairwise(&values).to_bits(), "n = {n}, block = {block}");
            }
        }
        let values = spread(2 * REDUCTION_BLOCK_CHUNKS + 3);
        let sums: Vec<f64> = values.chunks(REDUCTION_BLOCK_CHUNKS).map(pairwise).collect();
        assert_eq!(pairwise(&sums).to_bits(), pairwise(&values).to_bits());
    }

    use crate::ops::Op;

    fn code(kernels: usize, arithmetic: usize) -> Vec<Instr> {
        let unary = Instr::Unary { op: Op::Exp, dst: Reg(1), a: Reg(0) };
        let binary = Instr::Binary { op: Op::Mul, dst: Reg(1), a: Arg::Reg(Reg(0)), b: Arg::Reg(Reg(0)) };
        std::iter::repeat_n(unary, kernels).chain(std::iter::repeat_n(binary, arithmetic)).collect()
    }

    /// A pass the calling thread takes whole in its first grab never wakes the pool, however
    /// costly; past that, the estimated saving decides, not the size alone.
    #[test]
    fn the_pool_is_woken_where_it_pays() {
        let heavy = code(40, 20);
        assert!(!worth_waking(&heavy, 2, GRAB_CHUNKS, GRAB_CHUNKS * 1024, GRAB_CHUNKS));
        assert!(!worth_waking(&heavy, 1, 1000, 1000 * 1024, GRAB_CHUNKS));
        assert!(worth_waking(&heavy, 2, GRAB_CHUNKS + 1, (GRAB_CHUNKS + 1) * 1024, GRAB_CHUNKS));
        let cheap = code(0, 4);
        assert!(!worth_waking(&cheap, 2, 64, 64 * 1024, GRAB_CHUNKS));
        assert!(worth_waking(&cheap, 2, 1024, 1024 * 1024, GRAB_CHUNKS));
        // W1's pass (2 kernels, 14 others) on 16 chunks: ~28 µs saved against 20.
        assert!(worth_waking(&code(2, 14), 2, 16, 16 * 1024, GRAB_CHUNKS));
        // W2's (5 kernels, 16 others) on 10,000 samples: helpers could take 2 of 10 chunks.
        assert!(!worth_waking(&code(5, 16), 2, 10, 10_000, GRAB_CHUNKS));
        assert!(worth_waking(&code(5, 16), 2, 16, 16 * 1024, GRAB_CHUNKS));
    }

    /// A helper that starts after the lease is closed does no work; one that holds it is
    /// waited for; a helper's panic reaches the caller.
    #[test]
    fn a_lease_waits_only_for_its_holders() {
        let lease = Arc::new(Lease::default());
        drop(Closing(&lease));
        let mut ran = false;
        lease.hold(|| ran = true);
        assert!(!ran);

        let lease = Arc::new(Lease::default());
        let done = Arc::new(AtomicBool::new(false));
        let (held, go) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let helper = {
            let (lease, done, held, go) = (lease.clone(), done.clone(), held.clone(), go.clone());
            std::thread::spawn(move || {
                lease.hold(|| {
                    held.store(true, Ordering::SeqCst);
                    while !go.load(Ordering::SeqCst) {
                        std::thread::yield_now();
                    }
                    done.store(true, Ordering::SeqCst);
                })
            })
        };
        while !held.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        // Released later, so the close below finds the helper holding the lease (a correct
        // close waits however long that takes; the delay only makes a wrong one visible).
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            go.store(true, Ordering::SeqCst);
        });
        drop(Closing(&lease));
        assert!(done.load(Ordering::SeqCst), "the caller returned while a helper held the lease");
        helper.join().expect("helper");
        release.join().expect("release");

        let lease = Lease::default();
        lease.hold(|| panic!("a helper's bug"));
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(Closing(&lease))));
        assert!(caught.is_err());
    }

    /// An 8-6-4 sigmoid network's loss and gradients (with respect to the weights, then the
    /// data's last column), with the scalar work the levels regroup: a mean, divisions, and a
    /// uniform function of the weights. Inputs: 8 columns of x, 4 of y, then the weights. Its first
    /// layer is large enough to run as matrix products; its second is not.
    fn network() -> (crate::Function, usize) {
        use crate::array::{matmul, vars};
        use crate::build::{add, exp, mean, mul, sigmoid, sub};
        let (x, y) = (vars("x", &[8]).unwrap(), vars("y", &[4]).unwrap());
        let (w1, b1, w2, b2) =
            (vars("W1", &[6, 8]).unwrap(), vars("b1", &[6]).unwrap(), vars("W2", &[4, 6]).unwrap(), vars("b2", &[4]).unwrap());
        let layer = |w: &[crate::Expr], b: &[crate::Expr], a: &[crate::Expr], n: usize, k: usize| -> Vec<crate::Expr> {
            matmul(w, a, n, k, 1).unwrap().iter().zip(b).map(|(z, b)| sigmoid(&add(z, b))).collect()
        };
        let out = layer(&w2, &b2, &layer(&w1, &b1, &x, 6, 8), 4, 6);
        let errors: Vec<crate::Expr> = out.iter().zip(&y).map(|(o, y)| sub(y, o)).collect();
        let squares = errors.iter().map(|e| mul(e, e)).reduce(|a, b| add(&a, &b)).unwrap();
        // A term of the weights alone: scalar code on every run (and a sum of it, a `Scale`).
        let loss = mean(&add(&squares, &mul(&exp(&b2[0]), &b1[1])));
        let params: Vec<crate::Expr> = [w1, b1, w2, b2].concat();
        let mut wrt = params.clone();
        wrt.push(x[7].clone());
        let grads = crate::grad::grad(&loss, &wrt).unwrap();
        let inputs: Vec<crate::Expr> = [x, y, params].concat();
        (crate::Function::new(&[vec![loss], grads].concat(), &inputs).unwrap(), 12)
    }

    /// A runner run again and again (an epoch's steps) keeps its plans and regrouped scalar
    /// code; every run equals a fresh call bit for bit, whether the data stays in one buffer
    /// with new values, moves, or is read through strides (a plan that cannot be kept).
    #[test]
    fn a_runner_run_again_equals_fresh_calls() {
        let (f, width) = network();
        let n_params = f.inputs().len() - width;
        let batch = 7;
        let shapes: Vec<Vec<usize>> = (0..f.inputs().len()).map(|k| if k < width { vec![batch] } else { Vec::new() }).collect();
        let call = f.prepare(&shapes).unwrap();
        assert!(call.tape().passes[0].chunk_code.iter().any(|i| matches!(i, Instr::MatVec(_))), "{}", call.tape());
        assert!(call.tape().passes[0].chunk_code.iter().any(|i| matches!(i, Instr::OuterSum(_))), "{}", call.tape());
        // New weights on every run, as after each step: a slot read before this run writes it
        // would still hold the last run's value.
        let weights = |round: usize| -> Vec<f64> { spread(n_params + round).iter().skip(round).map(|v| v.clamp(-3.0, 3.0)).collect() };
        let mut runner = Runner::new(&call);
        let sizes = call.output_sizes.clone();
        assert_eq!(sizes.last(), Some(&batch), "a gradient per sample is stored, not reduced");
        assert!(sizes[..sizes.len() - 1].iter().all(|&s| s == 1), "the loss and the weights' gradients are reduced");
        let run_with = |runner: Option<&mut Runner>, views: &[InputView], params: &[f64]| -> Vec<u64> {
            let mut values = vec![0.0; sizes.iter().sum()];
            let mut outs: Vec<&mut [f64]> = Vec::new();
            let mut rest = values.as_mut_slice();
            for &size in &sizes {
                let (out, tail) = rest.split_at_mut(size);
                outs.push(out);
                rest = tail;
            }
            let args = Args { views, singles: params };
            match runner {
                Some(r) => r.run(args, &mut outs, &mut || false, &|_| f64::NAN).unwrap(),
                None => run(&call, args, &mut outs, &mut || false, &|_| f64::NAN).unwrap(),
            }
            values.iter().map(|v| v.to_bits()).collect()
        };
        fn columns(data: &[f64], batch: usize) -> Vec<InputView<'_>> {
            data.chunks(batch).map(|c| InputView::contiguous(c, &[batch]).unwrap()).collect()
        }
        // Column-major data in one buffer, as an epoch gathers it.
        let mut buffer: Vec<f64> = (0..width * batch).map(|i| ((i * 37 % 23) as f64) / 23.0).collect();
        for round in 0..3 {
            for (i, v) in buffer.iter_mut().enumerate() {
                *v = (((i + round) * 37 % 29) as f64) / 29.0;
            }
            let (views, params) = (columns(&buffer, batch), weights(round));
            assert_eq!(run_with(Some(&mut runner), &views, &params), run_with(None, &views, &params), "round {round}");
        }
        assert!(runner.levels.is_some() && runner.plans[0].is_some(), "a runner run again keeps its levels and plan");
        // New values somewhere else.
        let moved: Vec<f64> = buffer.iter().map(|v| 1.0 - v).collect();
        let (views, params) = (columns(&moved, batch), weights(3));
        assert_eq!(run_with(Some(&mut runner), &views, &params), run_with(None, &views, &params));
        // Row-major (batch, width): every column strided, gathered, so no plan is kept.
        let rows: Vec<f64> = (0..batch * width).map(|i| moved[(i % width) * batch + i / width]).collect();
        let strided: Vec<InputView> = (0..width).map(|j| InputView::strided(&rows, j, &[batch], &[width as isize]).unwrap()).collect();
        let expected = run_with(None, &views, &params);
        assert_eq!(run_with(Some(&mut runner), &strided, &params), expected);
        assert!(runner.plans[0].is_none(), "a plan that gathers is not kept");
        assert_eq!(run_with(None, &strided, &params), expected);
        // And back to the first buffer.
        let (views, params) = (columns(&buffer, batch), weights(4));
        assert_eq!(run_with(Some(&mut runner), &views, &params), run_with(None, &views, &params));
        // The weights behind views of one value each, as a call from Python passes them.
        let params = weights(5);
        let mut all = columns(&buffer, batch);
        all.extend((0..n_params).map(|k| InputView::single(&params, k).unwrap()));
        assert_eq!(run_with(Some(&mut runner), &all, &[]), run_with(None, &views, &params));
    }
}
