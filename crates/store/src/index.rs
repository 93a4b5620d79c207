//! Index keys and the global key space that read sets and write sets are expressed in.
//!
//! Inside an index, a document's key is the order-preserving encoding of its indexed field values
//! followed by `_creationTime` and `_id` (so every index is a total order over documents). To compare
//! reads and writes across indexes without a map per index, every key is also given a global form:
//! `table number (u32 big-endian) ++ index name ++ 0x00 ++ index key`. Index names are identifiers
//! (never containing 0x00), so the prefix of one index is never a prefix of another's.

use std::ops::Bound;

use livebase_value::{FieldPath, TableNumber, Value, encode_key_value, encoded_key_value_len, get_path};

use crate::Document;
use crate::document::CREATION_TIME_FIELD;

pub const BY_ID: &str = "by_id";
pub const BY_CREATION_TIME: &str = "by_creation_time";

/// Sort order of a scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Order {
    Asc,
    Desc,
}

/// A range of keys inside one index: `start` inclusive, `end` exclusive, `None` for "to the end".
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct KeyRange {
    pub start: Vec<u8>,
    pub end: Option<Vec<u8>>,
}

impl KeyRange {
    /// Every key of the index.
    pub fn all() -> KeyRange {
        KeyRange::default()
    }

    /// Keys that start with `prefix` (an equality on a prefix of the index's fields).
    pub fn prefix(prefix: Vec<u8>) -> KeyRange {
        let end = prefix_successor(&prefix);
        KeyRange { start: prefix, end }
    }

    /// Converts bounds on whole keys to a half-open range. Excluding `k` as a start, or including it as
    /// an end, both map to `k ++ 0x00`: the smallest byte string greater than `k`. (Bounds on a prefix of
    /// the indexed fields need `prefix_successor` instead, since longer keys extend the prefix.)
    pub fn from_bounds(start: Bound<Vec<u8>>, end: Bound<Vec<u8>>) -> KeyRange {
        let start = match start {
            Bound::Unbounded => Vec::new(),
            Bound::Included(key) => key,
            Bound::Excluded(key) => successor(key),
        };
        let end = match end {
            Bound::Unbounded => None,
            Bound::Included(key) => Some(successor(key)),
            Bound::Excluded(key) => Some(key),
        };
        KeyRange { start, end }
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && self.end.as_deref().is_none_or(|end| key < end)
    }

    pub fn is_empty(&self) -> bool {
        self.end.as_deref().is_some_and(|end| end <= self.start.as_slice())
    }
}

/// The smallest byte string greater than `key`.
pub fn successor(mut key: Vec<u8>) -> Vec<u8> {
    key.push(0);
    key
}

/// The smallest byte string greater than every string starting with `prefix`, or `None` when there is
/// none (the prefix is empty or all 0xFF).
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let last_incrementable = prefix.iter().rposition(|byte| *byte != 0xFF)?;
    let mut end = prefix[..=last_incrementable].to_vec();
    end[last_incrementable] += 1;
    Some(end)
}

/// A half-open interval `[start, end)` of global keys.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyInterval {
    pub start: Vec<u8>,
    pub end: Vec<u8>,
}

impl KeyInterval {
    pub fn contains(&self, key: &[u8]) -> bool {
        self.start.as_slice() <= key && key < self.end.as_slice()
    }
}

/// The global-key prefix of one index.
pub fn index_prefix(table: TableNumber, index: &str) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(5 + index.len());
    prefix.extend_from_slice(&table.get().to_be_bytes());
    prefix.extend_from_slice(index.as_bytes());
    prefix.push(0);
    prefix
}

/// How many bytes of a global key the table number takes.
const TABLE_NUMBER_LEN: usize = 4;

/// Where a global key's parts end, in order: its index prefix (see [`index_prefix`]), then each
/// whole encoded value of its index key. A key is a prefix of another at one of these boundaries
/// exactly when it is the other's index prefix followed by some of its values. Stops early, after
/// the boundaries before them, at bytes that are no index prefix or encoded value; each boundary
/// depends only on the bytes before it, so keys that share bytes share the boundaries inside them.
pub fn key_boundaries(key: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let name = key.get(TABLE_NUMBER_LEN..).unwrap_or_default();
    // Index names never contain 0x00, so the first one after the table number ends the prefix.
    let prefix_len = name.iter().position(|&byte| byte == 0).map(|name_len| TABLE_NUMBER_LEN + name_len + 1);
    // Each boundary is found only when asked for (callers often stop early), and each step moves
    // past at least one byte, so it ends by the end of the key.
    let mut last = None;
    std::iter::from_fn(move || {
        let next = match last {
            None => prefix_len?,
            Some(end) if end == key.len() => return None,
            Some(end) => end + encoded_key_value_len(&key[end..])?,
        };
        last = Some(next);
        Some(next)
    })
}

/// The global interval covering `range` of the index whose global prefix is `prefix`.
pub fn global_interval(prefix: &[u8], range: &KeyRange) -> KeyInterval {
    let mut start = prefix.to_vec();
    start.extend_from_slice(&range.start);
    let end = match &range.end {
        Some(end) => [prefix, end.as_slice()].concat(),
        None => prefix_successor(prefix).expect("index prefixes end in 0x00"),
    };
    KeyInterval { start, end }
}

/// Which key a document has in an index.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum IndexKind {
    /// `by_id`: the `_id` alone.
    Id,
    /// A declared index (or `by_creation_time`, with no fields): the fields, then `_creationTime`, `_id`.
    Fields(Vec<FieldPath>),
}

impl IndexKind {
    /// The fields a key is made of, in order.
    pub(crate) fn key_fields(&self) -> Vec<FieldPath> {
        let system_field = |name| FieldPath::parse(name).expect("system field names are valid paths");
        match self {
            IndexKind::Id => vec![system_field(crate::document::ID_FIELD)],
            IndexKind::Fields(fields) => {
                let implicit = [system_field(CREATION_TIME_FIELD), system_field(crate::document::ID_FIELD)];
                fields.iter().cloned().chain(implicit).collect()
            }
        }
    }

    pub(crate) fn key(&self, document: &Document) -> Vec<u8> {
        let mut key = Vec::with_capacity(64);
        match self {
            IndexKind::Id => id_key_into(&mut key, document),
            IndexKind::Fields(fields) => {
                for field in fields {
                    encode_key_value(&mut key, get_path(document.object(), field));
                }
                encode_key_value(&mut key, document.get(CREATION_TIME_FIELD));
                id_key_into(&mut key, document);
            }
        }
        key
    }
}

fn id_key_into(key: &mut Vec<u8>, document: &Document) {
    // The stored `_id` string, so the id is not encoded again for every index.
    encode_key_value(key, document.get(crate::document::ID_FIELD));
}

/// The `by_id` key of a document id.
pub fn id_key(id: livebase_value::DocumentId) -> Vec<u8> {
    let mut key = Vec::with_capacity(40);
    encode_key_value(&mut key, Some(&Value::String(id.encode())));
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_successor_skips_trailing_ff() {
        assert_eq!(prefix_successor(&[1, 2, 0xFF]), Some(vec![1, 3]));
        assert_eq!(prefix_successor(&[0xFF, 0xFF]), None);
        assert_eq!(prefix_successor(&[]), None);
    }

    #[test]
    fn bounds_map_to_half_open_ranges() {
        let range = KeyRange::from_bounds(Bound::Excluded(vec![5]), Bound::Included(vec![9]));
        assert!(!range.contains(&[5]));
        assert!(range.contains(&[5, 0]));
        assert!(range.contains(&[9]));
        assert!(!range.contains(&[9, 0xFF]));
        assert!(!range.contains(&[9, 0]));
    }

    fn encoded(values: &[Value]) -> Vec<u8> {
        let mut key = Vec::new();
        for value in values {
            encode_key_value(&mut key, Some(value));
        }
        key
    }

    #[test]
    fn key_boundaries_are_the_index_prefix_then_each_value() {
        // A table number with 0x00 bytes, a string with one and an array: none of them ends a part.
        let prefix = index_prefix(TableNumber::new(0x0100).unwrap(), "by_name");
        let values = [Value::from("a\0b"), Value::Array(vec![Value::Null, Value::from("")]), Value::Float64(1.5)];
        let key = [prefix.clone(), encoded(&values)].concat();
        let mut expected = vec![prefix.len()];
        for value in &values {
            expected.push(expected.last().unwrap() + encoded(std::slice::from_ref(value)).len());
        }
        assert_eq!(*expected.last().unwrap(), key.len());
        assert_eq!(key_boundaries(&key).collect::<Vec<_>>(), expected);
        // Cut anywhere, a key keeps the boundaries before the cut and has none after it.
        for cut in 0..key.len() {
            let before: Vec<usize> = expected.iter().copied().filter(|&end| end <= cut).collect();
            assert_eq!(key_boundaries(&key[..cut]).collect::<Vec<_>>(), before, "cut at {cut}");
        }
        // Bytes that are no encoded value end the boundaries without a panic.
        let malformed = [&key[..expected[1]], &[0xEE, 0x02][..]].concat();
        assert_eq!(key_boundaries(&malformed).collect::<Vec<_>>(), expected[..2]);
        assert_eq!(key_boundaries(&[0, 0, 1, 2, b'x']).count(), 0, "no end to the index name");
        assert_eq!(key_boundaries(&[0, 0]).count(), 0);
        assert_eq!(key_boundaries(&[]).count(), 0);
    }

    #[test]
    fn index_prefixes_do_not_nest() {
        let table = TableNumber::new(7).unwrap();
        let short = index_prefix(table, "by_a");
        let long = index_prefix(table, "by_ab");
        assert!(!long.starts_with(&short));
        let interval = global_interval(&short, &KeyRange::all());
        assert!(!interval.contains(&long));
        assert!(interval.contains(&[short.clone(), vec![0xFF; 3]].concat()));
    }
}
