//! Function calls over HTTP, as Convex's `ConvexHttpClient` (npm) and the Python client's HTTP
//! calls make them:
//!
//! - `POST /api/query`, `/api/mutation`, `/api/action` with `{"path", "args", "format"?}`;
//!   `GET /api/query?path=&args=&format=` (args as JSON text);
//! - `POST /api/query_ts` answers `{"ts"}`, the latest commit's timestamp in the wire form, and
//!   `POST /api/query_at_ts` runs a query at such a timestamp (`{"path", "args", "ts", "format"?}`);
//! - `POST /api/query_batch` `{"queries": [..]}` answers `{"results": [..]}`, every query at one
//!   timestamp;
//! - `POST /api/function` (`{"path", "args", "format"?}`) and `POST /api/run/<module/path>/<function>`
//!   (`{"args", "format"?}`) run a function whatever its kind.
//!
//! `args` is an object, or (as the npm client sends it) an array holding one object; missing, it is
//! `{}`. `format` is `"json"` (the default: plain JSON, lossy for int64 and bytes) or
//! `"convex_encoded_json"` (lossless); arguments are read and results written in it. A function's
//! outcome is HTTP 200 with `{"status": "success", "value", "logLines"}` or `{"status": "error",
//! "errorMessage", "errorData"? (user errors only), "logLines"}`; a request the server cannot run
//! (bad JSON, bad credentials, too large) is a 4xx with `{"code", "message"}`.
//!
//! Credentials: `Authorization: Bearer <user token>` calls as that user, `Authorization: Convex <admin
//! key>` as an admin, who may also call internal functions; without the header the call is
//! unauthenticated. Browsers may call from any origin (CORS).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use livebase_functions::{FunctionError, FunctionKind, FunctionPath, Identity};
use livebase_store::Timestamp;
use livebase_value::{Value, from_convex_json, from_plain_json, to_convex_json, to_plain_json};
use serde_json::{Map, Value as Json, json};
use tower_http::cors::{AllowHeaders, Any, CorsLayer};

use crate::Shared;
use crate::forward::{CallKind, CallOutcome, ForwardIdentity, wire_log_lines};
use crate::rest::admin::admin_key_matches;

/// Bytes of a function call's request body: what one call over the WebSocket may carry
/// (`livebase_sync::MAX_MESSAGE_BYTES`, Convex's 16 MiB of arguments and room around them).
pub const MAX_CALL_BODY_BYTES: usize = livebase_sync::MAX_MESSAGE_BYTES;

/// Queries in one `/api/query_batch` request. They run one after another at one timestamp, so the
/// bound keeps a batch from holding a worker, and its snapshot, for long.
pub const MAX_QUERY_BATCH_LEN: usize = 256;

/// How long browsers may cache a CORS preflight's answer.
pub const CORS_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// The function-call endpoints, with their body limit and CORS.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        // Mirrored, not `*`: a wildcard does not cover `Authorization`.
        .allow_headers(AllowHeaders::mirror_request())
        .max_age(CORS_MAX_AGE);
    Router::new()
        .route("/api/query", post(query).get(query_get))
        .route("/api/mutation", post(|state, headers, body| call(state, headers, body, Some(FunctionKind::Mutation))))
        .route("/api/action", post(|state, headers, body| call(state, headers, body, Some(FunctionKind::Action))))
        .route("/api/function", post(|state, headers, body| call(state, headers, body, None)))
        .route("/api/run/{*function}", post(run_by_url))
        .route("/api/query_ts", post(query_ts))
        .route("/api/query_at_ts", post(query_at_ts))
        .route("/api/query_batch", post(query_batch))
        .layer(DefaultBodyLimit::max(MAX_CALL_BODY_BYTES))
        .layer(cors)
}

/// A request the server does not run: answered with a 4xx and `{"code", "message"}`.
#[derive(Debug)]
pub(crate) struct RequestError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl RequestError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> RequestError {
        RequestError { status, code, message: message.into() }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> RequestError {
        RequestError { status: StatusCode::BAD_REQUEST, code: "BadRequest", message: message.into() }
    }

    pub(crate) fn unauthenticated(message: impl Into<String>) -> RequestError {
        RequestError { status: StatusCode::UNAUTHORIZED, code: "Unauthenticated", message: message.into() }
    }

    pub(crate) fn too_large(limit: usize, name: &str) -> RequestError {
        let message = format!("The request body is over {limit} bytes ({name})");
        RequestError { status: StatusCode::PAYLOAD_TOO_LARGE, code: "PayloadTooLarge", message }
    }

    /// A body that could not be read: too large, or cut off.
    pub(crate) fn body(rejection: BytesRejection, limit: usize, name: &str) -> RequestError {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return RequestError::too_large(limit, name);
        }
        RequestError::invalid(format!("The request body could not be read: {rejection}"))
    }
}

impl IntoResponse for RequestError {
    fn into_response(self) -> Response {
        let body = axum::Json(json!({ "code": self.code, "message": self.message }));
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Who the `Authorization` header says is calling. The one place the HTTP API checks credentials.
pub(crate) async fn identify(shared: &Shared, headers: &HeaderMap) -> Result<Identity, RequestError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(Identity::Unauthenticated);
    };
    let value = value.to_str().map_err(|_| RequestError::unauthenticated("The `Authorization` header is not text"))?;
    if let Some(token) = value.strip_prefix("Bearer ") {
        return verify_user(shared, token.trim()).await;
    }
    if let Some(key) = value.strip_prefix("Convex ") {
        let admin_key = shared.admin_key.as_deref().ok_or_else(|| {
            RequestError::unauthenticated("This server has no admin key configured: `Convex <admin key>` is refused")
        })?;
        if !admin_key_matches(admin_key, key.trim()) {
            return Err(RequestError::unauthenticated("Wrong admin key"));
        }
        return Ok(Identity::Admin);
    }
    Err(RequestError::unauthenticated("The `Authorization` header must be `Bearer <token>` or `Convex <admin key>`"))
}

/// Succeeds when `headers` carry the admin key; otherwise the refusal says what `needs_it` needs
/// (`"Deploying"`, say) to be let in.
pub(crate) async fn require_admin(shared: &Shared, headers: &HeaderMap, needs_it: &str) -> Result<(), RequestError> {
    match identify(shared, headers).await? {
        Identity::Admin => Ok(()),
        _ => Err(RequestError::unauthenticated(format!("{needs_it} needs `Authorization: Convex <admin key>`"))),
    }
}

/// The user a token names, checked by the deployment's auth providers.
pub(crate) async fn verify_user(shared: &Shared, token: &str) -> Result<Identity, RequestError> {
    let verifier =
        shared.auth.as_ref().ok_or_else(|| RequestError::unauthenticated("This server does not accept user tokens"))?;
    let user =
        verifier.verify(token).await.map_err(|why| RequestError::unauthenticated(format!("Invalid token: {why}")))?;
    Ok(Identity::User(user))
}

/// Who a replica forwards a call as: `identity`, checked from `headers`.
fn forward_identity(headers: &HeaderMap, identity: &Identity) -> ForwardIdentity {
    match identity {
        Identity::User(_) => {
            let header = headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok()).unwrap_or_default();
            ForwardIdentity::User(header.strip_prefix("Bearer ").unwrap_or_default().trim().to_owned())
        }
        Identity::Admin | Identity::System => ForwardIdentity::Admin,
        Identity::Unauthenticated => ForwardIdentity::Unauthenticated,
    }
}

/// The value format of a request and its response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// `"json"`: plain JSON.
    Plain,
    /// `"convex_encoded_json"`: Convex JSON.
    Convex,
}

impl Format {
    fn parse(format: Option<&Json>) -> Result<Format, RequestError> {
        match format {
            None | Some(Json::Null) => Ok(Format::Plain),
            Some(Json::String(format)) => Format::named(format),
            Some(other) => Err(RequestError::invalid(format!("`format` must be a string, not {other}"))),
        }
    }

    fn named(format: &str) -> Result<Format, RequestError> {
        match format {
            "json" => Ok(Format::Plain),
            "convex_encoded_json" => Ok(Format::Convex),
            other => {
                Err(RequestError::invalid(format!("Unknown `format` `{other}`: use `json` or `convex_encoded_json`")))
            }
        }
    }

    fn read(self, json: &Json) -> Result<Value, livebase_value::ValueError> {
        match self {
            Format::Plain => from_plain_json(json),
            Format::Convex => from_convex_json(json),
        }
    }

    fn write(self, value: &Value) -> Json {
        match self {
            Format::Plain => to_plain_json(value),
            Format::Convex => to_convex_json(value),
        }
    }
}

/// One function call, as read from a request.
struct Call {
    path: String,
    args: livebase_value::Object,
    format: Format,
}

impl Call {
    /// Reads `{"path", "args"?, "format"?}`; `path` comes from the URL instead when given.
    fn read(fields: &Map<String, Json>, path: Option<String>) -> Result<Call, RequestError> {
        let format = Format::parse(fields.get("format"))?;
        let path = match (path, fields.get("path")) {
            (Some(path), _) => path,
            (None, Some(Json::String(path))) => path.clone(),
            (None, Some(other)) => return Err(RequestError::invalid(format!("`path` must be a string, not {other}"))),
            (None, None) => return Err(RequestError::invalid("The body has no `path` (the function to call)")),
        };
        if fields.get("componentPath").is_some_and(|component| !component.is_null()) {
            return Err(RequestError::invalid("Components are not supported: `componentPath` must be absent"));
        }
        let args = Call::args(fields.get("args"), format)?;
        Ok(Call { path, args, format })
    }

    fn args(args: Option<&Json>, format: Format) -> Result<livebase_value::Object, RequestError> {
        let args = match args {
            None => return Ok(livebase_value::Object::new()),
            Some(Json::Array(items)) if items.len() == 1 => &items[0],
            Some(args) => args,
        };
        if !args.is_object() {
            return Err(RequestError::invalid(format!(
                "`args` must be an object (or an array holding one object), not {}",
                livebase_value::describe_json_type(args)
            )));
        }
        match format.read(args) {
            Ok(Value::Object(args)) => Ok(args),
            Ok(_) => unreachable!("a JSON object reads as an object"),
            Err(error) => Err(RequestError::invalid(format!("Invalid `args`: {error}"))),
        }
    }
}

/// The JSON object in a request body.
pub(crate) fn body_object(body: Result<Bytes, BytesRejection>) -> Result<Map<String, Json>, RequestError> {
    let body = body.map_err(|rejection| RequestError::body(rejection, MAX_CALL_BODY_BYTES, "MAX_CALL_BODY_BYTES"))?;
    match serde_json::from_slice(&body) {
        Ok(Json::Object(fields)) => Ok(fields),
        Ok(other) => Err(RequestError::invalid(format!(
            "The body must be a JSON object, not {}",
            livebase_value::describe_json_type(&other)
        ))),
        Err(error) => Err(RequestError::invalid(format!("The body is not JSON: {error}"))),
    }
}

/// A function's outcome, as Convex's HTTP API answers it, its values written by `write`.
pub(crate) fn outcome_json(
    result: &Result<Value, FunctionError>,
    log_lines: Vec<String>,
    write: impl Fn(&Value) -> Json,
) -> Json {
    match result {
        Ok(value) => json!({ "status": "success", "value": write(value), "logLines": log_lines }),
        Err(error) => {
            let mut outcome =
                json!({ "status": "error", "errorMessage": error.client_message(), "logLines": log_lines });
            if let Some(data) = error.data() {
                outcome["errorData"] = write(data);
            }
            outcome
        }
    }
}

/// Runs `call` as `kind` (`None`: whatever the function is), a query at `at` if given. On a read
/// replica, mutations and actions run on the writer, as the caller `headers` name.
async fn run(
    shared: &Shared,
    kind: Option<FunctionKind>,
    call: Call,
    (identity, headers): (&Identity, &HeaderMap),
    at: Option<Timestamp>,
) -> Result<Json, RequestError> {
    let runtime = &shared.runtime;
    // An unknown path runs as a query, whose error names it as a query's would.
    let kind = kind.unwrap_or_else(|| {
        FunctionPath::parse(&call.path)
            .ok()
            .and_then(|path| runtime.function_kind(&path))
            .unwrap_or(FunctionKind::Query)
    });
    let Call { path, args, format } = call;
    let outcome: CallOutcome = match (kind, &shared.forwarder) {
        (FunctionKind::Query, _) => {
            let outcome = runtime.run_query(&path, args, identity, None, at);
            CallOutcome { result: outcome.result, log_lines: wire_log_lines(&outcome.log_lines), ts: None }
        }
        (FunctionKind::Mutation | FunctionKind::Action, Some(forwarder)) => {
            let kind = if kind == FunctionKind::Mutation { CallKind::Mutation } else { CallKind::Action };
            let identity = forward_identity(headers, identity);
            forwarder.call(kind, &path, args, identity, None).await.map_err(|error| error.to_request_error())?
        }
        (FunctionKind::Mutation, None) => runtime.run_mutation(&path, args, identity).await.into(),
        (FunctionKind::Action, None) => runtime.run_action(&path, args, identity).await.into(),
    };
    Ok(outcome_json(&outcome.result, outcome.log_lines, |value| format.write(value)))
}

pub(crate) fn respond(answer: Result<Json, RequestError>) -> Response {
    match answer {
        Ok(json) => axum::Json(json).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn call(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    kind: Option<FunctionKind>,
) -> Response {
    respond(
        async {
            let identity = identify(&shared, &headers).await?;
            let call = Call::read(&body_object(body)?, None)?;
            run(&shared, kind, call, (&identity, &headers), None).await
        }
        .await,
    )
}

async fn query(state: State<Arc<Shared>>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    call(state, headers, body, Some(FunctionKind::Query)).await
}

/// `GET /api/query?path=&args=&format=`, `args` being JSON text.
async fn query_get(State(shared): State<Arc<Shared>>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    respond(
        async {
            let identity = identify(&shared, &headers).await?;
            let mut fields = Map::new();
            for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
                let value = match name.as_ref() {
                    "args" => serde_json::from_str(&value)
                        .map_err(|error| RequestError::invalid(format!("The `args` parameter is not JSON: {error}")))?,
                    _ => Json::String(value.into_owned()),
                };
                fields.insert(name.into_owned(), value);
            }
            let call = Call::read(&fields, None)?;
            run(&shared, Some(FunctionKind::Query), call, (&identity, &headers), None).await
        }
        .await,
    )
}

/// `POST /api/run/<module/path>/<function>`: the function named by the URL, whatever its kind.
async fn run_by_url(
    State(shared): State<Arc<Shared>>,
    Path(function): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    respond(
        async {
            let identity = identify(&shared, &headers).await?;
            let path = match function.rsplit_once('/') {
                Some((module, name)) => format!("{module}:{name}"),
                None => function,
            };
            let call = Call::read(&body_object(body)?, Some(path))?;
            run(&shared, None, call, (&identity, &headers), None).await
        }
        .await,
    )
}

async fn query_ts(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(json!({ "ts": wire_ts(shared.store.snapshot().ts()) })).into_response()
}

async fn query_at_ts(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    respond(
        async {
            let identity = identify(&shared, &headers).await?;
            let fields = body_object(body)?;
            let ts = match fields.get("ts") {
                Some(Json::String(ts)) => livebase_sync::Timestamp::decode(ts)
                    .map_err(|why| RequestError::invalid(format!("Invalid `ts` `{ts}`: {why}")))?,
                Some(other) => return Err(RequestError::invalid(format!("`ts` must be a string, not {other}"))),
                None => return Err(RequestError::invalid("The body has no `ts` (from /api/query_ts)")),
            };
            let call = Call::read(&fields, None)?;
            let at = Timestamp::from_nanos(ts.nanos());
            run(&shared, Some(FunctionKind::Query), call, (&identity, &headers), Some(at)).await
        }
        .await,
    )
}

/// `POST /api/query_batch`: every query at the latest commit's timestamp.
async fn query_batch(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    respond(
        async {
            let identity = identify(&shared, &headers).await?;
            let fields = body_object(body)?;
            let Some(Json::Array(queries)) = fields.get("queries") else {
                return Err(RequestError::invalid("The body must have `queries`, an array of queries"));
            };
            if queries.len() > MAX_QUERY_BATCH_LEN {
                return Err(RequestError::invalid(format!(
                    "The batch has {} queries: at most {MAX_QUERY_BATCH_LEN} (MAX_QUERY_BATCH_LEN)",
                    queries.len()
                )));
            }
            // Read every query before running any: a bad one refuses the whole batch.
            let calls = queries
                .iter()
                .enumerate()
                .map(|(index, query)| {
                    match query {
                        Json::Object(fields) => Call::read(fields, None),
                        _ => Err(RequestError::invalid("every query of `queries` must be an object")),
                    }
                    .map_err(|error| RequestError::invalid(format!("queries[{index}]: {}", error.message)))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let ts = shared.store.snapshot().ts();
            let mut results = Vec::with_capacity(calls.len());
            for call in calls {
                results.push(run(&shared, Some(FunctionKind::Query), call, (&identity, &headers), Some(ts)).await?);
            }
            Ok(json!({ "results": results }))
        }
        .await,
    )
}

fn wire_ts(ts: Timestamp) -> String {
    livebase_sync::Timestamp::from_nanos(ts.nanos()).encode()
}
