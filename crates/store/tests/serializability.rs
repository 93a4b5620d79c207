//! Concurrent read-modify-write transactions (transfers, a counter, list appends) whose committed
//! history is checked: replaying the commits one at a time in timestamp order must reproduce every
//! value each transaction read. That proves commit order is a valid serial order.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use common::{TestDb, int, object};
use livebase_store::{Store, Timestamp};
use livebase_value::{DocumentId, Value};
use rand::Rng;

const ACCOUNTS: usize = 8;
const INITIAL_BALANCE: i64 = 100;
const THREADS: usize = 8;
const TRANSACTIONS_PER_THREAD: usize = 150;

/// Values the test cares about: a balance, the counter, or the list.
#[derive(Clone, Debug, PartialEq)]
enum Cell {
    Number(i64),
    List(Vec<i64>),
}

fn cell(document: &livebase_store::Document) -> Cell {
    match document.get("value") {
        Some(Value::Int64(n)) => Cell::Number(*n),
        Some(Value::Array(items)) => Cell::List(
            items
                .iter()
                .map(|item| if let Value::Int64(n) = item { *n } else { panic!("list item {item:?}") })
                .collect(),
        ),
        other => panic!("value is {other:?}"),
    }
}

fn to_value(cell: &Cell) -> Value {
    match cell {
        Cell::Number(n) => Value::Int64(*n),
        Cell::List(items) => Value::Array(items.iter().map(|n| Value::Int64(*n)).collect()),
    }
}

/// One committed transaction: what it read and what it wrote.
#[derive(Debug)]
struct Committed {
    ts: Timestamp,
    reads: Vec<(DocumentId, Cell)>,
    writes: Vec<(DocumentId, Cell)>,
}

fn concurrent_read_modify_write_history_is_serializable(db: TestDb) {
    let store = db.open();
    let ((accounts, counter, list), _) = store
        .transact_blocking(|tx| {
            let accounts = (0..ACCOUNTS)
                .map(|_| tx.insert("cells", object(&[("value", Value::Int64(INITIAL_BALANCE))])))
                .collect::<Result<Vec<_>, _>>()?;
            let counter = tx.insert("cells", object(&[("value", Value::Int64(0))]))?;
            let list = tx.insert("cells", object(&[("value", Value::Array(Vec::new()))]))?;
            Ok((accounts, counter, list))
        })
        .unwrap();
    let initial: BTreeMap<DocumentId, Cell> =
        store.snapshot().documents("cells").iter().map(|d| (d.id(), cell(d))).collect();

    let history = Arc::new(Mutex::new(Vec::new()));
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let (store, accounts, history) = (store.clone(), accounts.clone(), Arc::clone(&history));
            scope.spawn(move || run_client(&store, thread, &accounts, counter, list, &history));
        }
    });

    let mut history = Arc::try_unwrap(history).unwrap().into_inner().unwrap();
    // A read-only transaction commits at the timestamp it read at, so it goes after that commit.
    history.sort_by_key(|committed| (committed.ts, committed.writes.is_empty()));
    let writers: Vec<Timestamp> = history.iter().filter(|c| !c.writes.is_empty()).map(|c| c.ts).collect();
    assert!(writers.windows(2).all(|pair| pair[0] < pair[1]), "commit timestamps are unique");
    let mut model = initial;
    for committed in &history {
        for (id, seen) in &committed.reads {
            assert_eq!(&model[id], seen, "transaction at {} read a value no serial order explains", committed.ts);
        }
        for (id, value) in &committed.writes {
            model.insert(*id, value.clone());
        }
    }
    let actual: BTreeMap<DocumentId, Cell> =
        store.snapshot().documents("cells").iter().map(|d| (d.id(), cell(d))).collect();
    assert_eq!(actual, model, "the final state is the serial replay of the history");

    let total: i64 = accounts.iter().map(|id| int(&store.snapshot().get(*id).unwrap(), "value")).sum();
    assert_eq!(total, INITIAL_BALANCE * ACCOUNTS as i64, "transfers preserve the total balance");
    let increments = history.iter().filter(|c| c.writes.iter().any(|(id, _)| *id == counter)).count() as i64;
    assert_eq!(actual[&counter], Cell::Number(increments), "no lost counter updates");
    let appended: Vec<i64> = history
        .iter()
        .filter_map(|c| c.writes.iter().find(|(id, _)| *id == list))
        .map(|(_, cell)| match cell {
            Cell::List(items) => *items.last().unwrap(),
            Cell::Number(_) => unreachable!(),
        })
        .collect();
    assert_eq!(actual[&list], Cell::List(appended), "the list holds every append in commit order");
    assert!(history.len() >= THREADS * TRANSACTIONS_PER_THREAD / 2, "most transactions committed: {}", history.len());
}

fn run_client(
    store: &Store,
    thread: usize,
    accounts: &[DocumentId],
    counter: DocumentId,
    list: DocumentId,
    history: &Mutex<Vec<Committed>>,
) {
    let mut rng = rand::rng();
    for sequence in 0..TRANSACTIONS_PER_THREAD {
        let kind = rng.random_range(0..3);
        let (from, to) = (accounts[rng.random_range(0..ACCOUNTS)], accounts[rng.random_range(0..ACCOUNTS)]);
        let amount = rng.random_range(1..40);
        let token = (thread * TRANSACTIONS_PER_THREAD + sequence) as i64;
        let result = store.transact_blocking(|tx| {
            let mut reads = Vec::new();
            let mut writes = Vec::new();
            let mut read =
                |tx: &mut livebase_store::Transaction, id| -> Result<Cell, livebase_store::TransactionError> {
                    let value = cell(&tx.get(id)?.expect("cells are never deleted"));
                    reads.push((id, value.clone()));
                    Ok(value)
                };
            match kind {
                0 => {
                    let (Cell::Number(a), Cell::Number(b)) = (read(tx, from)?, read(tx, to)?) else { unreachable!() };
                    if from != to && a >= amount {
                        writes.push((from, Cell::Number(a - amount)));
                        writes.push((to, Cell::Number(b + amount)));
                    }
                }
                1 => {
                    let Cell::Number(n) = read(tx, counter)? else { unreachable!() };
                    writes.push((counter, Cell::Number(n + 1)));
                }
                _ => {
                    let Cell::List(mut items) = read(tx, list)? else { unreachable!() };
                    items.push(token);
                    writes.push((list, Cell::List(items)));
                }
            }
            for (id, value) in &writes {
                tx.patch(*id, BTreeMap::from([("value".to_owned(), Some(to_value(value)))]))?;
            }
            Ok((reads, writes))
        });
        match result {
            Ok(((reads, writes), ts)) => history.lock().unwrap().push(Committed { ts, reads, writes }),
            Err(error) => assert!(error.is_retryable(), "only retry exhaustion may fail: {error}"),
        }
    }
}

common::on_both_backends!(concurrent_read_modify_write_history_is_serializable);
