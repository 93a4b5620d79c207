//! The meeting point of the change stream and the connections: one task reads the store's commits
//! in order and matches them against every live query's read set; each connection learns which of
//! its subscriptions are stale and at which timestamp it may rerun them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use livebase_store::{CommitRecord, Store, Timestamp};
use livebase_sync::SubscriptionId;
use rustc_hash::{FxHashMap, FxHashSet};
use tokio::sync::{Notify, broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::shared_runs::SharedRuns;
use crate::subscriptions::{ReadSet, Subscriptions};

pub(crate) type ConnectionId = u64;

/// Commits matched under one lock of the hub, at most: those that queued on the change stream while
/// it matched the last ones. Bounded, so that connections waiting for the lock wait for a few
/// microseconds of matching, not for a backlog.
const MAX_COMMITS_MATCHED_TOGETHER: usize = 64;

/// Who owns a read set: one subscription of one connection.
type Owner = (ConnectionId, SubscriptionId);

pub(crate) struct Hub {
    state: Mutex<State>,
    /// The watermark, for connections waiting for a commit (their mutation's) to be matched.
    watermark: watch::Sender<Timestamp>,
    next_connection: AtomicU64,
    /// Query runs shared by the connections that rerun the same query at the same timestamp.
    runs: SharedRuns,
}

/// One lock over both, so that a connection sees the invalidations of exactly the commits up to
/// the watermark it reads: it must never rerun at a timestamp whose invalidations it has not had.
/// Its maps are keyed by numbers the server hands out (a client's query ids are bounded per
/// connection), so a fast hash without protection against chosen collisions will do.
struct State {
    subscriptions: Subscriptions<Owner>,
    connections: FxHashMap<ConnectionId, Mailbox>,
}

/// What the hub tells one connection. Bounded by the connection's subscriptions.
#[derive(Default)]
struct Mailbox {
    stale: FxHashSet<SubscriptionId>,
    registered: FxHashSet<SubscriptionId>,
    notify: Arc<Notify>,
}

/// A connection's end of the hub; unregisters everything when dropped.
pub(crate) struct Registration {
    hub: Arc<Hub>,
    id: ConnectionId,
    /// Woken when a subscription goes stale.
    pub(crate) notify: Arc<Notify>,
    pub(crate) watermark: watch::Receiver<Timestamp>,
}

impl Hub {
    /// Starts the task that follows the store's change stream until `shutdown`, and reruns every live
    /// query when `functions` (the runtime's registry version) moves.
    pub(crate) fn start(store: Store, functions: watch::Receiver<u64>, shutdown: CancellationToken) -> Arc<Hub> {
        // Subscribe before reading the latest timestamp: every commit after it is then on the stream.
        let commits = store.subscribe();
        let ts = store.snapshot().ts();
        let hub = Arc::new(Hub {
            state: Mutex::new(State { subscriptions: Subscriptions::new(ts), connections: FxHashMap::default() }),
            watermark: watch::Sender::new(ts),
            next_connection: AtomicU64::new(0),
            runs: SharedRuns::default(),
        });
        tokio::spawn(Arc::clone(&hub).follow(store, commits, functions, shutdown));
        hub
    }

    async fn follow(
        self: Arc<Hub>,
        store: Store,
        mut commits: broadcast::Receiver<Arc<CommitRecord>>,
        mut functions: watch::Receiver<u64>,
        shutdown: CancellationToken,
    ) {
        loop {
            let received = tokio::select! {
                () = shutdown.cancelled() => return,
                Ok(()) = functions.changed() => {
                    tracing::info!("the app's functions were replaced: rerunning every live query");
                    // Runs at the current timestamp were made by the old functions.
                    self.runs.forget();
                    self.reset(store.snapshot().ts());
                    continue;
                }
                received = commits.recv() => received,
            };
            // What queued behind it is matched with it, under one lock (see `Subscriptions::apply`).
            let mut batch = Vec::new();
            let mut next = Some(received);
            while let Some(received) = next.take() {
                match received {
                    Ok(commit) if !commit.reloaded => {
                        // The store publishes one snapshot per group commit, at its last commit,
                        // before it sends the group down the stream: a snapshot at exactly this
                        // commit exists only if it ends its group. None: the hub fell so far behind
                        // that the store no longer keeps that state, and waiting would not bring it
                        // back.
                        let ends_group = store.snapshot_at(commit.ts).is_none_or(|snapshot| snapshot.ts() == commit.ts);
                        batch.push((commit, ends_group));
                        if batch.len() < MAX_COMMITS_MATCHED_TOGETHER {
                            next = match commits.try_recv() {
                                Ok(commit) => Some(Ok(commit)),
                                Err(broadcast::error::TryRecvError::Empty) => None,
                                Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                                    Some(Err(broadcast::error::RecvError::Lagged(missed)))
                                }
                                Err(broadcast::error::TryRecvError::Closed) => {
                                    Some(Err(broadcast::error::RecvError::Closed))
                                }
                            };
                        }
                    }
                    Ok(commit) => {
                        self.apply(std::mem::take(&mut batch));
                        tracing::warn!(ts = %commit.ts, "the replica reloaded the writer's state: rerunning every live query");
                        self.reset(commit.ts);
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        self.apply(std::mem::take(&mut batch));
                        tracing::warn!(missed, "the change stream dropped commits: rerunning every live query");
                        self.reset(store.snapshot().ts());
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        self.apply(batch);
                        return;
                    }
                }
            }
            self.apply(batch);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update of the state completes before it could panic: a poisoned lock is still sound.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn apply(&self, commits: Vec<(Arc<CommitRecord>, bool)>) {
        if commits.is_empty() {
            return;
        }
        let mut state = self.lock();
        let affected = state.subscriptions.apply(commits);
        let ts = state.subscriptions.watermark();
        let notify = state.invalidate(affected);
        drop(state);
        notify.iter().for_each(|notify| notify.notify_one());
        self.watermark.send_if_modified(|watermark| {
            let advanced = ts > *watermark;
            *watermark = (*watermark).max(ts);
            advanced
        });
    }

    fn reset(&self, ts: Timestamp) {
        let mut state = self.lock();
        let owners = state.subscriptions.reset(ts);
        let watermark = state.subscriptions.watermark();
        for mailbox in state.connections.values_mut() {
            mailbox.registered.clear();
        }
        let notify = state.invalidate(owners);
        drop(state);
        notify.iter().for_each(|notify| notify.notify_one());
        self.watermark.send_replace(watermark);
    }

    /// The newest commit whose changes the hub has matched, as it moves.
    pub(crate) fn watermark(&self) -> watch::Receiver<Timestamp> {
        self.watermark.subscribe()
    }

    pub(crate) fn connect(self: &Arc<Hub>) -> Registration {
        let id = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let mailbox = Mailbox::default();
        let notify = Arc::clone(&mailbox.notify);
        self.lock().connections.insert(id, mailbox);
        Registration { hub: Arc::clone(self), id, notify, watermark: self.watermark() }
    }
}

impl State {
    /// Records the stale subscriptions in their connections' mailboxes; returns whom to wake.
    fn invalidate(&mut self, owners: impl IntoIterator<Item = Owner>) -> Vec<Arc<Notify>> {
        let mut woken = FxHashSet::default();
        let mut notify = Vec::new();
        for (connection, subscription) in owners {
            let Some(mailbox) = self.connections.get_mut(&connection) else { continue };
            mailbox.stale.insert(subscription);
            if woken.insert(connection) {
                notify.push(Arc::clone(&mailbox.notify));
            }
        }
        notify
    }
}

impl Registration {
    pub(crate) fn shared_runs(&self) -> &SharedRuns {
        &self.hub.runs
    }

    /// The timestamp to rerun at, and the subscriptions that went stale up to it.
    pub(crate) fn take_stale(&self) -> (Timestamp, Vec<SubscriptionId>) {
        let mut state = self.hub.lock();
        let watermark = state.subscriptions.watermark();
        let mailbox = state.connections.get_mut(&self.id).expect("registered until dropped");
        (watermark, mailbox.stale.drain().collect())
    }

    /// Tracks the read set (sorted, disjoint intervals) of a query run at `ts`. False if a commit
    /// since changed it, so it must run again: it is then reported stale like any other, once the
    /// state after that commit can be read, which wakes the connection to rerun it.
    pub(crate) fn register(&self, subscription: SubscriptionId, read_set: &ReadSet, ts: Timestamp) -> bool {
        let mut state = self.hub.lock();
        let tracked = state.subscriptions.register((self.id, subscription), read_set, ts);
        let mailbox = state.connections.get_mut(&self.id).expect("registered until dropped");
        if tracked {
            mailbox.registered.insert(subscription);
            return true;
        }
        mailbox.registered.remove(&subscription);
        let reportable = state.subscriptions.reportable();
        let notify = state.invalidate(reportable);
        drop(state);
        notify.iter().for_each(|notify| notify.notify_one());
        false
    }

    pub(crate) fn unregister(&self, subscription: SubscriptionId) {
        let mut state = self.hub.lock();
        let mailbox = state.connections.get_mut(&self.id).expect("registered until dropped");
        mailbox.stale.remove(&subscription);
        if mailbox.registered.remove(&subscription) {
            state.subscriptions.unregister((self.id, subscription));
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut state = self.hub.lock();
        let mailbox = state.connections.remove(&self.id).expect("registered until dropped");
        for subscription in mailbox.registered {
            state.subscriptions.unregister((self.id, subscription));
        }
    }
}
