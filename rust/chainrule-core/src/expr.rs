//! Expression nodes and their weak intern table.
//!
//! An [`Expr`] is a reference-counted node. Structurally equal nodes are one node: every node is
//! created through [`intern`], which looks the node's key (kind, payload, children's ids) up in
//! a sharded table of *weak* references. A node no longer referenced from anywhere is freed and
//! leaves the table, so memory follows references and nothing is interned forever.
//!
//! Invariants: children are created before parents, so a node's id is larger than its
//! children's; ids are never reused, so a key naming child ids can never be confused with a
//! key of a later node. Dropping a node frees its now-unreferenced descendants with an explicit
//! work list, never by recursion, so a chain a million deep drops without touching the stack.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Weak};

use rustc_hash::{FxHashMap, FxHasher};

use crate::ops::Op;

/// A sorted, duplicate-free set of variable names: the `over=` of a partial reduction.
pub type Over = Arc<[Arc<str>]>;

/// What a node is.
#[derive(Clone, Debug)]
pub enum Kind {
    /// A float64 constant (nan is stored with one canonical bit pattern).
    Const(f64),
    /// A variable, by name.
    Var(Arc<str>),
    /// A pointwise op applied to `args`.
    Apply(Op),
    /// Sum of `args[0]` over the batch dimensions along which every variable in the set is
    /// broadcast; the empty set sums over the whole batch.
    Sum(Over),
}

/// One node of an expression graph. Build nodes with [`crate::build`], never directly.
pub struct Node {
    kind: Kind,
    args: [Option<Expr>; 2],
    id: u64,
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
        self.0.id
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
        self.0.id.hash(state);
    }
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", crate::print::to_text(std::slice::from_ref(self)))
    }
}

/// The identity of a node for hash-consing: kind, payload and children's ids.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    Const(u64),
    Var(Arc<str>),
    Apply(Op, u64, u64),
    Sum(Over, u64),
}

const SHARDS: usize = 64;

struct Entry {
    id: u64,
    node: Weak<Node>,
}

type Shard = Mutex<FxHashMap<Key, Entry>>;

static TABLE: LazyLock<Vec<Shard>> = LazyLock::new(|| {
    guard_against_fork();
    (0..SHARDS).map(|_| Mutex::default()).collect()
});

/// A `fork()` while another thread holds a shard lock would leave the child's copy locked
/// forever. So fork first takes every shard (in order) and parent and child release them
/// after, by dropping the guards: a plain unlock, which unlike parking_lot's fair hand-off
/// can never pass the lock to a thread that the child does not have.
#[cfg(unix)]
fn guard_against_fork() {
    use std::cell::RefCell;
    thread_local! {
        static HELD: RefCell<Vec<MutexGuard<'static, FxHashMap<Key, Entry>>>> = const { RefCell::new(Vec::new()) };
    }
    extern "C" fn prepare() {
        HELD.with(|held| held.borrow_mut().extend(TABLE.iter().map(lock)));
    }
    extern "C" fn release() {
        HELD.with(|held| held.borrow_mut().clear());
    }
    // SAFETY: registering handlers has no preconditions; they only touch the table (a fork
    // racing with its initialisation waits in `prepare` until the initialiser has returned).
    unsafe {
        libc::pthread_atfork(Some(prepare), Some(release), Some(release));
    }
}

#[cfg(not(unix))]
fn guard_against_fork() {}
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn key_of(kind: &Kind, args: &[Option<Expr>; 2]) -> Key {
    let id = |i: usize| args[i].as_ref().map_or(0, Expr::id);
    match kind {
        Kind::Const(c) => Key::Const(c.to_bits()),
        Kind::Var(name) => Key::Var(name.clone()),
        Kind::Apply(op) => Key::Apply(*op, id(0), id(1)),
        Kind::Sum(over) => Key::Sum(over.clone(), id(0)),
    }
}

fn shard_of(key: &Key) -> &'static Shard {
    let mut h = FxHasher::default();
    key.hash(&mut h);
    &TABLE[(h.finish() >> 32) as usize % SHARDS]
}

fn lock(shard: &Shard) -> MutexGuard<'_, FxHashMap<Key, Entry>> {
    // A panic while holding the lock cannot leave the map inconsistent (inserts and removes
    // are single calls), so a poisoned lock is safe to keep using.
    shard.lock().unwrap_or_else(|e| e.into_inner())
}

/// Returns the unique node with this kind and these operands, creating it if needed.
/// This is the only constructor; simplification happens before it, in [`crate::build`].
pub fn intern(kind: Kind, args: [Option<Expr>; 2]) -> Expr {
    let kind = match kind {
        Kind::Const(c) if c.is_nan() => Kind::Const(f64::NAN),
        k => k,
    };
    let key = key_of(&kind, &args);
    let shard = shard_of(&key);
    let mut table = lock(shard);
    if let Some(found) = table.get(&key).and_then(|e| e.node.upgrade()) {
        drop(table);
        // `args` may hold the last references to other nodes: they drop here, after the
        // lock is released, because their own Drop takes shard locks.
        return Expr(found);
    }
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let node = Arc::new(Node { kind, args, id });
    let stale = table.insert(key, Entry { id, node: Arc::downgrade(&node) });
    drop(table);
    drop(stale);
    Expr(node)
}

/// How many distinct nodes are alive (for leak tests).
pub fn live_nodes() -> usize {
    TABLE.iter().map(|s| lock(s).len()).sum()
}

/// Removes a dying node's table entry. Must run while the node still holds its operands:
/// the key names their ids.
fn unintern(node: &Node) {
    let key = key_of(&node.kind, &node.args);
    let mut table = lock(shard_of(&key));
    // Between the strong count reaching zero and now, another thread may have re-created
    // this key; only remove the entry if it is still this node's.
    if table.get(&key).is_some_and(|e| e.id == node.id) {
        table.remove(&key);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // An operator node without operands was already uninterned by the loop below.
        let detached = matches!(self.kind, Kind::Apply(_) | Kind::Sum(_)) && self.args.iter().all(Option::is_none);
        if !detached {
            unintern(self);
        }
        let mut pending: Vec<Expr> = self.args.iter_mut().filter_map(Option::take).collect();
        while let Some(Expr(arc)) = pending.pop() {
            if let Some(mut node) = Arc::into_inner(arc) {
                unintern(&node);
                pending.extend(node.args.iter_mut().filter_map(Option::take));
                // `node` drops here with no operands left, so its Drop neither recurses nor
                // looks itself up again (leaves do, harmlessly: their entry is gone).
            }
        }
    }
}
