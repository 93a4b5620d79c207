//! One record of a list, `GET <path>/<id>`: seed 001's answer to clients that want a specific
//! record ("use GET /:id" rather than decoding cursors). Same API key, same item shape as the list.

use std::sync::Arc;

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use livebase_value::DocumentId;

use crate::rest::params::{self, ID};
use crate::rest::{ApiError, ErrorCode, Rest, authorize};

/// `id` is `None` when the path segment is not percent-encoded UTF-8.
pub(crate) fn serve(
    rest: Arc<Rest>,
    index: usize,
    headers: HeaderMap,
    id: Option<String>,
    query: Option<&str>,
) -> Response {
    match load(&rest, index, &headers, id.as_deref(), query) {
        Ok(item) => axum::Json(item).into_response(),
        Err(error) => error.into_response(),
    }
}

fn load(
    rest: &Rest,
    index: usize,
    headers: &HeaderMap,
    id: Option<&str>,
    query: Option<&str>,
) -> Result<serde_json::Value, ApiError> {
    let list = &rest.lists[index];
    authorize(rest, headers)?;
    params::check_no_query(query)?;
    let id = id.ok_or_else(|| ApiError::validation(ID, "The id is not percent-encoded UTF-8: pass an item's `_id`"))?;
    let shown: String = id.chars().take(64).collect();
    let id = DocumentId::decode(id)
        .map_err(|_| ApiError::validation(ID, format!("`{shown}` is not a document id: pass an item's `_id`")))?;
    let mut tx = rest.store.begin();
    if tx.table_name(id.table()) != Some(list.table()) {
        return Err(ApiError::validation(ID, format!("`{shown}` is not an id of `{}`", list.table())));
    }
    match tx.get(id) {
        Ok(Some(document)) => Ok((list.project)(&document)),
        Ok(None) => Err(ApiError::new(ErrorCode::NotFound, format!("No `{}` record has id `{shown}`", list.table()))),
        Err(error) => Err(ApiError::internal(error)),
    }
}
