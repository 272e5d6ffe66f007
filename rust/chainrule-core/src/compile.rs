//! From an analysed graph to a tape. [`Analysis::new`] validates and analyses a function's graph
//! once; [`compile`] specialises a tape to which inputs a call binds to single values (those are
//! computed once per call in scalar code instead of being spread over chunks).
//!
//! Scheduling: a node's *stage* is the pass in which its value is first available. Leaves are
//! stage 0; a pointwise op takes the latest stage of its operands; a reduction of a per-sample
//! value is ready one stage after its operand. Pass `p` runs, in scalar code, every uniform
//! node of stage `p`, then, per chunk, the per-sample nodes that its outputs and the operands
//! of the next stage's reductions need. Per-sample values needed again in a later pass are
//! recomputed rather than kept, so memory stays O(registers x chunk).

use rustc_hash::{FxHashMap, FxHashSet};

use crate::error::{Error, Result};
use crate::expr::{intern, Expr, Kind, Tag};
use crate::graph::{Graph, NodeId};
use crate::ops::Op;
use crate::tape::{Affine, Arg, Instr, MatVec, OuterSum, OutputSource, Pass, Reg, ScalarInstr, Slot, Source, Tape};

/// The static shape class of a node: what shape its value has once argument shapes are known.
#[derive(Clone, Debug, PartialEq)]
pub enum ShapeClass {
    /// Depends on no input: filled out to the batch shape when output.
    Neutral,
    /// Has the shape of the broadcast of these inputs' shapes (empty: a single value).
    Reduced(Vec<usize>),
    /// One value per sample: the batch shape.
    PerSample,
}

impl ShapeClass {
    fn join(&self, other: &ShapeClass) -> ShapeClass {
        match (self, other) {
            (ShapeClass::PerSample, _) | (_, ShapeClass::PerSample) => ShapeClass::PerSample,
            (ShapeClass::Neutral, c) | (c, ShapeClass::Neutral) => c.clone(),
            (ShapeClass::Reduced(a), ShapeClass::Reduced(b)) => {
                let mut v: Vec<usize> = a.iter().chain(b).copied().collect();
                v.sort_unstable();
                v.dedup();
                ShapeClass::Reduced(v)
            }
        }
    }
}

/// What compiling needs to know of a function's graph, found once: each node's input position,
/// the reductions and the inputs they sum over, and each output's shape class.
pub(crate) struct Analysis {
    /// The outputs' graph with constant powers lowered (see [`lower_powers`]).
    pub(crate) graph: Graph,
    /// The outputs as given, before lowering.
    pub(crate) outputs: Vec<Expr>,
    /// The reduction nodes, in graph order.
    pub(crate) sums: Vec<NodeId>,
    pub(crate) inputs: Vec<Expr>,
    /// Per node: its input position if it is a variable (dense, for the per-node hot paths;
    /// `u32`, as every per-node array is fresh memory on each compile).
    pub(crate) input_of: Vec<u32>,
    over: FxHashMap<NodeId, Vec<usize>>,
    /// Per output.
    pub(crate) classes: Vec<ShapeClass>,
}

impl Analysis {
    /// Analyses `outputs` as a function of the variables `inputs`, in that order.
    pub(crate) fn new(outputs: &[Expr], inputs: &[Expr]) -> Result<Analysis> {
        let graph = lower_powers(Graph::new(outputs));
        let mut position: FxHashMap<&str, usize> = FxHashMap::with_capacity_and_hasher(inputs.len(), Default::default());
        for (i, v) in inputs.iter().enumerate() {
            let name = v.as_var().ok_or_else(|| Error::InvalidName(format!("{v:?}")))?;
            if position.insert(name, i).is_some() {
                return Err(Error::DuplicateInput(name.to_string()));
            }
        }
        let unknown = |name: &str| Error::UnknownVariable {
            name: name.to_string(),
            inputs: inputs.iter().filter_map(Expr::as_var).collect::<Vec<_>>().join(", "),
        };
        let mut input_of = vec![u32::MAX; graph.len()];
        let mut over = FxHashMap::default();
        // Per node, an index into `distinct` (0 Neutral, 1 PerSample): a graph has few distinct
        // classes, and a `ShapeClass` per node (32 bytes, 4.8 MB for W5's 150k nodes) was fresh
        // memory to fault in on every compile. W5 Function::new in a fresh process (n = 10,000,
        // thread CPU, medians of 9 interleaved runs): 44.4 -> 39.8 ms.
        let mut distinct: Vec<ShapeClass> = vec![ShapeClass::Neutral, ShapeClass::PerSample];
        let mut reduced: FxHashMap<Vec<usize>, u32> = FxHashMap::default();
        fn class_id(class: ShapeClass, distinct: &mut Vec<ShapeClass>, reduced: &mut FxHashMap<Vec<usize>, u32>) -> u32 {
            match class {
                ShapeClass::Neutral => 0,
                ShapeClass::PerSample => 1,
                ShapeClass::Reduced(set) => *reduced.entry(set.clone()).or_insert_with(|| {
                    distinct.push(ShapeClass::Reduced(set));
                    distinct.len() as u32 - 1
                }),
            }
        }
        let mut classes: Vec<u32> = Vec::with_capacity(graph.len());
        let mut sums = Vec::new();
        for id in graph.ids() {
            // Ops, most of the nodes, are known from the graph's tags; only leaves and sums
            // are read for their payload.
            let class = match graph.tag(id) {
                Tag::Const => 0,
                Tag::Var => {
                    let name = graph.node(id).as_var().expect("tagged a variable");
                    input_of[id.index()] = *position.get(name).ok_or_else(|| unknown(name))? as u32;
                    1
                }
                Tag::Sum => {
                    let Kind::Sum(names) = graph.node(id).kind() else { unreachable!("tagged a sum") };
                    sums.push(id);
                    let idx = names.iter().map(|n| position.get(&**n).copied().ok_or_else(|| unknown(n))).collect::<Result<Vec<_>>>()?;
                    over.insert(id, idx.clone());
                    class_id(ShapeClass::Reduced(idx), &mut distinct, &mut reduced)
                }
                Tag::Apply(Op::PerSample) => 1,
                Tag::Apply(_) => graph.args(id).iter().flatten().fold(0, |c, a| match (c, classes[a.index()]) {
                    (1, _) | (_, 1) => 1,
                    (0, d) | (d, 0) => d,
                    (c, d) => {
                        let joined = distinct[c as usize].join(&distinct[d as usize]);
                        class_id(joined, &mut distinct, &mut reduced)
                    }
                }),
            };
            classes.push(class);
        }
        let classes = graph.roots.iter().map(|r| distinct[classes[r.index()] as usize].clone()).collect();
        Ok(Analysis { graph, outputs: outputs.to_vec(), sums, inputs: inputs.to_vec(), input_of, over, classes })
    }

    /// The grouped reductions of the graph with the inputs they group by.
    pub(crate) fn grouped_sums(&self) -> impl Iterator<Item = (NodeId, &[usize])> {
        let mut sums: Vec<(NodeId, &[usize])> =
            self.over.iter().filter(|(_, o)| !o.is_empty()).map(|(id, o)| (*id, o.as_slice())).collect();
        sums.sort_unstable_by_key(|(id, _)| *id);
        sums.into_iter()
    }

    /// The inputs summed over by each reduction node that is a grouped reduction.
    pub(crate) fn over_of(&self, id: NodeId) -> &[usize] {
        &self.over[&id]
    }
}

/// The largest `|n|` for which `x ** n` (and `x ** (n + 0.5)`) becomes products: x ** 64 is six
/// squarings, and the measured error of the chain grows with the exponent (README, conventions).
const MAX_LADDER: f64 = 64.0;

/// Whether a constant exponent is lowered: an integer or half-integer of magnitude at most
/// [`MAX_LADDER`], except 0.5, whose kernel is the square root already, and 0 (the
/// simplifier's; it keeps `sum(x) ** 0`, which is one value, not a constant for every sample).
fn is_lowered(c: f64) -> bool {
    c.abs() <= MAX_LADDER + 0.5 && (2.0 * c).fract() == 0.0 && c != 0.5 && c != 0.0
}

/// `graph` with every `x ** c` of a lowered constant `c` (see [`is_lowered`]) replaced by
/// products: `x ** n` for integer `n` multiplies the powers `x ** 2^j` of n's set bits, lowest
/// first, from the ladder `x2 = x * x`, `x4 = x2 * x2`, ...; hash-consing makes every power of
/// the same `x` in the graph share one ladder (x ** 12, x ** 6 and x ** 11 take x2, x4, x8 and
/// four more products). A negative exponent is one division `1 / x ** |c|`; a half-integer one
/// is `abs(x) ** n * x ** 0.5` (`x ** 0.5` is the pow kernel's square root, which keeps C's
/// `+0` at `-0` and `+inf` at `-inf`; `abs` keeps the product's sign there, and a negative
/// `x` gives NaN through the root either way). The nodes are interned as they are, not through
/// the simplifier, which may spell products back as powers.
///
/// The same pass spells `-1 / x` as `-(1 / x)`, the same bits (IEEE division is exact in its
/// sign; only a NaN's sign bit may differ), so that a graph holding both shares one division:
/// W9's energy `-1 / q` and its gradient's `1 / q` (also `x ** -0.5` lowered) took two of its
/// three divisions per sample, and the divider is most of its time. Where `1 / x` is not
/// shared, the fuser makes `-(1 / x)` one instruction again.
///
/// Done here rather than by the builder so that the graph a person prints keeps `x ** 12`. A
/// graph without such nodes is returned as it is, after one scan of its tags; one with them is
/// rebuilt above the first one, one forward pass (never recursive).
fn lower_powers(graph: Graph) -> Graph {
    let exponent = |id: NodeId| -> Option<f64> {
        let (Tag::Apply(Op::Pow), [_, Some(b)]) = (graph.tag(id), graph.args(id)) else { return None };
        (graph.tag(b) == Tag::Const).then(|| graph.node(b).as_const()).flatten().filter(|c| is_lowered(*c))
    };
    let minus_reciprocal = |id: NodeId| -> bool {
        let (Tag::Apply(Op::Div), [Some(a), Some(b)]) = (graph.tag(id), graph.args(id)) else { return false };
        graph.tag(a) == Tag::Const && graph.node(a).as_const() == Some(-1.0) && graph.tag(b) != Tag::Const
    };
    if !graph.ids().any(|id| exponent(id).is_some() || minus_reciprocal(id)) {
        return graph;
    }
    let mut rebuilt: Vec<Expr> = Vec::with_capacity(graph.len());
    for id in graph.ids() {
        let node = graph.node(id);
        let args = graph.args(id).map(|a| a.map(|a| rebuilt[a.index()].clone()));
        let same = graph.args(id).iter().zip(&args).all(|(a, b)| a.map(|a| graph.node(a)) == b.as_ref());
        let new = match exponent(id) {
            Some(c) => power(args[0].as_ref().expect("pow has a base"), c),
            None if minus_reciprocal(id) => {
                let reciprocal = intern(Kind::Apply(Op::Div), [Some(crate::build::constant(1.0)), args[1].clone()]);
                intern(Kind::Apply(Op::Neg), [Some(reciprocal), None])
            }
            None if same => node.clone(),
            None => intern(node.kind().clone(), args),
        };
        rebuilt.push(new);
    }
    let roots: Vec<Expr> = graph.roots.iter().map(|r| rebuilt[r.index()].clone()).collect();
    Graph::new(&roots)
}

/// `x ** c` for a lowered constant `c`, as products, a square root and a division (see
/// [`lower_powers`]).
fn power(x: &Expr, c: f64) -> Expr {
    let apply = |op: Op, a: &Expr, b: Option<&Expr>| intern(Kind::Apply(op), [Some(a.clone()), b.cloned()]);
    let half = c.fract() != 0.0;
    let mut n = c.abs().trunc() as u32;
    let mut product: Option<Expr> = None;
    let mut square = if half && n > 0 { apply(Op::Abs, x, None) } else { x.clone() };
    while n > 0 {
        if n & 1 == 1 {
            product = Some(match product {
                None => square.clone(),
                Some(p) => apply(Op::Mul, &p, Some(&square)),
            });
        }
        n >>= 1;
        if n > 0 {
            square = apply(Op::Mul, &square, Some(&square));
        }
    }
    let root = || apply(Op::Pow, x, Some(&crate::build::constant(0.5)));
    let magnitude = match (product, half) {
        (None, false) => return crate::build::constant(1.0),
        (None, true) => root(),
        (Some(p), false) => p,
        (Some(p), true) => apply(Op::Mul, &p, Some(&root())),
    };
    if c < 0.0 {
        apply(Op::Div, &crate::build::constant(1.0), Some(&magnitude))
    } else {
        magnitude
    }
}

/// The tape of `analysis` for calls whose inputs are single values exactly where `uniform` is
/// true.
pub(crate) fn compile(analysis: &Analysis, uniform: &[bool]) -> Tape {
    Builder::new(analysis, uniform).build()
}

/// Builds one specialised tape.
struct Builder<'a> {
    f: &'a Analysis,
    uniform: Vec<bool>,
    /// Per node (u32: at most one pass per nested reduction, and this is fresh memory).
    stage: Vec<u32>,
    slot_of: Vec<Slot>,
    slots: Vec<f64>,
    acc_of: FxHashMap<NodeId, usize>,
    buf_of: FxHashMap<NodeId, usize>,
    group_of: FxHashMap<NodeId, usize>,
    overs: Vec<Vec<usize>>,
}

impl<'a> Builder<'a> {
    fn new(f: &'a Analysis, input_uniform: &[bool]) -> Builder<'a> {
        let g = &f.graph;
        let mut uniform = vec![false; g.len()];
        let mut stage = vec![0u32; g.len()];
        for id in g.ids() {
            let i = id.index();
            // The operands as a fixed pair, not a Vec: one allocation per node was measurable.
            let args = g.args(id);
            // The graph's tags (dense, a byte per node), not the nodes: each node is a likely
            // cache miss, and reading a dense kind array instead took W5's first call from 31.5
            // to 17.1 ms when the builder kept its own (16 bytes per node, now gone).
            (uniform[i], stage[i]) = match g.tag(id) {
                Tag::Const => (true, 0),
                Tag::Var => (input_uniform[f.input_of[i] as usize], 0),
                Tag::Apply(_) => {
                    (args.iter().flatten().all(|a| uniform[a.index()]), args.iter().flatten().map(|a| stage[a.index()]).max().unwrap_or(0))
                }
                Tag::Sum => {
                    let operand = args[0].expect("sum operand").index();
                    let groups_uniform = f.over_of(id).iter().all(|k| input_uniform[*k]);
                    (groups_uniform, stage[operand] + u32::from(!uniform[operand]))
                }
            };
        }
        Builder {
            f,
            uniform,
            stage,
            slot_of: vec![Slot(u32::MAX); f.graph.len()],
            slots: Vec::new(),
            acc_of: FxHashMap::default(),
            buf_of: FxHashMap::default(),
            group_of: FxHashMap::default(),
            overs: Vec::new(),
        }
    }

    fn build(mut self) -> Tape {
        let g = &self.f.graph;
        let n_passes = g.ids().map(|id| self.stage[id.index()] as usize).max().unwrap_or(0) + 1;
        let mut passes: Vec<Pass> = vec![Pass::default(); n_passes];
        // Sized up front: growing by doubling copied the whole scalar code and slots of a
        // large all-scalar tape about twice over.
        let mut sizes = vec![0usize; n_passes];
        for id in g.ids().filter(|id| self.is_scalar(*id)) {
            sizes[self.stage[id.index()] as usize] += 1;
        }
        for (pass, size) in passes.iter_mut().zip(&sizes) {
            pass.scalar_code.reserve_exact(*size);
        }
        self.slots.reserve_exact(sizes.iter().sum());
        for id in g.ids() {
            if self.is_scalar(id) {
                let instr = self.scalar_instr(id);
                passes[self.stage[id.index()] as usize].scalar_code.extend(instr);
            }
        }
        let outputs = g
            .roots
            .iter()
            .map(|r| if self.uniform[r.index()] { OutputSource::Slot(self.slot_of[r.index()]) } else { OutputSource::Chunks })
            .collect();
        for (p, pass) in passes.iter_mut().enumerate() {
            (pass.chunk_code, pass.n_regs) = self.chunk_code(p);
        }
        let chunk = crate::tape::chunk_len(passes.iter().map(|p| p.n_regs).max().unwrap_or(0));
        Tape {
            chunk,
            passes,
            slots: self.slots,
            n_accs: self.acc_of.len(),
            n_bufs: self.buf_of.len(),
            n_groups: self.group_of.len(),
            overs: self.overs,
            outputs,
        }
    }

    fn new_slot(&mut self, id: NodeId, value: f64) -> Slot {
        let s = Slot(self.slots.len() as u32);
        self.slots.push(value);
        self.slot_of[id.index()] = s;
        s
    }

    /// Whether a node has scalar code: a uniform node, or the finishing step of a reduction.
    fn is_scalar(&self, id: NodeId) -> bool {
        self.uniform[id.index()] || self.f.graph.tag(id) == Tag::Sum
    }

    /// Scalar code for a uniform node, or the finishing step of a reduction.
    fn scalar_instr(&mut self, id: NodeId) -> Option<ScalarInstr> {
        let args = self.f.graph.args(id);
        match self.f.graph.tag(id) {
            Tag::Const => {
                let c = self.f.graph.node(id).as_const().expect("tagged a constant");
                self.new_slot(id, c);
                None
            }
            Tag::Var => Some(ScalarInstr::Input { dst: self.new_slot(id, 0.0), input: self.f.input_of[id.index()] }),
            Tag::Apply(op) => {
                let a = self.slot_of[args[0].expect("operand").index()];
                let b = args[1].map_or(a, |b| self.slot_of[b.index()]);
                Some(ScalarInstr::Apply { op, dst: self.new_slot(id, 0.0), a, b })
            }
            Tag::Sum => {
                let operand = args[0].expect("sum operand");
                let operand_uniform = self.uniform[operand.index()];
                if self.uniform[id.index()] {
                    let dst = self.new_slot(id, 0.0);
                    Some(if operand_uniform {
                        ScalarInstr::Scale { dst, a: self.slot_of[operand.index()] }
                    } else {
                        let acc = self.acc_of.len();
                        self.acc_of.insert(id, acc);
                        ScalarInstr::Finish { dst, acc: acc as u32 }
                    })
                } else {
                    let group = self.group_of.len();
                    self.group_of.insert(id, group);
                    self.overs.push(self.f.over_of(id).to_vec());
                    let over = self.overs.len() as u32 - 1;
                    Some(if operand_uniform {
                        ScalarInstr::ScaleGroups { group: group as u32, a: self.slot_of[operand.index()], over }
                    } else {
                        let buf = self.buf_of.len();
                        self.buf_of.insert(id, buf);
                        ScalarInstr::ReduceGroups { group: group as u32, buf: buf as u32, over }
                    })
                }
            }
        }
    }

    /// The chunk code of pass `p` and the number of registers it uses.
    fn chunk_code(&self, p: usize) -> (Vec<Instr>, usize) {
        let g = &self.f.graph;
        // Roots: what this pass must deliver, and how.
        let mut sinks: Vec<(NodeId, Instr)> = Vec::new();
        for (out, r) in g.roots.iter().enumerate() {
            if !self.uniform[r.index()] && self.stage[r.index()] as usize == p {
                sinks.push((*r, Instr::Store { src: Reg(0), out }));
            }
        }
        for &id in &self.f.sums {
            let operand = g.args(id)[0].expect("sum operand");
            if self.uniform[operand.index()] || self.stage[operand.index()] as usize != p {
                continue;
            }
            let sink = match self.acc_of.get(&id) {
                Some(&acc) => Instr::Accumulate { src: Reg(0), times: None, neg: false, acc },
                None => Instr::Collect { src: Reg(0), buf: self.buf_of[&id] },
            };
            sinks.push((operand, sink));
        }
        if sinks.is_empty() {
            return (Vec::new(), 0);
        }
        let order = self.needed(sinks.iter().map(|s| s.0));
        allocate(g, &order, &sinks, |id| self.placement(id))
    }

    /// The non-uniform nodes the sinks need computed per chunk, in topological order.
    fn needed(&self, roots: impl Iterator<Item = NodeId>) -> Vec<NodeId> {
        let g = &self.f.graph;
        let mut seen = FxHashSet::default();
        let mut stack: Vec<NodeId> = roots.collect();
        while let Some(id) = stack.pop() {
            if self.uniform[id.index()] || !seen.insert(id) {
                continue;
            }
            if let Tag::Apply(_) = g.tag(id) {
                stack.extend(g.args(id).iter().flatten());
            }
        }
        let mut order: Vec<NodeId> = seen.into_iter().collect();
        order.sort_unstable();
        order
    }

    fn placement(&self, id: NodeId) -> Placement {
        if self.uniform[id.index()] {
            return Placement::Slot(self.slot_of[id.index()]);
        }
        match self.f.graph.tag(id) {
            Tag::Var => Placement::Load(Source::Input(self.f.input_of[id.index()] as usize)),
            Tag::Sum => Placement::Load(Source::Group(self.group_of[&id])),
            _ => Placement::Computed,
        }
    }
}

/// Where a node's value is, for a pass's chunk code: a scalar slot, loaded from an input or
/// group array, or computed per chunk.
enum Placement {
    Slot(Slot),
    Load(Source),
    Computed,
}

/// What one chunk instruction computes, before registers are assigned.
enum Step {
    /// One node: a load, a unary or a binary op.
    Node(NodeId),
    /// `sin(a)` and `cos(a)` of the same operand, from one argument reduction.
    SinCos { sin: NodeId, cos: NodeId, a: NodeId },
    /// `sigmoid(a)` and its slope `sig * sigmoid(-a)` in one kernel pass; with `affine`, `a` is
    /// `(w * x) + b` or `(w * x) - b` (uniform `w` and `b`, in either operand order),
    /// computed in the kernel's loop.
    SigmoidSlope { sig: NodeId, slope: NodeId, a: NodeId, affine: Option<AffineArg> },
    /// Arithmetic node `node` whose operand `inner`, an arithmetic node used nowhere else, is
    /// computed in the same loop instead of in a register of its own.
    Fused { node: NodeId, inner: NodeId },
    /// Accumulator `acc`'s partial sum of `node`, which that sum alone reads, computed in the
    /// summation loop: `node` is `a`, or `a * b`, negated when `neg` (`a` per sample, `b` per
    /// sample or uniform). `node`'s value never goes to a register.
    Sum { node: NodeId, a: NodeId, b: Option<NodeId>, neg: bool, acc: usize },
    /// Linear forms `w[i,0] * xs[0] + ... + w[i,k-1] * xs[k-1]` (uniform `w`) sharing `xs`, one
    /// per node of `outs`, as one matrix product (see [`linear_forms`]).
    MatVec { outs: Vec<NodeId>, w: Vec<NodeId>, xs: Vec<NodeId> },
    /// The sums of `rows[r] * cols[c]` into accumulators `accs[r * cols.len() + c]`, replacing
    /// the `Sum` steps of `nodes`, as one matrix product (see [`outer_sums`]).
    OuterSum { rows: Vec<NodeId>, cols: Vec<NodeId>, accs: Vec<usize>, neg: bool, nodes: Vec<NodeId> },
}

/// The parts of a sigmoid's affine argument folded into its kernel: `(w * x) + b`, or `- b`.
#[derive(Clone, Copy)]
struct AffineArg {
    x: NodeId,
    w: NodeId,
    b: NodeId,
    sub: bool,
}

/// Whether `b` is `-a` exactly, as the builders spell it: `-a` for `a` (or the reverse), or
/// `-c * y` for `c * y`.
fn is_negation(g: &Graph, a: NodeId, b: NodeId) -> bool {
    let op = |id: NodeId| match g.node(id).kind() {
        Kind::Apply(op) => Some(*op),
        _ => None,
    };
    let constant = |id: Option<NodeId>| match id.map(|id| g.node(id).kind()) {
        Some(Kind::Const(c)) => Some(*c),
        _ => None,
    };
    let [a0, a1] = g.args(a);
    let [b0, b1] = g.args(b);
    match (op(a), op(b)) {
        (_, Some(Op::Neg)) if b0 == Some(a) => true,
        (Some(Op::Neg), _) if a0 == Some(b) => true,
        (Some(Op::Mul), Some(Op::Mul)) => {
            a1 == b1 && matches!((constant(a0), constant(b0)), (Some(x), Some(y)) if x.to_bits() == (-y).to_bits())
        }
        _ => false,
    }
}

/// Ops a [`Step::Fused`] may combine (plus `Neg` as the outer op): exact IEEE operations, so
/// fusing them changes no rounding.
fn is_arith(op: Op) -> bool {
    matches!(op, Op::Add | Op::Sub | Op::Mul | Op::Div)
}

impl Step {
    /// The nodes the step computes.
    fn results(&self) -> [Option<NodeId>; 2] {
        match *self {
            Step::Node(id) | Step::Fused { node: id, .. } => [Some(id), None],
            Step::SinCos { sin, cos, .. } => [Some(sin), Some(cos)],
            Step::SigmoidSlope { sig, slope, .. } => [Some(sig), Some(slope)],
            // A matrix product's results are allocated apart (any number of them).
            Step::Sum { .. } | Step::MatVec { .. } | Step::OuterSum { .. } => [None, None],
        }
    }

    /// The nodes the step reads (a load reads none).
    fn operands(&self, g: &Graph, is_load: impl Fn(NodeId) -> bool) -> Vec<NodeId> {
        match self {
            Step::MatVec { xs, .. } => return xs.clone(),
            Step::OuterSum { rows, cols, .. } => return rows.iter().chain(cols).copied().collect(),
            _ => {}
        }
        match *self {
            Step::Node(id) if is_load(id) => Vec::new(),
            Step::Node(id) => g.args(id).iter().flatten().copied().collect(),
            Step::SigmoidSlope { affine: Some(AffineArg { x, w, b, .. }), .. } => vec![x, w, b],
            Step::SinCos { a, .. } | Step::SigmoidSlope { a, .. } => vec![a],
            Step::Sum { a, b, .. } => [Some(a), b].into_iter().flatten().collect(),
            Step::Fused { node, inner } => {
                let outer = g.args(node).into_iter().flatten().filter(|x| *x != inner);
                g.args(inner).iter().flatten().copied().chain(outer).collect()
            }
            Step::MatVec { .. } | Step::OuterSum { .. } => unreachable!("returned above"),
        }
    }
}

/// Groups `order` into steps: pairs `sin(a)`/`cos(a)` into one `SinCos` (emitted where the
/// first of the two was), folds a single-use arithmetic operand of an arithmetic node (or
/// of a negation) into a `Fused` step, two levels deep at most, and a negation or product that
/// only a sum reads into a `Sum` step.
///
/// Measured (thread CPU time per call, N = 1e6, one thread, medians of interleaved runs, the
/// other optimisations on): W2's four sin/cos as two `sin_cos`, 31.0 -> 22.7 ms (the kernel
/// alone: 3.3 ns per element against 5.5 for sin and cos apart); `Fused` steps (W2 32 -> 20
/// instructions, W1 24 -> 17), W1 14.6 -> 10.6 ms, W2 27.4 -> 22.7 ms.
///
/// A sigmoid `s = sigmoid(a)` and the `s * sigmoid(-a)` that each derivative of it builds
/// (its `sigmoid(-a)`, and `-a` if computed here, used nowhere else; `-a` spelt `-a`, or
/// `-c * y` for `a = c * y`) become one `SigmoidSlope` step at the sigmoid's place: the kernel writes the
/// slope as it goes, saving a pass that reads `s` back. Measured (thread CPU time per call,
/// N = 1e6, one thread, 6 interleaved rounds of 21 calls): W1 (two sigmoids, 17 -> 15
/// instructions) 11.3 -> 10.1 ms, median ratio 0.90.
///
/// A sigmoid-with-slope whose argument is an affine `(w * x) + b` (uniform `w`, `b`; a fused
/// step used nowhere else) takes it into the kernel, which forms it in its own loop: W1's
/// `w1 * x + b1` and `w2 * h + b2` no longer go through a register. Measured (thread CPU time
/// per call, N = 1e6, one thread, 8 interleaved rounds of 15 calls, median of per-round
/// ratios): W1 9.88 -> 9.44 ms, ratio 0.951.
///
/// A negation, a product or a negated product (a uniform factor allowed) that only a sum reads
/// is formed in the sum's own loop, at the producer's place (`acc1 -= sum(r4 * r0)`), and the
/// producer and its register go. Bit for bit the unfused sum: the same lanes, order and
/// product rounding, and subtracting is adding the negation. W1's five sums all fold, 18 -> 13
/// instructions (still 7 registers: the peak is at `y - yhat`, before any sum). Measured
/// (process CPU time per call, N = 1e6, one thread, 24 rounds of 21 calls rotating three
/// builds, median of per-round ratios; the caller's thread CPU time misses a call this large,
/// which then ran on a helper thread): W1 10.0 -> 9.2 ms, ratio 0.90 (0.89 against the same
/// interpreter without the fold, faster in 20 of 24 rounds); W2 (no sums, same tape) 1.01 over
/// 40 rounds, noise.
fn group_steps(
    g: &Graph,
    order: &[NodeId],
    sinks: &[(NodeId, Instr)],
    computed: impl Fn(NodeId) -> bool,
    is_slot: impl Fn(NodeId) -> bool,
) -> Vec<Step> {
    let op_of = |id: NodeId| match g.node(id).kind() {
        Kind::Apply(op) if computed(id) => Some(*op),
        _ => None,
    };
    let mut uses = vec![0u32; g.len()];
    for id in order {
        for a in g.args(*id).into_iter().flatten() {
            uses[a.index()] += 1;
        }
    }
    for (id, _) in sinks {
        uses[id.index()] += 1;
    }
    // Per operand of a sin or cos in this pass: [sin node, cos node].
    let mut trig: FxHashMap<NodeId, [Option<NodeId>; 2]> = FxHashMap::default();
    for &id in order {
        if let Some(op @ (Op::Sin | Op::Cos)) = op_of(id) {
            let a = g.args(id)[0].expect("operand");
            trig.entry(a).or_default()[usize::from(op == Op::Cos)] = Some(id);
        }
    }
    // Per sigmoid node in this pass: its slope node, and the `sigmoid(-a)` (and `-a`) folded
    // into it.
    let mut slope_of: FxHashMap<NodeId, (NodeId, NodeId, Option<NodeId>)> = FxHashMap::default();
    for &id in order {
        let (Some(Op::Mul), [Some(x), Some(y)]) = (op_of(id), g.args(id)) else { continue };
        for (s, t) in [(x, y), (y, x)] {
            let fits = op_of(s) == Some(Op::Sigmoid) && op_of(t) == Some(Op::Sigmoid) && uses[t.index()] == 1;
            let (Some(a), Some(b)) = (g.args(s)[0], g.args(t)[0]) else { continue };
            if fits && is_negation(g, a, b) && !slope_of.contains_key(&s) {
                // `-a` goes too when only `sigmoid(-a)` reads it; then `a` loses that reader,
                // so an affine `a` can still go into the kernel.
                let neg = (op_of(b).is_some() && uses[b.index()] == 1).then_some(b);
                for arg in neg.iter().flat_map(|b| g.args(*b)).flatten() {
                    uses[arg.index()] -= 1;
                }
                slope_of.insert(s, (id, t, neg));
                break;
            }
        }
    }
    let mut folded: FxHashSet<NodeId> = slope_of.values().flat_map(|(d, t, neg)| [Some(*d), Some(*t), *neg]).flatten().collect();
    // Groups of linear forms that run as one matrix product, by their first root.
    let mut matvec_at: FxHashMap<NodeId, Step> = FxHashMap::default();
    for (outs, w, xs, chain) in linear_forms(g, order, &uses, &op_of, &is_slot) {
        folded.extend(chain);
        folded.extend(&outs);
        matvec_at.insert(outs[0], Step::MatVec { outs, w, xs });
    }
    let mut steps: Vec<Option<Step>> = Vec::with_capacity(order.len());
    // Plain arithmetic steps that a later step may still absorb, by node.
    let mut absorbable: FxHashMap<NodeId, usize> = FxHashMap::default();
    // Fused steps, by node: an affine one may still go into a sigmoid's kernel.
    let mut fused_at: FxHashMap<NodeId, usize> = FxHashMap::default();
    // `(w * x) + b`, `b + (x * w)`, ... or `(w * x) - b` with uniform `w`, `b` and `x * w` fused
    // into `a`, as an affine argument.
    let affine_of = |a: NodeId, inner: NodeId| -> Option<AffineArg> {
        let [Some(p), Some(q)] = g.args(a) else { return None };
        let (b, sub) = match op_of(a)? {
            Op::Add if p == inner => (q, false),
            Op::Add => (p, false),
            Op::Sub if p == inner => (q, true),
            _ => return None,
        };
        let [Some(u), Some(v)] = g.args(inner) else { return None };
        let (w, x) = if is_slot(u) { (u, v) } else { (v, u) };
        (op_of(inner)? == Op::Mul && is_slot(w) && !is_slot(x) && is_slot(b)).then_some(AffineArg { x, w, b, sub })
    };
    for &id in order {
        if let Some(step) = matvec_at.remove(&id) {
            steps.push(Some(step));
            continue;
        }
        if let Some(&(slope, ..)) = slope_of.get(&id) {
            let a = g.args(id)[0].expect("operand");
            let affine = match fused_at.get(&a).map(|k| (*k, &steps[*k])) {
                Some((k, Some(Step::Fused { inner, .. }))) if uses[a.index()] == 1 => affine_of(a, *inner).map(|f| (k, f)),
                _ => None,
            };
            if let Some((k, _)) = affine {
                steps[k] = None;
            }
            steps.push(Some(Step::SigmoidSlope { sig: id, slope, a, affine: affine.map(|(_, f)| f) }));
            continue;
        }
        if folded.contains(&id) {
            continue;
        }
        let op = op_of(id);
        if let Some(Op::Sin | Op::Cos) = op {
            let a = g.args(id)[0].expect("operand");
            if let Some([Some(sin), Some(cos)]) = trig.get(&a).copied() {
                if id == sin.min(cos) {
                    steps.push(Some(Step::SinCos { sin, cos, a }));
                }
                continue;
            }
        }
        if let Some(op) = op.filter(|op| is_arith(*op) || *op == Op::Neg) {
            let inner = g.args(id).iter().flatten().copied().find(|m| uses[m.index()] == 1 && absorbable.contains_key(m));
            if let Some(inner) = inner {
                steps[absorbable.remove(&inner).expect("absorbable")] = None;
                fused_at.insert(id, steps.len());
                steps.push(Some(Step::Fused { node: id, inner }));
                continue;
            }
            if is_arith(op) {
                absorbable.insert(id, steps.len());
            }
        }
        steps.push(Some(Step::Node(id)));
    }
    let acc_of: FxHashMap<NodeId, usize> = sinks
        .iter()
        .filter_map(|(id, sink)| match sink {
            Instr::Accumulate { acc, .. } if uses[id.index()] == 1 => Some((*id, *acc)),
            _ => None,
        })
        .collect();
    // A negation, a product or a negated product that only a sum reads, as that sum's step
    // (a uniform factor of a product second).
    let summed = |step: &Step| -> Option<Step> {
        let (Step::Node(node) | Step::Fused { node, .. }) = *step else { return None };
        let acc = *acc_of.get(&node)?;
        let neg = op_of(node) == Some(Op::Neg);
        let product = match *step {
            Step::Node(id) if neg => return Some(Step::Sum { node, a: g.args(id)[0]?, b: None, neg, acc }),
            Step::Node(id) if op_of(id) == Some(Op::Mul) => id,
            Step::Fused { inner, .. } if neg && op_of(inner) == Some(Op::Mul) => inner,
            _ => return None,
        };
        let [Some(a), Some(b)] = g.args(product) else { return None };
        let (a, b) = if is_slot(a) { (b, a) } else { (a, b) };
        Some(Step::Sum { node, a, b: Some(b), neg, acc })
    };
    let steps: Vec<Step> = steps.into_iter().flatten().map(|step| summed(&step).unwrap_or(step)).collect();
    outer_sums(steps, &is_slot)
}

/// Smallest matrix product worth lowering to ([`linear_forms`], [`outer_sums`]), in
/// multiply-adds per sample: below it the fused elementwise steps are as fast, and a scalar
/// graph written by hand (a few weighted sums) keeps its exact left-to-right sums.
const MIN_PRODUCT: usize = 32;

/// The linear forms among `order` that share their per-sample vector with at least one other,
/// as groups: (the forms' roots, their uniform factors row-major, the shared vector, the
/// nodes the product replaces). A linear form is a left-to-right chain of sums of products
/// of a uniform and a per-sample value, `w0 * x0 + w1 * x1 + ... + w{k-1} * x{k-1}`, what
/// `array::matmul` builds and what reverse mode builds for the adjoint of a layer's input,
/// whose inner sums and products nothing else reads. One pass over `order`, from the top.
///
/// The product computes each row's sum as a blocked matrix product does, so its last bits may
/// differ from the chain's; everything else in the tape stays as it was.
#[allow(clippy::type_complexity)]
fn linear_forms(
    g: &Graph,
    order: &[NodeId],
    uses: &[u32],
    op_of: &impl Fn(NodeId) -> Option<Op>,
    is_slot: &impl Fn(NodeId) -> bool,
) -> Vec<(Vec<NodeId>, Vec<NodeId>, Vec<NodeId>, Vec<NodeId>)> {
    let term = |t: NodeId| -> Option<(NodeId, NodeId)> {
        if op_of(t) != Some(Op::Mul) || uses[t.index()] != 1 {
            return None;
        }
        let [Some(a), Some(b)] = g.args(t) else { return None };
        match (is_slot(a), is_slot(b)) {
            (true, false) => Some((a, b)),
            (false, true) => Some((b, a)),
            _ => None,
        }
    };
    let mut claimed: FxHashSet<NodeId> = FxHashSet::default();
    // Per shared vector: the forms' roots, factors and replaced nodes.
    let mut groups: FxHashMap<Vec<NodeId>, Vec<(NodeId, Vec<NodeId>, Vec<NodeId>)>> = FxHashMap::default();
    for &root in order.iter().rev() {
        if claimed.contains(&root) || op_of(root) != Some(Op::Add) {
            continue;
        }
        let (mut terms, mut chain, mut cur) = (Vec::new(), Vec::new(), root);
        while op_of(cur) == Some(Op::Add) && (cur == root || uses[cur.index()] == 1) {
            let [Some(left), Some(right)] = g.args(cur) else { break };
            let Some(t) = term(right) else { break };
            terms.push(t);
            chain.extend([cur, right]);
            cur = left;
        }
        let Some(first) = (cur != root).then(|| term(cur)).flatten() else { continue };
        terms.push(first);
        chain.push(cur);
        terms.reverse();
        claimed.extend(chain.iter().copied());
        let (w, x): (Vec<NodeId>, Vec<NodeId>) = terms.into_iter().unzip();
        chain.retain(|c| *c != root);
        groups.entry(x).or_default().push((root, w, chain));
    }
    let mut found = Vec::new();
    for (xs, mut forms) in groups {
        if forms.len() < 2 || forms.len() * xs.len() < MIN_PRODUCT {
            continue;
        }
        forms.sort_unstable_by_key(|f| f.0);
        let outs: Vec<NodeId> = forms.iter().map(|f| f.0).collect();
        let w = forms.iter().flat_map(|f| f.1.iter().copied()).collect();
        let chain = forms.into_iter().flat_map(|f| f.2).collect();
        found.push((outs, w, xs, chain));
    }
    found.sort_unstable_by_key(|f| f.0[0]);
    found
}

/// `steps` with each block of `Sum` steps of products of two per-sample values that covers
/// all pairs of a set of rows and a set of columns (a dense layer's weight gradient: the
/// batch sums of `delta[i] * a[j]`) replaced by one [`Step::OuterSum`] where the last of them
/// was. Products are oriented by node order (the earlier node is the row).
fn outer_sums(steps: Vec<Step>, is_slot: &impl Fn(NodeId) -> bool) -> Vec<Step> {
    /// A product's other factor, its accumulator and its step's position.
    type Entry = (NodeId, usize, usize);
    /// A row and its entries.
    type Row = (NodeId, Vec<Entry>);
    // Per (row, neg): its entries.
    let mut by_row: FxHashMap<(NodeId, bool), Vec<Entry>> = FxHashMap::default();
    for (pos, step) in steps.iter().enumerate() {
        if let Step::Sum { a, b: Some(b), neg, acc, .. } = *step {
            if !is_slot(b) && a != b {
                by_row.entry((a.min(b), neg)).or_default().push((a.max(b), acc, pos));
            }
        }
    }
    let mut blocks: FxHashMap<(Vec<NodeId>, bool), Vec<Row>> = FxHashMap::default();
    for ((row, neg), mut cols) in by_row {
        cols.sort_unstable_by_key(|c| c.0);
        if cols.windows(2).any(|w| w[0].0 == w[1].0) {
            continue;
        }
        blocks.entry((cols.iter().map(|c| c.0).collect(), neg)).or_default().push((row, cols));
    }
    let mut replaced: FxHashMap<usize, Option<Step>> = FxHashMap::default();
    for ((cols, neg), mut rows) in blocks {
        if rows.len() < 2 || cols.len() < 2 || rows.len() * cols.len() < MIN_PRODUCT {
            continue;
        }
        rows.sort_unstable_by_key(|r| r.0);
        let last = rows.iter().flat_map(|r| r.1.iter().map(|c| c.2)).max().expect("a block has sums");
        let accs = rows.iter().flat_map(|r| r.1.iter().map(|c| c.1)).collect();
        let positions: Vec<usize> = rows.iter().flat_map(|r| r.1.iter().map(|c| c.2)).collect();
        let nodes = positions
            .iter()
            .map(|p| match steps[*p] {
                Step::Sum { node, .. } => node,
                _ => unreachable!("positions of sums"),
            })
            .collect();
        for p in positions {
            replaced.insert(p, None);
        }
        let rows = rows.into_iter().map(|r| r.0).collect();
        replaced.insert(last, Some(Step::OuterSum { rows, cols, accs, neg, nodes }));
    }
    if replaced.is_empty() {
        return steps;
    }
    steps
        .into_iter()
        .enumerate()
        .filter_map(|(pos, step)| match replaced.remove(&pos) {
            Some(instead) => instead,
            None => Some(step),
        })
        .collect()
}

/// Emits instructions for `order` and the sinks, assigning registers by liveness: a register
/// is freed after the last instruction that reads it, and a destination is never one of its
/// own instruction's operands (kernels take distinct input and output slices).
fn allocate(g: &Graph, order: &[NodeId], sinks: &[(NodeId, Instr)], kind: impl Fn(NodeId) -> Placement) -> (Vec<Instr>, usize) {
    const NONE: usize = usize::MAX;
    let is_load = |id: NodeId| matches!(kind(id), Placement::Load(_));
    let steps = group_steps(g, order, sinks, |id| matches!(kind(id), Placement::Computed), |id| matches!(kind(id), Placement::Slot(_)));
    let operands: Vec<Vec<NodeId>> = steps.iter().map(|s| s.operands(g, is_load)).collect();
    let mut last_use = vec![NONE; g.len()];
    for (pos, ops) in operands.iter().enumerate() {
        for a in ops {
            last_use[a.index()] = pos;
        }
    }
    for (id, _) in sinks {
        last_use[id.index()] = steps.len();
    }
    let mut reg_of: Vec<Option<Reg>> = vec![None; g.len()];
    let mut free: Vec<Reg> = Vec::new();
    let mut n_regs = 0u32;
    let mut code = Vec::with_capacity(steps.len() + sinks.len());
    for (pos, step) in steps.iter().enumerate() {
        let many = match step {
            Step::MatVec { outs, .. } => outs.as_slice(),
            _ => &[],
        };
        for id in step.results().into_iter().flatten().chain(many.iter().copied()) {
            reg_of[id.index()] = Some(free.pop().unwrap_or_else(|| {
                n_regs += 1;
                Reg(n_regs - 1)
            }));
        }
        let reg = |a: NodeId| reg_of[a.index()].expect("operands are computed first");
        let arg = |a: NodeId| match kind(a) {
            Placement::Slot(s) => Arg::Slot(s),
            _ => Arg::Reg(reg(a)),
        };
        let op_of = |id: NodeId| match g.node(id).kind() {
            Kind::Apply(op) => *op,
            _ => unreachable!("only ops are fused"),
        };
        let slot = |id: NodeId| match kind(id) {
            Placement::Slot(s) => s,
            _ => unreachable!("a uniform operand"),
        };
        let dense = match step {
            Step::MatVec { outs, w, xs } => Some(Instr::MatVec(Box::new(MatVec {
                dst: outs.iter().map(|o| reg(*o)).collect(),
                w: w.iter().map(|id| slot(*id)).collect(),
                x: xs.iter().map(|x| reg(*x)).collect(),
            }))),
            Step::OuterSum { rows, cols, accs, neg, .. } => Some(Instr::OuterSum(Box::new(OuterSum {
                rows: rows.iter().map(|r| reg(*r)).collect(),
                cols: cols.iter().map(|c| reg(*c)).collect(),
                accs: accs.clone(),
                neg: *neg,
            }))),
            _ => None,
        };
        code.push(if let Some(instr) = dense {
            instr
        } else {
            match *step {
                Step::MatVec { .. } | Step::OuterSum { .. } => unreachable!("built above"),
                Step::Node(id) => match (kind(id), g.node(id).kind()) {
                    (Placement::Load(src), _) => Instr::Load { dst: reg(id), src },
                    (_, Kind::Apply(op)) => {
                        let [a, b] = g.args(id);
                        match (arg(a.expect("operand")), b.map(arg)) {
                            (Arg::Reg(a), None) => Instr::Unary { op: *op, dst: reg(id), a },
                            (a, Some(b)) => Instr::Binary { op: *op, dst: reg(id), a, b },
                            (Arg::Slot(_), None) => unreachable!("a unary op of a uniform value is uniform"),
                        }
                    }
                    _ => unreachable!("only loads and ops are computed per chunk"),
                },
                Step::SinCos { sin, cos, a } => Instr::SinCos { sin: reg(sin), cos: reg(cos), a: reg(a) },
                Step::SigmoidSlope { sig, slope, a, affine: None } => {
                    Instr::SigmoidSlope { sig: reg(sig), slope: reg(slope), a: reg(a), affine: None }
                }
                Step::SigmoidSlope { sig, slope, affine: Some(AffineArg { x, w, b, sub }), .. } => {
                    let slot = |id: NodeId| match kind(id) {
                        Placement::Slot(s) => s,
                        _ => unreachable!("an affine argument's factor and term are uniform"),
                    };
                    let affine = Some(Affine { w: slot(w), b: slot(b), sub });
                    Instr::SigmoidSlope { sig: reg(sig), slope: reg(slope), a: reg(x), affine }
                }
                Step::Fused { node, inner } => {
                    let [x, y] = g.args(node);
                    let swap = x != Some(inner);
                    let c = if swap { x } else { y };
                    let [a, b] = g.args(inner);
                    let (a, b) = (arg(a.expect("operand")), arg(b.expect("operand")));
                    let c = if op_of(node) == Op::Neg { None } else { c.map(arg) };
                    Instr::Fused { dst: reg(node), inner: op_of(inner), a, b, outer: op_of(node), c, swap }
                }
                Step::Sum { a, b, neg, acc, .. } => Instr::Accumulate { src: reg(a), times: b.map(arg), neg, acc },
            }
        });
        // Free each operand once after its last read (`x * x` reads one register twice).
        let ops = &operands[pos];
        for (i, x) in ops.iter().enumerate() {
            if last_use[x.index()] == pos && !ops[..i].contains(x) {
                if let Some(r) = reg_of[x.index()] {
                    free.push(r);
                }
            }
        }
    }
    let summed: FxHashSet<NodeId> = steps
        .iter()
        .flat_map(|s| match s {
            Step::Sum { node, .. } => std::slice::from_ref(node),
            Step::OuterSum { nodes, .. } => nodes.as_slice(),
            _ => &[],
        })
        .copied()
        .collect();
    for (id, sink) in sinks.iter().filter(|(id, _)| !summed.contains(id)) {
        let src = reg_of[id.index()].expect("sinks are computed");
        code.push(match sink.clone() {
            Instr::Store { out, .. } => Instr::Store { src, out },
            Instr::Accumulate { acc, .. } => Instr::Accumulate { src, times: None, neg: false, acc },
            Instr::Collect { buf, .. } => Instr::Collect { src, buf },
            other => other,
        });
    }
    (code, n_regs as usize)
}
