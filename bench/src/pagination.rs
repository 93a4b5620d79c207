//! Reactive pagination over a large table: microseconds per 100-document page at the start of a
//! 1,000,000-document table, deep inside it (from a cursor at position 900,000), and re-running a pinned
//! page (with its journal, as every re-run after a commit does). Each page is one transaction, as a
//! query function's run is.

use std::time::{Duration, Instant};

use livebase_query::{CursorKey, Journal, PaginationOptions, Query};
use livebase_store::{Store, StoreConfig};
use livebase_value::{Object, Value};

use crate::Effort;
use crate::report::Report;

const SECTION: &str = "Reactive pagination (query layer, in-process)";
const TABLE: &str = "messages";
const DOCUMENTS: usize = 1_000_000;
/// Documents per loading transaction, below the store's 16,000-write limit.
const INSERTS_PER_TRANSACTION: usize = 10_000;
const PAGE: usize = 100;
const DEEP_POSITION: usize = 900_000;
/// Page size used to walk to the deep position quickly: under the store's 32,000-read limit.
const STRIDE: usize = 25_000;

pub fn run(effort: Effort, report: &mut Report) {
    println!("{SECTION}");
    let directory = tempfile::tempdir().expect("temporary directory");
    let store = Store::open(StoreConfig::new(directory.path())).expect("open store");
    let loading = Instant::now();
    load(&store);
    let load_seconds = loading.elapsed().as_secs_f64();
    let key = CursorKey::new(store.secret());
    let query = Query::table(TABLE);

    let mut deep_cursor = None;
    for _ in 0..DEEP_POSITION / STRIDE {
        let options = PaginationOptions::new(STRIDE, deep_cursor.take());
        deep_cursor = Some(page(&store, &key, &query, &options, None).0);
    }
    let first = PaginationOptions::new(PAGE, None);
    let deep = PaginationOptions::new(PAGE, deep_cursor);
    let (_, deep_journal) = page(&store, &key, &query, &deep, None);

    let figures: [(&str, &PaginationOptions, Option<&str>); 3] = [
        ("first page of 100", &first, None),
        ("page of 100 at position 900,000", &deep, None),
        ("re-run of the pinned page at 900,000", &deep, Some(deep_journal.as_str())),
    ];
    let mut medians = Vec::new();
    for (name, options, journal) in figures {
        let runs = (0..effort.runs)
            .map(|_| micros_per_page(&store, &key, &query, options, journal, effort.duration))
            .collect();
        medians.push(report.add(SECTION, &format!("{name}, 1,000,000 documents"), "µs/page", runs));
    }
    let slowest = medians.iter().copied().fold(0.0, f64::max);
    report.note(format!(
        "pagination: slowest median {slowest:.1} µs per 100-document page (target < 100 µs) at any depth of a \
         1,000,000-document table (loaded in {load_seconds:.1} s)"
    ));
}

/// Inserts `DOCUMENTS` small documents in transactions of `INSERTS_PER_TRANSACTION`.
fn load(store: &Store) {
    for batch in 0..DOCUMENTS / INSERTS_PER_TRANSACTION {
        store
            .transact_blocking(|tx| {
                for i in 0..INSERTS_PER_TRANSACTION {
                    let n = (batch * INSERTS_PER_TRANSACTION + i) as i64;
                    let fields = Object::from([
                        ("author".to_owned(), Value::String(format!("user{}", n % 100))),
                        ("n".to_owned(), Value::Int64(n)),
                    ]);
                    tx.insert(TABLE, fields)?;
                }
                Ok(())
            })
            .expect("load");
    }
    assert_eq!(store.snapshot().document_count(TABLE), DOCUMENTS);
}

/// Loads one page in its own transaction: its continue cursor and the journal to re-run it with.
fn page(
    store: &Store,
    key: &CursorKey,
    query: &Query,
    options: &PaginationOptions,
    journal: Option<&str>,
) -> (String, String) {
    let mut journal = Journal::new(key.clone(), journal).expect("journal");
    let result = query.paginate(&mut store.begin(), &mut journal, options).expect("page");
    assert!(result.page.len() >= PAGE.min(options.num_items), "a full page");
    (result.continue_cursor, journal.finish().expect("a paginated query keeps a journal entry"))
}

fn micros_per_page(
    store: &Store,
    key: &CursorKey,
    query: &Query,
    options: &PaginationOptions,
    journal: Option<&str>,
    duration: Duration,
) -> f64 {
    let started = Instant::now();
    let mut pages = 0u64;
    while started.elapsed() < duration {
        page(store, key, query, options, journal);
        pages += 1;
    }
    started.elapsed().as_secs_f64() * 1e6 / pages as f64
}
