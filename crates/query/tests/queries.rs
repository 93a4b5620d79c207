//! Queries against a real store: sources, ranges, filters, terminals, streams and the read sets they
//! leave behind.

mod common;

use std::sync::Arc;

use common::{TestStore, int, object, open};
use livebase_query::limits::{MAX_EXPRESSION_DEPTH, MAX_QUERY_OPERATORS};
use livebase_query::{Expression, Query, QueryError, RangeComparison, field, literal};
use livebase_store::{Document, Order, TableSchema};
use livebase_value::Value;

/// `t` with an index on `(a, b)` and 4 × 3 documents, every `(a, b)` with `a` in 0..4 and `b` in 0..3,
/// inserted in a shuffled order, plus one document without `a`.
fn grid() -> TestStore {
    let store = open();
    store.schema(vec![TableSchema::new("t").index("by_ab", &["a", "b"])]);
    let mut documents: Vec<_> =
        (0..12i64).map(|i| object(&[("a", Value::Int64(i * 7 % 4)), ("b", Value::Int64(i * 5 % 3))])).collect();
    documents.push(object(&[("b", Value::Int64(0))]));
    store.insert_all("t", documents);
    store
}

fn ids(documents: &[Arc<Document>]) -> Vec<String> {
    documents.iter().map(|document| document.id().to_string()).collect()
}

/// What an index range should hold, worked out without the planner: every document in index order
/// (straight from the store) that satisfies the comparisons.
fn expected(store: &TestStore, order: Order, conditions: &[(RangeComparison, &str, i64)]) -> Vec<String> {
    store
        .index_entries("t", "by_ab", order)
        .into_iter()
        .filter(|(_, document)| {
            conditions.iter().all(|(comparison, name, value)| {
                let actual = document.get(name);
                let bound = Value::Int64(*value);
                let ordering = actual.cmp(&Some(&bound));
                match comparison {
                    RangeComparison::Eq => ordering.is_eq(),
                    RangeComparison::Gt => ordering.is_gt(),
                    RangeComparison::Gte => ordering.is_ge(),
                    RangeComparison::Lt => ordering.is_lt(),
                    RangeComparison::Lte => ordering.is_le(),
                }
            })
        })
        .map(|(_, document)| document.id().to_string())
        .collect()
}

#[test]
fn every_index_range_shape_selects_what_its_comparisons_say() {
    let store = grid();
    let lower = [None, Some(RangeComparison::Gt), Some(RangeComparison::Gte)];
    let upper = [None, Some(RangeComparison::Lt), Some(RangeComparison::Lte)];
    let mut checked = 0;
    for equal_a in [None, Some(1i64), Some(3)] {
        // Bounds on `b` need an equality on `a`; without one they go on `a`.
        let bounded = if equal_a.is_some() { "b" } else { "a" };
        for low in lower {
            for high in upper {
                for (low_value, high_value) in [(0i64, 2i64), (1, 1), (2, 1), (-1, 5)] {
                    let mut conditions = Vec::new();
                    if let Some(a) = equal_a {
                        conditions.push((RangeComparison::Eq, "a", a));
                    }
                    conditions.extend(low.map(|comparison| (comparison, bounded, low_value)));
                    conditions.extend(high.map(|comparison| (comparison, bounded, high_value)));
                    for order in [Order::Asc, Order::Desc] {
                        let query = Query::table("t")
                            .with_index("by_ab", |mut q| {
                                for (comparison, name, value) in &conditions {
                                    q = q.bound(*comparison, name, Some(Value::Int64(*value)));
                                }
                                q
                            })
                            .order(order);
                        let found = ids(&store.collect(&query).unwrap());
                        assert_eq!(found, expected(&store, order, &conditions), "{conditions:?} {order:?}");
                        checked += 1;
                    }
                }
            }
        }
    }
    assert_eq!(checked, 3 * 3 * 3 * 4 * 2);
}

#[test]
fn full_table_scans_follow_creation_order() {
    let store = grid();
    let by_creation =
        ids(&store.index_entries("t", "by_creation_time", Order::Asc).into_iter().map(|(_, d)| d).collect::<Vec<_>>());
    assert_eq!(ids(&store.collect(&Query::table("t")).unwrap()), by_creation);
    let mut newest_first = by_creation.clone();
    newest_first.reverse();
    assert_eq!(ids(&store.collect(&Query::table("t").order(Order::Desc)).unwrap()), newest_first);
    let by_creation_index = Query::table("t").with_index("by_creation_time", |q| q);
    assert_eq!(ids(&store.collect(&by_creation_index).unwrap()), by_creation);
    assert!(store.collect(&Query::table("missing")).unwrap().is_empty());
}

#[test]
fn filters_and_limits_apply_in_order() {
    let store = grid();
    let odd_a = (field("a") % 2i64).eq(1i64);
    let by_ab = || Query::table("t").with_index("by_ab", |q| q.gte("a", 0i64));
    let found = store.collect(&by_ab().filter(odd_a.clone())).unwrap();
    assert_eq!(found.len(), 6);
    assert!(found.iter().all(|document| int(document, "a") % 2 == 1));
    // A limit before a filter counts documents before the filter.
    assert_eq!(store.collect(&by_ab().limit(3).filter(odd_a.clone())).unwrap().len(), 0);
    assert_eq!(store.collect(&by_ab().filter(odd_a.clone()).limit(3)).unwrap().len(), 3);
    // The document without `a` fails `% 2`: the filter's error is the query's.
    let error = store.collect(&Query::table("t").filter(odd_a)).unwrap_err();
    assert_eq!(error, QueryError::Evaluation("Cannot mod undefined (type undefined) and 2n (type int64)".into()));
    let missing_a = store.collect(&Query::table("t").filter(field("a").eq(livebase_query::undefined()))).unwrap();
    assert_eq!(missing_a.len(), 1);
}

#[test]
fn terminals_take_only_what_they_return() {
    let store = grid();
    let a_is = |a: i64| Query::table("t").with_index("by_ab", move |q| q.eq("a", a));
    let mut tx = store.store.begin();
    assert_eq!(a_is(2).take(&mut tx, 2).unwrap().len(), 2);
    assert_eq!(a_is(2).take(&mut tx, 0).unwrap().len(), 0);
    assert_eq!(int(&a_is(2).first(&mut tx).unwrap().unwrap(), "a"), 2);
    assert!(a_is(9).first(&mut tx).unwrap().is_none());
    let one = Query::table("t").with_index("by_ab", |q| q.eq("a", 2i64).eq("b", 1i64));
    assert_eq!(int(&one.unique(&mut tx).unwrap().unwrap(), "b"), 1);
    assert!(a_is(9).unique(&mut tx).unwrap().is_none());
    let both = a_is(2).take(&mut tx, 2).unwrap();
    let error = a_is(2).unique(&mut tx).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "unique() query returned more than one result from table `t`: [{}, {}, ...]",
            both[0].id(),
            both[1].id()
        )
    );
}

#[test]
fn streams_return_results_one_call_at_a_time() {
    let store = grid();
    let query =
        Query::table("t").with_index("by_ab", |q| q.gte("a", 1i64)).filter(field("b").neq(1i64)).order(Order::Desc);
    let all = store.collect(&query).unwrap();
    let mut tx = store.store.begin();
    let mut stream = query.clone().stream(&mut tx).unwrap();
    let mut streamed = Vec::new();
    while let Some(document) = stream.next(&mut tx).unwrap() {
        streamed.push(document);
    }
    assert_eq!(ids(&streamed), ids(&all));
    assert!(stream.next(&mut tx).unwrap().is_none());

    // Two results streamed read exactly what `take(2)` reads.
    let mut streaming = store.store.begin();
    let mut stream = query.clone().stream(&mut streaming).unwrap();
    stream.next(&mut streaming).unwrap();
    stream.next(&mut streaming).unwrap();
    let mut taking = store.store.begin();
    query.take(&mut taking, 2).unwrap();
    let (mut streamed, mut taken) = (streaming.read_set().clone(), taking.read_set().clone());
    assert_eq!(streamed.intervals(), taken.intervals());
}

#[test]
fn read_sets_end_at_the_last_document_consumed() {
    let store = grid();
    let entries = store.index_entries("t", "by_ab", Order::Asc);
    let a_at_least_1 = Query::table("t").with_index("by_ab", |q| q.gte("a", 1i64));
    let first_index = entries.iter().position(|(_, document)| document.get("a") == Some(&Value::Int64(1))).unwrap();
    for k in [1, 3, 7] {
        let mut tx = store.store.begin();
        let taken = a_at_least_1.take(&mut tx, k).unwrap();
        assert_eq!(taken.len(), k);
        let mut read = tx.read_set().clone();
        read.normalize();
        let kth = first_index + k - 1;
        assert!(read.contains(&entries[kth].0), "take({k}) read its k-th document");
        assert!(!read.contains(&entries[kth + 1].0), "take({k}) did not read past its k-th document");
        assert!(!read.contains(&entries[first_index - 1].0), "take({k}) did not read before its range");
    }

    // A filtered first() stops at its first match.
    let mut tx = store.store.begin();
    let first_b2 = Query::table("t").with_index("by_ab", |q| q.gte("a", 1i64)).filter(field("b").eq(2i64));
    let found = first_b2.first(&mut tx).unwrap().unwrap();
    let position = entries.iter().position(|(_, document)| document.id() == found.id()).unwrap();
    let mut read = tx.read_set().clone();
    read.normalize();
    assert!(read.contains(&entries[position].0) && !read.contains(&entries[position + 1].0));
    assert!(read.contains(&entries[first_index].0), "the documents the filter rejected were read");

    // A query that runs out of its range reads all of it, and nothing of the other indexes.
    let mut tx = store.store.begin();
    let a_is_3 = Query::table("t").with_index("by_ab", |q| q.eq("a", 3i64));
    assert_eq!(a_is_3.collect(&mut tx).unwrap().len(), 3);
    let mut read = tx.read_set().clone();
    read.normalize();
    for (key, document) in &entries {
        assert_eq!(read.contains(key), document.get("a") == Some(&Value::Int64(3)), "{:?}", document.object());
    }
    for (key, _) in store.index_entries("t", "by_creation_time", Order::Asc) {
        assert!(!read.contains(&key));
    }
}

#[test]
fn queries_that_cannot_run_say_why() {
    let store = grid();
    let error = |query: Query| store.collect(&query).unwrap_err().to_string();
    assert_eq!(error(Query::table("t").with_index("nope", |q| q)), "Index `t.nope` does not exist");
    assert_eq!(
        error(Query::table("t").with_index("by_ab", |q| q.eq("b", 1i64))),
        "Invalid index range: the range of index `t.by_ab` must use its fields in order ([a, b, _creationTime, \
         _id]): equalities on a prefix of them, then bounds on the next one; field `b` is out of place"
    );
    assert!(error(Query::table("bad-name")).starts_with("Invalid query: Invalid table name `bad-name`"));

    let mut many = Query::table("t");
    for _ in 0..MAX_QUERY_OPERATORS {
        many = many.limit(100);
    }
    assert_eq!(store.collect(&many).unwrap().len(), 13);
    assert_eq!(
        error(many.limit(1)),
        format!("Invalid query: the query has 257 operators (filters and limits), more than {MAX_QUERY_OPERATORS}")
    );
    let mut deep: Expression = literal(true);
    for _ in 1..MAX_EXPRESSION_DEPTH {
        deep = !deep;
    }
    assert!(store.collect(&Query::table("t").filter(deep.clone())).is_ok());
    assert_eq!(
        error(Query::table("t").filter(!deep)),
        format!("Invalid query: a filter expression is nested 65 levels deep, more than {MAX_EXPRESSION_DEPTH}")
    );
}

#[test]
fn dropping_an_index_conflicts_with_queries_that_used_it() {
    let store = grid();
    let mut tx = store.store.begin();
    Query::table("t").with_index("by_ab", |q| q.eq("a", 9i64)).collect(&mut tx).unwrap();
    tx.insert("other", object(&[])).unwrap();
    store.schema(vec![TableSchema::new("t")]);
    let error = store.store.commit_blocking(tx).unwrap_err();
    assert!(error.is_retryable(), "{error}");
}
