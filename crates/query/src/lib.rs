//! Livebase's query layer, over the storage engine.
//!
//! Owns:
//!
//! - query descriptions (`query.rs`): a table or an index range, an order, and a chain of filters and
//!   limits, built in Rust (`Query::table("t").with_index(..).filter(..).order(..)`) or parsed from the
//!   JSON that Convex's npm server library sends (`json.rs`); both give the same `Query`;
//! - filter expressions and their evaluation with Convex's semantics (`expression.rs`);
//! - index-range planning: equalities and bounds to a range of index keys (`plan.rs`);
//! - execution with exact read sets (`execute.rs`): documents are pulled from a `Transaction::scan`
//!   only while the query needs more, so the read set is what the query consumed and no more;
//! - pagination (`paginate.rs`) with authenticated cursors (`cursor.rs`) and the journal that pins each
//!   loaded page's end across re-runs (`journal.rs`).
//!
//! It does no IO: everything runs against a transaction's in-memory snapshot.
//!
//! ```
//! use livebase_query::{CursorKey, Journal, Order, PaginationOptions, Query, field};
//! use livebase_store::{Schema, Store, StoreConfig, TableSchema};
//! use livebase_value::{Object, Value};
//!
//! # let directory = tempfile::tempdir()?;
//! let store = Store::open(StoreConfig::new(directory.path()))?;
//! store.apply_schema_blocking(&Schema {
//!     tables: vec![TableSchema::new("messages").index("by_channel", &["channel"])],
//! })?;
//! store.transact_blocking(|tx| {
//!     for n in 0..3i64 {
//!         let fields = Object::from([
//!             ("channel".to_owned(), Value::from("general")),
//!             ("n".to_owned(), Value::Int64(n)),
//!         ]);
//!         tx.insert("messages", fields)?;
//!     }
//!     Ok(())
//! })?;
//!
//! // ctx.db.query("messages").withIndex("by_channel", q => q.eq("channel", "general"))
//! //   .filter(q => q.neq(q.field("n"), 1n)).order("desc").paginate({numItems: 10, cursor: null})
//! let query = Query::table("messages")
//!     .with_index("by_channel", |q| q.eq("channel", "general"))
//!     .filter(field("n").neq(1i64))
//!     .order(Order::Desc);
//! // One run of a query function: the journal of its previous run goes in, the next one comes out.
//! let mut journal = Journal::new(CursorKey::new(store.secret()), None)?;
//! let page = query.paginate(&mut store.begin(), &mut journal, &PaginationOptions::new(10, None))?;
//! assert_eq!(page.page.len(), 2);
//! assert!(page.is_done);
//! let _keep_for_the_next_run: Option<String> = journal.finish();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod cursor;
mod error;
mod execute;
mod expression;
mod journal;
mod json;
pub mod limits;
mod paginate;
mod plan;
mod query;

pub use cursor::CursorKey;
pub use error::QueryError;
pub use execute::QueryStream;
pub use expression::{Arithmetic, Comparison, Expression, field, literal, undefined};
pub use journal::Journal;
pub use livebase_store::Order;
pub use paginate::{Direction, PageStatus, PaginationOptions, PaginationResult};
pub use query::{IndexRangeBuilder, Operator, Query, RangeComparison, RangeExpression, Source};

use plan::Plan;
