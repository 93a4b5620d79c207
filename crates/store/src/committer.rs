//! The single committer and the stages after it: durability and publication.
//!
//! Three threads form a pipeline. The committer validates read sets against later writes, assigns
//! timestamps and applies accepted writes to the latest (not yet durable) state; one thread owns that
//! state, so commit order needs no locks. It hands each batch of accepted commits to the durability
//! thread, which appends them to the log (merging batches that queued up into one group, one fsync)
//! and hands the group to the publisher, which publishes the new snapshot and change records and
//! acknowledges the commits. So while one group is on its way to disk, the committer validates the
//! next and the publisher answers the previous: the log is never idle for their CPU work. Each stage
//! takes its input in order from one queue, so groups are published in commit order, and only after
//! their append returned.
//!
//! A batch that finds the later stages idle (nothing handed on is still unpublished) is appended and
//! published by the committer itself. Under light load that is every batch, and a commit then costs
//! two thread wake-ups instead of four: on a virtual machine, waking a thread whose CPU sleeps takes
//! tens of microseconds, as long as an fsync. Likewise, a group whose append finds nothing queued to
//! append next is published by the durability thread itself, if the publisher is idle: it would
//! only wait otherwise. Under load the stages overlap as described.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use livebase_value::DocumentId;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::document::Document;
use crate::limits::{
    CHANGE_STREAM_CAPACITY, MAX_BATCHES_IN_FLIGHT, MAX_COMMITS_PER_BATCH, MAX_COMMITS_PER_GROUP,
    MAX_GROUPS_AWAITING_PUBLISH, MAX_RETAINED_SNAPSHOTS, MAX_TRANSACTION_DURATION, MAX_WRITE_LOG_KEYS,
};
use crate::persistence::{AppendError, Checkpoints, LatestVersions, Log, StoredWrite};
use crate::read_set::ReadSet;
use crate::snapshot::Snapshot;
use crate::transaction::PendingWrite;
use crate::{CommitError, Timestamp};

/// Names of the pipeline's threads (a benchmark reads their CPU time by them). Linux shows the first
/// 15 bytes of a thread's name.
pub const COMMITTER_THREAD: &str = "livebase-committer";
pub const DURABILITY_THREAD: &str = "livebase-durable";
pub const PUBLISH_THREAD: &str = "livebase-publish";
pub const CHECKPOINT_THREAD: &str = "livebase-checkpoint";
pub const RECLAIM_THREAD: &str = "livebase-reclaim";

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

impl Lane {
    /// Whether a transaction holds the lane (retrying after a conflict).
    fn is_busy(&self) -> bool {
        self.turn.available_permits() == 0
    }
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
    /// Whether what stopped the store was an append refused before it wrote (`AppendError::Fenced`).
    fenced: AtomicBool,
    commits: AtomicU64,
    batches: AtomicU64,
    groups_appended_by_committer: AtomicU64,
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
    /// Of `batches`, those the committer appended itself, finding the later stages idle (the
    /// others were the durability thread's).
    pub groups_appended_by_committer: u64,
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
            fenced: AtomicBool::new(false),
            commits: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            groups_appended_by_committer: AtomicU64::new(0),
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
            groups_appended_by_committer: self.groups_appended_by_committer.load(Ordering::Relaxed),
            conflicts: self.conflicts.load(Ordering::Relaxed),
            checkpoints: self.checkpoints.load(Ordering::Relaxed),
            logged_bytes: self.logged_bytes.load(Ordering::Relaxed),
        }
    }

    /// `fenced`: the failure that stops the store wrote nothing (see `stopped_by_fence`). Only the
    /// first reason counts.
    fn stop_accepting(&self, reason: &str, fenced: bool) {
        let mut unavailable = self.unavailable.write().expect("lock poisoned");
        if unavailable.is_none() {
            tracing::error!(%reason, "the store stops accepting commits");
            *unavailable = Some(reason.to_owned());
            self.fenced.store(fenced, Ordering::Release);
        }
        drop(unavailable);
        // What they wait for will never be durable: dropping their senders tells them.
        self.durable_waiters.lock().expect("lock poisoned").clear();
    }

    /// Whether the store stopped because an append was refused before it wrote anything: the
    /// durability stage stops at its first failed append, so then no commit it ever refused was made.
    pub(crate) fn stopped_by_fence(&self) -> bool {
        self.fenced.load(Ordering::Acquire)
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.unavailable.read().expect("lock poisoned").is_some()
    }

    /// Why a commit is refused once the store stopped: it lost its lease to another writer, or it
    /// is unavailable.
    pub(crate) fn refusal(&self) -> CommitError {
        let reason = self.unavailable_reason();
        if self.stopped_by_fence() { CommitError::LeaseLost(reason) } else { CommitError::Unavailable(reason) }
    }

    pub(crate) fn unavailable_reason(&self) -> String {
        self.unavailable.read().expect("lock poisoned").clone().unwrap_or_else(|| "the store has shut down".to_owned())
    }

    /// A read replica's counterpart of the publishing stage: makes `snapshot`, the state after one
    /// log group, the latest, then sends the group's records down the change stream, as the writer
    /// did once the group was durable.
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
    downstream: Arc<Downstream>,
}

/// The stages after the committer. Their threads run them for the batches handed on; the committer
/// runs them itself for a batch that finds them idle.
struct Downstream {
    durability: Mutex<Durability>,
    /// Taken out at shutdown, for its last checkpoint.
    publisher: Mutex<Option<Publisher>>,
    /// Batches handed to the durability thread and not yet published. Only the committer adds to
    /// it, so when it reads zero, nothing is on its way and nothing will be until it hands on more.
    in_flight: AtomicUsize,
    /// Groups handed to the publishing thread and not yet published. Only the durability thread adds
    /// to it, so when it reads zero, the publishing thread is idle until it hands on another.
    groups_awaiting_publish: AtomicUsize,
}

/// The largest batch the committer appends and publishes itself when the later stages are idle
/// and nothing waits for it; bigger batches mean load, under which the stages overlap (the committer
/// validates the next batch while the durability thread waits for the disk).
const MAX_COMMITS_APPENDED_BY_COMMITTER: usize = 8;

/// What the committer hands the durability thread.
enum ToDurability {
    Batch(AcceptedBatch),
    /// A batch the committer appended itself failed: the durability thread stops the store, as
    /// after a failure of its own.
    Failed(Failure),
}

/// The durability stage: owns the log, appends each group and hands it to the publishing stage, so
/// that the next group's append starts as soon as the previous one's fsync returns.
struct Durability {
    log: Box<dyn Log>,
    /// The newest timestamp the checkpointer made durable; the log before it can go.
    checkpointed: Arc<AtomicU64>,
    truncated_up_to: u64,
    /// The last commit in the log.
    appended_up_to: Timestamp,
    published: Arc<Published>,
}

/// Why the durability stage stopped before its queue closed, and the accepted batches it did not
/// append: their writers are told the store is unavailable.
struct Failure {
    reason: String,
    /// The failed append was refused before it wrote anything (`AppendError::Fenced`).
    fenced: bool,
    refused: Vec<AcceptedBatch>,
}

/// The publishing stage: takes groups the log holds, makes their state the latest, sends their
/// records down the change stream, acknowledges their writers, and decides when to checkpoint.
struct Publisher {
    since_checkpoint: LatestVersions,
    commits_since_checkpoint: usize,
    bytes_since_checkpoint: usize,
    checkpoint_policy: CheckpointPolicy,
    /// At most one checkpoint is being written; while it is, versions keep collecting for the next.
    checkpoint_jobs: std::sync::mpsc::SyncSender<CheckpointJob>,
    checkpointer: std::thread::JoinHandle<()>,
    /// Snapshots done with, for the reclaimer thread to drop (see `Publisher::reclaim`).
    finished_snapshots: std::sync::mpsc::SyncSender<Vec<Snapshot>>,
    /// The last commit made visible and acknowledged.
    published_up_to: Timestamp,
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
    /// What the checkpoint holds: the log after it is all that has the rest, so it is kept.
    pub(crate) checkpoint_ts: Timestamp,
}

/// Starts the committer, durability, publisher, checkpointer and reclaimer threads; they run until
/// every request sender is gone, or until a write to disk fails: then the store stops accepting
/// commits, since what is durable is no longer known. Returns the committer thread, which joins the
/// durability stage (which joins the publisher, which joins the checkpointer) before it ends; the
/// reclaimer only frees memory and ends once the publisher has.
pub(crate) fn start(
    state: Snapshot,
    durable: Durable,
    checkpoint_policy: CheckpointPolicy,
    published: Arc<Published>,
    requests: mpsc::Receiver<CommitRequest>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let (checkpoint_jobs, jobs) = std::sync::mpsc::sync_channel(1);
    // Not `state.ts()`: the log recovered after the checkpoint is not in it, and truncating it
    // before the next checkpoint would lose those commits at the next restart.
    let checkpointed = Arc::new(AtomicU64::new(durable.checkpoint_ts.nanos()));
    let checkpointer = {
        let (checkpoints, checkpointed, published) =
            (durable.checkpoints, Arc::clone(&checkpointed), Arc::clone(&published));
        std::thread::Builder::new()
            .name(CHECKPOINT_THREAD.to_owned())
            .spawn(move || write_checkpoints(checkpoints, jobs, &checkpointed, &published))?
    };
    let (finished_snapshots, reclaimed) = std::sync::mpsc::sync_channel::<Vec<Snapshot>>(MAX_BATCHES_IN_FLIGHT);
    // Ends when the publisher, the sender, does; nothing waits for it but the process.
    std::thread::Builder::new().name(RECLAIM_THREAD.to_owned()).spawn(move || reclaimed.into_iter().for_each(drop))?;
    let bytes_since_checkpoint = durable.since_checkpoint.values().flatten().map(|bytes| bytes.len()).sum();
    let publisher = Publisher {
        since_checkpoint: durable.since_checkpoint,
        commits_since_checkpoint: durable.commits_since_checkpoint,
        bytes_since_checkpoint,
        checkpoint_policy,
        checkpoint_jobs,
        checkpointer,
        finished_snapshots,
        published_up_to: state.ts(),
        published: Arc::clone(&published),
    };
    let durability = Durability {
        log: durable.log,
        checkpointed,
        truncated_up_to: 0,
        appended_up_to: state.ts(),
        published: Arc::clone(&published),
    };
    let downstream = Arc::new(Downstream {
        durability: Mutex::new(durability),
        publisher: Mutex::new(Some(publisher)),
        in_flight: AtomicUsize::new(0),
        groups_awaiting_publish: AtomicUsize::new(0),
    });
    let (groups, durable_groups) = std::sync::mpsc::sync_channel(MAX_GROUPS_AWAITING_PUBLISH);
    let publisher = {
        let downstream = Arc::clone(&downstream);
        std::thread::Builder::new().name(PUBLISH_THREAD.to_owned()).spawn(move || downstream.publish(durable_groups))?
    };
    let committer = Committer {
        forgotten_up_to: state.ts(),
        state,
        write_log: VecDeque::new(),
        write_log_keys: 0,
        published,
        downstream: Arc::clone(&downstream),
    };
    let (batches, accepted) = std::sync::mpsc::sync_channel(MAX_BATCHES_IN_FLIGHT);
    let durability = std::thread::Builder::new()
        .name(DURABILITY_THREAD.to_owned())
        .spawn(move || downstream.run_durability(accepted, groups, publisher))?;
    std::thread::Builder::new().name(COMMITTER_THREAD.to_owned()).spawn(move || {
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
    fn run(mut self, mut requests: mpsc::Receiver<CommitRequest>, batches: std::sync::mpsc::SyncSender<ToDurability>) {
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
            // Light load: a small batch, no commit waiting behind it and no transaction retrying in the
            // conflict lane. Then waking the later stages costs more than their work; otherwise the
            // committer must stay free to accept the next commits (a hot document's next transaction
            // begins at the accepted state and need not wait for this one's fsync).
            let light = accepted.commits.len() <= MAX_COMMITS_APPENDED_BY_COMMITTER
                && requests.is_empty()
                && !self.published.lane.is_busy();
            let handed_on = if light && self.downstream.in_flight.load(Ordering::Acquire) == 0 {
                match self.downstream.append_and_publish(accepted) {
                    Ok(()) => continue,
                    Err(failure) => ToDurability::Failed(failure),
                }
            } else {
                self.downstream.in_flight.fetch_add(1, Ordering::AcqRel);
                ToDurability::Batch(accepted)
            };
            if let Err(std::sync::mpsc::SendError(rejected)) = batches.send(handed_on) {
                // The durability thread stopped after a failure; so does the committer.
                let rejected = match rejected {
                    ToDurability::Batch(batch) => vec![batch],
                    ToDurability::Failed(failure) => failure.refused,
                };
                for commit in rejected.into_iter().flat_map(|batch| batch.commits) {
                    let _ = commit.reply.send(Err(self.published.refusal().into()));
                }
                requests.close();
                while let Some(request) = requests.blocking_recv() {
                    let _ = request.reply.send(Err(self.published.refusal().into()));
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

impl Downstream {
    /// The durability thread: appends what the committer hands on, until it stops sending (then
    /// shuts the stages down) or something fails (then stops the store).
    fn run_durability(
        &self,
        accepted: std::sync::mpsc::Receiver<ToDurability>,
        groups: std::sync::mpsc::SyncSender<Vec<AcceptedBatch>>,
        publisher: std::thread::JoinHandle<()>,
    ) {
        let failure = self.append_until_stopped(&accepted, &groups).err();
        // What the log holds is durable: its writers hear so, and readers see it, before anything
        // else happens (stopping the store after a failure would tell those waiting for it otherwise).
        drop(groups);
        let publisher = publisher.join().map_err(|_| Failure {
            reason: "the publishing thread panicked".to_owned(),
            fenced: false,
            refused: Vec::new(),
        });
        let mut durability = self.durability.lock().expect("lock poisoned");
        match (failure, publisher) {
            (None, Ok(())) => {}
            (Some(failure), _) | (None, Err(failure)) => {
                // Before any writer hears of its refused commit, so that it also finds out why.
                durability.published.stop_accepting(&failure.reason, failure.fenced);
                let queued = accepted.try_iter().flat_map(|handed_on| match handed_on {
                    ToDurability::Batch(batch) => vec![batch],
                    ToDurability::Failed(failure) => failure.refused,
                });
                for commit in failure.refused.into_iter().chain(queued).flat_map(|batch| batch.commits) {
                    let _ = commit.reply.send(Err(durability.published.refusal().into()));
                }
                return;
            }
        }
        // Shutting down: checkpoint what is left so the next start replays little, and drop the log
        // it covers.
        let publisher = self.publisher.lock().expect("lock poisoned").take().expect("the publisher finishes once");
        publisher.finish(durability.appended_up_to);
        let checkpointed = Timestamp::from_nanos(durability.checkpointed.load(Ordering::Acquire));
        if let Err(reason) = durability.log.truncate(checkpointed) {
            tracing::warn!(%reason, "truncating the log at shutdown failed; the next start skips what it holds");
        }
    }

    /// Appends groups until the committer stops sending them (`Ok`) or something fails.
    fn append_until_stopped(
        &self,
        accepted: &std::sync::mpsc::Receiver<ToDurability>,
        groups: &std::sync::mpsc::SyncSender<Vec<AcceptedBatch>>,
    ) -> Result<(), Failure> {
        // A batch that would have made the group too big: it starts the next one.
        let mut carried = None;
        while let Some(first) = carried.take().map(ToDurability::Batch).or_else(|| accepted.recv().ok()) {
            let first = match first {
                ToDurability::Batch(batch) => batch,
                ToDurability::Failed(failure) => return Err(failure),
            };
            // Batches that queued while the previous append was on disk share one append.
            let mut commit_count = first.commits.len();
            let mut batches = vec![first];
            for handed_on in accepted.try_iter() {
                // A failure comes only from the committer's own append, which it makes only when
                // nothing is in flight: never behind a batch.
                let ToDurability::Batch(batch) = handed_on else {
                    panic!("the committer appends itself only when nothing is in flight")
                };
                if commit_count + batch.commits.len() > MAX_COMMITS_PER_GROUP {
                    carried = Some(batch);
                    break;
                }
                commit_count += batch.commits.len();
                batches.push(batch);
            }
            let mut durability = self.durability.lock().expect("lock poisoned");
            let published = Arc::clone(&durability.published);
            // Stopped under the lock: the committer, which may append once nothing is in flight, sees
            // it before its next append.
            let refuse = |reason: String, fenced: bool, mut refused: Vec<AcceptedBatch>, carried: Option<_>| {
                published.stop_accepting(&reason, fenced);
                refused.extend(carried);
                Err(Failure { reason, fenced, refused })
            };
            if let Err((reason, fenced)) = durability.append_unless_stopped(&batches) {
                return refuse(reason, fenced, batches, carried);
            }
            if carried.is_none() {
                carried = match accepted.try_recv() {
                    Ok(ToDurability::Batch(batch)) => Some(batch),
                    Ok(ToDurability::Failed(_)) => {
                        panic!("the committer appends itself only when nothing is in flight")
                    }
                    Err(_) => None,
                };
            }
            // Nothing to append next, and the publishing thread idle: this thread would only wait,
            // so it publishes the group itself, and the writers hear back without first waking the
            // publishing thread (tens of microseconds on a virtual machine). Otherwise the next
            // append starts at once and the publishing thread answers this group meanwhile.
            if carried.is_none() && self.groups_awaiting_publish.load(Ordering::Acquire) == 0 {
                self.publish_handed_on(batches);
            } else {
                self.groups_awaiting_publish.fetch_add(1, Ordering::AcqRel);
                // Only a panicked publisher closes its queue early; these commits are durable, but
                // no one can tell their writers.
                if let Err(std::sync::mpsc::SendError(batches)) = groups.send(batches) {
                    return refuse("the publishing thread stopped".to_owned(), false, batches, carried);
                }
            }
            if let Err(reason) = durability.truncate_checkpointed() {
                return refuse(reason, false, Vec::new(), carried);
            }
        }
        Ok(())
    }

    /// The publishing thread: publishes groups until the durability thread closes the queue.
    fn publish(&self, groups: std::sync::mpsc::Receiver<Vec<AcceptedBatch>>) {
        while let Ok(mut batches) = groups.recv() {
            // Groups that became durable while the previous one was being published go out together.
            let mut group_count = 1;
            for group in groups.try_iter() {
                batches.extend(group);
                group_count += 1;
            }
            self.publish_handed_on(batches);
            let awaiting = self.groups_awaiting_publish.fetch_sub(group_count, Ordering::AcqRel);
            assert!(awaiting >= group_count, "every group the publisher takes was counted when handed to it");
        }
    }

    /// Publishes batches the committer handed on (counted in `in_flight`), in commit order.
    fn publish_handed_on(&self, batches: Vec<AcceptedBatch>) {
        let count = batches.len();
        self.publisher.lock().expect("lock poisoned").as_mut().expect("publishing until shutdown").publish(batches);
        let in_flight = self.in_flight.fetch_sub(count, Ordering::AcqRel);
        assert!(in_flight >= count, "every batch published was counted when the committer handed it on");
    }

    /// The committer's own run of the stages, for a batch that found nothing in flight: appends it,
    /// publishes it and drops the log a checkpoint covers. On a failure the store stops at once (the
    /// next batch must not be appended after it), and the failure goes to the durability thread.
    fn append_and_publish(&self, batch: AcceptedBatch) -> Result<(), Failure> {
        assert_eq!(self.in_flight.load(Ordering::Acquire), 0, "the stages are idle");
        let batches = vec![batch];
        let mut durability = self.durability.lock().expect("lock poisoned");
        let published = Arc::clone(&durability.published);
        let stop = |reason: String, fenced: bool, refused: Vec<AcceptedBatch>| {
            published.stop_accepting(&reason, fenced);
            Err(Failure { reason, fenced, refused })
        };
        if let Err((reason, fenced)) = durability.append_unless_stopped(&batches) {
            return stop(reason, fenced, batches);
        }
        published.groups_appended_by_committer.fetch_add(1, Ordering::Relaxed);
        self.publisher.lock().expect("lock poisoned").as_mut().expect("publishing until shutdown").publish(batches);
        if let Err(reason) = durability.truncate_checkpointed() {
            return stop(reason, false, Vec::new());
        }
        Ok(())
    }
}

impl Durability {
    /// Appends `batches` as one group, unless the store stopped (the publisher stops it when
    /// checkpoints fail: nothing more is appended then). On failure, the reason and whether the
    /// append was fenced (refused before it wrote anything).
    fn append_unless_stopped(&mut self, batches: &[AcceptedBatch]) -> Result<(), (String, bool)> {
        if self.published.is_stopped() {
            return Err((self.published.unavailable_reason(), false));
        }
        self.append(batches).map_err(|error| (error.reason().to_owned(), matches!(error, AppendError::Fenced(_))))
    }

    fn append(&mut self, batches: &[AcceptedBatch]) -> Result<(), AppendError> {
        let commits: Vec<(Timestamp, &[StoredWrite])> = batches
            .iter()
            .flat_map(|batch| batch.commits.iter().map(|commit| (commit.record.ts, commit.stored.as_slice())))
            .collect();
        assert!(commits.len() <= MAX_COMMITS_PER_GROUP, "a log group holds at most MAX_COMMITS_PER_GROUP commits");
        assert!(commits[0].0 > self.appended_up_to, "timestamps increase from group to group");
        self.log.append(&commits)?;
        self.appended_up_to = commits[commits.len() - 1].0;
        self.published.batches.fetch_add(1, Ordering::Relaxed);
        self.published.commits.fetch_add(commits.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Drops the log a finished checkpoint covers.
    fn truncate_checkpointed(&mut self) -> Result<(), String> {
        let checkpointed = self.checkpointed.load(Ordering::Acquire);
        if checkpointed > self.truncated_up_to {
            self.log.truncate(Timestamp::from_nanos(checkpointed))?;
            self.truncated_up_to = checkpointed;
        }
        Ok(())
    }
}

impl Publisher {
    fn publish(&mut self, batches: Vec<AcceptedBatch>) {
        let snapshot = batches.last().expect("at least one batch").snapshot.clone();
        let ts = snapshot.ts();
        assert!(ts > self.published_up_to, "groups are published in commit order");
        let evicted = self.published.publish(snapshot);
        self.published_up_to = ts;
        let mut finished = Vec::with_capacity(batches.len() + 1);
        finished.extend(evicted);
        for batch in batches {
            finished.push(batch.snapshot);
            self.acknowledge(batch.commits);
        }
        self.reclaim(finished);
        if let Err(reason) = self.maybe_checkpoint(ts) {
            // The durability stage sees it before its next append and stops.
            self.published.stop_accepting(&reason, false);
        }
    }

    /// Drops snapshots no one reads any more, after every writer of the group has its answer.
    /// Freeing the B-tree nodes only they held costs about what copying them did, so the reclaimer
    /// thread does it while this stage publishes the next group; when it is `MAX_BATCHES_IN_FLIGHT`
    /// groups behind, this stage frees them itself (the returned error owns them), which bounds the
    /// memory waiting to be freed.
    fn reclaim(&self, snapshots: Vec<Snapshot>) {
        let _ = self.finished_snapshots.try_send(snapshots);
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

    /// At shutdown, once every appended group is published: checkpoints what the last checkpoint
    /// misses, at the last published commit, and waits for the checkpointer.
    fn finish(mut self, appended_up_to: Timestamp) {
        assert_eq!(self.published_up_to, appended_up_to, "everything appended was published");
        if self.commits_since_checkpoint > 0 {
            let job = CheckpointJob { ts: self.published_up_to, latest: std::mem::take(&mut self.since_checkpoint) };
            let _ = self.checkpoint_jobs.send(job);
        }
        drop(self.checkpoint_jobs);
        let _ = self.checkpointer.join();
    }
}
