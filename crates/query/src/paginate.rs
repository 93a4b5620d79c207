//! Fully reactive pagination (Convex's `.paginate(opts)`).
//!
//! A page is the part of the query's results between two positions: its start (the `cursor` it was
//! asked for) and its end. On its first run the end is wherever `numItems` results (or the read maxima)
//! ran out; the journal keeps that end, and every re-run reads up to the same end, whatever `numItems`
//! says. So a page grows with inserts inside it and shrinks with deletes, and the next page, which starts
//! at this page's `continueCursor` (its end), neither overlaps it nor leaves a gap.
//!
//! Backward pagination walks the other way from its cursor: the page holds the results just before the
//! cursor (in the query's order) and its end is the far side, pinned the same way. Its items are still
//! returned in the query's order, and its `continueCursor` is where the page before it starts from.

use std::sync::Arc;

use livebase_store::limits::{MAX_TRANSACTION_BYTES_READ, MAX_TRANSACTION_DOCS_READ};
use livebase_store::{Document, Transaction};
use livebase_value::{Value, to_convex_json};
use serde_json::{Value as Json, json};

use crate::cursor::{Fingerprint, Position, reverse};
use crate::execute::Pipeline;
use crate::limits::{MAX_PAGE_ITEMS, SOFT_MAX_BYTES_READ, SOFT_MAX_PAGE_ITEMS, SOFT_MAX_ROWS_READ, soft_limit};
use crate::plan::Plan;
use crate::query::{Operator, Query};
use crate::{Journal, QueryError};

/// Which way a page extends from its cursor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Direction {
    /// The results after the cursor (Convex's only direction).
    #[default]
    Forward,
    /// The results before the cursor, for lists that grow at the top (a chat scrolled up).
    Backward,
}

/// Convex's `PaginationOptions`, plus a direction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaginationOptions {
    /// Results wanted when the page has no end yet; ignored once it has one.
    pub num_items: usize,
    /// Where the page starts: `None` for the start of the results (the end, going backward).
    pub cursor: Option<String>,
    /// Where the page ends, overriding the journal (Convex's `endCursor`, used to split a page in two).
    pub end_cursor: Option<String>,
    /// Documents read (before filters) after which a page without an end stops, `SplitRequired`.
    pub maximum_rows_read: Option<usize>,
    /// Bytes of documents read after which a page without an end stops, `SplitRequired`.
    pub maximum_bytes_read: Option<usize>,
    pub direction: Direction,
    /// Start this many results into the query (its end, going backward) instead of at a cursor: a
    /// jump to a position, found in O(log n) without reading what comes before. Only without a
    /// `cursor` and for queries without filters. The start is found again on every re-run, so a write
    /// before it moves it (the page's end stays pinned).
    pub offset: Option<usize>,
}

impl PaginationOptions {
    pub fn new(num_items: usize, cursor: Option<String>) -> PaginationOptions {
        PaginationOptions {
            num_items,
            cursor,
            end_cursor: None,
            maximum_rows_read: None,
            maximum_bytes_read: None,
            direction: Direction::Forward,
            offset: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageStatus {
    /// The page read a lot; splitting it (at `splitCursor`) would keep its re-runs cheap.
    SplitRecommended,
    /// The page read up to a read maximum with fewer than `numItems` results: on its first run that is
    /// where it stopped; on a re-run it has grown past the maxima. It must be split to grow.
    SplitRequired,
}

/// Convex's `PaginationResult`.
#[derive(Clone, Debug, PartialEq)]
pub struct PaginationResult {
    /// The results, in the query's order (also for backward pages).
    pub page: Vec<Arc<Document>>,
    /// Whether the page reaches the end of the results (their start, going backward).
    pub is_done: bool,
    /// The page's end: where the next page starts.
    pub continue_cursor: String,
    /// A position in the middle of the page, to split it into two pages.
    pub split_cursor: Option<String>,
    pub page_status: Option<PageStatus>,
}

impl PaginationResult {
    /// The result as a query function returns it to Convex's clients (documents in
    /// `convex_encoded_json`).
    pub fn to_json(&self) -> Json {
        let page: Vec<Json> =
            self.page.iter().map(|document| to_convex_json(&Value::Object(document.object().clone()))).collect();
        json!({
            "page": page,
            "isDone": self.is_done,
            "continueCursor": self.continue_cursor,
            "splitCursor": self.split_cursor,
            "pageStatus": self.page_status.map(|status| match status {
                PageStatus::SplitRecommended => "SplitRecommended",
                PageStatus::SplitRequired => "SplitRequired",
            }),
        })
    }
}

impl Query {
    /// Loads one page (`.paginate(opts)`), pinning its end in `journal` (see the module docs).
    pub fn paginate(
        &self,
        tx: &mut Transaction,
        journal: &mut Journal,
        options: &PaginationOptions,
    ) -> Result<PaginationResult, QueryError> {
        check(options)?;
        if options.offset.is_some() && self.operators.iter().any(|operator| matches!(operator, Operator::Filter(_))) {
            return Err(QueryError::InvalidPaginationOptions(
                "`offset` needs a query without filters: positions are counted in the index".to_owned(),
            ));
        }
        let plan = Plan::new(self, tx)?;
        let fingerprint = Fingerprint::new(self, &plan);
        let key = journal.key().clone();
        // The walk goes away from the cursor: the query's order forward, the reverse backward.
        let walk = match options.direction {
            Direction::Forward => self.source.order(),
            Direction::Backward => reverse(self.source.order()),
        };
        let start = match (&options.cursor, options.offset) {
            (Some(cursor), _) => key.decode(&fingerprint, cursor)?,
            (None, None) => Position::start(walk),
            (None, Some(offset)) => {
                let (table, index) = (self.source.table(), self.source.index());
                match tx.key_at_offset(table, index, plan.range.clone(), walk, offset)? {
                    // Just before that result, so the page starts with it.
                    Some(first) => Position::after(&first, reverse(walk)),
                    None => Position::end(walk),
                }
            }
        };
        let pinned_end = match (&options.end_cursor, journal.pinned()) {
            (Some(cursor), _) => Some(key.decode(&fingerprint, cursor)?),
            (None, Some((entry, cursor))) => Some(key.decode(&fingerprint, cursor).map_err(|error| match error {
                QueryError::InvalidCursor(problem) => {
                    QueryError::InvalidCursor(format!("entry {entry} of the query journal: {problem}"))
                }
                other => other,
            })?),
            (None, None) => None,
        };
        let end = pinned_end.clone().unwrap_or(Position::end(walk));
        let range = Position::between(&plan.range, &start, &end);

        let mut scan = tx.scan(self.source.table(), self.source.index(), range, walk)?;
        let mut pipeline = Pipeline::new(&self.operators);
        let mut page = Vec::new();
        // Every key read, filtered out or not: the split cursor is in the middle of them.
        let mut keys: Vec<std::sync::Arc<[u8]>> = Vec::new();
        let mut bytes_read = 0;
        let over_maxima = |rows_read: usize, bytes_read: usize| {
            options.maximum_rows_read.is_some_and(|max| rows_read >= max)
                || options.maximum_bytes_read.is_some_and(|max| bytes_read >= max)
        };
        let exhausted = loop {
            // A page with an end reads all of it: numItems and the maxima only decide where a new page ends.
            // The maxima are checked before reading, so a page always reads one document and makes progress.
            if pinned_end.is_none() && (page.len() == options.num_items || over_maxima(keys.len(), bytes_read)) {
                break false;
            }
            if pipeline.is_closed(&self.operators) {
                break false;
            }
            let Some(document) = scan.next().transpose()? else { break true };
            keys.push(std::sync::Arc::clone(scan.last_key().expect("a scan knows the key it returned")));
            bytes_read += document.size();
            if pipeline.admit(&self.operators, &document)? {
                page.push(document);
            }
        };
        drop(scan);

        let rows_read = keys.len();
        let soft_rows =
            options.maximum_rows_read.map_or(SOFT_MAX_ROWS_READ, |max| soft_limit(max.min(MAX_TRANSACTION_DOCS_READ)));
        let soft_bytes = options
            .maximum_bytes_read
            .map_or(SOFT_MAX_BYTES_READ, |max| soft_limit(max.min(MAX_TRANSACTION_BYTES_READ)));
        // Worked out from what was read, not from why the loop stopped, so that a re-run of a pinned page
        // at the same snapshot says the same as its first run (the journal's promise).
        let page_status = if page.len() < options.num_items && over_maxima(rows_read, bytes_read) {
            Some(PageStatus::SplitRequired)
        } else if rows_read > soft_rows || bytes_read > soft_bytes || page.len() > SOFT_MAX_PAGE_ITEMS {
            Some(PageStatus::SplitRecommended)
        } else {
            None
        };
        let page_end = match (pinned_end, exhausted, keys.last()) {
            (Some(end), _, _) => end,
            (None, true, _) => Position::end(walk),
            (None, false, Some(last)) => Position::after(last, walk),
            // Only a `limit(0)` operator stops a page before it reads anything.
            (None, false, None) => start,
        };
        let is_done = page_end == Position::end(walk);
        let split_cursor =
            (rows_read > 2).then(|| key.encode(&fingerprint, &Position::after(&keys[rows_read / 2], walk)));
        let continue_cursor = key.encode(&fingerprint, &page_end);
        journal.record(continue_cursor.clone())?;
        if options.direction == Direction::Backward {
            page.reverse();
        }
        Ok(PaginationResult { page, is_done, continue_cursor, split_cursor, page_status })
    }
}

fn check(options: &PaginationOptions) -> Result<(), QueryError> {
    let invalid = |problem: String| Err(QueryError::InvalidPaginationOptions(problem));
    if options.num_items == 0 || options.num_items > MAX_PAGE_ITEMS {
        return invalid(format!("`numItems` must be between 1 and {MAX_PAGE_ITEMS}, got {}", options.num_items));
    }
    if options.maximum_rows_read == Some(0) || options.maximum_bytes_read == Some(0) {
        return invalid("`maximumRowsRead` and `maximumBytesRead` must be greater than 0".to_owned());
    }
    if options.offset.is_some() && options.cursor.is_some() {
        return invalid("`offset` and `cursor` both say where the page starts: give one".to_owned());
    }
    Ok(())
}
