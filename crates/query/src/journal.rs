//! The query journal: what a query function decided on its first run, kept by the sync layer per
//! subscription (Convex's `journal` in `ModifyQuerySet` and `Transition`) and handed back on every
//! re-run so the re-run decides the same. What it records is where each paginated query's page ended,
//! so a loaded page keeps its end while documents come and go around it (seed 002's pinning).
//!
//! Convex allows one paginated query per function; here a function may run several (up to
//! `MAX_JOURNAL_ENTRIES`), and the journal keeps one entry per call, in call order. The journal is a
//! string: the entries, which are cursors, joined by `.` (not a base64url character).

use crate::QueryError;
use crate::cursor::CursorKey;
use crate::limits::{MAX_JOURNAL_ENTRIES, MAX_JOURNAL_LEN};

const SEPARATOR: char = '.';

/// The journal of one run of a function: the entries of its previous run, read in call order, and the
/// entries of this run. It holds the deployment's cursor key, since everything in it is authenticated.
pub struct Journal {
    key: CursorKey,
    previous: Vec<String>,
    next: Vec<String>,
}

impl Journal {
    /// Starts a run from the journal of the previous run (`None` on the first run).
    pub fn new(key: CursorKey, previous: Option<&str>) -> Result<Journal, QueryError> {
        let invalid = |problem: String| Err(QueryError::InvalidCursor(format!("the query journal {problem}")));
        let previous: Vec<String> = match previous {
            None => Vec::new(),
            Some(journal) if journal.len() > MAX_JOURNAL_LEN => {
                return invalid(format!("is {} characters long, more than {MAX_JOURNAL_LEN}", journal.len()));
            }
            Some(journal) => journal.split(SEPARATOR).map(str::to_owned).collect(),
        };
        if previous.len() > MAX_JOURNAL_ENTRIES {
            return invalid(format!("has {} entries, more than {MAX_JOURNAL_ENTRIES}", previous.len()));
        }
        if previous.iter().any(String::is_empty) {
            return invalid("has an empty entry".to_owned());
        }
        Ok(Journal { key, previous, next: Vec::new() })
    }

    /// The journal to keep for the next run: `None` when no paginated query ran.
    pub fn finish(self) -> Option<String> {
        (!self.next.is_empty()).then(|| self.next.join(&SEPARATOR.to_string()))
    }

    pub(crate) fn key(&self) -> &CursorKey {
        &self.key
    }

    /// The previous run's entry for the paginated query about to run, with its position in the journal.
    pub(crate) fn pinned(&self) -> Option<(usize, &str)> {
        let call = self.next.len();
        self.previous.get(call).map(|entry| (call, entry.as_str()))
    }

    pub(crate) fn record(&mut self, end_cursor: String) -> Result<(), QueryError> {
        if self.next.len() == MAX_JOURNAL_ENTRIES {
            return Err(QueryError::TooManyPaginatedQueries { limit: MAX_JOURNAL_ENTRIES });
        }
        assert!(!end_cursor.is_empty() && !end_cursor.contains(SEPARATOR));
        self.next.push(end_cursor);
        Ok(())
    }
}
