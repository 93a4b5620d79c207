//! Durable state: the commit log and checkpoints. The in-memory state is a function of the two.
//!
//! The embedded default keeps them in two SQLite databases in WAL mode with `synchronous=FULL` (a
//! SQLite commit returns only after its WAL frames are fsynced). Two files, so that writing a
//! checkpoint never holds the lock that appending to the log needs:
//! - `log.sqlite3`, table `log(ts, entry)`: one row per group commit, holding every write of every
//!   commit in the group, keyed by the group's last timestamp. A row is atomic, so a commit is there
//!   whole or not at all, and a group costs one row and one fsync however many commits it holds.
//! - `checkpoint.sqlite3`, table `documents(table_number, internal_id, document)`: every live
//!   document as of `meta.checkpoint_ts`, written in the background. Only after a checkpoint is
//!   durable are the log rows it covers deleted, so a crash at any point leaves a checkpoint plus the
//!   log after it; restart loads the one and replays the other.
//!
//! `postgres` keeps the same log and checkpoints in PostgreSQL, behind a writer lease.

mod postgres;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use livebase_value::{DocumentId, TableNumber};
use rusqlite::{Connection, OptionalExtension, params};

use crate::Timestamp;
use crate::error::OpenError;

pub use postgres::{DEFAULT_POSTGRES_SCHEMA, PostgresConfig};
pub(crate) use postgres::{PostgresReplica, Tail, open_postgres, open_postgres_replica, writer_url};

/// Bump when the on-disk layout changes; opening a newer or older layout fails clearly.
const FORMAT_VERSION: i64 = 1;
pub(crate) const LOG_FILE: &str = "log.sqlite3";
pub(crate) const CHECKPOINT_FILE: &str = "checkpoint.sqlite3";

/// One document write as stored: the document's storage encoding, or `None` for a deletion.
pub(crate) type StoredWrite = (DocumentId, Option<Arc<[u8]>>);

/// The newest version of each document written since some checkpoint.
pub(crate) type LatestVersions = HashMap<DocumentId, Option<Arc<[u8]>>>;

/// Documents with their storage encodings, as a checkpoint holds them.
pub(crate) type StoredDocuments = Vec<(DocumentId, Vec<u8>)>;

/// The durable state found on open.
pub(crate) struct Recovered {
    /// Every document of the checkpoint, system tables first (table number order).
    pub(crate) checkpoint: StoredDocuments,
    pub(crate) checkpoint_ts: Timestamp,
    /// Commits after the checkpoint, in timestamp order.
    pub(crate) log: Vec<(Timestamp, Vec<StoredWrite>)>,
    /// A random secret made when the data directory was created (for authenticating cursors).
    pub(crate) secret: [u8; 32],
}

/// Where commits go to become durable. SQLite is the embedded default; other databases implement the
/// same contract: `append` returns only once the commits survive a crash, and it is all or nothing.
pub(crate) trait Log: Send + 'static {
    fn append(&mut self, commits: &[(Timestamp, &[StoredWrite])]) -> Result<(), AppendError>;
    /// Forgets groups whose last commit is at or before `ts` (they are in a checkpoint): all of them,
    /// or (PostgreSQL) all but those read replicas still need.
    fn truncate(&mut self, ts: Timestamp) -> Result<(), String>;
}

/// Why an append to the log failed. The two differ in what a caller may do with the refused commits.
#[derive(Debug)]
pub(crate) enum AppendError {
    /// Refused before anything was written (PostgreSQL: this writer lost its lease): none of the
    /// group committed, so its commits may run again on the writer that holds the lease now.
    Fenced(String),
    /// Failed on the way: whether the group reached the log is unknown.
    Failed(String),
}

impl AppendError {
    pub(crate) fn reason(&self) -> &str {
        match self {
            AppendError::Fenced(reason) | AppendError::Failed(reason) => reason,
        }
    }
}

/// Where checkpoints go.
pub(crate) trait Checkpoints: Send + 'static {
    /// Folds `latest` into the checkpoint and records that it now holds everything up to `ts`, as one
    /// durable, atomic step.
    fn write(&mut self, ts: Timestamp, latest: &LatestVersions) -> Result<(), String>;
}

pub(crate) struct SqliteLog {
    connection: Connection,
}

pub(crate) struct SqliteCheckpoints {
    connection: Connection,
}

/// Opens (creating if needed) the two databases in `directory` and reads back their contents.
pub(crate) fn open_sqlite(directory: &Path) -> Result<(SqliteLog, SqliteCheckpoints, Recovered), OpenError> {
    let log = connect(
        &directory.join(LOG_FILE),
        "CREATE TABLE IF NOT EXISTS log (ts INTEGER PRIMARY KEY, entry BLOB NOT NULL);",
    )?;
    let checkpoints = connect(
        &directory.join(CHECKPOINT_FILE),
        "CREATE TABLE IF NOT EXISTS documents (
             table_number INTEGER NOT NULL, internal_id BLOB NOT NULL, document BLOB NOT NULL,
             PRIMARY KEY (table_number, internal_id)) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL);",
    )?;
    // Checkpoints rewrite documents all over their table: keep its pages cached (64 MiB). Not the
    // log's: it only appends, and a cache that grows page by page costs each append page faults.
    checkpoints.pragma_update(None, "cache_size", -65_536)?;
    checkpoints.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('checkpoint_ts', 0)", [])?;
    let secret: Option<Vec<u8>> =
        checkpoints.query_row("SELECT value FROM secrets WHERE name = 'instance'", [], |row| row.get(0)).optional()?;
    let secret: [u8; 32] = match secret {
        Some(secret) => {
            secret.try_into().map_err(|_| OpenError::Corrupt("the instance secret is not 32 bytes".into()))?
        }
        None => {
            let secret: [u8; 32] = rand::random();
            checkpoints.execute("INSERT INTO secrets (name, value) VALUES ('instance', ?1)", [&secret[..]])?;
            secret
        }
    };
    let (checkpoint_ts, checkpoint) = read_checkpoint(&checkpoints)?;
    let log_entries = read_log(&log, checkpoint_ts)?;
    let recovered = Recovered { checkpoint, checkpoint_ts, log: log_entries, secret };
    Ok((SqliteLog { connection: log }, SqliteCheckpoints { connection: checkpoints }, recovered))
}

fn connect(path: &Path, schema: &str) -> Result<Connection, OpenError> {
    let connection = Connection::open(path)?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    // The directory lock already keeps other processes out, so SQLite need not coordinate through
    // shared memory on every transaction.
    connection.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
    connection.execute_batch("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);")?;
    connection.execute_batch(schema)?;
    let format: Option<i64> =
        connection.query_row("SELECT value FROM meta WHERE key = 'format_version'", [], |row| row.get(0)).optional()?;
    match format {
        None => {
            connection.execute("INSERT INTO meta (key, value) VALUES ('format_version', ?1)", [FORMAT_VERSION])?;
        }
        Some(FORMAT_VERSION) => {}
        Some(other) => {
            return Err(OpenError::Corrupt(format!(
                "{}: data format version {other}, this build reads version {FORMAT_VERSION}",
                path.display()
            )));
        }
    }
    Ok(connection)
}

fn read_checkpoint(connection: &Connection) -> Result<(Timestamp, StoredDocuments), OpenError> {
    let checkpoint_ts: i64 =
        connection.query_row("SELECT value FROM meta WHERE key = 'checkpoint_ts'", [], |row| row.get(0))?;
    let checkpoint_ts = timestamp_from_sql(checkpoint_ts)?;
    let mut documents = Vec::new();
    let mut statement = connection
        .prepare("SELECT table_number, internal_id, document FROM documents ORDER BY table_number, internal_id")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let table: i64 = row.get(0)?;
        let internal: Vec<u8> = row.get(1)?;
        let id = document_id(table, &internal).map_err(OpenError::Corrupt)?;
        documents.push((id, row.get(2)?));
    }
    Ok((checkpoint_ts, documents))
}

fn read_log(connection: &Connection, after: Timestamp) -> Result<Vec<(Timestamp, Vec<StoredWrite>)>, OpenError> {
    let mut log: Vec<(Timestamp, Vec<StoredWrite>)> = Vec::new();
    let mut statement = connection.prepare("SELECT ts, entry FROM log WHERE ts > ?1 ORDER BY ts")?;
    let mut rows = statement.query([timestamp_to_sql(after)])?;
    while let Some(row) = rows.next()? {
        let group_ts = timestamp_from_sql(row.get(0)?)?;
        let entry: Vec<u8> = row.get(1)?;
        push_log_entry(&mut log, after, group_ts, &entry)?;
    }
    Ok(log)
}

/// Decodes the log entry of the group ending at `group_ts` onto `log`, checking that its timestamps
/// go on increasing from `log`'s last one (or from the checkpoint's, `after`).
fn push_log_entry(
    log: &mut Vec<(Timestamp, Vec<StoredWrite>)>,
    after: Timestamp,
    group_ts: Timestamp,
    entry: &[u8],
) -> Result<(), OpenError> {
    let commits =
        decode_group(entry).map_err(|error| OpenError::Corrupt(format!("log entry at {group_ts}: {error}")))?;
    let in_order = commits.windows(2).all(|pair| pair[0].0 < pair[1].0);
    let last = commits.last().map(|(ts, _)| *ts);
    let after_previous = log.last().is_none_or(|(ts, _)| commits[0].0 > *ts) && commits[0].0 > after;
    if !in_order || last != Some(group_ts) || !after_previous {
        return Err(OpenError::Corrupt(format!("log entry at {group_ts} holds timestamps out of order")));
    }
    log.extend(commits);
    Ok(())
}

impl Log for SqliteLog {
    fn append(&mut self, commits: &[(Timestamp, &[StoredWrite])]) -> Result<(), AppendError> {
        let (last_ts, _) = commits.last().expect("groups are not empty");
        self.connection
            .prepare_cached("INSERT INTO log (ts, entry) VALUES (?1, ?2)")
            .and_then(|mut insert| insert.execute(params![timestamp_to_sql(*last_ts), encode_group(commits)]))
            .map(drop)
            .map_err(|error| {
                AppendError::Failed(format!("appending {} commits to the log failed: {error}", commits.len()))
            })
    }

    fn truncate(&mut self, ts: Timestamp) -> Result<(), String> {
        self.connection
            .execute("DELETE FROM log WHERE ts <= ?1", [timestamp_to_sql(ts)])
            .map(drop)
            .map_err(|error| format!("truncating the log up to {ts} failed: {error}"))
    }
}

impl Checkpoints for SqliteCheckpoints {
    fn write(&mut self, ts: Timestamp, latest: &LatestVersions) -> Result<(), String> {
        let result = (|| -> rusqlite::Result<()> {
            let transaction = self.connection.transaction()?;
            {
                let mut upsert = transaction.prepare_cached(
                    "INSERT INTO documents (table_number, internal_id, document) VALUES (?1, ?2, ?3)
                     ON CONFLICT (table_number, internal_id) DO UPDATE SET document = excluded.document",
                )?;
                let mut delete =
                    transaction.prepare_cached("DELETE FROM documents WHERE table_number = ?1 AND internal_id = ?2")?;
                // In key order, so the B-tree is walked once instead of at random: far fewer pages
                // are touched, written and fsynced, and the log's fsyncs wait less behind ours.
                let mut in_key_order: Vec<_> = latest.iter().collect();
                in_key_order.sort_unstable_by_key(|(id, _)| (id.table(), id.internal()));
                for (id, document) in in_key_order {
                    let table = i64::from(id.table().get());
                    match document {
                        Some(bytes) => upsert.execute(params![table, &id.internal()[..], &bytes[..]])?,
                        None => delete.execute(params![table, &id.internal()[..]])?,
                    };
                }
            }
            transaction.execute("UPDATE meta SET value = ?1 WHERE key = 'checkpoint_ts'", [timestamp_to_sql(ts)])?;
            transaction.commit()
        })();
        result.map_err(|error| format!("checkpoint at {ts} failed: {error}"))
    }
}

fn timestamp_to_sql(ts: Timestamp) -> i64 {
    i64::try_from(ts.nanos()).expect("timestamps before the year 2262 fit i64")
}

fn timestamp_from_sql(value: i64) -> Result<Timestamp, OpenError> {
    u64::try_from(value)
        .map(Timestamp::from_nanos)
        .map_err(|_| OpenError::Corrupt(format!("negative timestamp {value}")))
}

fn document_id(table: i64, internal: &[u8]) -> Result<DocumentId, String> {
    let table =
        u32::try_from(table).ok().and_then(TableNumber::new).ok_or_else(|| format!("invalid table number {table}"))?;
    let internal: [u8; 16] = internal.try_into().map_err(|_| format!("internal id of {} bytes", internal.len()))?;
    Ok(DocumentId::new(table, internal))
}

// Log entry layout (integers little-endian): u32 commit count, then per commit: u64 timestamp, u32
// write count, then per write: u32 table number, 16-byte internal id, u8 kind (0 deleted, 1 document),
// and for a document a u32 length and its storage encoding.

fn encode_group(commits: &[(Timestamp, &[StoredWrite])]) -> Vec<u8> {
    let size: usize = commits
        .iter()
        .flat_map(|(_, writes)| writes.iter())
        .map(|(_, document)| 25 + document.as_ref().map_or(0, |bytes| bytes.len()))
        .sum();
    let mut entry = Vec::with_capacity(4 + 12 * commits.len() + size);
    entry.extend_from_slice(&u32::try_from(commits.len()).expect("commit count fits u32").to_le_bytes());
    for (ts, writes) in commits {
        entry.extend_from_slice(&ts.nanos().to_le_bytes());
        entry.extend_from_slice(&u32::try_from(writes.len()).expect("write count fits u32").to_le_bytes());
        for (id, document) in writes.iter() {
            entry.extend_from_slice(&id.table().get().to_le_bytes());
            entry.extend_from_slice(&id.internal());
            match document {
                None => entry.push(0),
                Some(bytes) => {
                    entry.push(1);
                    entry.extend_from_slice(
                        &u32::try_from(bytes.len()).expect("documents are under 4 GiB").to_le_bytes(),
                    );
                    entry.extend_from_slice(bytes);
                }
            }
        }
    }
    entry
}

fn decode_group(mut entry: &[u8]) -> Result<Vec<(Timestamp, Vec<StoredWrite>)>, String> {
    fn take<'a>(entry: &mut &'a [u8], length: usize) -> Result<&'a [u8], String> {
        if entry.len() < length {
            return Err("truncated".to_owned());
        }
        let (head, tail) = entry.split_at(length);
        *entry = tail;
        Ok(head)
    }
    fn take_u32(entry: &mut &[u8]) -> Result<u32, String> {
        Ok(u32::from_le_bytes(take(entry, 4)?.try_into().expect("took 4 bytes")))
    }
    let commit_count = take_u32(&mut entry)?;
    if commit_count == 0 || commit_count as usize > crate::limits::MAX_COMMITS_PER_GROUP {
        return Err(format!("{commit_count} commits in one group"));
    }
    let mut commits = Vec::with_capacity(commit_count as usize);
    for _ in 0..commit_count {
        let ts = Timestamp::from_nanos(u64::from_le_bytes(take(&mut entry, 8)?.try_into().expect("took 8 bytes")));
        let write_count = take_u32(&mut entry)?;
        let mut writes =
            Vec::with_capacity(write_count.min(crate::limits::MAX_TRANSACTION_DOCS_WRITTEN as u32) as usize);
        for _ in 0..write_count {
            let table = take_u32(&mut entry)?;
            let id = document_id(i64::from(table), take(&mut entry, 16)?)?;
            let document = match take(&mut entry, 1)?[0] {
                0 => None,
                1 => {
                    let length = take_u32(&mut entry)? as usize;
                    Some(take(&mut entry, length)?.into())
                }
                kind => return Err(format!("unknown write kind {kind}")),
            };
            writes.push((id, document));
        }
        commits.push((ts, writes));
    }
    if !entry.is_empty() {
        return Err(format!("{} trailing bytes", entry.len()));
    }
    Ok(commits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_entries_round_trip_and_reject_damage() {
        let table = TableNumber::new(10_001).unwrap();
        let first: Vec<StoredWrite> = vec![
            (DocumentId::new(table, [7; 16]), Some(vec![1, 2, 3].into())),
            (DocumentId::new(table, [9; 16]), None),
        ];
        let second: Vec<StoredWrite> = vec![(DocumentId::new(table, [8; 16]), Some(vec![4].into()))];
        let group = [(Timestamp::from_nanos(5), first.as_slice()), (Timestamp::from_nanos(9), second.as_slice())];
        let entry = encode_group(&group);
        let decoded = decode_group(&entry).unwrap();
        assert_eq!(
            decoded,
            vec![(Timestamp::from_nanos(5), first.clone()), (Timestamp::from_nanos(9), second.clone())]
        );
        for length in 0..entry.len() {
            assert!(decode_group(&entry[..length]).is_err(), "truncated at {length}");
        }
        assert!(decode_group(&[entry.as_slice(), &[0]].concat()).is_err());
    }
}
