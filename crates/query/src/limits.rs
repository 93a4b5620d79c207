//! Every bound the query layer enforces, in one place. The transaction's own read limits (documents,
//! bytes, read-set intervals) are the store's, in `livebase_store::limits`.

use livebase_store::limits::{MAX_TRANSACTION_BYTES_READ, MAX_TRANSACTION_DOCS_READ};
use livebase_value::{MAX_ARRAY_LEN, MAX_DOCUMENT_SIZE};

/// Operators (`filter`, `limit`) on one query (Convex: 256, also checked by its npm library).
pub const MAX_QUERY_OPERATORS: usize = 256;

/// Nesting of one filter expression. Evaluation and parsing recurse once per level, so this bounds
/// their stack use on hostile input.
pub const MAX_EXPRESSION_DEPTH: usize = 64;

/// `numItems` of one page (Convex: a transaction's document read limit, since a page must fit in one).
pub const MAX_PAGE_ITEMS: usize = MAX_TRANSACTION_DOCS_READ;

/// Above this many items a page is `SplitRecommended` (Convex: 3/4 of the longest array a function may
/// return, since a page is usually returned as one).
pub const SOFT_MAX_PAGE_ITEMS: usize = soft_limit(MAX_ARRAY_LEN);

/// Rows and bytes read above which a page is `SplitRecommended` when the caller gave no maxima: 3/4 of
/// the transaction's limits, so the page can grow a little on re-runs before it fails.
pub const SOFT_MAX_ROWS_READ: usize = soft_limit(MAX_TRANSACTION_DOCS_READ);
pub const SOFT_MAX_BYTES_READ: usize = soft_limit(MAX_TRANSACTION_BYTES_READ);

/// Characters of a cursor string. The longest position is one index key, which is at most about a
/// document's size; the rest is a few bytes of framing and the 32-byte MAC, all in base64 (4 chars per
/// 3 bytes).
pub const MAX_CURSOR_LEN: usize = (MAX_DOCUMENT_SIZE + 64).div_ceil(3) * 4;

/// Paginated queries one function execution may run: one journal entry each. Convex allows one; more
/// are allowed here, but the journal travels to the client with every result, so it stays small.
pub const MAX_JOURNAL_ENTRIES: usize = 16;

/// Characters of a journal string: its entries (cursors) and the separators between them.
pub const MAX_JOURNAL_LEN: usize = MAX_JOURNAL_ENTRIES * (MAX_CURSOR_LEN + 1) - 1;

/// The soft version of a hard limit: the point from which a page is worth splitting before it has to be.
pub const fn soft_limit(hard: usize) -> usize {
    hard / 4 * 3
}
