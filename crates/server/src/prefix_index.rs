//! An index of the intervals that lie within one key prefix: those a written key is matched
//! against by hashing, in a time that does not grow with how many there are.
//!
//! Almost every live query reads such intervals: an equality on an index's leading fields reads
//! every key starting with the index's prefix and the values it is equal to, `[P, successor(P))`
//! (`db.get` and `.first()` read from `P` to just after one key, `[P, P ++ rest)`). A written key
//! lies in one exactly when it starts with `P` and, for a bounded one, what follows `P` sorts
//! before `rest`. Index keys are encoded values one after another, so a `P` made of whole values
//! is a prefix of a written key exactly when it ends at one of the key's boundaries
//! ([`key_boundaries`]): a lookup hashes the key's prefixes at the boundaries where some `P` of its
//! index ends, at most one per indexed field, whatever the number of intervals.
//!
//! Intervals of other shapes (ranges of values, pages' pinned ends) are not taken: see
//! [`crate::interval_index`].

mod table;

use std::collections::{BTreeSet, HashMap};
use std::hash::BuildHasherDefault;

use livebase_store::{key_boundaries, prefix_successor};
use rustc_hash::FxHasher;

use self::table::{Keyed, PrefixTable};

/// Intervals `[P, end)` where `P` is an index prefix followed by whole encoded values and every
/// key of the interval starts with `P`, each with an owner.
pub struct PrefixIndex<T> {
    /// By index prefix (the key's bytes up to its first boundary). Index prefixes are the schema's,
    /// not what clients send, so a fast hash without protection against chosen collisions will do.
    indexes: HashMap<Box<[u8]>, IndexPrefixes<T>, BuildHasherDefault<FxHasher>>,
}

/// The prefixes registered in one index.
struct IndexPrefixes<T> {
    /// By the bytes of `P` after the index prefix.
    prefixes: PrefixTable<Prefix<T>>,
    /// How many of `prefixes` are made of each number of values: the boundaries of a written key
    /// worth a lookup. No trailing zero, so its length bounds how far a written key is split.
    by_values: Vec<usize>,
}

/// One `P` and the intervals starting at it.
struct Prefix<T> {
    key: PrefixKey,
    owners: Owners<T>,
}

impl<T> Keyed for Prefix<T> {
    fn key(&self) -> &[u8] {
        self.key.prefix()
    }
}

/// The bytes of a `P` after its index prefix and, when one interval starts at `P`, the rest of
/// that interval's end: kept together, so a lookup that finds `P` has its end at hand too.
struct PrefixKey {
    bytes: KeyBytes,
    /// Where `P` ends in `bytes`.
    len: usize,
}

/// How many bytes a [`PrefixKey`] keeps in the table's own slot, without an allocation: enough for
/// a value or two and the rest of one key (`.first()` of an equality on a number: its `P` is 9
/// bytes, the rest of its end 9 for the creation time, up to 40 for the id, 1 past the key), so
/// a lookup that finds `P` reads no memory elsewhere: all of it is in the table's slot.
const INLINE_KEY_BYTES: usize = 62;

enum KeyBytes {
    Inline { len: u8, bytes: [u8; INLINE_KEY_BYTES] },
    Allocated(Box<[u8]>),
}

impl KeyBytes {
    fn get(&self) -> &[u8] {
        match self {
            KeyBytes::Inline { len, bytes } => &bytes[..usize::from(*len)],
            KeyBytes::Allocated(bytes) => bytes,
        }
    }
}

impl PrefixKey {
    fn new(prefix: &[u8], end: &End) -> PrefixKey {
        let rest: &[u8] = match end {
            End::Before(rest) => rest,
            End::Whole => &[],
        };
        let total = prefix.len() + rest.len();
        let bytes = if total <= INLINE_KEY_BYTES {
            let mut bytes = [0; INLINE_KEY_BYTES];
            bytes[..prefix.len()].copy_from_slice(prefix);
            bytes[prefix.len()..total].copy_from_slice(rest);
            KeyBytes::Inline { len: u8::try_from(total).expect("inline keys are short"), bytes }
        } else {
            KeyBytes::Allocated([prefix, rest].concat().into())
        };
        PrefixKey { bytes, len: prefix.len() }
    }

    fn prefix(&self) -> &[u8] {
        &self.bytes.get()[..self.len]
    }

    /// The end of the one interval starting at `P` (see [`Owners::One`]).
    fn rest(&self) -> &[u8] {
        &self.bytes.get()[self.len..]
    }
}

/// How far an interval starting at `P` reaches.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum End {
    /// To `P ++ rest`, exclusive: a written key is inside when what follows `P` sorts before `rest`.
    Before(Box<[u8]>),
    /// To the end of the keys starting with `P`.
    Whole,
}

impl End {
    fn admits(&self, after_prefix: &[u8]) -> bool {
        match self {
            End::Before(rest) => after_prefix < &**rest,
            End::Whole => true,
        }
    }
}

/// The intervals starting at one `P`.
enum Owners<T> {
    /// One interval (most `P`s are one key's, read by one query): it ends before the key's
    /// [`PrefixKey::rest`], or at the end of `P` if `whole`. No allocation of its own.
    One { whole: bool, owner: T },
    /// Ordered by end: the intervals containing a key are the last ones.
    Many(BTreeSet<(End, T)>),
}

/// An interval's place in the index: its index prefix's length, its `P`'s number of values, and its
/// end; `None` when it is not of a shape the index takes.
struct Placement {
    index_prefix_len: usize,
    values: usize,
    end: End,
}

fn placement(start: &[u8], end: &[u8]) -> Option<Placement> {
    let end = if let Some(rest) = end.strip_prefix(start) {
        End::Before(rest.into())
    } else if prefix_successor(start).is_some_and(|successor| successor == end) {
        End::Whole
    } else {
        return None;
    };
    let mut boundaries = key_boundaries(start);
    let index_prefix_len = boundaries.next()?;
    let mut values = 0;
    let mut last = index_prefix_len;
    for boundary in boundaries {
        values += 1;
        last = boundary;
    }
    (last == start.len()).then_some(Placement { index_prefix_len, values, end })
}

impl<T: Copy + Ord> PrefixIndex<T> {
    pub fn new() -> PrefixIndex<T> {
        PrefixIndex { indexes: HashMap::default() }
    }

    /// Adds `[start, end)` if it lies within one prefix of whole values; returns whether it did
    /// (otherwise the caller must keep it elsewhere).
    pub fn insert(&mut self, start: &[u8], end: &[u8], owner: T) -> bool {
        let Some(Placement { index_prefix_len, values, end }) = placement(start, end) else { return false };
        let (index_prefix, prefix) = start.split_at(index_prefix_len);
        let index = self
            .indexes
            .entry(index_prefix.into())
            .or_insert_with(|| IndexPrefixes { prefixes: PrefixTable::new(), by_values: Vec::new() });
        let Some(existing) = index.prefixes.get_mut(prefix) else {
            let whole = end == End::Whole;
            index.prefixes.insert(Prefix { key: PrefixKey::new(prefix, &end), owners: Owners::One { whole, owner } });
            if index.by_values.len() <= values {
                index.by_values.resize(values + 1, 0);
            }
            index.by_values[values] += 1;
            return true;
        };
        if let Owners::One { whole, owner } = existing.owners {
            let first_end = if whole { End::Whole } else { End::Before(existing.key.rest().into()) };
            existing.owners = Owners::Many(BTreeSet::from([(first_end, owner)]));
        }
        let Owners::Many(set) = &mut existing.owners else { unreachable!("made a set above") };
        assert!(set.insert((end, owner)), "an owner's intervals are disjoint, so never the same twice");
        true
    }

    /// Removes `[start, end)` if [`PrefixIndex::insert`] took it; returns whether it did.
    pub fn remove(&mut self, start: &[u8], end: &[u8], owner: T) -> bool {
        let Some(Placement { index_prefix_len, values, end }) = placement(start, end) else { return false };
        let (index_prefix, prefix) = start.split_at(index_prefix_len);
        let index = self.indexes.get_mut(index_prefix).expect("only intervals in the index are removed");
        let Prefix { key, owners } = index.prefixes.remove(prefix).expect("only intervals in the index are removed");
        match owners {
            Owners::One { whole, owner: only } => {
                let only_end = if whole { End::Whole } else { End::Before(key.rest().into()) };
                assert!(only_end == end && only == owner, "only intervals in the index are removed");
                index.by_values[values] -= 1;
                while index.by_values.last() == Some(&0) {
                    index.by_values.pop();
                }
                if index.prefixes.is_empty() {
                    self.indexes.remove(index_prefix);
                }
            }
            Owners::Many(mut set) => {
                assert!(set.remove(&(end, owner)), "only intervals in the index are removed");
                // Back to one interval: its end moves into the key, and the set goes.
                let entry = if set.len() == 1 {
                    let (end, owner) = set.pop_first().expect("one is left");
                    Prefix {
                        key: PrefixKey::new(prefix, &end),
                        owners: Owners::One { whole: end == End::Whole, owner },
                    }
                } else {
                    Prefix { key, owners: Owners::Many(set) }
                };
                index.prefixes.insert(entry);
            }
        }
        true
    }

    /// Calls `found` with the owner of every interval containing `key`.
    #[cfg(test)]
    pub fn stab(&self, key: &[u8], found: &mut impl FnMut(T)) {
        self.stab_all([((), key)], &mut |(), owner| found(owner));
    }

    /// Calls `found(tag, owner)` with the owner of every interval containing a key, for each
    /// `(tag, key)` in order. Every table slot the keys need is requested from memory before the
    /// first is read, so that with many keys their cache misses overlap: a large table costs about
    /// a miss per batch of keys rather than one per key.
    pub fn stab_all<'k, Tag: Copy>(
        &self,
        keys: impl IntoIterator<Item = (Tag, &'k [u8])>,
        found: &mut impl FnMut(Tag, T),
    ) {
        let keys = keys.into_iter();
        // Most keys need one lookup, in the one index of theirs that queries read by equality.
        let mut lookups = Vec::with_capacity(keys.size_hint().0);
        for (tag, key) in keys {
            let mut boundaries = key_boundaries(key);
            let Some(index_prefix_len) = boundaries.next() else { continue };
            let Some(index) = self.indexes.get(&key[..index_prefix_len]) else { continue };
            // `by_values` first: the key is split no further than the longest `P` of its index.
            let ends = std::iter::once(index_prefix_len).chain(boundaries);
            for (&registered, end) in index.by_values.iter().zip(ends) {
                if registered == 0 {
                    continue;
                }
                let (prefix, after_prefix) = (&key[index_prefix_len..end], &key[end..]);
                let hash = index.prefixes.hash(prefix);
                index.prefixes.prefetch(hash);
                lookups.push(Lookup { index, hash, tag, prefix, after_prefix });
            }
        }
        for Lookup { index, hash, tag, prefix, after_prefix } in lookups {
            let Some(entry) = index.prefixes.get(hash, prefix) else { continue };
            match &entry.owners {
                Owners::One { whole, owner } => {
                    if *whole || after_prefix < entry.key.rest() {
                        found(tag, *owner);
                    }
                }
                Owners::Many(set) => {
                    for (end, owner) in set.iter().rev() {
                        if !end.admits(after_prefix) {
                            break;
                        }
                        found(tag, *owner);
                    }
                }
            }
        }
    }
}

/// A lookup of a written key, split into `prefix ++ after_prefix`, in `index`'s prefixes.
struct Lookup<'a, 'k, T, Tag> {
    index: &'a IndexPrefixes<T>,
    hash: u64,
    tag: Tag,
    prefix: &'k [u8],
    after_prefix: &'k [u8],
}

#[cfg(test)]
impl<T> PrefixIndex<T> {
    /// How many prefixes are registered.
    pub(crate) fn prefixes(&self) -> usize {
        self.indexes.values().map(|index| index.prefixes.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use livebase_store::{index_prefix, successor};
    use livebase_value::{TableNumber, Value, encode_key_value};

    use super::*;

    fn key(values: &[Value]) -> Vec<u8> {
        let mut key = index_prefix(TableNumber::new(7).unwrap(), "by_key");
        for value in values {
            encode_key_value(&mut key, Some(value));
        }
        key
    }

    fn stab(index: &PrefixIndex<u32>, key: &[u8]) -> BTreeSet<u32> {
        let mut found = BTreeSet::new();
        index.stab(key, &mut |owner| assert!(found.insert(owner), "each interval is reported once"));
        found
    }

    #[test]
    fn takes_only_intervals_within_one_prefix_of_whole_values() {
        let mut index = PrefixIndex::new();
        let one = key(&[Value::Float64(1.0)]);
        let first_of_one = key(&[Value::Float64(1.0), Value::Float64(5.0), Value::from("id")]);
        assert!(index.insert(&one, &prefix_successor(&one).unwrap(), 1), "an equality");
        assert!(index.insert(&one, &successor(first_of_one.clone()), 2), "up to just after one key");
        assert!(index.insert(&first_of_one, &successor(first_of_one.clone()), 3), "one key");
        let whole_index = key(&[]);
        assert!(index.insert(&whole_index, &prefix_successor(&whole_index).unwrap(), 4), "a whole index");
        assert!(!index.insert(&successor(one.clone()), &prefix_successor(&one).unwrap(), 5), "a start after a key");
        assert!(!index.insert(&one, &key(&[Value::Float64(2.0)]), 5), "an end past the prefix");
        assert!(!index.insert(&one[..one.len() - 1], &prefix_successor(&one).unwrap(), 5), "a cut value");
        assert!(!index.insert(&[0, 0], &[0, 1], 5), "no index prefix");
        assert_eq!(index.prefixes(), 3);

        assert_eq!(stab(&index, &first_of_one), BTreeSet::from([1, 2, 3, 4]));
        let later_of_one = key(&[Value::Float64(1.0), Value::Float64(6.0), Value::from("id")]);
        assert_eq!(stab(&index, &later_of_one), BTreeSet::from([1, 4]), "after the first key");
        let earlier_of_one = key(&[Value::Float64(1.0), Value::Float64(4.0), Value::from("id")]);
        assert_eq!(stab(&index, &earlier_of_one), BTreeSet::from([1, 2, 4]));
        assert_eq!(stab(&index, &key(&[Value::Float64(2.0)])), BTreeSet::from([4]));
        let other_index = index_prefix(TableNumber::new(7).unwrap(), "by_other");
        assert_eq!(stab(&index, &other_index), BTreeSet::new());
        // A key whose bytes stop being values after the prefix is still found in it: a cut value,
        // then no value at all.
        assert_eq!(stab(&index, &[one.clone(), vec![0x03, 0x80]].concat()), BTreeSet::from([1, 2, 4]));
        assert_eq!(stab(&index, &[one.clone(), vec![0xEE]].concat()), BTreeSet::from([1, 4]));

        for (start, end, owner) in [
            (&one, prefix_successor(&one).unwrap(), 1),
            (&one, successor(first_of_one.clone()), 2),
            (&first_of_one, successor(first_of_one.clone()), 3),
        ] {
            assert!(index.remove(start, &end, owner));
        }
        assert_eq!(stab(&index, &first_of_one), BTreeSet::from([4]));
        assert!(index.remove(&whole_index, &prefix_successor(&whole_index).unwrap(), 4));
        assert!(index.indexes.is_empty(), "nothing is left behind");
    }

    #[test]
    fn a_prefix_with_the_hubs_owner_fits_one_slot_of_two_cache_lines() {
        type Owner = (u64, livebase_sync::SubscriptionId);
        assert_eq!(PrefixTable::<Prefix<Owner>>::slot_size(), 128);
    }

    #[test]
    fn many_owners_of_one_prefix_are_found_by_their_ends() {
        let mut index = PrefixIndex::new();
        let prefix = key(&[Value::from("a\0b")]);
        let end_after = |n: i64| successor(key(&[Value::from("a\0b"), Value::Int64(n)]));
        for owner in 0..100 {
            assert!(index.insert(&prefix, &end_after(i64::from(owner)), owner));
        }
        assert!(index.insert(&prefix, &prefix_successor(&prefix).unwrap(), 100));
        // Owner n reads up to value n, inclusive: a write of value 90 is in the reads of 90 and up.
        let written = key(&[Value::from("a\0b"), Value::Int64(90)]);
        assert_eq!(stab(&index, &written), (90..=100).collect());
        for owner in 0..100 {
            assert!(index.remove(&prefix, &end_after(i64::from(owner)), owner));
        }
        assert!(matches!(
            index.indexes.values().next().unwrap().prefixes.entries().next().unwrap().owners,
            Owners::One { .. }
        ));
        assert_eq!(stab(&index, &written), BTreeSet::from([100]));
    }
}
