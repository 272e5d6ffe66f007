//! The compiled form: a tape of instructions over chunk registers, split into passes.
//!
//! A pass first runs its *scalar code* once (values that are the same for every sample:
//! constants, inputs bound to scalars, finished reductions and what is computed from them),
//! then runs its *chunk code* over the batch, chunk by chunk: every instruction runs over one
//! chunk before the next chunk starts, so no full-size temporaries exist. A reduction whose
//! result later per-sample work needs ends a pass; its value is ready in the next pass's scalar
//! code. Registers (`r3`) hold one chunk each and are reused once their value is dead; slots
//! (`s7`) hold one f64 each.

use std::fmt;

use crate::ops::Op;

/// Samples per chunk. 1024 f64 (8 KiB) per register keeps a tape's working set of a few
/// dozen registers inside L2 while amortising per-instruction dispatch. Measured with fused
/// tapes (thread CPU time per call, N = 1e6, one thread, medians; W1 7 registers, W2 12):
/// 256: W1 13.3 ms, W2 26.6 ms; 512: 10.9, 23.5; 1024: 10.9, 23.3; 2048: 12.7, 25.7.
/// 512 and 1024 tie; 1024 halves the dispatch count.
pub const CHUNK: usize = 1024;

/// Register memory per thread is capped: a tape that keeps many values alive (reverse mode
/// through a deep chain keeps every forward value until the backward sweep reaches it) gets
/// shorter chunks instead of gigabytes of registers.
const REGISTER_BUDGET_BYTES: usize = 32 << 20;

/// Samples per chunk for a tape with `n_regs` registers: [`CHUNK`], or fewer when the
/// registers would pass the budget. Depends only on the tape, never on the thread count.
pub fn chunk_len(n_regs: usize) -> usize {
    let fit = REGISTER_BUDGET_BYTES / (8 * n_regs.max(1));
    match fit {
        f if f >= CHUNK => CHUNK,
        f if f >= 8 => f / 8 * 8,
        f => f.max(1),
    }
}

/// A chunk register; prints as `r3`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reg(pub u32);

/// A scalar slot; prints as `s7`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Slot(pub u32);

impl fmt::Debug for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0)
    }
}

/// An operand of a chunk instruction: a register, or a scalar slot used as is (never
/// broadcast into a chunk).
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Arg {
    /// A chunk register.
    Reg(Reg),
    /// A scalar slot.
    Slot(Slot),
}

/// Where a `load` reads from.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Source {
    /// A function input (by position), broadcast to the batch.
    Input(usize),
    /// The result array of a grouped reduction (see [`ScalarInstr::ReduceGroups`]).
    Group(usize),
}

/// An instruction of the chunk code (operand roles are in the variant docs and listings).
#[allow(missing_docs)]
#[derive(Clone, PartialEq, Debug)]
pub enum Instr {
    /// Gathers a chunk of a source, broadcasting as NumPy would.
    Load { dst: Reg, src: Source },
    /// `dst = op(a)` elementwise.
    Unary { op: Op, dst: Reg, a: Reg },
    /// `dst = a op b` elementwise; at least one operand is a register.
    Binary { op: Op, dst: Reg, a: Arg, b: Arg },
    /// `sin = sin(a)` and `cos = cos(a)` from one shared argument reduction (bit for bit the
    /// values of the two unary instructions it replaces).
    SinCos { sin: Reg, cos: Reg, a: Reg },
    /// `sig = sigmoid(a)` and `slope = sig * (1 - sig)` in one loop (bit for bit the values of
    /// the sigmoid and the two arithmetic ops it replaces); with `affine`, the sigmoid's argument
    /// is not `a` but `(w * a) + b` (or `- b`), computed in the same loop and rounded as the two
    /// arithmetic ops it replaces.
    SigmoidSlope { sig: Reg, slope: Reg, a: Reg, affine: Option<Affine> },
    /// Two arithmetic ops in one loop over the chunk, each result rounded as if unfused:
    /// `dst = (a inner b) outer c`, or `c outer (a inner b)` when `swap`, or
    /// `-(a inner b)` when `outer` is `Neg` (then `c` is `None`).
    Fused { dst: Reg, inner: Op, a: Arg, b: Arg, outer: Op, c: Option<Arg>, swap: bool },
    /// Adds the chunk's values `src` into this chunk's partial sum of accumulator `acc`; with
    /// `times`, the products `src * times` instead (each rounded as the multiply it replaces);
    /// with `neg`, subtracts them (bit for bit the partial of the negated values). The
    /// summation order is that of a plain sum, so folding a product or a negation into it
    /// changes no bit.
    Accumulate { src: Reg, times: Option<Arg>, neg: bool, acc: usize },
    /// A matrix of uniform values times per-sample vectors, one matrix product per chunk (see
    /// [`MatVec`]).
    MatVec(Box<MatVec>),
    /// The batch sums of all products of two sets of per-sample values, one matrix product per
    /// chunk (see [`OuterSum`]).
    OuterSum(Box<OuterSum>),
    /// Writes the chunk into full-size buffer `buf` (for reductions over some dimensions only).
    Collect { src: Reg, buf: usize },
    /// Writes the chunk into output `out`.
    Store { src: Reg, out: usize },
}

/// `dst[i] = w[i, 0] * x[0] + ... + w[i, k-1] * x[k-1]` for every sample, with `w` an
/// `n x k` matrix of uniform values (row-major) and `x` `k` per-sample registers: a dense
/// layer's `W @ x`, or the `W.T @ delta` of its gradient. The sums are a matrix product's
/// (fused multiply-adds, in blocks), not the left-to-right chain the graph spells, so values
/// may differ from it in the last bits (README, conventions).
#[derive(Clone, PartialEq, Debug)]
pub struct MatVec {
    /// One register per row of `w`.
    pub dst: Vec<Reg>,
    /// The matrix, row-major.
    pub w: Vec<Slot>,
    /// The vector.
    pub x: Vec<Reg>,
}

/// This chunk's partial sum of accumulator `accs[r * cols.len() + c]` is the sum over the
/// chunk's samples of `rows[r] * cols[c]` (negated when `neg`): the batch sums of outer
/// products that a dense layer's weight gradient is, as one matrix product per chunk.
#[derive(Clone, PartialEq, Debug)]
pub struct OuterSum {
    /// The first factors.
    pub rows: Vec<Reg>,
    /// The second factors.
    pub cols: Vec<Reg>,
    /// The accumulators, row-major.
    pub accs: Vec<usize>,
    /// Whether the products are subtracted.
    pub neg: bool,
}

/// The affine argument `(w * a) + b`, or `(w * a) - b` when `sub`, of a fused sigmoid.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct Affine {
    /// The factor.
    pub w: Slot,
    /// The term added (or subtracted).
    pub b: Slot,
    /// Whether `b` is subtracted.
    pub sub: bool,
}

/// An instruction of the scalar code (operand roles are in the variant docs and listings).
#[allow(missing_docs)]
#[derive(Clone, PartialEq, Debug)]
///
/// Sixteen bytes each (indices are `u32`, an `over=` set sits in [`Tape::overs`]): a graph
/// of scalar inputs becomes one instruction per node, and at 48 bytes the 150k of W5
/// (n = 10,000) were 7 MB of fresh memory to fault in on the first call.
pub enum ScalarInstr {
    /// `dst = input`, an input bound to a single value.
    Input { dst: Slot, input: u32 },
    /// `dst = op(a, b)` on single values (the op table's reference `eval`).
    Apply { op: Op, dst: Slot, a: Slot, b: Slot },
    /// `dst = a * batch size`: the sum of a value that is the same for every sample.
    Scale { dst: Slot, a: Slot },
    /// `dst = ` the accumulator's per-chunk partial sums, combined pairwise in chunk order.
    Finish { dst: Slot, acc: u32 },
    /// Reduces full-size buffer `buf` over the dimensions along which all of the inputs in
    /// `Tape::overs[over]` are broadcast, into group array `group`.
    ReduceGroups { group: u32, buf: u32, over: u32 },
    /// Fills group array `group` with `a` times the number of samples per group.
    ScaleGroups { group: u32, a: Slot, over: u32 },
}

/// One pass over the data.
#[derive(Clone, Default, Debug)]
pub struct Pass {
    /// Runs once, before the chunks.
    pub scalar_code: Vec<ScalarInstr>,
    /// Runs over every chunk.
    pub chunk_code: Vec<Instr>,
    /// Registers the chunk code needs.
    pub n_regs: usize,
}

/// How an output is produced.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum OutputSource {
    /// A single value, filled out to the output's shape.
    Slot(Slot),
    /// Stored chunk by chunk during a pass.
    Chunks,
}

/// A compiled tape, specialised to which inputs are bound to single values.
#[derive(Clone, Debug)]
pub struct Tape {
    /// The passes, in order.
    pub passes: Vec<Pass>,
    /// Initial slot values (constants), indexed by slot.
    pub slots: Vec<f64>,
    /// Number of accumulators (uniform reductions of per-sample values).
    pub n_accs: usize,
    /// Number of full-size collect buffers.
    pub n_bufs: usize,
    /// Number of group arrays.
    pub n_groups: usize,
    /// The input sets that grouped reductions group by (see [`ScalarInstr::ReduceGroups`]).
    pub overs: Vec<Vec<usize>>,
    /// Per output, where its value comes from.
    pub outputs: Vec<OutputSource>,
    /// Samples per chunk (see [`chunk_len`]).
    pub chunk: usize,
}

impl fmt::Display for Tape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.slots.iter().enumerate() {
            if *c != 0.0 || c.is_sign_negative() {
                writeln!(f, "s{i} = {}", crate::print::number(*c))?;
            }
        }
        for (p, pass) in self.passes.iter().enumerate() {
            writeln!(f, "pass {p}: {} registers of {} samples", pass.n_regs, self.chunk)?;
            for i in &pass.scalar_code {
                writeln!(f, "  {}", scalar_listing(i, &self.overs))?;
            }
            if !pass.chunk_code.is_empty() {
                writeln!(f, "  for each chunk:")?;
            }
            for i in &pass.chunk_code {
                writeln!(f, "    {}", listing(i))?;
            }
        }
        for (i, o) in self.outputs.iter().enumerate() {
            match o {
                OutputSource::Slot(s) => writeln!(f, "out{i} = {s:?}")?,
                OutputSource::Chunks => writeln!(f, "out{i} = stored chunks")?,
            }
        }
        Ok(())
    }
}

fn arg(a: &Arg) -> String {
    match a {
        Arg::Reg(r) => format!("{r:?}"),
        Arg::Slot(s) => format!("{s:?}"),
    }
}

fn listing(i: &Instr) -> String {
    match i {
        Instr::Load { dst, src: Source::Input(k) } => format!("{dst:?} = load in{k}"),
        Instr::Load { dst, src: Source::Group(k) } => format!("{dst:?} = load group{k}"),
        Instr::Unary { op, dst, a } => format!("{dst:?} = {}({a:?})", op.name()),
        Instr::Binary { op, dst, a, b } => format!("{dst:?} = {} {} {}", arg(a), op.name(), arg(b)),
        Instr::SinCos { sin, cos, a } => format!("{sin:?}, {cos:?} = sin_cos({a:?})"),
        Instr::SigmoidSlope { sig, slope, a, affine: None } => format!("{sig:?}, {slope:?} = sigmoid_slope({a:?})"),
        Instr::SigmoidSlope { sig, slope, a, affine: Some(Affine { w, b, sub }) } => {
            let sign = if *sub { "-" } else { "+" };
            format!("{sig:?}, {slope:?} = sigmoid_slope(({w:?} * {a:?}) {sign} {b:?})")
        }
        Instr::Fused { dst, inner, a, b, outer, c, swap } => {
            let inner = format!("({} {} {})", arg(a), inner.name(), arg(b));
            match (c, swap) {
                (None, _) => format!("{dst:?} = {}{inner}", outer.name()),
                (Some(c), false) => format!("{dst:?} = {inner} {} {}", outer.name(), arg(c)),
                (Some(c), true) => format!("{dst:?} = {} {} {inner}", arg(c), outer.name()),
            }
        }
        Instr::Accumulate { src, times, neg, acc } => {
            let sign = if *neg { "-" } else { "+" };
            match times {
                None => format!("acc{acc} {sign}= sum({src:?})"),
                Some(b) => format!("acc{acc} {sign}= sum({src:?} * {})", arg(b)),
            }
        }
        Instr::MatVec(m) => format!("{:?} = matmul({}x{} [{:?} ..], {:?})", m.dst, m.dst.len(), m.x.len(), m.w[0], m.x),
        Instr::OuterSum(o) => {
            let sign = if o.neg { "-" } else { "+" };
            format!("acc{:?} {sign}= sum(outer({:?}, {:?}))", o.accs, o.rows, o.cols)
        }
        Instr::Collect { src, buf } => format!("buf{buf} <- {src:?}"),
        Instr::Store { src, out } => format!("out{out} <- {src:?}"),
    }
}

fn scalar_listing(i: &ScalarInstr, overs: &[Vec<usize>]) -> String {
    match i {
        ScalarInstr::Input { dst, input } => format!("{dst:?} = in{input}"),
        ScalarInstr::Apply { op, dst, a, b } if op.arity() == 1 => format!("{dst:?} = {}({a:?})", op.name()),
        ScalarInstr::Apply { op, dst, a, b } => format!("{dst:?} = {a:?} {} {b:?}", op.name()),
        ScalarInstr::Scale { dst, a } => format!("{dst:?} = {a:?} * count"),
        ScalarInstr::Finish { dst, acc } => format!("{dst:?} = total(acc{acc})"),
        ScalarInstr::ReduceGroups { group, buf, over } => format!("group{group} = sum(buf{buf}, over=in{:?})", overs[*over as usize]),
        ScalarInstr::ScaleGroups { group, a, over } => format!("group{group} = {a:?} * count(over=in{:?})", overs[*over as usize]),
    }
}

#[cfg(test)]
mod tests {
    /// The size the scalar code's memory and the latency path's cache footprint depend on.
    #[test]
    fn scalar_instructions_stay_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<super::ScalarInstr>(), 16);
    }
}
