//! The single committer: validates read sets against later writes, orders commits, makes them durable
//! in groups, then publishes them. One thread owns the latest state, so commit order needs no locks.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use livebase_value::DocumentId;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::document::Document;
use crate::limits::{CHANGE_STREAM_CAPACITY, MAX_COMMITS_PER_BATCH, MAX_RETAINED_SNAPSHOTS, MAX_WRITE_LOG_KEYS};
use crate::persistence::{Persistence, StoredWrite};
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
}

pub(crate) struct CommitRequest {
    pub(crate) begin_ts: Timestamp,
    pub(crate) read_set: ReadSet,
    pub(crate) writes: BTreeMap<DocumentId, PendingWrite>,
    pub(crate) reply: oneshot::Sender<Result<Timestamp, CommitError>>,
}

/// What the committer shares with everyone else: the latest durable snapshot, a few older ones, and
/// the change stream.
pub(crate) struct Published {
    latest: RwLock<Snapshot>,
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

    pub(crate) fn unavailable_reason(&self) -> String {
        self.unavailable.read().expect("lock poisoned").clone().unwrap_or_else(|| "the store has shut down".to_owned())
    }

    fn publish(&self, snapshot: Snapshot) {
        let mut history = self.history.lock().expect("history lock poisoned");
        if history.len() == MAX_RETAINED_SNAPSHOTS {
            history.pop_front();
        }
        history.push_back(snapshot.clone());
        *self.latest.write().expect("snapshot lock poisoned") = snapshot;
    }
}

/// When to fold the log into a checkpoint.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CheckpointPolicy {
    pub(crate) after_commits: usize,
    pub(crate) after_bytes: usize,
}

pub(crate) struct Committer {
    state: Snapshot,
    /// Keys written by recent commits, oldest first, for read-set validation.
    write_log: VecDeque<(Timestamp, Vec<Vec<u8>>)>,
    write_log_keys: usize,
    /// The newest commit dropped from `write_log`: transactions that began before it can't be checked.
    forgotten_up_to: Timestamp,
    persistence: Box<dyn Persistence>,
    since_checkpoint: HashMap<DocumentId, Option<Arc<[u8]>>>,
    commits_since_checkpoint: usize,
    bytes_since_checkpoint: usize,
    checkpoint_policy: CheckpointPolicy,
    published: Arc<Published>,
}

impl Committer {
    pub(crate) fn new(
        state: Snapshot,
        persistence: Box<dyn Persistence>,
        since_checkpoint: HashMap<DocumentId, Option<Arc<[u8]>>>,
        commits_since_checkpoint: usize,
        checkpoint_policy: CheckpointPolicy,
        published: Arc<Published>,
    ) -> Committer {
        let bytes_since_checkpoint = since_checkpoint.values().flatten().map(|bytes| bytes.len()).sum();
        Committer {
            forgotten_up_to: state.ts(),
            state,
            write_log: VecDeque::new(),
            write_log_keys: 0,
            persistence,
            since_checkpoint,
            commits_since_checkpoint,
            bytes_since_checkpoint,
            checkpoint_policy,
            published,
        }
    }

    /// Runs until every request sender is gone, or until the disk fails: then the store stops
    /// accepting commits, since what is durable is no longer known.
    pub(crate) fn run(mut self, mut requests: mpsc::Receiver<CommitRequest>) {
        while let Some(first) = requests.blocking_recv() {
            let mut batch = Vec::with_capacity(MAX_COMMITS_PER_BATCH.min(64));
            batch.push(first);
            while batch.len() < MAX_COMMITS_PER_BATCH {
                match requests.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            if let Err(reason) = self.commit_batch(batch) {
                tracing::error!(%reason, "the store stops accepting commits");
                *self.published.unavailable.write().expect("lock poisoned") = Some(reason.clone());
                requests.close();
                while let Some(request) = requests.blocking_recv() {
                    let _ = request.reply.send(Err(CommitError::Unavailable(reason.clone())));
                }
                return;
            }
        }
        if self.commits_since_checkpoint > 0 {
            let ts = self.state.ts();
            if let Err(reason) = self.persistence.checkpoint(ts, &self.since_checkpoint) {
                // The log still holds every commit; the next start replays it.
                tracing::warn!(%reason, "checkpoint at shutdown failed");
            }
        }
    }

    fn commit_batch(&mut self, batch: Vec<CommitRequest>) -> Result<(), String> {
        let mut working = self.state.clone();
        let mut last_ts = self.state.ts();
        let mut accepted = Vec::with_capacity(batch.len());
        for request in batch {
            if let Err(error) = self.validate(&request) {
                self.published.conflicts.fetch_add(1, Ordering::Relaxed);
                let _ = request.reply.send(Err(error));
                continue;
            }
            let ts = last_ts.next_commit();
            last_ts = ts;
            let mut keys = Vec::new();
            let mut changes = Vec::with_capacity(request.writes.len());
            let mut stored: Vec<StoredWrite> = Vec::with_capacity(request.writes.len());
            for (id, write) in request.writes {
                let new = write.new.as_ref().map(|(document, _)| Arc::clone(document));
                let old = working.apply_write(id, new.clone(), Some(&mut keys));
                if old.is_none() && new.is_none() {
                    continue; // Inserted and deleted by the same transaction.
                }
                changes.push(DocumentChange { id, old, new });
                stored.push((id, write.new.map(|(_, encoded)| encoded)));
            }
            keys.sort_unstable();
            keys.dedup();
            self.remember_writes(ts, keys.clone());
            accepted.push((Arc::new(CommitRecord { ts, changes, keys }), stored, request.reply));
        }
        if accepted.is_empty() {
            return Ok(());
        }
        let commits: Vec<(Timestamp, &[StoredWrite])> =
            accepted.iter().map(|(record, stored, _)| (record.ts, stored.as_slice())).collect();
        if let Err(reason) = self.persistence.append(&commits) {
            for (_, _, reply) in accepted {
                let _ = reply.send(Err(CommitError::Unavailable(reason.clone())));
            }
            return Err(reason);
        }
        working.set_ts(last_ts);
        self.state = working;
        self.published.publish(self.state.clone());
        self.published.batches.fetch_add(1, Ordering::Relaxed);
        self.published.commits.fetch_add(accepted.len() as u64, Ordering::Relaxed);
        for (record, stored, reply) in accepted {
            self.commits_since_checkpoint += 1;
            for (id, encoded) in stored {
                let size = encoded.as_ref().map_or(0, |bytes| bytes.len());
                self.bytes_since_checkpoint += size;
                self.published.logged_bytes.fetch_add(size as u64, Ordering::Relaxed);
                self.since_checkpoint.insert(id, encoded);
            }
            let ts = record.ts;
            // No receivers is fine: nobody is watching the change stream yet.
            let _ = self.published.changes.send(record);
            let _ = reply.send(Ok(ts));
        }
        if self.commits_since_checkpoint >= self.checkpoint_policy.after_commits
            || self.bytes_since_checkpoint >= self.checkpoint_policy.after_bytes
        {
            self.persistence.checkpoint(self.state.ts(), &self.since_checkpoint)?;
            self.published.checkpoints.fetch_add(1, Ordering::Relaxed);
            self.since_checkpoint.clear();
            self.commits_since_checkpoint = 0;
            self.bytes_since_checkpoint = 0;
        }
        Ok(())
    }

    fn validate(&self, request: &CommitRequest) -> Result<(), CommitError> {
        if request.begin_ts < self.forgotten_up_to {
            return Err(CommitError::TooOld { begin: request.begin_ts, oldest: self.forgotten_up_to });
        }
        for (ts, keys) in self.write_log.iter().rev() {
            if *ts <= request.begin_ts {
                break;
            }
            if keys.iter().any(|key| request.read_set.contains(key)) {
                return Err(CommitError::Conflict { conflicting_commit: *ts });
            }
        }
        Ok(())
    }

    fn remember_writes(&mut self, ts: Timestamp, keys: Vec<Vec<u8>>) {
        self.write_log_keys += keys.len();
        self.write_log.push_back((ts, keys));
        while self.write_log_keys > MAX_WRITE_LOG_KEYS {
            let (forgotten, keys) = self.write_log.pop_front().expect("a non-empty log holds the counted keys");
            self.write_log_keys -= keys.len();
            self.forgotten_up_to = forgotten;
        }
    }
}
