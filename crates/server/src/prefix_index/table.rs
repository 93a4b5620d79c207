//! The hash table behind [`super::PrefixIndex`]: open addressing with linear probing, one entry per
//! slot, each slot aligned to its own two cache lines.
//!
//! A lookup in a table of a million prefixes misses every cache, and a miss costs far more than
//! everything else a commit's matching does. The standard library's table keeps its control bytes
//! apart from its entries, which makes two misses per lookup, one after the other. Here the hash,
//! the key and the owners share the slot, so a lookup is one miss, and since the slot of a hash is
//! known before the lookup, the misses of many lookups can be started together
//! ([`PrefixTable::prefetch`]) and overlap instead of adding up.

use std::hash::{BuildHasher, RandomState};

/// What the table holds: entries that know their key.
pub(super) trait Keyed {
    fn key(&self) -> &[u8];
}

/// The table is grown when it would be fuller than this (numerator over 8): long enough runs of
/// occupied slots stay rare with linear probing below it.
const MAX_LOAD_EIGHTHS: usize = 6;
const MIN_CAPACITY: usize = 8;
#[cfg(target_arch = "x86_64")]
const CACHE_LINE: usize = 64;

pub(super) struct PrefixTable<E> {
    /// A power of two of them, or none before the first insert.
    slots: Box<[Slot<E>]>,
    len: usize,
    /// Keys are bytes of values clients query: a keyed hash, so they cannot choose keys that
    /// collide and make runs of occupied slots long.
    hasher: RandomState,
}

/// Two cache lines, which the processor fetches together, so one slot is one miss.
#[repr(align(128))]
struct Slot<E> {
    hash: u64,
    entry: Option<E>,
}

impl<E> Slot<E> {
    fn empty() -> Slot<E> {
        Slot { hash: 0, entry: None }
    }
}

impl<E: Keyed> PrefixTable<E> {
    pub(super) fn new() -> PrefixTable<E> {
        PrefixTable { slots: Box::new([]), len: 0, hasher: RandomState::new() }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(super) fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// Asks the processor to start fetching the slot where a lookup of `hash` begins, so that a
    /// later [`PrefixTable::get`] finds it in the cache.
    pub(super) fn prefetch(&self, hash: u64) {
        if self.slots.is_empty() {
            return;
        }
        let slot: *const Slot<E> = &self.slots[hash as usize & self.mask()];
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is a hint: it reads nothing the program sees and never faults. Both
        // addresses are in the slot anyway.
        unsafe {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            _mm_prefetch::<_MM_HINT_T0>(slot.cast());
            _mm_prefetch::<_MM_HINT_T0>(slot.cast::<i8>().add(CACHE_LINE));
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = slot;
    }

    /// The slot holding `key`, or the empty slot ending its run.
    fn position(&self, hash: u64, key: &[u8]) -> Result<usize, usize> {
        let mask = self.mask();
        let mut position = hash as usize & mask;
        // The table is never full, so a run ends within its length.
        for _ in 0..self.slots.len() {
            let slot = &self.slots[position];
            match &slot.entry {
                None => return Err(position),
                Some(entry) if slot.hash == hash && entry.key() == key => return Ok(position),
                Some(_) => position = (position + 1) & mask,
            }
        }
        unreachable!("a table is never full");
    }

    pub(super) fn get(&self, hash: u64, key: &[u8]) -> Option<&E> {
        if self.slots.is_empty() {
            return None;
        }
        let position = self.position(hash, key).ok()?;
        self.slots[position].entry.as_ref()
    }

    pub(super) fn get_mut(&mut self, key: &[u8]) -> Option<&mut E> {
        if self.slots.is_empty() {
            return None;
        }
        let position = self.position(self.hash(key), key).ok()?;
        self.slots[position].entry.as_mut()
    }

    /// Adds an entry whose key is not in the table.
    pub(super) fn insert(&mut self, entry: E) {
        if (self.len + 1) * 8 > self.slots.len() * MAX_LOAD_EIGHTHS {
            self.grow();
        }
        let hash = self.hash(entry.key());
        let position = self.position(hash, entry.key()).expect_err("inserted keys are new");
        self.slots[position] = Slot { hash, entry: Some(entry) };
        self.len += 1;
    }

    fn grow(&mut self) {
        let capacity = (self.slots.len() * 2).max(MIN_CAPACITY);
        let old = std::mem::replace(&mut self.slots, (0..capacity).map(|_| Slot::empty()).collect());
        let mask = self.mask();
        for slot in old {
            let Some(entry) = slot.entry else { continue };
            let mut position = slot.hash as usize & mask;
            while self.slots[position].entry.is_some() {
                position = (position + 1) & mask;
            }
            self.slots[position] = Slot { hash: slot.hash, entry: Some(entry) };
        }
    }

    pub(super) fn remove(&mut self, key: &[u8]) -> Option<E> {
        if self.slots.is_empty() {
            return None;
        }
        let mut hole = self.position(self.hash(key), key).ok()?;
        let removed = std::mem::replace(&mut self.slots[hole], Slot::empty()).entry;
        self.len -= 1;
        // Backward shift: an entry after the hole in the same run moves into it unless that would
        // put it before its home slot, so every run stays unbroken and no lookup needs tombstones.
        let mask = self.mask();
        let mut position = (hole + 1) & mask;
        for _ in 0..self.slots.len() {
            if self.slots[position].entry.is_none() {
                return removed;
            }
            let home = self.slots[position].hash as usize & mask;
            // Whether `home` lies cyclically in (hole, position]: then the entry must stay.
            let stays =
                if hole <= position { hole < home && home <= position } else { hole < home || home <= position };
            if !stays {
                self.slots.swap(hole, position);
                hole = position;
            }
            position = (position + 1) & mask;
        }
        unreachable!("a table is never full");
    }

    #[cfg(test)]
    pub(super) fn slot_size() -> usize {
        std::mem::size_of::<Slot<E>>()
    }

    #[cfg(test)]
    pub(super) fn entries(&self) -> impl Iterator<Item = &E> {
        self.slots.iter().filter_map(|slot| slot.entry.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, PartialEq)]
    struct Entry(Vec<u8>, u32);

    impl Keyed for Entry {
        fn key(&self) -> &[u8] {
            &self.0
        }
    }

    #[test]
    fn a_slot_is_two_cache_lines() {
        assert_eq!(std::mem::size_of::<Slot<Entry>>(), 128);
        assert_eq!(std::mem::align_of::<Slot<Entry>>(), 128);
    }

    proptest! {
        /// Keys from a small alphabet, so that inserts and removes hit the same keys and the
        /// table's runs (collisions modulo a small capacity) are long.
        #[test]
        fn behaves_like_a_map(steps in prop::collection::vec((any::<bool>(), prop::collection::vec(0..4u8, 0..4)), 0..400)) {
            let mut table = PrefixTable::new();
            let mut model = BTreeMap::new();
            for (step, (insert, key)) in steps.into_iter().enumerate() {
                let value = step as u32;
                if insert && !model.contains_key(&key) {
                    table.insert(Entry(key.clone(), value));
                    model.insert(key.clone(), value);
                } else {
                    prop_assert_eq!(table.remove(&key).map(|entry| entry.1), model.remove(&key));
                }
                prop_assert_eq!(table.len(), model.len());
                for (key, value) in &model {
                    prop_assert_eq!(table.get(table.hash(key), key).map(|entry| entry.1), Some(*value));
                }
                prop_assert_eq!(table.entries().count(), model.len());
            }
        }
    }
}
