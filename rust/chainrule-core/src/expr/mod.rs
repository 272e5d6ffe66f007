//! Expression nodes and their weak intern table.
//!
//! An [`Expr`] is a reference-counted node. Structurally equal nodes are one node: every node is
//! created through [`intern`], which looks the node up (kind, payload, children's ids) among
//! the parents listed in its newest operand's registry record, or for leaves in a sharded table
//! of ids; the registry holds only *weak* references. A node no longer referenced from anywhere
//! is freed and leaves both, so memory follows references and nothing is interned forever.
//!
//! Invariants: children are created before parents, so a node's id is larger than its
//! children's; ids are never reused, so a key naming child ids can never be confused with a
//! key of a later node. Dropping a node frees its now-unreferenced descendants with an explicit
//! work list, never by recursion, so a chain a million deep drops without touching the stack.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::ops::Op;

mod intern;
mod registry;

pub use intern::{intern, live_nodes, registry_pages};
pub(crate) use intern::{operand_id, visit};

/// A sorted, duplicate-free set of variable names: the `over=` of a partial reduction. A thin
/// pointer, as [`Name`] is, so that a [`Kind`] is 16 bytes (see `Node`).
pub type Over = Arc<Vec<Arc<str>>>;

/// A variable's name.
pub type Name = Arc<String>;

/// What a node is.
#[derive(Clone, Debug)]
pub enum Kind {
    /// A float64 constant (nan is stored with one canonical bit pattern).
    Const(f64),
    /// A variable, by name.
    Var(Name),
    /// A pointwise op applied to `args`.
    Apply(Op),
    /// Sum of `args[0]` over the batch dimensions along which every variable in the set is
    /// broadcast; the empty set sums over the whole batch.
    Sum(Over),
}

/// One node of an expression graph. Build nodes with [`crate::build`], never directly.
///
/// 40 bytes, so that with its reference counts it is a 64-byte allocation (80 with a 24-byte
/// kind and the flags apart from the id): every node built is fresh memory, and W5's grad
/// (n = 10,000) builds 80,000 of them.
pub struct Node {
    kind: Kind,
    args: [Option<Expr>; 2],
    /// The id (the low [`ID_BITS`]), how many parents whose newest operand is this node were
    /// ever listed in its registry record (at most [`NEAR_LIMIT`]; later ones go to the table,
    /// see [`intern`]), and whether this node is listed in its newest operand's record rather
    /// than in the table. The count changes only under its shard lock.
    state: AtomicU64,
}

const ID_BITS: u32 = 48;
const ID_MASK: u64 = (1 << ID_BITS) - 1;
const NEAR_BIT: u64 = 1 << 63;
const PLACED_SHIFT: u32 = ID_BITS;

const _: () = assert!(std::mem::size_of::<Node>() == 40 && registry::CAPACITY <= ID_MASK);

impl Node {
    fn id(&self) -> u64 {
        self.state.load(Ordering::Relaxed) & ID_MASK
    }

    fn near(&self) -> bool {
        self.state.load(Ordering::Relaxed) & NEAR_BIT != 0
    }

    /// How many parents were listed with this node (see `state`).
    fn placed(&self) -> u8 {
        (self.state.load(Ordering::Relaxed) >> PLACED_SHIFT) as u8 & 0x7f
    }

    /// Sets the count of listed parents; under the node's shard lock.
    fn set_placed(&self, placed: u8) {
        let state = self.state.load(Ordering::Relaxed);
        let cleared = state & !(0x7f << PLACED_SHIFT);
        self.state.store(cleared | (u64::from(placed) << PLACED_SHIFT), Ordering::Relaxed);
    }
}

/// A shared, immutable, hash-consed expression node. Equality and hashing are by identity,
/// which hash-consing makes structural.
#[derive(Clone)]
pub struct Expr(Arc<Node>);

impl Expr {
    /// The node's kind.
    pub fn kind(&self) -> &Kind {
        &self.0.kind
    }

    /// The node's unique id (creation order: children have smaller ids than parents).
    pub fn id(&self) -> u64 {
        self.0.id()
    }

    /// The operands (none for leaves, one for unary ops and sums, two for binary ops).
    pub fn args(&self) -> impl Iterator<Item = &Expr> {
        self.0.args.iter().flatten()
    }

    /// The first operand.
    pub fn arg0(&self) -> Option<&Expr> {
        self.0.args[0].as_ref()
    }

    /// The second operand.
    pub fn arg1(&self) -> Option<&Expr> {
        self.0.args[1].as_ref()
    }

    /// The constant's value, if this is a constant.
    pub fn as_const(&self) -> Option<f64> {
        match self.0.kind {
            Kind::Const(c) => Some(c),
            _ => None,
        }
    }

    /// The variable's name, if this is a variable.
    pub fn as_var(&self) -> Option<&str> {
        match &self.0.kind {
            Kind::Var(name) => Some(name),
            _ => None,
        }
    }

    /// The op, if this is a pointwise op.
    pub fn as_op(&self) -> Option<Op> {
        match self.0.kind {
            Kind::Apply(op) => Some(op),
            _ => None,
        }
    }

    /// Whether this is a constant equal to `value` (bitwise, so -0.0 is not 0.0).
    pub fn is_const(&self, value: f64) -> bool {
        self.as_const().is_some_and(|c| c.to_bits() == value.to_bits())
    }
}

impl PartialEq for Expr {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Expr {}

impl Hash for Expr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.id().hash(state);
    }
}

/// A node's kind without its payload: read from the registry, so a pass that needs only this
/// does not read the nodes (see [`crate::graph::Graph::tag`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tag {
    /// A constant.
    Const,
    /// A variable.
    Var,
    /// A reduction.
    Sum,
    /// A pointwise op.
    Apply(Op),
}

impl Tag {
    fn of_code(code: u32) -> Tag {
        match code & 0xff {
            1 => Tag::Apply(Op::ALL[(code >> 8) as usize]),
            2 => Tag::Sum,
            3 => Tag::Const,
            _ => Tag::Var,
        }
    }
}
