//! Concurrent read-modify-write transactions (transfers, a counter, list appends) whose committed
//! history is checked: replaying the commits one at a time in timestamp order must reproduce every
//! value each transaction read. That proves commit order is a valid serial order. Once from threads
//! through `transact_blocking` (which retries with backoff at the durable state), once from async
//! tasks through `transact` (which begins at the accepted state and retries in the conflict lane).

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use common::{TestDb, int, object};
use livebase_store::{Store, Timestamp, Transaction, TransactionError};
use livebase_value::{DocumentId, Value};
use rand::Rng;

const ACCOUNTS: usize = 8;
const INITIAL_BALANCE: i64 = 100;
const THREADS: usize = 8;
const TRANSACTIONS_PER_THREAD: usize = 150;
/// Async clients: more of them than threads, all on a few hot cells, as contention.
const TASKS: usize = 32;
const TRANSACTIONS_PER_TASK: usize = 60;

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
    let committed = check_history(db, |store, accounts, counter, list, history| {
        std::thread::scope(|scope| {
            for thread in 0..THREADS {
                let (store, accounts, history) = (store.clone(), accounts.to_vec(), Arc::clone(history));
                scope.spawn(move || {
                    let mut rng = rand::rng();
                    for sequence in 0..TRANSACTIONS_PER_THREAD {
                        let token = (thread * TRANSACTIONS_PER_THREAD + sequence) as i64;
                        let body = transaction(&mut rng, &accounts, counter, list, token);
                        record(store.transact_blocking(body), &history);
                    }
                });
            }
        });
    });
    assert!(committed >= THREADS * TRANSACTIONS_PER_THREAD / 2, "most transactions committed: {committed}");
}

fn contended_async_transactions_are_serializable_and_all_commit(db: TestDb) {
    let committed = check_history(db, |store, accounts, counter, list, history| {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async {
            let tasks: Vec<_> = (0..TASKS)
                .map(|task| {
                    let (store, accounts, history) = (store.clone(), accounts.to_vec(), Arc::clone(history));
                    tokio::spawn(async move {
                        for sequence in 0..TRANSACTIONS_PER_TASK {
                            let token = (task * TRANSACTIONS_PER_TASK + sequence) as i64;
                            let body = transaction(&mut rand::rng(), &accounts, counter, list, token);
                            record(store.transact(body).await, &history);
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
    });
    // Retries take turns in the conflict lane, so none runs out of attempts.
    assert_eq!(committed, TASKS * TRANSACTIONS_PER_TASK, "every transaction committed");
}

/// Sets up the cells, lets `clients` run transactions on them, checks the history they recorded and
/// returns how many committed.
fn check_history(
    db: TestDb,
    clients: impl FnOnce(&Store, &[DocumentId], DocumentId, DocumentId, &Arc<Mutex<Vec<Committed>>>),
) -> usize {
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
    clients(&store, &accounts, counter, list, &history);

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
    history.len()
}

type Outcome = Result<(Effects, Timestamp), livebase_store::CommitError>;

fn record(outcome: Outcome, history: &Mutex<Vec<Committed>>) {
    match outcome {
        Ok(((reads, writes), ts)) => history.lock().unwrap().push(Committed { ts, reads, writes }),
        Err(error) => assert!(error.is_retryable(), "only retry exhaustion may fail: {error}"),
    }
}

/// What a transaction read and what it wrote.
type Effects = (Vec<(DocumentId, Cell)>, Vec<(DocumentId, Cell)>);
type Body = dyn FnMut(&mut Transaction) -> Result<Effects, TransactionError> + Send;

/// A random transfer, counter increment or list append, recording what it read and wrote.
fn transaction(
    rng: &mut impl Rng,
    accounts: &[DocumentId],
    counter: DocumentId,
    list: DocumentId,
    token: i64,
) -> Box<Body> {
    let kind = rng.random_range(0..3);
    let (from, to) = (accounts[rng.random_range(0..ACCOUNTS)], accounts[rng.random_range(0..ACCOUNTS)]);
    let amount = rng.random_range(1..40);
    Box::new(move |tx| {
        let mut reads = Vec::new();
        let mut writes = Vec::new();
        let mut read = |tx: &mut Transaction, id| -> Result<Cell, TransactionError> {
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
    })
}

common::on_both_backends!(
    concurrent_read_modify_write_history_is_serializable,
    contended_async_transactions_are_serializable_and_all_commit
);
