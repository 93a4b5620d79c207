//! Durable commits per second: the engine with 1, 8 and 64 concurrent writers, and SQLite alone doing
//! the engine's I/O with the same batching: one fsynced SQLite transaction per group, writing as many
//! bytes as the engine's group did. That is the physical limit the engine builds on. PostgreSQL,
//! what a user would pick instead, inserts one small row per transaction from as many connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use livebase_store::{
    CHECKPOINT_THREAD, COMMITTER_THREAD, DURABILITY_THREAD, PUBLISH_THREAD, RECLAIM_THREAD, Store, StoreConfig,
};
use livebase_value::{Object, Value};

use crate::Effort;
use crate::postgres::Postgres;
use crate::report::{Chart, Report, verdict};

const SECTION: &str = "Durable commits (storage engine, in-process)";
pub const WRITER_COUNTS: [usize; 3] = [1, 8, 64];

pub fn run(effort: Effort, report: &mut Report) {
    println!("{SECTION}");
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let postgres = tokio.block_on(Postgres::connect(WRITER_COUNTS[WRITER_COUNTS.len() - 1]));
    match &postgres {
        Ok(postgres) => report.context("PostgreSQL (baselines)", &postgres.settings),
        Err(error) => report.skipped(&format!("PostgreSQL small inserts: skipped: no PostgreSQL ({error})")),
    }
    for writers in WRITER_COUNTS {
        let mut engine_rates = Vec::new();
        let mut raw_rates = Vec::new();
        let mut batch_sizes = Vec::new();
        let mut cpu_per_commit = Vec::new();
        let mut thread_cpu: [Vec<f64>; PIPELINE_THREADS.len()] = Default::default();
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
            for (runs, micros) in thread_cpu.iter_mut().zip(engine.thread_micros_per_commit) {
                runs.push(micros);
            }
            cores_busy.push(engine.cores_busy);
            raw_rates.push(raw);
        }
        let engine = report.add(SECTION, &format!("engine, {writers} writers"), "commits/s", engine_rates);
        let raw = report.add(SECTION, &format!("raw SQLite, same I/O as {writers} writers"), "commits/s", raw_rates);
        let batch = report.add(SECTION, &format!("commits per fsync, {writers} writers"), "commits", batch_sizes);
        report.add(SECTION, &format!("CPU per commit (whole process), {writers} writers"), "µs", cpu_per_commit);
        report.add(SECTION, &format!("cores busy (whole process), {writers} writers"), "cores", cores_busy);
        for ((role, _), runs) in PIPELINE_THREADS.iter().zip(thread_cpu) {
            report.add(SECTION, &format!("CPU per commit, {role} thread, {writers} writers"), "µs", runs);
        }
        let engine_name = format!("engine in-process, {writers} writers");
        report.compare(
            (&engine_name, engine),
            (&format!("raw SQLite, same batching ({batch:.1} commits per fsync)"), raw),
            "commits/s",
            Some(RATIO_TARGET),
        );
        if let Ok(postgres) = &postgres {
            let runs = (0..effort.runs).map(|_| tokio.block_on(postgres.inserts(writers, effort.duration))).collect();
            let name = format!("PostgreSQL inserts, {writers} clients");
            let rate = report.add(SECTION, &name, "commits/s", runs);
            report.compare((&engine_name, engine), (&name, rate), "commits/s", None);
        }
        if writers == 64 {
            report.note(format!(
                "64 writers: {engine:.0} durable commits/s; target >= {RATE_TARGET_64_WRITERS}: {}",
                verdict(engine >= RATE_TARGET_64_WRITERS)
            ));
        }
    }
    if let Ok(postgres) = &postgres {
        tokio.block_on(postgres.drop_tables());
    }
}

/// The store's pipeline threads whose CPU time per commit is reported: (role, thread name).
const PIPELINE_THREADS: [(&str, &str); 5] = [
    ("committer", COMMITTER_THREAD),
    ("durability", DURABILITY_THREAD),
    ("publisher", PUBLISH_THREAD),
    ("reclaimer", RECLAIM_THREAD),
    ("checkpoint", CHECKPOINT_THREAD),
];

/// The storage engine issue's targets: a share of the physical limit, and an absolute rate.
const RATIO_TARGET: f64 = 0.5;
const RATE_TARGET_64_WRITERS: f64 = 50_000.0;

pub(crate) struct EngineRun {
    pub(crate) commits_per_second: f64,
    commits_per_batch: f64,
    bytes_per_commit: usize,
    /// CPU time of the whole process (writers, committer, disk stage) per commit.
    cpu_micros_per_commit: f64,
    /// CPU time of each of `PIPELINE_THREADS` per commit: each is a serial part of the pipeline, which
    /// bounds the rate however many cores there are (and is less sensitive to a busy machine).
    thread_micros_per_commit: [f64; PIPELINE_THREADS.len()],
    cores_busy: f64,
}

/// `writers` tasks each insert one small document per transaction, as fast as commits return.
fn engine_run(writers: usize, duration: Duration) -> EngineRun {
    let directory = tempfile::tempdir().expect("temporary directory");
    engine_run_on(StoreConfig::new(directory.path()), writers, duration)
}

/// `engine_run` on any storage (the PostgreSQL-backed store's scenario uses it too).
pub(crate) fn engine_run_on(config: StoreConfig, writers: usize, duration: Duration) -> EngineRun {
    let store = Store::open(config).expect("open store");
    // Create the table up front so the run measures steady-state commits.
    store.transact_blocking(|tx| tx.insert("bench", Object::new())).expect("create table");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let before = store.stats();
    let cpu_before = crate::cpu_seconds("/proc/self/stat");
    let threads_before = PIPELINE_THREADS.map(|(_, thread)| thread_cpu_seconds(thread));
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
    let cpu = crate::cpu_seconds("/proc/self/stat") - cpu_before;
    let threads_after = PIPELINE_THREADS.map(|(_, thread)| thread_cpu_seconds(thread));
    let after = store.stats();
    let commits = after.commits - before.commits;
    assert_eq!(commits, committed.load(Ordering::Relaxed), "every acknowledged commit was counted by the store");
    EngineRun {
        commits_per_second: commits as f64 / elapsed,
        commits_per_batch: commits as f64 / (after.batches - before.batches).max(1) as f64,
        bytes_per_commit: ((after.logged_bytes - before.logged_bytes) / commits.max(1)) as usize,
        cpu_micros_per_commit: cpu * 1e6 / commits.max(1) as f64,
        thread_micros_per_commit: std::array::from_fn(|thread| {
            (threads_after[thread] - threads_before[thread]) * 1e6 / commits.max(1) as f64
        }),
        cores_busy: cpu / elapsed,
    }
}

/// CPU seconds used so far by this process's threads named `name` (Linux keeps its first 15 bytes).
fn thread_cpu_seconds(name: &str) -> f64 {
    let shown = &name[..name.len().min(15)];
    let tasks = std::fs::read_dir("/proc/self/task").expect("/proc/self/task");
    tasks
        .filter_map(|task| {
            let task = task.ok()?.path();
            // A thread may end between listing and reading: it is then no longer ours to count.
            let comm = std::fs::read_to_string(task.join("comm")).ok()?;
            (comm.trim_end() == shown).then(|| crate::cpu_seconds(&task.join("stat").to_string_lossy()))
        })
        .sum()
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

/// Durable commits per second against the number of writers: the engine in-process and over
/// WebSocket, next to raw SQLite and PostgreSQL (whichever of them ran).
pub fn chart(report: &mut Report) {
    type FigureName = fn(usize) -> String;
    let lines: [(&str, &str, FigureName); 4] = [
        ("engine, in-process", SECTION, |writers| format!("engine, {writers} writers")),
        ("engine, over WebSocket", crate::socket_commits::SECTION, |writers| format!("{writers} clients")),
        ("raw SQLite, same batching", SECTION, |writers| format!("raw SQLite, same I/O as {writers} writers")),
        ("PostgreSQL single-row inserts", SECTION, |writers| format!("PostgreSQL inserts, {writers} clients")),
    ];
    let series: Vec<(String, Vec<(f64, f64)>)> = lines
        .iter()
        .map(|(line, section, figure)| {
            let points = WRITER_COUNTS
                .iter()
                .filter_map(|writers| report.median(section, &figure(*writers)).map(|rate| (*writers as f64, rate)))
                .collect();
            (line.to_string(), points)
        })
        .filter(|(_, points): &(String, Vec<(f64, f64)>)| !points.is_empty())
        .collect();
    if !series.is_empty() {
        report.chart(Chart {
            file: "commits-throughput.png".to_owned(),
            title: "Durable commits per second against concurrent writers".to_owned(),
            x_label: "concurrent writers".to_owned(),
            y_label: "commits/s".to_owned(),
            series,
        });
    }
}
