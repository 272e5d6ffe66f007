//! Interning: the one constructor of nodes ([`intern`]), the sharded table that finds leaves
//! and the parents a registry record has no room for, and the way out (a dying node leaves the
//! table or its operand's record; descendants are freed with a work list).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

use rustc_hash::FxHasher;

use super::registry;
use super::{Expr, Kind, Name, Node, Over, Tag, NEAR_BIT};
use crate::ops::Op;

/// The identity of a node for hash-consing in the table: kind, payload and children's ids.
#[derive(Clone, PartialEq, Eq)]
enum Key {
    Const(u64),
    Var(Name),
    Apply(Op, u64, u64),
    Sum(Over, u64),
}

/// A node's parents are found through its registry record (see [`intern`]), under the lock
/// of the shard its id falls in: ids come in blocks of `2^BLOCK_BITS`, each scattered to a
/// shard by a strong mix, so nodes built together take one lock, and threads building apart
/// take different ones. The table itself holds leaves and the parents beyond the first
/// [`NEAR_LIMIT`] of a node, placed by a plain hash.
const BLOCK_BITS: u32 = 10;

/// At most this many parents of a node are listed in its registry record (see [`intern`]).
const NEAR_LIMIT: u8 = registry::NEAR as u8;

impl Key {
    /// The newest operand's id, for operator nodes.
    fn newest(&self) -> Option<u64> {
        match self {
            Key::Apply(_, a, b) => Some((*a).max(*b)),
            Key::Sum(_, a) => Some(*a),
            Key::Const(_) | Key::Var(_) => None,
        }
    }

    fn scattered(&self) -> u64 {
        let mut h = FxHasher::default();
        match self {
            Key::Const(c) => (0u8, c).hash(&mut h),
            Key::Var(name) => (1u8, name).hash(&mut h),
            Key::Apply(op, a, b) => (2u8, op, a, b).hash(&mut h),
            Key::Sum(over, a) => (3u8, over, a).hash(&mut h),
        }
        mix(h.finish())
    }

    fn shard(&self) -> &'static Shard {
        let h = match self.newest() {
            // Every node with the same newest operand in one shard: one lock covers its
            // parent list, its parent count and the table's entries of its later parents.
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
        state.write_u64(self.scattered());
    }
}

/// Passes [`Key::scattered`] through unchanged.
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

/// Node ids by key; the node itself is reached through its registry record, whose weak
/// reference keeps its memory readable until the node is uninterned and released.
type Table = HashMap<Key, u64, BuildHasherDefault<PlaceHasher>>;

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

/// The ids of a node's operands (0 for none), as keys and the registry hold them.
fn operand_ids(args: &[Option<Expr>; 2]) -> [u64; 2] {
    args.each_ref().map(|a| a.as_ref().map_or(0, Expr::id))
}

fn key_of(kind: &Kind, args: &[Option<Expr>; 2]) -> Key {
    let [a, b] = operand_ids(args);
    match kind {
        Kind::Const(c) => Key::Const(c.to_bits()),
        Kind::Var(name) => Key::Var(name.clone()),
        Kind::Apply(op) => Key::Apply(*op, a, b),
        Kind::Sum(over) => Key::Sum(over.clone(), a),
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

/// A node's kind without its payload, as the registry keeps it: what a hash-consing lookup
/// compares besides the operand ids (a sum's set of names is compared on the node itself),
/// and what [`Tag`] decodes.
fn code_of(kind: &Kind) -> u32 {
    match kind {
        Kind::Apply(op) => 1 | (*op as u32) << 8,
        Kind::Sum(_) => 2,
        Kind::Const(_) => 3,
        Kind::Var(_) => 4,
    }
}

/// Returns the unique node with this kind and these operands, creating it if needed.
/// This is the only constructor; simplification happens before it, in [`crate::build`].
///
/// An operator node is found through its newest operand, whose registry record lists up to
/// `NEAR_LIMIT` parents: a lookup reads a few records written at about the same time, where
/// a table lookup is a cache miss on a slot, and for W5's 160,000 nodes a table grows through
/// 9 MiB of fresh memory, rehashing as it goes. Leaves, and parents beyond the first
/// `NEAR_LIMIT` of a node, go through the table. Against the table for every node (W5,
/// n = 10,000, fresh processes, paired medians of 30 interleaved runs): grad 0.78x, compile
/// 0.76x, in all 0.80x.
pub fn intern(kind: Kind, args: [Option<Expr>; 2]) -> Expr {
    let kind = match kind {
        Kind::Const(c) if c.is_nan() => Kind::Const(f64::NAN),
        k => k,
    };
    // Leaves have no operand to be listed with.
    let parent_of = newest(&args).filter(|_| matches!(kind, Kind::Apply(_) | Kind::Sum(_)));
    let key = key_of(&kind, &args);
    let shard = key.shard();
    let mut table = lock(shard);
    let code = code_of(&kind);
    let arg_ids = operand_ids(&args);
    // Under the shard lock, which every parent of `parent_of` is entered under too.
    let placed = parent_of.map_or(0, |p| p.0.placed());
    // Candidates that match but turn out to be other sums: dropped after the lock is
    // released, since dropping a last reference takes shard locks.
    let mut rejected: [Option<Arc<Node>>; registry::NEAR] = Default::default();
    let mut near_found = None;
    if let Some(m) = parent_of.filter(|_| placed > 0) {
        // SAFETY: `m` is alive (`args` holds it), and a parent listed under this lock has not
        // been uninterned, which comes before its record is released.
        let candidates = unsafe { registry::parents(m.id()) };
        for (p, spare) in candidates.into_iter().zip(rejected.iter_mut()) {
            if p == 0 || !unsafe { registry::matches(p, code, arg_ids) } {
                continue;
            }
            let Some(candidate) = (unsafe { registry::upgrade(p) }) else { continue };
            match (&candidate.kind, &kind) {
                (Kind::Sum(a), Kind::Sum(b)) if a != b => *spare = Some(candidate),
                _ => {
                    near_found = Some(candidate);
                    break;
                }
            }
        }
    }
    let in_table = parent_of.is_none() || placed >= NEAR_LIMIT;
    // SAFETY: an id in the table under this lock has not been uninterned, so not released.
    let found = near_found.or_else(|| in_table.then(|| table.get(&key).and_then(|&id| unsafe { registry::upgrade(id) })).flatten());
    if let Some(found) = found {
        drop(table);
        drop(rejected);
        // `args` may hold the last references to other nodes: they drop here, after the
        // lock is released, because their own Drop takes shard locks.
        return Expr(found);
    }
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    assert!(id < registry::CAPACITY, "chainrule: every node id has been used ({} nodes created)", registry::CAPACITY);
    let near_operand = match parent_of {
        Some(m) if placed < NEAR_LIMIT && registry::listable(m.id(), id) => {
            m.0.set_placed(placed + 1);
            Some(m.id())
        }
        Some(m) if placed < NEAR_LIMIT => {
            // Too far above its operand to be listed: from now on its parents are looked up
            // in the table too.
            m.0.set_placed(NEAR_LIMIT);
            None
        }
        _ => None,
    };
    let state = id | if near_operand.is_some() { NEAR_BIT } else { 0 };
    let node = Arc::new(Node { kind, args, state: AtomicU64::new(state) });
    // Before the node is listed anywhere other threads can find it.
    registry::register(id, arg_ids, code, Arc::downgrade(&node));
    if let Some(m) = near_operand {
        // SAFETY: the operand is alive (the new node holds it), under its parents' lock.
        unsafe { registry::set_parent(m, placed as usize, id) };
    } else {
        // A dying node's entry for the same key is replaced; its unintern then leaves this one.
        table.insert(key, id);
    }
    drop(table);
    drop(rejected);
    Expr(node)
}

/// How many distinct nodes are alive (for leak tests).
pub fn live_nodes() -> usize {
    registry::live_nodes(NEXT_ID.load(Ordering::Acquire)) as usize
}

/// How many pages of the node registry are allocated (for leak tests; see `crate::expr::registry`).
pub fn registry_pages() -> usize {
    registry::live_pages()
}

/// Removes a dying node from where lookups find it. Must run while the node still holds its
/// operands: its key names their ids, and a near node is listed in its newest operand's record.
fn unintern(node: &Node) {
    let key = key_of(&node.kind, &node.args);
    let mut table = lock(key.shard());
    if node.near() {
        let m = newest(&node.args).expect("near nodes have operands");
        // SAFETY: `m` is alive (the dying node still holds it), under its parents' lock.
        unsafe { registry::clear_parent(m.id(), node.id()) };
    } else if table.get(&key) == Some(&node.id()) {
        // Between the strong count reaching zero and now, another thread may have re-created
        // this key; only remove the entry if it is still this node's.
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
        registry::release(self.id());
    }
}

/// The id of a node's operand `i` (0 for none).
pub(crate) fn operand_id(node: &Node, i: usize) -> u64 {
    operand_ids(&node.args)[i]
}

/// The operand ids (0 for none), the tag and the node of the live node with id `id`, the node
/// borrowed: its reference count is not touched, so it must not outlive the references that
/// keep it alive.
///
/// # Safety
/// The node is alive for as long as the result is used: the caller holds a node it is
/// reachable from.
pub(crate) unsafe fn visit(id: u64) -> ([u64; 2], Tag, std::mem::ManuallyDrop<Expr>) {
    let (args, code, node) = registry::record(id);
    (args, Tag::of_code(code), std::mem::ManuallyDrop::new(Expr(Arc::from_raw(node))))
}

#[cfg(test)]
mod tests {
    use crate::build::{add, constant, mul, sin, sum, sum_over, var};

    /// The registry's code of every kind decodes to its tag.
    #[test]
    fn every_kind_code_decodes_to_its_tag() {
        use super::{code_of, Kind, Tag};
        for &op in crate::ops::Op::ALL {
            assert_eq!(Tag::of_code(code_of(&Kind::Apply(op))), Tag::Apply(op));
        }
        assert_eq!(Tag::of_code(code_of(&Kind::Const(2.0))), Tag::Const);
        assert_eq!(Tag::of_code(code_of(&Kind::Var(std::sync::Arc::new("tag_x".to_string())))), Tag::Var);
        assert_eq!(Tag::of_code(code_of(&Kind::Sum(Vec::new().into()))), Tag::Sum);
    }

    /// A tag is one byte: graph views keep one per node.
    #[test]
    fn a_tag_is_one_byte() {
        assert_eq!(std::mem::size_of::<super::Tag>(), 1);
    }

    /// Operands more than 2^32 ids below their node do not fit a registry record's gaps: a walk
    /// reads them from the node, hash-consing still finds the node, and its parents (too far
    /// above the operands to be listed with them) are found through the table.
    #[test]
    fn nodes_far_above_their_operands_are_walked_and_hash_consed() {
        use std::sync::atomic::Ordering;
        let x = var("far_below_x").expect("valid name");
        let y = var("far_below_y").expect("valid name");
        let near = mul(&x, &constant(3.5));
        super::NEXT_ID.fetch_add(1 << 33, Ordering::Relaxed);
        let far = mul(&x, &y);
        let far_constant = mul(&x, &constant(4.5));
        assert_eq!(mul(&x, &y), far);
        assert_eq!(mul(&x, &constant(4.5)), far_constant);
        assert_eq!(mul(&x, &constant(3.5)), near);
        let top = add(&sin(&far), &far_constant);
        assert_eq!(add(&sin(&mul(&x, &y)), &mul(&x, &constant(4.5))), top);
        let graph = crate::graph::Graph::new(std::slice::from_ref(&top));
        let far_id = graph.id_of(&far).expect("in the view");
        let operands: Vec<u64> = graph.args(far_id).into_iter().flatten().map(|a| graph.node(a).id()).collect();
        let mut want = vec![x.id(), y.id()];
        let mut got = operands.clone();
        want.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, want);
        assert_eq!(graph.len(), 7, "x, y, 4.5, x * y, sin, x * 4.5, and the sum");
    }

    /// Sums of one operand over different sets are found through the same operand and told
    /// apart by their sets.
    #[test]
    fn sums_of_one_operand_over_different_sets_stay_apart() {
        let x = var("sums_apart_x").expect("valid name");
        let over_a = sum_over(&x, &["sums_apart_a"]);
        let over_b = sum_over(&x, &["sums_apart_b"]);
        let whole = sum(&x);
        assert!(over_a != over_b && over_a != whole && over_b != whole);
        assert_eq!(sum_over(&x, &["sums_apart_b"]), over_b);
        assert_eq!(sum_over(&x, &["sums_apart_a"]), over_a);
        assert_eq!(sum(&x), whole);
    }

    /// Threads that build, compare and drop the same nodes at once: whoever builds a node
    /// while another thread drops its last reference gets the live node or a new one, and
    /// every thread sees one node per structure.
    #[test]
    fn threads_building_and_dropping_the_same_nodes_agree() {
        let x = var("same_nodes_x").expect("valid name");
        let chain = |n: usize| (0..n).fold(x.clone(), |e, k| add(&sin(&e), &mul(&x, &constant(k as f64 + 0.5))));
        let kept = chain(100);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for round in 0..40 {
                        let longer = chain(100 + round * 7);
                        assert_eq!(chain(100), kept);
                        assert_eq!(chain(100 + round * 7), longer);
                    }
                });
            }
        });
        assert_eq!(chain(100), kept);
    }

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
