//! Reactive pagination against a real store: seed 002's scenario, cursors, journals, backward pages,
//! splits and the read maxima.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{TestStore, object, open, string};
use livebase_query::limits::{
    MAX_CURSOR_LEN, MAX_JOURNAL_ENTRIES, MAX_JOURNAL_LEN, MAX_PAGE_ITEMS, SOFT_MAX_BYTES_READ, SOFT_MAX_PAGE_ITEMS,
    SOFT_MAX_ROWS_READ,
};
use livebase_query::{Direction, Journal, PageStatus, PaginationOptions, PaginationResult, Query, QueryError, field};
use livebase_store::{Order, TableSchema};
use livebase_value::Value;

const FRUITS: [&str; 12] = [
    "Apple",
    "Banana",
    "Currant",
    "Durian",
    "Elderberry",
    "Fig",
    "Grapefruit",
    "Huckleberry",
    "Jackfruit",
    "Kiwi",
    "Kumquat",
    "Lemon",
];

fn fruits() -> TestStore {
    let store = open();
    store.schema(vec![TableSchema::new("fruits").index("by_name", &["name"])]);
    store.insert_all("fruits", FRUITS.iter().rev().map(|name| object(&[("name", Value::from(*name))])));
    store
}

fn alphabetical() -> Query {
    Query::table("fruits").with_index("by_name", |q| q)
}

fn names(result: &PaginationResult) -> Vec<String> {
    result.page.iter().map(|document| string(document, "name")).collect()
}

fn first_page(num_items: usize) -> PaginationOptions {
    PaginationOptions::new(num_items, None)
}

fn next_page(num_items: usize, previous: &PaginationResult) -> PaginationOptions {
    PaginationOptions::new(num_items, Some(previous.continue_cursor.clone()))
}

fn find(store: &TestStore, name: &str) -> livebase_value::DocumentId {
    let query = alphabetical().filter(field("name").eq(name));
    query.first(&mut store.store.begin()).unwrap().expect("fruit exists").id()
}

#[test]
fn seed_002_pinned_pages_grow_and_shrink_without_gaps_or_overlaps() {
    let store = fruits();
    let query = alphabetical();
    let (mut journal1, mut journal2) = (None, None);
    let page1 = store.load(&query, &mut journal1, &first_page(5)).unwrap();
    assert_eq!(names(&page1), ["Apple", "Banana", "Currant", "Durian", "Elderberry"]);
    let page2 = store.load(&query, &mut journal2, &next_page(5, &page1)).unwrap();
    assert_eq!(names(&page2), ["Fig", "Grapefruit", "Huckleberry", "Jackfruit", "Kiwi"]);
    assert!(!page1.is_done && !page2.is_done);

    // Coconut lands inside page 1: pinned, page 1 grows to 6 and page 2 stays as it was.
    let coconut = store.insert_all("fruits", [object(&[("name", Value::from("Coconut"))])])[0];
    let rerun1 = store.load(&query, &mut journal1, &first_page(5)).unwrap();
    assert_eq!(names(&rerun1), ["Apple", "Banana", "Coconut", "Currant", "Durian", "Elderberry"]);
    assert_eq!(rerun1.continue_cursor, page1.continue_cursor);
    assert_eq!(store.load(&query, &mut journal2, &next_page(5, &page1)).unwrap(), page2);
    // Without the journal the page would end at Durian and Elderberry would fall between the pages.
    let unpinned = store.load(&query, &mut None, &first_page(5)).unwrap();
    assert_eq!(names(&unpinned), ["Apple", "Banana", "Coconut", "Currant", "Durian"]);

    // Separately, Currant leaves page 1: it shrinks to 4 and page 2 does not move up into it.
    store.store.transact_blocking(|tx| tx.delete(coconut)).unwrap();
    let currant = find(&store, "Currant");
    store.store.transact_blocking(|tx| tx.delete(currant)).unwrap();
    let rerun1 = store.load(&query, &mut journal1, &first_page(5)).unwrap();
    assert_eq!(names(&rerun1), ["Apple", "Banana", "Durian", "Elderberry"]);
    let rerun2 = store.load(&query, &mut journal2, &next_page(5, &page1)).unwrap();
    assert_eq!(names(&rerun2), ["Fig", "Grapefruit", "Huckleberry", "Jackfruit", "Kiwi"]);

    // The last page runs to the end of the list and keeps growing there.
    let mut journal3 = None;
    let page3 = store.load(&query, &mut journal3, &next_page(5, &page2)).unwrap();
    assert_eq!(names(&page3), ["Kumquat", "Lemon"]);
    assert!(page3.is_done);
    store.insert_all("fruits", [object(&[("name", Value::from("Mango"))])]);
    let rerun3 = store.load(&query, &mut journal3, &next_page(5, &page2)).unwrap();
    assert_eq!(names(&rerun3), ["Kumquat", "Lemon", "Mango"]);
    assert!(rerun3.is_done);
}

fn assert_invalid_cursor(result: Result<PaginationResult, QueryError>, what: &str) {
    match result {
        Err(error @ QueryError::InvalidCursor(_)) => {
            assert!(error.to_string().starts_with("InvalidCursor: "), "{error}")
        }
        other => panic!("{what}: expected InvalidCursor, got {other:?}"),
    }
}

#[test]
fn cursors_reject_every_alteration_and_every_other_query() {
    let store = fruits();
    let query = alphabetical();
    let page1 = store.load(&query, &mut None, &first_page(5)).unwrap();
    let cursor = page1.continue_cursor.clone();
    // Every use of a cursor checks it: as a start, as an end, and as a journal entry.
    let try_cursor = |bad: &str, what: &str| {
        assert_invalid_cursor(store.load(&query, &mut None, &PaginationOptions::new(5, Some(bad.to_owned()))), what);
        let as_end = PaginationOptions { end_cursor: Some(bad.to_owned()), ..first_page(5) };
        assert_invalid_cursor(store.load(&query, &mut None, &as_end), what);
        assert_invalid_cursor(store.load(&query, &mut Some(bad.to_owned()), &first_page(5)), what);
    };

    let bytes = URL_SAFE_NO_PAD.decode(&cursor).unwrap();
    let mut altered = 0;
    for index in 0..bytes.len() {
        for mask in [0x01u8, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xFF] {
            let mut flipped = bytes.clone();
            flipped[index] ^= mask;
            try_cursor(&URL_SAFE_NO_PAD.encode(&flipped), &format!("byte {index} ^ {mask:#04x}"));
            altered += 1;
        }
    }
    for length in 0..cursor.len() {
        try_cursor(&cursor[..length], &format!("truncated to {length} characters"));
    }
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (index, original) in cursor.char_indices() {
        let replacement = alphabet.chars().find(|c| *c != original).unwrap();
        try_cursor(
            &format!("{}{replacement}{}", &cursor[..index], &cursor[index + 1..]),
            &format!("character {index}"),
        );
    }
    try_cursor(&format!("{cursor}A"), "extended");
    assert_eq!(altered, bytes.len() * 9);

    for garbage in ["", "garbage", "!!!!", "a.b", "====", "é", "AAAA", &"A".repeat(MAX_CURSOR_LEN + 1)] {
        try_cursor(garbage, &format!("garbage {garbage:.20}"));
    }
    let too_long = store.load(&query, &mut None, &PaginationOptions::new(5, Some("A".repeat(MAX_CURSOR_LEN + 1))));
    assert!(too_long.unwrap_err().to_string().contains(&format!("more than {MAX_CURSOR_LEN}")));

    // The cursor belongs to its query: every change of table, index, range, filter or order refuses it.
    store.insert_all("vegetables", [object(&[("name", Value::from("Leek"))])]);
    let others = [
        alphabetical().order(Order::Desc),
        alphabetical().filter(field("name").neq("Fig")),
        alphabetical().limit(100),
        Query::table("fruits").with_index("by_name", |q| q.gte("name", "B")),
        Query::table("fruits"),
        Query::table("vegetables"),
    ];
    for other in others {
        assert_invalid_cursor(store.load(&other, &mut None, &next_page(5, &page1)), &format!("{other:?}"));
    }
    // ...while the cursor itself still works.
    let page2 = store.load(&query, &mut None, &next_page(5, &page1)).unwrap();
    assert_eq!(names(&page2)[0], "Fig");
    let message = store.load(&Query::table("fruits"), &mut None, &next_page(5, &page1)).unwrap_err().to_string();
    assert_eq!(
        message,
        "InvalidCursor: the cursor is from a different query (table, index, range, filters or order), or was altered"
    );
}

#[test]
fn cursors_survive_equivalent_spellings_and_restarts_but_not_other_secrets() {
    let directory = tempfile::tempdir().unwrap();
    let config = livebase_store::StoreConfig::new(directory.path());
    let store = livebase_store::Store::open(config.clone()).unwrap();
    store
        .apply_schema_blocking(&livebase_store::Schema {
            tables: vec![TableSchema::new("t").index("by_ab", &["a", "b"])],
        })
        .unwrap();
    store
        .transact_blocking(|tx| {
            (0..6i64)
                .try_for_each(|i| tx.insert("t", object(&[("a", Value::Int64(1)), ("b", Value::Int64(i))])).map(drop))
        })
        .unwrap();
    let eq_then_bound = Query::table("t").with_index("by_ab", |q| q.eq("a", 1i64).gte("b", 2i64));
    let bound_then_eq = Query::table("t").with_index("by_ab", |q| q.gte("b", 2i64).eq("a", 1i64));
    let load = |store: &livebase_store::Store, query: &Query, cursor: Option<String>| {
        let mut journal = Journal::new(livebase_query::CursorKey::new(store.secret()), None)?;
        query.paginate(&mut store.begin(), &mut journal, &PaginationOptions::new(2, cursor))
    };
    let page1 = load(&store, &eq_then_bound, None).unwrap();
    let page2 = load(&store, &bound_then_eq, Some(page1.continue_cursor.clone())).unwrap();
    assert_eq!(page2.page.len(), 2);
    drop(store);

    let reopened = livebase_store::Store::open(config).unwrap();
    assert_eq!(load(&reopened, &eq_then_bound, Some(page1.continue_cursor.clone())).unwrap(), page2);
    drop(reopened);

    let elsewhere = open();
    elsewhere.schema(vec![TableSchema::new("t").index("by_ab", &["a", "b"])]);
    assert_invalid_cursor(load(&elsewhere.store, &eq_then_bound, Some(page1.continue_cursor)), "another deployment");
}

#[test]
fn journals_pin_each_paginated_query_of_a_function_in_call_order() {
    let store = fruits();
    let key = store.key();
    let forward = alphabetical();
    let backward = PaginationOptions { direction: Direction::Backward, ..first_page(2) };
    // One run of a function that loads two pages, of two queries.
    // The names on both pages, and the journal the run leaves.
    type Run = (Vec<String>, Vec<String>, Option<String>);
    let run = |journal: Option<&str>| -> Result<Run, QueryError> {
        let mut run = Journal::new(key.clone(), journal)?;
        let mut tx = store.store.begin();
        let first = forward.paginate(&mut tx, &mut run, &first_page(3))?;
        let second = forward.paginate(&mut tx, &mut run, &backward)?;
        Ok((names(&first), names(&second), run.finish()))
    };
    let (first, second, journal) = run(None).unwrap();
    assert_eq!(first, ["Apple", "Banana", "Currant"]);
    assert_eq!(second, ["Kumquat", "Lemon"]);
    let journal = journal.unwrap();
    assert_eq!(journal.split('.').count(), 2);
    // Re-running with the journal at the same state decides the same, journal included.
    assert_eq!(run(Some(&journal)).unwrap(), (first, second, Some(journal.clone())));

    store.insert_all("fruits", ["Avocado", "Lime", "Zucchini"].map(|name| object(&[("name", Value::from(name))])));
    let (first, second, _) = run(Some(&journal)).unwrap();
    assert_eq!(first, ["Apple", "Avocado", "Banana", "Currant"]);
    assert_eq!(second, ["Kumquat", "Lemon", "Lime", "Zucchini"]);

    // The entries are positional: both calls run the same query here, so swapped entries swap the pins.
    let entries: Vec<&str> = journal.split('.').collect();
    let swapped = format!("{}.{}", entries[1], entries[0]);
    let (first, second, _) = run(Some(&swapped)).unwrap();
    assert_eq!((first.len(), first.last().unwrap().as_str()), (11, "Kiwi"));
    assert_eq!((second.len(), second[0].as_str()), (11, "Durian"));

    // A journal from another query fails with InvalidCursor, naming the entry.
    let mut other = Journal::new(key.clone(), None).unwrap();
    Query::table("fruits").paginate(&mut store.store.begin(), &mut other, &first_page(1)).unwrap();
    let foreign = other.finish().unwrap();
    let error = run(Some(&foreign)).unwrap_err().to_string();
    assert!(
        error.starts_with("InvalidCursor: entry 0 of the query journal: the cursor is from a different query"),
        "{error}"
    );

    for bad in ["", ".", "a..b", &vec!["x"; MAX_JOURNAL_ENTRIES + 1].join(".")] {
        let error = Journal::new(key.clone(), Some(bad)).err().expect("bad journal");
        assert!(error.to_string().starts_with("InvalidCursor: the query journal"), "{bad}: {error}");
    }
    assert!(Journal::new(key.clone(), Some(&vec!["x"; MAX_JOURNAL_ENTRIES].join("."))).is_ok());
    let longest = vec!["x".repeat(MAX_CURSOR_LEN); MAX_JOURNAL_ENTRIES].join(".");
    assert_eq!(longest.len(), MAX_JOURNAL_LEN);
    assert!(Journal::new(key.clone(), Some(&longest)).is_ok());
    let error = Journal::new(key.clone(), Some(&format!("{longest}x"))).err().expect("too long");
    assert_eq!(
        error.to_string(),
        format!(
            "InvalidCursor: the query journal is {} characters long, more than {MAX_JOURNAL_LEN}",
            MAX_JOURNAL_LEN + 1
        )
    );

    let mut many = Journal::new(key.clone(), None).unwrap();
    let mut tx = store.store.begin();
    for _ in 0..MAX_JOURNAL_ENTRIES {
        forward.paginate(&mut tx, &mut many, &first_page(1)).unwrap();
    }
    assert_eq!(
        forward.paginate(&mut tx, &mut many, &first_page(1)).unwrap_err(),
        QueryError::TooManyPaginatedQueries { limit: MAX_JOURNAL_ENTRIES }
    );
    assert_eq!(Journal::new(key, None).unwrap().finish(), None);
}

#[test]
fn backward_pages_hold_what_comes_before_their_cursor_and_pin_their_far_end() {
    let store = open();
    let ids = store.insert_all("chat", (0..10i64).map(|n| object(&[("n", Value::Int64(n))])));
    // Oldest first on screen; the app opens at the bottom and scrolls up.
    let query = Query::table("chat");
    let n = |result: &PaginationResult| -> Vec<i64> { result.page.iter().map(|d| common::int(d, "n")).collect() };
    let backward = |cursor: Option<String>| PaginationOptions {
        direction: Direction::Backward,
        ..PaginationOptions::new(3, cursor)
    };
    let (mut newest, mut older, mut oldest) = (None, None, None);
    let page1 = store.load(&query, &mut newest, &backward(None)).unwrap();
    assert_eq!((n(&page1), page1.is_done), (vec![7, 8, 9], false));
    let page2 = store.load(&query, &mut older, &backward(Some(page1.continue_cursor.clone()))).unwrap();
    assert_eq!(n(&page2), [4, 5, 6]);
    let page3 = store.load(&query, &mut oldest, &backward(Some(page2.continue_cursor.clone()))).unwrap();
    assert_eq!(n(&page3), [1, 2, 3]);
    let page4 = store.load(&query, &mut None, &backward(Some(page3.continue_cursor.clone()))).unwrap();
    assert_eq!((n(&page4), page4.is_done), (vec![0], true));
    assert_eq!(store.load(&query, &mut None, &backward(Some(page4.continue_cursor))).unwrap().page, []);

    // A new message joins the newest page; a deleted one leaves its page; the others keep their ends.
    store.insert_all("chat", [object(&[("n", Value::Int64(10))])]);
    store.store.transact_blocking(|tx| tx.delete(ids[5])).unwrap();
    assert_eq!(n(&store.load(&query, &mut newest, &backward(None)).unwrap()), [7, 8, 9, 10]);
    assert_eq!(n(&store.load(&query, &mut older, &backward(Some(page1.continue_cursor.clone()))).unwrap()), [4, 6]);
    assert_eq!(n(&store.load(&query, &mut oldest, &backward(Some(page2.continue_cursor.clone()))).unwrap()), [1, 2, 3]);

    // Backward from a forward page's cursor: the page before it. Forward and backward pages between the
    // same two cursors are the same page.
    let forward1 = store.load(&query, &mut None, &PaginationOptions::new(4, None)).unwrap();
    let before = store.load(&query, &mut None, &backward(Some(forward1.continue_cursor.clone()))).unwrap();
    assert_eq!(n(&before), [1, 2, 3]);
    let between = PaginationOptions {
        end_cursor: Some(page2.continue_cursor.clone()),
        ..backward(Some(page1.continue_cursor.clone()))
    };
    let forward_between = PaginationOptions {
        end_cursor: Some(page1.continue_cursor.clone()),
        ..PaginationOptions::new(1, Some(page2.continue_cursor.clone()))
    };
    assert_eq!(
        store.load(&query, &mut None, &between).unwrap().page,
        store.load(&query, &mut None, &forward_between).unwrap().page
    );
}

#[test]
fn newest_first_pages_do_not_see_documents_inserted_at_the_head() {
    let store = open();
    store.insert_all("events", (0..6i64).map(|n| object(&[("n", Value::Int64(n))])));
    let query = Query::table("events").order(Order::Desc);
    let n = |result: &PaginationResult| -> Vec<i64> { result.page.iter().map(|d| common::int(d, "n")).collect() };
    let mut journal1 = None;
    let page1 = store.load(&query, &mut journal1, &first_page(3)).unwrap();
    assert_eq!(n(&page1), [5, 4, 3]);
    store.insert_all("events", [6i64, 7].map(|n| object(&[("n", Value::Int64(n))])));
    let page2 = store.load(&query, &mut None, &next_page(3, &page1)).unwrap();
    assert_eq!((n(&page2), page2.is_done), (vec![2, 1, 0], false));
    // The head page, re-run, grows at the head instead.
    assert_eq!(n(&store.load(&query, &mut journal1, &first_page(3)).unwrap()), [7, 6, 5, 4, 3]);
}

#[test]
fn a_page_split_at_its_split_cursor_becomes_two_adjacent_pinned_pages() {
    let store = fruits();
    let query = alphabetical();
    for direction in [Direction::Forward, Direction::Backward] {
        let whole = store.load(&query, &mut None, &PaginationOptions { direction, ..first_page(7) }).unwrap();
        let split = whole.split_cursor.clone().expect("a page of more than 2 documents has a split cursor");
        let near = PaginationOptions { end_cursor: Some(split.clone()), direction, ..first_page(1) };
        let far = PaginationOptions {
            end_cursor: Some(whole.continue_cursor.clone()),
            direction,
            ..PaginationOptions::new(1, Some(split))
        };
        let (near, far) = (store.load(&query, &mut None, &near).unwrap(), store.load(&query, &mut None, &far).unwrap());
        let mut joined = match direction {
            Direction::Forward => [names(&near), names(&far)].concat(),
            Direction::Backward => [names(&far), names(&near)].concat(),
        };
        assert_eq!(names(&near).len(), 4, "{direction:?}: the split is after the middle document read");
        assert_eq!(joined, names(&whole), "{direction:?}");
        joined.dedup();
        assert_eq!(joined.len(), 7);
    }
    let small = store.load(&query, &mut None, &first_page(2)).unwrap();
    assert_eq!(small.split_cursor, None);
}

#[test]
fn read_maxima_end_new_pages_early_but_never_pinned_ones() {
    let store = fruits();
    // Only fruits after "J" pass: the first pages read many documents for few results.
    let query = alphabetical().filter(field("name").gt("J"));
    let limited = PaginationOptions { maximum_rows_read: Some(4), ..first_page(3) };
    let mut journal = None;
    let page1 = store.load(&query, &mut journal, &limited).unwrap();
    assert_eq!((page1.page.len(), page1.page_status, page1.is_done), (0, Some(PageStatus::SplitRequired), false));
    let page2 = store
        .load(&query, &mut None, &PaginationOptions { cursor: Some(page1.continue_cursor.clone()), ..limited.clone() })
        .unwrap();
    assert_eq!(page2.page_status, Some(PageStatus::SplitRequired));
    let page3 = store
        .load(&query, &mut None, &PaginationOptions { cursor: Some(page2.continue_cursor.clone()), ..limited.clone() })
        .unwrap();
    assert_eq!(names(&page3), ["Jackfruit", "Kiwi", "Kumquat"]);
    assert_eq!(page3.page_status, None);
    // A re-run of a pinned page reads it all, whatever the maximum.
    store.insert_all("fruits", ["Apricot", "Blueberry"].map(|name| object(&[("name", Value::from(name))])));
    let rerun = store.load(&query, &mut journal, &limited).unwrap();
    assert_eq!((rerun.page.len(), rerun.continue_cursor), (0, page1.continue_cursor));

    // A byte maximum smaller than one document still reads one, so pagination makes progress.
    let one_byte = PaginationOptions { maximum_bytes_read: Some(1), ..first_page(5) };
    let page = store.load(&alphabetical(), &mut None, &one_byte).unwrap();
    assert_eq!((names(&page), page.page_status), (vec!["Apple".to_owned()], Some(PageStatus::SplitRequired)));

    // Soft row limit: 3/4 of maximumRowsRead.
    let status = |num_items: usize| {
        let options = PaginationOptions { maximum_rows_read: Some(8), ..first_page(num_items) };
        store.load(&alphabetical(), &mut None, &options).unwrap().page_status
    };
    assert_eq!((status(6), status(7)), (None, Some(PageStatus::SplitRecommended)));
}

#[test]
fn pages_longer_than_the_soft_maximum_recommend_a_split() {
    let store = open();
    store.insert_all("many", (0..=SOFT_MAX_PAGE_ITEMS as i64).map(|n| object(&[("n", Value::Int64(n))])));
    let query = Query::table("many");
    let at_limit = store.load(&query, &mut None, &first_page(SOFT_MAX_PAGE_ITEMS)).unwrap();
    assert_eq!((at_limit.page.len(), at_limit.page_status), (SOFT_MAX_PAGE_ITEMS, None));
    let over = store.load(&query, &mut None, &first_page(SOFT_MAX_PAGE_ITEMS + 1)).unwrap();
    assert_eq!((over.page.len(), over.page_status), (SOFT_MAX_PAGE_ITEMS + 1, Some(PageStatus::SplitRecommended)));
    assert!(!over.is_done);
}

#[test]
fn pagination_options_are_checked() {
    let store = fruits();
    let query = alphabetical();
    let error = |options: PaginationOptions| store.load(&query, &mut None, &options).unwrap_err().to_string();
    assert_eq!(
        error(first_page(0)),
        format!("Invalid pagination options: `numItems` must be between 1 and {MAX_PAGE_ITEMS}, got 0")
    );
    assert_eq!(
        error(first_page(MAX_PAGE_ITEMS + 1)),
        format!(
            "Invalid pagination options: `numItems` must be between 1 and {MAX_PAGE_ITEMS}, got {}",
            MAX_PAGE_ITEMS + 1
        )
    );
    let whole = store.load(&query, &mut None, &first_page(MAX_PAGE_ITEMS)).unwrap();
    assert_eq!((whole.page.len(), whole.is_done), (12, true));
    for options in [
        PaginationOptions { maximum_rows_read: Some(0), ..first_page(1) },
        PaginationOptions { maximum_bytes_read: Some(0), ..first_page(1) },
    ] {
        assert_eq!(
            error(options),
            "Invalid pagination options: `maximumRowsRead` and `maximumBytesRead` must be greater than 0"
        );
    }
}

#[test]
fn results_serialize_as_convex_pagination_results() {
    let store = fruits();
    let page = store.load(&alphabetical(), &mut None, &first_page(3)).unwrap();
    let json = page.to_json();
    assert_eq!(json["page"][1]["name"], "Banana");
    assert_eq!(json["page"][1]["_id"], page.page[1].id().to_string());
    assert_eq!(json["isDone"], false);
    assert_eq!(json["continueCursor"], page.continue_cursor.as_str());
    assert_eq!(json["splitCursor"], page.split_cursor.as_deref().unwrap());
    assert_eq!(json["pageStatus"], serde_json::Value::Null);
    let required = store
        .load(&alphabetical(), &mut None, &PaginationOptions { maximum_rows_read: Some(1), ..first_page(3) })
        .unwrap();
    assert_eq!(required.to_json()["pageStatus"], "SplitRequired");
    assert_eq!(required.to_json()["splitCursor"], serde_json::Value::Null);
}

#[test]
fn without_maxima_pages_recommend_a_split_past_three_quarters_of_the_transaction_limits() {
    let store = open();
    // Rows: a limit before a filter that rejects everything reads exactly that many documents.
    let rows = SOFT_MAX_ROWS_READ + 1;
    for chunk in (0..rows).collect::<Vec<_>>().chunks(10_000) {
        store.insert_all("rows", chunk.iter().map(|n| object(&[("n", Value::Int64(*n as i64))])));
    }
    let status = |table: &str, read: usize| {
        let query = Query::table(table).limit(read).filter(livebase_query::literal(false));
        let result = store.load(&query, &mut None, &first_page(1)).unwrap();
        assert!(result.page.is_empty());
        result.page_status
    };
    assert_eq!(status("rows", SOFT_MAX_ROWS_READ), None);
    assert_eq!(status("rows", SOFT_MAX_ROWS_READ + 1), Some(PageStatus::SplitRecommended));

    // Bytes: documents of about 900 KB, read until their sizes add up past the soft maximum.
    store.insert_all("bytes", (0..15).map(|_| object(&[("text", Value::from("x".repeat(900_000)))])));
    let sizes: Vec<usize> =
        store.collect(&Query::table("bytes")).unwrap().iter().map(|document| document.size()).collect();
    let under = (1..=sizes.len()).take_while(|k| sizes[..*k].iter().sum::<usize>() <= SOFT_MAX_BYTES_READ).count();
    assert!(under < sizes.len());
    assert_eq!(status("bytes", under), None);
    assert_eq!(status("bytes", under + 1), Some(PageStatus::SplitRecommended));
}

#[test]
fn counts_come_from_the_index_and_react_only_to_what_they_cover() {
    let store = fruits();
    let count = |query: &Query| query.count(&mut store.store.begin()).unwrap();
    assert_eq!(count(&alphabetical()), FRUITS.len());
    let from_kiwi = Query::table("fruits").with_index("by_name", |q| q.gte("name", "Kiwi"));
    assert_eq!(count(&from_kiwi), 3);
    assert_eq!(count(&alphabetical().limit(5)), 5);
    assert_eq!(count(&from_kiwi.clone().limit(5)), 3);
    assert_eq!(count(&alphabetical().limit(0)), 0);
    assert_eq!(count(&Query::table("missing")), 0);
    let error = alphabetical().filter(field("name").eq("Fig")).count(&mut store.store.begin()).unwrap_err();
    assert!(error.to_string().contains("count() needs a query without filters"), "{error}");

    // `limit(5)` depends on the first five names only: an insert after them leaves the count's read set.
    let mut tx = store.store.begin();
    assert_eq!(alphabetical().limit(5).count(&mut tx).unwrap(), 5);
    tx.insert("audit", object(&[])).unwrap();
    store.insert_all("fruits", [object(&[("name", Value::from("Zucchini"))])]);
    store.store.commit_blocking(tx).expect("an insert past the fifth name does not touch the count");
    let mut tx = store.store.begin();
    assert_eq!(from_kiwi.count(&mut tx).unwrap(), 4);
    tx.insert("audit", object(&[])).unwrap();
    store.insert_all("fruits", [object(&[("name", Value::from("Lime"))])]);
    assert!(store.store.commit_blocking(tx).is_err(), "an insert inside the counted range conflicts");
}

#[test]
fn pages_can_start_at_an_offset_and_stay_pinned() {
    let store = fruits();
    let at = |offset: usize, direction: Direction| {
        let options = PaginationOptions { offset: Some(offset), direction, ..first_page(3) };
        store.load(&alphabetical(), &mut None, &options).unwrap()
    };
    assert_eq!(names(&at(4, Direction::Forward)), ["Elderberry", "Fig", "Grapefruit"]);
    assert_eq!(names(&at(0, Direction::Forward)), ["Apple", "Banana", "Currant"]);
    assert_eq!(names(&at(10, Direction::Forward)), ["Kumquat", "Lemon"]);
    let beyond = at(12, Direction::Forward);
    assert!(beyond.page.is_empty() && beyond.is_done);
    // Backward, the offset counts from the end, and items come back in the query's order.
    assert_eq!(names(&at(1, Direction::Backward)), ["Jackfruit", "Kiwi", "Kumquat"]);

    // The page continues like any other: its continue cursor starts the next one.
    let options = PaginationOptions { offset: Some(4), ..first_page(3) };
    let mut journal = None;
    let page = store.load(&alphabetical(), &mut journal, &options).unwrap();
    let next = store.load(&alphabetical(), &mut None, &next_page(3, &page)).unwrap();
    assert_eq!(names(&next), ["Huckleberry", "Jackfruit", "Kiwi"]);
    // Re-run with its journal, the page keeps its end; a fruit inserted inside it joins it.
    store.insert_all("fruits", [object(&[("name", Value::from("Feijoa"))])]);
    let rerun = store.load(&alphabetical(), &mut journal, &options).unwrap();
    assert_eq!(names(&rerun), ["Elderberry", "Feijoa", "Fig", "Grapefruit"]);

    let both = PaginationOptions { offset: Some(1), ..next_page(3, &page) };
    let error = store.load(&alphabetical(), &mut None, &both).unwrap_err();
    assert!(error.to_string().contains("`offset` and `cursor`"), "{error}");
    let filtered = alphabetical().filter(field("name").neq("Fig"));
    let error = store.load(&filtered, &mut None, &PaginationOptions { offset: Some(1), ..first_page(3) }).unwrap_err();
    assert!(error.to_string().contains("`offset` needs a query without filters"), "{error}");
}
