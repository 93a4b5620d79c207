//! The commit log and checkpoints in PostgreSQL, for running the writer on a machine without
//! durable local disk, or handing the database from one writer node to another.
//!
//! Tables, in one schema of the configured database (`livebase` unless configured):
//! - `log(ts, entry)`: one row per group commit, the same encoding as the SQLite log;
//! - `documents(table_number, internal_id, document)`: the checkpoint;
//! - `meta` (format version, checkpoint timestamp), `secrets` (the instance secret);
//! - `lease(holder, epoch, expires_at)`: one row naming the writer allowed to commit.
//!
//! One writer at a time: opening takes the lease if it is free or expired, bumping its epoch, and
//! refuses (or waits up to `PostgresConfig::lease_wait`) while another writer holds it. Every write
//! (append, truncate, checkpoint) locks the lease row `FOR SHARE` in its own transaction and goes
//! ahead only if the epoch is still ours and the lease has not expired by the database's clock.
//! A takeover's `UPDATE` of that row waits for such a transaction and makes every later one find a
//! new epoch, so a writer that lost its lease can commit nothing after another writer took over,
//! whatever its own clock or scheduler does. A background thread renews the lease; a lease that
//! expired is never renewed, since another writer may already own the database.
//!
//! Each of the three users (durability thread, checkpointer, lease renewer) owns one connection for
//! its whole life, so there is nothing for a pool to share. The `postgres` crate drives each
//! connection with a small current-thread tokio runtime of its own, inside the call: the engine's
//! threads stay plain threads.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use postgres::config::Host;
use postgres::{Client, IsolationLevel, NoTls};

use super::{
    Checkpoints, FORMAT_VERSION, LatestVersions, Log, Recovered, StoredWrite, document_id, encode_group,
    push_log_entry, timestamp_from_sql, timestamp_to_sql,
};
use crate::Timestamp;
use crate::error::OpenError;
use crate::limits::{LEASE_POLL_INTERVAL, LEASE_TTL, MAX_LEASE_WAIT, MIN_LEASE_TTL, POSTGRES_CONNECT_TIMEOUT};

/// The schema Livebase's tables live in unless configured otherwise.
pub const DEFAULT_POSTGRES_SCHEMA: &str = "livebase";
/// PostgreSQL's longest identifier.
const MAX_SCHEMA_NAME_LENGTH: usize = 63;
/// Documents upserted (or deleted) by one statement of a checkpoint: few round trips, bounded
/// statement size.
const CHECKPOINT_ROWS_PER_STATEMENT: usize = 1_000;

/// A PostgreSQL database holding the store's log and checkpoints.
#[derive(Clone)]
pub struct PostgresConfig {
    /// A libpq connection string or URL (`postgres://user@host:5432/db`).
    pub url: String,
    /// The schema the tables go in (created if missing): lowercase letters, digits and `_`.
    pub schema: String,
    /// A writer that has not renewed its lease for this long loses it, and another may take over.
    pub lease_ttl: Duration,
    /// How long opening waits for another writer's lease to be released or to expire before
    /// refusing; zero refuses at once.
    pub lease_wait: Duration,
}

impl PostgresConfig {
    pub fn new(url: impl Into<String>) -> PostgresConfig {
        PostgresConfig {
            url: url.into(),
            schema: DEFAULT_POSTGRES_SCHEMA.to_owned(),
            lease_ttl: LEASE_TTL,
            lease_wait: Duration::ZERO,
        }
    }
}

/// Shows where the data is without the password a connection string may hold.
impl fmt::Debug for PostgresConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{self}")
    }
}

impl fmt::Display for PostgresConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Ok(config) = postgres::Config::from_str(&self.url) else {
            return write!(formatter, "PostgreSQL (unparsable connection string), schema {}", self.schema);
        };
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(host)) => host.clone(),
            Some(Host::Unix(path)) => path.display().to_string(),
            None => "localhost".to_owned(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().unwrap_or("(default user)");
        let database = config.get_dbname().unwrap_or(user);
        write!(formatter, "postgres://{user}@{host}:{port}/{database}, schema {}", self.schema)
    }
}

pub(crate) struct PostgresLog {
    client: Client,
    epoch: i64,
    lease: LeaseKeeper,
}

pub(crate) struct PostgresCheckpoints {
    client: Client,
    epoch: i64,
}

/// Connects, creates the tables if needed, takes the writer lease and reads back the contents.
pub(crate) fn open_postgres(
    config: &PostgresConfig,
) -> Result<(PostgresLog, PostgresCheckpoints, Recovered), OpenError> {
    // On a plain thread: each `postgres` call blocks on a runtime of its own, which tokio refuses
    // to do on a thread already running an async runtime (as the caller's may be).
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("livebase-open".to_owned())
            .spawn_scoped(scope, || open_on_this_thread(config))
            .map_err(|source| OpenError::Io { path: config.to_string(), source })?
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn open_on_this_thread(config: &PostgresConfig) -> Result<(PostgresLog, PostgresCheckpoints, Recovered), OpenError> {
    let connection = connection_config(config)?;
    let mut client = connect(&connection, &config.schema)?;
    create_tables(&mut client, &config.schema)?;
    let holder = holder_name();
    let epoch = take_lease(&mut client, &holder, config)?;
    let recovered = recover(&mut client)?;
    tracing::info!(%config, %holder, epoch, "took the writer lease");
    let renewer = Renewer {
        client: Some(connect(&connection, &config.schema)?),
        connection: connection.clone(),
        schema: config.schema.clone(),
        epoch,
        ttl: config.lease_ttl,
    };
    let lease = LeaseKeeper::start(renewer)
        .map_err(|error| OpenError::Postgres(format!("starting the lease renewer failed: {error}")))?;
    let checkpoints = PostgresCheckpoints { client: connect(&connection, &config.schema)?, epoch };
    Ok((PostgresLog { client, epoch, lease }, checkpoints, recovered))
}

fn connection_config(config: &PostgresConfig) -> Result<postgres::Config, OpenError> {
    let valid_schema = !config.schema.is_empty()
        && config.schema.len() <= MAX_SCHEMA_NAME_LENGTH
        && !config.schema.starts_with(|c: char| c.is_ascii_digit())
        && config.schema.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !valid_schema {
        return Err(OpenError::Config(format!(
            "PostgreSQL schema name `{}` is invalid: use 1 to {MAX_SCHEMA_NAME_LENGTH} lowercase letters, digits \
             and `_`, not starting with a digit",
            config.schema
        )));
    }
    if config.lease_ttl < MIN_LEASE_TTL {
        return Err(OpenError::Config(format!(
            "the lease TTL {:?} is below the minimum {MIN_LEASE_TTL:?}",
            config.lease_ttl
        )));
    }
    if config.lease_wait > MAX_LEASE_WAIT {
        return Err(OpenError::Config(format!(
            "waiting {:?} for the lease is over the maximum {MAX_LEASE_WAIT:?}",
            config.lease_wait
        )));
    }
    let mut connection = postgres::Config::from_str(&config.url).map_err(|error| {
        OpenError::Config(format!("invalid PostgreSQL connection string (expected postgres://...): {error}"))
    })?;
    if connection.get_connect_timeout().is_none() {
        connection.connect_timeout(POSTGRES_CONNECT_TIMEOUT);
    }
    connection.application_name("livebase");
    Ok(connection)
}

fn connect(connection: &postgres::Config, schema: &str) -> Result<Client, OpenError> {
    let mut client = connection.connect(NoTls).map_err(|error| postgres_error("connecting", &error))?;
    // Checked in `connection_config` to be a plain identifier, so quoting it is enough.
    client
        .batch_execute(&format!("SET search_path TO \"{schema}\"; SET synchronous_commit TO on"))
        .map_err(|error| postgres_error("setting up the connection", &error))?;
    Ok(client)
}

fn postgres_error(doing: &str, error: &postgres::Error) -> OpenError {
    OpenError::Postgres(format!("{doing}: {}", describe(error)))
}

/// The server's message when there is one (the `Display` of `postgres::Error` is often just "db error").
fn describe(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => error.to_string(),
    }
}

fn create_tables(client: &mut Client, schema: &str) -> Result<(), OpenError> {
    let setup = |client: &mut Client| -> Result<(), postgres::Error> {
        let mut transaction = client.transaction()?;
        // Two nodes starting at once would race on `CREATE ... IF NOT EXISTS`; take turns.
        transaction.execute("SELECT pg_advisory_xact_lock(hashtext('livebase schema ' || $1::text))", &[&schema])?;
        transaction.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS \"{schema}\";
             CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value bigint NOT NULL);
             CREATE TABLE IF NOT EXISTS secrets (name text PRIMARY KEY, value bytea NOT NULL);
             CREATE TABLE IF NOT EXISTS log (ts bigint PRIMARY KEY, entry bytea NOT NULL);
             CREATE TABLE IF NOT EXISTS documents (
                 table_number bigint NOT NULL, internal_id bytea NOT NULL, document bytea NOT NULL,
                 PRIMARY KEY (table_number, internal_id));
             CREATE TABLE IF NOT EXISTS lease (
                 id int PRIMARY KEY CHECK (id = 1), holder text NOT NULL, epoch bigint NOT NULL,
                 expires_at timestamptz NOT NULL);
             INSERT INTO lease (id, holder, epoch, expires_at) VALUES (1, '', 0, '-infinity') ON CONFLICT DO NOTHING;
             INSERT INTO meta (key, value) VALUES ('checkpoint_ts', 0) ON CONFLICT DO NOTHING;"
        ))?;
        transaction.execute(
            "INSERT INTO meta (key, value) VALUES ('format_version', $1) ON CONFLICT DO NOTHING",
            &[&FORMAT_VERSION],
        )?;
        let secret: [u8; 32] = rand::random();
        transaction.execute(
            "INSERT INTO secrets (name, value) VALUES ('instance', $1) ON CONFLICT DO NOTHING",
            &[&&secret[..]],
        )?;
        transaction.commit()
    };
    setup(client).map_err(|error| postgres_error(&format!("creating the tables in schema `{schema}`"), &error))
}

/// Who holds the lease, for the error another writer gets: host, process and a random tag.
fn holder_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "unknown host".to_owned());
    format!("{host} pid {} #{:08x}", std::process::id(), rand::random::<u32>())
}

/// Takes the lease if it is free or expired, bumping the epoch; returns the new epoch.
fn take_lease(client: &mut Client, holder: &str, config: &PostgresConfig) -> Result<i64, OpenError> {
    let deadline = Instant::now() + config.lease_wait;
    loop {
        let attempt = |client: &mut Client| -> Result<Result<i64, OpenError>, postgres::Error> {
            let mut transaction = client.transaction()?;
            let row = transaction.query_one(
                "SELECT holder, epoch, CASE WHEN expires_at > now() THEN extract(epoch FROM expires_at - now())::float8 ELSE 0 END
                 FROM lease WHERE id = 1 FOR UPDATE",
                &[],
            )?;
            let (current, epoch, remaining): (String, i64, f64) = (row.get(0), row.get(1), row.get(2));
            if remaining > 0.0 {
                let remaining = Duration::from_secs_f64(remaining);
                return Ok(Err(OpenError::Leased { holder: current, epoch, remaining }));
            }
            let row = transaction.query_one(
                "UPDATE lease SET holder = $1, epoch = epoch + 1, expires_at = now() + make_interval(secs => $2)
                 WHERE id = 1 RETURNING epoch",
                &[&holder, &config.lease_ttl.as_secs_f64()],
            )?;
            transaction.commit()?;
            Ok(Ok(row.get(0)))
        };
        match attempt(client).map_err(|error| postgres_error("taking the writer lease", &error))? {
            Err(OpenError::Leased { remaining, .. }) if Instant::now() < deadline => {
                let until_deadline = deadline.saturating_duration_since(Instant::now());
                std::thread::sleep(remaining.min(until_deadline).min(LEASE_POLL_INTERVAL));
            }
            result => return result,
        }
    }
}

/// Reads the checkpoint and the log after it, in one consistent snapshot of the database.
fn recover(client: &mut Client) -> Result<Recovered, OpenError> {
    let read = |client: &mut Client| -> Result<Result<Recovered, OpenError>, postgres::Error> {
        let mut transaction =
            client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start()?;
        let format: i64 = transaction.query_one("SELECT value FROM meta WHERE key = 'format_version'", &[])?.get(0);
        if format != FORMAT_VERSION {
            return Ok(Err(OpenError::Corrupt(format!(
                "PostgreSQL schema holds data format version {format}, this build reads version {FORMAT_VERSION}"
            ))));
        }
        let secret: Vec<u8> = transaction.query_one("SELECT value FROM secrets WHERE name = 'instance'", &[])?.get(0);
        let Ok(secret) = <[u8; 32]>::try_from(secret) else {
            return Ok(Err(OpenError::Corrupt("the instance secret is not 32 bytes".into())));
        };
        let checkpoint_ts: i64 =
            transaction.query_one("SELECT value FROM meta WHERE key = 'checkpoint_ts'", &[])?.get(0);
        let checkpoint_ts = match timestamp_from_sql(checkpoint_ts) {
            Ok(ts) => ts,
            Err(error) => return Ok(Err(error)),
        };
        let mut checkpoint = Vec::new();
        for row in transaction.query(
            "SELECT table_number, internal_id, document FROM documents ORDER BY table_number, internal_id",
            &[],
        )? {
            let internal: &[u8] = row.get(1);
            match document_id(row.get(0), internal) {
                Ok(id) => checkpoint.push((id, row.get(2))),
                Err(error) => return Ok(Err(OpenError::Corrupt(error))),
            }
        }
        let mut log = Vec::new();
        for row in transaction
            .query("SELECT ts, entry FROM log WHERE ts > $1 ORDER BY ts", &[&timestamp_to_sql(checkpoint_ts)])?
        {
            let pushed = timestamp_from_sql(row.get(0))
                .and_then(|group_ts| push_log_entry(&mut log, checkpoint_ts, group_ts, row.get(1)));
            if let Err(error) = pushed {
                return Ok(Err(error));
            }
        }
        transaction.commit()?;
        Ok(Ok(Recovered { checkpoint, checkpoint_ts, log, secret }))
    };
    read(client).map_err(|error| postgres_error("reading the checkpoint and the log", &error))?
}

/// `statement` with the lease check in front, in the same statement (so the same transaction): the
/// common table `held` has a row only while the lease with epoch `$1` is ours and unexpired, and
/// locks it so no takeover commits until the statement's transaction ends. `statement` continues
/// after `WITH held AS (...)`.
fn fenced(statement: &str) -> String {
    format!(
        "WITH held AS (SELECT 1 FROM lease WHERE id = 1 AND epoch = $1 AND expires_at > now() FOR SHARE) {statement}"
    )
}

/// Why a fenced write did nothing: names whoever holds the lease now.
fn lease_lost(client: &mut Client, epoch: i64, writing: &str) -> String {
    let holder = client
        .query_one("SELECT holder, epoch, expires_at > now() FROM lease WHERE id = 1", &[])
        .map(|row| match (row.get::<_, String>(0), row.get::<_, i64>(1), row.get::<_, bool>(2)) {
            (_, current, _) if current == epoch => "it expired before it was renewed".to_owned(),
            (holder, current, true) => format!("writer {holder} holds it now (epoch {current})"),
            (_, current, false) => format!("it was taken over (epoch {current}) and has since expired"),
        })
        .unwrap_or_else(|error| format!("reading the lease failed: {}", describe(&error)));
    format!("{writing} refused: this writer lost its PostgreSQL lease (epoch {epoch}): {holder}")
}

impl Log for PostgresLog {
    fn append(&mut self, commits: &[(Timestamp, &[StoredWrite])]) -> Result<(), String> {
        let writing = format!("appending {} commits to the log", commits.len());
        if self.lease.lost() {
            // Described afresh: who holds the lease may have changed since the renewer noticed.
            return Err(lease_lost(&mut self.client, self.epoch, &writing));
        }
        let (last_ts, _) = commits.last().expect("groups are not empty");
        let inserted = self
            .client
            .execute(
                &fenced("INSERT INTO log (ts, entry) SELECT $2, $3 FROM held"),
                &[&self.epoch, &timestamp_to_sql(*last_ts), &encode_group(commits)],
            )
            .map_err(|error| format!("{writing} failed: {}", describe(&error)))?;
        if inserted == 0 {
            return Err(lease_lost(&mut self.client, self.epoch, &writing));
        }
        Ok(())
    }

    fn truncate(&mut self, ts: Timestamp) -> Result<(), String> {
        let writing = format!("truncating the log up to {ts}");
        let held: bool = self
            .client
            .query_one(
                &fenced(
                    ", deleted AS (DELETE FROM log WHERE ts <= $2 AND EXISTS (SELECT 1 FROM held))
                     SELECT EXISTS (SELECT 1 FROM held)",
                ),
                &[&self.epoch, &timestamp_to_sql(ts)],
            )
            .map(|row| row.get(0))
            .map_err(|error| format!("{writing} failed: {}", describe(&error)))?;
        if !held {
            return Err(lease_lost(&mut self.client, self.epoch, &writing));
        }
        Ok(())
    }
}

impl Checkpoints for PostgresCheckpoints {
    fn write(&mut self, ts: Timestamp, latest: &LatestVersions) -> Result<(), String> {
        let writing = format!("checkpoint at {ts}");
        let epoch = self.epoch;
        let write = |client: &mut Client| -> Result<bool, postgres::Error> {
            let mut transaction = client.transaction()?;
            // Holding the lease row for the whole transaction: a takeover waits until it is done.
            let held = !transaction.query(&fenced("SELECT 1 FROM held"), &[&epoch])?.is_empty();
            if !held {
                return Ok(false);
            }
            let mut in_key_order: Vec<_> = latest.iter().collect();
            in_key_order.sort_unstable_by_key(|(id, _)| (id.table(), id.internal()));
            let (written, deleted): (Vec<_>, Vec<_>) =
                in_key_order.into_iter().partition(|(_, document)| document.is_some());
            let upsert = transaction.prepare(
                "INSERT INTO documents (table_number, internal_id, document)
                 SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bytea[])
                 ON CONFLICT (table_number, internal_id) DO UPDATE SET document = excluded.document",
            )?;
            for chunk in written.chunks(CHECKPOINT_ROWS_PER_STATEMENT) {
                let tables: Vec<i64> = chunk.iter().map(|(id, _)| i64::from(id.table().get())).collect();
                let internals: Vec<[u8; 16]> = chunk.iter().map(|(id, _)| id.internal()).collect();
                let internals: Vec<&[u8]> = internals.iter().map(|internal| &internal[..]).collect();
                let documents: Vec<&[u8]> =
                    chunk.iter().map(|(_, document)| document.as_deref().expect("partitioned")).collect();
                transaction.execute(&upsert, &[&tables, &internals, &documents])?;
            }
            let delete = transaction.prepare(
                "DELETE FROM documents WHERE (table_number, internal_id) IN
                 (SELECT * FROM unnest($1::bigint[], $2::bytea[]))",
            )?;
            for chunk in deleted.chunks(CHECKPOINT_ROWS_PER_STATEMENT) {
                let tables: Vec<i64> = chunk.iter().map(|(id, _)| i64::from(id.table().get())).collect();
                let internals: Vec<[u8; 16]> = chunk.iter().map(|(id, _)| id.internal()).collect();
                let internals: Vec<&[u8]> = internals.iter().map(|internal| &internal[..]).collect();
                transaction.execute(&delete, &[&tables, &internals])?;
            }
            transaction.execute("UPDATE meta SET value = $1 WHERE key = 'checkpoint_ts'", &[&timestamp_to_sql(ts)])?;
            transaction.commit()?;
            Ok(true)
        };
        match write(&mut self.client) {
            Ok(true) => Ok(()),
            Ok(false) => Err(lease_lost(&mut self.client, epoch, &writing)),
            Err(error) => Err(format!("{writing} failed: {}", describe(&error))),
        }
    }
}

/// Renews the lease from a thread of its own; releases it when dropped (a clean shutdown), so the
/// next writer need not wait for it to expire.
struct LeaseKeeper {
    /// Dropping it stops the renewer.
    stop: Option<Sender<()>>,
    renewer: Option<JoinHandle<()>>,
    /// Set by the renewer once the lease is lost.
    lost: Arc<AtomicBool>,
}

impl LeaseKeeper {
    fn start(renewer: Renewer) -> std::io::Result<LeaseKeeper> {
        let (stop, stopped) = std::sync::mpsc::channel();
        let lost = Arc::new(AtomicBool::new(false));
        let renewer = {
            let lost = Arc::clone(&lost);
            std::thread::Builder::new().name("livebase-lease".to_owned()).spawn(move || renewer.run(&stopped, &lost))?
        };
        Ok(LeaseKeeper { stop: Some(stop), renewer: Some(renewer), lost })
    }

    fn lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(renewer) = self.renewer.take() {
            let _ = renewer.join();
        }
    }
}

/// The lease renewer's thread.
struct Renewer {
    /// `None` after a failure: the next attempt reconnects.
    client: Option<Client>,
    connection: postgres::Config,
    schema: String,
    epoch: i64,
    ttl: Duration,
}

impl Renewer {
    fn run(mut self, stopped: &Receiver<()>, lost: &AtomicBool) {
        // Several attempts per TTL leave room for a few slow or failed ones.
        let interval = self.ttl / 4;
        // Nothing is ever sent: the sender's drop (shutdown) ends the wait early.
        while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
            match self.renew() {
                Ok(None) => {}
                Ok(Some(reason)) => {
                    tracing::error!(%reason, "the store stops committing");
                    lost.store(true, Ordering::Release);
                    return;
                }
                // The lease may still be ours; the next attempt tells. Commits check it themselves.
                Err(error) => {
                    tracing::warn!(%error, "renewing the PostgreSQL lease failed; retrying");
                    self.client = None;
                }
            }
        }
        // Released by making it expire in the past, only if it is still ours.
        let epoch = self.epoch;
        let released = self.client().and_then(|client| {
            client
                .execute("UPDATE lease SET expires_at = '-infinity' WHERE id = 1 AND epoch = $1", &[&epoch])
                .map_err(|error| describe(&error))
        });
        if let Err(error) = released {
            tracing::warn!(%error, "releasing the PostgreSQL lease failed; it expires on its own");
        }
    }

    /// Extends the lease; `Ok(Some(why))` once it is lost for good.
    fn renew(&mut self) -> Result<Option<String>, String> {
        let (epoch, ttl) = (self.epoch, self.ttl.as_secs_f64());
        let client = self.client()?;
        // Only an unexpired lease is renewed: once it expired, another writer may own the database.
        let renewed = client
            .execute(
                "UPDATE lease SET expires_at = now() + make_interval(secs => $2)
                 WHERE id = 1 AND epoch = $1 AND expires_at > now()",
                &[&epoch, &ttl],
            )
            .map_err(|error| describe(&error))?;
        Ok((renewed == 0).then(|| lease_lost(client, epoch, "renewing the lease")))
    }

    fn client(&mut self) -> Result<&mut Client, String> {
        if self.client.is_none() {
            self.client = Some(connect(&self.connection, &self.schema).map_err(|error| error.to_string())?);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }
}
