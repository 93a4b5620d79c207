//! One execution for identical subscriptions. A commit often invalidates the same query on many
//! connections (every client of an app watching one list), and they all rerun it at the same
//! timestamp: the first run is kept and handed to the others, which then only register its read
//! set. Queries are deterministic given their function, arguments, journal, snapshot and caller; a
//! run that never looked at the caller's identity is every caller's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use livebase_functions::{Identity, Runtime};
use livebase_store::Timestamp;
use livebase_sync::{QueryArgs, SharedOutcome, Subscription};

use crate::forward::wire_log_lines;
use crate::socket::wire_error;
use crate::subscriptions::ReadSet;

/// The most query runs kept for sharing. A run is useful only until the next commit moves the
/// timestamp queries rerun at, so runs at older timestamps are dropped first; past this many at the
/// current timestamp, further queries run unshared.
pub const MAX_SHARED_QUERY_RUNS: usize = 4_096;

/// A query's run, as every subscriber of it gets it.
#[derive(Debug)]
pub(crate) struct SharedRun {
    /// What clients are told, serialized once for all of them.
    pub(crate) outcome: Arc<SharedOutcome>,
    pub(crate) read_set: ReadSet,
    /// The snapshot the query read.
    pub(crate) ts: Timestamp,
    read_identity: bool,
}

/// What makes two runs the same, besides the caller: the function, its arguments and journal.
#[derive(Clone, Hash, PartialEq, Eq)]
struct QueryKey {
    path: String,
    args: QueryArgs,
    journal: Option<String>,
}

/// A run that is done, or under way in the connection that made the cell.
type RunCell = Arc<OnceLock<Arc<SharedRun>>>;

/// The runs of one query at one timestamp.
struct Runs {
    ts: Timestamp,
    /// A run that did not read the identity, for every caller.
    any_caller: Option<RunCell>,
    /// Runs by caller, keyed by `Identity`'s debug form: every field, and deterministic (claims
    /// are an ordered map).
    by_caller: HashMap<String, RunCell>,
}

#[derive(Default)]
pub(crate) struct SharedRuns {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Each query's runs at the newest timestamp it was asked for.
    queries: HashMap<QueryKey, Runs>,
    /// Cells in `queries`, at most `MAX_SHARED_QUERY_RUNS`.
    cells: usize,
}

impl SharedRuns {
    /// The run of `subscription`'s query at `ts` as `identity`: the one another connection already
    /// made or is making (waiting for it to finish), or a new one.
    pub(crate) fn run(
        &self,
        runtime: &Runtime,
        subscription: &Subscription,
        identity: &Identity,
        ts: Timestamp,
    ) -> Arc<SharedRun> {
        let path = subscription.udf_path.to_string();
        let key =
            QueryKey { path: path.clone(), args: subscription.args.clone(), journal: subscription.journal.clone() };
        let run = || {
            let journal = subscription.journal.as_deref();
            let mut outcome = runtime.run_query(&path, subscription.args.decode(), identity, journal, Some(ts));
            let read_set = ReadSet::from(outcome.read_set.intervals());
            let result = outcome.result.map_err(|error| wire_error(&error));
            let sent = SharedOutcome::new(result, wire_log_lines(&outcome.log_lines), outcome.journal);
            let read_identity = outcome.read_identity;
            Arc::new(SharedRun { outcome: Arc::new(sent), read_set, ts: outcome.ts, read_identity })
        };
        let caller = format!("{identity:?}");
        let Some(cell) = self.lock().cell(&key, &caller, ts) else { return run() };
        // A concurrent caller with the same key blocks here until the first run is done.
        let shared = Arc::clone(cell.get_or_init(run));
        if !shared.read_identity {
            self.lock().for_any_caller(&key, ts, cell);
        }
        shared
    }

    /// Drops every run, for the queries to run afresh even at the same timestamp.
    pub(crate) fn forget(&self) {
        *self.lock() = State::default();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update completes before anything could panic: a poisoned lock is still sound.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// The cell holding the run of `key` at `ts` for `caller`, new if there is none; `None` when
    /// the run cannot be shared.
    fn cell(&mut self, key: &QueryKey, caller: &str, ts: Timestamp) -> Option<RunCell> {
        match self.queries.get(key) {
            Some(runs) if runs.ts == ts => {
                if let Some(cell) = runs.any_caller.as_ref().or_else(|| runs.by_caller.get(caller)) {
                    return Some(Arc::clone(cell));
                }
            }
            // A connection behind the others: its run is of use to nobody else.
            Some(runs) if runs.ts > ts => return None,
            Some(_) => self.remove(key),
            None => {}
        }
        if self.cells >= MAX_SHARED_QUERY_RUNS {
            self.queries.retain(|_, runs| runs.ts >= ts);
            self.cells = self.queries.values().map(|runs| runs.by_caller.len()).sum();
            if self.cells >= MAX_SHARED_QUERY_RUNS {
                return None;
            }
        }
        let runs =
            self.queries.entry(key.clone()).or_insert_with(|| Runs { ts, any_caller: None, by_caller: HashMap::new() });
        let cell = RunCell::default();
        runs.by_caller.insert(caller.to_owned(), Arc::clone(&cell));
        self.cells += 1;
        assert!(self.cells <= MAX_SHARED_QUERY_RUNS);
        Some(cell)
    }

    /// Offers a run that did not read the identity to every caller of the query at `ts`.
    fn for_any_caller(&mut self, key: &QueryKey, ts: Timestamp, cell: RunCell) {
        if let Some(runs) = self.queries.get_mut(key)
            && runs.ts == ts
        {
            runs.any_caller.get_or_insert(cell);
        }
    }

    fn remove(&mut self, key: &QueryKey) {
        if let Some(runs) = self.queries.remove(key) {
            self.cells -= runs.by_caller.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use livebase_value::{Object, Value};

    use super::*;

    fn key(n: usize) -> QueryKey {
        let args = Object::from([("n".to_owned(), Value::Float64(n as f64))]);
        QueryKey { path: "q:list".to_owned(), args: QueryArgs::new(args), journal: None }
    }

    fn ts(nanos: u64) -> Timestamp {
        Timestamp::from_nanos(nanos)
    }

    fn done(cell: &RunCell, read_identity: bool) {
        let run = SharedRun {
            outcome: Arc::new(SharedOutcome::new(Ok(Value::Null), Vec::new(), None)),
            read_set: ReadSet::from([]),
            ts: ts(0),
            read_identity,
        };
        cell.set(Arc::new(run)).unwrap();
    }

    #[test]
    fn runs_are_shared_by_callers_at_one_timestamp() {
        let mut state = State::default();
        let ada = state.cell(&key(0), "ada", ts(10)).unwrap();
        assert!(Arc::ptr_eq(&ada, &state.cell(&key(0), "ada", ts(10)).unwrap()), "same query, caller, timestamp");
        let bob = state.cell(&key(0), "bob", ts(10)).unwrap();
        assert!(!Arc::ptr_eq(&ada, &bob), "another caller runs it again: the run may read who calls");
        // Ada's run did not read the identity: it becomes everyone's.
        done(&ada, false);
        state.for_any_caller(&key(0), ts(10), Arc::clone(&ada));
        assert!(Arc::ptr_eq(&ada, &state.cell(&key(0), "cy", ts(10)).unwrap()));
        assert!(state.cell(&key(0), "ada", ts(9)).is_none(), "a run older than the kept ones is not shared");
        assert!(!Arc::ptr_eq(&ada, &state.cell(&key(0), "ada", ts(11)).unwrap()), "a newer timestamp: a new run");
        assert_eq!(state.cells, 1, "the runs at 10 went");
    }

    #[test]
    fn the_runs_kept_are_bounded() {
        let mut state = State::default();
        for n in 0..MAX_SHARED_QUERY_RUNS {
            assert!(state.cell(&key(n), "ada", ts(11)).is_some());
        }
        assert!(state.cell(&key(MAX_SHARED_QUERY_RUNS), "ada", ts(11)).is_none(), "full at the current timestamp");
        assert!(state.cell(&key(0), "bob", ts(11)).is_none(), "a new caller's run is a new run too");
        assert!(state.cell(&key(0), "ada", ts(11)).is_some(), "kept runs are still shared when full");
        // A newer timestamp makes room by dropping every older run.
        assert!(state.cell(&key(MAX_SHARED_QUERY_RUNS), "ada", ts(12)).is_some());
        assert_eq!((state.queries.len(), state.cells), (1, 1));
    }
}
