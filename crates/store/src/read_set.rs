use crate::TransactionError;
use crate::index::KeyInterval;
use crate::limits::MAX_READ_SET_INTERVALS;

/// What a transaction or query read: intervals of global keys (see `index.rs`).
///
/// A commit that writes a key inside any interval may have changed what was read; a commit that
/// writes only keys outside every interval cannot have. Normalized, the intervals are sorted and
/// disjoint, so membership is one binary search.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadSet {
    intervals: Vec<KeyInterval>,
    normalized: bool,
}

impl ReadSet {
    pub fn new() -> ReadSet {
        ReadSet { intervals: Vec::new(), normalized: true }
    }

    pub(crate) fn record(&mut self, interval: KeyInterval) -> Result<(), TransactionError> {
        if interval.start >= interval.end {
            return Ok(());
        }
        self.intervals.push(interval);
        self.normalized = false;
        if self.intervals.len() > MAX_READ_SET_INTERVALS {
            // Overlapping reads (the same document twice, say) should not count twice.
            self.normalize();
            if self.intervals.len() > MAX_READ_SET_INTERVALS {
                return Err(TransactionError::ReadSetLimit { limit: MAX_READ_SET_INTERVALS });
            }
        }
        Ok(())
    }

    /// Sorts the intervals and merges the ones that overlap or touch.
    pub fn normalize(&mut self) {
        if self.normalized {
            return;
        }
        self.intervals.sort_unstable();
        let mut merged: Vec<KeyInterval> = Vec::with_capacity(self.intervals.len());
        for interval in self.intervals.drain(..) {
            match merged.last_mut() {
                Some(last) if interval.start <= last.end => {
                    if interval.end > last.end {
                        last.end = interval.end;
                    }
                }
                _ => merged.push(interval),
            }
        }
        self.intervals = merged;
        self.normalized = true;
    }

    /// The intervals, sorted and disjoint.
    pub fn intervals(&mut self) -> &[KeyInterval] {
        self.normalize();
        &self.intervals
    }

    /// The lowest key and the end of the highest interval. Requires a normalized set.
    pub fn bounds(&self) -> Option<(&[u8], &[u8])> {
        assert!(self.normalized, "normalize the read set before matching keys against it");
        Some((self.intervals.first()?.start.as_slice(), self.intervals.last()?.end.as_slice()))
    }

    pub fn is_empty(&self) -> bool {
        self.intervals.is_empty()
    }

    /// Whether `key` lies in the read set. Requires a normalized set.
    pub fn contains(&self, key: &[u8]) -> bool {
        assert!(self.normalized, "normalize the read set before matching keys against it");
        let after = self.intervals.partition_point(|interval| interval.start.as_slice() <= key);
        after > 0 && self.intervals[after - 1].contains(key)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn interval(start: &[u8], end: &[u8]) -> KeyInterval {
        KeyInterval { start: start.to_vec(), end: end.to_vec() }
    }

    proptest! {
        #[test]
        fn normalized_membership_equals_membership_in_any_interval(
            raw in prop::collection::vec((prop::collection::vec(0u8..4, 0..3), prop::collection::vec(0u8..4, 0..3)), 0..12),
            probes in prop::collection::vec(prop::collection::vec(0u8..4, 0..4), 0..32),
        ) {
            let mut set = ReadSet::new();
            let intervals: Vec<KeyInterval> = raw.iter().map(|(a, b)| interval(a, b)).collect();
            for interval in &intervals {
                set.record(interval.clone()).unwrap();
            }
            set.normalize();
            for window in set.intervals.windows(2) {
                prop_assert!(window[0].end < window[1].start, "normalized intervals are disjoint and apart");
            }
            for probe in probes {
                let expected = intervals.iter().any(|interval| interval.contains(&probe));
                prop_assert_eq!(set.contains(&probe), expected);
            }
        }
    }

    #[test]
    fn interval_count_is_limited_after_merging() {
        let mut set = ReadSet::new();
        for _ in 0..MAX_READ_SET_INTERVALS * 2 {
            set.record(interval(&[1], &[2])).unwrap();
        }
        for i in 0..MAX_READ_SET_INTERVALS as u32 - 1 {
            let key = i.to_be_bytes();
            set.record(interval(&key, &[&key[..], &[0]].concat())).unwrap();
        }
        let key = u32::MAX.to_be_bytes();
        let error = set.record(interval(&key, &[&key[..], &[0]].concat())).unwrap_err();
        assert_eq!(error, TransactionError::ReadSetLimit { limit: MAX_READ_SET_INTERVALS });
    }
}
