//! The read set of a query is exact, tested from the side that matters for reactivity: for random data,
//! queries and commits, a commit that writes no key of the query's read set never changes the query's
//! result. (The other side, that read sets are not "everything", is in `queries.rs`: a `take(k)` reads up
//! to its k-th key, a filtered `first()` up to its first match.)

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::{TestStore, object, open};
use livebase_query::{Direction, Journal, PaginationOptions, Query, QueryError, field};
use livebase_store::{Order, TableSchema};
use livebase_value::{Object, Value};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

#[derive(Clone, Debug)]
enum Source {
    All,
    AEquals(i64),
    AAtMost(i64),
    AEqualsBThrough(i64, i64, i64),
}

#[derive(Clone, Debug)]
enum Terminal {
    Collect,
    Take(usize),
    First,
    Paginate { num_items: usize, maximum_rows_read: Option<usize>, backward: bool, pinned: bool },
}

#[derive(Clone, Debug)]
struct QueryCase {
    source: Source,
    descending: bool,
    /// Keep documents with `b != n`.
    b_is_not: Option<i64>,
    terminal: Terminal,
}

#[derive(Clone, Debug)]
enum Write {
    Insert(Object),
    Delete(usize),
    Replace(usize, Object),
}

fn document() -> impl Strategy<Value = Object> {
    (prop::option::of(0..4i64), 0..3i64).prop_map(|(a, b)| match a {
        Some(a) => object(&[("a", Value::Int64(a)), ("b", Value::Int64(b))]),
        None => object(&[("b", Value::Int64(b))]),
    })
}

fn query_case() -> impl Strategy<Value = QueryCase> {
    let source = prop_oneof![
        Just(Source::All),
        (0..4i64).prop_map(Source::AEquals),
        (0..4i64).prop_map(Source::AAtMost),
        (0..4i64, 0..3i64, 0..3i64).prop_map(|(a, low, high)| Source::AEqualsBThrough(a, low, high)),
    ];
    let terminal = prop_oneof![
        Just(Terminal::Collect),
        (0..5usize).prop_map(Terminal::Take),
        Just(Terminal::First),
        (1..5usize, prop::option::of(1..5usize), any::<bool>(), any::<bool>()).prop_map(
            |(num_items, maximum_rows_read, backward, pinned)| Terminal::Paginate {
                num_items,
                maximum_rows_read,
                backward,
                pinned
            }
        ),
    ];
    (source, any::<bool>(), prop::option::of(0..3i64), terminal)
        .prop_map(|(source, descending, b_is_not, terminal)| QueryCase { source, descending, b_is_not, terminal })
}

fn build(table: &str, case: &QueryCase) -> Query {
    let mut query = match case.source {
        Source::All => Query::table(table),
        Source::AEquals(a) => Query::table(table).with_index("by_ab", |q| q.eq("a", a)),
        Source::AAtMost(a) => Query::table(table).with_index("by_ab", |q| q.lte("a", a)),
        Source::AEqualsBThrough(a, low, high) => {
            Query::table(table).with_index("by_ab", |q| q.eq("a", a).gte("b", low).lte("b", high))
        }
    };
    if let Some(b) = case.b_is_not {
        query = query.filter(field("b").neq(b));
    }
    query.order(if case.descending { Order::Desc } else { Order::Asc })
}

fn pagination_options(terminal: &Terminal) -> PaginationOptions {
    let Terminal::Paginate { num_items, maximum_rows_read, backward, .. } = *terminal else {
        panic!("{terminal:?} does not paginate")
    };
    PaginationOptions {
        maximum_rows_read,
        direction: if backward { Direction::Backward } else { Direction::Forward },
        ..PaginationOptions::new(num_items, None)
    }
}

/// Runs the query in a fresh transaction: its result (rendered comparable) and its read set.
fn run(
    store: &TestStore,
    query: &Query,
    case: &QueryCase,
    journal: Option<&str>,
) -> Result<(String, livebase_store::ReadSet), QueryError> {
    let mut tx = store.store.begin();
    let result = match case.terminal {
        Terminal::Collect => format!("{:?}", query.collect(&mut tx)?),
        Terminal::Take(n) => format!("{:?}", query.take(&mut tx, n)?),
        Terminal::First => format!("{:?}", query.first(&mut tx)?),
        Terminal::Paginate { .. } => {
            let mut journal = Journal::new(store.key(), journal)?;
            format!("{:?}", query.paginate(&mut tx, &mut journal, &pagination_options(&case.terminal))?)
        }
    };
    let mut read_set = tx.read_set().clone();
    read_set.normalize();
    Ok((result, read_set))
}

fn writes_outside_the_read_set_change_nothing(
    store: &TestStore,
    table: &str,
    documents: Vec<Object>,
    case: QueryCase,
    writes: Vec<Write>,
) -> Result<(), TestCaseError> {
    let ids = store.insert_all(table, documents);
    let query = build(table, &case);
    let journal = match case.terminal {
        Terminal::Paginate { pinned: true, .. } => {
            // The journal of a first run, so the runs below are re-runs of a pinned page.
            let mut journal = Journal::new(store.key(), None).unwrap();
            query.paginate(&mut store.store.begin(), &mut journal, &pagination_options(&case.terminal)).unwrap();
            journal.finish()
        }
        _ => None,
    };
    let before = run(store, &query, &case, journal.as_deref());
    let mut changes = store.store.subscribe();
    store
        .store
        .transact_blocking(|tx| {
            for write in &writes {
                match write {
                    Write::Insert(document) => drop(tx.insert(table, document.clone())?),
                    Write::Delete(pick) if !ids.is_empty() => {
                        let id = ids[pick % ids.len()];
                        if tx.get(id)?.is_some() {
                            tx.delete(id)?;
                        }
                    }
                    Write::Replace(pick, document) if !ids.is_empty() => {
                        let id = ids[pick % ids.len()];
                        if tx.get(id)?.is_some() {
                            tx.replace(id, document.clone())?;
                        }
                    }
                    Write::Delete(_) | Write::Replace(..) => {}
                }
            }
            Ok(())
        })
        .unwrap();
    // Published before the commit returns; nothing is published when every write was a no-op.
    let written = changes.try_recv().map(|record| record.keys.clone()).unwrap_or_default();
    let after = run(store, &query, &case, journal.as_deref());
    match (before, after) {
        (Ok((before, read_set)), Ok((after, _))) => {
            if before != after {
                prop_assert!(
                    written.iter().any(|key| read_set.contains(key)),
                    "the result changed, but the commit wrote nothing the query read:\nbefore {before}\nafter {after}"
                );
            }
        }
        // Only a filter error or a read maximum can fail, and neither depends on the writes here.
        (before, after) => prop_assert_eq!(before.map(|(result, _)| result), after.map(|(result, _)| result)),
    }
    Ok(())
}

#[test]
fn a_commit_outside_the_read_set_never_changes_the_result() {
    let store = open();
    let tables = AtomicUsize::new(0);
    let write = prop_oneof![
        document().prop_map(Write::Insert),
        any::<usize>().prop_map(Write::Delete),
        (any::<usize>(), document()).prop_map(|(pick, document)| Write::Replace(pick, document)),
    ];
    let strategy = (prop::collection::vec(document(), 0..12), query_case(), prop::collection::vec(write, 1..4));
    let mut runner = TestRunner::new(Config { failure_persistence: None, ..Config::default() });
    runner
        .run(&strategy, |(documents, case, writes)| {
            // A fresh table per case, in one store: opening a store per case would dominate the run time.
            let table = format!("t{}", tables.fetch_add(1, Ordering::Relaxed));
            store.schema(vec![TableSchema::new(&table).index("by_ab", &["a", "b"])]);
            writes_outside_the_read_set_change_nothing(&store, &table, documents, case, writes)
        })
        .unwrap();
}
