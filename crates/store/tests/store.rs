//! Behaviour of the store through its public API, on each backend: a real SQLite file and a real
//! PostgreSQL schema.

mod common;

use std::collections::BTreeMap;

use common::{TestDb, int, object, open};
use livebase_store::limits::{MAX_TRANSACTION_DOCS_READ, MAX_TRANSACTION_DOCS_WRITTEN};
use livebase_store::{
    CommitError, KeyRange, Order, Schema, Store, StoreConfig, TableSchema, Timestamp, TransactionError,
};
use livebase_value::{Validator, Value, encode_key_value};

fn key(value: Value) -> Vec<u8> {
    let mut key = Vec::new();
    encode_key_value(&mut key, Some(&value));
    key
}

fn committed_writes_survive_reopen(db: TestDb) {
    let store = db.open();
    let ((id, other), ts) = store
        .transact_blocking(|tx| {
            let id = tx.insert("notes", object(&[("text", Value::String("hello".into())), ("n", Value::Int64(1))]))?;
            let other = tx.insert("notes", object(&[("text", Value::String("bye".into()))]))?;
            Ok((id, other))
        })
        .unwrap();
    store
        .transact_blocking(|tx| {
            tx.patch(id, BTreeMap::from([("n".to_owned(), Some(Value::Int64(2))), ("text".to_owned(), None)]))?;
            tx.delete(other)
        })
        .unwrap();
    drop(store);

    let store = db.open();
    let snapshot = store.snapshot();
    assert!(snapshot.ts() > ts);
    let document = snapshot.get(id).expect("patched document survives");
    assert_eq!(int(&document, "n"), 2);
    assert_eq!(document.get("text"), None, "patch with None removed the field");
    assert!(snapshot.get(other).is_none(), "deleted document stays deleted");
    assert_eq!(snapshot.document_count("notes"), 1);
}

#[test]
fn a_second_process_cannot_open_the_directory() {
    let directory = tempfile::tempdir().unwrap();
    let _store = open(directory.path());
    let error = Store::open(StoreConfig::new(directory.path())).err().expect("second open fails");
    assert!(error.to_string().contains("in use by another process"), "{error}");
}

fn conflicting_transactions_abort_with_a_typed_error(db: TestDb) {
    let store = db.open();
    let (id, _) = store.transact_blocking(|tx| tx.insert("counters", object(&[("n", Value::Int64(0))]))).unwrap();

    let mut first = store.begin();
    let mut second = store.begin();
    for tx in [&mut first, &mut second] {
        let n = int(&tx.get(id).unwrap().unwrap(), "n");
        tx.patch(id, BTreeMap::from([("n".to_owned(), Some(Value::Int64(n + 1)))])).unwrap();
    }
    let committed = store.commit_blocking(first).unwrap();
    let error = store.commit_blocking(second).unwrap_err();
    assert_eq!(error, CommitError::Conflict { conflicting_commit: committed });
    assert!(error.is_retryable());
    assert_eq!(int(&store.snapshot().get(id).unwrap(), "n"), 1);
}

fn writes_outside_the_read_set_do_not_conflict(db: TestDb) {
    let store = db.open();
    store
        .apply_schema_blocking(&Schema { tables: vec![TableSchema::new("items").index("by_group", &["group"])] })
        .unwrap();
    store
        .transact_blocking(|tx| {
            for group in 0..4 {
                tx.insert("items", object(&[("group", Value::Int64(group))]))?;
            }
            Ok(())
        })
        .unwrap();

    // Reads group 1 only, then writes elsewhere.
    let mut reader = store.begin();
    let range = KeyRange::prefix(key(Value::Int64(1)));
    let seen = reader.scan("items", "by_group", range, Order::Asc).unwrap().count();
    assert_eq!(seen, 1);
    reader.insert("log", object(&[("saw", Value::Int64(1))])).unwrap();

    store.transact_blocking(|tx| tx.insert("items", object(&[("group", Value::Int64(3))]))).unwrap();
    store.commit_blocking(reader).expect("a write to group 3 does not touch a read of group 1");

    let mut reader = store.begin();
    let range = KeyRange::prefix(key(Value::Int64(1)));
    assert_eq!(reader.scan("items", "by_group", range, Order::Asc).unwrap().count(), 1);
    reader.insert("log", object(&[("saw", Value::Int64(1))])).unwrap();
    store.transact_blocking(|tx| tx.insert("items", object(&[("group", Value::Int64(1))]))).unwrap();
    assert!(matches!(store.commit_blocking(reader), Err(CommitError::Conflict { .. })), "a write to group 1 does");
}

fn a_scan_reads_only_what_was_consumed(db: TestDb) {
    let store = db.open();
    let (ids, _) = store
        .transact_blocking(|tx| {
            (0..10).map(|n| tx.insert("items", object(&[("n", Value::Int64(n))]))).collect::<Result<Vec<_>, _>>()
        })
        .unwrap();

    // Take the first two documents by creation time; a later insert lands after them.
    let mut reader = store.begin();
    let taken: Vec<_> =
        reader.scan("items", "by_creation_time", KeyRange::all(), Order::Asc).unwrap().take(2).collect();
    assert_eq!(taken.len(), 2);
    reader.insert("log", object(&[])).unwrap();
    store.transact_blocking(|tx| tx.insert("items", object(&[("n", Value::Int64(99))]))).unwrap();
    store.transact_blocking(|tx| tx.delete(ids[5])).unwrap();
    store.commit_blocking(reader).expect("writes past the consumed prefix do not conflict");

    let mut reader = store.begin();
    let _ = reader.scan("items", "by_creation_time", KeyRange::all(), Order::Asc).unwrap().take(2).count();
    reader.insert("log", object(&[])).unwrap();
    store.transact_blocking(|tx| tx.delete(ids[1])).unwrap();
    assert!(
        matches!(store.commit_blocking(reader), Err(CommitError::Conflict { .. })),
        "deleting a consumed document does"
    );
}

fn reading_a_missing_table_conflicts_with_its_creation(db: TestDb) {
    let store = db.open();
    let mut reader = store.begin();
    assert_eq!(reader.scan("later", "by_creation_time", KeyRange::all(), Order::Asc).unwrap().count(), 0);
    reader.insert("log", object(&[])).unwrap();
    store.transact_blocking(|tx| tx.insert("later", object(&[]))).unwrap();
    assert!(matches!(store.commit_blocking(reader), Err(CommitError::Conflict { .. })));
}

fn transactions_read_their_own_writes(db: TestDb) {
    let store = db.open();
    let mut tx = store.begin();
    let id = tx.insert("items", object(&[("n", Value::Int64(7))])).unwrap();
    assert_eq!(int(&tx.get(id).unwrap().unwrap(), "n"), 7);
    assert_eq!(tx.scan("items", "by_creation_time", KeyRange::all(), Order::Desc).unwrap().count(), 1);
    tx.delete(id).unwrap();
    assert!(tx.get(id).unwrap().is_none());
    store.commit_blocking(tx).unwrap();
    assert_eq!(store.snapshot().document_count("items"), 0);
}

fn adding_an_index_back_fills_it_and_survives_restart(db: TestDb) {
    let store = db.open();
    store
        .transact_blocking(|tx| {
            for n in [3, 1, 2] {
                tx.insert("items", object(&[("meta", Value::Object(object(&[("rank", Value::Int64(n))])))]))?;
            }
            Ok(())
        })
        .unwrap();
    let schema = Schema { tables: vec![TableSchema::new("items").index("by_rank", &["meta.rank"])] };
    store.apply_schema_blocking(&schema).unwrap();
    let ranks = |store: &Store| {
        let mut tx = store.begin();
        tx.scan("items", "by_rank", KeyRange::all(), Order::Asc)
            .unwrap()
            .map(|document| {
                let document = document.unwrap();
                let Some(Value::Object(meta)) = document.get("meta") else { panic!("meta missing") };
                meta["rank"].clone()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(ranks(&store), vec![Value::Int64(1), Value::Int64(2), Value::Int64(3)]);
    drop(store);
    let store = db.open();
    assert_eq!(ranks(&store), vec![Value::Int64(1), Value::Int64(2), Value::Int64(3)]);
    assert_eq!(store.snapshot().index_names("items").unwrap(), vec!["by_id", "by_creation_time", "by_rank"]);

    // Dropping the index from the schema removes it.
    store.apply_schema_blocking(&Schema { tables: vec![TableSchema::new("items")] }).unwrap();
    let mut tx = store.begin();
    let error = tx.scan("items", "by_rank", KeyRange::all(), Order::Asc).err().unwrap();
    assert_eq!(error, TransactionError::IndexNotFound { table: "items".into(), index: "by_rank".into() });
}

fn schema_validation_rejects_bad_writes_and_bad_schemas(db: TestDb) {
    let store = db.open();
    let validator = Validator::from_json(&serde_json::json!({
        "type": "object",
        "value": { "name": { "fieldType": { "type": "string" }, "optional": false } }
    }))
    .unwrap();
    let schema = Schema { tables: vec![TableSchema::new("people").validator(validator)] };
    store.apply_schema_blocking(&schema).unwrap();
    store.transact_blocking(|tx| tx.insert("people", object(&[("name", Value::String("Ada".into()))]))).unwrap();
    let error = store.transact_blocking(|tx| tx.insert("people", object(&[("name", Value::Int64(1))]))).unwrap_err();
    assert!(
        matches!(&error, CommitError::Transaction(TransactionError::SchemaValidation { table, .. }) if table == "people"),
        "{error}"
    );
    assert!(error.to_string().contains("name"), "the error names the field: {error}");
    assert_eq!(store.snapshot().document_count("people"), 1, "the bad write changed nothing");

    let duplicate = Schema { tables: vec![TableSchema::new("people").index("by_x", &["x"]).index("by_x", &["y"])] };
    assert!(matches!(
        store.apply_schema_blocking(&duplicate),
        Err(CommitError::Transaction(TransactionError::InvalidSchema(_)))
    ));
    let reserved = Schema { tables: vec![TableSchema::new("people").index("by_id", &["x"])] };
    assert!(store.apply_schema_blocking(&reserved).is_err());
}

fn bad_input_is_rejected_and_changes_nothing(db: TestDb) {
    let store = db.open();
    for (table, fields) in [
        ("9bad", object(&[])),
        ("_tables", object(&[])),
        ("ok", object(&[("$money", Value::Null)])),
        ("ok", object(&[("_secret", Value::Null)])),
        ("ok", object(&[("big", Value::Bytes(vec![0; 1 << 20]))])),
    ] {
        let error = store.transact_blocking(|tx| tx.insert(table, fields.clone())).unwrap_err();
        assert!(matches!(error, CommitError::Transaction(_)), "{table}: {error}");
    }
    assert!(store.snapshot().table_names().is_empty(), "no table was created by a failed insert");

    let (id, _) = store.transact_blocking(|tx| tx.insert("ok", object(&[]))).unwrap();
    let error = store
        .transact_blocking(|tx| tx.patch(id, BTreeMap::from([("_id".to_owned(), Some(Value::String("x".into())))])))
        .unwrap_err();
    assert!(error.to_string().contains("system field"), "{error}");
    store.transact_blocking(|tx| tx.delete(id)).unwrap();
    let error = store.transact_blocking(|tx| tx.delete(id)).unwrap_err();
    assert_eq!(error, CommitError::Transaction(TransactionError::DocumentNotFound(id)));
}

fn per_transaction_limits_are_enforced_at_the_boundary(db: TestDb) {
    let store = db.open();
    let mut tx = store.begin();
    for _ in 0..MAX_TRANSACTION_DOCS_WRITTEN {
        tx.insert("many", object(&[])).unwrap();
    }
    let error = tx.insert("many", object(&[])).unwrap_err();
    assert_eq!(error, TransactionError::WriteLimit { what: "documents", limit: MAX_TRANSACTION_DOCS_WRITTEN });
    // A transaction may still commit what it did within the limits.
    store.commit_blocking(tx).unwrap();
    store
        .transact_blocking(|tx| {
            for _ in 0..(MAX_TRANSACTION_DOCS_READ - MAX_TRANSACTION_DOCS_WRITTEN) {
                tx.insert("many", object(&[]))?;
            }
            Ok(())
        })
        .unwrap();

    let mut tx = store.begin();
    let read = tx.scan("many", "by_id", KeyRange::all(), Order::Asc).unwrap().filter(Result::is_ok).count();
    assert_eq!(read, MAX_TRANSACTION_DOCS_READ, "exactly the limit can be read");
    drop(tx);

    store.transact_blocking(|tx| tx.insert("many", object(&[]))).unwrap();
    let mut tx = store.begin();
    let results: Vec<_> = tx.scan("many", "by_id", KeyRange::all(), Order::Asc).unwrap().collect();
    assert_eq!(results.len(), MAX_TRANSACTION_DOCS_READ + 1);
    let limit = TransactionError::ReadLimit { what: "documents", limit: MAX_TRANSACTION_DOCS_READ };
    assert_eq!(results.last().unwrap().as_ref().unwrap_err(), &limit);
}

fn change_stream_publishes_commits_in_order_with_old_and_new(db: TestDb) {
    let store = db.open();
    let mut changes = store.subscribe();
    let (id, first) = store.transact_blocking(|tx| tx.insert("items", object(&[("n", Value::Int64(1))]))).unwrap();
    let ((), second) = store.transact_blocking(|tx| tx.replace(id, object(&[("n", Value::Int64(2))]))).unwrap();
    let ((), third) = store.transact_blocking(|tx| tx.delete(id)).unwrap();

    let mut seen = Vec::new();
    for _ in 0..3 {
        let record = changes.try_recv().expect("published before the commit returned");
        let change = record.changes.iter().find(|change| change.id == id).expect("the item changed");
        seen.push((record.ts, change.old.as_ref().map(|d| int(d, "n")), change.new.as_ref().map(|d| int(d, "n"))));
        assert!(record.keys.windows(2).all(|pair| pair[0] < pair[1]), "keys are sorted and unique");
    }
    assert_eq!(seen, vec![(first, None, Some(1)), (second, Some(1), Some(2)), (third, Some(2), None)]);
    assert!(first < second && second < third);
}

fn checkpoints_fold_the_log_and_recovery_combines_both(db: TestDb) {
    let db = db.with_config(|config| config.checkpoint_after_commits = 7);
    let config = db.config();
    let store = Store::open(config.clone()).unwrap();
    let mut expected = BTreeMap::new();
    for n in 0..40 {
        let (id, _) = store.transact_blocking(|tx| tx.insert("items", object(&[("n", Value::Int64(n))]))).unwrap();
        expected.insert(id, n);
        if n % 3 == 0 {
            store
                .transact_blocking(|tx| tx.patch(id, BTreeMap::from([("n".to_owned(), Some(Value::Int64(n * 10)))])))
                .unwrap();
            expected.insert(id, n * 10);
        }
        if n % 5 == 0 {
            store.transact_blocking(|tx| tx.delete(id)).unwrap();
            expected.remove(&id);
        }
    }
    let ts = store.snapshot().ts();
    drop(store);
    assert_eq!(db.log_rows(), 0, "a clean shutdown checkpoints everything");

    let store = Store::open(config).unwrap();
    let snapshot = store.snapshot();
    assert_eq!(snapshot.ts(), ts);
    let actual: BTreeMap<_, _> =
        snapshot.documents("items").iter().map(|document| (document.id(), int(document, "n"))).collect();
    assert_eq!(actual, expected);
    let (_, next) = store.transact_blocking(|tx| tx.insert("items", object(&[]))).unwrap();
    assert!(next > ts, "timestamps keep increasing across restarts");
}

/// Commits whose callers stopped waiting still pass every stage of the pipeline when the store shuts
/// down, and the final checkpoint is at the last of them: it covers the whole log, and only commits
/// it holds the versions of.
fn commits_left_in_the_pipeline_at_shutdown_are_all_checkpointed(db: TestDb) {
    use std::future::Future;
    use std::task::{Context, Waker};
    const COMMITS: i64 = 500;
    let store = db.open();
    // The table exists before the commits begin, so none of them conflicts with its creation.
    let (first, _) = store.transact_blocking(|tx| tx.insert("items", object(&[]))).unwrap();
    let mut context = Context::from_waker(Waker::noop());
    let mut expected = std::collections::BTreeSet::from([first]);
    for n in 0..COMMITS {
        let mut transaction = store.begin();
        expected.insert(transaction.insert("items", object(&[("n", Value::Int64(n))])).unwrap());
        // One poll queues the commit; dropping the future stops the waiting, not the commit.
        let polled = std::pin::pin!(store.commit(transaction)).poll(&mut context);
        assert!(!matches!(polled, std::task::Poll::Ready(Err(_))), "{polled:?}");
    }
    drop(store);
    assert_eq!(db.log_rows(), 0, "the final checkpoint covers every group appended");
    let snapshot = db.open().snapshot();
    let ids: std::collections::BTreeSet<_> = snapshot.documents("items").iter().map(|document| document.id()).collect();
    assert_eq!(ids, expected, "every queued commit was made durable and checkpointed");
}

/// One commit at a time finds the later stages idle, and the committer appends and publishes it
/// itself; a queue of commits comes in batches the durability thread appends while the committer
/// validates the next. Either way every commit is durable, in order.
fn the_committer_appends_light_load_itself_and_hands_heavy_load_on(db: TestDb) {
    use std::future::Future;
    use std::task::{Context, Waker};
    let store = db.open();
    for n in 0..10 {
        store.transact_blocking(|tx| tx.insert("items", object(&[("n", Value::Int64(n))]))).unwrap();
    }
    let light = store.stats();
    assert_eq!(light.groups_appended_by_committer, light.batches, "one at a time: {light:?}");

    let mut context = Context::from_waker(Waker::noop());
    for n in 10..1_000 {
        let mut transaction = store.begin();
        transaction.insert("items", object(&[("n", Value::Int64(n))])).unwrap();
        let polled = std::pin::pin!(store.commit(transaction)).poll(&mut context);
        assert!(!matches!(polled, std::task::Poll::Ready(Err(_))), "{polled:?}");
    }
    // Committed after every queued one: once it is acknowledged, they are durable too.
    store.transact_blocking(|tx| tx.insert("items", object(&[("n", Value::Int64(1_000))]))).unwrap();
    let heavy = store.stats();
    assert_eq!(heavy.commits - light.commits, 991, "{heavy:?}");
    assert!(
        heavy.batches - light.batches > heavy.groups_appended_by_committer - light.groups_appended_by_committer,
        "a queue is handed on: {heavy:?}"
    );
    drop(store);
    let snapshot = db.open().snapshot();
    let numbers: Vec<i64> = snapshot.documents("items").iter().map(|document| int(document, "n")).collect();
    assert_eq!(numbers.len(), 1_001, "every commit is durable");
}

fn the_instance_secret_is_random_and_kept_with_the_data(db: TestDb) {
    let secret = *db.open().secret();
    assert_eq!(*db.open().secret(), secret, "reopening keeps the secret");
    assert_ne!(*db.another().open().secret(), secret, "another database has another secret");
}

fn a_transaction_older_than_the_write_log_fails_as_too_old_and_is_retryable(db: TestDb) {
    use livebase_store::limits::MAX_WRITE_LOG_KEYS;
    let store = db.open();
    let (id, _) = store.transact_blocking(|tx| tx.insert("counters", object(&[("n", Value::Int64(0))]))).unwrap();
    let mut old = store.begin();
    old.get(id).unwrap();
    old.patch(id, BTreeMap::from([("n".to_owned(), Some(Value::Int64(1)))])).unwrap();

    // Each insert writes two keys (`by_id`, `by_creation_time`): push the log past its bound.
    let per_commit = 10_000;
    for _ in 0..=(MAX_WRITE_LOG_KEYS / (2 * per_commit)) {
        store
            .transact_blocking(|tx| (0..per_commit).try_for_each(|_| tx.insert("filler", object(&[])).map(drop)))
            .unwrap();
    }
    let error = store.commit_blocking(old).unwrap_err();
    assert!(matches!(error, CommitError::TooOld { .. }), "{error}");
    assert!(error.is_retryable());
}

fn bytes_read_and_written_per_transaction_are_limited(db: TestDb) {
    use livebase_store::limits::{MAX_TRANSACTION_BYTES_READ, MAX_TRANSACTION_BYTES_WRITTEN};
    let store = db.open();
    // Documents of about 1 MiB: 16 of them fill a transaction's write budget.
    let big = || object(&[("blob", Value::Bytes(vec![7; (1 << 20) - 200]))]);
    let mut tx = store.begin();
    let mut written = 0;
    let error = loop {
        match tx.insert("big", big()) {
            Ok(_) => written += 1,
            Err(error) => break error,
        }
    };
    assert_eq!(error, TransactionError::WriteLimit { what: "bytes", limit: MAX_TRANSACTION_BYTES_WRITTEN });
    assert_eq!(written, MAX_TRANSACTION_BYTES_WRITTEN / (1 << 20), "the limit is reached, not undercut");
    store.commit_blocking(tx).unwrap();
    store.transact_blocking(|tx| (0..2).try_for_each(|_| tx.insert("big", big()).map(drop))).unwrap();

    let mut tx = store.begin();
    let results: Vec<_> = tx.scan("big", "by_creation_time", KeyRange::all(), Order::Asc).unwrap().collect();
    let ok = results.iter().filter(|result| result.is_ok()).count();
    assert_eq!(ok, MAX_TRANSACTION_BYTES_READ / (1 << 20), "reads stop at the byte limit");
    let limit = TransactionError::ReadLimit { what: "bytes", limit: MAX_TRANSACTION_BYTES_READ };
    assert_eq!(results.last().unwrap().as_ref().unwrap_err(), &limit);
}

fn counts_and_offsets_agree_with_scans_and_conflict_only_inside_what_they_read(db: TestDb) {
    let store = db.open();
    store.apply_schema_blocking(&Schema { tables: vec![TableSchema::new("items").index("by_n", &["n"])] }).unwrap();
    store
        .transact_blocking(|tx| {
            (0..500).try_for_each(|n| tx.insert("items", object(&[("n", Value::Int64(n % 50))])).map(drop))
        })
        .unwrap();
    let range = |low: i64, high: i64| KeyRange { start: key(Value::Int64(low)), end: Some(key(Value::Int64(high))) };
    let mut tx = store.begin();
    for (low, high) in [(0, 50), (10, 20), (49, 50), (20, 10), (60, 70)] {
        let scanned: Vec<Vec<u8>> = {
            let mut scan = tx.scan("items", "by_n", range(low, high), Order::Asc).unwrap();
            let mut keys = Vec::new();
            while scan.next().is_some() {
                keys.push(scan.last_key().unwrap().to_vec());
            }
            keys
        };
        assert_eq!(tx.count("items", "by_n", range(low, high)).unwrap(), scanned.len(), "count of [{low}, {high})");
        for offset in [0, 1, 7, scanned.len().saturating_sub(1), scanned.len()] {
            let ascending = tx.key_at_offset("items", "by_n", range(low, high), Order::Asc, offset).unwrap();
            assert_eq!(ascending.as_ref(), scanned.get(offset), "ascending offset {offset} of [{low}, {high})");
            let descending = tx.key_at_offset("items", "by_n", range(low, high), Order::Desc, offset).unwrap();
            let expected = scanned.len().checked_sub(offset + 1).and_then(|index| scanned.get(index));
            assert_eq!(descending.as_ref(), expected, "descending offset {offset} of [{low}, {high})");
        }
    }
    assert_eq!(tx.count("missing", "by_creation_time", KeyRange::all()).unwrap(), 0);

    // A count reads its whole range; a write outside it does not conflict, one inside does.
    let mut counter = store.begin();
    assert_eq!(counter.count("items", "by_n", range(10, 20)).unwrap(), 100);
    counter.insert("log", object(&[])).unwrap();
    store.transact_blocking(|tx| tx.insert("items", object(&[("n", Value::Int64(30))]))).unwrap();
    store.commit_blocking(counter).expect("a write outside the counted range does not conflict");
    let mut counter = store.begin();
    counter.count("items", "by_n", range(10, 20)).unwrap();
    counter.insert("log", object(&[])).unwrap();
    store.transact_blocking(|tx| tx.insert("items", object(&[("n", Value::Int64(15))]))).unwrap();
    assert!(matches!(store.commit_blocking(counter), Err(CommitError::Conflict { .. })));
}

#[test]
fn a_damaged_data_directory_fails_to_open_with_a_clear_error() {
    let damage = |file: &str, statement: &str| {
        let directory = tempfile::tempdir().unwrap();
        let store = open(directory.path());
        store.transact_blocking(|tx| tx.insert("items", object(&[("n", Value::Int64(1))]))).unwrap();
        drop(store);
        let connection = rusqlite::Connection::open(directory.path().join(file)).unwrap();
        connection.execute(statement, []).unwrap();
        drop(connection);
        Store::open(StoreConfig::new(directory.path())).err().expect("a damaged directory is refused").to_string()
    };
    let error = damage("log.sqlite3", "INSERT INTO log (ts, entry) VALUES (9000000000000000000, x'0102')");
    assert!(error.contains("corrupt") && error.contains("log entry at 9000000000000000000"), "{error}");
    let error = damage("checkpoint.sqlite3", "UPDATE documents SET document = x'00' WHERE table_number > 10000");
    assert!(error.contains("corrupt") && error.contains("document"), "{error}");
    let error = damage("checkpoint.sqlite3", "UPDATE meta SET value = 99 WHERE key = 'format_version'");
    assert!(error.contains("format version 99"), "{error}");
}

fn system_tables_are_written_only_through_system_access(db: TestDb) {
    let store = db.open();
    let (id, _) =
        store.transact_blocking(|tx| tx.system_tables().insert("_jobs", object(&[("n", Value::Int64(1))]))).unwrap();
    for error in [
        store.transact_blocking(|tx| tx.insert("_jobs", object(&[]))).unwrap_err(),
        store.transact_blocking(|tx| tx.delete(id)).unwrap_err(),
        store.transact_blocking(|tx| tx.replace(id, object(&[]))).unwrap_err(),
    ] {
        assert_eq!(error, CommitError::Transaction(TransactionError::SystemTable("_jobs".into())));
    }
    store
        .transact_blocking(|tx| tx.system_tables().patch(id, BTreeMap::from([("n".to_owned(), Some(Value::Int64(2)))])))
        .unwrap();
    assert_eq!(int(&store.snapshot().get(id).unwrap(), "n"), 2);
    // User tables list only user tables.
    assert!(store.snapshot().table_names().is_empty());
    let mut tx = store.begin();
    assert_eq!(tx.scan("_jobs", "by_creation_time", KeyRange::all(), Order::Asc).unwrap().count(), 1, "readable");
    drop(tx);
    store.transact_blocking(|tx| tx.system_tables().delete(id)).unwrap();
    assert!(store.snapshot().get(id).is_none());
}

fn redeclaring_an_index_with_other_fields_rebuilds_it(db: TestDb) {
    let store = db.open();
    let schema = |fields: &[&str]| Schema { tables: vec![TableSchema::new("items").index("by_ab", fields)] };
    store.apply_schema_blocking(&schema(&["a", "b"])).unwrap();
    store
        .transact_blocking(|tx| {
            tx.insert("items", object(&[("a", Value::Int64(1)), ("b", Value::Int64(2))]))?;
            tx.insert("items", object(&[("a", Value::Int64(2)), ("b", Value::Int64(1))]))
        })
        .unwrap();
    let first_b = |store: &Store| {
        let mut tx = store.begin();
        let fields: Vec<String> =
            tx.index_fields("items", "by_ab").unwrap().unwrap().iter().map(ToString::to_string).collect();
        let document = tx.scan("items", "by_ab", KeyRange::all(), Order::Asc).unwrap().next().unwrap().unwrap();
        (fields, int(&document, "b"))
    };
    assert_eq!(first_b(&store), (vec!["a".into(), "b".into(), "_creationTime".into(), "_id".into()], 2));
    store.apply_schema_blocking(&schema(&["b", "a"])).unwrap();
    assert_eq!(first_b(&store), (vec!["b".into(), "a".into(), "_creationTime".into(), "_id".into()], 1));
    drop(store);
    let store = db.open();
    assert_eq!(first_b(&store).1, 1, "the redeclared index survives a restart");
    store.transact_blocking(|tx| tx.insert("items", object(&[]))).expect("the store still takes commits");
}

fn transactions_can_begin_at_a_retained_past_timestamp(db: TestDb) {
    let store = db.open();
    let (id, first) = store.transact_blocking(|tx| tx.insert("items", object(&[("n", Value::Int64(1))]))).unwrap();
    store.transact_blocking(|tx| tx.patch(id, BTreeMap::from([("n".to_owned(), Some(Value::Int64(2)))]))).unwrap();
    let mut past = store.begin_at(first).expect("recent states are retained");
    assert_eq!(past.begin_ts(), first);
    assert_eq!(int(&past.get(id).unwrap().unwrap(), "n"), 1, "reads see the state as of `first`");
    assert!(
        store.begin_at(Timestamp::from_nanos(first.nanos() - 1)).is_some_and(|mut tx| tx.get(id).unwrap().is_none())
    );
    let future = Timestamp::from_nanos(store.snapshot().ts().nanos() + 1);
    assert!(store.begin_at(future).is_none(), "the future is not readable yet");
}

fn system_schemas_declare_indexes_on_system_tables_only(db: TestDb) {
    let store = db.open();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        let jobs = Schema { tables: vec![TableSchema::new("_jobs").index("by_state", &["state"])] };
        let error = store.apply_schema(&jobs).await.unwrap_err();
        assert!(matches!(error, CommitError::Transaction(TransactionError::InvalidSchema(_))), "{error}");
        store.apply_system_schema(&jobs).await.unwrap();
        assert_eq!(store.snapshot().index_names("_jobs").unwrap(), vec!["by_id", "by_creation_time", "by_state"]);
        for bad in ["users", "_tables"] {
            let schema = Schema { tables: vec![TableSchema::new(bad)] };
            assert!(store.apply_system_schema(&schema).await.is_err(), "`{bad}` is not a system table to declare");
        }
    });
}

common::on_both_backends!(
    committed_writes_survive_reopen,
    conflicting_transactions_abort_with_a_typed_error,
    writes_outside_the_read_set_do_not_conflict,
    a_scan_reads_only_what_was_consumed,
    reading_a_missing_table_conflicts_with_its_creation,
    transactions_read_their_own_writes,
    adding_an_index_back_fills_it_and_survives_restart,
    schema_validation_rejects_bad_writes_and_bad_schemas,
    bad_input_is_rejected_and_changes_nothing,
    per_transaction_limits_are_enforced_at_the_boundary,
    change_stream_publishes_commits_in_order_with_old_and_new,
    checkpoints_fold_the_log_and_recovery_combines_both,
    commits_left_in_the_pipeline_at_shutdown_are_all_checkpointed,
    the_committer_appends_light_load_itself_and_hands_heavy_load_on,
    the_instance_secret_is_random_and_kept_with_the_data,
    a_transaction_older_than_the_write_log_fails_as_too_old_and_is_retryable,
    bytes_read_and_written_per_transaction_are_limited,
    counts_and_offsets_agree_with_scans_and_conflict_only_inside_what_they_read,
    system_tables_are_written_only_through_system_access,
    redeclaring_an_index_with_other_fields_rebuilds_it,
    transactions_can_begin_at_a_retained_past_timestamp,
    system_schemas_declare_indexes_on_system_tables_only,
);
