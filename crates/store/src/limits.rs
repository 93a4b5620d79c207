//! Every bound the engine enforces, in one place. Document-level limits (size, nesting, fields) live in
//! `livebase_value` because they belong to the value model.

/// Documents one transaction may read (Convex: 32,000).
pub const MAX_TRANSACTION_DOCS_READ: usize = 32_000;
/// Bytes of documents one transaction may read (Convex: 16 MiB).
pub const MAX_TRANSACTION_BYTES_READ: usize = 16 << 20;
/// Documents one transaction may write (Convex: 16,000).
pub const MAX_TRANSACTION_DOCS_WRITTEN: usize = 16_000;
/// Bytes of documents one transaction may write (Convex: 16 MiB).
pub const MAX_TRANSACTION_BYTES_WRITTEN: usize = 16 << 20;
/// Key intervals in one transaction's read set (Convex: 4,096).
pub const MAX_READ_SET_INTERVALS: usize = 4_096;

/// Commits waiting for the committer. Writers past this wait (back-pressure) instead of queueing
/// without bound.
pub const COMMIT_QUEUE_CAPACITY: usize = 4_096;
/// Commits the committer validates and hands on as one batch at most.
pub const MAX_COMMITS_PER_BATCH: usize = 1_024;
/// Batches of accepted commits waiting for the disk. The committer validates the next batches while
/// a group is being written; past this many it waits.
pub const MAX_BATCHES_IN_FLIGHT: usize = 4;
/// Commits in one log group (one append, one fsync) at most: bounds the latency of one group commit;
/// the durability stage merges queued batches only up to this, and recovery rejects a bigger group as
/// corrupt (so, since logs hold groups this big, it must never shrink).
pub const MAX_COMMITS_PER_GROUP: usize = 4_096;
const _: () = assert!(MAX_COMMITS_PER_BATCH <= MAX_COMMITS_PER_GROUP, "a batch fits in one group");
/// Durable groups waiting for the publisher (which makes them visible and acknowledges them). The
/// durability stage appends the next group while the publisher works; past this many it waits.
pub const MAX_GROUPS_AWAITING_PUBLISH: usize = 4;
/// Index keys kept in the committer's log of recent writes, used to check read sets (the log also
/// keeps the commits' documents alive). A transaction that began before the oldest retained write
/// fails with `CommitError::TooOld` and is retried.
pub const MAX_WRITE_LOG_KEYS: usize = 200_000;
/// How long a read-write transaction may run: writes older than this leave the committer's log, so a
/// transaction that began earlier fails with `CommitError::TooOld`.
pub const MAX_TRANSACTION_DURATION: std::time::Duration = std::time::Duration::from_secs(30);
/// Recent snapshots kept so reads can happen at a timestamp other than the latest.
pub const MAX_RETAINED_SNAPSHOTS: usize = 256;
/// Commit records buffered for each change-stream subscriber; a slower subscriber sees `Lagged`.
pub const CHANGE_STREAM_CAPACITY: usize = 4_096;

/// Attempts `Store::transact` makes before giving up on a conflicting transaction. Every conflict
/// means another transaction committed, so the store as a whole always progresses; this bounds how
/// long one unlucky transaction on a hot document keeps trying (retries wait their turn in the conflict
/// lane, where a transaction almost always commits at its first turn; `transact_blocking` backs off
/// instead, about a second in all).
pub const MAX_TRANSACTION_ATTEMPTS: u32 = 32;

/// How long a PostgreSQL writer lease lasts unless renewed (the renewer extends it every quarter of
/// this). A writer that stops (crash, partition) blocks others for at most this long.
pub const LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(10);
/// The shortest lease TTL a configuration may ask for: renewing must fit comfortably inside it.
pub const MIN_LEASE_TTL: std::time::Duration = std::time::Duration::from_millis(500);
/// The longest a writer may be configured to wait for another writer's lease when opening.
pub const MAX_LEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(600);
/// How often a writer waiting for the lease checks whether it is free.
pub const LEASE_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);
/// Connecting to PostgreSQL gives up after this long, unless the connection string sets its own.
pub const POSTGRES_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How often a read replica reads the log even without a notification from the writer: notifications
/// are lost while its connection is down, so this bounds how stale a replica can stay then.
pub const REPLICA_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// A read replica waits for notifications in slices of this long, checking in between whether its
/// store is shutting down: bounds how long dropping a replica takes.
pub const REPLICA_WAIT_SLICE: std::time::Duration = std::time::Duration::from_millis(50);
/// How often a read replica records its applied position in the `replicas` table (the writer keeps
/// the log after the oldest one).
pub const REPLICA_HEARTBEAT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// A replica whose position was not recorded for this long is gone (crashed, partitioned): the
/// writer no longer keeps the log for it, and it reloads the checkpoint if it comes back.
pub const REPLICA_EXPIRY: std::time::Duration = std::time::Duration::from_secs(60);
/// Log groups a writer keeps beyond its checkpoint for lagging replicas unless configured otherwise
/// (`PostgresConfig::replica_log_rows`): bounds the log a slow replica can make the database hold.
pub const REPLICA_LOG_ROWS: usize = 10_000;
/// The most log groups a writer may be configured to keep beyond its checkpoint for replicas.
pub const MAX_REPLICA_LOG_ROWS: usize = 1_000_000;
/// Log groups a replica reads in one query: bounds its memory while catching up (it reads again at
/// once when there were this many).
pub const REPLICA_TAIL_BATCH: usize = 64;
