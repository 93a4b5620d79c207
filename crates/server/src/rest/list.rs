//! One page of a list endpoint: newest first by creation time, ties broken by document id (the
//! table's `by_creation_time` index walked downwards), from a position carried by the cursor.
//!
//! The cursor is the query layer's: a cut in the index's key space authenticated with the
//! deployment's secret and bound to the query (table, index, order), so one that was altered, made
//! for another list or by another deployment fails its MAC and is refused. Being a cut and not a
//! key, it stays valid when the document at the page's edge is deleted; documents inserted later
//! sort above every cut of a scan in progress, so the scan never sees them.
//!
//! Each API key gets its own cursor key, derived from the deployment's secret and the key's id: a
//! cursor continues only with the key it was handed to, and dies with that key's revocation (seed
//! 001: cursors are not to be kept "across API key revocations"), while other keys' walks go on.

use std::sync::Arc;

use hmac::{Hmac, KeyInit as _, Mac as _};
use livebase_query::{CursorKey, Journal, Order, PaginationOptions, Query, QueryError};
use livebase_store::{Document, Transaction};
use livebase_value::{DocumentId, Value, to_plain_json};
use serde_json::{Value as JsonValue, json};
use sha2::Sha256;

/// Turns a document into the item a list returns.
pub type Projection = Arc<dyn Fn(&Document) -> JsonValue + Send + Sync>;

/// One page as the API answers it, and where it ends (for live lists, which keep that end).
pub struct Page {
    pub items: Vec<JsonValue>,
    pub has_more: bool,
    /// Where the next page starts: the page's end, whether or not anything follows it.
    pub end: String,
}

impl Page {
    /// `{data, nextCursor, hasMore}`, with `nextCursor: null` exactly when `hasMore` is false.
    pub fn to_json(&self) -> JsonValue {
        json!({
            "data": self.items,
            "nextCursor": self.has_more.then_some(&self.end),
            "hasMore": self.has_more,
        })
    }
}

/// Separates cursor keys from anything else ever derived from the deployment's secret.
const CURSOR_KEY_CONTEXT: &[u8] = b"livebase rest list cursor key v1\0";

/// The key of the cursors handed to requests made with the API key `api_key` (its `_api_keys` id).
pub fn cursor_key(secret: &[u8; 32], api_key: DocumentId) -> CursorKey {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(CURSOR_KEY_CONTEXT);
    mac.update(api_key.encode().as_bytes());
    CursorKey::new(&mac.finalize().into_bytes().into())
}

/// The documents of `table` in list order.
pub fn query(table: &str) -> Query {
    Query::table(table).order(Order::Desc)
}

/// Why a page could not be loaded.
pub enum LoadError {
    /// The start cursor is not one of this list's.
    InvalidStart,
    /// The end cursor (a live list's `Last-Event-ID`) is not one of this list's.
    InvalidEnd,
    Failed(QueryError),
}

/// Loads up to `limit` items after `start`, or, with `end`, exactly the items between the two. The
/// page reads one document past its end, to tell whether anything follows: `hasMore` is false on
/// the page that holds the last item, not on an empty page after it.
pub fn load(
    tx: &mut Transaction,
    key: &CursorKey,
    table: &str,
    project: &Projection,
    limit: usize,
    start: Option<&str>,
    end: Option<&str>,
) -> Result<Page, LoadError> {
    let query = query(table);
    let mut options = PaginationOptions::new(limit, start.map(str::to_owned));
    options.end_cursor = end.map(str::to_owned);
    let page = match query.paginate(tx, &mut journal(key), &options) {
        Ok(page) => page,
        Err(QueryError::InvalidCursor(_)) => {
            let start_alone = PaginationOptions::new(1, start.map(str::to_owned));
            let start_is_valid = end.is_some() && query.paginate(tx, &mut journal(key), &start_alone).is_ok();
            return Err(if start_is_valid { LoadError::InvalidEnd } else { LoadError::InvalidStart });
        }
        Err(other) => return Err(LoadError::Failed(other)),
    };
    let has_more = !page.is_done && {
        let next = PaginationOptions::new(1, Some(page.continue_cursor.clone()));
        !query.paginate(tx, &mut journal(key), &next).map_err(LoadError::Failed)?.page.is_empty()
    };
    Ok(Page {
        items: page.page.iter().map(|document| project(document)).collect(),
        has_more,
        end: page.continue_cursor,
    })
}

/// A journal of one run: list pages are not re-run by the sync layer, their ends travel in cursors.
fn journal(key: &CursorKey) -> Journal {
    Journal::new(key.clone(), None).expect("an empty journal is valid")
}

/// The default item: the document as Convex's plain JSON (`_id`, `_creationTime`, its fields).
pub fn whole_document(document: &Document) -> JsonValue {
    to_plain_json(&Value::Object(document.object().clone()))
}
