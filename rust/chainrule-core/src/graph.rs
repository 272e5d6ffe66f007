//! A flat, topologically ordered view of the nodes reachable from some roots: the arena every
//! graph algorithm (differentiate, print, compile, serialize) walks with typed indices instead
//! of pointers. Invariant: children precede parents, so `NodeId`s are a topological order.
//! Built by one pass down the node ids (see [`Graph::collect`]): depth costs no stack.

use std::collections::BinaryHeap;
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
    index: Index,
}

/// Node id -> `NodeId`: `slots[top - id]` for the ids of the scan's window (`ABSENT` for
/// ids not in the view), and the ids below it in `far`.
struct Index {
    top: u64,
    slots: Vec<u32>,
    far: FxHashMap<u64, u32>,
}

impl Index {
    fn get(&self, id: u64) -> Option<NodeId> {
        let at = usize::try_from(self.top.checked_sub(id)?).ok()?;
        let v = match self.slots.get(at) {
            Some(&v) => v,
            None => *self.far.get(&id)?,
        };
        (v < REACHED).then_some(NodeId(v))
    }
}

/// The state of [`Graph::collect`]'s pass down the ids.
struct Window {
    top: u64,
    /// `slots[top - id]`: `REACHED`, or `ABSENT` for ids not (yet) known to be in the view.
    slots: Vec<u32>,
    /// Ids set aside: below the window when they were reached.
    below: BinaryHeap<u64>,
    /// Ids reached in the window and not yet passed.
    pending: usize,
}

impl Window {
    /// Notes that `id` is in the view, `found` nodes into the pass.
    fn reach(&mut self, id: u64, found: usize) {
        let at = (self.top - id) as usize;
        if at >= self.slots.len() {
            let room = SCAN_BASE + SCAN_SLACK * (found + self.pending + 1);
            if at >= room {
                self.below.push(id);
                return;
            }
            let size = (at + 1).max(self.slots.len() * 2).min(room);
            self.slots.resize(size, ABSENT);
        }
        if self.slots[at] == ABSENT {
            self.slots[at] = REACHED;
            self.pending += 1;
        }
    }
}

/// In a scan's window, an id found reachable and not yet numbered.
const REACHED: u32 = u32::MAX - 1;

const ABSENT: u32 = u32::MAX;

/// A scan's window holds at most this many ids, plus [`SCAN_SLACK`] per node found (see
/// [`Graph::collect`]).
const SCAN_BASE: usize = 1024;
const SCAN_SLACK: usize = 32;

impl Graph {
    /// Collects everything reachable from `roots` (see [`Graph::collect`]).
    pub fn new(roots: &[Expr]) -> Graph {
        Self::collect(roots, |_| true)
    }

    /// Like [`Graph::new`], but does not descend into nodes for which `descend` is false
    /// (they are included as leaves of the view).
    ///
    /// One pass down the ids from the newest root: an id is in the view once a node above it
    /// in the view names it as an operand, and ids are a topological order, so every id is
    /// settled by the time the pass reaches it. It reads each node's record in the registry
    /// (operands, tag and address), never the node itself unless `descend` does (see
    /// `crate::expr::registry`), and reads the records in id order, which memory prefetches, where
    /// the depth-first walk it replaced waited for each record in turn. W5 (n = 10,000, fresh
    /// processes, paired medians of 8 interleaved runs against the walk): compile 0.76x, grad
    /// 0.93x.
    ///
    /// The pass also reads a mark for every id it passes, in the view or not, so its window
    /// grows by at most `SCAN_SLACK` ids per node found: an operand further down (a variable
    /// created long before the rest, say) is set aside, and once the window is done the ids
    /// set aside are taken newest first from a heap.
    pub fn collect(roots: &[Expr], descend: impl Fn(&Expr) -> bool) -> Graph {
        // SAFETY (every `visit` below): each id reached is reachable from `roots`, which the
        // caller holds for the duration of this call and the view keeps after it. The nodes
        // are held without reference counts: an increment is a locked instruction, which
        // waits for the node's memory (~5 ms of 19 for W5's compile graph in a fresh process),
        // and the decrements cost as much again when the view drops.
        let read = |id: u64| {
            let (operands, tag, node) = unsafe { expr::visit(id) };
            (if descend(&node) { operands } else { [0, 0] }, tag, node)
        };
        let top = roots.iter().map(Expr::id).max().unwrap_or(0);
        let mut w = Window { top, slots: Vec::new(), below: BinaryHeap::new(), pending: 0 };
        let mut in_window = 0;
        // Newest first, with room for all: a root far below the newest is not set aside.
        let mut root_ids: Vec<u64> = roots.iter().map(Expr::id).collect();
        root_ids.sort_unstable_by(|a, b| b.cmp(a));
        for id in root_ids {
            w.reach(id, roots.len());
        }
        let mut at = 0;
        while w.pending > 0 {
            if w.slots[at] == REACHED {
                w.pending -= 1;
                in_window += 1;
                for c in read(top - at as u64).0.into_iter().filter(|&c| c != 0) {
                    w.reach(c, in_window);
                }
            }
            at += 1;
        }
        let Window { mut slots, mut below, .. } = w;
        slots.truncate(at);
        // The ids set aside, newest first. The window may have grown over some after they
        // were set aside: those it reached were taken there, the others are marked in it now.
        let mut aside: Vec<u64> = Vec::new();
        let mut last = u64::MAX;
        while let Some(id) = below.pop() {
            if id == last {
                continue;
            }
            last = id;
            match slots.get_mut((top - id) as usize) {
                Some(&mut REACHED) => continue,
                Some(slot) => {
                    *slot = REACHED;
                    in_window += 1;
                }
                None => aside.push(id),
            }
            below.extend(read(id).0.into_iter().filter(|&c| c != 0));
        }
        // Numbered oldest first, reading the records again (in order, from cache): the ids set
        // aside, then the window.
        let len = aside.len() + in_window;
        let (mut nodes, mut args, mut tags) = (Vec::with_capacity(len), Vec::with_capacity(len), Vec::with_capacity(len));
        let mut far = FxHashMap::default();
        let mut place = |id: u64, slots: &mut Vec<u32>| {
            let number = nodes.len() as u32;
            let (operands, tag, node) = read(id);
            let index_of = |c: u64| match (top - c) as usize {
                at if at < slots.len() => slots[at],
                _ => far[&c],
            };
            args.push(operands.map(|c| if c == 0 { ABSENT } else { index_of(c) }));
            match (top - id) as usize {
                at if at < slots.len() => slots[at] = number,
                _ => {
                    far.insert(id, number);
                }
            }
            tags.push(tag);
            nodes.push(node);
        };
        for &id in aside.iter().rev() {
            place(id, &mut slots);
        }
        for at in (0..slots.len()).rev() {
            if slots[at] == REACHED {
                place(top - at as u64, &mut slots);
            }
        }
        let index = Index { top, slots, far };
        let roots_ids = roots.iter().map(|r| index.get(r.id()).expect("just collected")).collect();
        Graph { nodes, tags, _owners: roots.to_vec(), args, roots: roots_ids, index }
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
    use crate::build::{add, constant, mul, sin, var};
    use std::collections::HashSet;

    /// Checks a view against the nodes reachable from its roots, found through the nodes
    /// themselves: each once, operands numbered before their node and naming the right nodes.
    fn check(roots: &[Expr]) -> Graph {
        let graph = Graph::new(roots);
        let mut reachable = HashSet::new();
        let mut stack: Vec<Expr> = roots.to_vec();
        while let Some(e) = stack.pop() {
            if reachable.insert(e.id()) {
                stack.extend(e.args().cloned());
            }
        }
        assert_eq!(graph.len(), reachable.len());
        let ids: HashSet<u64> = graph.nodes().iter().map(Expr::id).collect();
        assert_eq!(ids, reachable);
        for id in graph.ids() {
            let node = graph.node(id);
            let want: Vec<u64> = node.args().map(Expr::id).collect();
            let got: Vec<u64> = graph.args(id).into_iter().flatten().map(|a| graph.node(a).id()).collect();
            assert_eq!(got, want, "operands of {node:?}");
            assert!(graph.args(id).into_iter().flatten().all(|a| a < id), "topological order");
            assert_eq!(graph.id_of(node), Some(id));
        }
        for (r, root) in graph.roots.iter().zip(roots) {
            assert_eq!(graph.node(*r), root);
        }
        graph
    }

    /// Thousands of ids apart: a root and a variable far below the others are set aside, the
    /// window later grows over one of them, and every node is still numbered once.
    #[test]
    fn operands_far_below_are_set_aside_and_found_once() {
        let x = var("scan_far_x").expect("valid name");
        let y = var("scan_far_y").expect("valid name");
        let early = sin(&x);
        for k in 0..3000 {
            drop(mul(&y, &constant(k as f64 + 0.25)));
        }
        let chain = (0..600).fold(mul(&y, &constant(3.0)), |t, k| add(&sin(&t), &constant(k as f64 + 0.5)));
        let top = mul(&early, &chain);
        check(std::slice::from_ref(&top));
        check(&[early.clone(), top.clone(), x.clone(), top.clone()]);
        check(std::slice::from_ref(&x));
        assert!(check(&[]).is_empty());
    }

    /// Roots in any order, sharing nodes, some of them leaves.
    #[test]
    fn views_of_shared_nodes_in_any_root_order() {
        let x = var("scan_shared_x").expect("valid name");
        let terms: Vec<Expr> = (0..200).map(|k| sin(&mul(&x, &constant(k as f64 + 0.5)))).collect();
        let sums: Vec<Expr> = terms.windows(3).map(|w| add(&add(&w[0], &w[1]), &w[2])).collect();
        let mut roots: Vec<Expr> = sums.iter().rev().cloned().chain(terms.iter().step_by(7).cloned()).collect();
        roots.push(x.clone());
        check(&roots);
        roots.reverse();
        check(&roots);
    }
}
