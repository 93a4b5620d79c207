//! An interval tree over global index keys: which registered intervals contain a written key.
//!
//! A treap ordered by `(start, end, owner)` whose nodes also know the largest `end` in their
//! subtree, so a lookup skips every subtree that ends before the key and every right subtree that
//! starts after it: O(log n + k log n) for k matches, and idle intervals far from the key cost
//! nothing. Nodes live in one arena, addressed by index, so the tree needs no unsafe code and no
//! per-node allocation beyond the keys.

/// Where an interval lives in the index, to remove it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntervalHandle(usize);

struct Node<T> {
    start: Vec<u8>,
    end: Vec<u8>,
    owner: T,
    priority: u64,
    left: Option<usize>,
    right: Option<usize>,
    /// The node with the largest `end` in this subtree (itself included).
    max_end: usize,
}

/// Half-open intervals `[start, end)` of keys, each with an owner.
pub struct IntervalIndex<T> {
    nodes: Vec<Option<Node<T>>>,
    free: Vec<usize>,
    root: Option<usize>,
    /// Priorities come from a counter scrambled by SplitMix64: random enough to keep the treap
    /// balanced in expectation, and deterministic, so a failing test fails the same way again.
    counter: u64,
}

impl<T: Copy + Ord> IntervalIndex<T> {
    pub fn new() -> IntervalIndex<T> {
        IntervalIndex { nodes: Vec::new(), free: Vec::new(), root: None, counter: 0 }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.nodes.len() - self.free.len()
    }

    pub fn insert(&mut self, start: Vec<u8>, end: Vec<u8>, owner: T) -> IntervalHandle {
        self.counter += 1;
        let priority = splitmix64(self.counter);
        let node = Node { start, end, owner, priority, left: None, right: None, max_end: 0 };
        let id = match self.free.pop() {
            Some(id) => {
                self.nodes[id] = Some(node);
                id
            }
            None => {
                self.nodes.push(Some(node));
                self.nodes.len() - 1
            }
        };
        self.node_mut(id).max_end = id;
        self.root = Some(self.insert_at(self.root, id));
        IntervalHandle(id)
    }

    /// Removes an interval that [`IntervalIndex::insert`] returned the handle of.
    pub fn remove(&mut self, handle: IntervalHandle) {
        self.root = self.remove_at(self.root, handle.0);
        self.nodes[handle.0] = None;
        self.free.push(handle.0);
    }

    /// Calls `found` with the owner of every interval containing `key`.
    pub fn stab(&self, key: &[u8], found: &mut impl FnMut(T)) {
        self.stab_at(self.root, key, found);
    }

    fn stab_at(&self, at: Option<usize>, key: &[u8], found: &mut impl FnMut(T)) {
        let Some(id) = at else { return };
        let node = self.node(id);
        if self.node(node.max_end).end.as_slice() <= key {
            return;
        }
        self.stab_at(node.left, key, found);
        if node.start.as_slice() <= key {
            if key < node.end.as_slice() {
                found(node.owner);
            }
            self.stab_at(node.right, key, found);
        }
    }

    fn node(&self, id: usize) -> &Node<T> {
        self.nodes[id].as_ref().expect("live node")
    }

    fn node_mut(&mut self, id: usize) -> &mut Node<T> {
        self.nodes[id].as_mut().expect("live node")
    }

    fn less(&self, a: usize, b: usize) -> bool {
        let (a, b) = (self.node(a), self.node(b));
        (&a.start, &a.end, a.owner) < (&b.start, &b.end, b.owner)
    }

    fn update(&mut self, id: usize) {
        let node = self.node(id);
        let mut max_end = id;
        for child in [node.left, node.right].into_iter().flatten() {
            let candidate = self.node(child).max_end;
            if self.node(candidate).end > self.node(max_end).end {
                max_end = candidate;
            }
        }
        self.node_mut(id).max_end = max_end;
    }

    fn insert_at(&mut self, at: Option<usize>, id: usize) -> usize {
        let Some(root) = at else { return id };
        if self.node(id).priority > self.node(root).priority {
            let (left, right) = self.split(Some(root), id);
            let node = self.node_mut(id);
            node.left = left;
            node.right = right;
            self.update(id);
            return id;
        }
        if self.less(id, root) {
            let left = self.insert_at(self.node(root).left, id);
            self.node_mut(root).left = Some(left);
        } else {
            let right = self.insert_at(self.node(root).right, id);
            self.node_mut(root).right = Some(right);
        }
        self.update(root);
        root
    }

    /// Splits the subtree at `at` into the nodes ordered before `pivot` and the rest.
    fn split(&mut self, at: Option<usize>, pivot: usize) -> (Option<usize>, Option<usize>) {
        let Some(root) = at else { return (None, None) };
        if self.less(root, pivot) {
            let (left, right) = self.split(self.node(root).right, pivot);
            self.node_mut(root).right = left;
            self.update(root);
            (Some(root), right)
        } else {
            let (left, right) = self.split(self.node(root).left, pivot);
            self.node_mut(root).left = right;
            self.update(root);
            (left, Some(root))
        }
    }

    fn remove_at(&mut self, at: Option<usize>, id: usize) -> Option<usize> {
        let root = at.expect("the handle's interval is in the index");
        if root == id {
            let node = self.node(id);
            return self.merge(node.left, node.right);
        }
        if self.less(id, root) {
            let left = self.remove_at(self.node(root).left, id);
            self.node_mut(root).left = left;
        } else {
            let right = self.remove_at(self.node(root).right, id);
            self.node_mut(root).right = right;
        }
        self.update(root);
        Some(root)
    }

    /// Joins two subtrees, every node of `left` ordered before every node of `right`.
    fn merge(&mut self, left: Option<usize>, right: Option<usize>) -> Option<usize> {
        let (Some(l), Some(r)) = (left, right) else { return left.or(right) };
        if self.node(l).priority > self.node(r).priority {
            let merged = self.merge(self.node(l).right, Some(r));
            self.node_mut(l).right = merged;
            self.update(l);
            Some(l)
        } else {
            let merged = self.merge(Some(l), self.node(r).left);
            self.node_mut(r).left = merged;
            self.update(r);
            Some(r)
        }
    }
}

fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
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

    #[test]
    fn finds_exactly_the_intervals_containing_a_key() {
        let mut index = IntervalIndex::new();
        let a = index.insert(b"b".to_vec(), b"d".to_vec(), 1);
        index.insert(b"a".to_vec(), b"z".to_vec(), 2);
        index.insert(b"c".to_vec(), b"c\0".to_vec(), 3);
        assert_eq!(stab(&index, b"a"), BTreeSet::from([2]));
        assert_eq!(stab(&index, b"b"), BTreeSet::from([1, 2]));
        assert_eq!(stab(&index, b"c"), BTreeSet::from([1, 2, 3]));
        // Ends are exclusive.
        assert_eq!(stab(&index, b"d"), BTreeSet::from([2]));
        assert_eq!(stab(&index, b"z"), BTreeSet::new());
        index.remove(a);
        assert_eq!(stab(&index, b"c"), BTreeSet::from([2, 3]));
        assert_eq!(index.len(), 2);
    }

    /// Against a brute-force list, through many inserts and removes that reuse arena slots.
    #[test]
    fn agrees_with_a_linear_scan() {
        let mut index = IntervalIndex::new();
        let mut live: Vec<(IntervalHandle, u8, u8, u32)> = Vec::new();
        let mut random = 7u64;
        let mut next = || {
            random = splitmix64(random);
            random
        };
        for owner in 0..2_000u32 {
            if next() % 3 == 0 && !live.is_empty() {
                let (handle, ..) = live.swap_remove((next() % live.len() as u64) as usize);
                index.remove(handle);
            }
            let start = (next() % 200) as u8;
            let end = start.saturating_add((next() % 30) as u8 + 1);
            live.push((index.insert(vec![start], vec![end], owner), start, end, owner));
            let key = (next() % 256) as u8;
            let expected: BTreeSet<u32> =
                live.iter().filter(|(_, s, e, _)| *s <= key && key < *e).map(|(.., owner)| *owner).collect();
            assert_eq!(stab(&index, &[key]), expected);
        }
        assert_eq!(index.len(), live.len());
    }
}
