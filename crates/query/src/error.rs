use livebase_store::TransactionError;
use livebase_value::DocumentId;

/// Why a query could not be parsed, planned or run. All of these are the caller's errors: running the
/// same query on the same data fails the same way.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum QueryError {
    #[error("Invalid query JSON at {path}: {problem}")]
    InvalidJson { path: String, problem: String },
    #[error("Invalid query: {0}")]
    InvalidQuery(String),
    /// The range of a `withIndex` does not fit the index; the message names the index and the field.
    #[error("Invalid index range: {0}")]
    InvalidIndexRange(String),
    /// A filter expression failed on a document (Convex's `EvalError`).
    #[error("{0}")]
    Evaluation(String),
    #[error("unique() query returned more than one result from table `{table}`: [{first}, {second}, ...]")]
    NotUnique { table: String, first: DocumentId, second: DocumentId },
    /// A cursor (or journal) that this query did not hand out: from another query, altered, or not a
    /// cursor at all. The message starts with `InvalidCursor`, which is what Convex's clients look for to
    /// restart pagination from the first page.
    #[error("InvalidCursor: {0}")]
    InvalidCursor(String),
    #[error("Invalid pagination options: {0}")]
    InvalidPaginationOptions(String),
    #[error("A function may run at most {limit} paginated queries (each keeps an entry in the query journal)")]
    TooManyPaginatedQueries { limit: usize },
    #[error(transparent)]
    Transaction(#[from] TransactionError),
}
