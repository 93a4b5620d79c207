use livebase_value::{DocumentId, ValidationError, ValueError};

use crate::Timestamp;

/// Why a read or write inside a transaction failed. These are the caller's errors: retrying the same
/// transaction gives the same error.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum TransactionError {
    #[error(transparent)]
    InvalidValue(#[from] ValueError),
    #[error("Document {table}: {error}")]
    SchemaValidation { table: String, error: ValidationError },
    #[error("Field `{field}` of document {id} is a system field and can't be changed")]
    SystemFieldChanged { field: String, id: DocumentId },
    #[error(
        "Table `{0}` is a system table: names starting with `_` are reserved, and such tables are written only by Livebase"
    )]
    SystemTable(String),
    #[error("Index `{table}.{index}` does not exist")]
    IndexNotFound { table: String, index: String },
    #[error("Document {0} does not exist")]
    DocumentNotFound(DocumentId),
    #[error("Document {0} belongs to a table that does not exist")]
    TableNotFound(DocumentId),
    #[error("Transaction read more than {limit} {what}; read less per transaction (paginate)")]
    ReadLimit { what: &'static str, limit: usize },
    #[error("Transaction wrote more than {limit} {what}; split the work into several transactions")]
    WriteLimit { what: &'static str, limit: usize },
    #[error("Transaction read set has more than {limit} key intervals; read less per transaction")]
    ReadSetLimit { limit: usize },
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
}

/// Why a commit did not happen.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum CommitError {
    /// Another transaction committed a write to something this one read. Retry the transaction.
    #[error("Transaction conflicts with a commit at timestamp {conflicting_commit}; retry it")]
    Conflict { conflicting_commit: Timestamp },
    /// A transaction that conflicted before is retrying on a document this one read, and goes first
    /// (the conflict lane: hot documents' transactions take turns). Retry the transaction.
    #[error("Transaction read a document that a conflicting transaction is retrying on; retry it")]
    Yielded,
    /// The transaction began before the oldest write the committer remembers. Retry the transaction.
    #[error("Transaction began at {begin} before the committer's oldest remembered write at {oldest}; retry it")]
    TooOld { begin: Timestamp, oldest: Timestamp },
    #[error(transparent)]
    Transaction(#[from] TransactionError),
    /// The store stopped accepting commits: it is shutting down or a write to disk failed. Only a
    /// restart (which recovers from the durable log) helps.
    #[error("The store is unavailable: {0}")]
    Unavailable(String),
    /// This writer lost its PostgreSQL lease to another writer, so it commits nothing more; the
    /// writer holding the lease now takes the writes.
    #[error("This node is no longer the writer and can't commit writes; send them to the writer ({0})")]
    LeaseLost(String),
    /// The store is a read replica, which only follows the writer's commits.
    #[error("This store is a read replica and can't commit writes; writes go to the writer")]
    ReadOnlyReplica,
}

impl CommitError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, CommitError::Conflict { .. } | CommitError::Yielded | CommitError::TooOld { .. })
    }
}

/// Errors opening or recovering a data directory.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("Data directory {path} is in use by another process (lock file {path}/LOCK is held)")]
    Locked { path: String },
    #[error("I/O error on data directory {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("SQLite error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("Data directory is corrupt: {0}")]
    Corrupt(String),
    #[error("Invalid store configuration: {0}")]
    Config(String),
    #[error("PostgreSQL error: {0}")]
    Postgres(String),
    /// Another writer holds the PostgreSQL lease: only one writer may commit to a database at a time.
    #[error(
        "The database is in use by another Livebase writer: {holder} holds its lease (epoch {epoch}) for another \
         {remaining:.1?} unless it renews it; only one writer may commit at a time"
    )]
    Leased { holder: String, epoch: i64, remaining: std::time::Duration },
}
