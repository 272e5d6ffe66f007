//! Every live node's operand ids and address, in a table indexed by node id.
//!
//! A walk over a graph (see [`crate::graph::Graph::collect`]) needs only each node's operand
//! ids. Read from the nodes themselves, that is a memory round trip per node, one after the
//! other, since the next node to read is known only once the current one has arrived. Here
//! the same facts sit in 24-byte records in id order, and nodes built together have nearby
//! ids, so a walk reads a few compact pages instead of scattered 64-byte nodes. Walking
//! W5's compile graph (150,000 nodes, n = 10,000; release build, wall time, 5 rounds):
//! 20-32 ms through the nodes, 12-19 ms through the records, 9-16 ms once the view also
//! stopped counting references (see `Graph::collect`).
//!
//! Beside each record, the node's links for hash-consing: the parents listed with it (see
//! [`crate::expr::intern`]), kept apart so that walks read 24 bytes a node.
//!
//! Both hold ids as distances (an operand is older than its node, a parent newer), in 32 bits:
//! a node's record and links take 40 bytes, where whole ids took 64. Every node created is a
//! record of fresh memory, so this is most of what a build touches besides the nodes: W5's
//! grad (n = 10,000) faulted 3800 pages with 64 bytes, 3378 with 40. An operand further than
//! 2^32 ids away is marked [`FAR`] and read from the node; such a parent is never listed.
//!
//! Ids are never reused, so a record is written once, when its node is created, and read only
//! while its node is alive (a reader holds a reference to a root the node is reachable from).
//! A page of records is freed once every id in it has died, and a directory page once all
//! its pages have: memory follows the live nodes, as the nodes' own memory does.

use std::alloc::{alloc_zeroed, dealloc, handle_alloc_error, Layout};
use std::mem::ManuallyDrop;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use crate::expr::{self, Node};

const PAGE_BITS: u32 = 10;
const MID_BITS: u32 = 14;
const TOP_BITS: u32 = 20;
const PAGE: usize = 1 << PAGE_BITS;
const MID: usize = 1 << MID_BITS;

/// The number of ids the table can hold: 2^44, months of creating nodes without pause.
pub const CAPACITY: u64 = 1 << (PAGE_BITS + MID_BITS + TOP_BITS);

/// How many parents placed next to their newest operand a record lists (see
/// [`crate::expr::intern`]).
pub(crate) const NEAR: usize = 4;

/// What graph walks read, apart from what only hash-consing reads (see [`Links`]): with both
/// in one 64-byte record, W5's compile took 1.0x of its time without the registry, against
/// 0.70x with them apart.
struct Record {
    /// The node, as a weak reference the record owns (released in [`release`]).
    node: AtomicPtr<Node>,
    /// How far below the node's id each operand's is (0 for none, [`FAR`]: read the node).
    gaps: [AtomicU32; 2],
    /// The node's kind without its payload (see `expr::code_of`): what hash-consing compares
    /// besides the operands, and what a pass over a graph that only needs ops reads.
    code: AtomicU32,
}

// The sizes the memory figures above are for.
const _: () = assert!(std::mem::size_of::<Record>() == 24 && std::mem::size_of::<Links>() == 16);

/// An operand gap too large for a record: the operand's id is read from the node.
const FAR: u32 = u32::MAX;

/// What only hash-consing reads of a node.
struct Links {
    /// How far above the node's id are the parents whose newest operand this node is, in the
    /// order they were placed (0 where none, or where one has died).
    parents: [AtomicU32; NEAR],
}

/// The gap from `id` down to operand `arg` (0 for none).
fn gap(id: u64, arg: u64) -> u32 {
    match arg {
        0 => 0,
        _ => u32::try_from(id - arg).ok().filter(|&g| g != FAR).unwrap_or(FAR),
    }
}

/// Whether `parent` can be listed with its operand `id`.
pub(crate) fn listable(id: u64, parent: u64) -> bool {
    parent - id < u64::from(FAR)
}

struct Page {
    records: [Record; PAGE],
    links: [Links; PAGE],
    /// How many of the page's ids have died; at `PAGE` the page is freed.
    deaths: AtomicU32,
}

struct Mid {
    pages: [AtomicPtr<Page>; MID],
    /// How many of its pages were freed; at `MID` the directory page is freed too.
    freed: AtomicU32,
}

/// Pages of records allocated and not yet freed (for leak tests).
static LIVE_PAGES: AtomicUsize = AtomicUsize::new(0);

/// How many pages of records are allocated (each holds the records of 1024 consecutive ids).
pub(crate) fn live_pages() -> usize {
    LIVE_PAGES.load(Ordering::Relaxed)
}

// Zero pages of virtual memory until touched: 8 MiB of address space, no resident memory.
static TOP: [AtomicPtr<Mid>; 1 << TOP_BITS] = [const { AtomicPtr::new(null_mut()) }; 1 << TOP_BITS];

/// A zeroed heap value: all-zero atomics and null pointers are these types' empty state.
fn zeroed<T>() -> *mut T {
    let layout = Layout::new::<T>();
    // SAFETY: the layout is of a sized, non-zero-sized type.
    let p = unsafe { alloc_zeroed(layout) }.cast::<T>();
    if p.is_null() {
        handle_alloc_error(layout);
    }
    p
}

/// Frees what [`zeroed`] allocated.
///
/// # Safety
/// `p` came from `zeroed::<T>()` and nothing reads it any more.
unsafe fn free<T>(p: *mut T) {
    dealloc(p.cast(), Layout::new::<T>());
}

/// The entry at `slot`, allocated zeroed if it is still empty; `created` counts allocations.
fn get_or_create<T>(slot: &AtomicPtr<T>, created: Option<&AtomicUsize>) -> *mut T {
    let current = slot.load(Ordering::Acquire);
    if !current.is_null() {
        return current;
    }
    let fresh = zeroed::<T>();
    match slot.compare_exchange(null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {
            if let Some(count) = created {
                count.fetch_add(1, Ordering::Relaxed);
            }
            fresh
        }
        Err(other) => {
            // SAFETY: `fresh` was never published.
            unsafe { free(fresh) };
            other
        }
    }
}

fn split(id: u64) -> (usize, usize, usize) {
    let top = (id >> (PAGE_BITS + MID_BITS)) as usize;
    let mid = ((id >> PAGE_BITS) as usize) & (MID - 1);
    (top, mid, (id as usize) & (PAGE - 1))
}

/// The record of `id`.
///
/// # Safety
/// `id` was registered and not yet released, and whoever registered it happened before.
unsafe fn at(id: u64) -> (&'static Record, &'static Links) {
    let (top, mid, slot) = split(id);
    let directory = TOP[top].load(Ordering::Acquire);
    let page = (*directory).pages[mid].load(Ordering::Acquire);
    (&(*page).records[slot], &(*page).links[slot])
}

/// Records a node created with `id`, taking over one weak reference to it. Ids at or beyond
/// [`CAPACITY`] are refused by the caller.
pub(crate) fn register(id: u64, args: [u64; 2], code: u32, node: Weak<Node>) {
    let (top, mid, slot) = split(id);
    let directory = get_or_create(&TOP[top], None);
    // SAFETY: a directory page is freed only once every id under it has died, and `id` is
    // alive (being created); the same holds for its page of records.
    let page = get_or_create(unsafe { &(*directory).pages[mid] }, Some(&LIVE_PAGES));
    let record = unsafe { &(*page).records[slot] };
    record.gaps[0].store(gap(id, args[0]), Ordering::Relaxed);
    record.gaps[1].store(gap(id, args[1]), Ordering::Relaxed);
    record.code.store(code, Ordering::Relaxed);
    record.node.store(Weak::into_raw(node).cast_mut(), Ordering::Relaxed);
}

/// The operand ids (0 for none), the code and the address of the live node `id`.
///
/// # Safety
/// The node with this id is alive for the duration of the call, and the record was written
/// before the caller obtained a reference to it (as handing the node over implies).
pub(crate) unsafe fn record(id: u64) -> ([u64; 2], u32, *const Node) {
    let record = at(id).0;
    let node = record.node.load(Ordering::Relaxed);
    (operands(id, record, node), record.code.load(Ordering::Relaxed), node)
}

/// The operand ids of node `id` (0 for none), from its record and, for a far one, its node.
///
/// # Safety
/// The node is alive, or listed as a parent under the lock its parents are placed under (so
/// it still holds its operands).
unsafe fn operands(id: u64, record: &Record, node: *const Node) -> [u64; 2] {
    std::array::from_fn(|i| match record.gaps[i].load(Ordering::Relaxed) {
        0 => 0,
        FAR => expr::operand_id(&*node, i),
        g => id - u64::from(g),
    })
}

/// Whether node `id` has this code and these operand ids.
///
/// # Safety
/// `id` is listed as a parent of a live node, under the lock its parents are placed under.
pub(crate) unsafe fn matches(id: u64, code: u32, args: [u64; 2]) -> bool {
    let record = at(id).0;
    record.code.load(Ordering::Relaxed) == code && operands(id, record, record.node.load(Ordering::Relaxed)) == args
}

/// A strong reference to node `id`, unless it is dying.
///
/// # Safety
/// As for [`matches`].
pub(crate) unsafe fn upgrade(id: u64) -> Option<Arc<Node>> {
    let weak = ManuallyDrop::new(Weak::from_raw(at(id).0.node.load(Ordering::Relaxed)));
    weak.upgrade()
}

/// The parents placed next to the live node `id` (0 for empty places).
///
/// # Safety
/// The node is alive, and the caller holds the lock its parents are placed under.
pub(crate) unsafe fn parents(id: u64) -> [u64; NEAR] {
    let links = at(id).1;
    std::array::from_fn(|i| match links.parents[i].load(Ordering::Relaxed) {
        0 => 0,
        g => id + u64::from(g),
    })
}

/// Lists `parent` at place `place` of the live node `id`; the parent is [`listable`].
///
/// # Safety
/// As for [`parents`].
pub(crate) unsafe fn set_parent(id: u64, place: usize, parent: u64) {
    at(id).1.parents[place].store((parent - id) as u32, Ordering::Relaxed);
}

/// Removes `parent` from the parents of the live node `id`.
///
/// # Safety
/// As for [`parents`].
pub(crate) unsafe fn clear_parent(id: u64, parent: u64) {
    let listed = (parent - id) as u32;
    if let Some(place) = at(id).1.parents.iter().find(|p| p.load(Ordering::Relaxed) == listed) {
        place.store(0, Ordering::Relaxed);
    }
}

/// Nodes that died. With the ids handed out, this tells how many are alive, without a count
/// on the creation path: a locked increment there waited for the new record's stores, ~10% of
/// `intern`'s time in W5's grad.
static DEATHS: AtomicU64 = AtomicU64::new(0);

/// How many nodes are alive, given the next id to be handed out (every id below it belongs to
/// a node created or being created).
pub(crate) fn live_nodes(next_id: u64) -> u64 {
    next_id.saturating_sub(1).saturating_sub(DEATHS.load(Ordering::Acquire))
}

/// Notes that the node with this id is dying, from its `Drop`: gives up the record's weak
/// reference, and frees the page once every id of the page has died.
pub(crate) fn release(id: u64) {
    let (top, mid_slot, slot) = split(id);
    let mid = TOP[top].load(Ordering::Acquire);
    // SAFETY: `id` was registered and has not been released, so its pages exist; the weak
    // reference is the one `register` took over (the allocation outlives this call, since the
    // node's own drop is running).
    let page_slot = unsafe { &(*mid).pages[mid_slot] };
    let page = page_slot.load(Ordering::Acquire);
    drop(unsafe { Weak::from_raw((*page).records[slot].node.load(Ordering::Relaxed)) });
    DEATHS.fetch_add(1, Ordering::Relaxed);
    if unsafe { &(*page).deaths }.fetch_add(1, Ordering::AcqRel) + 1 < PAGE as u32 {
        return;
    }
    // Every id of the page has died, so every one was registered before: nothing writes or
    // reads the page any more.
    page_slot.store(null_mut(), Ordering::Release);
    unsafe { free(page) };
    LIVE_PAGES.fetch_sub(1, Ordering::Relaxed);
    if unsafe { &(*mid).freed }.fetch_add(1, Ordering::AcqRel) + 1 == MID as u32 {
        TOP[top].store(null_mut(), Ordering::Release);
        unsafe { free(mid) };
    }
}
