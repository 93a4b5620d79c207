//! An interval index over global index keys: which registered intervals contain a written key.
//! The subscriptions keep here the intervals that `prefix_index.rs` does not take (ranges of
//! values, pages' pinned ends): any interval at all.
//!
//! A B+tree of intervals ordered by `(start, end, owner)`. Each slot of an inner node knows its
//! child's first interval and how far the child's intervals reach (their largest `end`), and each
//! slot of any node knows which slot up to it reaches furthest. A lookup of `key` stops at the first
//! slot that starts after `key` and, walking back, at the first slot before which nothing reaches past
//! `key`: it visits the O(log n) nodes on the way to `key` and those holding matches, and idle
//! intervals elsewhere cost nothing.
//!
//! Why a B+tree rather than a binary tree: matching must cost as little with a million idle
//! subscriptions as with a thousand, and a balanced binary tree of a million keys is ~30 levels, each
//! a cache miss, plus one more per key compared when keys are allocations of their own. A node here keeps
//! the bytes of its keys in one buffer beside its slots, and a lookup descends 4 or 5 nodes, whose
//! upper levels stay in cache.

use std::cmp::Ordering;

/// Slots per node at most. A node then spans a few KiB (its slots and their keys' bytes): a handful
/// of cache lines touched per node visited, and few enough levels that only the bottom ones miss.
const NODE_CAPACITY: usize = 32;

/// How much of the prefix its starts share a node keeps by itself (see [`Lookup`]): index keys
/// begin with a table number and an index name, so 32 bytes cover most indexes' names.
const PREFIX_CAPACITY: usize = 32;

/// A node left with fewer slots by a removal is merged into a neighbour when both fit in one, so
/// removals cannot leave the tree deep and sparse.
const NODE_MIN: usize = NODE_CAPACITY / 4;

/// Slots a node allocates room for at first; it doubles that as it fills, up to one more than
/// [`NODE_CAPACITY`].
const SLOTS_INITIAL: usize = 4;

/// Where a key's bytes are in its node's buffer.
#[derive(Clone, Copy)]
struct Span {
    offset: u32,
    len: u32,
}

#[derive(Clone, Copy)]
struct Slot<T> {
    /// A leaf's interval; in an inner node, the child's first interval.
    start: Span,
    end: Span,
    owner: T,
    /// The largest end at or below this slot: a leaf's `end`, an inner node's child's largest.
    reach: Span,
    /// The child's id in the arena (inner nodes only).
    child: u32,
    /// The slot, among this one and those before it in the node, with the largest `reach`.
    furthest: u32,
}

impl<T> Slot<T> {
    fn child(&self) -> usize {
        self.child as usize
    }

    fn furthest(&self) -> usize {
        self.furthest as usize
    }
}

struct Node<T> {
    leaf: bool,
    slots: Vec<Slot<T>>,
    /// The slots' keys. Bytes no slot refers to any more (`garbage` of them) are reclaimed once they
    /// are the majority, so a node's buffer stays within twice its keys.
    bytes: Vec<u8>,
    garbage: usize,
    /// What a lookup reads, derived from the slots: see [`Lookup`].
    lookup: Lookup,
}

/// A node's slots summed up in fixed-size numbers, kept in the node itself: a lookup passing
/// through a node reads a few adjacent cache lines of it, and the keys' bytes only on a tie.
///
/// Keys are compared by their [`Lookup::code`]: the bytes every start of the node begins with,
/// `prefix`, then 8 more bytes. Codes are ordered as their keys are, but equal codes say nothing.
struct Lookup {
    /// How many bytes every slot's `start` begins with in common (at most [`PREFIX_CAPACITY`]).
    shared: usize,
    prefix: [u8; PREFIX_CAPACITY],
    /// Each slot's `start`, coded.
    starts: [u64; NODE_CAPACITY + 1],
    /// Each slot's `reach`, coded.
    reaches: [u64; NODE_CAPACITY + 1],
    /// The largest coded `reach` of this slot and those before it.
    limits: [u64; NODE_CAPACITY + 1],
    /// Each slot's `child` (inner nodes).
    children: [u32; NODE_CAPACITY + 1],
}

/// What a parent's slot records about a child: its first interval and its largest end.
struct Summary<T> {
    start: Vec<u8>,
    end: Vec<u8>,
    owner: T,
    reach: Vec<u8>,
}

impl<T: Copy + Ord> Node<T> {
    fn new(leaf: bool) -> Node<T> {
        let lookup = Lookup {
            shared: 0,
            prefix: [0; PREFIX_CAPACITY],
            starts: [0; NODE_CAPACITY + 1],
            reaches: [0; NODE_CAPACITY + 1],
            limits: [0; NODE_CAPACITY + 1],
            children: [0; NODE_CAPACITY + 1],
        };
        Node { leaf, slots: Vec::new(), bytes: Vec::new(), garbage: 0, lookup }
    }

    fn key(&self, span: Span) -> &[u8] {
        &self.bytes[span.offset as usize..][..span.len as usize]
    }

    fn push_key(&mut self, key: &[u8]) -> Span {
        let span = Span {
            offset: u32::try_from(self.bytes.len()).expect("a node's keys fit in 4 GiB"),
            len: u32::try_from(key.len()).expect("a key fits in 4 GiB"),
        };
        self.bytes.extend_from_slice(key);
        span
    }

    fn order(&self, slot: &Slot<T>) -> (&[u8], &[u8], T) {
        (self.key(slot.start), self.key(slot.end), slot.owner)
    }

    /// The slot to descend into for `key`: the last whose first interval is not after it.
    fn route(&self, key: (&[u8], &[u8], T)) -> usize {
        self.slots.partition_point(|slot| self.order(slot) <= key).saturating_sub(1)
    }

    /// A slot with its keys copied into this node's buffer.
    fn push_slot(&mut self, at: usize, summary: &Summary<T>, child: u32) {
        let start = self.push_key(&summary.start);
        let end = self.push_key(&summary.end);
        let reach = if self.leaf { end } else { self.push_key(&summary.reach) };
        // Slots grow by doubling up to room for the one slot too many that splits the node, and no
        // further: a half-full node (as inserts in random order leave most) holds half the room.
        if self.slots.len() == self.slots.capacity() {
            let len = self.slots.len();
            self.slots.reserve_exact(len.max(SLOTS_INITIAL).min(NODE_CAPACITY + 1 - len));
        }
        self.slots.insert(at, Slot { start, end, owner: summary.owner, reach, child, furthest: 0 });
    }

    fn summary_of(&self, slot: &Slot<T>) -> Summary<T> {
        Summary {
            start: self.key(slot.start).to_vec(),
            end: self.key(slot.end).to_vec(),
            owner: slot.owner,
            reach: self.key(slot.reach).to_vec(),
        }
    }

    /// This node's first interval and largest end, for its parent. The node is not empty.
    fn summary(&self) -> Summary<T> {
        let last = self.slots.last().expect("only the root is ever empty");
        Summary { reach: self.key(self.slots[last.furthest()].reach).to_vec(), ..self.summary_of(&self.slots[0]) }
    }

    fn remove_slot(&mut self, at: usize) {
        let slot = self.slots.remove(at);
        self.discard(&slot);
    }

    /// Counts the keys of a slot taken out of this node as garbage.
    fn discard(&mut self, slot: &Slot<T>) {
        self.garbage += (slot.start.len + slot.end.len) as usize;
        if !self.leaf {
            self.garbage += slot.reach.len as usize;
        }
    }

    /// Makes slot `at` (of an inner node) say what `summary` says, writing only keys that changed.
    fn set_summary(&mut self, at: usize, summary: &Summary<T>) {
        let slot = self.slots[at];
        let replace = |node: &mut Node<T>, old: Span, new: &[u8]| {
            if node.key(old) == new {
                return old;
            }
            node.garbage += old.len as usize;
            node.push_key(new)
        };
        let start = replace(self, slot.start, &summary.start);
        let end = replace(self, slot.end, &summary.end);
        let reach = replace(self, slot.reach, &summary.reach);
        self.slots[at] = Slot { start, end, owner: summary.owner, reach, ..slot };
    }

    /// Copies the slots' keys into a buffer of their exact size, leaving the garbage behind.
    fn compact(&mut self) {
        let live = self.bytes.len() - self.garbage;
        let old = std::mem::replace(&mut self.bytes, Vec::with_capacity(live));
        let copy = |bytes: &mut Vec<u8>, span: Span| {
            let offset = u32::try_from(bytes.len()).expect("a node's keys fit in 4 GiB");
            bytes.extend_from_slice(&old[span.offset as usize..][..span.len as usize]);
            Span { offset, len: span.len }
        };
        for slot in &mut self.slots {
            slot.start = copy(&mut self.bytes, slot.start);
            slot.end = copy(&mut self.bytes, slot.end);
            slot.reach = if self.leaf { slot.end } else { copy(&mut self.bytes, slot.reach) };
        }
        self.garbage = 0;
    }

    /// Recomputes each slot's `furthest` and the node's [`Lookup`], and reclaims the buffer's garbage once it is the majority.
    fn refresh(&mut self) {
        if self.garbage * 2 > self.bytes.len() {
            self.compact();
        }
        let mut furthest = 0;
        for at in 0..self.slots.len() {
            if self.key(self.slots[at].reach) > self.key(self.slots[furthest].reach) {
                furthest = at;
            }
            self.slots[at].furthest = furthest as u32;
        }
        // The starts are in order, so what the first and last share, all share.
        let shared = match (self.slots.first(), self.slots.last()) {
            (Some(first), Some(last)) => {
                let (first, last) = (self.key(first.start), self.key(last.start));
                first.iter().zip(last).take_while(|(a, b)| a == b).count().min(PREFIX_CAPACITY)
            }
            _ => 0,
        };
        self.lookup.shared = shared;
        if let Some(first) = self.slots.first() {
            self.lookup.prefix[..shared].copy_from_slice(&self.bytes[first.start.offset as usize..][..shared]);
        }
        for (at, slot) in self.slots.iter().enumerate() {
            self.lookup.starts[at] = self.lookup.code(self.key(slot.start));
            self.lookup.reaches[at] = self.lookup.code(self.key(slot.reach));
            self.lookup.children[at] = slot.child;
        }
        for at in 0..self.slots.len() {
            self.lookup.limits[at] = self.lookup.reaches[self.slots[at].furthest()];
        }
    }

    /// How many slots start at or before `key`, whose code is `code`.
    fn started(&self, key: &[u8], code: u64) -> usize {
        let (mut low, mut high) = (0, self.slots.len());
        while low < high {
            let middle = (low + high) / 2;
            let start = self.lookup.starts[middle];
            if start < code || (start == code && self.key(self.slots[middle].start) <= key) {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        low
    }
}

impl Lookup {
    /// A number ordered as keys are: 0 for keys before `prefix`, the 8 bytes after it (zero-padded)
    /// for keys beginning with it, `u64::MAX` for keys after it.
    fn code(&self, key: &[u8]) -> u64 {
        match key[..key.len().min(self.shared)].cmp(&self.prefix[..self.shared]) {
            Ordering::Less => 0,
            Ordering::Greater => u64::MAX,
            Ordering::Equal => {
                let mut bytes = [0; 8];
                let rest = &key[self.shared..];
                let len = rest.len().min(8);
                bytes[..len].copy_from_slice(&rest[..len]);
                u64::from_be_bytes(bytes)
            }
        }
    }
}

/// Half-open intervals `[start, end)` of keys, each with an owner.
pub struct IntervalIndex<T> {
    /// Nodes by id; ids in `free` are unused.
    nodes: Vec<Node<T>>,
    free: Vec<usize>,
    root: usize,
}

impl<T: Copy + Ord> IntervalIndex<T> {
    pub fn new() -> IntervalIndex<T> {
        IntervalIndex { nodes: vec![Node::new(true)], free: Vec::new(), root: 0 }
    }

    pub fn insert(&mut self, start: &[u8], end: &[u8], owner: T) {
        let Some(right) = self.insert_at(self.root, (start, end, owner)) else { return };
        let left = self.root;
        self.root = self.allocate(Node::new(false));
        self.adopt(self.root, 0, left);
        self.adopt(self.root, 1, right);
        self.nodes[self.root].refresh();
    }

    /// Removes an interval that [`IntervalIndex::insert`] added (one of them, if added twice).
    pub fn remove(&mut self, start: &[u8], end: &[u8], owner: T) {
        self.remove_at(self.root, (start, end, owner));
        while !self.nodes[self.root].leaf && self.nodes[self.root].slots.len() == 1 {
            let child = self.nodes[self.root].slots[0].child();
            self.release(self.root);
            self.root = child;
        }
    }

    /// Calls `found` with the owner of every interval containing `key`.
    pub fn stab(&self, key: &[u8], found: &mut impl FnMut(T)) {
        // Most often nothing is left to the tree (see `prefix_index.rs`): no key to code then.
        if self.nodes[self.root].slots.is_empty() {
            return;
        }
        self.stab_at(self.root, key, found);
    }

    fn stab_at(&self, id: usize, key: &[u8], found: &mut impl FnMut(T)) {
        let node = &self.nodes[id];
        let lookup = &node.lookup;
        let code = lookup.code(key);
        // Codes decide unless they are equal; then the keys do (and only then are the slots read).
        let after = |coded: u64, slot: &dyn Fn() -> usize| {
            coded > code || (coded == code && node.key(node.slots[slot()].reach) > key)
        };
        for at in (0..node.started(key, code)).rev() {
            if !after(lookup.limits[at], &|| node.slots[at].furthest()) {
                break;
            }
            if after(lookup.reaches[at], &|| at) {
                if node.leaf {
                    found(node.slots[at].owner);
                } else {
                    self.stab_at(lookup.children[at] as usize, key, found);
                }
            }
        }
    }

    fn allocate(&mut self, node: Node<T>) -> usize {
        match self.free.pop() {
            Some(id) => {
                self.nodes[id] = node;
                id
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        }
    }

    fn release(&mut self, id: usize) {
        self.nodes[id] = Node::new(true);
        self.free.push(id);
    }

    /// Adds a slot for `child` at `at` in the inner node `parent`.
    fn adopt(&mut self, parent: usize, at: usize, child: usize) {
        let summary = self.nodes[child].summary();
        let child = u32::try_from(child).expect("fewer than 4 billion nodes");
        self.nodes[parent].push_slot(at, &summary, child);
    }

    /// Updates the slot `at` of the inner node `parent` after its child changed.
    fn resync(&mut self, parent: usize, at: usize) {
        let summary = self.nodes[self.nodes[parent].slots[at].child()].summary();
        self.nodes[parent].set_summary(at, &summary);
    }

    /// Inserts into the subtree at `id`; returns the new node to its right if `id` had to split.
    fn insert_at(&mut self, id: usize, key: (&[u8], &[u8], T)) -> Option<usize> {
        // Whether the new slot is the node's last: inserts in ascending order (as of consecutive
        // values) then leave full nodes behind rather than half-full ones.
        let mut appended = false;
        let node = &mut self.nodes[id];
        if node.leaf {
            let at = node.slots.partition_point(|slot| node.order(slot) < key);
            let (start, end, owner) = key;
            let summary = Summary { start: start.to_vec(), end: end.to_vec(), owner, reach: Vec::new() };
            node.push_slot(at, &summary, 0);
            appended = at + 1 == node.slots.len();
        } else {
            let at = node.route(key);
            let child = node.slots[at].child();
            if let Some(right) = self.insert_at(child, key) {
                self.adopt(id, at + 1, right);
                appended = at + 2 == self.nodes[id].slots.len();
            }
            self.resync(id, at);
        }
        self.nodes[id].refresh();
        if self.nodes[id].slots.len() <= NODE_CAPACITY {
            return None;
        }
        let node = &mut self.nodes[id];
        let keep = if appended { NODE_CAPACITY } else { node.slots.len() / 2 };
        let moved: Vec<Slot<T>> = node.slots.drain(keep..).collect();
        node.slots.shrink_to_fit();
        let mut right = Node::new(node.leaf);
        for slot in &moved {
            node.discard(slot);
            right.push_slot(right.slots.len(), &node.summary_of(slot), slot.child);
        }
        // Half the keys moved out: their room is freed now rather than when more follow.
        node.compact();
        node.refresh();
        right.refresh();
        Some(self.allocate(right))
    }

    fn remove_at(&mut self, id: usize, key: (&[u8], &[u8], T)) {
        let node = &mut self.nodes[id];
        if node.leaf {
            let at = node.slots.partition_point(|slot| node.order(slot) < key);
            assert!(
                at < node.slots.len() && node.order(&node.slots[at]) == key,
                "only intervals in the index are removed"
            );
            node.remove_slot(at);
        } else {
            let at = node.route(key);
            let child = node.slots[at].child();
            self.remove_at(child, key);
            let left = self.nodes[child].slots.len();
            if left == 0 {
                self.nodes[id].remove_slot(at);
                self.release(child);
            } else if left >= NODE_MIN || !self.merge_neighbour(id, at) {
                self.resync(id, at);
            }
        }
        self.nodes[id].refresh();
    }

    /// Merges the child at `at` of `parent` with a neighbour, if both fit in one node.
    fn merge_neighbour(&mut self, parent: usize, at: usize) -> bool {
        let count = self.nodes[parent].slots.len();
        let left = if at + 1 < count {
            at
        } else if at > 0 {
            at - 1
        } else {
            return false;
        };
        let (into, from) = (self.nodes[parent].slots[left].child(), self.nodes[parent].slots[left + 1].child());
        if self.nodes[into].slots.len() + self.nodes[from].slots.len() > NODE_CAPACITY {
            return false;
        }
        let from_node = std::mem::replace(&mut self.nodes[from], Node::new(true));
        let into_node = &mut self.nodes[into];
        for slot in &from_node.slots {
            into_node.push_slot(into_node.slots.len(), &from_node.summary_of(slot), slot.child);
        }
        into_node.refresh();
        self.release(from);
        self.nodes[parent].remove_slot(left + 1);
        self.resync(parent, left);
        true
    }
}

#[cfg(test)]
impl<T: Copy + Ord + std::fmt::Debug> IntervalIndex<T> {
    /// Checks every invariant of the tree and returns how many intervals it holds.
    fn check(&self) -> usize {
        let mut intervals = Vec::new();
        let depth = self.check_at(self.root, &mut intervals);
        assert!(depth >= 1);
        assert!(intervals.is_sorted(), "intervals in order");
        assert_eq!(self.nodes.len() - self.free.len(), self.reachable(self.root), "no node leaks");
        intervals.len()
    }

    fn reachable(&self, id: usize) -> usize {
        let node = &self.nodes[id];
        1 + if node.leaf { 0 } else { node.slots.iter().map(|slot| self.reachable(slot.child())).sum() }
    }

    /// Collects the subtree's intervals; returns its depth (the same along every path).
    fn check_at(&self, id: usize, intervals: &mut Vec<(Vec<u8>, Vec<u8>, T)>) -> usize {
        let node = &self.nodes[id];
        assert!(node.slots.len() <= NODE_CAPACITY);
        assert!(id == self.root || !node.slots.is_empty(), "only the root is ever empty");
        assert!(node.garbage * 2 <= node.bytes.len().max(1), "garbage is reclaimed");
        for (at, slot) in node.slots.iter().enumerate() {
            let furthest = (0..=at).max_by_key(|&before| (node.key(node.slots[before].reach), usize::MAX - before));
            assert_eq!(node.key(node.slots[slot.furthest()].reach), node.key(node.slots[furthest.unwrap()].reach));
            assert!(slot.furthest() <= at);
            let lookup = &node.lookup;
            assert!(node.key(slot.start).starts_with(&lookup.prefix[..lookup.shared]));
            assert_eq!(lookup.starts[at], lookup.code(node.key(slot.start)));
            assert_eq!(lookup.reaches[at], lookup.code(node.key(slot.reach)));
            assert_eq!(lookup.limits[at], lookup.code(node.key(node.slots[slot.furthest()].reach)));
            assert!(node.leaf || lookup.children[at] == slot.child);
        }
        if node.leaf {
            for slot in &node.slots {
                assert_eq!(node.key(slot.reach), node.key(slot.end));
                intervals.push((node.key(slot.start).to_vec(), node.key(slot.end).to_vec(), slot.owner));
            }
            return 1;
        }
        assert!(id != self.root || node.slots.len() >= 2, "a root with one child is replaced by it");
        let mut depths = Vec::new();
        for slot in &node.slots {
            let first = intervals.len();
            depths.push(self.check_at(slot.child(), intervals));
            let below = &intervals[first..];
            assert_eq!(
                (node.key(slot.start), node.key(slot.end), slot.owner),
                (below[0].0.as_slice(), below[0].1.as_slice(), below[0].2),
                "a slot knows its child's first interval"
            );
            let reach = below.iter().map(|(_, end, _)| end.as_slice()).max().expect("children are not empty");
            assert_eq!(node.key(slot.reach), reach, "a slot knows its child's largest end");
        }
        assert!(depths.windows(2).all(|pair| pair[0] == pair[1]), "all leaves at one depth");
        depths[0] + 1
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn stab(index: &IntervalIndex<u32>, key: &[u8]) -> BTreeSet<u32> {
        let mut found = BTreeSet::new();
        index.stab(key, &mut |owner| {
            assert!(found.insert(owner), "each interval is reported once");
        });
        found
    }

    /// SplitMix64: deterministic, so a failing test fails the same way again.
    fn random(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    #[test]
    fn finds_exactly_the_intervals_containing_a_key() {
        let mut index = IntervalIndex::new();
        index.insert(b"b", b"d", 1);
        index.insert(b"a", b"z", 2);
        index.insert(b"c", b"c\0", 3);
        assert_eq!(stab(&index, b"a"), BTreeSet::from([2]));
        assert_eq!(stab(&index, b"b"), BTreeSet::from([1, 2]));
        assert_eq!(stab(&index, b"c"), BTreeSet::from([1, 2, 3]));
        // Ends are exclusive.
        assert_eq!(stab(&index, b"d"), BTreeSet::from([2]));
        assert_eq!(stab(&index, b"z"), BTreeSet::new());
        index.remove(b"b", b"d", 1);
        assert_eq!(stab(&index, b"c"), BTreeSet::from([2, 3]));
        assert_eq!(index.check(), 2);
    }

    /// A key of 1 to 4 bytes: short keys, shared prefixes and keys that are prefixes of others.
    fn key(state: &mut u64) -> Vec<u8> {
        let len = 1 + random(state) % 4;
        (0..len).map(|_| b"abcd"[(random(state) % 4) as usize]).collect()
    }

    /// Against a brute-force list, through inserts and removes that grow the tree several levels
    /// deep, split, merge and shrink it, with intervals of every length (some shared by owners, some
    /// empty) and checking every invariant of the tree after each change.
    #[test]
    fn agrees_with_a_linear_scan() {
        let mut index = IntervalIndex::new();
        let mut live: Vec<(Vec<u8>, Vec<u8>, u32)> = Vec::new();
        let mut state = 7;
        // Grows to over a thousand intervals (three levels), then shrinks to a few, then to none.
        for step in 0..12_000u32 {
            let growing = step < 6_000;
            let removals_in_8 = if growing { 3 } else { 7 };
            let remove = !live.is_empty() && random(&mut state) % 8 < removals_in_8;
            if remove {
                let (start, end, owner) = live.swap_remove((random(&mut state) % live.len() as u64) as usize);
                index.remove(&start, &end, owner);
            } else {
                let (start, end) = match random(&mut state) % 4 {
                    // Shared by several owners: the same interval as a live one.
                    0 if !live.is_empty() => {
                        let (start, end, _) = &live[(random(&mut state) % live.len() as u64) as usize];
                        (start.clone(), end.clone())
                    }
                    _ => {
                        let (a, b) = (key(&mut state), key(&mut state));
                        (a.clone().min(b.clone()), a.max(b))
                    }
                };
                index.insert(&start, &end, step);
                live.push((start, end, step));
            }
            if step % 8 == 0 {
                assert_eq!(index.check(), live.len());
            }
            for _ in 0..3 {
                let probe = key(&mut state);
                let expected: BTreeSet<u32> = live
                    .iter()
                    .filter(|(start, end, _)| start.as_slice() <= probe.as_slice() && probe.as_slice() < end.as_slice())
                    .map(|(.., owner)| *owner)
                    .collect();
                assert_eq!(stab(&index, &probe), expected, "stabbing {probe:?}");
            }
        }
        while let Some((start, end, owner)) = live.pop() {
            index.remove(&start, &end, owner);
            assert_eq!(index.check(), live.len());
        }
        assert_eq!(index.nodes.len() - index.free.len(), 1, "an empty index is one empty leaf");
    }

    /// Many disjoint intervals, inserted in order (as registrations of consecutive values are), at
    /// three levels deep: each key is found in its own interval only.
    #[test]
    fn finds_one_of_many_disjoint_intervals() {
        let mut index = IntervalIndex::new();
        let bound = |value: u32| [&[3u8][..], &value.to_be_bytes()].concat();
        for value in 0..50_000 {
            index.insert(&bound(value), &bound(value + 1), value);
        }
        assert_eq!(index.check(), 50_000);
        for value in (0..50_000).step_by(997) {
            assert_eq!(stab(&index, &[bound(value), vec![7; 16]].concat()), BTreeSet::from([value]));
        }
        assert_eq!(stab(&index, &[1]), BTreeSet::new());
        assert_eq!(stab(&index, &bound(50_000)), BTreeSet::new());
    }
}
