//! A persistent (copy-on-write) B-tree from byte-string keys to values, with a count of entries in
//! every subtree.
//!
//! It is the store's index structure. Persistent: cloning a tree is O(1) and an update copies only
//! the nodes on its path, so every commit can publish a snapshot. Counted: the number of keys in a
//! range and the key at a given position take O(log n), which is what reactive counts and
//! jump-to-offset pagination need without reading the documents in between.

use std::ops::Bound;
use std::sync::Arc;

/// Entries in a leaf and children of a branch, at most. A node is split when it would exceed this.
/// Every commit copies the nodes on its paths and later frees the copies it replaced, touching the
/// reference count of every key and document in them: smaller nodes make both cheaper (with 32
/// rather than 64, a random insert touches about 40% fewer), for one more level in a tree of a
/// million keys.
const CAPACITY: usize = 32;
/// A node smaller than this is merged with a neighbour when the two fit in one node.
const MERGE_BELOW: usize = CAPACITY / 4;

pub(crate) type Key = Arc<[u8]>;

#[derive(Clone)]
pub(crate) struct CountedTree<V: Clone> {
    root: Arc<Node<V>>,
}

/// Each node keeps its entries in one vector, so copying a node on write is two allocations (the
/// node and its vector) whatever its size.
enum Node<V: Clone> {
    Leaf(Vec<(Key, V)>),
    Branch { children: Vec<Child<V>>, total: usize },
}

/// A node is copied (on write) to be changed, most often to take one more entry: the copy has room
/// for it, so the insert that follows does not allocate and move the whole vector a second time.
impl<V: Clone> Clone for Node<V> {
    fn clone(&self) -> Self {
        fn copy_with_room<T: Clone>(items: &[T]) -> Vec<T> {
            let mut copy = Vec::with_capacity(items.len() + 1);
            copy.extend_from_slice(items);
            copy
        }
        match self {
            Node::Leaf(entries) => Node::Leaf(copy_with_room(entries)),
            Node::Branch { children, total } => Node::Branch { children: copy_with_room(children), total: *total },
        }
    }
}

/// A branch's child `i` holds keys `>= low` of child `i` and `<` the `low` of child `i + 1`. A `low`
/// may be a key that was since removed: it stays a valid separator.
#[derive(Clone)]
struct Child<V: Clone> {
    low: Key,
    count: usize,
    node: Arc<Node<V>>,
}

impl<V: Clone> Node<V> {
    fn len(&self) -> usize {
        match self {
            Node::Leaf(entries) => entries.len(),
            Node::Branch { total, .. } => *total,
        }
    }

    fn width(&self) -> usize {
        match self {
            Node::Leaf(entries) => entries.len(),
            Node::Branch { children, .. } => children.len(),
        }
    }

    fn first_key(&self) -> &Key {
        match self {
            Node::Leaf(entries) => &entries[0].0,
            Node::Branch { children, .. } => &children[0].low,
        }
    }
}

/// The child of a branch whose key range holds `key`.
fn child_index<V: Clone>(children: &[Child<V>], key: &[u8]) -> usize {
    children.partition_point(|child| *child.low <= *key).saturating_sub(1)
}

fn leaf_search<V>(entries: &[(Key, V)], key: &[u8]) -> Result<usize, usize> {
    entries.binary_search_by(|(probe, _)| (**probe).cmp(key))
}

impl<V: Clone> Default for CountedTree<V> {
    fn default() -> Self {
        CountedTree { root: Arc::new(Node::Leaf(Vec::new())) }
    }
}

impl<V: Clone> CountedTree<V> {
    pub(crate) fn len(&self) -> usize {
        self.root.len()
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<&V> {
        let mut node = &*self.root;
        loop {
            match node {
                Node::Leaf(entries) => return leaf_search(entries, key).ok().map(|index| &entries[index].1),
                Node::Branch { children, .. } => node = &children[child_index(children, key)].node,
            }
        }
    }

    /// Inserts or replaces; returns the replaced value.
    pub(crate) fn insert(&mut self, key: Key, value: V) -> Option<V> {
        let (replaced, split) = insert_into(&mut self.root, key, value);
        if let Some(right) = split {
            let left = std::mem::replace(&mut self.root, Arc::new(Node::Leaf(Vec::new())));
            let children = vec![child(left), child(right)];
            let total = children.iter().map(|child| child.count).sum();
            self.root = Arc::new(Node::Branch { children, total });
        }
        replaced
    }

    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<V> {
        let removed = remove_from(&mut self.root, key);
        // A branch left with one child is replaced by it, so the tree gets lower as it empties.
        while let Node::Branch { children, .. } = &*self.root
            && children.len() == 1
        {
            self.root = Arc::clone(&children[0].node);
        }
        removed
    }

    /// Up to `limit` entries within `(lower, upper)`, in ascending or descending order.
    pub(crate) fn range(
        &self,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        descending: bool,
        limit: usize,
    ) -> Vec<(Key, V)> {
        let mut out = Vec::with_capacity(limit.min(CAPACITY));
        if limit > 0 {
            collect(&self.root, lower, upper, descending, limit, &mut out);
        }
        out
    }

    /// Number of keys within `(lower, upper)`, in O(log n).
    pub(crate) fn count(&self, lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> usize {
        let before_upper = match upper {
            Bound::Included(key) => self.count_before(key, true),
            Bound::Excluded(key) => self.count_before(key, false),
            Bound::Unbounded => self.len(),
        };
        let before_lower = match lower {
            Bound::Included(key) => self.count_before(key, false),
            Bound::Excluded(key) => self.count_before(key, true),
            Bound::Unbounded => 0,
        };
        before_upper.saturating_sub(before_lower)
    }

    /// Number of keys less than `key`, or less than or equal to it when `inclusive`.
    fn count_before(&self, key: &[u8], inclusive: bool) -> usize {
        let before = |probe: &Key| if inclusive { **probe <= *key } else { **probe < *key };
        let mut count = 0;
        let mut node = &*self.root;
        loop {
            match node {
                Node::Leaf(entries) => return count + entries.partition_point(|(probe, _)| before(probe)),
                Node::Branch { children, .. } => {
                    let index = child_index(children, key);
                    count += children[..index].iter().map(|child| child.count).sum::<usize>();
                    node = &children[index].node;
                }
            }
        }
    }

    /// The entry at position `position` (0-based) in key order.
    pub(crate) fn select(&self, mut position: usize) -> Option<(&Key, &V)> {
        let mut node = &*self.root;
        loop {
            match node {
                Node::Leaf(entries) => return entries.get(position).map(|(key, value)| (key, value)),
                Node::Branch { children, .. } => {
                    let child = children.iter().find(|child| {
                        if position < child.count {
                            return true;
                        }
                        position -= child.count;
                        false
                    })?;
                    node = &child.node;
                }
            }
        }
    }

    /// Every value in key order.
    pub(crate) fn values(&self) -> Vec<V> {
        self.range(Bound::Unbounded, Bound::Unbounded, false, usize::MAX).into_iter().map(|(_, value)| value).collect()
    }
}

impl<V: Clone> FromIterator<(Key, V)> for CountedTree<V> {
    fn from_iter<I: IntoIterator<Item = (Key, V)>>(entries: I) -> Self {
        let mut tree = CountedTree::default();
        for (key, value) in entries {
            tree.insert(key, value);
        }
        tree
    }
}

fn child<V: Clone>(node: Arc<Node<V>>) -> Child<V> {
    Child { low: node.first_key().clone(), count: node.len(), node }
}

/// Inserts into the subtree; returns the replaced value and, when the node split, its new right half.
fn insert_into<V: Clone>(node: &mut Arc<Node<V>>, key: Key, value: V) -> (Option<V>, Option<Arc<Node<V>>>) {
    match Arc::make_mut(node) {
        Node::Leaf(entries) => {
            let replaced = match leaf_search(entries, &key) {
                Ok(index) => Some(std::mem::replace(&mut entries[index].1, value)),
                Err(index) => {
                    entries.insert(index, (key, value));
                    None
                }
            };
            if entries.len() <= CAPACITY {
                return (replaced, None);
            }
            let right = entries.split_off(entries.len() / 2);
            (replaced, Some(Arc::new(Node::Leaf(right))))
        }
        Node::Branch { children, total } => {
            let index = child_index(children, &key);
            if *key < *children[index].low {
                children[index].low = key.clone(); // A new smallest key of the whole subtree.
            }
            let (replaced, split) = insert_into(&mut children[index].node, key, value);
            if replaced.is_none() {
                children[index].count += 1;
                *total += 1;
            }
            let Some(right) = split else { return (replaced, None) };
            children[index].count = children[index].node.len();
            children.insert(index + 1, child(right));
            if children.len() <= CAPACITY {
                return (replaced, None);
            }
            let right_children = children.split_off(children.len() / 2);
            let right_total = right_children.iter().map(|child| child.count).sum();
            *total -= right_total;
            (replaced, Some(Arc::new(Node::Branch { children: right_children, total: right_total })))
        }
    }
}

fn remove_from<V: Clone>(node: &mut Arc<Node<V>>, key: &[u8]) -> Option<V> {
    // Look before copying: a miss must not copy the path.
    let index = match &**node {
        Node::Leaf(entries) => leaf_search(entries, key).ok()?,
        Node::Branch { children, .. } => child_index(children, key),
    };
    match Arc::make_mut(node) {
        Node::Leaf(entries) => Some(entries.remove(index).1),
        Node::Branch { children, total } => {
            let removed = remove_from(&mut children[index].node, key)?;
            children[index].count -= 1;
            *total -= 1;
            if children[index].count == 0 {
                children.remove(index);
            } else if children[index].node.width() < MERGE_BELOW && children.len() > 1 {
                let left = if index + 1 < children.len() { index } else { index - 1 };
                if children[left].node.width() + children[left + 1].node.width() <= CAPACITY {
                    let right = children.remove(left + 1);
                    merge(&mut children[left].node, &right.node);
                    children[left].count += right.count;
                }
            }
            Some(removed)
        }
    }
}

/// Appends the entries (or children) of `right` to `left`, its left neighbour at the same depth.
fn merge<V: Clone>(left: &mut Arc<Node<V>>, right: &Node<V>) {
    match (Arc::make_mut(left), right) {
        (Node::Leaf(entries), Node::Leaf(right_entries)) => entries.extend(right_entries.iter().cloned()),
        (Node::Branch { children, total }, Node::Branch { children: right_children, total: right_total }) => {
            children.extend(right_children.iter().cloned());
            *total += right_total;
        }
        _ => unreachable!("siblings are at the same depth"),
    }
}

/// Collects entries in order until `limit`; returns whether the caller should stop (limit reached or
/// past the far bound).
fn collect<V: Clone>(
    node: &Node<V>,
    lower: Bound<&[u8]>,
    upper: Bound<&[u8]>,
    descending: bool,
    limit: usize,
    out: &mut Vec<(Key, V)>,
) -> bool {
    match node {
        Node::Leaf(entries) => {
            let start = entries.partition_point(|(key, _)| match lower {
                Bound::Included(bound) => **key < *bound,
                Bound::Excluded(bound) => **key <= *bound,
                Bound::Unbounded => false,
            });
            let end = entries.partition_point(|(key, _)| match upper {
                Bound::Included(bound) => **key <= *bound,
                Bound::Excluded(bound) => **key < *bound,
                Bound::Unbounded => true,
            });
            if start < end {
                let take = (end - start).min(limit - out.len());
                if descending {
                    out.extend(entries[end - take..end].iter().rev().cloned());
                } else {
                    out.extend(entries[start..start + take].iter().cloned());
                }
            }
            // Keys on the far side of the range in this leaf mean no later leaf can have any.
            out.len() >= limit || if descending { start > 0 } else { end < entries.len() }
        }
        Node::Branch { children, .. } => {
            let first = match lower {
                Bound::Included(key) | Bound::Excluded(key) => child_index(children, key),
                Bound::Unbounded => 0,
            };
            let last = match upper {
                Bound::Included(key) | Bound::Excluded(key) => child_index(children, key),
                Bound::Unbounded => children.len() - 1,
            };
            if first > last {
                return out.len() >= limit;
            }
            let mut visit = |index: usize| collect(&children[index].node, lower, upper, descending, limit, out);
            if descending { (first..=last).rev().any(&mut visit) } else { (first..=last).any(&mut visit) }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    /// Checks the structure: sorted keys, separators, counts, widths, and every leaf at one depth.
    /// Returns the tree's height.
    fn check<V: Clone>(node: &Node<V>, lower: Option<&[u8]>, upper: Option<&[u8]>) -> usize {
        assert!(node.width() <= CAPACITY);
        let in_bounds = |key: &[u8]| lower.is_none_or(|low| key >= low) && upper.is_none_or(|high| key < high);
        match node {
            Node::Leaf(entries) => {
                assert!(entries.windows(2).all(|pair| pair[0].0 < pair[1].0));
                assert!(entries.iter().all(|(key, _)| in_bounds(key)));
                1
            }
            Node::Branch { children, total } => {
                assert!(!children.is_empty());
                assert!(children.windows(2).all(|pair| pair[0].low < pair[1].low));
                assert_eq!(*total, children.iter().map(|child| child.count).sum::<usize>());
                let heights: Vec<usize> = (0..children.len())
                    .map(|index| {
                        assert_eq!(children[index].count, children[index].node.len());
                        assert!(children[index].count > 0, "empty children are removed");
                        let low = if index == 0 { lower } else { Some(&*children[index].low) };
                        let high = children.get(index + 1).map(|child| &*child.low).or(upper);
                        check(&children[index].node, low, high)
                    })
                    .collect();
                assert!(heights.windows(2).all(|pair| pair[0] == pair[1]), "leaves at one depth");
                heights[0] + 1
            }
        }
    }

    #[test]
    fn large_trees_keep_their_shape_while_growing_and_emptying() {
        let mut tree = CountedTree::default();
        let count = 300_000u32;
        // A stride coprime to the count visits every key once, in a scattered order.
        let scattered = |i: u32| (u64::from(i) * 7_919 % u64::from(count)) as u32;
        for i in 0..count {
            let k = scattered(i);
            assert_eq!(tree.insert(k.to_be_bytes().to_vec().into(), k), None);
        }
        assert_eq!(tree.len(), count as usize);
        assert!(check(&tree.root, None, None) >= 3, "300,000 keys need at least three levels");
        assert_eq!(tree.select(123_456).map(|(_, value)| *value), Some(123_456));
        let middle = 150_000u32.to_be_bytes();
        assert_eq!(tree.count(Bound::Included(&middle), Bound::Unbounded), 150_000);
        for i in 0..count - 10 {
            let k = scattered(i);
            assert_eq!(tree.remove(&k.to_be_bytes()), Some(k));
            if i % 50_000 == 0 {
                check(&tree.root, None, None);
            }
        }
        assert_eq!(tree.len(), 10);
        assert_eq!(check(&tree.root, None, None), 1, "an almost empty tree is one leaf again");
    }

    fn key(n: u16) -> Key {
        n.to_be_bytes().to_vec().into()
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u16, u32),
        Remove(u16),
        /// Removes a run of keys, to drive merges and root collapses.
        RemoveRange(u16, u16),
    }

    fn bound(kind: u8, n: u16) -> Bound<Vec<u8>> {
        match kind % 3 {
            0 => Bound::Included(n.to_be_bytes().to_vec()),
            1 => Bound::Excluded(n.to_be_bytes().to_vec()),
            _ => Bound::Unbounded,
        }
    }

    fn as_ref(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
        bound.as_ref().map(Vec::as_slice)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn behaves_like_a_btreemap(
            ops in prop::collection::vec(prop_oneof![
                6 => (0..3000u16, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
                3 => (0..3000u16).prop_map(Op::Remove),
                1 => (0..3000u16, 0..400u16).prop_map(|(k, n)| Op::RemoveRange(k, n)),
            ], 1..3000),
            probes in prop::collection::vec((any::<u8>(), 0..3000u16, any::<u8>(), 0..3000u16, any::<bool>(), 0..200usize), 16),
        ) {
            let mut tree = CountedTree::default();
            let mut model = BTreeMap::new();
            let mut snapshots = Vec::new();
            for (step, op) in ops.iter().enumerate() {
                match *op {
                    Op::Insert(k, v) => prop_assert_eq!(tree.insert(key(k), v), model.insert(k, v)),
                    Op::Remove(k) => prop_assert_eq!(tree.remove(&key(k)), model.remove(&k)),
                    Op::RemoveRange(k, n) => {
                        for k in k..k.saturating_add(n) {
                            prop_assert_eq!(tree.remove(&key(k)), model.remove(&k));
                        }
                    }
                }
                prop_assert_eq!(tree.len(), model.len());
                if step % 500 == 0 {
                    snapshots.push((tree.clone(), model.clone()));
                }
            }
            let expected: Vec<(u16, u32)> = model.iter().map(|(k, v)| (*k, *v)).collect();
            let actual: Vec<(u16, u32)> = tree
                .range(Bound::Unbounded, Bound::Unbounded, false, usize::MAX)
                .into_iter()
                .map(|(k, v)| (u16::from_be_bytes([k[0], k[1]]), v))
                .collect();
            prop_assert_eq!(&actual, &expected);
            check(&tree.root, None, None);
            for (position, (k, v)) in expected.iter().enumerate() {
                prop_assert_eq!(tree.get(&key(*k)), Some(v));
                let (selected, value) = tree.select(position).unwrap();
                prop_assert_eq!((&**selected, value), (&key(*k)[..], v));
            }
            prop_assert!(tree.select(expected.len()).is_none());
            for (lower_kind, lower, upper_kind, upper, descending, limit) in probes {
                let (lower, upper) = (bound(lower_kind, lower), bound(upper_kind, upper));
                let in_range: Vec<u16> = model
                    .keys()
                    .copied()
                    .filter(|k| {
                        use std::ops::RangeBounds;
                        let key: &[u8] = &k.to_be_bytes();
                        RangeBounds::<&[u8]>::contains(&(as_ref(&lower), as_ref(&upper)), &key)
                    })
                    .collect();
                let mut expected = in_range.clone();
                if descending {
                    expected.reverse();
                }
                expected.truncate(limit);
                let actual: Vec<u16> = tree
                    .range(as_ref(&lower), as_ref(&upper), descending, limit)
                    .into_iter()
                    .map(|(k, _)| u16::from_be_bytes([k[0], k[1]]))
                    .collect();
                prop_assert_eq!(actual, expected);
                prop_assert_eq!(tree.count(as_ref(&lower), as_ref(&upper)), in_range.len());
            }
            // Old versions are untouched by later writes.
            for (snapshot, model) in snapshots {
                let actual: Vec<u16> = snapshot
                    .range(Bound::Unbounded, Bound::Unbounded, false, usize::MAX)
                    .into_iter()
                    .map(|(k, _)| u16::from_be_bytes([k[0], k[1]]))
                    .collect();
                prop_assert_eq!(actual, model.keys().copied().collect::<Vec<_>>());
            }
        }
    }
}
