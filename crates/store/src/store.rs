use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::committer::{
    self, CheckpointPolicy, CommitRecord, CommitRequest, DocumentChange, LaneTicket, Published, Rejection, StoreStats,
};
use crate::document::Document;
use crate::error::OpenError;
use crate::limits::{COMMIT_QUEUE_CAPACITY, MAX_TRANSACTION_ATTEMPTS};
use crate::persistence::{self, Checkpoints, LatestVersions, Log, PostgresConfig, Recovered};
use crate::replica::Replica;
use crate::schema::Schema;
use crate::snapshot::Snapshot;
use crate::{CommitError, Timestamp, Transaction, TransactionError};

/// Where and how a store keeps its data.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub storage: Storage,
    /// Fold the log into a checkpoint after this many commits...
    pub checkpoint_after_commits: usize,
    /// ...or after this many bytes of documents were written, whichever comes first. Both bound how
    /// much log a restart replays and how much the committer holds for the next checkpoint.
    pub checkpoint_after_bytes: usize,
}

/// Where a store keeps its log and checkpoints.
#[derive(Clone, Debug)]
pub enum Storage {
    /// Two SQLite databases in a local directory (created if missing), used by one process at a time.
    Directory(PathBuf),
    /// A PostgreSQL database, which writer nodes take turns on through a lease.
    Postgres(PostgresConfig),
    /// A read replica of the writer on a PostgreSQL database: follows its log, refuses writes.
    PostgresReplica(PostgresConfig),
}

impl std::fmt::Display for Storage {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Storage::Directory(directory) => write!(formatter, "{}", directory.display()),
            Storage::Postgres(postgres) => write!(formatter, "{postgres}"),
            Storage::PostgresReplica(postgres) => write!(formatter, "read replica of {postgres}"),
        }
    }
}

impl StoreConfig {
    /// The embedded store in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig::with_storage(Storage::Directory(data_dir.into()))
    }

    pub fn postgres(postgres: PostgresConfig) -> StoreConfig {
        StoreConfig::with_storage(Storage::Postgres(postgres))
    }

    /// A read replica of the writer on `postgres` (see `Store::is_replica`).
    pub fn replica_of(postgres: PostgresConfig) -> StoreConfig {
        StoreConfig::with_storage(Storage::PostgresReplica(postgres))
    }

    /// A command line's database: a `postgres://` or `postgresql://` URL is a PostgreSQL database
    /// (tables in schema `livebase`), anything else a data directory.
    pub fn from_location(location: &str) -> StoreConfig {
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            StoreConfig::postgres(PostgresConfig::new(location))
        } else {
            StoreConfig::new(location)
        }
    }

    fn with_storage(storage: Storage) -> StoreConfig {
        StoreConfig { storage, checkpoint_after_commits: 100_000, checkpoint_after_bytes: 64 << 20 }
    }
}

/// A database: its writer (which commits), or a read replica of one. Cheap to clone; the last clone
/// dropped shuts it down.
#[derive(Clone)]
pub struct Store {
    inner: Arc<StoreInner>,
}

struct StoreInner {
    requests: Option<mpsc::Sender<CommitRequest>>,
    published: Arc<Published>,
    committer: Mutex<Option<JoinHandle<()>>>,
    secret: [u8; 32],
    /// A read replica's follower; `None` on the writer. Dropped after the committer is joined.
    replica: Option<Replica>,
    /// A PostgreSQL writer's lease renewer's finding that the lease is lost (set for good).
    lease_lost: Option<Arc<AtomicBool>>,
    /// A data directory's lock, held for the store's life so no second process opens the directory.
    _lock: Option<File>,
}

impl Drop for StoreInner {
    fn drop(&mut self) {
        // Closing the queue lets the committer finish what it has and stop.
        self.requests.take();
        if let Some(committer) = self.committer.lock().expect("lock poisoned").take() {
            let _ = committer.join();
        }
    }
}

impl Store {
    /// Opens (creating if needed) a data directory or PostgreSQL schema and recovers its state, or
    /// (`Storage::PostgresReplica`) loads the writer's state and starts following it.
    pub fn open(config: StoreConfig) -> Result<Store, OpenError> {
        let storage = &config.storage;
        let io_error = |source| OpenError::Io { path: storage.to_string(), source };
        let (log, checkpoints, recovered, lock, lease_lost): (Box<dyn Log>, Box<dyn Checkpoints>, Recovered, _, _) =
            match storage {
                Storage::Directory(directory) => {
                    std::fs::create_dir_all(directory).map_err(io_error)?;
                    let lock = lock_directory(directory)?;
                    let (log, checkpoints, recovered) = persistence::open_sqlite(directory)?;
                    (Box::new(log), Box::new(checkpoints), recovered, Some(lock), None)
                }
                Storage::Postgres(postgres) => {
                    let (log, checkpoints, recovered) = persistence::open_postgres(postgres)?;
                    let lease_lost = Some(log.lease_lost_flag());
                    (Box::new(log), Box::new(checkpoints), recovered, None, lease_lost)
                }
                Storage::PostgresReplica(postgres) => return Store::open_replica(postgres),
            };
        let (snapshot, since_checkpoint) = load(&recovered)?;
        let published = Arc::new(Published::new(snapshot.clone()));
        let policy = CheckpointPolicy {
            after_commits: config.checkpoint_after_commits.max(1),
            after_bytes: config.checkpoint_after_bytes.max(1),
        };
        let (requests, receiver) = mpsc::channel(COMMIT_QUEUE_CAPACITY);
        let durable = committer::Durable {
            log,
            checkpoints,
            since_checkpoint,
            commits_since_checkpoint: recovered.log.len(),
            checkpoint_ts: recovered.checkpoint_ts,
        };
        let committer =
            committer::start(snapshot, durable, policy, Arc::clone(&published), receiver).map_err(io_error)?;
        Ok(Store {
            inner: Arc::new(StoreInner {
                requests: Some(requests),
                published,
                committer: Mutex::new(Some(committer)),
                secret: recovered.secret,
                replica: None,
                lease_lost,
                _lock: lock,
            }),
        })
    }

    fn open_replica(postgres: &PostgresConfig) -> Result<Store, OpenError> {
        let (source, recovered) = persistence::open_postgres_replica(postgres)?;
        let (snapshot, _) = load(&recovered)?;
        let published = Arc::new(Published::new(snapshot.clone()));
        let replica = Replica::start(postgres.clone(), source, snapshot, Arc::clone(&published))
            .map_err(|source| OpenError::Io { path: postgres.to_string(), source })?;
        Ok(Store {
            inner: Arc::new(StoreInner {
                requests: None,
                published,
                committer: Mutex::new(None),
                secret: recovered.secret,
                replica: Some(replica),
                lease_lost: None,
                _lock: None,
            }),
        })
    }

    /// Whether this store is a read replica: it follows the writer's commits and refuses its own
    /// (`CommitError::ReadOnlyReplica`); reads and subscriptions work as on the writer.
    pub fn is_replica(&self) -> bool {
        self.inner.replica.is_some()
    }

    /// Whether this PostgreSQL writer knows it lost its lease (another writer may have taken over):
    /// its lease renewer found it so, or an append was refused for it. It commits nothing more, ever;
    /// calls meant for the writer belong on the one holding the lease now. Always `false` on other
    /// stores.
    pub fn lost_lease(&self) -> bool {
        let renewer_found = self.inner.lease_lost.as_ref().is_some_and(|lost| lost.load(Ordering::Acquire));
        renewer_found || self.inner.published.stopped_by_fence()
    }

    /// Whether this store stopped because the fence refused an append (a PostgreSQL writer that lost
    /// its lease). Then none of the commits it ever refused was made: the store stops at its first
    /// failed append, and that one wrote nothing. So a call whose commit this store refused may run
    /// again on the new writer without committing twice. `false` while the store runs, and after a
    /// failure that may have written (a lost connection mid-append).
    pub fn stopped_by_fence(&self) -> bool {
        self.inner.published.stopped_by_fence()
    }

    /// On a read replica, the API URL the writer advertised with its lease
    /// (`PostgresConfig::advertise_url`), for forwarding writes to it: read afresh from the database
    /// on every call, `None` while no writer holds an unexpired lease (by the database's clock) or
    /// the writer advertised none. `None` on the writer itself. Blocks for a database round trip.
    pub fn writer_url(&self) -> Result<Option<String>, CommitError> {
        match &self.inner.replica {
            Some(replica) => replica.writer_url(),
            None => Ok(None),
        }
    }

    /// Starts a transaction at the latest durable commit.
    pub fn begin(&self) -> Transaction {
        Transaction::new(self.inner.published.latest())
    }

    /// Starts a transaction at the newest commit the committer accepted, which may not be durable
    /// yet (`transact` runs its body in one): a hot document's next commit need not wait for the
    /// previous one's fsync. What it read reaches nobody before it is durable: `commit` returns only
    /// once the commit (which the log orders after everything it read) or, for a read-only
    /// transaction, the state it read is durable. Never hand its reads out before that.
    pub fn begin_latest(&self) -> Transaction {
        Transaction::new(self.inner.published.accepted())
    }

    /// Starts a transaction that reads as of `ts`, if that state is still retained (see
    /// `snapshot_at`). For reads: committing it conflicts with every write since `ts` that it read.
    pub fn begin_at(&self, ts: Timestamp) -> Option<Transaction> {
        self.snapshot_at(ts).map(Transaction::new)
    }

    /// The latest durable state.
    pub fn snapshot(&self) -> Snapshot {
        self.inner.published.latest()
    }

    /// The state as of `ts`, if it is recent enough to be retained (see `MAX_RETAINED_SNAPSHOTS`).
    pub fn snapshot_at(&self, ts: Timestamp) -> Option<Snapshot> {
        if ts > self.inner.published.latest().ts() {
            return None;
        }
        self.inner.published.at(ts)
    }

    /// Every commit from now on, in commit order, with old and new documents.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<CommitRecord>> {
        self.inner.published.subscribe()
    }

    /// A random secret made when the data directory was created and kept with it, for authenticating
    /// what the server hands out and later gets back (pagination cursors).
    pub fn secret(&self) -> &[u8; 32] {
        &self.inner.secret
    }

    pub fn stats(&self) -> StoreStats {
        self.inner.published.stats()
    }

    /// Commits a transaction, returning once it is durable. A read-only transaction commits at the
    /// timestamp it read at.
    pub async fn commit(&self, transaction: Transaction) -> Result<Timestamp, CommitError> {
        self.submit(transaction, None).await.map_err(|rejection| rejection.error)
    }

    async fn submit(&self, transaction: Transaction, lane: Option<LaneTicket>) -> Result<Timestamp, Rejection> {
        let (request, response) = match self.prepare(transaction, lane)? {
            Prepared::ReadOnly(ts) => return self.durable(ts).await.map(|()| ts).map_err(Rejection::from),
            Prepared::Request(request, response) => (request, response),
        };
        self.queue().send(request).await.map_err(|_| self.unavailable())?;
        response.await.map_err(|_| self.unavailable())?
    }

    /// `commit` for callers outside an async runtime. Must not be called from inside one.
    pub fn commit_blocking(&self, transaction: Transaction) -> Result<Timestamp, CommitError> {
        let (request, response) = match self.prepare(transaction, None)? {
            Prepared::ReadOnly(ts) => {
                return match self.inner.published.wait_durable(ts) {
                    Some(durable) => durable.blocking_recv().map(|()| ts).map_err(|_| self.unavailable()),
                    None => Ok(ts),
                };
            }
            Prepared::Request(request, response) => (request, response),
        };
        self.queue().blocking_send(request).map_err(|_| self.unavailable())?;
        response.blocking_recv().map_err(|_| self.unavailable())?.map_err(|rejection| rejection.error)
    }

    /// Returns once the state at `ts` is durable.
    async fn durable(&self, ts: Timestamp) -> Result<(), CommitError> {
        match self.inner.published.wait_durable(ts) {
            Some(durable) => durable.await.map_err(|_| self.unavailable()),
            None => Ok(()),
        }
    }

    /// Runs `body` in a transaction at the newest accepted state (see `begin_latest`) and commits it,
    /// running it again when the commit conflicts: the retries of conflicting transactions take
    /// turns in the store's conflict lane, each at the state its predecessor left, while other
    /// transactions that read what the one in the lane conflicted on yield to it. So contention on
    /// a hot document costs little more than running its transactions one after another. Returns
    /// (a result or an error) only once everything the body read is durable. `body` must be free of
    /// side effects outside the transaction.
    pub async fn transact<T>(
        &self,
        mut body: impl FnMut(&mut Transaction) -> Result<T, TransactionError>,
    ) -> Result<(T, Timestamp), CommitError> {
        let mut attempts = 0;
        let mut lane = None;
        loop {
            let mut transaction = self.begin_latest();
            let begin_ts = transaction.begin_ts();
            let outcome = match body(&mut transaction) {
                Ok(value) => self.submit(transaction, lane.take()).await.map(|ts| (value, ts)),
                Err(error) => Err(Rejection::from(CommitError::from(error))),
            };
            let rejection = match outcome {
                Ok(committed) => return Ok(committed),
                Err(rejection) => rejection,
            };
            attempts += 1;
            if !rejection.error.is_retryable() || attempts >= MAX_TRANSACTION_ATTEMPTS {
                // The error may follow from state that is not durable yet.
                self.durable(begin_ts).await?;
                return Err(rejection.error);
            }
            lane = Some(self.inner.published.enter_lane(rejection.hot_key).await);
        }
    }

    /// `transact` for callers outside an async runtime.
    pub fn transact_blocking<T>(
        &self,
        mut body: impl FnMut(&mut Transaction) -> Result<T, TransactionError>,
    ) -> Result<(T, Timestamp), CommitError> {
        let mut attempt = 0;
        loop {
            let mut transaction = self.begin();
            let value = body(&mut transaction)?;
            match self.commit_blocking(transaction) {
                Ok(ts) => return Ok((value, ts)),
                Err(error) => std::thread::sleep(retry_pause(&error, &mut attempt)?),
            }
        }
    }

    /// Declares tables, indexes and validators (see `Schema`), in one transaction. Refused on a read
    /// replica: the writer applies schemas.
    pub async fn apply_schema(&self, schema: &Schema) -> Result<Timestamp, CommitError> {
        self.check_writer()?;
        schema.check()?;
        self.transact(|transaction| apply_schema(transaction, schema)).await.map(|((), ts)| ts)
    }

    /// `apply_schema` for callers outside an async runtime.
    pub fn apply_schema_blocking(&self, schema: &Schema) -> Result<Timestamp, CommitError> {
        self.check_writer()?;
        schema.check()?;
        self.transact_blocking(|transaction| apply_schema(transaction, schema)).map(|((), ts)| ts)
    }

    /// Declares system tables (names starting with `_`) and their indexes, for the layers above the
    /// store (scheduled jobs, environment variables, ...). Never for an app's schema. On a read replica
    /// it succeeds only if the writer already declared the same (nothing to write).
    pub async fn apply_system_schema(&self, schema: &Schema) -> Result<Timestamp, CommitError> {
        schema.check_system()?;
        self.transact(|transaction| apply_schema(transaction, schema)).await.map(|((), ts)| ts)
    }

    /// `lane`: the conflict lane's turn the commit was retried in, if any (dropped with a read-only one).
    fn prepare(&self, transaction: Transaction, lane: Option<LaneTicket>) -> Result<Prepared, CommitError> {
        if transaction.is_read_only() {
            let ts = transaction.begin_ts();
            transaction.into_commit()?;
            return Ok(Prepared::ReadOnly(ts));
        }
        self.check_writer()?;
        let (begin_ts, read_set, writes) = transaction.into_commit()?;
        let (reply, response) = oneshot::channel();
        Ok(Prepared::Request(CommitRequest { begin_ts, read_set, writes, reply, lane }, response))
    }

    fn check_writer(&self) -> Result<(), CommitError> {
        match self.is_replica() {
            true => Err(CommitError::ReadOnlyReplica),
            false => Ok(()),
        }
    }

    fn queue(&self) -> &mpsc::Sender<CommitRequest> {
        self.inner.requests.as_ref().expect("the queue lives as long as the store")
    }

    fn unavailable(&self) -> CommitError {
        self.inner.published.refusal()
    }
}

enum Prepared {
    ReadOnly(Timestamp),
    Request(CommitRequest, oneshot::Receiver<Result<Timestamp, Rejection>>),
}

/// The pause before the next attempt, or the error when it is not worth another one.
fn retry_pause(error: &CommitError, attempt: &mut u32) -> Result<Duration, CommitError> {
    *attempt += 1;
    if !error.is_retryable() || *attempt >= MAX_TRANSACTION_ATTEMPTS {
        return Err(error.clone());
    }
    // The first retry is immediate: most conflicts are with a commit that has already landed.
    let ceiling_micros = if *attempt == 1 { 0 } else { (100u64 << (*attempt).min(10)).min(100_000) };
    Ok(Duration::from_micros(rand::random_range(0..=ceiling_micros)))
}

fn apply_schema(transaction: &mut Transaction, schema: &Schema) -> Result<(), TransactionError> {
    for table in &schema.tables {
        transaction.ensure_table(&table.name)?;
        let declared = transaction.declared_indexes(&table.name)?;
        for (metadata_id, name, _) in &declared {
            if !table.indexes.iter().any(|index| index.name == *name) {
                transaction.remove_index(*metadata_id)?;
            }
        }
        for index in &table.indexes {
            let existing = declared.iter().find(|(_, name, _)| *name == index.name);
            match existing {
                Some((_, _, fields)) if *fields == index.fields => {}
                Some((metadata_id, ..)) => {
                    transaction.declare_index(&table.name, &index.name, &index.fields, Some(*metadata_id))?
                }
                None => transaction.declare_index(&table.name, &index.name, &index.fields, None)?,
            }
        }
        let validator = table.document_validator.as_ref().map(|validator| validator.to_json().to_string());
        transaction.set_table_validator(&table.name, validator)?;
    }
    Ok(())
}

/// The state a checkpoint and the log after it describe, and the versions the log wrote.
pub(crate) fn load(recovered: &Recovered) -> Result<(Snapshot, LatestVersions), OpenError> {
    let mut snapshot = Snapshot::empty();
    for (id, bytes) in &recovered.checkpoint {
        apply_stored(&mut snapshot, *id, Some(bytes), None)?;
    }
    let mut since_checkpoint = HashMap::new();
    let mut last_ts = recovered.checkpoint_ts;
    for (ts, writes) in &recovered.log {
        for (id, bytes) in writes {
            apply_stored(&mut snapshot, *id, bytes.as_deref(), None)?;
            since_checkpoint.insert(*id, bytes.clone());
        }
        last_ts = *ts;
    }
    snapshot.set_ts(last_ts);
    tracing::info!(
        checkpoint_documents = recovered.checkpoint.len(),
        replayed_commits = recovered.log.len(),
        ts = %last_ts,
        "store state loaded"
    );
    Ok((snapshot, since_checkpoint))
}

/// Applies one stored write (a document's encoding, or `None` for a deletion) as the committer
/// applied it, collecting the index keys it touches into `keys`; returns the change made.
pub(crate) fn apply_stored(
    snapshot: &mut Snapshot,
    id: livebase_value::DocumentId,
    bytes: Option<&[u8]>,
    keys: Option<&mut Vec<Vec<u8>>>,
) -> Result<DocumentChange, OpenError> {
    if snapshot.table(id.table()).is_none() {
        return Err(OpenError::Corrupt(format!(
            "document {id} belongs to table number {} which does not exist",
            id.table()
        )));
    }
    let document =
        bytes.map(|bytes| Document::decode(id, bytes).map(Arc::new)).transpose().map_err(OpenError::Corrupt)?;
    let old = snapshot.apply_write(id, document.clone(), keys);
    Ok(DocumentChange { id, old, new: document })
}

fn lock_directory(directory: &Path) -> Result<File, OpenError> {
    let path = directory.join("LOCK");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| OpenError::Io { path: path.display().to_string(), source })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(OpenError::Locked { path: directory.display().to_string() }),
        Err(std::fs::TryLockError::Error(source)) => Err(OpenError::Io { path: path.display().to_string(), source }),
    }
}
