//! Which live queries each commit may have changed. Pure: the reactor task feeds it the store's
//! change stream, connections register the read sets of the queries they ran.
//!
//! A query runs at some timestamp and its read set is registered later, by which time newer
//! commits may have been matched already. So the last commits are kept, and a registration is
//! first checked against the commits after its timestamp.
//!
//! Queries rerun at the watermark, which must be a state the store can read. The store publishes
//! one snapshot per group commit, at the group's last commit: a read at an earlier commit of the
//! group gets the state before the whole group, without that commit. So the invalidations of a
//! group's commits are held back until its last commit is matched, and the watermark moves from
//! group end to group end.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::mem;
use std::sync::Arc;

use livebase_store::{CommitRecord, KeyInterval, Timestamp};

use crate::interval_index::IntervalIndex;
use crate::prefix_index::PrefixIndex;

/// How many of the latest commits are kept to check registrations against. A query whose run is
/// older than all of them is rerun: at a few thousand commits per second this is a fraction of a
/// second, far longer than a query takes between its run and its registration.
pub const RECENT_COMMITS_CAPACITY: usize = 1_024;

/// A query run's read set: its intervals, sorted and disjoint. Shared by every owner that
/// registers the same run (identical subscriptions share one), so it is kept once however many
/// clients watch the query.
pub type ReadSet = Arc<[KeyInterval]>;

/// The read sets of live queries, by owner, and the commits matched against them so far.
pub struct Subscriptions<T> {
    /// The intervals within one prefix of an index's values (almost all of them), matched in a
    /// time that does not grow with their number.
    prefixes: PrefixIndex<T>,
    /// The other intervals.
    ranges: IntervalIndex<T>,
    /// Each owner's read set, to remove from the indexes again.
    registered: BTreeMap<T, ReadSet>,
    /// Every commit after `complete_after`, up to `matched`.
    recent: VecDeque<Arc<CommitRecord>>,
    complete_after: Timestamp,
    /// The newest commit matched.
    matched: Timestamp,
    /// The last commit of the newest group matched entirely.
    watermark: Timestamp,
    /// Owners invalidated by commits after `watermark`, reported when their group is complete.
    /// Bounded by the owners registered.
    pending: BTreeSet<T>,
}

impl<T: Copy + Ord> Subscriptions<T> {
    /// Starts at `ts`, the state no commit of the change stream will be older than.
    pub fn new(ts: Timestamp) -> Subscriptions<T> {
        Subscriptions {
            prefixes: PrefixIndex::new(),
            ranges: IntervalIndex::new(),
            registered: BTreeMap::new(),
            recent: VecDeque::new(),
            complete_after: ts,
            matched: ts,
            watermark: ts,
            pending: BTreeSet::new(),
        }
    }

    /// The state to rerun queries at: the last commit of the newest group matched entirely. Every
    /// subscription a commit up to it invalidated has been reported.
    pub fn watermark(&self) -> Timestamp {
        self.watermark
    }

    /// Tracks what a query run at `ts` read (its read set's intervals: sorted, disjoint),
    /// replacing its owner's earlier read set. Returns false, tracking nothing, if a commit since
    /// `ts` already changed it (or may have: `ts` is older than the commits kept), so the query
    /// must run again; the owner is then reported like an invalidated one (see
    /// [`Subscriptions::reportable`]).
    pub fn register(&mut self, owner: T, read_set: &ReadSet, ts: Timestamp) -> bool {
        // A rerun usually reads what the last run read (every client of a list, after each
        // commit): its intervals then stay in the index as they are.
        let unchanged = self
            .registered
            .get(&owner)
            .is_some_and(|registered| Arc::ptr_eq(registered, read_set) || registered == read_set);
        if !unchanged {
            self.unregister(owner);
        }
        self.pending.remove(&owner);
        let missed = ts < self.complete_after
            || self
                .recent
                .iter()
                .rev()
                .take_while(|commit| commit.ts > ts)
                .any(|commit| commit.keys.iter().any(|key| contains(read_set, key)));
        if missed {
            self.unregister(owner);
            self.pending.insert(owner);
            return false;
        }
        if unchanged {
            return true;
        }
        for interval in read_set.iter() {
            if !self.prefixes.insert(&interval.start, &interval.end, owner) {
                self.ranges.insert(&interval.start, &interval.end, owner);
            }
        }
        self.registered.insert(owner, Arc::clone(read_set));
        true
    }

    pub fn unregister(&mut self, owner: T) {
        self.pending.remove(&owner);
        for interval in self.registered.remove(&owner).iter().flat_map(|read_set| read_set.iter()) {
            if !self.prefixes.remove(&interval.start, &interval.end, owner) {
                self.ranges.remove(&interval.start, &interval.end, owner);
            }
        }
    }

    /// Matches commits of the change stream, in order, each with whether it is the last of its
    /// group commit. Returns the owners whose read set a group wrote into once the group is
    /// complete, nothing before. They stay registered until they register their rerun's read set.
    /// Commits not newer than the last one matched are already accounted for.
    ///
    /// Matching commits together costs less per commit than one by one: with many subscriptions
    /// their lookups miss the cache, and those of one call overlap (see [`PrefixIndex::stab_all`]).
    pub fn apply(&mut self, commits: Vec<(Arc<CommitRecord>, bool)>) -> BTreeSet<T> {
        let commits: Vec<_> = commits.into_iter().filter(|(commit, _)| commit.ts > self.matched).collect();
        // Prefix matches, as (commit's position in `commits`, owner), in the order of the commits.
        let mut prefix_matches = Vec::new();
        let keys: Vec<(usize, &[u8])> = commits
            .iter()
            .enumerate()
            .flat_map(|(position, (commit, _))| commit.keys.iter().map(move |key| (position, key.as_slice())))
            .collect();
        self.prefixes.stab_all(keys, &mut |position, owner| prefix_matches.push((position, owner)));
        let mut prefix_matches = prefix_matches.into_iter().peekable();
        let last_group_end = commits.iter().rposition(|(_, ends_group)| *ends_group);
        let mut complete = BTreeSet::new();
        for (position, (commit, _)) in commits.into_iter().enumerate() {
            assert!(commit.ts > self.matched, "the change stream is in commit order");
            while let Some((_, owner)) = prefix_matches.next_if(|(of_commit, _)| *of_commit == position) {
                self.pending.insert(owner);
            }
            for key in &commit.keys {
                self.ranges.stab(key, &mut |owner| {
                    self.pending.insert(owner);
                });
            }
            self.matched = commit.ts;
            if self.recent.len() == RECENT_COMMITS_CAPACITY {
                let oldest = self.recent.pop_front().expect("the buffer is full");
                self.complete_after = oldest.ts;
            }
            self.recent.push_back(commit);
            // Groups are reported whole: up to the last that ends here, and nothing of the next.
            if Some(position) == last_group_end {
                self.watermark = self.matched;
                complete = mem::take(&mut self.pending);
            }
        }
        complete
    }

    /// The owners whose registration missed a commit, to report now if the state after every
    /// commit matched can be read (no group is half matched); otherwise they are reported with
    /// their group.
    pub fn reportable(&mut self) -> BTreeSet<T> {
        if self.matched == self.watermark { mem::take(&mut self.pending) } else { BTreeSet::new() }
    }

    /// Forgets everything after the change stream lost commits, moving on to `ts`, the latest
    /// commit. Returns every owner: any of them may have changed.
    pub fn reset(&mut self, ts: Timestamp) -> Vec<T> {
        let owners = self.registered.keys().copied().collect();
        *self = Subscriptions::new(ts.max(self.matched));
        owners
    }
}

/// Whether `key` falls in one of `intervals` (sorted and disjoint), by binary search.
pub(crate) fn contains(intervals: &[KeyInterval], key: &[u8]) -> bool {
    let after = intervals.partition_point(|interval| interval.start.as_slice() <= key);
    after > 0 && intervals[after - 1].contains(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(start: &[u8], end: &[u8]) -> KeyInterval {
        KeyInterval { start: start.to_vec(), end: end.to_vec() }
    }

    fn read_set<const N: usize>(intervals: [KeyInterval; N]) -> ReadSet {
        Arc::from(intervals)
    }

    fn commit(nanos: u64, keys: &[&[u8]]) -> Arc<CommitRecord> {
        let keys = keys.iter().map(|key| key.to_vec()).collect();
        Arc::new(CommitRecord { ts: Timestamp::from_nanos(nanos), changes: Vec::new(), keys, reloaded: false })
    }

    fn ts(nanos: u64) -> Timestamp {
        Timestamp::from_nanos(nanos)
    }

    #[test]
    fn commits_invalidate_the_owners_whose_intervals_they_write_into() {
        let mut subscriptions = Subscriptions::new(ts(10));
        assert!(subscriptions.register(1, &read_set([interval(b"a", b"c"), interval(b"x", b"y")]), ts(10)));
        assert!(subscriptions.register(2, &read_set([interval(b"b", b"d")]), ts(10)));
        assert_eq!(subscriptions.apply(vec![(commit(11, &[b"b"]), true)]), BTreeSet::from([1, 2]));
        assert_eq!(subscriptions.apply(vec![(commit(12, &[b"c", b"x"]), true)]), BTreeSet::from([1, 2]));
        assert_eq!(subscriptions.apply(vec![(commit(13, &[b"e", b"y"]), true)]), BTreeSet::new());
        assert_eq!(subscriptions.watermark(), ts(13));
        // Already matched: a commit the stream repeats is ignored.
        assert_eq!(subscriptions.apply(vec![(commit(13, &[b"b"]), true)]), BTreeSet::new());
        subscriptions.unregister(1);
        assert_eq!(subscriptions.apply(vec![(commit(14, &[b"b"]), true)]), BTreeSet::from([2]));
        // A new read set replaces the old one.
        assert!(subscriptions.register(2, &read_set([interval(b"m", b"n")]), ts(14)));
        assert_eq!(subscriptions.apply(vec![(commit(15, &[b"b"]), true)]), BTreeSet::new());
        assert_eq!(subscriptions.apply(vec![(commit(16, &[b"m"]), true)]), BTreeSet::from([2]));
    }

    #[test]
    fn a_registration_is_checked_against_the_commits_since_its_run() {
        let mut subscriptions = Subscriptions::new(ts(10));
        subscriptions.apply(vec![(commit(11, &[b"b"]), true)]);
        subscriptions.apply(vec![(commit(12, &[b"q"]), true)]);
        // Ran at 10: the commit at 11 wrote into it after the run.
        assert!(!subscriptions.register(1, &read_set([interval(b"a", b"c")]), ts(10)));
        assert_eq!(subscriptions.reportable(), BTreeSet::from([1]), "reported, to run again");
        assert_eq!(
            subscriptions.apply(vec![(commit(13, &[b"b"]), true)]),
            BTreeSet::new(),
            "a stale registration is not kept"
        );
        // Ran at 13: nothing it read changed since.
        assert!(subscriptions.register(1, &read_set([interval(b"a", b"c")]), ts(13)));
        assert!(subscriptions.register(2, &read_set([interval(b"p", b"r")]), ts(12)));
        assert!(!subscriptions.register(3, &read_set([interval(b"p", b"r")]), ts(11)));
    }

    #[test]
    fn a_rerun_that_read_the_same_intervals_keeps_them() {
        let mut subscriptions = Subscriptions::new(ts(10));
        let read_set = read_set([interval(b"a", b"c")]);
        assert!(subscriptions.register(1, &read_set, ts(10)));
        assert_eq!(subscriptions.apply(vec![(commit(11, &[b"b"]), true)]), BTreeSet::from([1]));
        assert!(subscriptions.register(1, &read_set, ts(11)));
        assert_eq!(
            subscriptions.apply(vec![(commit(12, &[b"b"]), true)]),
            BTreeSet::from([1]),
            "matched once, as before"
        );
        // The same intervals, but a commit since the run wrote into them: no longer tracked.
        assert!(!subscriptions.register(1, &read_set, ts(11)));
        assert_eq!(subscriptions.reportable(), BTreeSet::from([1]));
        assert_eq!(subscriptions.apply(vec![(commit(13, &[b"b"]), true)]), BTreeSet::new());
        assert!(subscriptions.register(1, &read_set, ts(13)));
        assert_eq!(subscriptions.apply(vec![(commit(14, &[b"b"]), true)]), BTreeSet::from([1]));
    }

    #[test]
    fn runs_older_than_the_recent_commits_are_rerun() {
        let mut subscriptions = Subscriptions::new(ts(0));
        for nanos in 1..=RECENT_COMMITS_CAPACITY as u64 {
            subscriptions.apply(vec![(commit(nanos, &[b"z"]), true)]);
        }
        // Every commit since 0 is still kept.
        assert!(subscriptions.register(1, &read_set([interval(b"a", b"b")]), ts(0)));
        subscriptions.apply(vec![(commit(RECENT_COMMITS_CAPACITY as u64 + 1, &[b"z"]), true)]);
        assert!(!subscriptions.register(1, &read_set([interval(b"a", b"b")]), ts(0)));
        assert!(subscriptions.register(1, &read_set([interval(b"a", b"b")]), ts(1)));
    }

    #[test]
    fn a_reset_reports_everyone_and_forgets_the_past() {
        let mut subscriptions = Subscriptions::new(ts(10));
        assert!(subscriptions.register(1, &read_set([interval(b"a", b"c")]), ts(10)));
        assert!(subscriptions.register(2, &read_set([interval(b"x", b"y")]), ts(10)));
        assert_eq!(subscriptions.reset(ts(20)), vec![1, 2]);
        assert_eq!(subscriptions.watermark(), ts(20));
        assert!(!subscriptions.register(1, &read_set([interval(b"a", b"c")]), ts(19)));
        assert_eq!(subscriptions.reportable(), BTreeSet::from([1]));
        assert_eq!(subscriptions.apply(vec![(commit(21, &[b"b", b"x"]), true)]), BTreeSet::new());
    }

    #[test]
    fn a_group_commit_is_reported_once_its_last_commit_is_matched() {
        let mut subscriptions = Subscriptions::new(ts(10));
        assert!(subscriptions.register(1, &read_set([interval(b"a", b"c")]), ts(10)));
        assert!(subscriptions.register(2, &read_set([interval(b"x", b"y")]), ts(10)));
        // 11 and 12 are one group commit: the store has a state at 12, not at 11.
        assert_eq!(subscriptions.apply(vec![(commit(11, &[b"b"]), false)]), BTreeSet::new());
        assert_eq!(subscriptions.watermark(), ts(10));
        // Run at the watermark and registered while the group is half matched, it missed 11.
        assert!(!subscriptions.register(3, &read_set([interval(b"b", b"d")]), ts(10)));
        assert_eq!(subscriptions.reportable(), BTreeSet::new(), "the state after 11 can't be read yet");
        assert_eq!(subscriptions.apply(vec![(commit(12, &[b"x"]), true)]), BTreeSet::from([1, 2, 3]));
        assert_eq!(subscriptions.watermark(), ts(12));
        assert_eq!(subscriptions.reportable(), BTreeSet::new());
        // Unregistered owners are not reported.
        assert_eq!(subscriptions.apply(vec![(commit(13, &[b"b"]), false)]), BTreeSet::new());
        subscriptions.unregister(1);
        assert_eq!(subscriptions.apply(vec![(commit(14, &[]), true)]), BTreeSet::new());
    }

    #[test]
    fn commits_matched_together_are_reported_by_their_groups() {
        let mut subscriptions = Subscriptions::new(ts(10));
        assert!(subscriptions.register(1, &read_set([interval(b"a", b"c")]), ts(10)));
        assert!(subscriptions.register(2, &read_set([interval(b"x", b"y")]), ts(10)));
        // 11-12 is a group, 13 starts the next one: only the first group is reported.
        let commits = vec![(commit(11, &[b"b"]), false), (commit(12, &[]), true), (commit(13, &[b"x"]), false)];
        assert_eq!(subscriptions.apply(commits), BTreeSet::from([1]));
        assert_eq!(subscriptions.watermark(), ts(12));
        let commits = vec![(commit(13, &[b"b"]), false), (commit(14, &[]), true)];
        assert_eq!(subscriptions.apply(commits), BTreeSet::from([2]), "13 is matched once, with its group");
        assert_eq!(subscriptions.watermark(), ts(14));
    }

    /// The matcher against a linear scan of every registered read set, with read sets of every shape
    /// queries record (equalities on values of every type, reads up to just after one key, single
    /// keys, ranges between keys, bytes that are no values) registered, replaced and unregistered
    /// between commits whose keys share their prefixes.
    mod against_a_linear_scan {
        use std::collections::BTreeMap;

        use livebase_store::{index_prefix, prefix_successor, successor};
        use livebase_value::{DocumentId, Object, TableNumber, Value, encode_key_value};
        use proptest::prelude::*;

        use super::*;

        /// Few enough values that keys often share them.
        fn values() -> Vec<Value> {
            let id = DocumentId::new(TableNumber::new(7).unwrap(), [3; livebase_value::INTERNAL_ID_LEN]);
            vec![
                Value::Float64(1.0),
                Value::Int64(-1),
                Value::from(""),
                Value::from("a\0"),
                Value::from("a\0\0b"),
                Value::from(id.encode()),
                Value::Array(vec![Value::Array(vec![Value::Null]), Value::from("\0")]),
                Value::Object(Object::from([("\0".to_owned(), Value::Array(vec![])), ("b".to_owned(), Value::Null)])),
                Value::Bytes(vec![0, 0xFF]),
            ]
        }

        /// A key: an index prefix (tables numbered with zero bytes, names that extend one another),
        /// values from [`values`], then a few bytes that may continue them or be no value at all.
        fn key() -> impl Strategy<Value = Vec<u8>> {
            let tail = prop::collection::vec(prop_oneof![Just(0u8), Just(0xFF), Just(2), any::<u8>()], 0..3);
            (0..3usize, prop::collection::vec(0..values().len(), 0..4), prop::bool::weighted(0.2), tail).prop_map(
                |(index, chosen, with_tail, tail)| {
                    let (table, name) = [(7, "by_a"), (7, "by_ab"), (0x0100, "by_a")][index];
                    let mut key = index_prefix(TableNumber::new(table).unwrap(), name);
                    let values = values();
                    for value in chosen {
                        encode_key_value(&mut key, Some(&values[value]));
                    }
                    if with_tail {
                        key.extend(tail);
                    }
                    key
                },
            )
        }

        fn interval() -> impl Strategy<Value = KeyInterval> {
            (key(), key(), 0..5u8).prop_map(|(a, b, shape)| match shape {
                0 => KeyInterval { end: prefix_successor(&a).unwrap(), start: a },
                // As `.first()` records: from the prefix to just after the key it found.
                1 => KeyInterval { end: successor([a.as_slice(), &b].concat()), start: a },
                2 => KeyInterval { end: successor(a.clone()), start: a },
                3 => KeyInterval { end: [a.as_slice(), &b].concat(), start: a },
                _ => KeyInterval { start: a.clone().min(b.clone()), end: a.max(b) },
            })
        }

        /// Sorted and disjoint, as a query's read set is.
        fn normalized(mut intervals: Vec<KeyInterval>) -> ReadSet {
            intervals.retain(|interval| interval.start < interval.end);
            intervals.sort();
            let mut merged: Vec<KeyInterval> = Vec::new();
            for interval in intervals {
                match merged.last_mut() {
                    Some(last) if interval.start <= last.end => last.end = last.end.clone().max(interval.end),
                    _ => merged.push(interval),
                }
            }
            Arc::from(merged)
        }

        #[derive(Debug, Clone)]
        enum Step {
            Register(u8, Vec<KeyInterval>),
            Unregister(u8),
            /// Commits matched in one call, each its own group.
            Commits(Vec<Vec<Vec<u8>>>),
        }

        fn step() -> impl Strategy<Value = Step> {
            prop_oneof![
                4 => (0..12u8, prop::collection::vec(interval(), 1..4))
                    .prop_map(|(owner, intervals)| Step::Register(owner, intervals)),
                1 => (0..12u8).prop_map(Step::Unregister),
                4 => prop::collection::vec(prop::collection::vec(key(), 1..4), 1..4).prop_map(Step::Commits),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

            #[test]
            fn commits_invalidate_exactly_the_owners_whose_reads_they_write_into(
                steps in prop::collection::vec(step(), 1..40),
            ) {
                let mut subscriptions = Subscriptions::new(ts(0));
                let mut registered: BTreeMap<u8, ReadSet> = BTreeMap::new();
                let mut nanos = 0;
                for step in steps {
                    match step {
                        Step::Register(owner, intervals) => {
                            let read_set = normalized(intervals);
                            prop_assert!(subscriptions.register(owner, &read_set, ts(nanos)));
                            registered.insert(owner, read_set);
                        }
                        Step::Unregister(owner) => {
                            subscriptions.unregister(owner);
                            registered.remove(&owner);
                        }
                        Step::Commits(commits) => {
                            let mut expected = BTreeSet::new();
                            let mut batch = Vec::new();
                            for mut keys in commits {
                                keys.sort();
                                keys.dedup();
                                expected.extend(registered
                                    .iter()
                                    .filter(|(_, read_set)| {
                                        keys.iter().any(|key| read_set.iter().any(|interval| interval.contains(key)))
                                    })
                                    .map(|(owner, _)| *owner));
                                nanos += 1;
                                batch.push((Arc::new(CommitRecord { ts: ts(nanos), changes: Vec::new(), keys, reloaded: false }), true));
                            }
                            prop_assert_eq!(subscriptions.apply(batch), expected);
                        }
                    }
                }
                for owner in registered.into_keys() {
                    subscriptions.unregister(owner);
                }
                prop_assert_eq!(subscriptions.prefixes.prefixes(), 0, "unregistering leaves nothing behind");
            }
        }
    }
}
