//! The commit log and checkpoints in PostgreSQL, for running the writer on a machine without
//! durable local disk, or handing the database from one writer node to another.
//!
//! Tables, in one schema of the configured database (`livebase` unless configured):
//! - `log(ts, entry, epoch)`: one row per group commit, the same encoding as the SQLite log, with the
//!   lease epoch of the writer that appended it (null in rows written before the column existed);
//! - `documents(table_number, internal_id, document)`: the checkpoint;
//! - `meta` (format version, checkpoint timestamp), `secrets` (the instance secret);
//! - `lease(holder, epoch, expires_at, advertise_url)`: one row naming the writer allowed to commit,
//!   and where its API is reached (for replicas forwarding mutations);
//! - `replicas(node_id, applied_ts, seen_at)`: each read replica's position, for log retention.
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
//! Read replicas (`open_postgres_replica`) take no lease and write nothing but their own row in
//! `replicas`. They load the checkpoint and the log after it in one read-only snapshot, then follow
//! the log: the writer's append does `NOTIFY` on `NOTIFY_CHANNEL` in its own transaction, waking
//! them, and they poll every `REPLICA_POLL_INTERVAL` in case a notification was lost (reconnection).
//! The writer truncates the log only behind the oldest live replica's position (but keeps no more
//! than `PostgresConfig::replica_log_rows` groups beyond its checkpoint for them), and records how far
//! it truncated in `meta.truncated_ts`: a replica that finds its next group truncated reloads.
//!
//! Each of the writer's three users (durability thread, checkpointer, lease renewer) and a replica's
//! tail thread owns one connection for its whole life, so there is nothing for a pool to share. The `postgres` crate drives each
//! connection with a small current-thread tokio runtime of its own, inside the call: the engine's
//! threads stay plain threads.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use postgres::config::Host;
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, IsolationLevel, NoTls};

use super::{
    AppendError, Checkpoints, FORMAT_VERSION, LatestVersions, Log, Recovered, StoredWrite, document_id, encode_group,
    push_log_entry, timestamp_from_sql, timestamp_to_sql,
};
use crate::Timestamp;
use crate::background::Background;
use crate::error::OpenError;
use crate::limits::{
    LEASE_POLL_INTERVAL, LEASE_TTL, MAX_LEASE_WAIT, MAX_REPLICA_LOG_ROWS, MIN_LEASE_TTL, POSTGRES_CONNECT_TIMEOUT,
    REPLICA_EXPIRY, REPLICA_LOG_ROWS, REPLICA_TAIL_BATCH,
};

/// The schema Livebase's tables live in unless configured otherwise.
pub const DEFAULT_POSTGRES_SCHEMA: &str = "livebase";
/// PostgreSQL's longest identifier.
const MAX_SCHEMA_NAME_LENGTH: usize = 63;
/// Documents upserted (or deleted) by one statement of a checkpoint: few round trips, bounded
/// statement size.
const CHECKPOINT_ROWS_PER_STATEMENT: usize = 1_000;
/// The channel the writer notifies on when it appends to the log; the payload is the schema, so
/// replicas of other schemas in the same database ignore it.
const NOTIFY_CHANNEL: &str = "livebase_log";

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
    /// A writer's API URL as other nodes reach it, stored with its lease so read replicas can
    /// forward mutations to it (`Store::writer_url`). Unused on a replica.
    pub advertise_url: Option<String>,
    /// Log groups a writer keeps beyond its checkpoint for lagging read replicas, at most (up to
    /// `MAX_REPLICA_LOG_ROWS`); a replica further behind reloads the checkpoint.
    pub replica_log_rows: usize,
}

impl PostgresConfig {
    pub fn new(url: impl Into<String>) -> PostgresConfig {
        PostgresConfig {
            url: url.into(),
            schema: DEFAULT_POSTGRES_SCHEMA.to_owned(),
            lease_ttl: LEASE_TTL,
            lease_wait: Duration::ZERO,
            advertise_url: None,
            replica_log_rows: REPLICA_LOG_ROWS,
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
    schema: String,
    replica_log_rows: usize,
}

pub(crate) struct PostgresCheckpoints {
    client: Client,
    epoch: i64,
}

/// The writer's log as a read replica follows it (see the module documentation).
pub(crate) struct PostgresReplica {
    /// `None` after a failure: the next call reconnects (and listens again).
    client: Option<Client>,
    connection: postgres::Config,
    schema: String,
    /// This replica's row in `replicas`: random per open, so a restarted replica starts afresh and
    /// the row of the one it replaces expires.
    node_id: String,
}

/// What a replica finds after the position it has applied.
pub(crate) enum Tail {
    /// The next log groups, oldest first, each the commits of one group in timestamp order (at most
    /// `REPLICA_TAIL_BATCH` groups: fewer means there is no more for now).
    Groups(Vec<Vec<(Timestamp, Vec<StoredWrite>)>>),
    /// The log it needs was truncated: the whole state, read in one snapshot.
    Reload(Recovered),
}

/// Connects, creates the tables if needed, takes the writer lease and reads back the contents.
pub(crate) fn open_postgres(
    config: &PostgresConfig,
) -> Result<(PostgresLog, PostgresCheckpoints, Recovered), OpenError> {
    on_plain_thread(config, || open_on_this_thread(config))
}

fn open_on_this_thread(config: &PostgresConfig) -> Result<(PostgresLog, PostgresCheckpoints, Recovered), OpenError> {
    let connection = connection_config(config)?;
    let mut client = connect(&connection, &config.schema)?;
    create_tables(&mut client, &config.schema)?;
    let holder = node_name();
    let epoch = take_lease(&mut client, &holder, config)?;
    let recovered = in_snapshot(&mut client, read_state)?;
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
    let log =
        PostgresLog { client, epoch, lease, schema: config.schema.clone(), replica_log_rows: config.replica_log_rows };
    Ok((log, checkpoints, recovered))
}

/// Connects as a read replica: listens for the writer's appends, then reads the checkpoint and the
/// log after it in one snapshot (so no append between the two is missed), and registers.
pub(crate) fn open_postgres_replica(config: &PostgresConfig) -> Result<(PostgresReplica, Recovered), OpenError> {
    on_plain_thread(config, || {
        let connection = connection_config(config)?;
        let mut client = connect(&connection, &config.schema)?;
        // Created by the replica too, so it may start before the first writer ever has.
        create_tables(&mut client, &config.schema)?;
        listen(&mut client).map_err(|error| postgres_error("listening for the writer's commits", &error))?;
        let recovered = in_snapshot(&mut client, read_state)?;
        let mut replica =
            PostgresReplica { client: Some(client), connection, schema: config.schema.clone(), node_id: node_name() };
        let applied = recovered.log.last().map_or(recovered.checkpoint_ts, |(ts, _)| *ts);
        replica.heartbeat(applied).map_err(OpenError::Postgres)?;
        tracing::info!(%config, node = %replica.node_id, ts = %applied, "opened a read replica");
        Ok((replica, recovered))
    })
}

/// The advertised API URL of the writer holding the lease on `config`'s schema, if its lease has not
/// expired by the database's clock. `client` is a connection kept between calls (made when `None`).
pub(crate) fn writer_url(config: &PostgresConfig, client: &mut Option<Client>) -> Result<Option<String>, String> {
    on_plain_thread(config, || {
        if client.is_none() {
            *client = Some(connect(&connection_config(config)?, &config.schema)?);
        }
        let connected = client.as_mut().expect("connected above");
        let url = connected
            .query_opt("SELECT advertise_url FROM lease WHERE id = 1 AND expires_at > now() AND holder <> ''", &[])
            .map(|row| row.and_then(|row| row.get::<_, Option<String>>(0)));
        url.map_err(|error| {
            *client = None; // Reconnect next time.
            postgres_error("reading the writer's lease", &error)
        })
    })
    .map_err(|error| error.to_string())
}

/// Runs `work` on a plain thread: each `postgres` call blocks on a runtime of its own, which tokio
/// refuses to do on a thread already running an async runtime (as the caller's may be).
fn on_plain_thread<T: Send>(
    config: &PostgresConfig,
    work: impl FnOnce() -> Result<T, OpenError> + Send,
) -> Result<T, OpenError> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("livebase-postgres".to_owned())
            .spawn_scoped(scope, work)
            .map_err(|source| OpenError::Io { path: config.to_string(), source })?
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
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
    if config.replica_log_rows > MAX_REPLICA_LOG_ROWS {
        return Err(OpenError::Config(format!(
            "keeping {} log groups for replicas is over the maximum {MAX_REPLICA_LOG_ROWS}",
            config.replica_log_rows
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
        // Two nodes starting at once would race on `CREATE ... IF NOT EXISTS`; take turns. A log
        // made before it had `epoch` gets the column; checked first, since even `ADD COLUMN IF NOT
        // EXISTS` locks the table exclusively, stalling the writer's appends behind replicas' reads.
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
             DO $$ BEGIN
                 IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                                WHERE table_schema = '{schema}' AND table_name = 'log' AND column_name = 'epoch') THEN
                     ALTER TABLE log ADD COLUMN epoch bigint;
                 END IF;
             END $$;
             INSERT INTO lease (id, holder, epoch, expires_at) VALUES (1, '', 0, '-infinity') ON CONFLICT DO NOTHING;
             ALTER TABLE lease ADD COLUMN IF NOT EXISTS advertise_url text;
             CREATE TABLE IF NOT EXISTS replicas (
                 node_id text PRIMARY KEY, applied_ts bigint NOT NULL, seen_at timestamptz NOT NULL);
             INSERT INTO meta (key, value) VALUES ('checkpoint_ts', 0) ON CONFLICT DO NOTHING;
             INSERT INTO meta (key, value) VALUES ('truncated_ts', 0) ON CONFLICT DO NOTHING;"
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

/// Names this node (the lease holder, a replica's row): host, process and a random tag.
fn node_name() -> String {
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
                "UPDATE lease SET holder = $1, epoch = epoch + 1, expires_at = now() + make_interval(secs => $2),
                     advertise_url = $3
                 WHERE id = 1 RETURNING epoch",
                &[&holder, &config.lease_ttl.as_secs_f64(), &config.advertise_url],
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

/// Runs `read` in one read-only, repeatable-read transaction: everything it reads is one consistent
/// snapshot of the database. (The outer error is PostgreSQL's, the inner one about the data.)
fn in_snapshot<T>(
    client: &mut Client,
    read: impl FnOnce(&mut postgres::Transaction<'_>) -> Result<Result<T, OpenError>, postgres::Error>,
) -> Result<T, OpenError> {
    let run = |client: &mut Client| -> Result<Result<T, OpenError>, postgres::Error> {
        let mut transaction =
            client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start()?;
        let result = read(&mut transaction)?;
        transaction.commit()?;
        Ok(result)
    };
    run(client).map_err(|error| postgres_error("reading the checkpoint and the log", &error))?
}

/// Reads the checkpoint and the log after it.
fn read_state(transaction: &mut postgres::Transaction<'_>) -> Result<Result<Recovered, OpenError>, postgres::Error> {
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
    let checkpoint_ts = match read_meta_ts(transaction, "checkpoint_ts")? {
        Ok(ts) => ts,
        Err(error) => return Ok(Err(error)),
    };
    let mut checkpoint = Vec::new();
    for row in transaction
        .query("SELECT table_number, internal_id, document FROM documents ORDER BY table_number, internal_id", &[])?
    {
        let internal: &[u8] = row.get(1);
        match document_id(row.get(0), internal) {
            Ok(id) => checkpoint.push((id, row.get(2))),
            Err(error) => return Ok(Err(OpenError::Corrupt(error))),
        }
    }
    let mut log = Vec::new();
    for row in
        transaction.query("SELECT ts, entry FROM log WHERE ts > $1 ORDER BY ts", &[&timestamp_to_sql(checkpoint_ts)])?
    {
        let pushed = timestamp_from_sql(row.get(0))
            .and_then(|group_ts| push_log_entry(&mut log, checkpoint_ts, group_ts, row.get(1)));
        if let Err(error) = pushed {
            return Ok(Err(error));
        }
    }
    Ok(Ok(Recovered { checkpoint, checkpoint_ts, log, secret }))
}

fn read_meta_ts(
    transaction: &mut postgres::Transaction<'_>,
    key: &str,
) -> Result<Result<Timestamp, OpenError>, postgres::Error> {
    let value: i64 = transaction.query_one("SELECT value FROM meta WHERE key = $1", &[&key])?.get(0);
    Ok(timestamp_from_sql(value))
}

fn listen(client: &mut Client) -> Result<(), postgres::Error> {
    client.batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}"))
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
    fn append(&mut self, commits: &[(Timestamp, &[StoredWrite])]) -> Result<(), AppendError> {
        let writing = format!("appending {} commits to the log", commits.len());
        if self.lease.lost() {
            // Described afresh: who holds the lease may have changed since the renewer noticed.
            return Err(AppendError::Fenced(lease_lost(&mut self.client, self.epoch, &writing)));
        }
        let (last_ts, _) = commits.last().expect("groups are not empty");
        // The notification goes out when (and only if) the insert commits, in the same statement.
        // The row records the epoch it was fenced by: which writer appended it.
        let inserted = self
            .client
            .query(
                &fenced(&format!(
                    ", inserted AS (INSERT INTO log (ts, entry, epoch) SELECT $2, $3, $1 FROM held RETURNING ts)
                     SELECT pg_notify('{NOTIFY_CHANNEL}', $4) FROM inserted"
                )),
                &[&self.epoch, &timestamp_to_sql(*last_ts), &encode_group(commits), &self.schema],
            )
            .map_err(|error| AppendError::Failed(format!("{writing} failed: {}", describe(&error))))?;
        if inserted.is_empty() {
            return Err(AppendError::Fenced(lease_lost(&mut self.client, self.epoch, &writing)));
        }
        Ok(())
    }

    /// Keeps the log live replicas still need: truncates only up to the oldest position a replica
    /// seen in the last `REPLICA_EXPIRY` reported, unless that would keep more than
    /// `replica_log_rows` groups at or before `ts`. Records the point in `meta.truncated_ts`, in the
    /// same statement, for replicas to tell a truncated log from an idle one.
    fn truncate(&mut self, ts: Timestamp) -> Result<(), String> {
        let writing = format!("truncating the log up to {ts}");
        let kept_for_replicas = i64::try_from(self.replica_log_rows).expect("validated at most MAX_REPLICA_LOG_ROWS");
        let held: bool = self
            .client
            .query_one(
                &fenced(
                    ", point AS (SELECT LEAST($2, GREATEST(
                         COALESCE((SELECT min(applied_ts) FROM replicas
                                   WHERE seen_at > now() - make_interval(secs => $3)), $2),
                         COALESCE((SELECT ts FROM log WHERE ts <= $2 ORDER BY ts DESC OFFSET $4 LIMIT 1), 0)
                       )) AS ts FROM held),
                     deleted AS (DELETE FROM log WHERE ts <= (SELECT ts FROM point)),
                     marked AS (UPDATE meta SET value = GREATEST(value, (SELECT ts FROM point))
                                WHERE key = 'truncated_ts' AND EXISTS (SELECT 1 FROM point))
                     SELECT EXISTS (SELECT 1 FROM held)",
                ),
                &[&self.epoch, &timestamp_to_sql(ts), &REPLICA_EXPIRY.as_secs_f64(), &kept_for_replicas],
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

impl PostgresReplica {
    /// What follows `applied` (the last group applied, or the checkpoint loaded), read in one snapshot.
    pub(crate) fn read_after(&mut self, applied: Timestamp) -> Result<Tail, String> {
        let client = self.client()?;
        let read = |transaction: &mut postgres::Transaction<'_>| {
            let truncated = match read_meta_ts(transaction, "truncated_ts")? {
                Ok(ts) => ts,
                Err(error) => return Ok(Err(error)),
            };
            // Truncation points are group timestamps, so the group ending at `truncated` existed and
            // is gone: if it comes after `applied`, so may others this replica has not seen.
            if applied < truncated {
                return read_state(transaction).map(|state| state.map(Tail::Reload));
            }
            let rows = transaction.query(
                "SELECT ts, entry FROM log WHERE ts > $1 ORDER BY ts LIMIT $2",
                &[&timestamp_to_sql(applied), &(REPLICA_TAIL_BATCH as i64)],
            )?;
            let mut groups = Vec::with_capacity(rows.len());
            let mut previous = applied;
            for row in rows {
                let mut group = Vec::new();
                let pushed = timestamp_from_sql(row.get(0))
                    .and_then(|group_ts| push_log_entry(&mut group, previous, group_ts, row.get(1)).map(|()| group_ts));
                match pushed {
                    Ok(group_ts) => previous = group_ts,
                    Err(error) => return Ok(Err(error)),
                }
                groups.push(group);
            }
            Ok(Ok(Tail::Groups(groups)))
        };
        in_snapshot(client, read).map_err(|error| {
            if matches!(error, OpenError::Postgres(_)) {
                self.client = None;
            }
            error.to_string()
        })
    }

    /// Waits up to `timeout` for the writer's next append; true if one (or more) was notified.
    pub(crate) fn wait(&mut self, timeout: Duration) -> Result<bool, String> {
        let schema = self.schema.clone();
        let client = self.client()?;
        let first = client.notifications().timeout_iter(timeout).next();
        // One read serves every append notified so far: take the rest without waiting.
        let received = first.and_then(|first| {
            let rest = client.notifications().iter().collect::<Vec<_>>()?;
            Ok(first.into_iter().chain(rest).any(|notification| notification.payload() == schema))
        });
        received.or_else(|error| self.disconnected(&error))
    }

    /// Records how far this replica has applied, so the writer keeps the log after it.
    pub(crate) fn heartbeat(&mut self, applied: Timestamp) -> Result<(), String> {
        let node = self.node_id.clone();
        let client = self.client()?;
        let recorded = client.execute(
            "INSERT INTO replicas (node_id, applied_ts, seen_at) VALUES ($1, $2, now())
             ON CONFLICT (node_id) DO UPDATE SET applied_ts = excluded.applied_ts, seen_at = excluded.seen_at",
            &[&node, &timestamp_to_sql(applied)],
        );
        recorded.map(drop).or_else(|error| self.disconnected(&error))
    }

    /// Removes this replica's row (a clean shutdown), so the writer need not wait for it to expire.
    pub(crate) fn unregister(&mut self) {
        let node = self.node_id.clone();
        let removed = self.client().and_then(|client| {
            client.execute("DELETE FROM replicas WHERE node_id = $1", &[&node]).map_err(|error| describe(&error))
        });
        if let Err(error) = removed {
            tracing::warn!(%error, "unregistering the read replica failed; its row expires on its own");
        }
    }

    fn disconnected<T>(&mut self, error: &postgres::Error) -> Result<T, String> {
        self.client = None;
        Err(describe(error))
    }

    fn client(&mut self) -> Result<&mut Client, String> {
        if self.client.is_none() {
            let mut client = connect(&self.connection, &self.schema).map_err(|error| error.to_string())?;
            listen(&mut client).map_err(|error| describe(&error))?;
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }
}

/// Renews the lease from a thread of its own; releases it when dropped (a clean shutdown), so the
/// next writer need not wait for it to expire.
struct LeaseKeeper {
    /// Dropping it stops the renewer.
    _renewer: Background,
    /// Set by the renewer once the lease is lost.
    lost: Arc<AtomicBool>,
}

impl LeaseKeeper {
    fn start(renewer: Renewer) -> std::io::Result<LeaseKeeper> {
        let lost = Arc::new(AtomicBool::new(false));
        let renewing = Arc::clone(&lost);
        let renewer = Background::spawn("livebase-lease", move |stopped| renewer.run(&stopped, &renewing))?;
        Ok(LeaseKeeper { _renewer: renewer, lost })
    }

    fn lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }
}

impl PostgresLog {
    /// Set (for good) once the lease renewer finds the lease lost; from then on every append is
    /// refused before it writes.
    pub(crate) fn lease_lost_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.lease.lost)
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
