//! Live lists: a list request with `Accept: text/event-stream` gets the page as Server-Sent Events,
//! first as it is and then again after every commit that changed it.
//!
//! The page keeps the end its first load found (reactive pagination's pinned end): inserts and
//! deletes inside it grow and shrink it, and it never overlaps or leaves a gap with the next page,
//! which starts at that end. Every event's id is that end, so a client that reconnects with
//! `Last-Event-ID` (as `EventSource` does by itself) gets the same page, pinned at the same end,
//! as it is now.
//!
//! A stream follows the store's change stream itself and reloads the page when a commit wrote into
//! what the last load read (its read set), as the subscription hub does for WebSocket queries.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use livebase_query::CursorKey;
use livebase_store::{CommitRecord, KeyInterval, Timestamp};
use tokio::sync::{OwnedSemaphorePermit, broadcast};

use crate::rest::list::{self, Page};
use crate::rest::params::ListParams;
use crate::rest::{ApiError, ErrorCode, Rest, load_error};
use crate::subscriptions::contains;

/// Live lists streaming at once, server-wide, unless `RestConfig::max_live_lists` says otherwise.
/// Each follows the change stream and holds a page.
pub const MAX_LIVE_LISTS: usize = 1_024;

/// The header an `EventSource` resumes with.
pub const LAST_EVENT_ID: &str = "Last-Event-ID";

/// How often an idle stream sends a comment, so that proxies and clients keep it open.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(15);

pub(crate) fn is_requested(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().any(|accept| {
        accept.to_str().is_ok_and(|accept| accept.split(',').any(|kind| kind.trim().starts_with("text/event-stream")))
    })
}

/// Where a stream is: the page's pinned ends, what its last load read and sent.
struct LiveList {
    rest: Arc<Rest>,
    index: usize,
    /// The cursor key of the request's API key (`list::cursor_key`): event ids are cursors too.
    cursor_key: CursorKey,
    limit: usize,
    start: Option<String>,
    end: String,
    read_set: Vec<KeyInterval>,
    loaded_at: Timestamp,
    last_sent: String,
    commits: broadcast::Receiver<Arc<CommitRecord>>,
    /// Set once an error event was sent: the stream ends after it.
    finished: bool,
    _permit: OwnedSemaphorePermit,
}

pub(crate) async fn serve(
    rest: Arc<Rest>,
    index: usize,
    cursor_key: CursorKey,
    params: ListParams,
    headers: &HeaderMap,
) -> Response {
    let Ok(permit) = Arc::clone(&rest.live_lists).try_acquire_owned() else {
        return ApiError::new(
            ErrorCode::Unavailable,
            format!("The server streams {} live lists already (MAX_LIVE_LISTS): retry later", rest.max_live_lists),
        )
        .into_response();
    };
    let resume = match headers.get(LAST_EVENT_ID).map(|value| value.to_str()) {
        None => None,
        Some(Ok(id)) if !id.is_empty() => Some(id.to_owned()),
        Some(_) => return not_an_event_id().into_response(),
    };
    // Subscribed before the first load: every commit after it is then on the stream.
    let commits = rest.store.subscribe();
    let mut live = LiveList {
        index,
        cursor_key,
        limit: params.limit,
        start: params.cursor,
        end: String::new(),
        read_set: Vec::new(),
        loaded_at: Timestamp::from_nanos(0),
        last_sent: String::new(),
        commits,
        finished: false,
        _permit: permit,
        rest,
    };
    let first = match live.load(resume.as_deref()) {
        Ok(page) => page,
        Err(error) => return error.into_response(),
    };
    let first = live.event(first.to_json().to_string());
    let events = stream::unfold((live, Some(first)), |(mut live, pending)| async move {
        if let Some(event) = pending {
            return Some((Ok::<_, Infallible>(event), (live, None)));
        }
        let event = live.next_event().await?;
        Some((Ok(event), (live, None)))
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE_INTERVAL)).into_response()
}

fn not_an_event_id() -> ApiError {
    ApiError::validation(LAST_EVENT_ID, "`Last-Event-ID` must be the id of an event of this live list")
}

impl LiveList {
    /// Loads the page at the latest commit, up to `end` once it has one.
    fn load(&mut self, end: Option<&str>) -> Result<Page, ApiError> {
        let list = &self.rest.lists[self.index];
        let mut tx = self.rest.store.begin();
        let page =
            list::load(&mut tx, &self.cursor_key, list.table(), &list.project, self.limit, self.start.as_deref(), end)
                .map_err(load_error)?;
        self.loaded_at = tx.begin_ts();
        let mut read_set = tx.read_set().clone();
        self.read_set = read_set.intervals().to_vec();
        self.end.clone_from(&page.end);
        Ok(page)
    }

    /// A `page` event of the page whose JSON is `data`.
    fn event(&mut self, data: String) -> Event {
        self.last_sent = data;
        Event::default().event("page").id(&self.end).data(&self.last_sent)
    }

    /// Waits for a commit that changes the page and returns its new state; `None` ends the stream.
    async fn next_event(&mut self) -> Option<Event> {
        let shutdown = self.rest.shutdown.clone();
        loop {
            if self.finished {
                return None;
            }
            let received = tokio::select! {
                () = shutdown.cancelled() => return None,
                received = self.commits.recv() => received,
            };
            match received {
                // A replica's reload has no keys but may change anything: reload like a lag.
                Ok(commit)
                    if !commit.reloaded
                        && (commit.ts <= self.loaded_at
                            || !commit.keys.iter().any(|key| contains(&self.read_set, key))) =>
                {
                    continue;
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return None,
            }
            let end = self.end.clone();
            match self.load(Some(&end)) {
                Ok(page) => {
                    let data = page.to_json().to_string();
                    if data != self.last_sent {
                        return Some(self.event(data));
                    }
                }
                Err(error) => {
                    self.finished = true;
                    return Some(Event::default().event("error").data(error.to_json().to_string()));
                }
            }
        }
    }
}
