//! The engine against a model: random transactions (inserts, patches, replaces, deletes, gets, index
//! scans, aborts) and restarts, with every read compared to a plain in-memory model.

mod common;

use std::collections::BTreeMap;

use common::{TestDb, int, object};
use livebase_store::{KeyRange, Order, Schema, Store, TableSchema};
use livebase_value::{DocumentId, Value, encode_key_value};
use proptest::prelude::*;

const TABLES: [&str; 2] = ["alpha", "beta"];

#[derive(Clone, Debug)]
enum Op {
    Insert {
        table: usize,
        k: i64,
    },
    Patch {
        pick: usize,
        k: i64,
    },
    Replace {
        pick: usize,
        k: i64,
    },
    Delete {
        pick: usize,
    },
    Get {
        pick: usize,
    },
    /// A scan of `by_k` over `lo <= k < hi`, taking at most `take` documents.
    Scan {
        table: usize,
        lo: i64,
        hi: i64,
        desc: bool,
        take: usize,
    },
}

#[derive(Clone, Debug)]
enum Step {
    Transaction { ops: Vec<Op>, commit: bool },
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..2usize, 0..6i64).prop_map(|(table, k)| Op::Insert { table, k }),
        2 => (any::<usize>(), 0..6i64).prop_map(|(pick, k)| Op::Patch { pick, k }),
        1 => (any::<usize>(), 0..6i64).prop_map(|(pick, k)| Op::Replace { pick, k }),
        1 => any::<usize>().prop_map(|pick| Op::Delete { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Get { pick }),
        2 => (0..2usize, 0..6i64, 0..7i64, any::<bool>(), 0..8usize)
            .prop_map(|(table, lo, hi, desc, take)| Op::Scan { table, lo, hi, desc, take }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (prop::collection::vec(op(), 1..8), prop::bool::weighted(0.85))
            .prop_map(|(ops, commit)| Step::Transaction { ops, commit }),
        1 => Just(Step::Restart),
    ]
}

/// A document as the model sees it.
#[derive(Clone, Debug, PartialEq)]
struct Row {
    table: usize,
    k: i64,
    creation_time: f64,
    /// Bumped by every replace, so replaces are visible.
    version: i64,
}

type Model = BTreeMap<DocumentId, Row>;

fn schema() -> Schema {
    Schema { tables: TABLES.iter().map(|table| TableSchema::new(table).index("by_k", &["k"])).collect() }
}

fn key(k: i64) -> Vec<u8> {
    let mut key = Vec::new();
    encode_key_value(&mut key, Some(&Value::Int64(k)));
    key
}

fn pick(model: &Model, pick: usize) -> Option<DocumentId> {
    (!model.is_empty()).then(|| *model.keys().nth(pick % model.len()).unwrap())
}

fn run_transaction(store: &Store, committed: &mut Model, ops: &[Op], commit: bool) -> Result<(), TestCaseError> {
    let mut model = committed.clone();
    let mut tx = store.begin();
    for op in ops {
        match *op {
            Op::Insert { table, k } => {
                let id =
                    tx.insert(TABLES[table], object(&[("k", Value::Int64(k)), ("version", Value::Int64(0))])).unwrap();
                let creation_time = tx.get(id).unwrap().unwrap().creation_time();
                model.insert(id, Row { table, k, creation_time, version: 0 });
            }
            Op::Patch { pick: choice, k } => {
                let Some(id) = pick(&model, choice) else { continue };
                tx.patch(id, BTreeMap::from([("k".to_owned(), Some(Value::Int64(k)))])).unwrap();
                model.get_mut(&id).unwrap().k = k;
            }
            Op::Replace { pick: choice, k } => {
                let Some(id) = pick(&model, choice) else { continue };
                let row = model.get_mut(&id).unwrap();
                row.k = k;
                row.version += 1;
                tx.replace(id, object(&[("k", Value::Int64(k)), ("version", Value::Int64(row.version))])).unwrap();
            }
            Op::Delete { pick: choice } => {
                let Some(id) = pick(&model, choice) else { continue };
                tx.delete(id).unwrap();
                model.remove(&id);
            }
            Op::Get { pick: choice } => {
                let Some(id) = pick(&model, choice) else { continue };
                let document = tx.get(id).unwrap().expect("the model has it");
                let row = &model[&id];
                prop_assert_eq!((int(&document, "k"), int(&document, "version")), (row.k, row.version));
                prop_assert_eq!(document.creation_time(), row.creation_time);
            }
            Op::Scan { table, lo, hi, desc, take } => {
                let range = KeyRange { start: key(lo), end: Some(key(hi)) };
                let order = if desc { Order::Desc } else { Order::Asc };
                let actual: Vec<DocumentId> = tx
                    .scan(TABLES[table], "by_k", range, order)
                    .unwrap()
                    .take(take)
                    .map(|document| document.unwrap().id())
                    .collect();
                let mut expected: Vec<(i64, f64, String, DocumentId)> = model
                    .iter()
                    .filter(|(_, row)| row.table == table && lo <= row.k && row.k < hi)
                    .map(|(id, row)| (row.k, row.creation_time, id.encode(), *id))
                    .collect();
                expected.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
                if desc {
                    expected.reverse();
                }
                let expected: Vec<DocumentId> = expected.into_iter().take(take).map(|row| row.3).collect();
                prop_assert_eq!(actual, expected);
            }
        }
    }
    if commit {
        store.commit_blocking(tx).expect("single-threaded commits never conflict");
        *committed = model;
    }
    Ok(())
}

fn check_contents(store: &Store, model: &Model) -> Result<(), TestCaseError> {
    let snapshot = store.snapshot();
    let mut actual = Model::new();
    for (table, name) in TABLES.iter().enumerate() {
        for document in snapshot.documents(name) {
            let row = Row {
                table,
                k: int(&document, "k"),
                creation_time: document.creation_time(),
                version: int(&document, "version"),
            };
            actual.insert(document.id(), row);
        }
    }
    prop_assert_eq!(&actual, model);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_model_on_sqlite(steps in prop::collection::vec(step(), 1..24)) {
        engine_matches_model(TestDb::sqlite(), &steps)?;
    }

    #[test]
    fn engine_matches_model_on_postgres(steps in prop::collection::vec(step(), 1..24)) {
        if let Some(db) = TestDb::postgres() {
            engine_matches_model(db, &steps)?;
        }
    }
}

fn engine_matches_model(db: TestDb, steps: &[Step]) -> Result<(), TestCaseError> {
    // Frequent checkpoints, so restarts recover from checkpoint + log, not from the log alone.
    let db = db.with_config(|config| config.checkpoint_after_commits = 3);
    let mut store = db.open();
    store.apply_schema_blocking(&schema()).unwrap();
    let mut model = Model::new();
    for step in steps {
        match step {
            Step::Transaction { ops, commit } => run_transaction(&store, &mut model, ops, *commit)?,
            Step::Restart => {
                drop(store);
                store = db.open();
                check_contents(&store, &model)?;
            }
        }
    }
    check_contents(&store, &model)
}
