//! A read replica: the writer's state, followed from its log in PostgreSQL.
//!
//! One thread applies each log group, in order, to the in-memory state exactly as the writer's
//! committer applied it (so the change records carry the same documents and keys), then publishes
//! the group's snapshot and records as the writer's durability stage does. It wakes on the writer's
//! notifications or every `REPLICA_POLL_INTERVAL`, and records its position every
//! `REPLICA_HEARTBEAT_INTERVAL` so the writer keeps the log it still needs.

use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::background::Background;
use crate::committer::{CommitRecord, Published};
use crate::limits::{REPLICA_HEARTBEAT_INTERVAL, REPLICA_POLL_INTERVAL, REPLICA_TAIL_BATCH, REPLICA_WAIT_SLICE};
use crate::persistence::{self, PostgresConfig, PostgresReplica, StoredWrite, Tail};
use crate::snapshot::Snapshot;
use crate::store::{apply_stored, load};
use crate::{CommitError, Timestamp};

/// A replica store's follower thread and what it needs to find the writer.
pub(crate) struct Replica {
    /// Dropping it stops the follower.
    _follower: Background,
    config: PostgresConfig,
    /// Kept between `writer_url` calls.
    lease_reader: Mutex<Option<postgres::Client>>,
}

impl Replica {
    pub(crate) fn start(
        config: PostgresConfig,
        source: PostgresReplica,
        state: Snapshot,
        published: Arc<Published>,
    ) -> std::io::Result<Replica> {
        let follower =
            Background::spawn("livebase-replica", move |stopped| Follower { source, state, published }.run(&stopped))?;
        Ok(Replica { _follower: follower, config, lease_reader: Mutex::new(None) })
    }

    pub(crate) fn writer_url(&self) -> Result<Option<String>, CommitError> {
        let mut client = self.lease_reader.lock().expect("lock poisoned");
        persistence::writer_url(&self.config, &mut client).map_err(CommitError::Unavailable)
    }
}

struct Follower {
    source: PostgresReplica,
    /// The latest state applied, at the last group's timestamp.
    state: Snapshot,
    published: Arc<Published>,
}

impl Follower {
    fn run(mut self, stopped: &Receiver<()>) {
        // Opening loaded the state and registered this replica just now.
        let (mut last_read, mut last_heartbeat) = (Instant::now(), Instant::now());
        let mut notified = false;
        // Nothing is ever sent: the sender's drop (shutdown) disconnects the channel.
        while let Err(TryRecvError::Empty) = stopped.try_recv() {
            if notified || last_read.elapsed() >= REPLICA_POLL_INTERVAL {
                last_read = Instant::now();
                if let Err(error) = self.catch_up() {
                    tracing::warn!(%error, "reading the writer's log failed; retrying");
                }
            }
            if last_heartbeat.elapsed() >= REPLICA_HEARTBEAT_INTERVAL {
                last_heartbeat = Instant::now();
                if let Err(error) = self.source.heartbeat(self.state.ts()) {
                    tracing::warn!(%error, "recording the replica's position failed; retrying");
                }
            }
            notified = match self.source.wait(REPLICA_WAIT_SLICE) {
                Ok(notified) => notified,
                Err(error) => {
                    // Disconnected: wait before reconnecting (or until shut down), then read.
                    tracing::warn!(%error, "lost the connection to the writer's database; reconnecting");
                    match stopped.recv_timeout(REPLICA_POLL_INTERVAL) {
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => true,
                        _ => break,
                    }
                }
            };
        }
        self.source.unregister();
    }

    /// Applies everything the log holds after the state, reloading if that part was truncated.
    fn catch_up(&mut self) -> Result<(), String> {
        loop {
            match self.source.read_after(self.state.ts())? {
                Tail::Groups(groups) => {
                    let more = groups.len() == REPLICA_TAIL_BATCH;
                    for group in groups {
                        self.apply_group(group)?;
                    }
                    if !more {
                        return Ok(());
                    }
                }
                Tail::Reload(recovered) => {
                    let (snapshot, _) = load(&recovered).map_err(|error| error.to_string())?;
                    let (from, to) = (self.state.ts(), snapshot.ts());
                    if to <= from {
                        return Err(format!("the writer's log was truncated past {from} but its state is at {to}"));
                    }
                    tracing::warn!(%from, %to, "this replica fell behind the writer's log retention; reloaded");
                    let record =
                        Arc::new(CommitRecord { ts: to, changes: Vec::new(), keys: Vec::new(), reloaded: true });
                    self.published.publish_replicated(snapshot.clone(), vec![record]);
                    self.state = snapshot;
                }
            }
        }
    }

    /// Applies one group's commits as the writer's committer did, then publishes the group.
    fn apply_group(&mut self, group: Vec<(Timestamp, Vec<StoredWrite>)>) -> Result<(), String> {
        // On a copy (cheap: persistent maps), so a damaged entry leaves the state as it was.
        let mut state = self.state.clone();
        let mut records = Vec::with_capacity(group.len());
        for (ts, writes) in group {
            let mut keys = Vec::new();
            let mut changes = Vec::with_capacity(writes.len());
            for (id, bytes) in writes {
                let change = apply_stored(&mut state, id, bytes.as_deref(), Some(&mut keys))
                    .map_err(|error| format!("log entry at {ts}: {error}"))?;
                if change.old.is_some() || change.new.is_some() {
                    changes.push(change);
                }
            }
            keys.sort_unstable();
            keys.dedup();
            records.push(Arc::new(CommitRecord { ts, changes, keys, reloaded: false }));
        }
        let Some(last) = records.last() else { return Ok(()) };
        state.set_ts(last.ts);
        self.published.publish_replicated(state.clone(), records);
        self.state = state;
        Ok(())
    }
}
