//! The PostgreSQL backend's own guarantees: one writer at a time through a lease, fencing of a
//! writer that lost it, and clear errors for bad configuration and damaged data. (The engine's
//! behaviour on PostgreSQL is checked by the shared suites in `store.rs`, `model.rs`, ...)

mod common;

use std::time::Duration;

use common::{TestDb, int, object};
use livebase_store::{CommitError, OpenError, PostgresConfig, Storage, Store, StoreConfig};
use livebase_value::Value;

fn postgres_config(db: &TestDb) -> PostgresConfig {
    match db.config().storage {
        Storage::Postgres(config) => config,
        _ => unreachable!("a PostgreSQL test database"),
    }
}

/// Makes the current lease look expired, as if its writer had stalled for longer than its TTL.
fn expire_lease(db: &TestDb) {
    db.execute("UPDATE lease SET expires_at = now() - interval '1 second'");
}

#[test]
fn a_second_writer_is_refused_while_the_first_holds_the_lease() {
    let Some(db) = TestDb::postgres() else { return };
    let first = db.open();
    first.transact_blocking(|tx| tx.insert("items", object(&[("n", Value::Int64(1))]))).unwrap();
    let error = Store::open(db.config()).err().expect("a second writer is refused");
    assert!(matches!(error, OpenError::Leased { epoch: 1, .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains("in use by another Livebase writer") && message.contains("pid"), "{message}");
    first.transact_blocking(|tx| tx.insert("items", object(&[("n", Value::Int64(2))]))).expect("the first goes on");
    drop(first);
    let second = db.open();
    assert_eq!(second.snapshot().document_count("items"), 2, "a released lease is taken at once");
    assert_eq!(db.query_one_i64("SELECT epoch FROM lease"), 2);
}

#[test]
fn a_writer_that_lost_its_lease_commits_nothing_after_the_takeover() {
    let Some(db) = TestDb::postgres() else { return };
    let old = db.open();
    let (kept, _) = old.transact_blocking(|tx| tx.insert("items", object(&[("n", Value::Int64(1))]))).unwrap();
    expire_lease(&db);
    let new = db.open();
    assert_eq!(int(&new.snapshot().get(kept).unwrap(), "n"), 1, "the new writer recovered the old one's commits");
    assert!(!old.stopped_by_fence(), "nothing was refused yet");

    let error = old.transact_blocking(|tx| tx.insert("items", object(&[("n", Value::Int64(2))]))).unwrap_err();
    let CommitError::LeaseLost(reason) = &error else { panic!("the old writer is fenced: {error}") };
    assert!(reason.contains("lost its PostgreSQL lease (epoch 1)") && reason.contains("epoch 2"), "{reason}");
    assert!(
        old.lost_lease() && old.stopped_by_fence(),
        "the old writer knows, and that the refused commit wrote nothing"
    );
    assert!(!new.lost_lease() && !new.stopped_by_fence());
    let error = old.transact_blocking(|tx| tx.insert("items", object(&[]))).unwrap_err();
    assert!(matches!(error, CommitError::LeaseLost(_)), "and stays stopped: {error}");

    new.transact_blocking(|tx| tx.insert("items", object(&[("n", Value::Int64(3))]))).unwrap();
    drop(old); // Its shutdown must neither release the new writer's lease nor write anything.
    new.transact_blocking(|tx| tx.insert("items", object(&[("n", Value::Int64(4))]))).expect("still the writer");
    drop(new);
    let store = db.open();
    let mut values: Vec<i64> = store.snapshot().documents("items").iter().map(|document| int(document, "n")).collect();
    values.sort_unstable();
    assert_eq!(values, vec![1, 3, 4], "nothing the fenced writer tried is visible");
}

/// The log's rows as `(ts, epoch)`, in timestamp order: which writer appended each group.
fn log_epochs(db: &TestDb) -> Vec<(i64, Option<i64>)> {
    let config = postgres_config(db);
    let mut client = postgres::Client::connect(&config.url, postgres::NoTls).unwrap();
    let query = format!("SELECT ts, epoch FROM {}.log ORDER BY ts", config.schema);
    client.query(&query, &[]).unwrap().iter().map(|row| (row.get(0), row.get(1))).collect()
}

/// Checks `rows` (read after the takeover) against `before` (read at it): the old writer appended
/// nothing more, everything new is the new writer's (`epoch`) and comes after, and epochs never
/// decrease in timestamp order. Rows of `before` may have been truncated since.
fn assert_appended_only_by(rows: &[(i64, Option<i64>)], before: &[(i64, Option<i64>)], epoch: i64) {
    let last_before = before.iter().map(|(ts, _)| *ts).max().unwrap_or(0);
    for row in rows {
        if before.contains(row) {
            continue;
        }
        assert!(row.1 == Some(epoch) && row.0 > last_before, "{row:?} is not epoch {epoch}'s: {rows:?}");
    }
    assert!(rows.windows(2).all(|pair| pair[0].1 <= pair[1].1), "epochs never decrease: {rows:?}");
    assert!(rows.iter().any(|(_, written_by)| *written_by == Some(epoch)), "{rows:?}");
}

#[test]
fn every_log_row_names_the_epoch_of_the_writer_that_appended_it() {
    let Some(db) = TestDb::postgres() else { return };
    let old = db.open();
    for n in 0..2 {
        old.transact_blocking(|tx| tx.insert("items", object(&[("n", Value::Int64(n))]))).unwrap();
    }
    let before = log_epochs(&db);
    assert!(before.len() >= 2 && before.iter().all(|(_, epoch)| *epoch == Some(1)), "{before:?}");
    expire_lease(&db);
    let new = db.open();
    old.transact_blocking(|tx| tx.insert("items", object(&[("n", Value::Int64(-1))]))).expect_err("fenced");
    for n in 2..4 {
        new.transact_blocking(|tx| tx.insert("items", object(&[("n", Value::Int64(n))]))).unwrap();
    }
    assert_appended_only_by(&log_epochs(&db), &before, 2);
    assert_eq!(db.query_one_i64("SELECT epoch FROM lease"), 2);
}

/// A log made before rows had an epoch: opening adds the column, the old rows (null there) still
/// recover, and new rows record their writer's epoch.
#[test]
fn a_log_from_before_the_epoch_column_gains_it_on_open() {
    let Some(db) = TestDb::postgres() else { return };
    let old = db.open();
    let (kept, _) = old.transact_blocking(|tx| tx.insert("items", object(&[("n", Value::Int64(1))]))).unwrap();
    db.execute("ALTER TABLE log DROP COLUMN epoch");
    expire_lease(&db);
    let new = db.open();
    assert_eq!(int(&new.snapshot().get(kept).unwrap(), "n"), 1, "the old rows are recovered");
    let before = log_epochs(&db);
    assert!(!before.is_empty() && before.iter().all(|(_, epoch)| epoch.is_none()), "{before:?}");
    new.transact_blocking(|tx| tx.insert("items", object(&[("n", Value::Int64(2))]))).unwrap();
    assert_appended_only_by(&log_epochs(&db), &before, 2);
    drop(old);
    drop(new);
    assert_eq!(db.open().snapshot().document_count("items"), 2);
}

#[test]
fn an_expired_lease_is_not_renewed_and_fences_its_writer() {
    let Some(db) = TestDb::postgres() else { return };
    let store = db.open();
    store.transact_blocking(|tx| tx.insert("items", object(&[]))).unwrap();
    expire_lease(&db);
    let error = store.transact_blocking(|tx| tx.insert("items", object(&[]))).unwrap_err();
    let CommitError::LeaseLost(reason) = &error else { panic!("an expired lease fences: {error}") };
    assert!(reason.contains("expired before it was renewed"), "{reason}");
    drop(store);
    assert_eq!(db.open().snapshot().document_count("items"), 1);
}

#[test]
fn a_waiting_writer_takes_over_once_the_lease_is_released() {
    let Some(db) = TestDb::postgres() else { return };
    let first = db.open();
    first.transact_blocking(|tx| tx.insert("items", object(&[]))).unwrap();
    let patient = StoreConfig::postgres(PostgresConfig { lease_wait: Duration::from_secs(60), ..postgres_config(&db) });
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| Store::open(patient));
        // The waiter can only get in once `first` lets go: dropping it releases the lease.
        first.transact_blocking(|tx| tx.insert("items", object(&[]))).unwrap();
        drop(first);
        let second = waiting.join().unwrap().expect("the waiting writer opens once the lease is free");
        assert_eq!(second.snapshot().document_count("items"), 2);
    });
}

#[test]
fn bad_configuration_is_refused_clearly_and_creates_nothing() {
    let Some(db) = TestDb::postgres() else { return };
    let base = postgres_config(&db);
    let cases = [
        (PostgresConfig { schema: "Robert'); DROP TABLE".into(), ..base.clone() }, "schema name"),
        (PostgresConfig { schema: String::new(), ..base.clone() }, "schema name"),
        (PostgresConfig { schema: "a".repeat(64), ..base.clone() }, "schema name"),
        (PostgresConfig { lease_ttl: Duration::from_millis(499), ..base.clone() }, "below the minimum"),
        (PostgresConfig { lease_wait: Duration::from_secs(601), ..base.clone() }, "over the maximum"),
        (PostgresConfig { url: "postgres://127.0.0.1:5432/test?bogus_option=1".into(), ..base.clone() }, "connection"),
    ];
    for (config, expected) in cases {
        let error = Store::open(StoreConfig::postgres(config)).err().expect("refused").to_string();
        assert!(error.contains(expected), "{error}");
    }
    let created = db.query_one_i64(&format!(
        "SELECT count(*) FROM pg_namespace WHERE nspname = '{}' OR nspname LIKE 'a%aaaa'",
        base.schema
    ));
    assert_eq!(created, 0, "nothing was created");
    // The longest valid name is fine.
    let longest = PostgresConfig { schema: format!("livebase_test_{}", "x".repeat(49)), ..base };
    let store = Store::open(StoreConfig::postgres(longest)).expect("a 63-character schema name is valid");
    drop(store);
    db.execute(&format!("DROP SCHEMA livebase_test_{} CASCADE", "x".repeat(49)));
}

#[test]
fn damaged_data_fails_to_open_with_a_clear_error() {
    for (statement, expected) in [
        ("INSERT INTO log (ts, entry) VALUES (9000000000000000000, '\\x0102')", "log entry at 9000000000000000000"),
        ("UPDATE documents SET document = '\\x00' WHERE table_number > 10000", "document"),
        ("UPDATE meta SET value = 99 WHERE key = 'format_version'", "format version 99"),
        ("UPDATE secrets SET value = '\\x00'", "secret"),
    ] {
        let Some(db) = TestDb::postgres() else { return };
        let store = db.open();
        store.transact_blocking(|tx| tx.insert("items", object(&[("n", Value::Int64(1))]))).unwrap();
        drop(store);
        db.execute(statement);
        let error = Store::open(db.config()).err().expect("damaged data is refused").to_string();
        assert!(error.contains("corrupt") && error.contains(expected), "{statement}: {error}");
    }
}

#[test]
fn a_writer_learns_from_its_renewer_that_it_lost_the_lease_before_it_commits_again() {
    let Some(db) = TestDb::postgres() else { return };
    let short = PostgresConfig { lease_ttl: Duration::from_secs(1), ..postgres_config(&db) };
    let store = Store::open(StoreConfig::postgres(short)).unwrap();
    assert!(!store.lost_lease());
    expire_lease(&db);
    // The renewer finds out at its next attempt (every quarter TTL); waited for boundedly.
    let mut lost = false;
    for _ in 0..300 {
        if store.lost_lease() {
            lost = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(lost, "the renewer notices the expired lease");
    assert!(!store.stopped_by_fence(), "no commit was refused yet");
    let error = store.transact_blocking(|tx| tx.insert("items", object(&[]))).unwrap_err();
    assert!(matches!(error, CommitError::LeaseLost(_)), "{error}");
    assert!(store.stopped_by_fence(), "refused before anything was written");
    drop(store);
    assert_eq!(db.open().snapshot().document_count("items"), 0);
}

#[test]
fn the_lease_is_renewed_while_the_writer_runs() {
    let Some(db) = TestDb::postgres() else { return };
    let short = PostgresConfig { lease_ttl: Duration::from_secs(1), ..postgres_config(&db) };
    let store = Store::open(StoreConfig::postgres(short)).unwrap();
    let expiry = || db.query_one_i64("SELECT (extract(epoch FROM expires_at) * 1000000)::bigint FROM lease");
    let first = expiry();
    // Wait for the renewer's update (an event in the database), boundedly.
    let mut renewed = false;
    for _ in 0..300 {
        if expiry() > first {
            renewed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(renewed, "the renewer extends the lease");
    store.transact_blocking(|tx| tx.insert("items", object(&[]))).expect("a renewed lease keeps committing");
}

/// Two crashes in a row (each store leaked, so it never shuts down or checkpoints, then fenced by
/// the next writer): the second writer's log must keep the commits it recovered from the first
/// until a checkpoint holds them, or the third writer finds them gone.
#[test]
fn a_recovered_log_outlives_a_second_crash() {
    let Some(db) = TestDb::postgres() else { return };
    let first = db.open();
    first.transact_blocking(|tx| tx.insert("items", object(&[("n", Value::Int64(1))]))).unwrap();
    std::mem::forget(first);
    expire_lease(&db);
    let second = db.open();
    assert_eq!(second.snapshot().document_count("items"), 1, "recovered from the log");
    // The durability thread truncates after an append, before the next: once the second of these
    // is acknowledged, whatever the first one's append was to truncate is gone.
    for n in 2..4 {
        second.transact_blocking(|tx| tx.insert("items", object(&[("n", Value::Int64(n))]))).unwrap();
    }
    std::mem::forget(second);
    expire_lease(&db);
    let third = Store::open(db.config()).expect("the third writer opens");
    assert_eq!(third.snapshot().document_count("items"), 3, "every acknowledged commit survives two crashes");
}
