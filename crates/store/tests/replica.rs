//! Read replicas on PostgreSQL: a replica loads the writer's state, follows its commits with the same
//! change records, refuses writes, finds the writer, and keeps (or, when too far behind, reloads)
//! the log it needs.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::{TestDb, int, object};
use livebase_store::{
    CommitError, CommitRecord, IndexSchema, PostgresConfig, Schema, Storage, Store, StoreConfig, TableSchema, Timestamp,
};
use livebase_value::Value;
use tokio::sync::broadcast;

/// How long a test waits for a replica to see a commit before it fails.
const FOLLOW_TIMEOUT: Duration = Duration::from_secs(30);

fn postgres_config(db: &TestDb) -> PostgresConfig {
    match db.config().storage {
        Storage::Postgres(config) => config,
        _ => unreachable!("a PostgreSQL test database"),
    }
}

fn replica_of(db: &TestDb) -> Store {
    Store::open(StoreConfig::replica_of(postgres_config(db))).expect("open a replica")
}

fn next(changes: &mut broadcast::Receiver<Arc<CommitRecord>>) -> Arc<CommitRecord> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    match runtime.block_on(async { tokio::time::timeout(FOLLOW_TIMEOUT, changes.recv()).await }) {
        Ok(Ok(record)) => record,
        Ok(Err(error)) => panic!("the change stream failed: {error}"),
        Err(_) => panic!("no commit within {FOLLOW_TIMEOUT:?}"),
    }
}

fn insert(store: &Store, n: i64) -> Timestamp {
    store.transact_blocking(|tx| tx.insert("items", object(&[("n", Value::Int64(n))]))).unwrap().1
}

/// The same commit as the writer published it: timestamp, documents before and after, keys.
fn assert_same_record(replica: &Arc<CommitRecord>, writer: &Arc<CommitRecord>) {
    assert_eq!(replica.ts, writer.ts);
    assert!(!replica.reloaded && !writer.reloaded);
    assert_eq!(replica.keys, writer.keys, "at {}", writer.ts);
    assert_eq!(replica.changes.len(), writer.changes.len(), "at {}", writer.ts);
    for (replica, writer) in replica.changes.iter().zip(&writer.changes) {
        assert_eq!(replica.id, writer.id);
        assert_eq!(replica.old, writer.old, "old version of {}", writer.id);
        assert_eq!(replica.new, writer.new, "new version of {}", writer.id);
    }
}

/// Both stores' latest states hold the same tables and documents.
fn assert_same_data(replica: &Store, writer: &Store) {
    let (replica, writer) = (replica.snapshot(), writer.snapshot());
    assert_eq!(replica.ts(), writer.ts());
    assert_eq!(replica.table_names(), writer.table_names());
    for table in writer.table_names() {
        assert_eq!(replica.documents(&table), writer.documents(&table), "table {table}");
        assert_eq!(replica.index_names(&table), writer.index_names(&table), "indexes of {table}");
    }
}

#[test]
fn a_replica_loads_the_writers_data_and_follows_its_commits_in_order() {
    let Some(db) = TestDb::postgres() else { return };
    // A small checkpoint interval: the replica must load a checkpoint and the log after it.
    let db = db.with_config(|config| config.checkpoint_after_commits = 3);
    let writer = db.open();
    let mut kept = Vec::new();
    for n in 0..10 {
        kept.push(writer.transact_blocking(|tx| tx.insert("items", object(&[("n", Value::Int64(n))]))).unwrap().0);
    }
    let replica = replica_of(&db);
    assert!(replica.is_replica() && !writer.is_replica());
    assert_same_data(&replica, &writer);
    assert_eq!(replica.secret(), writer.secret(), "the instance secret is shared, so cursors work on any node");

    let (mut from_writer, mut from_replica) = (writer.subscribe(), replica.subscribe());
    let schema = Schema {
        tables: vec![TableSchema {
            name: "tags".into(),
            indexes: vec![IndexSchema { name: "by_name".into(), fields: vec!["name".into()] }],
            document_validator: None,
        }],
    };
    writer.apply_schema_blocking(&schema).unwrap();
    insert(&writer, 10);
    writer.transact_blocking(|tx| tx.delete(kept[0])).unwrap();
    writer.transact_blocking(|tx| tx.replace(kept[1], object(&[("n", Value::Int64(-1))]))).unwrap();
    writer
        .transact_blocking(|tx| {
            tx.insert("tags", object(&[("name", Value::String("a".into()))]))?;
            tx.insert("items", object(&[("n", Value::Int64(11))]))
        })
        .unwrap();
    // Concurrent commits, which the writer groups: the replica publishes each of them too.
    std::thread::scope(|scope| {
        for n in 20..40 {
            let writer = &writer;
            scope.spawn(move || insert(writer, n));
        }
    });
    let last = writer.snapshot().ts();

    let mut seen = Timestamp::ZERO;
    loop {
        let (expected, got) = (next(&mut from_writer), next(&mut from_replica));
        assert_same_record(&got, &expected);
        assert!(got.ts > seen, "commits arrive in timestamp order");
        seen = got.ts;
        let read_at = replica.begin().begin_ts();
        assert!(read_at >= got.ts, "a published commit is readable: {read_at} < {}", got.ts);
        if got.ts == last {
            break;
        }
    }
    assert_same_data(&replica, &writer);
    let replica_snapshot = replica.snapshot();
    assert_eq!(int(&replica_snapshot.get(kept[1]).unwrap(), "n"), -1);
    assert!(replica_snapshot.get(kept[0]).is_none());
    assert_eq!(replica_snapshot.document_count("tags"), 1);
}

#[test]
fn a_replicas_timestamps_only_move_forward() {
    let Some(db) = TestDb::postgres() else { return };
    let writer = db.open();
    let replica = replica_of(&db);
    let mut changes = replica.subscribe();
    let done = Arc::new(AtomicBool::new(false));
    // Reads on the replica while it applies the writer's commits.
    let reader = {
        let (replica, done) = (replica.clone(), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut seen = vec![replica.snapshot().ts()];
            while !done.load(Ordering::Acquire) {
                let ts = replica.begin().begin_ts();
                let previous = *seen.last().unwrap();
                assert!(ts >= previous, "a replica's snapshot went back from {previous} to {ts}");
                assert_eq!(replica.snapshot_at(ts).expect("the latest state is retained").ts(), ts);
                if ts > previous {
                    seen.push(ts);
                }
            }
            seen
        })
    };
    let mut last = Timestamp::ZERO;
    for n in 0..50 {
        last = insert(&writer, n);
    }
    while next(&mut changes).ts < last {}
    done.store(true, Ordering::Release);
    let seen = reader.join().unwrap();
    assert!(seen.len() > 1, "the reader saw the replica move on");
    assert_eq!(replica.snapshot().ts(), last);
}

#[test]
fn a_replica_refuses_writes_and_changes_nothing() {
    let Some(db) = TestDb::postgres() else { return };
    let writer = db.open();
    let id = writer.transact_blocking(|tx| tx.insert("items", object(&[("n", Value::Int64(1))]))).unwrap().0;
    let replica = replica_of(&db);
    let log_rows = db.log_rows();

    let error = replica.transact_blocking(|tx| tx.insert("items", object(&[]))).unwrap_err();
    assert_eq!(error, CommitError::ReadOnlyReplica);
    let message = error.to_string();
    assert!(message.contains("read replica") && message.contains("writes go to the writer"), "{message}");
    assert!(!error.is_retryable());
    let error = replica.transact_blocking(|tx| tx.delete(id)).unwrap_err();
    assert_eq!(error, CommitError::ReadOnlyReplica);
    let error = replica.transact_blocking(|tx| tx.replace(id, object(&[])));
    assert_eq!(error.unwrap_err(), CommitError::ReadOnlyReplica);
    let schema =
        Schema { tables: vec![TableSchema { name: "other".into(), indexes: Vec::new(), document_validator: None }] };
    assert_eq!(replica.apply_schema_blocking(&schema).unwrap_err(), CommitError::ReadOnlyReplica);

    // Reads commit at the timestamp they read at, as on the writer.
    let mut read = replica.begin();
    assert_eq!(int(&read.get(id).unwrap().unwrap(), "n"), 1);
    let ts = read.begin_ts();
    assert_eq!(replica.commit_blocking(read).unwrap(), ts);

    assert_eq!(db.log_rows(), log_rows, "nothing was written");
    assert_eq!(replica.snapshot().ts(), writer.snapshot().ts());
    assert_same_data(&replica, &writer);
    assert_eq!(replica.stats().commits, 0);
}

#[test]
fn writer_url_names_the_live_writer_only() {
    let Some(db) = TestDb::postgres() else { return };
    let advertised = "http://10.1.2.3:3210";
    let config = PostgresConfig { advertise_url: Some(advertised.into()), ..postgres_config(&db) };
    let writer = Store::open(StoreConfig::postgres(config.clone())).unwrap();
    let replica = replica_of(&db);
    assert_eq!(replica.writer_url().unwrap().as_deref(), Some(advertised));
    assert_eq!(writer.writer_url().unwrap(), None, "the writer forwards to nobody");

    drop(writer); // Releases the lease.
    assert_eq!(replica.writer_url().unwrap(), None, "no writer after a clean shutdown");

    let writer = Store::open(StoreConfig::postgres(config)).unwrap();
    assert_eq!(replica.writer_url().unwrap().as_deref(), Some(advertised), "read afresh");
    db.execute("UPDATE lease SET expires_at = now() - interval '1 second'");
    assert_eq!(replica.writer_url().unwrap(), None, "an expired lease names no writer");
    drop(writer);

    let silent = Store::open(db.config()).unwrap();
    assert_eq!(replica.writer_url().unwrap(), None, "a writer that advertised nothing");
    drop(silent);
}

/// The commit timestamp of the log's rows, oldest first.
fn log_timestamps(db: &TestDb) -> Vec<i64> {
    let count = db.query_one_i64("SELECT count(*) FROM log");
    (0..count).map(|row| db.query_one_i64(&format!("SELECT ts FROM log ORDER BY ts OFFSET {row} LIMIT 1"))).collect()
}

fn nanos(ts: Timestamp) -> i64 {
    i64::try_from(ts.nanos()).unwrap()
}

#[test]
fn the_writer_keeps_the_log_live_replicas_need_within_a_bound() {
    let Some(db) = TestDb::postgres() else { return };
    // Every commit is a checkpoint: without replicas, the log would be truncated behind each one.
    let db = db.with_config(|config| config.checkpoint_after_commits = 1);
    let writer = db.open();
    let lagging = insert(&writer, 0);
    // A live replica that has applied up to `lagging` (its heartbeat is recent).
    db.execute(&format!("INSERT INTO replicas VALUES ('lagging', {}, now())", nanos(lagging)));
    let mut after = Vec::new();
    for n in 1..=4 {
        after.push(nanos(insert(&writer, n)));
    }
    // Shutting down writes a last checkpoint and truncates behind it: deterministic.
    drop(writer);
    assert_eq!(log_timestamps(&db), after, "the log after the live replica's position is kept");
    assert_eq!(db.query_one_i64("SELECT value FROM meta WHERE key = 'truncated_ts'"), nanos(lagging));

    // At most `replica_log_rows` groups are kept for it.
    let bounded = PostgresConfig { replica_log_rows: 2, ..postgres_config(&db) };
    let config = StoreConfig { checkpoint_after_commits: 1, ..StoreConfig::postgres(bounded) };
    let writer = Store::open(config.clone()).unwrap();
    let newest = nanos(insert(&writer, 5));
    drop(writer);
    assert_eq!(log_timestamps(&db), vec![after[3], newest], "only the newest two groups are kept");

    // An expired replica (not seen for `REPLICA_EXPIRY`) holds nothing back.
    db.execute("UPDATE replicas SET seen_at = now() - interval '1 day'");
    let writer = Store::open(config).unwrap();
    insert(&writer, 6);
    drop(writer);
    assert_eq!(log_timestamps(&db), Vec::<i64>::new(), "truncated to the checkpoint");
    assert_eq!(db.open().snapshot().document_count("items"), 7);
}

#[test]
fn too_large_a_log_bound_is_refused() {
    let Some(db) = TestDb::postgres() else { return };
    let config =
        PostgresConfig { replica_log_rows: livebase_store::limits::MAX_REPLICA_LOG_ROWS + 1, ..postgres_config(&db) };
    let error = Store::open(StoreConfig::postgres(config)).err().expect("refused").to_string();
    assert!(error.contains("over the maximum"), "{error}");
}

#[test]
fn two_replicas_follow_at_once_and_register_their_positions() {
    let Some(db) = TestDb::postgres() else { return };
    let writer = db.open();
    insert(&writer, 0);
    let replicas = [replica_of(&db), replica_of(&db)];
    assert_eq!(db.query_one_i64("SELECT count(*) FROM replicas"), 2);
    let mut streams: Vec<_> = replicas.iter().map(Store::subscribe).collect();
    let mut from_writer = writer.subscribe();
    for n in 1..=20 {
        insert(&writer, n);
        let expected = next(&mut from_writer);
        for stream in &mut streams {
            assert_same_record(&next(stream), &expected);
        }
    }
    for replica in &replicas {
        assert_same_data(replica, &writer);
    }
    let [first, second] = replicas;
    drop(first);
    assert_eq!(db.query_one_i64("SELECT count(*) FROM replicas"), 1, "a replica that stops unregisters");
    insert(&writer, 21);
    assert_same_record(&next(&mut streams[1]), &next(&mut from_writer));
    drop(second);
    assert_eq!(db.query_one_i64("SELECT count(*) FROM replicas"), 0);
}

#[test]
fn a_replica_whose_log_was_truncated_reloads_and_says_so() {
    let Some(db) = TestDb::postgres() else { return };
    let db = db.with_config(|config| config.checkpoint_after_commits = 1);
    let writer = db.open();
    insert(&writer, 0);
    let proxy = Proxy::start(&postgres_config(&db).url);
    let replica =
        Store::open(StoreConfig::replica_of(PostgresConfig { url: proxy.url.clone(), ..postgres_config(&db) }))
            .unwrap();
    let mut changes = replica.subscribe();
    let behind = replica.snapshot().ts();

    // The replica's connection stalls, and its row looks expired: the writer stops keeping its log.
    proxy.pause();
    db.execute("UPDATE replicas SET seen_at = now() - interval '1 day'");
    let mut commits = 0;
    while db.query_one_i64("SELECT value FROM meta WHERE key = 'truncated_ts'") <= nanos(behind) {
        // Each commit is checkpointed, and the log truncated behind the checkpoint, as they land.
        assert!(commits < 1_000, "the writer truncated nothing");
        insert(&writer, 1 + commits);
        commits += 1;
    }
    let id = writer.transact_blocking(|tx| tx.insert("items", object(&[("n", Value::Int64(-5))]))).unwrap().0;
    writer.transact_blocking(|tx| tx.replace(id, object(&[("n", Value::Int64(-6))]))).unwrap();
    assert_eq!(replica.snapshot().ts(), behind, "the stalled replica applied nothing");

    proxy.resume();
    let reloaded = next(&mut changes);
    assert!(reloaded.reloaded, "the first record after the gap is a reload: {reloaded:?}");
    assert!(reloaded.changes.is_empty() && reloaded.keys.is_empty());
    assert!(reloaded.ts > behind);
    // Reloaded at the writer's checkpoint plus the log after it: possibly not all of it yet.
    let mut ts = reloaded.ts;
    let last = writer.snapshot().ts();
    while ts < last {
        let record = next(&mut changes);
        assert!(!record.reloaded && record.ts > ts);
        ts = record.ts;
    }
    assert_same_data(&replica, &writer);
    assert_eq!(int(&replica.snapshot().get(id).unwrap(), "n"), -6);

    // And it follows on as usual, its position registered again.
    let mut from_writer = writer.subscribe();
    insert(&writer, -7);
    assert_same_record(&next(&mut changes), &next(&mut from_writer));
}

/// A TCP proxy to PostgreSQL that can hold the traffic, to stall a replica's connection.
struct Proxy {
    url: String,
    paused: Arc<(Mutex<bool>, Condvar)>,
}

impl Proxy {
    fn start(target_url: &str) -> Proxy {
        let target = postgres::Config::from_str(target_url).unwrap();
        let host = match target.get_hosts().first() {
            Some(postgres::config::Host::Tcp(host)) => host.clone(),
            other => panic!("the test PostgreSQL is reached over TCP, not {other:?}"),
        };
        let upstream = format!("{host}:{}", target.get_ports().first().copied().unwrap_or(5432));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut url = format!(
            "host=127.0.0.1 port={} user={} dbname={}",
            listener.local_addr().unwrap().port(),
            target.get_user().unwrap_or("postgres"),
            target.get_dbname().or(target.get_user()).unwrap_or("postgres"),
        );
        if let Some(password) = target.get_password() {
            url.push_str(&format!(" password={}", String::from_utf8_lossy(password)));
        }
        let paused = Arc::new((Mutex::new(false), Condvar::new()));
        let gate = Arc::clone(&paused);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let client = client.unwrap();
                let server = TcpStream::connect(&upstream).unwrap();
                for (from, to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)] {
                    let gate = Arc::clone(&gate);
                    std::thread::spawn(move || pump(from, to, &gate));
                }
            }
        });
        Proxy { url, paused }
    }

    fn pause(&self) {
        *self.paused.0.lock().unwrap() = true;
    }

    fn resume(&self) {
        *self.paused.0.lock().unwrap() = false;
        self.paused.1.notify_all();
    }
}

/// Copies `from` to `to`, holding each chunk while the proxy is paused.
fn pump(mut from: TcpStream, mut to: TcpStream, gate: &(Mutex<bool>, Condvar)) {
    let mut buffer = [0; 16 << 10];
    loop {
        let read = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        drop(gate.1.wait_while(gate.0.lock().unwrap(), |paused| *paused).unwrap());
        if to.write_all(&buffer[..read]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}
