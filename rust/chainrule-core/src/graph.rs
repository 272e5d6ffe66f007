//! A flat, topologically ordered view of the nodes reachable from some roots: the arena every
//! graph algorithm (differentiate, print, compile, serialize) walks with typed indices instead
//! of pointers. Invariant: children precede parents, so `NodeId`s are a topological order.
//! Built with an explicit work list: depth costs heap, not stack.

use std::fmt;
use std::mem::ManuallyDrop;

use rustc_hash::FxHashMap;

use crate::expr::{self, Expr, Tag};

/// Index of a node in a [`Graph`]; prints as `n12`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

impl NodeId {
    /// The index as a `usize`, for slices.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// The nodes reachable from `roots`, children first, with each node's operands as ids.
pub struct Graph {
    /// The nodes, in topological order, borrowed: `_owners` keeps them alive (see
    /// [`Graph::collect`]).
    nodes: Vec<ManuallyDrop<Expr>>,
    /// Each node's kind without its payload, read with the operands from the registry.
    tags: Vec<Tag>,
    /// References to the roots, which keep every node of the view alive.
    _owners: Vec<Expr>,
    /// The operands of each node, as indices into `nodes` ([`ABSENT`] where it has fewer):
    /// half the size of a pair of `Option<NodeId>`, and every view is fresh memory.
    args: Vec<[u32; 2]>,
    /// The roots, as ids.
    pub roots: Vec<NodeId>,
    index: IdMap,
}

const PAGE_BITS: u32 = 6;
const PAGE: usize = 1 << PAGE_BITS;
const ABSENT: u32 = u32::MAX;

/// Node id -> `NodeId`, in pages of 64 consecutive ids (small, so that a graph whose ids are
/// scattered costs at most 256 bytes per node). Nodes built together have nearby
/// ids, so the page itself is read nearly sequentially, where a map keyed per node makes one
/// random memory access per lookup (which cost 250-650 ns on the 2-core machine we measured,
/// against ~10 ns here).
///
/// Pages are found through a directory indexed by distance below the newest root's page (a
/// node's operands are older than it, so every id in the graph is at most the newest root's);
/// only pages further than [`NEAR_PAGES`] below it, a graph that mixes nodes built very far
/// apart, go through a hash map. The directory replaced a hash map for every page, and
/// borrowing replaced cloning on the work list (with the tape builder's per-node Vec gone, in
/// the same measurement: W5 at n = 10,000, thread CPU, medians of 5 interleaved rounds):
/// grad 87 -> 61 ms, Function::new 41 -> 28 ms, first call 43 -> 30 ms.
struct IdMap {
    top: u64,
    near: Vec<Option<Box<[u32; PAGE]>>>,
    far: FxHashMap<u64, Box<[u32; PAGE]>>,
}

/// Pages within this distance of the newest root's page use the directory: at most 512 KiB of
/// it, enough for graphs whose nodes were built within 4 million nodes of one another.
const NEAR_PAGES: u64 = 1 << 16;

impl IdMap {
    /// A map for ids up to `newest`.
    fn new(newest: u64) -> IdMap {
        IdMap { top: newest >> PAGE_BITS, near: Vec::new(), far: FxHashMap::default() }
    }

    fn page(&self, id: u64) -> Option<&[u32; PAGE]> {
        let depth = self.top.checked_sub(id >> PAGE_BITS)?;
        if depth < NEAR_PAGES {
            self.near.get(depth as usize)?.as_deref()
        } else {
            self.far.get(&(id >> PAGE_BITS)).map(|p| &**p)
        }
    }

    fn get(&self, id: u64) -> Option<NodeId> {
        let v = self.page(id)?[(id as usize) & (PAGE - 1)];
        (v != ABSENT).then_some(NodeId(v))
    }

    fn insert(&mut self, id: u64, value: NodeId) {
        let depth = self.top.checked_sub(id >> PAGE_BITS).expect("operands are older than the newest root");
        let page = if depth < NEAR_PAGES {
            let depth = depth as usize;
            if depth >= self.near.len() {
                self.near.resize_with(depth + 1, || None);
            }
            self.near[depth].get_or_insert_with(|| Box::new([ABSENT; PAGE]))
        } else {
            self.far.entry(id >> PAGE_BITS).or_insert_with(|| Box::new([ABSENT; PAGE]))
        };
        page[(id as usize) & (PAGE - 1)] = value.0;
    }

    fn contains(&self, id: u64) -> bool {
        self.get(id).is_some()
    }
}

impl Graph {
    /// Collects everything reachable from `roots` (iterative post-order DFS).
    pub fn new(roots: &[Expr]) -> Graph {
        Self::collect(roots, |_| true)
    }

    /// Like [`Graph::new`], but does not descend into nodes for which `descend` is false
    /// (they are included as leaves of the view).
    ///
    /// The walk reads each node's record in the registry once (operands, tag and address),
    /// and never the node itself unless `descend` does (see [`crate::registry`]).
    pub fn collect(roots: &[Expr], descend: impl Fn(&Expr) -> bool) -> Graph {
        /// A node to visit, or one whose operands are all collected, with what its record said.
        enum Visit {
            Enter(u64),
            Leave { id: u64, operands: [u64; 2], tag: Tag, node: ManuallyDrop<Expr> },
        }
        let mut index = IdMap::new(roots.iter().map(Expr::id).max().unwrap_or(0));
        let (mut nodes, mut args, mut tags) = (Vec::new(), Vec::new(), Vec::new());
        let mut stack: Vec<Visit> = Vec::new();
        for root in roots {
            stack.push(Visit::Enter(root.id()));
            while let Some(visit) = stack.pop() {
                match visit {
                    Visit::Enter(id) if !index.contains(id) => {
                        // SAFETY: every id walked is reachable from `roots`, which the caller
                        // holds for the duration of this call and the view keeps after it.
                        // One read of the record per node: the walk is bound by these reads.
                        let (operands, tag, node) = unsafe { expr::visit(id) };
                        let operands = if descend(&node) { operands } else { [0, 0] };
                        stack.push(Visit::Leave { id, operands, tag, node });
                        stack.extend(operands.into_iter().filter(|&c| c != 0 && !index.contains(c)).map(Visit::Enter));
                    }
                    Visit::Leave { id, operands, tag, node } if !index.contains(id) => {
                        index.insert(id, NodeId(nodes.len() as u32));
                        // Operands come first in post-order, so they are numbered.
                        args.push(operands.map(|c| if c == 0 { ABSENT } else { index.get(c).map_or(ABSENT, |a| a.0) }));
                        tags.push(tag);
                        nodes.push(node);
                    }
                    _ => {}
                }
            }
        }
        // The nodes are held without reference counts: an increment is a locked instruction,
        // which waits for the node's memory before the next one starts (~5 ms of 19 for W5's
        // compile graph in a fresh process), and the decrements cost as much again when the
        // view drops. The owned roots keep every node alive as long as the view.
        let _owners = roots.to_vec();
        let roots = roots.iter().map(|r| index.get(r.id()).expect("just collected")).collect();
        Graph { nodes, tags, _owners, args, roots, index }
    }

    /// The nodes, in topological order.
    pub fn nodes(&self) -> &[Expr] {
        // SAFETY: `ManuallyDrop<Expr>` has the layout of `Expr` (it is `repr(transparent)`),
        // and a shared `&Expr` cannot drop or forget the node, only clone it properly.
        unsafe { std::slice::from_raw_parts(self.nodes.as_ptr().cast::<Expr>(), self.nodes.len()) }
    }

    /// A node's kind without its payload. Unlike `node(id).kind()`, it does not read the node:
    /// W5's Function::new spent 60% of its time waiting for nodes just to learn their ops.
    pub fn tag(&self, id: NodeId) -> Tag {
        self.tags[id.index()]
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the view is empty.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The id of a node in this view, if it is in it.
    pub fn id_of(&self, e: &Expr) -> Option<NodeId> {
        self.index.get(e.id())
    }

    /// A node's operands, as ids (`None` where it has fewer).
    pub fn args(&self, id: NodeId) -> [Option<NodeId>; 2] {
        self.args[id.index()].map(|a| (a != ABSENT).then_some(NodeId(a)))
    }

    /// The node behind an id.
    pub fn node(&self, id: NodeId) -> &Expr {
        &self.nodes()[id.index()]
    }

    /// All ids, children first.
    pub fn ids(&self) -> impl DoubleEndedIterator<Item = NodeId> {
        (0..self.nodes.len() as u32).map(NodeId)
    }

    /// How many times each node is used as an operand within the view (roots not counted).
    pub fn use_counts(&self) -> Vec<u32> {
        let mut uses = vec![0u32; self.len()];
        for &a in self.args.iter().flatten().filter(|&&a| a != ABSENT) {
            uses[a as usize] += 1;
        }
        uses
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_map_reaches_far_below_the_newest_root() {
        let newest = (3 * NEAR_PAGES) << PAGE_BITS;
        let mut map = IdMap::new(newest);
        let ids = [newest, newest - 1, newest - 64, 5, 0, (NEAR_PAGES << PAGE_BITS) + 3, newest - (NEAR_PAGES << PAGE_BITS)];
        for (i, id) in ids.iter().enumerate() {
            map.insert(*id, NodeId(i as u32));
        }
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(map.get(*id), Some(NodeId(i as u32)));
        }
        assert_eq!(map.get(newest + 1), None);
        assert_eq!(map.get(6), None);
        assert!(!map.far.is_empty() && map.near.len() <= NEAR_PAGES as usize);
    }
}
