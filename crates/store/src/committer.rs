//! The single committer and its durability stage.
//!
//! Two threads form a pipeline. The committer validates read sets against later writes, assigns
//! timestamps and applies accepted writes to the latest (not yet durable) state; one thread owns that
//! state, so commit order needs no locks. It hands each group of accepted commits to the durability
//! thread, which appends them to the log (merging groups that queued up into one fsync), then
//! publishes the new snapshot and change records and acknowledges the commits. While one group is
//! on its way to disk, the committer already validates the next.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use livebase_value::DocumentId;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::document::Document;
use crate::limits::{
    CHANGE_STREAM_CAPACITY, MAX_BATCHES_IN_FLIGHT, MAX_COMMITS_PER_BATCH, MAX_RETAINED_SNAPSHOTS,
    MAX_TRANSACTION_DURATION, MAX_WRITE_LOG_KEYS,
};
use crate::persistence::{Checkpoints, LatestVersions, Log, StoredWrite};
use crate::read_set::ReadSet;
use crate::snapshot::Snapshot;
use crate::transaction::PendingWrite;
use crate::{CommitError, Timestamp};

/// One committed change to one document.
#[derive(Clone, Debug)]
pub struct DocumentChange {
    pub id: DocumentId,
    pub old: Option<Arc<Document>>,
    pub new: Option<Arc<Document>>,
}

/// A commit as published on the change stream.
#[derive(Debug)]
pub struct CommitRecord {
    pub ts: Timestamp,
    pub changes: Vec<DocumentChange>,
    /// Every global index key the commit wrote (each changed document's old and new key in every
    /// index of its table), sorted and deduplicated: what read sets are matched against.
    pub keys: Vec<Vec<u8>>,
    /// Not one commit but a read replica's reload of the whole state at `ts` (it fell too far behind
    /// and the log it needed was truncated): `changes` and `keys` are empty, and anything derived
    /// from earlier states must be recomputed, as when the change stream reports `Lagged`.
    pub reloaded: bool,
}

pub(crate) struct CommitRequest {
    pub(crate) begin_ts: Timestamp,
    pub(crate) read_set: ReadSet,
    pub(crate) writes: BTreeMap<DocumentId, PendingWrite>,
    pub(crate) reply: oneshot::Sender<Result<Timestamp, Rejection>>,
    /// Held by a retry that conflicted before: exempts it from the lane's reservation. The committer
    /// drops it once it has decided, after publishing the accepted state, so the next retry in the
    /// lane begins at a state that includes this commit.
    pub(crate) lane: Option<LaneTicket>,
}

/// Why the committer refused a commit, and the key it conflicted on, if any: a retry reserves it.
#[derive(Debug)]
pub(crate) struct Rejection {
    pub(crate) error: CommitError,
    pub(crate) hot_key: Option<Vec<u8>>,
}

impl From<CommitError> for Rejection {
    fn from(error: CommitError) -> Rejection {
        Rejection { error, hot_key: None }
    }
}

/// The conflict lane: retries of transactions that conflicted run in it one at a time, each at the
/// newest accepted state, and while one runs, commits of other transactions that read the key it
/// conflicted on are refused (`CommitError::Yielded`) and queue in the lane behind it. So a hot
/// document's transactions take turns instead of invalidating each other over and over; everyone
/// else commits optimistically, untouched.
pub(crate) struct Lane {
    turn: Arc<tokio::sync::Semaphore>,
    /// The key the transaction holding the lane conflicted on.
    reserved: Mutex<Option<Vec<u8>>>,
}

/// A turn in the conflict lane. Dropping it lifts the reservation and hands the lane on.
pub(crate) struct LaneTicket {
    _turn: tokio::sync::OwnedSemaphorePermit,
    published: Arc<Published>,
}

impl Drop for LaneTicket {
    fn drop(&mut self) {
        *self.published.lane.reserved.lock().expect("lock poisoned") = None;
    }
}

/// What the committer shares with everyone else: the latest durable snapshot, a few older ones, and
/// the change stream.
pub(crate) struct Published {
    latest: RwLock<Snapshot>,
    /// The newest state the committer accepted, durable or not yet: where read-write transactions
    /// begin (`Store::begin_latest`), so that a hot document's commits need not wait a whole group
    /// commit for the next one to see them. Never behind `latest`.
    accepted: RwLock<Snapshot>,
    /// Callers waiting for a timestamp to become durable, each woken once `latest` reaches it (or
    /// dropped when the store stops).
    durable_waiters: Mutex<Vec<(Timestamp, oneshot::Sender<()>)>>,
    lane: Lane,
    history: Mutex<VecDeque<Snapshot>>,
    changes: broadcast::Sender<Arc<CommitRecord>>,
    unavailable: RwLock<Option<String>>,
    commits: AtomicU64,
    batches: AtomicU64,
    conflicts: AtomicU64,
    checkpoints: AtomicU64,
    logged_bytes: AtomicU64,
}

/// Counters since the store was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Commits made durable.
    pub commits: u64,
    /// Group commits (one durable append, one fsync, each).
    pub batches: u64,
    /// Commits rejected because of a conflict or a too-old begin timestamp.
    pub conflicts: u64,
    pub checkpoints: u64,
    /// Bytes of document encodings appended to the log.
    pub logged_bytes: u64,
}

impl Published {
    pub(crate) fn new(snapshot: Snapshot) -> Published {
        Published {
            latest: RwLock::new(snapshot.clone()),
            accepted: RwLock::new(snapshot.clone()),
            durable_waiters: Mutex::new(Vec::new()),
            lane: Lane { turn: Arc::new(tokio::sync::Semaphore::new(1)), reserved: Mutex::new(None) },
            history: Mutex::new(VecDeque::from([snapshot])),
            changes: broadcast::channel(CHANGE_STREAM_CAPACITY).0,
            unavailable: RwLock::new(None),
            commits: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
            checkpoints: AtomicU64::new(0),
            logged_bytes: AtomicU64::new(0),
        }
    }

    pub(crate) fn latest(&self) -> Snapshot {
        self.latest.read().expect("snapshot lock poisoned").clone()
    }

    pub(crate) fn accepted(&self) -> Snapshot {
        self.accepted.read().expect("snapshot lock poisoned").clone()
    }

    /// `None` when the state at `ts` is durable; otherwise what will be sent once it is, or dropped
    /// when the store stops first.
    pub(crate) fn wait_durable(&self, ts: Timestamp) -> Option<oneshot::Receiver<()>> {
        // Checked under the waiters' lock, which `publish` takes after moving `latest`: no wake-up is lost.
        let mut waiters = self.durable_waiters.lock().expect("lock poisoned");
        if self.latest().ts() >= ts {
            return None;
        }
        let (sender, receiver) = oneshot::channel();
        // A stopped store makes nothing durable any more: the dropped sender says so.
        if self.unavailable.read().expect("lock poisoned").is_none() {
            waiters.push((ts, sender));
        }
        Some(receiver)
    }

    /// Waits for a turn in the conflict lane, then reserves `hot_key` (see `Lane`).
    pub(crate) async fn enter_lane(self: &Arc<Self>, hot_key: Option<Vec<u8>>) -> LaneTicket {
        let turn = Arc::clone(&self.lane.turn).acquire_owned().await.expect("the lane is never closed");
        *self.lane.reserved.lock().expect("lock poisoned") = hot_key;
        LaneTicket { _turn: turn, published: Arc::clone(self) }
    }

    /// The state as of `ts`: the newest retained snapshot at or before it.
    pub(crate) fn at(&self, ts: Timestamp) -> Option<Snapshot> {
        let history = self.history.lock().expect("history lock poisoned");
        history.iter().rev().find(|snapshot| snapshot.ts() <= ts).cloned()
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<CommitRecord>> {
        self.changes.subscribe()
    }

    pub(crate) fn stats(&self) -> StoreStats {
        StoreStats {
            commits: self.commits.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            conflicts: self.conflicts.load(Ordering::Relaxed),
            checkpoints: self.checkpoints.load(Ordering::Relaxed),
            logged_bytes: self.logged_bytes.load(Ordering::Relaxed),
        }
    }

    fn stop_accepting(&self, reason: &str) {
        let mut unavailable = self.unavailable.write().expect("lock poisoned");
        if unavailable.is_none() {
            tracing::error!(%reason, "the store stops accepting commits");
            *unavailable = Some(reason.to_owned());
        }
        drop(unavailable);
        // What they wait for will never be durable: dropping their senders tells them.
        self.durable_waiters.lock().expect("lock poisoned").clear();
    }

    pub(crate) fn unavailable_reason(&self) -> String {
        self.unavailable.read().expect("lock poisoned").clone().unwrap_or_else(|| "the store has shut down".to_owned())
    }

    /// A read replica's counterpart of the durability stage: makes `snapshot`, the state after one
    /// log group, the latest, then sends the group's records down the change stream, as the writer
    /// did when it made the group durable.
    pub(crate) fn publish_replicated(&self, snapshot: Snapshot, records: Vec<Arc<CommitRecord>>) {
        assert!(
            records.last().is_some_and(|last| last.ts == snapshot.ts()),
            "a group's snapshot is at its last commit"
        );
        let evicted = self.publish(snapshot);
        self.batches.fetch_add(1, Ordering::Relaxed);
        let commits = records.iter().filter(|record| !record.reloaded).count();
        self.commits.fetch_add(commits as u64, Ordering::Relaxed);
        for record in records {
            // No receivers is fine: nobody is watching the change stream yet.
            let _ = self.changes.send(record);
        }
        drop(evicted);
    }

    /// Makes `snapshot` the latest; returns the snapshot that fell out of the history, for the caller
    /// to drop when it suits it (freeing the nodes only that snapshot held takes a while).
    #[must_use]
    fn publish(&self, snapshot: Snapshot) -> Option<Snapshot> {
        let mut history = self.history.lock().expect("history lock poisoned");
        let evicted = if history.len() == MAX_RETAINED_SNAPSHOTS { history.pop_front() } else { None };
        history.push_back(snapshot.clone());
        let ts = snapshot.ts();
        {
            // A replica has no committer: what it publishes is also the newest state there is.
            let mut accepted = self.accepted.write().expect("snapshot lock poisoned");
            if accepted.ts() < ts {
                *accepted = snapshot.clone();
            }
        }
        *self.latest.write().expect("snapshot lock poisoned") = snapshot;
        drop(history);
        let mut waiters = self.durable_waiters.lock().expect("lock poisoned");
        if !waiters.is_empty() {
            for (_, waiter) in waiters.extract_if(.., |(waiting_for, _)| *waiting_for <= ts) {
                let _ = waiter.send(());
            }
        }
        evicted
    }
}

/// When to write a checkpoint.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CheckpointPolicy {
    pub(crate) after_commits: usize,
    pub(crate) after_bytes: usize,
}

/// A commit accepted by the committer, on its way to disk.
struct AcceptedCommit {
    record: Arc<CommitRecord>,
    stored: Vec<StoredWrite>,
    reply: oneshot::Sender<Result<Timestamp, Rejection>>,
}

/// A group of accepted commits and the state after the last of them.
struct AcceptedBatch {
    commits: Vec<AcceptedCommit>,
    snapshot: Snapshot,
}

pub(crate) struct Committer {
    /// The latest state, including accepted commits that are not durable yet.
    state: Snapshot,
    /// Recent commits, oldest first, whose written keys validate read sets.
    write_log: VecDeque<Arc<CommitRecord>>,
    write_log_keys: usize,
    /// The newest commit dropped from `write_log`: transactions that began before it can't be checked.
    forgotten_up_to: Timestamp,
    published: Arc<Published>,
}

/// The durability stage: owns the log and decides when to checkpoint.
struct Durability {
    log: Box<dyn Log>,
    since_checkpoint: LatestVersions,
    commits_since_checkpoint: usize,
    bytes_since_checkpoint: usize,
    checkpoint_policy: CheckpointPolicy,
    /// At most one checkpoint is being written; while it is, versions keep collecting for the next.
    checkpoint_jobs: std::sync::mpsc::SyncSender<CheckpointJob>,
    /// The newest timestamp the checkpointer made durable; the log before it can go.
    checkpointed: Arc<AtomicU64>,
    truncated_up_to: u64,
    checkpointer: std::thread::JoinHandle<()>,
    published: Arc<Published>,
}

/// Everything written since the previous checkpoint, up to `ts`.
struct CheckpointJob {
    ts: Timestamp,
    latest: LatestVersions,
}

/// The durable parts the pipeline writes to, and what was recovered from them.
pub(crate) struct Durable {
    pub(crate) log: Box<dyn Log>,
    pub(crate) checkpoints: Box<dyn Checkpoints>,
    /// Versions in the log but not in the checkpoint, and how many commits wrote them.
    pub(crate) since_checkpoint: LatestVersions,
    pub(crate) commits_since_checkpoint: usize,
}

/// Starts the committer, durability and checkpointer threads; they run until every request sender is
/// gone, or until a write to disk fails: then the store stops accepting commits, since what is durable
/// is no longer known. Returns the committer thread, which joins the others before it ends.
pub(crate) fn start(
    state: Snapshot,
    durable: Durable,
    checkpoint_policy: CheckpointPolicy,
    published: Arc<Published>,
    requests: mpsc::Receiver<CommitRequest>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let (checkpoint_jobs, jobs) = std::sync::mpsc::sync_channel(1);
    let checkpointed = Arc::new(AtomicU64::new(state.ts().nanos()));
    let checkpointer = {
        let (checkpoints, checkpointed, published) =
            (durable.checkpoints, Arc::clone(&checkpointed), Arc::clone(&published));
        std::thread::Builder::new()
            .name("livebase-checkpoint".to_owned())
            .spawn(move || write_checkpoints(checkpoints, jobs, &checkpointed, &published))?
    };
    let bytes_since_checkpoint = durable.since_checkpoint.values().flatten().map(|bytes| bytes.len()).sum();
    let durability = Durability {
        log: durable.log,
        since_checkpoint: durable.since_checkpoint,
        commits_since_checkpoint: durable.commits_since_checkpoint,
        bytes_since_checkpoint,
        checkpoint_policy,
        checkpoint_jobs,
        checkpointed,
        truncated_up_to: 0,
        checkpointer,
        published: Arc::clone(&published),
    };
    let committer =
        Committer { forgotten_up_to: state.ts(), state, write_log: VecDeque::new(), write_log_keys: 0, published };
    let (batches, accepted) = std::sync::mpsc::sync_channel(MAX_BATCHES_IN_FLIGHT);
    let durability =
        std::thread::Builder::new().name("livebase-durable".to_owned()).spawn(move || durability.run(accepted))?;
    std::thread::Builder::new().name("livebase-committer".to_owned()).spawn(move || {
        committer.run(requests, batches);
        let _ = durability.join();
    })
}

fn write_checkpoints(
    mut checkpoints: Box<dyn Checkpoints>,
    jobs: std::sync::mpsc::Receiver<CheckpointJob>,
    checkpointed: &AtomicU64,
    published: &Published,
) {
    for job in jobs {
        match checkpoints.write(job.ts, &job.latest) {
            Ok(()) => {
                checkpointed.store(job.ts.nanos(), Ordering::Release);
                published.checkpoints.fetch_add(1, Ordering::Relaxed);
            }
            Err(reason) => {
                // Commits stay safe in the log, which is no longer truncated; restart retries.
                tracing::error!(%reason, "checkpoint failed; the log keeps growing until a restart");
                return;
            }
        }
    }
}

impl Committer {
    fn run(mut self, mut requests: mpsc::Receiver<CommitRequest>, batches: std::sync::mpsc::SyncSender<AcceptedBatch>) {
        while let Some(first) = requests.blocking_recv() {
            let mut batch = Vec::with_capacity(MAX_COMMITS_PER_BATCH.min(64));
            batch.push(first);
            while batch.len() < MAX_COMMITS_PER_BATCH {
                match requests.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            let Some(accepted) = self.accept(batch) else { continue };
            if let Err(std::sync::mpsc::SendError(rejected)) = batches.send(accepted) {
                // The durability thread stopped after a failed write; so does the committer.
                let reason = self.published.unavailable_reason();
                for commit in rejected.commits {
                    let _ = commit.reply.send(Err(CommitError::Unavailable(reason.clone()).into()));
                }
                requests.close();
                while let Some(request) = requests.blocking_recv() {
                    let _ = request.reply.send(Err(CommitError::Unavailable(reason.clone()).into()));
                }
                return;
            }
        }
    }

    /// Validates each request and applies the accepted ones to the latest state.
    fn accept(&mut self, batch: Vec<CommitRequest>) -> Option<AcceptedBatch> {
        let mut commits = Vec::with_capacity(batch.len());
        let mut last_ts = self.state.ts();
        // Lane turns end only once the state they led to is published (below).
        let mut lane_tickets = Vec::new();
        let reserved = self.published.lane.reserved.lock().expect("lock poisoned").clone();
        for mut request in batch {
            let in_lane = request.lane.is_some();
            lane_tickets.extend(request.lane.take());
            let outcome = match &reserved {
                // Not in the lane, and read what the lane's transaction is retrying on: yield to it.
                Some(key) if !in_lane && request.read_set.contains(key) => {
                    Err(Rejection { error: CommitError::Yielded, hot_key: Some(key.clone()) })
                }
                _ => self.validate(&request),
            };
            if let Err(rejection) = outcome {
                self.published.conflicts.fetch_add(1, Ordering::Relaxed);
                let _ = request.reply.send(Err(rejection));
                continue;
            }
            let ts = last_ts.next_commit();
            last_ts = ts;
            let mut keys = Vec::new();
            let mut changes = Vec::with_capacity(request.writes.len());
            let mut stored: Vec<StoredWrite> = Vec::with_capacity(request.writes.len());
            for (id, write) in request.writes {
                let new = write.new.as_ref().map(|(document, _)| Arc::clone(document));
                let old = self.state.apply_write(id, new.clone(), Some(&mut keys));
                if old.is_none() && new.is_none() {
                    continue; // Inserted and deleted by the same transaction.
                }
                changes.push(DocumentChange { id, old, new });
                stored.push((id, write.new.map(|(_, encoded)| encoded)));
            }
            keys.sort_unstable();
            keys.dedup();
            let record = Arc::new(CommitRecord { ts, changes, keys, reloaded: false });
            self.remember_writes(Arc::clone(&record));
            commits.push(AcceptedCommit { record, stored, reply: request.reply });
        }
        if commits.is_empty() {
            return None;
        }
        self.state.set_ts(last_ts);
        let snapshot = self.state.clone();
        *self.published.accepted.write().expect("snapshot lock poisoned") = snapshot.clone();
        drop(lane_tickets);
        Some(AcceptedBatch { commits, snapshot })
    }

    fn validate(&self, request: &CommitRequest) -> Result<(), Rejection> {
        if request.begin_ts < self.forgotten_up_to {
            return Err(CommitError::TooOld { begin: request.begin_ts, oldest: self.forgotten_up_to }.into());
        }
        let Some((lowest, highest)) = request.read_set.bounds() else { return Ok(()) };
        for record in self.write_log.iter().rev() {
            if record.ts <= request.begin_ts {
                break;
            }
            // Most commits write nowhere near what a transaction read: two comparisons rule them out.
            let (Some(first), Some(last)) = (record.keys.first(), record.keys.last()) else { continue };
            if last.as_slice() < lowest || first.as_slice() >= highest {
                continue;
            }
            if let Some(key) = record.keys.iter().find(|key| request.read_set.contains(key)) {
                let error = CommitError::Conflict { conflicting_commit: record.ts };
                return Err(Rejection { error, hot_key: Some(key.clone()) });
            }
        }
        Ok(())
    }

    fn remember_writes(&mut self, record: Arc<CommitRecord>) {
        let too_old = record.ts.nanos().saturating_sub(MAX_TRANSACTION_DURATION.as_nanos() as u64);
        self.write_log_keys += record.keys.len();
        self.write_log.push_back(record);
        while self.write_log_keys > MAX_WRITE_LOG_KEYS
            || self.write_log.front().is_some_and(|oldest| oldest.ts.nanos() < too_old)
        {
            let forgotten = self.write_log.pop_front().expect("a non-empty log holds the counted keys");
            self.write_log_keys -= forgotten.keys.len();
            self.forgotten_up_to = forgotten.ts;
        }
    }
}

impl Durability {
    fn run(mut self, accepted: std::sync::mpsc::Receiver<AcceptedBatch>) {
        while let Ok(first) = accepted.recv() {
            // Groups that queued while the previous append was on disk share one append.
            let mut batches = vec![first];
            batches.extend(accepted.try_iter().take(MAX_BATCHES_IN_FLIGHT));
            if let Err(reason) = self.make_durable(batches) {
                self.published.stop_accepting(&reason);
                for batch in accepted.try_iter() {
                    for commit in batch.commits {
                        let _ = commit.reply.send(Err(CommitError::Unavailable(reason.clone()).into()));
                    }
                }
                return;
            }
        }
        // Shutting down: checkpoint what is left so the next start replays little, wait for the
        // checkpointer, and drop the log it covers.
        if self.commits_since_checkpoint > 0 {
            let job =
                CheckpointJob { ts: self.published.latest().ts(), latest: std::mem::take(&mut self.since_checkpoint) };
            let _ = self.checkpoint_jobs.send(job);
        }
        drop(self.checkpoint_jobs);
        let _ = self.checkpointer.join();
        let checkpointed = Timestamp::from_nanos(self.checkpointed.load(Ordering::Acquire));
        if let Err(reason) = self.log.truncate(checkpointed) {
            tracing::warn!(%reason, "truncating the log at shutdown failed; the next start skips what it holds");
        }
    }

    fn make_durable(&mut self, batches: Vec<AcceptedBatch>) -> Result<(), String> {
        let commits: Vec<(Timestamp, &[StoredWrite])> = batches
            .iter()
            .flat_map(|batch| batch.commits.iter().map(|commit| (commit.record.ts, commit.stored.as_slice())))
            .collect();
        let count = commits.len() as u64;
        if let Err(reason) = self.log.append(&commits) {
            for commit in batches.into_iter().flat_map(|batch| batch.commits) {
                let _ = commit.reply.send(Err(CommitError::Unavailable(reason.clone()).into()));
            }
            return Err(reason);
        }
        let snapshot = batches.last().expect("at least one batch").snapshot.clone();
        let ts = snapshot.ts();
        let evicted = self.published.publish(snapshot);
        self.published.batches.fetch_add(1, Ordering::Relaxed);
        self.published.commits.fetch_add(count, Ordering::Relaxed);
        let mut finished = Vec::with_capacity(batches.len() + 1);
        finished.extend(evicted);
        for batch in batches {
            finished.push(batch.snapshot);
            self.acknowledge(batch.commits);
        }
        // Old snapshots are freed only once every writer of the group has its answer.
        drop(finished);
        self.maybe_checkpoint(ts)
    }

    fn acknowledge(&mut self, commits: Vec<AcceptedCommit>) {
        for commit in commits {
            self.commits_since_checkpoint += 1;
            for (id, encoded) in commit.stored {
                let size = encoded.as_ref().map_or(0, |bytes| bytes.len());
                self.bytes_since_checkpoint += size;
                self.published.logged_bytes.fetch_add(size as u64, Ordering::Relaxed);
                self.since_checkpoint.insert(id, encoded);
            }
            let ts = commit.record.ts;
            // No receivers is fine: nobody is watching the change stream yet.
            let _ = self.published.changes.send(commit.record);
            let _ = commit.reply.send(Ok(ts));
        }
    }

    fn maybe_checkpoint(&mut self, ts: Timestamp) -> Result<(), String> {
        let checkpointed = self.checkpointed.load(Ordering::Acquire);
        if checkpointed > self.truncated_up_to {
            self.log.truncate(Timestamp::from_nanos(checkpointed))?;
            self.truncated_up_to = checkpointed;
        }
        if self.commits_since_checkpoint < self.checkpoint_policy.after_commits
            && self.bytes_since_checkpoint < self.checkpoint_policy.after_bytes
        {
            return Ok(());
        }
        let job = CheckpointJob { ts, latest: std::mem::take(&mut self.since_checkpoint) };
        match self.checkpoint_jobs.try_send(job) {
            Ok(()) => {
                self.commits_since_checkpoint = 0;
                self.bytes_since_checkpoint = 0;
            }
            // The previous checkpoint is still being written: keep collecting, try after the next group.
            Err(std::sync::mpsc::TrySendError::Full(job)) => self.since_checkpoint = job.latest,
            // Without checkpoints the log and this map grow without bound: stop taking commits (the
            // ones made are safe in the log) rather than run out of memory or disk later.
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {
                return Err("checkpoints failed, so the store stopped accepting commits; see the log".to_owned());
            }
        }
        Ok(())
    }
}
