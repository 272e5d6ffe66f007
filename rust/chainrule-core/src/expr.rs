//! Expression nodes and their weak intern table.
//!
//! An [`Expr`] is a reference-counted node. Structurally equal nodes are one node: every node is
//! created through [`intern`], which looks the node's key (kind, payload, children's ids) up in
//! a sharded table of *weak* references, placed by the newest operand's id so that nodes built
//! together are looked up together. A node no longer referenced from anywhere is freed and
//! leaves the table, so memory follows references and nothing is interned forever.
//!
//! Invariants: children are created before parents, so a node's id is larger than its
//! children's; ids are never reused, so a key naming child ids can never be confused with a
//! key of a later node. Dropping a node frees its now-unreferenced descendants with an explicit
//! work list, never by recursion, so a chain a million deep drops without touching the stack.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Weak};

use rustc_hash::FxHasher;

use crate::ops::Op;
use crate::registry;

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
    /// How many parents whose newest operand is this node were ever placed next to it in
    /// the table (saturates at [`NEAR_LIMIT`]; see [`Key::place`]).
    near_parents: AtomicU8,
    /// Whether this node's own entry is placed next to its newest operand.
    near: bool,
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

/// The identity of a node for hash-consing: kind, payload and children's ids, and for an
/// operator node whether its entry is placed near its newest operand (see [`Key::place`]).
#[derive(Clone, PartialEq, Eq)]
enum Key {
    Const(u64),
    Var(Arc<str>),
    Apply(Op, u64, u64, bool),
    Sum(Over, u64, bool),
}

/// Operator nodes built one after the other have operands with nearby ids, so a table that
/// places an entry by its newest operand's id turns a build's lookups into a nearly
/// sequential walk over the table instead of one cache miss each. Ids come in blocks of
/// `2^BLOCK_BITS`; a block is scattered (to a shard and a page of the shard's table) by a
/// strong mix, so that distant id ranges never line up, and within it entry `id` sits at
/// slot `2 * (id % block) + (0 or 1)`. Measured against a plain hash (thread CPU time,
/// medians of 7 interleaved rounds on the shared 2-core machine): a lookup hit ~200 -> ~60-100
/// ns; the W5 build (n = 10,000) expression 28.4 -> 14.8 ms, grad 74.8 -> 64.8 ms, dropping
/// it all 68.3 -> 42.1 ms. Blocks of 2^6 ids were slower than 2^10 (a page per 64 lookups).
///
/// A node with many parents would pile them all onto one slot (and hashbrown's probing
/// would then walk the pile: quadratic). So only the first [`NEAR_LIMIT`] parents of a node
/// are placed near it; later ones are placed by a plain hash, and lookups try both.
const BLOCK_BITS: u32 = 10;

/// At most this many parents are placed next to the node they share (see [`BLOCK_BITS`]).
const NEAR_LIMIT: u8 = 8;

impl Key {
    /// The newest operand's id, for operator nodes.
    fn newest(&self) -> Option<u64> {
        match self {
            Key::Apply(_, a, b, _) => Some((*a).max(*b)),
            Key::Sum(_, a, _) => Some(*a),
            Key::Const(_) | Key::Var(_) => None,
        }
    }

    fn scattered(&self) -> u64 {
        let mut h = FxHasher::default();
        match self {
            Key::Const(c) => (0u8, c).hash(&mut h),
            Key::Var(name) => (1u8, name).hash(&mut h),
            Key::Apply(op, a, b, _) => (2u8, op, a, b).hash(&mut h),
            Key::Sum(over, a, _) => (3u8, over, a).hash(&mut h),
        }
        mix(h.finish())
    }

    /// The table hash: hashbrown takes the slot from the low bits and a 7-bit tag from the
    /// top ones, which always come from the scattered hash.
    fn place(&self) -> u64 {
        const TAG: u64 = !0 << 57;
        let scattered = self.scattered();
        match (self.newest(), self) {
            (Some(m), Key::Apply(.., true) | Key::Sum(.., true)) => {
                let page = mix(m >> BLOCK_BITS) << (BLOCK_BITS + 1);
                let slot = ((m & ((1 << BLOCK_BITS) - 1)) << 1) | (scattered & 1);
                (scattered & TAG) | ((page | slot) & !TAG)
            }
            _ => scattered,
        }
    }

    fn shard(&self) -> &'static Shard {
        let h = match self.newest() {
            // Every entry with the same newest operand, near or not, in one shard: one lock
            // covers both lookups and the parent count.
            Some(m) => mix(m >> BLOCK_BITS),
            None => self.scattered(),
        };
        &TABLE[(h >> 58) as usize % SHARDS]
    }
}

/// splitmix64's finaliser: every input bit affects every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.place());
    }
}

/// Passes [`Key::place`] through unchanged.
#[derive(Default)]
struct PlaceHasher(u64);

impl Hasher for PlaceHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, _: &[u8]) {
        unreachable!("keys hash as one u64")
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

const SHARDS: usize = 64;

struct Entry {
    id: u64,
    node: Weak<Node>,
}

type Table = HashMap<Key, Entry, BuildHasherDefault<PlaceHasher>>;

type Shard = Mutex<Table>;

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
        static HELD: RefCell<Vec<MutexGuard<'static, Table>>> = const { RefCell::new(Vec::new()) };
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

fn key_of(kind: &Kind, args: &[Option<Expr>; 2], near: bool) -> Key {
    let id = |i: usize| args[i].as_ref().map_or(0, Expr::id);
    match kind {
        Kind::Const(c) => Key::Const(c.to_bits()),
        Kind::Var(name) => Key::Var(name.clone()),
        Kind::Apply(op) => Key::Apply(*op, id(0), id(1), near),
        Kind::Sum(over) => Key::Sum(over.clone(), id(0), near),
    }
}

fn with_near(key: &Key, near: bool) -> Key {
    match key {
        Key::Apply(op, a, b, _) => Key::Apply(*op, *a, *b, near),
        Key::Sum(over, a, _) => Key::Sum(over.clone(), *a, near),
        leaf => leaf.clone(),
    }
}

fn lock(shard: &Shard) -> MutexGuard<'_, Table> {
    // A panic while holding the lock cannot leave the map inconsistent (inserts and removes
    // are single calls), so a poisoned lock is safe to keep using.
    shard.lock().unwrap_or_else(|e| e.into_inner())
}

/// The operand with the largest id (the one entries are placed by), for operator nodes.
fn newest(args: &[Option<Expr>; 2]) -> Option<&Expr> {
    match args {
        [Some(a), Some(b)] => Some(if b.id() > a.id() { b } else { a }),
        [Some(a), None] => Some(a),
        _ => None,
    }
}

/// Returns the unique node with this kind and these operands, creating it if needed.
/// This is the only constructor; simplification happens before it, in [`crate::build`].
pub fn intern(kind: Kind, args: [Option<Expr>; 2]) -> Expr {
    let kind = match kind {
        Kind::Const(c) if c.is_nan() => Kind::Const(f64::NAN),
        k => k,
    };
    // Leaves have no operand to be placed near; their key says `near: false`.
    let parent_of = newest(&args).filter(|_| matches!(kind, Kind::Apply(_) | Kind::Sum(_)));
    let near_key = key_of(&kind, &args, true);
    let shard = near_key.shard();
    let mut table = lock(shard);
    // Under the shard lock, which every parent of `parent_of` is entered under too.
    let placed = parent_of.map_or(0, |p| p.0.near_parents.load(Ordering::Relaxed));
    let far_key = (parent_of.is_none() || placed >= NEAR_LIMIT).then(|| with_near(&near_key, false));
    let found = [(placed > 0).then_some(&near_key), far_key.as_ref()]
        .into_iter()
        .flatten()
        .find_map(|key| table.get(key).and_then(|e| e.node.upgrade()));
    if let Some(found) = found {
        drop(table);
        // `args` may hold the last references to other nodes: they drop here, after the
        // lock is released, because their own Drop takes shard locks.
        return Expr(found);
    }
    let near = parent_of.is_some() && placed < NEAR_LIMIT;
    if near {
        parent_of.expect("an operand").0.near_parents.store(placed + 1, Ordering::Relaxed);
    }
    let key = if near { near_key } else { far_key.expect("a far key when not near") };
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    assert!(id < registry::CAPACITY, "chainrule: every node id has been used ({} nodes created)", registry::CAPACITY);
    let arg_ids = [0, 1].map(|i| args[i].as_ref().map_or(0, Expr::id));
    let node = Arc::new(Node { kind, args, id, near_parents: AtomicU8::new(0), near });
    // Before the table entry, through which other threads can find the node.
    registry::register(id, arg_ids, Arc::as_ptr(&node));
    let stale = table.insert(key, Entry { id, node: Arc::downgrade(&node) });
    drop(table);
    drop(stale);
    Expr(node)
}

/// How many distinct nodes are alive (for leak tests).
pub fn live_nodes() -> usize {
    TABLE.iter().map(|s| lock(s).len()).sum()
}

/// How many pages of the node registry are allocated (for leak tests; see [`crate::registry`]).
pub fn registry_pages() -> usize {
    registry::live_pages()
}

/// Removes a dying node's table entry. Must run while the node still holds its operands:
/// the key names their ids.
fn unintern(node: &Node) {
    let key = key_of(&node.kind, &node.args, node.near);
    let mut table = lock(key.shard());
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
        registry::release(self.id);
    }
}

/// The operand ids (0 for none) of the live node with id `id`.
///
/// # Safety
/// The node is alive for the duration of the call: the caller holds a node it is reachable from.
pub(crate) unsafe fn operand_ids(id: u64) -> [u64; 2] {
    registry::record(id).0
}

/// `f` of the live node with id `id`, borrowed: its reference count is not touched.
///
/// # Safety
/// As for [`operand_ids`].
pub(crate) unsafe fn with_node<R>(id: u64, f: impl FnOnce(&Expr) -> R) -> R {
    f(&borrow_node(id))
}

/// The live node with id `id`, without a reference count of its own: it must not outlive
/// the references that keep the node alive.
///
/// # Safety
/// As for [`operand_ids`], for as long as the result is used.
pub(crate) unsafe fn borrow_node(id: u64) -> std::mem::ManuallyDrop<Expr> {
    std::mem::ManuallyDrop::new(Expr(Arc::from_raw(registry::record(id).1)))
}

#[cfg(test)]
mod tests {
    use crate::build::{add, constant, mul, sin, var};

    /// A node with more parents than are placed next to it: the later ones are placed by hash,
    /// and every one is still found again, before and after some of them die.
    #[test]
    fn many_parents_of_one_node_stay_hash_consed() {
        let constants: Vec<_> = (0..100).map(|i| constant(1000.5 + i as f64)).collect();
        let x = var("many_parents_x").expect("valid name");
        let parents: Vec<_> = constants.iter().map(|c| mul(c, &x)).collect();
        let again: Vec<_> = constants.iter().map(|c| mul(c, &x)).collect();
        assert_eq!(parents, again);
        let (kept, dropped): (Vec<_>, Vec<_>) = parents.into_iter().enumerate().partition(|(i, _)| i % 3 == 0);
        drop((dropped, again));
        for (i, p) in &kept {
            assert_eq!(&mul(&constants[*i], &x), p);
        }
        let rebuilt: Vec<_> = constants.iter().map(|c| mul(c, &x)).collect();
        assert_eq!(rebuilt, constants.iter().map(|c| mul(c, &x)).collect::<Vec<_>>());
        let chain = (0..1000).fold(x.clone(), |e, _| add(&sin(&e), &x));
        assert_eq!(chain, (0..1000).fold(x.clone(), |e, _| add(&sin(&e), &x)));
    }
}
