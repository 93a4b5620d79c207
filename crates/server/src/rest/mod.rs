//! The HTTP API beside the sync protocol: REST list endpoints with seed 001's contract, live lists
//! over Server-Sent Events, API keys and their admin endpoints, and the OpenAPI document.
//!
//! An app declares its lists in [`RestConfig`] (server configuration, not the function registry:
//! a list is an HTTP route with its own auth, and the functions crate knows nothing of HTTP). Each
//! list serves `GET <path>?limit=&cursor=` and `GET <path>/<id>` with `Authorization: Bearer <api key>`:
//!
//! - `list.rs`: a page, newest first, and its authenticated cursor, bound to the API key;
//! - `record.rs`: one record of the list by its id;
//! - `live.rs`: the same page streamed as it changes, when the request accepts `text/event-stream`;
//! - `api_keys.rs`: keys stored as hashes in `_api_keys`, and per-key rate limits;
//! - `admin.rs`: `POST /api/admin/api_keys`, `DELETE /api/admin/api_keys/{id}`;
//! - `openapi.rs`: `GET /api/openapi.json`;
//! - `error.rs`: the error envelope every failure is answered with.

pub mod admin;
pub mod api_keys;
mod error;
mod list;
mod live;
mod openapi;
mod params;
mod record;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use livebase_store::{Document, Store};
use serde_json::Value as JsonValue;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub use api_keys::{DEFAULT_API_KEY_PREFIX, MAX_API_KEYS};
pub use error::{ApiError, ErrorCode};
pub use list::Projection;
pub use live::MAX_LIVE_LISTS;
pub use params::{DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, MAX_QUERY_STRING_BYTES};

/// The HTTP API's configuration: the lists an app exposes and the prefix of its API keys.
#[derive(Clone)]
pub struct RestConfig {
    pub lists: Vec<RestList>,
    /// The prefix of new keys and of every key accepted (default `cc_live_`).
    pub api_key_prefix: String,
    /// Live lists streaming at once (default `MAX_LIVE_LISTS`); more get a 503.
    pub max_live_lists: usize,
}

impl Default for RestConfig {
    fn default() -> RestConfig {
        RestConfig {
            lists: Vec::new(),
            api_key_prefix: DEFAULT_API_KEY_PREFIX.to_owned(),
            max_live_lists: MAX_LIVE_LISTS,
        }
    }
}

/// A table exposed as a list endpoint: `GET <path>` pages through it newest first, and
/// `GET <path>/<id>` answers one of its records.
#[derive(Clone)]
pub struct RestList {
    path: String,
    table: String,
    project: Projection,
}

impl RestList {
    /// Lists `table` at `path` (such as `/api/v1/runs`), each item the whole document.
    pub fn new(path: &str, table: &str) -> RestList {
        RestList { path: path.to_owned(), table: table.to_owned(), project: Arc::new(list::whole_document) }
    }

    /// Sets what each item (and each single record) is made of.
    pub fn project(mut self, project: impl Fn(&Document) -> JsonValue + Send + Sync + 'static) -> RestList {
        self.project = Arc::new(project);
        self
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn check(&self) -> Result<(), String> {
        let path_is_plain = self.path.starts_with('/')
            && self.path.len() > 1
            && !self.path.ends_with('/')
            && self.path.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"/-_.".contains(&byte));
        if !path_is_plain {
            return Err(format!(
                "List path `{}` must start with `/` and hold only letters, digits and `/-_.`",
                self.path
            ));
        }
        if self.table.starts_with('_') {
            return Err(format!(
                "List `{}` exposes system table `{}`: only app tables can be listed",
                self.path, self.table
            ));
        }
        livebase_value::validate_identifier("table", &self.table).map_err(|error| error.to_string())
    }
}

/// What the HTTP API's handlers share.
pub(crate) struct Rest {
    store: Store,
    api_key_prefix: String,
    admin_key: Option<String>,
    rate_limiter: api_keys::RateLimiter,
    live_lists: Arc<Semaphore>,
    max_live_lists: usize,
    lists: Vec<RestList>,
    shutdown: CancellationToken,
}

/// Checks the configuration and declares `_api_keys`; the error names what is wrong.
pub(crate) async fn prepare(store: &Store, config: &RestConfig) -> Result<(), String> {
    api_keys::check_prefix(&config.api_key_prefix)?;
    if !(1..=MAX_LIVE_LISTS).contains(&config.max_live_lists) {
        return Err(format!("`max_live_lists` must be from 1 to {MAX_LIVE_LISTS} (MAX_LIVE_LISTS)"));
    }
    let mut paths = std::collections::HashSet::new();
    for list in &config.lists {
        list.check()?;
        if !paths.insert(list.path()) {
            return Err(format!("List path `{}` is declared twice", list.path()));
        }
    }
    store.apply_system_schema(&api_keys::schema()).await.map_err(|error| error.to_string())?;
    Ok(())
}

/// The HTTP API's routes, for the API port and the site port alike. `prepare` must have passed.
pub(crate) fn router(
    store: Store,
    config: RestConfig,
    admin_key: Option<String>,
    shutdown: CancellationToken,
) -> Router {
    let rest = Arc::new(Rest {
        store,
        api_key_prefix: config.api_key_prefix,
        admin_key,
        rate_limiter: api_keys::RateLimiter::default(),
        live_lists: Arc::new(Semaphore::new(config.max_live_lists)),
        max_live_lists: config.max_live_lists,
        lists: config.lists.clone(),
        shutdown,
    });
    let mut router = Router::new()
        .route("/api/openapi.json", get(openapi::serve))
        .route("/api/admin/api_keys", post(admin::create_key))
        .route("/api/admin/api_keys/{id}", delete(admin::revoke_key));
    for (index, list) in config.lists.iter().enumerate() {
        router = router.route(
            list.path(),
            get(move |State(rest): State<Arc<Rest>>, headers: HeaderMap, RawQuery(query): RawQuery| async move {
                serve_list(rest, index, headers, query).await
            }),
        );
        router = router.route(
            &format!("{}/{{{}}}", list.path(), params::ID),
            get(
                move |State(rest): State<Arc<Rest>>,
                      headers: HeaderMap,
                      id: Result<Path<String>, PathRejection>,
                      RawQuery(query): RawQuery| async move {
                    record::serve(rest, index, headers, id.ok().map(|Path(id)| id), query.as_deref())
                },
            ),
        );
    }
    router.with_state(rest)
}

async fn serve_list(rest: Arc<Rest>, index: usize, headers: HeaderMap, query: Option<String>) -> Response {
    let list = &rest.lists[index];
    let api_key = match authorize(&rest, &headers) {
        Ok(api_key) => api_key,
        Err(error) => return error.into_response(),
    };
    let cursor_key = list::cursor_key(rest.store.secret(), api_key.id);
    let params = match params::ListParams::parse(query.as_deref()) {
        Ok(params) => params,
        Err(error) => return error.into_response(),
    };
    if live::is_requested(&headers) {
        return live::serve(Arc::clone(&rest), index, cursor_key, params, &headers).await;
    }
    let loaded = list::load(
        &mut rest.store.begin(),
        &cursor_key,
        &list.table,
        &list.project,
        params.limit,
        params.cursor.as_deref(),
        None,
    );
    match loaded {
        Ok(page) => axum::Json(page.to_json()).into_response(),
        Err(error) => load_error(error).into_response(),
    }
}

fn load_error(error: list::LoadError) -> ApiError {
    let not_ours = |param: &'static str| {
        ApiError::validation(
            param,
            format!(
                "`{param}` is not a cursor of this list for this API key: pass it exactly as this list's responses \
                 to this key gave it"
            ),
        )
    };
    match error {
        list::LoadError::InvalidStart => not_ours(params::CURSOR),
        // Only live lists load up to an end, taken from `Last-Event-ID` or their own first load.
        list::LoadError::InvalidEnd => not_ours(live::LAST_EVENT_ID),
        list::LoadError::Failed(error) => ApiError::internal(error),
    }
}

/// Checks the request's API key and takes one request from its rate limit.
fn authorize(rest: &Rest, headers: &HeaderMap) -> Result<api_keys::VerifiedKey, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::unauthorized("Missing `Authorization: Bearer <API key>` header"));
    };
    let Some(presented) = value.to_str().ok().and_then(|value| value.strip_prefix("Bearer ")) else {
        return Err(ApiError::unauthorized("Malformed `Authorization` header: expected `Bearer <API key>`"));
    };
    let key = api_keys::verify(&rest.store, &rest.api_key_prefix, presented).map_err(|rejection| match rejection {
        api_keys::Rejection::Unauthorized(message) => ApiError::unauthorized(message),
        api_keys::Rejection::Failed(error) => ApiError::internal(error),
    })?;
    rest.rate_limiter.acquire(&key, Instant::now()).map_err(|retry_after| ApiError {
        code: ErrorCode::RateLimited,
        message: format!("This API key's rate limit is used up: retry in {retry_after} s"),
        param: None,
        retry_after: Some(retry_after),
    })?;
    Ok(key)
}
