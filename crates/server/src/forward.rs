//! Read replicas' writes: a replica runs queries from its own store but sends mutations and actions
//! to the writer, node to node, authenticated by the admin key (writer and replicas derive the same
//! one from the instance secret they share in PostgreSQL).
//!
//! The writer's side is `POST /api/internal/forward` with `Authorization: Convex <admin key>` and
//! the body `{"kind": "mutation" | "action", "path", "args" (convex_encoded_json), "identity":
//! null | "admin" | {"token": <the user's JWT, verified again by the writer>}, "replayKey"?:
//! {"sessionId", "requestId"}}`. A mutation with a replay key runs through
//! `Runtime::run_mutation_once`, so a client replaying it after a reconnect, to any node, gets the
//! recorded result instead of a second run. The answer is the HTTP API's outcome (`status`, `value`
//! or `errorMessage`/`errorData`, `logLines`) in `convex_encoded_json`, plus `ts`, a successful
//! mutation's commit in nanoseconds, and `internal` for an error whose message the client must not see.
//!
//! The replica's side is [`Forwarder`]: it finds the writer through the URL the writer keeps with
//! its lease (`Store::writer_url`), looks it up again whenever the writer cannot be reached (a
//! failover), and answers only once its own subscription hub has matched the commit, so that the
//! client's next Transition shows it its write (read-your-writes across nodes).
//!
//! HTTP actions are proxied whole instead ([`Forwarder::http_action`]): to the writer's `/http`, with
//! the client's headers (but those of one connection) and [`VIA_REPLICA_HEADER`], and their response
//! comes back as it is, less [`COMMIT_TS_HEADER`]: the writer's newest commit once the handler was
//! done, which the replica waits to show before it answers (read-your-writes, as for mutations).
//!
//! A writer that lost its PostgreSQL lease (another took over) but still runs answers forwarded
//! calls, and proxied HTTP actions, with 503, code `NotTheWriter` and [`NOT_THE_WRITER_HEADER`]:
//! before running them once it knows (`Store::lost_lease`), and after a forwarded mutation whose
//! commit it refused for that reason (`Store::stopped_by_fence`: nothing of it was written). The
//! replica then reads the lease again and sends the call to the new writer, within [`WRITER_WAIT`].

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use livebase_functions::limits::{MAX_ACTION_DURATION, MAX_HTTP_ACTION_RESPONSE_BYTES};
use livebase_functions::{ActionOutcome, FunctionError, Identity, LogLine, MutationOutcome, RequestKey};
use livebase_store::{Store, Timestamp};
use livebase_value::{Object, Value, from_convex_json, to_convex_json};
use serde_json::{Map, Value as Json, json};
use tokio::sync::{Semaphore, watch};

use crate::Shared;
use crate::http_actions::HTTP_ACTIONS_PATH;
use crate::http_api::{MAX_CALL_BODY_BYTES, RequestError, body_object, require_admin, respond, verify_user};

/// The writer's endpoint for replicas.
pub const FORWARD_PATH: &str = "/api/internal/forward";

/// The error code of a node's refusal to run a call for a replica because it is not (or no longer)
/// the writer: a replica, or a writer that lost its lease. Retryable: nothing ran.
pub const NOT_THE_WRITER_CODE: &str = "NotTheWriter";

/// Marks that refusal (a 503 with [`NOT_THE_WRITER_CODE`]), so that a replica tells it from an HTTP
/// action's own 503 without reading the body.
pub const NOT_THE_WRITER_HEADER: &str = "x-livebase-not-the-writer";

/// Set by a replica on the HTTP action requests it proxies to the writer; the app does not see it.
pub const VIA_REPLICA_HEADER: &str = "x-livebase-via-replica";

/// On the writer's response to a proxied HTTP action whose handler ran: its newest commit
/// (nanoseconds) once the handler was done, at or after every commit the handler made. The replica
/// removes it.
pub const COMMIT_TS_HEADER: &str = "x-livebase-commit-ts";

/// Forwards a replica has under way at once; one more is refused at once with a retryable error
/// rather than queued behind a writer that may be slow or gone.
pub const MAX_INFLIGHT_FORWARDS: usize = 1_024;

/// How long a replica tries to connect to the writer before it counts as unreachable.
pub const FORWARD_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a replica waits for the writer's answer to a forwarded mutation. An action may run for
/// `MAX_ACTION_DURATION`, and gets this much more.
pub const FORWARDED_MUTATION_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a forward keeps looking for a writer (none holds the lease, or the one found refuses
/// connections) before it fails as retryable. Longer than the lease's TTL (10 s), so that a failover
/// after a writer crashed fits in it.
pub const WRITER_WAIT: Duration = Duration::from_secs(15);

/// Pause between two attempts to find and reach the writer.
pub const WRITER_RETRY_INTERVAL: Duration = Duration::from_millis(200);

/// How long a replica waits, once the writer answered, for its own hub to match the commit before it
/// answers the client. Past it the client gets a clear error (over HTTP) or is disconnected to
/// replay the mutation (over WebSocket, where the replay is answered from the writer's record).
pub const REPLICA_CATCH_UP_TIMEOUT: Duration = Duration::from_secs(10);

/// Bytes of the writer's answer a replica reads: what one WebSocket message may carry.
pub const MAX_FORWARD_RESPONSE_BYTES: usize = livebase_sync::MAX_MESSAGE_BYTES;

/// A mutation or action, as the caller gets it: from the runtime on the writer, or forwarded.
pub(crate) struct CallOutcome {
    pub(crate) result: Result<Value, FunctionError>,
    /// In the wire form, `[LEVEL] message`.
    pub(crate) log_lines: Vec<String>,
    /// A successful mutation's commit.
    pub(crate) ts: Option<Timestamp>,
}

impl From<MutationOutcome> for CallOutcome {
    fn from(MutationOutcome { result, log_lines, ts }: MutationOutcome) -> CallOutcome {
        CallOutcome { result, log_lines: wire_log_lines(&log_lines), ts }
    }
}

impl From<ActionOutcome> for CallOutcome {
    fn from(ActionOutcome { result, log_lines }: ActionOutcome) -> CallOutcome {
        CallOutcome { result, log_lines: wire_log_lines(&log_lines), ts: None }
    }
}

pub(crate) fn wire_log_lines(lines: &[LogLine]) -> Vec<String> {
    lines.iter().map(LogLine::to_string).collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallKind {
    Mutation,
    Action,
}

impl CallKind {
    fn name(self) -> &'static str {
        match self {
            CallKind::Mutation => "mutation",
            CallKind::Action => "action",
        }
    }

    fn answer_timeout(self) -> Duration {
        match self {
            CallKind::Mutation => FORWARDED_MUTATION_TIMEOUT,
            CallKind::Action => MAX_ACTION_DURATION + FORWARDED_MUTATION_TIMEOUT,
        }
    }
}

/// Whom the writer runs a forwarded call as.
#[derive(Clone, Debug)]
pub(crate) enum ForwardIdentity {
    Unauthenticated,
    /// A user, by the token the replica verified; the writer verifies it again.
    User(String),
    Admin,
}

impl ForwardIdentity {
    fn to_json(&self) -> Json {
        match self {
            ForwardIdentity::Unauthenticated => Json::Null,
            ForwardIdentity::User(token) => json!({ "token": token }),
            ForwardIdentity::Admin => json!("admin"),
        }
    }
}

/// Why a replica could not forward a call. All but [`ForwardError::Refused`] are retryable.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ForwardError {
    #[error(
        "No writer is reachable (none holds the lease, or it refuses connections) after {WRITER_WAIT:?} \
         (WRITER_WAIT): {0}. The call did not run; retry it"
    )]
    NoWriter(String),
    #[error(
        "The writer did not answer in time ({0:?}): the call may have run. Mutations sent over WebSocket are \
         replayed exactly once when the client reconnects"
    )]
    NoAnswer(Duration),
    #[error("This replica has {MAX_INFLIGHT_FORWARDS} calls on their way to the writer (MAX_INFLIGHT_FORWARDS): retry")]
    Busy,
    #[error("The writer refused the forwarded call: {0}")]
    Refused(String),
    #[error(
        "The call committed on the writer at {0}, but this replica had not caught up with it after \
         {REPLICA_CATCH_UP_TIMEOUT:?} (REPLICA_CATCH_UP_TIMEOUT)"
    )]
    Behind(Timestamp),
}

impl ForwardError {
    /// The HTTP API's answer: 503 for what to retry, 502 for the writer's refusal, 504 for a commit
    /// this replica does not show yet.
    pub(crate) fn to_request_error(&self) -> RequestError {
        let (status, code) = match self {
            ForwardError::NoWriter(_) | ForwardError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "WriterUnavailable"),
            ForwardError::NoAnswer(_) => (StatusCode::GATEWAY_TIMEOUT, "WriterTimeout"),
            ForwardError::Refused(_) => (StatusCode::BAD_GATEWAY, "WriterRefused"),
            ForwardError::Behind(_) => (StatusCode::GATEWAY_TIMEOUT, "ReplicaBehind"),
        };
        RequestError::new(status, code, self.to_string())
    }
}

/// A replica's way to the writer.
pub(crate) struct Forwarder {
    store: Store,
    client: reqwest::Client,
    admin_key: String,
    /// The writer's URL as last looked up; `None` until the first forward or after a failure to reach it.
    writer: Mutex<Option<String>>,
    permits: Semaphore,
    /// The subscription hub's watermark: the newest commit whose changes it has matched.
    watermark: watch::Receiver<Timestamp>,
}

impl Forwarder {
    pub(crate) fn new(store: Store, admin_key: String, watermark: watch::Receiver<Timestamp>) -> Forwarder {
        let client = reqwest::Client::builder()
            .connect_timeout(FORWARD_CONNECT_TIMEOUT)
            .build()
            .expect("a client without TLS roots to load builds");
        Forwarder {
            store,
            client,
            admin_key,
            writer: Mutex::new(None),
            permits: Semaphore::new(MAX_INFLIGHT_FORWARDS),
            watermark,
        }
    }

    /// Runs `path` on the writer and, for a mutation that committed, waits until this replica's hub
    /// has matched the commit.
    pub(crate) async fn call(
        &self,
        kind: CallKind,
        path: &str,
        args: Object,
        identity: ForwardIdentity,
        replay_key: Option<&RequestKey>,
    ) -> Result<CallOutcome, ForwardError> {
        let _permit = self.permits.try_acquire().map_err(|_| ForwardError::Busy)?;
        let mut body = json!({
            "kind": kind.name(),
            "path": path,
            "args": to_convex_json(&Value::Object(args)),
            "identity": identity.to_json(),
        });
        if let Some(key) = replay_key {
            body["replayKey"] = json!({ "sessionId": key.session, "requestId": key.request });
        }
        let body = body.to_string();
        let build = |url: &str| {
            self.client
                .post(format!("{url}{FORWARD_PATH}"))
                .header("Authorization", format!("Convex {}", self.admin_key))
                .header("Content-Type", "application/json")
                .body(body.clone())
        };
        let answer = read_answer(self.send(build, kind.answer_timeout()).await?).await?;
        let outcome = read_outcome(&answer).map_err(ForwardError::Refused)?;
        if let Some(ts) = outcome.ts {
            self.catch_up(ts).await?;
        }
        Ok(outcome)
    }

    /// Waits until this replica's hub has matched the writer's commit `ts`, so that what the client
    /// reads next shows it.
    async fn catch_up(&self, ts: Timestamp) -> Result<(), ForwardError> {
        let mut watermark = self.watermark.clone();
        let caught_up = tokio::time::timeout(REPLICA_CATCH_UP_TIMEOUT, watermark.wait_for(|matched| *matched >= ts));
        match caught_up.await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(ForwardError::Behind(ts)),
        }
    }

    /// Sends the request `build` makes for the writer's URL, finding the writer again while it cannot
    /// be reached or answers that it is not the writer ([`NOT_THE_WRITER_HEADER`]), for at most
    /// [`WRITER_WAIT`]. Only a request that ran nowhere is sent again.
    async fn send(
        &self,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
        answer_timeout: Duration,
    ) -> Result<reqwest::Response, ForwardError> {
        let give_up = tokio::time::Instant::now() + WRITER_WAIT;
        loop {
            let problem = match self.writer_url().await {
                Ok(Some(url)) => match build(url.trim_end_matches('/')).timeout(answer_timeout).send().await {
                    Ok(response)
                        if response.status() == StatusCode::SERVICE_UNAVAILABLE
                            && response.headers().contains_key(NOT_THE_WRITER_HEADER) =>
                    {
                        // A replica, or a writer that lost its lease: the lease row names the writer now.
                        self.forget_writer();
                        format!("{url} is not the writer: {}", read_body(response).await.unwrap_or_default())
                    }
                    Ok(response) => return Ok(response),
                    Err(error) if error.is_connect() => {
                        self.forget_writer();
                        format!("{url} refuses connections ({error})")
                    }
                    Err(error) if error.is_timeout() => return Err(ForwardError::NoAnswer(answer_timeout)),
                    Err(error) => return Err(ForwardError::Refused(format!("{url}: {error}"))),
                },
                Ok(None) => "no live writer holds the lease".to_owned(),
                Err(error) => format!("the writer's URL could not be read: {error}"),
            };
            if tokio::time::Instant::now() + WRITER_RETRY_INTERVAL > give_up {
                return Err(ForwardError::NoWriter(problem));
            }
            tracing::debug!(%problem, "looking for the writer again");
            tokio::time::sleep(WRITER_RETRY_INTERVAL).await;
        }
    }

    /// Runs an HTTP action on the writer: the request as the client sent it (`routed` is the path
    /// and query the app's routes see), and the writer's response as it is.
    pub(crate) async fn http_action(
        &self,
        method: Method,
        routed: &str,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<Response, ForwardError> {
        let _permit = self.permits.try_acquire().map_err(|_| ForwardError::Busy)?;
        let mut headers = end_to_end(headers);
        headers.insert(VIA_REPLICA_HEADER, HeaderValue::from_static("1"));
        let build = |url: &str| {
            self.client
                .request(method.clone(), format!("{url}{HTTP_ACTIONS_PATH}{routed}"))
                .headers(headers.clone())
                .body(body.clone())
        };
        let answer = self.send(build, CallKind::Action.answer_timeout()).await?;
        let status = answer.status();
        let mut answer_headers = end_to_end(answer.headers());
        // Absent when the writer refused the request before any handler ran (nothing to wait for).
        let commit_ts = match answer_headers.remove(COMMIT_TS_HEADER) {
            Some(value) => {
                Some(value.to_str().ok().and_then(|ts| ts.parse().ok()).map(Timestamp::from_nanos).ok_or_else(
                    || ForwardError::Refused(format!("its {COMMIT_TS_HEADER} header is not a timestamp: {value:?}")),
                )?)
            }
            None => None,
        };
        let body = read_bytes(answer, MAX_HTTP_ACTION_RESPONSE_BYTES, "MAX_HTTP_ACTION_RESPONSE_BYTES").await?;
        if let Some(ts) = commit_ts {
            self.catch_up(ts).await?;
        }
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = status;
        *response.headers_mut() = answer_headers;
        Ok(response)
    }

    async fn writer_url(&self) -> Result<Option<String>, String> {
        if let Some(url) = self.writer.lock().unwrap_or_else(PoisonError::into_inner).clone() {
            return Ok(Some(url));
        }
        let store = self.store.clone();
        // A query to PostgreSQL on the store's blocking client.
        let url = tokio::task::spawn_blocking(move || store.writer_url().map_err(|error| error.to_string()))
            .await
            .map_err(|error| error.to_string())??;
        *self.writer.lock().unwrap_or_else(PoisonError::into_inner) = url.clone();
        Ok(url)
    }

    fn forget_writer(&self) {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner).take();
    }
}

/// Headers a proxy does not pass on: those of one connection (RFC 9110, 7.6.1), and the length,
/// which the client sets for the body it sends.
const HOP_BY_HOP_HEADERS: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::CONTENT_LENGTH,
];

fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let mut headers = headers.clone();
    for name in HOP_BY_HOP_HEADERS {
        headers.remove(name);
    }
    headers
}

/// The writer's answer, up to `limit` bytes (named `limit_name`).
async fn read_bytes(mut response: reqwest::Response, limit: usize, limit_name: &str) -> Result<Vec<u8>, ForwardError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|error| ForwardError::Refused(error.to_string()))? {
        if body.len() + chunk.len() > limit {
            return Err(ForwardError::Refused(format!("its answer is over {limit} bytes ({limit_name})")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn read_body(response: reqwest::Response) -> Result<String, ForwardError> {
    let body = read_bytes(response, MAX_FORWARD_RESPONSE_BYTES, "MAX_FORWARD_RESPONSE_BYTES").await?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The writer's answer: its outcome JSON, or its refusal (`{"code", "message"}`) as an error.
async fn read_answer(response: reqwest::Response) -> Result<Json, ForwardError> {
    let status = response.status();
    let body = read_body(response).await?;
    let answer: Json = serde_json::from_str(&body)
        .map_err(|error| ForwardError::Refused(format!("{status}, an answer that is not JSON ({error}): {body}")))?;
    if !status.is_success() {
        let message = answer["message"].as_str().unwrap_or(&body);
        return Err(ForwardError::Refused(format!("{status}: {message}")));
    }
    Ok(answer)
}

/// A [`CallOutcome`] from the writer's outcome JSON.
fn read_outcome(answer: &Json) -> Result<CallOutcome, String> {
    let log_lines = match &answer["logLines"] {
        Json::Array(lines) => lines.iter().map(|line| line.as_str().unwrap_or_default().to_owned()).collect(),
        _ => Vec::new(),
    };
    let result = match answer["status"].as_str() {
        Some("success") => Ok(from_convex_json(&answer["value"]).map_err(|error| format!("its value: {error}"))?),
        Some("error") => {
            let message = answer["errorMessage"].as_str().unwrap_or_default().to_owned();
            Err(match answer.get("errorData") {
                Some(data) => FunctionError::User {
                    message,
                    data: from_convex_json(data).map_err(|error| format!("its error data: {error}"))?,
                },
                None if answer["internal"] == Json::Bool(true) => FunctionError::internal("on the writer"),
                None => FunctionError::failed(message),
            })
        }
        _ => return Err(format!("an answer without a `status`: {answer}")),
    };
    let ts = match &answer["ts"] {
        Json::Null => None,
        ts => Some(Timestamp::from_nanos(ts.as_u64().ok_or_else(|| format!("a `ts` that is not a u64: {ts}"))?)),
    };
    Ok(CallOutcome { result, log_lines, ts })
}

/// The writer's endpoint.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new().route(FORWARD_PATH, post(forwarded)).layer(DefaultBodyLimit::max(MAX_CALL_BODY_BYTES))
}

/// A forwarded call, as read from its body.
struct ForwardedCall {
    kind: CallKind,
    path: String,
    args: Object,
    identity: ForwardIdentity,
    replay_key: Option<RequestKey>,
}

impl ForwardedCall {
    fn read(fields: &Map<String, Json>) -> Result<ForwardedCall, RequestError> {
        let kind = match fields.get("kind").and_then(Json::as_str) {
            Some("mutation") => CallKind::Mutation,
            Some("action") => CallKind::Action,
            _ => return Err(RequestError::invalid("`kind` must be `mutation` or `action`")),
        };
        let Some(Json::String(path)) = fields.get("path") else {
            return Err(RequestError::invalid("The body has no `path` string (the function to call)"));
        };
        let args = match fields.get("args").map(from_convex_json) {
            Some(Ok(Value::Object(args))) => args,
            Some(Err(error)) => return Err(RequestError::invalid(format!("Invalid `args`: {error}"))),
            _ => return Err(RequestError::invalid("`args` must be an object in convex_encoded_json")),
        };
        let identity = match fields.get("identity") {
            None | Some(Json::Null) => ForwardIdentity::Unauthenticated,
            Some(Json::String(admin)) if admin == "admin" => ForwardIdentity::Admin,
            Some(Json::Object(user)) => match user.get("token") {
                Some(Json::String(token)) => ForwardIdentity::User(token.clone()),
                _ => return Err(RequestError::invalid("A user `identity` is `{\"token\": <JWT>}`")),
            },
            Some(other) => {
                return Err(RequestError::invalid(format!(
                    "`identity` must be null, \"admin\" or {{\"token\": <JWT>}}, not {other}"
                )));
            }
        };
        let replay_key = match fields.get("replayKey") {
            None | Some(Json::Null) => None,
            Some(key) => {
                let session = key["sessionId"].as_str();
                let request = key["requestId"].as_u64().and_then(|request| u32::try_from(request).ok());
                let (Some(session), Some(request)) = (session, request) else {
                    return Err(RequestError::invalid("`replayKey` is `{\"sessionId\": string, \"requestId\": u32}`"));
                };
                Some(RequestKey { session: session.to_owned(), request })
            }
        };
        if replay_key.is_some() && kind == CallKind::Action {
            return Err(RequestError::invalid("Only mutations have a `replayKey`"));
        }
        Ok(ForwardedCall { kind, path: path.clone(), args, identity, replay_key })
    }
}

/// The refusal of a node that must not run a replica's call: a replica, or a writer that knows it
/// lost its lease; `None` on the writer.
pub(crate) fn not_the_writer(store: &Store) -> Option<Response> {
    let message = match (store.is_replica(), store.lost_lease()) {
        (true, _) => "This node is a read replica: forward to the writer",
        (false, true) => {
            "This node lost its writer lease to another writer and committed nothing of this call: send it to the \
             writer holding the lease"
        }
        (false, false) => return None,
    };
    let mut refusal = RequestError::new(StatusCode::SERVICE_UNAVAILABLE, NOT_THE_WRITER_CODE, message).into_response();
    refusal.headers_mut().insert(NOT_THE_WRITER_HEADER, HeaderValue::from_static("1"));
    Some(refusal)
}

/// `POST /api/internal/forward`, on the writer.
async fn forwarded(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(refusal) = require_admin(&shared, &headers, FORWARD_PATH).await {
        return refusal.into_response();
    }
    if let Some(refusal) = not_the_writer(&shared.store) {
        return refusal;
    }
    let (kind, outcome) = match run_forwarded(&shared, body).await {
        Ok(ran) => ran,
        Err(error) => return error.into_response(),
    };
    // The lease was lost while the mutation ran: its commit was refused and nothing of it written,
    // so it may run on the new writer. (An action is never run twice: it may have committed before
    // the loss, or done things outside the database.)
    if kind == CallKind::Mutation && outcome.result.is_err() && shared.store.stopped_by_fence() {
        return not_the_writer(&shared.store).expect("a store stopped by the fence lost its lease");
    }
    let mut answer = crate::http_api::outcome_json(&outcome.result, outcome.log_lines, to_convex_json);
    answer["ts"] = outcome.ts.map_or(Json::Null, |ts| json!(ts.nanos()));
    if matches!(outcome.result, Err(FunctionError::Internal(_))) {
        answer["internal"] = Json::Bool(true);
    }
    respond(Ok(answer))
}

/// Reads a forwarded call and runs it.
async fn run_forwarded(
    shared: &Shared,
    body: Result<Bytes, BytesRejection>,
) -> Result<(CallKind, CallOutcome), RequestError> {
    let ForwardedCall { kind, path, args, identity, replay_key } = ForwardedCall::read(&body_object(body)?)?;
    let identity = match identity {
        ForwardIdentity::Unauthenticated => Identity::Unauthenticated,
        ForwardIdentity::Admin => Identity::Admin,
        ForwardIdentity::User(token) => verify_user(shared, &token).await?,
    };
    let runtime = &shared.runtime;
    let outcome = match (kind, replay_key) {
        (CallKind::Mutation, Some(key)) => runtime.run_mutation_once(&path, args, &identity, &key).await.into(),
        (CallKind::Mutation, None) => runtime.run_mutation(&path, args, &identity).await.into(),
        (CallKind::Action, _) => runtime.run_action(&path, args, &identity).await.into(),
    };
    Ok((kind, outcome))
}
