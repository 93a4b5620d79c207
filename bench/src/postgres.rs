//! PostgreSQL, what a user would pick instead, running the same workloads on the same machine:
//! transfers as SERIALIZABLE transactions retried on serialization failure, and small durable
//! inserts. Its tables are prefixed `bench_` and dropped afterwards.
//!
//! The server is found at `LIVEBASE_BENCH_POSTGRES` (a libpq-style connection string), by default
//! `host=127.0.0.1 port=5432 user=postgres dbname=test`. Without one the scenarios say so and are
//! skipped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres::{IsolationLevel, NoTls};

use crate::transfer::{AccountPicker, Distribution, TransferRun};

pub(crate) const DEFAULT_CONNECTION: &str = "host=127.0.0.1 port=5432 user=postgres dbname=test";
/// Beyond this many serialization failures in a row a transfer is counted as failed, as the
/// engine gives up after `MAX_TRANSACTION_ATTEMPTS`.
const MAX_ATTEMPTS: usize = 64;
/// The first retry pauses up to this long, each next one up to twice as long as the one before,
/// up to `MAX_RETRY_PAUSE_MICROS`.
const RETRY_PAUSE_MICROS: u64 = 100;
const MAX_RETRY_PAUSE_MICROS: u64 = 10_000;

/// Connections to the benchmark's PostgreSQL, or why there are none.
pub struct Postgres {
    pool: Pool,
    /// `fsync` and `synchronous_commit`, shown next to the figures: they decide what a commit costs.
    pub settings: String,
}

impl Postgres {
    /// Connects with up to `connections` connections; `Err` says why PostgreSQL can't be used.
    pub async fn connect(connections: usize) -> Result<Postgres, String> {
        let text = std::env::var("LIVEBASE_BENCH_POSTGRES").unwrap_or_else(|_| DEFAULT_CONNECTION.to_owned());
        let config: tokio_postgres::Config = text.parse().map_err(|error| format!("bad connection string: {error}"))?;
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager).max_size(connections).build().map_err(|error| error.to_string())?;
        let client = pool.get().await.map_err(|error| format!("no PostgreSQL at `{text}`: {error}"))?;
        let mut settings = Vec::new();
        for setting in ["server_version", "fsync", "synchronous_commit"] {
            let row = client.query_one(&format!("SHOW {setting}"), &[]).await.map_err(|error| error.to_string())?;
            settings.push(format!("{setting}={}", row.get::<_, String>(0)));
        }
        Ok(Postgres { pool, settings: settings.join(", ") })
    }

    async fn client(&self) -> Object {
        self.pool.get().await.expect("a pooled PostgreSQL connection")
    }

    async fn execute(&self, sql: &str) {
        self.client().await.batch_execute(sql).await.unwrap_or_else(|error| panic!("`{sql}`: {}", describe(&error)));
    }

    /// Creates `bench_accounts` with `count` accounts of `balance` each.
    pub async fn create_accounts(&self, count: usize, balance: i64) {
        self.execute(&format!(
            "DROP TABLE IF EXISTS bench_accounts;
             CREATE TABLE bench_accounts (id integer PRIMARY KEY, balance bigint NOT NULL);
             INSERT INTO bench_accounts SELECT n, {balance} FROM generate_series(0, {}) AS n;",
            count - 1
        ))
        .await;
        // VACUUM may not share a transaction with other statements.
        self.execute("VACUUM ANALYZE bench_accounts").await;
    }

    pub async fn total_balance(&self) -> i64 {
        let client = self.client().await;
        let row = client.query_one("SELECT sum(balance)::bigint FROM bench_accounts", &[]).await.expect("sum");
        row.get(0)
    }

    pub async fn drop_tables(&self) {
        self.execute("DROP TABLE IF EXISTS bench_accounts; DROP TABLE IF EXISTS bench_inserts;").await;
    }

    /// `clients` connections each run one SERIALIZABLE transfer at a time for `duration`.
    pub async fn transfers(
        &self,
        clients: usize,
        accounts: usize,
        distribution: Distribution,
        duration: Duration,
    ) -> TransferRun {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for client_number in 0..clients {
            let mut client = self.client().await;
            let stop = Arc::clone(&stop);
            let mut picker = AccountPicker::new(accounts, distribution, client_number as u64);
            tasks.push(tokio::spawn(async move {
                let mut run = TransferRun::default();
                while !stop.load(Ordering::Relaxed) {
                    let (from, to) = picker.pick();
                    let started = Instant::now();
                    match transfer(&mut client, from as i32, to as i32, &mut run.retries).await {
                        Ok(()) => run.latencies_micros.push(started.elapsed().as_micros() as u64),
                        Err(error) => run.failure(error),
                    }
                }
                run
            }));
        }
        let started = Instant::now();
        tokio::time::sleep(duration).await;
        stop.store(true, Ordering::Relaxed);
        let mut total = TransferRun::default();
        for task in tasks {
            total.merge(task.await.expect("transfer client"));
        }
        total.elapsed = started.elapsed();
        total
    }

    /// `clients` connections each insert one small row per transaction (autocommit) for
    /// `duration`; returns commits per second.
    pub async fn inserts(&self, clients: usize, duration: Duration) -> f64 {
        self.execute(
            "DROP TABLE IF EXISTS bench_inserts;
             CREATE TABLE bench_inserts (id bigserial PRIMARY KEY, writer integer NOT NULL, sequence bigint NOT NULL);",
        )
        .await;
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for writer in 0..clients as i32 {
            let client = self.client().await;
            let stop = Arc::clone(&stop);
            tasks.push(tokio::spawn(async move {
                let insert = client
                    .prepare_cached("INSERT INTO bench_inserts (writer, sequence) VALUES ($1, $2)")
                    .await
                    .expect("prepare");
                let mut sequence = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    client.execute(&insert, &[&writer, &sequence]).await.expect("insert");
                    sequence += 1;
                }
                sequence as u64
            }));
        }
        let started = Instant::now();
        tokio::time::sleep(duration).await;
        stop.store(true, Ordering::Relaxed);
        let mut commits = 0;
        for task in tasks {
            commits += task.await.expect("insert client");
        }
        commits as f64 / started.elapsed().as_secs_f64()
    }
}

/// The server's own message when there is one: `Display` of a server error says only "db error".
fn describe(error: &tokio_postgres::Error) -> String {
    error.as_db_error().map_or_else(|| error.to_string(), |db| format!("{}: {}", db.code().code(), db.message()))
}

/// One transfer, retried from the start on serialization failures and deadlocks.
async fn transfer(client: &mut Object, from: i32, to: i32, retries: &mut u64) -> Result<(), String> {
    for attempt in 0..MAX_ATTEMPTS {
        match try_transfer(client, from, to).await {
            Ok(()) => return Ok(()),
            Err(error)
                if error.code() == Some(&SqlState::T_R_SERIALIZATION_FAILURE)
                    || error.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED) =>
            {
                *retries += 1;
                // Backing off with jitter, as applications do: retrying at once under contention
                // only conflicts again.
                let ceiling = (RETRY_PAUSE_MICROS << attempt.min(8)).min(MAX_RETRY_PAUSE_MICROS);
                tokio::time::sleep(Duration::from_micros(rand::random_range(0..ceiling))).await;
            }
            Err(error) => return Err(describe(&error)),
        }
    }
    Err(format!("still conflicting after {MAX_ATTEMPTS} attempts"))
}

async fn try_transfer(client: &mut Object, from: i32, to: i32) -> Result<(), tokio_postgres::Error> {
    let select = client.prepare_cached("SELECT balance FROM bench_accounts WHERE id = $1").await?;
    let update = client.prepare_cached("UPDATE bench_accounts SET balance = $2 WHERE id = $1").await?;
    let transaction = client.build_transaction().isolation_level(IsolationLevel::Serializable).start().await?;
    let from_balance: i64 = transaction.query_one(&select, &[&from]).await?.get(0);
    let to_balance: i64 = transaction.query_one(&select, &[&to]).await?.get(0);
    let amount = 1i64;
    assert!(from_balance >= amount, "balances are large enough for every run");
    transaction.execute(&update, &[&from, &(from_balance - amount)]).await?;
    transaction.execute(&update, &[&to, &(to_balance + amount)]).await?;
    transaction.commit().await
}
