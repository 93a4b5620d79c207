//! Which live queries each commit may have changed. Pure: the reactor task feeds it the store's
//! change stream, connections register the read sets of the queries they ran.
//!
//! A query runs at some timestamp and its read set is registered later, by which time newer
//! commits may have been matched already. So the last commits are kept, and a registration is
//! first checked against the commits after its timestamp.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use livebase_store::{CommitRecord, KeyInterval, Timestamp};

use crate::interval_index::{IntervalHandle, IntervalIndex};

/// How many of the latest commits are kept to check registrations against. A query whose run is
/// older than all of them is rerun: at a few thousand commits per second this is a fraction of a
/// second, far longer than a query takes between its run and its registration.
pub const RECENT_COMMITS_CAPACITY: usize = 1_024;

/// The read sets of live queries, by owner, and the commits matched against them so far.
pub struct Subscriptions<T> {
    index: IntervalIndex<T>,
    registered: BTreeMap<T, Vec<IntervalHandle>>,
    /// Every commit after `complete_after`, up to `watermark`.
    recent: VecDeque<Arc<CommitRecord>>,
    complete_after: Timestamp,
    watermark: Timestamp,
}

impl<T: Copy + Ord> Subscriptions<T> {
    /// Starts at `ts`, the state no commit of the change stream will be older than.
    pub fn new(ts: Timestamp) -> Subscriptions<T> {
        Subscriptions {
            index: IntervalIndex::new(),
            registered: BTreeMap::new(),
            recent: VecDeque::new(),
            complete_after: ts,
            watermark: ts,
        }
    }

    /// The newest commit matched: every subscription it invalidated has been reported.
    pub fn watermark(&self) -> Timestamp {
        self.watermark
    }

    /// Tracks what a query run at `ts` read (its read set's intervals: sorted, disjoint),
    /// replacing its owner's earlier read set. Returns false, tracking nothing, if a commit since
    /// `ts` already changed it (or may have: `ts` is older than the commits kept), so the query
    /// must run again.
    pub fn register(&mut self, owner: T, read_set: &[KeyInterval], ts: Timestamp) -> bool {
        self.unregister(owner);
        let missed = ts < self.complete_after
            || self
                .recent
                .iter()
                .rev()
                .take_while(|commit| commit.ts > ts)
                .any(|commit| commit.keys.iter().any(|key| contains(read_set, key)));
        if missed {
            return false;
        }
        let handles = read_set
            .iter()
            .map(|interval| self.index.insert(interval.start.clone(), interval.end.clone(), owner))
            .collect();
        self.registered.insert(owner, handles);
        true
    }

    pub fn unregister(&mut self, owner: T) {
        for handle in self.registered.remove(&owner).into_iter().flatten() {
            self.index.remove(handle);
        }
    }

    /// Matches a commit of the change stream and returns the owners whose read set it wrote into.
    /// They stay registered until they register their rerun's read set. Commits not newer than
    /// the watermark are already accounted for.
    pub fn apply(&mut self, commit: Arc<CommitRecord>) -> BTreeSet<T> {
        let mut affected = BTreeSet::new();
        if commit.ts <= self.watermark {
            return affected;
        }
        for key in &commit.keys {
            self.index.stab(key, &mut |owner| {
                affected.insert(owner);
            });
        }
        self.watermark = commit.ts;
        if self.recent.len() == RECENT_COMMITS_CAPACITY {
            let oldest = self.recent.pop_front().expect("the buffer is full");
            self.complete_after = oldest.ts;
        }
        self.recent.push_back(commit);
        affected
    }

    /// Forgets everything after the change stream lost commits, moving on to `ts`, the latest
    /// commit. Returns every owner: any of them may have changed.
    pub fn reset(&mut self, ts: Timestamp) -> Vec<T> {
        let owners = self.registered.keys().copied().collect();
        *self = Subscriptions::new(ts.max(self.watermark));
        owners
    }
}

fn contains(intervals: &[KeyInterval], key: &[u8]) -> bool {
    let after = intervals.partition_point(|interval| interval.start.as_slice() <= key);
    after > 0 && intervals[after - 1].contains(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(start: &[u8], end: &[u8]) -> KeyInterval {
        KeyInterval { start: start.to_vec(), end: end.to_vec() }
    }

    fn commit(nanos: u64, keys: &[&[u8]]) -> Arc<CommitRecord> {
        let keys = keys.iter().map(|key| key.to_vec()).collect();
        Arc::new(CommitRecord { ts: Timestamp::from_nanos(nanos), changes: Vec::new(), keys })
    }

    fn ts(nanos: u64) -> Timestamp {
        Timestamp::from_nanos(nanos)
    }

    #[test]
    fn commits_invalidate_the_owners_whose_intervals_they_write_into() {
        let mut subscriptions = Subscriptions::new(ts(10));
        assert!(subscriptions.register(1, &[interval(b"a", b"c"), interval(b"x", b"y")], ts(10)));
        assert!(subscriptions.register(2, &[interval(b"b", b"d")], ts(10)));
        assert_eq!(subscriptions.apply(commit(11, &[b"b"])), BTreeSet::from([1, 2]));
        assert_eq!(subscriptions.apply(commit(12, &[b"c", b"x"])), BTreeSet::from([1, 2]));
        assert_eq!(subscriptions.apply(commit(13, &[b"e", b"y"])), BTreeSet::new());
        assert_eq!(subscriptions.watermark(), ts(13));
        // Already matched: a commit the stream repeats is ignored.
        assert_eq!(subscriptions.apply(commit(13, &[b"b"])), BTreeSet::new());
        subscriptions.unregister(1);
        assert_eq!(subscriptions.apply(commit(14, &[b"b"])), BTreeSet::from([2]));
        // A new read set replaces the old one.
        assert!(subscriptions.register(2, &[interval(b"m", b"n")], ts(14)));
        assert_eq!(subscriptions.apply(commit(15, &[b"b"])), BTreeSet::new());
        assert_eq!(subscriptions.apply(commit(16, &[b"m"])), BTreeSet::from([2]));
    }

    #[test]
    fn a_registration_is_checked_against_the_commits_since_its_run() {
        let mut subscriptions = Subscriptions::new(ts(10));
        subscriptions.apply(commit(11, &[b"b"]));
        subscriptions.apply(commit(12, &[b"q"]));
        // Ran at 10: the commit at 11 wrote into it after the run.
        assert!(!subscriptions.register(1, &[interval(b"a", b"c")], ts(10)));
        assert_eq!(subscriptions.apply(commit(13, &[b"b"])), BTreeSet::new(), "a stale registration is not kept");
        // Ran at 13: nothing it read changed since.
        assert!(subscriptions.register(1, &[interval(b"a", b"c")], ts(13)));
        assert!(subscriptions.register(2, &[interval(b"p", b"r")], ts(12)));
        assert!(!subscriptions.register(3, &[interval(b"p", b"r")], ts(11)));
    }

    #[test]
    fn runs_older_than_the_recent_commits_are_rerun() {
        let mut subscriptions = Subscriptions::new(ts(0));
        for nanos in 1..=RECENT_COMMITS_CAPACITY as u64 {
            subscriptions.apply(commit(nanos, &[b"z"]));
        }
        // Every commit since 0 is still kept.
        assert!(subscriptions.register(1, &[interval(b"a", b"b")], ts(0)));
        subscriptions.apply(commit(RECENT_COMMITS_CAPACITY as u64 + 1, &[b"z"]));
        assert!(!subscriptions.register(1, &[interval(b"a", b"b")], ts(0)));
        assert!(subscriptions.register(1, &[interval(b"a", b"b")], ts(1)));
    }

    #[test]
    fn a_reset_reports_everyone_and_forgets_the_past() {
        let mut subscriptions = Subscriptions::new(ts(10));
        assert!(subscriptions.register(1, &[interval(b"a", b"c")], ts(10)));
        assert!(subscriptions.register(2, &[interval(b"x", b"y")], ts(10)));
        assert_eq!(subscriptions.reset(ts(20)), vec![1, 2]);
        assert_eq!(subscriptions.watermark(), ts(20));
        assert!(!subscriptions.register(1, &[interval(b"a", b"c")], ts(19)));
        assert_eq!(subscriptions.apply(commit(21, &[b"b", b"x"])), BTreeSet::new());
    }
}
