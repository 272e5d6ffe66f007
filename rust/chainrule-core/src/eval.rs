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
use crate::pool;
use crate::shape::{for_each_offset, gather_rows, groups_of, keep_group_samples, padded, strides_for, InputView, Layout};
use crate::tape::{Affine, Arg, Instr, OutputSource, Reg, ScalarInstr, Source, Tape};

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

/// A call's shapes, resolved: the batch, each output's shape, and the tape to run.
pub struct Call {
    /// The broadcast shape of all arguments.
    pub batch: Vec<usize>,
    /// Each output's shape.
    pub output_shapes: Vec<Vec<usize>>,
    /// Whether each output is a reduction (a single value is then a `numpy.float64`).
    pub output_reduced: Vec<bool>,
    /// Each input's shape, padded to the batch's rank.
    pub(crate) inputs: Vec<Vec<usize>>,
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
    inputs: &[InputView],
    outputs: &mut [&mut [f64]],
    stop: &mut dyn FnMut() -> bool,
    empty_groups: &dyn Fn(usize) -> f64,
) -> Result<()> {
    let cancel = &AtomicBool::new(false);
    let mut watch = Watch { cancel, stop };
    check_sizes(call, inputs, outputs)?;
    let tape = &call.tape;
    let n = call.len();
    let n_chunks = n.div_ceil(tape.chunk);
    let mut slots = tape.slots.clone();
    // Per reduction, the pairwise sums of its blocks' partials, in block order.
    let mut block_sums: Vec<Vec<f64>> = vec![Vec::new(); tape.n_accs];
    let mut groups: Vec<Group> = (0..tape.n_groups).map(|_| Group::default()).collect();
    // Where each collected buffer is reduced: its group and the inputs it is grouped by.
    let mut grouping: Vec<Option<(usize, &[usize])>> = vec![None; tape.n_bufs];
    for instr in tape.passes.iter().flat_map(|p| &p.scalar_code) {
        if let ScalarInstr::ReduceGroups { group, buf, over } = instr {
            grouping[*buf as usize] = Some((*group as usize, &tape.overs[*over as usize]));
        }
    }
    // Outputs whose shape is not the batch's are stored per sample, then one sample per
    // group is kept: a rare path (a reduction over part of the dimensions).
    let partial_outputs: Vec<bool> = (0..outputs.len())
        .map(|o| tape.outputs[o] == OutputSource::Chunks && padded(&call.output_shapes[o], call.batch.len()) != call.batch)
        .collect();
    for pass in &tape.passes {
        for instr in &pass.scalar_code {
            run_scalar(instr, call, inputs, &mut slots, &block_sums, &mut groups);
        }
        if pass.chunk_code.is_empty() {
            continue;
        }
        let collects: Vec<usize> =
            pass.chunk_code.iter().filter_map(|i| if let Instr::Collect { buf, .. } = i { Some(*buf) } else { None }).collect();
        for &buf in &collects {
            let (group, over) = grouping[buf].ok_or_else(|| Error::Internal("a collected buffer is never reduced".into()))?;
            let shape = group_shape(call, over);
            groups[group] = Group { data: vec![0.0; shape.iter().product()], shape };
        }
        let stores: Vec<usize> = (0..outputs.len())
            .filter(|&o| partial_outputs[o] && pass.chunk_code.iter().any(|i| matches!(i, Instr::Store { out, .. } if *out == o)))
            .collect();
        let accs: Vec<usize> = pass
            .chunk_code
            .iter()
            .flat_map(|i| match i {
                Instr::Accumulate { acc, .. } => std::slice::from_ref(acc),
                Instr::OuterSum(o) => o.accs.as_slice(),
                _ => &[],
            })
            .copied()
            .collect();
        let block = match (collects.is_empty() && stores.is_empty(), accs.is_empty()) {
            (false, _) => GROUPING_BLOCK_CHUNKS,
            (true, false) => REDUCTION_BLOCK_CHUNKS,
            (true, true) => n_chunks.max(1),
        };
        let mut partials = vec![0.0; tape.n_accs * block.min(n_chunks)];
        let block_len = (block * tape.chunk).min(n);
        let mut bufs: Vec<Vec<f64>> =
            (0..tape.n_bufs).map(|b| if collects.contains(&b) { vec![0.0; block_len] } else { Vec::new() }).collect();
        let mut temps: Vec<Vec<f64>> =
            (0..outputs.len()).map(|o| if stores.contains(&o) { vec![0.0; block_len] } else { Vec::new() }).collect();
        for first in (0..n_chunks).step_by(block) {
            let chunks = first..(first + block).min(n_chunks);
            let start = first * tape.chunk;
            let end = (chunks.end * tape.chunk).min(n);
            let sources = Sources { call, inputs, groups: &groups };
            // Block buffers are addressed with the sample index, like the outputs: their
            // pointers are offset back by the block's start (never dereferenced outside it).
            let sinks = Sinks {
                partials: SyncPtr(partials.as_mut_ptr().wrapping_sub(first)),
                acc_stride: block.min(n_chunks),
                bufs: bufs.iter_mut().map(|b| SyncPtr(b.as_mut_ptr().wrapping_sub(start))).collect(),
                outs: outputs
                    .iter_mut()
                    .zip(temps.iter_mut())
                    .map(|(o, t)| SyncPtr(if t.is_empty() { o.as_mut_ptr() } else { t.as_mut_ptr().wrapping_sub(start) }))
                    .collect(),
            };
            run_chunks(&pass.chunk_code, pass.n_regs, tape.chunk, n, chunks.clone(), &slots, &sources, &sinks, &mut watch);
            if cancel.load(Ordering::Relaxed) {
                return Err(Error::Interrupted);
            }
            let stride = block.min(n_chunks);
            for &acc in &accs {
                block_sums[acc].push(pairwise(&partials[acc * stride..acc * stride + chunks.len()]));
            }
            for &buf in &collects {
                let (group, _) = grouping[buf].expect("checked above");
                let g = &mut groups[group];
                let strides = strides_for(&g.shape, &call.batch);
                for_each_offset(&call.batch, &strides, start..end, |i, off| g.data[off] += bufs[buf][i - start]);
            }
            for &o in &stores {
                let shape = padded(&call.output_shapes[o], call.batch.len());
                keep_group_samples(&temps[o], &call.batch, &shape, start..end, outputs[o]);
            }
        }
    }
    for (o, out) in outputs.iter_mut().enumerate() {
        match tape.outputs[o] {
            OutputSource::Slot(s) => out.fill(slots[s.0 as usize]),
            // No samples to take a group's value from: every group is empty.
            OutputSource::Chunks if n == 0 && partial_outputs[o] => out.fill(empty_groups(o)),
            OutputSource::Chunks => {}
        }
    }
    Ok(())
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

fn check_sizes(call: &Call, inputs: &[InputView], outputs: &[&mut [f64]]) -> Result<()> {
    let size = |s: &[usize]| s.iter().product::<usize>();
    let rank = call.batch.len();
    let inputs_ok = inputs.len() == call.inputs.len()
        && inputs.iter().zip(&call.inputs).all(|(v, s)| v.shape().len() <= rank && padded(v.shape(), rank) == *s);
    let outputs_ok = outputs.len() == call.output_shapes.len() && outputs.iter().zip(&call.output_shapes).all(|(d, s)| d.len() == size(s));
    if inputs_ok && outputs_ok {
        Ok(())
    } else {
        Err(Error::Internal("argument or output buffer sizes do not match the prepared shapes".into()))
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
fn run_scalar(instr: &ScalarInstr, call: &Call, inputs: &[InputView], slots: &mut [f64], block_sums: &[Vec<f64>], groups: &mut [Group]) {
    match instr {
        ScalarInstr::Input { dst, input } => slots[dst.0 as usize] = inputs[*input as usize].first(),
        ScalarInstr::Apply { op, dst, a, b } => slots[dst.0 as usize] = scalar_op(*op, slots[a.0 as usize], slots[b.0 as usize]),
        ScalarInstr::Scale { dst, a } => slots[dst.0 as usize] = times_count(slots[a.0 as usize], call.len()),
        ScalarInstr::Finish { dst, acc } => {
            slots[dst.0 as usize] = pairwise(&block_sums[*acc as usize]);
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
    let mut level: Vec<f64> = values.to_vec();
    while level.len() > 1 {
        level = level.chunks(2).map(|p| if let [a, b] = p { a + b } else { p[0] }).collect();
    }
    level.first().copied().unwrap_or(0.0)
}

/// A raw pointer that chunks write through; each chunk writes only its own disjoint range.
#[derive(Clone, Copy)]
struct SyncPtr(*mut f64);
// SAFETY: every use writes a range no other chunk writes, and the owner outlives the pass.
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}

struct Sources<'a> {
    call: &'a Call,
    inputs: &'a [InputView<'a>],
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
        Plan { loads, direct, skip }
    }
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

/// Runs `chunks` of a pass on the calling thread and, where [`worth_waking`] says so, the
/// pool's threads beside it: each takes the next `GRAB_CHUNKS` chunks from a shared counter until
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
    let plan = Plan::new(code, sources);
    // Registers as long as the longest chunk: a 32-sample call zeroed 7 x 1024-sample
    // registers (56 KiB) per pass before (W1 on 32 samples, minima under load: 3.1 -> 1.8 µs).
    let width = chunk.min(n).max(1);
    let mats = code
        .iter()
        .map(|i| match i {
            Instr::MatVec(m) => m.w.iter().map(|s| slots[s.0 as usize]).collect(),
            _ => Vec::new(),
        })
        .collect();
    let scratch_len = code
        .iter()
        .map(|i| match i {
            Instr::MatVec(m) => (m.x.len() + m.dst.len()) * width,
            Instr::OuterSum(o) => (o.rows.len() + o.cols.len()) * width + o.accs.len(),
            _ => 0,
        })
        .max()
        .unwrap_or(0);
    let ctx = Ctx { code, plan: &plan, mats, width, slots, sources, sinks };
    let next = AtomicUsize::new(chunks.start);
    let cancel = watch.cancel;
    // Grabs chunks until none are left or the call is cancelled; `stop` is asked after each grab.
    let grab = |stop: &mut dyn FnMut() -> bool| {
        let mut regs = vec![0.0f64; n_regs.max(1) * width];
        let mut view = vec![std::ptr::null(); n_regs.max(1)];
        let mut scratch = vec![0.0f64; scratch_len];
        loop {
            let from = next.fetch_add(GRAB_CHUNKS, Ordering::Relaxed);
            if from >= chunks.end {
                return;
            }
            for c in from..(from + GRAB_CHUNKS).min(chunks.end) {
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
    if !worth_waking(code, threads, chunks.len(), (chunks.len() * chunk).min(n)) {
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
/// hand-off's. A thread takes [`GRAB_CHUNKS`] at a time and the caller takes its first grab
/// before any helper wakes, so helpers can take at most the chunks beyond it (and at best
/// their share of all). Today's numbers (µs a call, one thread against two): `x * y + 1` on
/// 16,384 samples 5.5 against 19.0, on 65,536 20.9 against 17.9 (both stay on one thread:
/// 11.5 µs saved at most); W2 on 10,000 samples (10 chunks, 2 of them to share) 106 against
/// 177 under load (stays: 13 µs); W1 on 16,384 54.6 against 40.6, W2 145 against 78 (both
/// woken: 28 and 54 µs estimated savings).
fn worth_waking(code: &[Instr], threads: usize, chunks: usize, samples: usize) -> bool {
    if threads <= 1 || chunks <= GRAB_CHUNKS {
        return false;
    }
    let per_sample: f64 = code
        .iter()
        .map(|i| match i {
            Instr::Unary { .. } | Instr::SinCos { .. } | Instr::SigmoidSlope { .. } => KERNEL_NS,
            Instr::MatVec(m) => MULTIPLY_ADD_NS * (m.w.len() + m.x.len() + m.dst.len()) as f64,
            Instr::OuterSum(o) => MULTIPLY_ADD_NS * (o.accs.len() + o.rows.len() + o.cols.len()) as f64,
            _ => ARITHMETIC_NS,
        })
        .sum();
    let share = chunks as f64 * (1.0 - 1.0 / threads as f64);
    let offloaded = share.min((chunks - GRAB_CHUNKS) as f64);
    per_sample * offloaded * (samples as f64 / chunks as f64) > HAND_OFF_NS
}

/// What every chunk of a pass shares.
struct Ctx<'a> {
    code: &'a [Instr],
    plan: &'a Plan<'a>,
    /// Per instruction: a [`MatVec`]'s matrix, packed row-major from its slots (else empty).
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
                    Read::Gathered => view[dst.0 as usize],
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
                let (x, rest) = scratch.split_at_mut(k * len);
                let y = &mut rest[..n * len];
                for (j, r) in m.x.iter().enumerate() {
                    x[j * len..(j + 1) * len].copy_from_slice(read(view, *r));
                }
                let w = &ctx.mats[i];
                // SAFETY: `w` is n x k, `x` k x len and `y` n x len, all row-major and in bounds.
                unsafe {
                    matrixmultiply::dgemm(
                        n,
                        k,
                        len,
                        1.0,
                        w.as_ptr(),
                        k as isize,
                        1,
                        x.as_ptr(),
                        len as isize,
                        1,
                        0.0,
                        y.as_mut_ptr(),
                        len as isize,
                        1,
                    )
                };
                for (row, d) in m.dst.iter().enumerate() {
                    let t = unsafe { base.add(d.0 as usize * ctx.width) };
                    write(t).copy_from_slice(&y[row * len..(row + 1) * len]);
                    view[d.0 as usize] = t;
                }
            }
            Instr::OuterSum(o) => {
                let (nr, nc) = (o.rows.len(), o.cols.len());
                let (a, rest) = scratch.split_at_mut(nr * len);
                let (b, rest) = rest.split_at_mut(nc * len);
                let sums = &mut rest[..nr * nc];
                for (j, r) in o.rows.iter().enumerate() {
                    a[j * len..(j + 1) * len].copy_from_slice(read(view, *r));
                }
                for (j, r) in o.cols.iter().enumerate() {
                    b[j * len..(j + 1) * len].copy_from_slice(read(view, *r));
                }
                // Negating the product negates each sum exactly, as subtracting each product would.
                let sign = if o.neg { -1.0 } else { 1.0 };
                // SAFETY: `a` is nr x len, `b` nc x len (read as its len x nc transpose), `sums`
                // nr x nc, all in bounds.
                unsafe {
                    matrixmultiply::dgemm(
                        nr,
                        len,
                        nc,
                        sign,
                        a.as_ptr(),
                        len as isize,
                        1,
                        b.as_ptr(),
                        1,
                        len as isize,
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

/// A source as the batch reads it: an input through its view, a group array (C-contiguous, of
/// its padded shape) broadcast.
fn source<'a>(sources: &Sources<'a>, src: Source) -> Layout<'a> {
    let batch = &sources.call.batch;
    match src {
        Source::Input(k) => sources.inputs[k].layout(batch),
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
        assert!(!worth_waking(&heavy, 2, GRAB_CHUNKS, GRAB_CHUNKS * 1024));
        assert!(!worth_waking(&heavy, 1, 1000, 1000 * 1024));
        assert!(worth_waking(&heavy, 2, GRAB_CHUNKS + 1, (GRAB_CHUNKS + 1) * 1024));
        let cheap = code(0, 4);
        assert!(!worth_waking(&cheap, 2, 64, 64 * 1024));
        assert!(worth_waking(&cheap, 2, 1024, 1024 * 1024));
        // W1's pass (2 kernels, 14 others) on 16 chunks: ~28 µs saved against 20.
        assert!(worth_waking(&code(2, 14), 2, 16, 16 * 1024));
        // W2's (5 kernels, 16 others) on 10,000 samples: helpers could take 2 of 10 chunks.
        assert!(!worth_waking(&code(5, 16), 2, 10, 10_000));
        assert!(worth_waking(&code(5, 16), 2, 16, 16 * 1024));
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
}
