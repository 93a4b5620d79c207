//! Livebase's storage engine.
//!
//! Owns the database state and its durability: documents and their indexes in memory as persistent
//! (copy-on-write) maps, one snapshot per commit; serializable transactions by optimistic concurrency
//! (read sets of key intervals, checked by a single committer); a commit log with group commit and
//! checkpoints in SQLite or PostgreSQL; and the change stream every commit is published on. Knows nothing of
//! queries, functions or the network.

mod background;
mod btree;
mod committer;
mod document;
mod error;
mod index;
pub mod limits;
mod persistence;
mod read_set;
mod replica;
mod schema;
mod snapshot;
mod store;
mod timestamp;
mod transaction;

pub use committer::{
    CHECKPOINT_THREAD, COMMITTER_THREAD, CommitRecord, DURABILITY_THREAD, DocumentChange, PUBLISH_THREAD,
    RECLAIM_THREAD, StoreStats,
};
pub use document::{CREATION_TIME_FIELD, Document, ID_FIELD};
pub use error::{CommitError, OpenError, TransactionError};
pub use index::{
    BY_CREATION_TIME, BY_ID, KeyInterval, KeyRange, Order, global_interval, index_prefix, key_boundaries,
    prefix_successor, successor,
};
pub use persistence::{DEFAULT_POSTGRES_SCHEMA, PostgresConfig};
pub use read_set::ReadSet;
pub use schema::{IndexSchema, MAX_INDEX_FIELDS, MAX_INDEXES_PER_TABLE, Schema, TableSchema};
pub use snapshot::{INDEXES_TABLE, Snapshot, TABLES_TABLE};
pub use store::{Storage, Store, StoreConfig};
pub use timestamp::Timestamp;
pub use transaction::{Scan, SystemTables, Transaction};
