//! Model-based test of reactive pagination, in the way Convex's `usePaginatedQuery` drives it.
//!
//! A "client" loads pages one after another (each from the previous page's `continueCursor`), splits
//! pages at their `splitCursor` into two pages pinned with end cursors, and re-runs every page with its
//! journal after every step, as the sync layer does after every commit. Random commits insert documents,
//! delete them, and move them to other keys in between. The invariant, checked after every step: the
//! pages, each re-run at the latest snapshot with its pinned end, put together are exactly the start of
//! the query's results at that snapshot (the end, going backward): no document twice, none missing, in
//! order; and all of them once the last page is done. Forward and backward, ascending and descending,
//! with and without a range and a filter.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{TestStore, object, open};
use livebase_query::{Direction, PaginationOptions, PaginationResult, Query, field};
use livebase_store::{Order, TableSchema};
use livebase_value::{DocumentId, Object, Value};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Cases when `PROPTEST_CASES` does not say otherwise.
const DEFAULT_CASES: u32 = 10_000;

#[derive(Clone, Debug)]
struct Setup {
    order: Order,
    direction: Direction,
    /// Only `v >= 2` (an index range) instead of the whole index.
    ranged: bool,
    /// Only `v != 3` (a filter).
    filtered: bool,
    initial: Vec<Option<i64>>,
}

#[derive(Clone, Debug)]
enum Step {
    Insert(Option<i64>),
    Delete(usize),
    /// Moves a document to another key.
    Update(usize, Option<i64>),
    LoadMore {
        num_items: usize,
        maximum_rows_read: Option<usize>,
    },
    Split(usize),
}

fn value() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![1 => Just(None), 6 => (0..6i64).prop_map(Some)]
}

fn setup() -> impl Strategy<Value = Setup> {
    let order = prop_oneof![Just(Order::Asc), Just(Order::Desc)];
    let direction = prop_oneof![Just(Direction::Forward), Just(Direction::Backward)];
    (order, direction, any::<bool>(), any::<bool>(), prop::collection::vec(value(), 0..16))
        .prop_map(|(order, direction, ranged, filtered, initial)| Setup { order, direction, ranged, filtered, initial })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => value().prop_map(Step::Insert),
        2 => any::<usize>().prop_map(Step::Delete),
        2 => (any::<usize>(), value()).prop_map(|(pick, value)| Step::Update(pick, value)),
        3 => (1..5usize, prop::option::of(1..6usize))
            .prop_map(|(num_items, maximum_rows_read)| Step::LoadMore { num_items, maximum_rows_read }),
        1 => any::<usize>().prop_map(Step::Split),
    ]
}

fn fields(value: Option<i64>) -> Object {
    match value {
        Some(v) => object(&[("v", Value::Int64(v))]),
        None => Object::new(),
    }
}

/// A page as the client holds it: how to load it again, and what its latest run returned.
struct ClientPage {
    options: PaginationOptions,
    journal: Option<String>,
    latest: PaginationResult,
}

struct Case<'a> {
    store: &'a TestStore,
    table: String,
    setup: Setup,
    query: Query,
    /// The live documents and their `v`: what the store should hold.
    model: BTreeMap<DocumentId, Option<i64>>,
    /// In load order: forward, each page follows the previous one; backward, precedes it.
    pages: Vec<ClientPage>,
}

impl Case<'_> {
    fn pick(&self, pick: usize) -> Option<DocumentId> {
        (!self.model.is_empty()).then(|| *self.model.keys().nth(pick % self.model.len()).expect("in range"))
    }

    /// Loads a new page, and checks the journal's promise: re-run with the journal of its first run at
    /// the same snapshot, a page comes out the same, journal included.
    fn load_new(&self, options: PaginationOptions) -> Result<ClientPage, TestCaseError> {
        let mut journal = None;
        let latest = self.store.load(&self.query, &mut journal, &options).unwrap();
        let first_journal = journal.clone();
        let rerun = self.store.load(&self.query, &mut journal, &options).unwrap();
        prop_assert_eq!(&rerun, &latest);
        prop_assert_eq!(&journal, &first_journal);
        Ok(ClientPage { options, journal, latest })
    }

    fn apply(&mut self, step: &Step) -> Result<(), TestCaseError> {
        let table = self.table.clone();
        match *step {
            Step::Insert(value) => {
                let id = self.store.insert_all(&table, [fields(value)])[0];
                self.model.insert(id, value);
            }
            Step::Delete(pick) => {
                if let Some(id) = self.pick(pick) {
                    self.store.store.transact_blocking(|tx| tx.delete(id)).unwrap();
                    self.model.remove(&id);
                }
            }
            Step::Update(pick, value) => {
                if let Some(id) = self.pick(pick) {
                    self.store.store.transact_blocking(|tx| tx.replace(id, fields(value))).unwrap();
                    self.model.insert(id, value);
                }
            }
            Step::LoadMore { num_items, maximum_rows_read } => {
                let cursor = match self.pages.last() {
                    None => None,
                    Some(last) if last.latest.is_done => return Ok(()),
                    Some(last) => Some(last.latest.continue_cursor.clone()),
                };
                let options = PaginationOptions {
                    maximum_rows_read,
                    direction: self.setup.direction,
                    ..PaginationOptions::new(num_items, cursor)
                };
                let page = self.load_new(options)?;
                self.pages.push(page);
            }
            Step::Split(pick) => {
                if self.pages.is_empty() {
                    return Ok(());
                }
                let index = pick % self.pages.len();
                let Some(split) = self.pages[index].latest.split_cursor.clone() else { return Ok(()) };
                let page = self.pages.remove(index);
                let end = page.latest.continue_cursor.clone();
                let near = PaginationOptions { end_cursor: Some(split.clone()), ..page.options.clone() };
                let far = PaginationOptions { cursor: Some(split), end_cursor: Some(end), ..page.options };
                for (offset, options) in [near, far].into_iter().enumerate() {
                    let page = self.load_new(options)?;
                    self.pages.insert(index + offset, page);
                }
            }
        }
        Ok(())
    }

    /// The query's results at the latest snapshot, worked out from the whole index in index order.
    fn expected(&self) -> Vec<DocumentId> {
        self.store
            .index_entries(&self.table, "by_v", self.setup.order)
            .into_iter()
            .map(|(_, document)| document)
            .filter(|document| {
                let v = document.get("v");
                (!self.setup.ranged || v >= Some(&Value::Int64(2)))
                    && (!self.setup.filtered || v != Some(&Value::Int64(3)))
            })
            .map(|document| document.id())
            .collect()
    }

    fn check(&mut self) -> Result<(), TestCaseError> {
        let expected = self.expected();
        let mut stored: Vec<DocumentId> = self
            .store
            .index_entries(&self.table, "by_v", Order::Asc)
            .iter()
            .map(|(_, document)| document.id())
            .collect();
        stored.sort();
        prop_assert_eq!(&stored, &self.model.keys().copied().collect::<Vec<_>>());

        for page in &mut self.pages {
            page.latest = self.store.load(&self.query, &mut page.journal, &page.options).unwrap();
            prop_assert!(page.journal.is_some());
        }
        let mut loaded: Vec<DocumentId> = Vec::new();
        let in_order: Vec<&ClientPage> = match self.setup.direction {
            Direction::Forward => self.pages.iter().collect(),
            Direction::Backward => self.pages.iter().rev().collect(),
        };
        for page in in_order {
            loaded.extend(page.latest.page.iter().map(|document| document.id()));
        }
        // What comes right after the last page: nothing when it is done, else the first result of a
        // fresh page from its end, which must be the next result (so the last page left nothing out).
        let next = match self.pages.last() {
            None => None,
            Some(last) if last.latest.is_done => {
                prop_assert_eq!(&loaded, &expected, "the last page is done, so every result is loaded");
                return Ok(());
            }
            Some(last) => {
                let probe = PaginationOptions {
                    direction: self.setup.direction,
                    ..PaginationOptions::new(1, Some(last.latest.continue_cursor.clone()))
                };
                let probe = self.store.load(&self.query, &mut None, &probe).unwrap();
                prop_assert!(!probe.page.is_empty() || probe.is_done);
                probe.page.first().map(|document| document.id())
            }
        };
        let seen = loaded.len() + usize::from(next.is_some());
        prop_assert!(seen <= expected.len(), "more loaded ({seen}) than there are results ({})", expected.len());
        if next.is_none() && !self.pages.is_empty() {
            prop_assert_eq!(seen, expected.len(), "nothing after the last page, so every result is loaded");
        }
        match self.setup.direction {
            Direction::Forward => {
                prop_assert_eq!(&loaded[..], &expected[..loaded.len()]);
                prop_assert_eq!(next, expected.get(loaded.len()).copied().filter(|_| next.is_some()));
            }
            Direction::Backward => {
                let start = expected.len() - loaded.len();
                prop_assert_eq!(&loaded[..], &expected[start..]);
                prop_assert_eq!(next, start.checked_sub(1).map(|before| expected[before]).filter(|_| next.is_some()));
            }
        }
        Ok(())
    }
}

fn run_case(store: &TestStore, table: String, setup: Setup, steps: Vec<Step>) -> Result<(), TestCaseError> {
    store.schema(vec![TableSchema::new(&table).index("by_v", &["v"])]);
    let ids = store.insert_all(&table, setup.initial.iter().map(|value| fields(*value)));
    let mut query = if setup.ranged {
        Query::table(&table).with_index("by_v", |q| q.gte("v", 2i64))
    } else {
        Query::table(&table).with_index("by_v", |q| q)
    };
    if setup.filtered {
        query = query.filter(field("v").neq(3i64));
    }
    query = query.order(setup.order);
    let model = ids.into_iter().zip(setup.initial.iter().copied()).collect();
    let mut case = Case { store, table, setup, query, model, pages: Vec::new() };
    for step in &steps {
        case.apply(step)?;
        case.check()?;
    }
    Ok(())
}

#[test]
fn loaded_pages_always_tile_the_results() {
    let store = open();
    let tables = AtomicUsize::new(0);
    let mut config = Config { failure_persistence: None, ..Config::default() };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = DEFAULT_CASES;
    }
    let mut runner = TestRunner::new(config);
    runner
        .run(&(setup(), prop::collection::vec(step(), 1..24)), |(setup, steps)| {
            // A fresh table per case, in one store: opening a store per case would dominate the run time.
            let table = format!("m{}", tables.fetch_add(1, Ordering::Relaxed));
            run_case(&store, table, setup, steps)
        })
        .unwrap();
}
