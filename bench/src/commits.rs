//! Durable commits per second: the engine with 1, 8 and 64 concurrent writers, and SQLite alone doing
//! the engine's I/O with the same batching: one fsynced SQLite transaction per group, writing as many
//! bytes as the engine's group did. That is the physical limit the engine builds on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use livebase_store::{Store, StoreConfig};
use livebase_value::{Object, Value};

use crate::Effort;
use crate::report::Report;

const SECTION: &str = "Durable commits (storage engine, in-process)";
const WRITER_COUNTS: [usize; 3] = [1, 8, 64];

pub fn run(effort: Effort, report: &mut Report) {
    println!("{SECTION}");
    for writers in WRITER_COUNTS {
        let mut engine_rates = Vec::new();
        let mut raw_rates = Vec::new();
        let mut batch_sizes = Vec::new();
        let mut cpu_per_commit = Vec::new();
        let mut cores_busy = Vec::new();
        for _ in 0..effort.runs {
            let engine = engine_run(writers, effort.duration);
            // A commit in the log is its documents plus 37 bytes of framing (the store's persistence
            // module), and a group is one row.
            let batch = engine.commits_per_batch.round().max(1.0) as usize;
            let raw = raw_sqlite_run(batch, engine.bytes_per_commit + 37, effort.duration);
            engine_rates.push(engine.commits_per_second);
            batch_sizes.push(engine.commits_per_batch);
            cpu_per_commit.push(engine.cpu_micros_per_commit);
            cores_busy.push(engine.cores_busy);
            raw_rates.push(raw);
        }
        let engine = report.add(SECTION, &format!("engine, {writers} writers"), "commits/s", engine_rates);
        let raw = report.add(SECTION, &format!("raw SQLite, same I/O as {writers} writers"), "commits/s", raw_rates);
        let batch = report.add(SECTION, &format!("commits per fsync, {writers} writers"), "commits", batch_sizes);
        report.add(SECTION, &format!("CPU per commit (whole process), {writers} writers"), "µs", cpu_per_commit);
        report.add(SECTION, &format!("cores busy (whole process), {writers} writers"), "cores", cores_busy);
        let ratio = 100.0 * engine / raw;
        report.note(format!(
            "{writers} writers: engine at {ratio:.0}% of raw SQLite with the same batching ({batch:.1} commits per \
             fsync); target >= {RATIO_TARGET_PERCENT}%: {}",
            verdict(ratio >= RATIO_TARGET_PERCENT)
        ));
        if writers == 64 {
            report.note(format!(
                "64 writers: {engine:.0} durable commits/s; target >= {RATE_TARGET_64_WRITERS}: {}",
                verdict(engine >= RATE_TARGET_64_WRITERS)
            ));
        }
    }
}

/// The storage engine issue's targets: a share of the physical limit, and an absolute rate.
const RATIO_TARGET_PERCENT: f64 = 50.0;
const RATE_TARGET_64_WRITERS: f64 = 50_000.0;

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

struct EngineRun {
    commits_per_second: f64,
    commits_per_batch: f64,
    bytes_per_commit: usize,
    /// CPU time of the whole process (writers, committer, disk stage) per commit.
    cpu_micros_per_commit: f64,
    cores_busy: f64,
}

/// CPU seconds this process has used, user and system (Linux: fields 14 and 15 of /proc/self/stat, in
/// clock ticks of 1/100 s).
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The command name (field 2) may hold spaces; the fields after it start past its closing parenthesis.
    let after_name = &stat[stat.rfind(')').expect("stat has a command name") + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    ticks as f64 / 100.0
}

/// `writers` tasks each insert one small document per transaction, as fast as commits return.
fn engine_run(writers: usize, duration: Duration) -> EngineRun {
    let directory = tempfile::tempdir().expect("temporary directory");
    let store = Store::open(StoreConfig::new(directory.path())).expect("open store");
    // Create the table up front so the run measures steady-state commits.
    store.transact_blocking(|tx| tx.insert("bench", Object::new())).expect("create table");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let before = store.stats();
    let cpu_before = process_cpu_seconds();
    let committed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    runtime.block_on(async {
        let tasks: Vec<_> = (0..writers)
            .map(|writer| {
                let (store, committed, stop) = (store.clone(), Arc::clone(&committed), Arc::clone(&stop));
                tokio::spawn(async move {
                    let mut sequence = 0i64;
                    while !stop.load(Ordering::Relaxed) {
                        let fields = Object::from([
                            ("writer".to_owned(), Value::Int64(writer as i64)),
                            ("sequence".to_owned(), Value::Int64(sequence)),
                        ]);
                        store.transact(|tx| tx.insert("bench", fields.clone())).await.expect("commit");
                        committed.fetch_add(1, Ordering::Relaxed);
                        sequence += 1;
                    }
                })
            })
            .collect();
        tokio::time::sleep(duration).await;
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            task.await.expect("writer");
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds() - cpu_before;
    let after = store.stats();
    let commits = after.commits - before.commits;
    assert_eq!(commits, committed.load(Ordering::Relaxed), "every acknowledged commit was counted by the store");
    EngineRun {
        commits_per_second: commits as f64 / elapsed,
        commits_per_batch: commits as f64 / (after.batches - before.batches).max(1) as f64,
        bytes_per_commit: ((after.logged_bytes - before.logged_bytes) / commits.max(1)) as usize,
        cpu_micros_per_commit: cpu * 1e6 / commits.max(1) as f64,
        cores_busy: cpu / elapsed,
    }
}

/// Appends one row of `batch * commit_bytes` per transaction (one fsync each) to a SQLite table in WAL
/// mode with `synchronous=FULL`, as the engine's log does, for `duration`; returns commits per second.
fn raw_sqlite_run(batch: usize, commit_bytes: usize, duration: Duration) -> f64 {
    let directory = tempfile::tempdir().expect("temporary directory");
    let connection = rusqlite::Connection::open(directory.path().join("raw.sqlite3")).expect("open");
    connection.pragma_update(None, "journal_mode", "WAL").expect("wal");
    connection.pragma_update(None, "synchronous", "FULL").expect("synchronous");
    connection.execute_batch("CREATE TABLE log (ts INTEGER PRIMARY KEY, entry BLOB NOT NULL)").expect("create");
    connection.pragma_update(None, "locking_mode", "EXCLUSIVE").expect("locking mode");
    let entry = vec![7u8; batch * commit_bytes];
    let mut groups = 0i64;
    let started = Instant::now();
    while started.elapsed() < duration {
        let transaction = connection.unchecked_transaction().expect("begin");
        groups += 1;
        transaction
            .prepare_cached("INSERT INTO log (ts, entry) VALUES (?1, ?2)")
            .expect("prepare")
            .execute(rusqlite::params![groups, entry])
            .expect("insert");
        transaction.commit().expect("commit");
    }
    (groups as usize * batch) as f64 / started.elapsed().as_secs_f64()
}
