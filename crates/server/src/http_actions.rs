//! The app's HTTP actions (routes of its registry), served under `/http/` on the API port and at
//! the root of the site port: `GET /http/messages` on the one is `GET /messages` on the other.
//!
//! The request reaches the handler whole (method, URL, headers, body up to
//! `MAX_HTTP_ACTION_REQUEST_BYTES`); what it answers goes back as it is. The caller's identity is
//! the `Authorization` header's when that verifies (a user token or the admin key); otherwise the
//! action runs unauthenticated, since webhooks put secrets of their own in that header. Unlike the
//! function-call API, no CORS headers are added: an app answers `OPTIONS` itself, as on Convex.
//! A read replica passes the request on to the writer (`forward.rs`) and answers what it answers,
//! once it shows the writer's commits up to the end of the handler (`COMMIT_TS_HEADER`).

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use livebase_functions::limits::MAX_HTTP_ACTION_REQUEST_BYTES;
use livebase_functions::{HttpRequest, HttpResponse, Identity};

use crate::Shared;
use crate::forward::{COMMIT_TS_HEADER, VIA_REPLICA_HEADER, not_the_writer};
use crate::http_api::{RequestError, identify};

/// Where the API port serves HTTP actions.
pub(crate) const HTTP_ACTIONS_PATH: &str = "/http";

/// `/http` and everything under it, on the API port.
pub(crate) fn api_port_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(HTTP_ACTIONS_PATH, any(on_api_port))
        // A catch-all matches one character at least: `/http/` needs a route of its own.
        .route(&format!("{HTTP_ACTIONS_PATH}/"), any(on_api_port))
        .route(&format!("{HTTP_ACTIONS_PATH}/{{*path}}"), any(on_api_port))
        .layer(DefaultBodyLimit::max(MAX_HTTP_ACTION_REQUEST_BYTES))
}

/// Every path of the site port (a fallback: routes merged beside it come first).
pub(crate) fn site_port_routes() -> Router<Arc<Shared>> {
    Router::new().fallback(on_site_port).layer(DefaultBodyLimit::max(MAX_HTTP_ACTION_REQUEST_BYTES))
}

async fn on_api_port(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let path_and_query = uri.path_and_query().map_or("/", |path| path.as_str());
    let routed = path_and_query.strip_prefix(HTTP_ACTIONS_PATH).expect("routed under the prefix");
    // `/http` and `/http?x` are the root.
    let routed = if routed.starts_with('/') { routed.to_owned() } else { format!("/{routed}") };
    serve(&shared, method, &routed, headers, body).await
}

async fn on_site_port(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let path_and_query = uri.path_and_query().map_or("/", |path| path.as_str()).to_owned();
    serve(&shared, method, &path_and_query, headers, body).await
}

/// Runs the HTTP action for a request whose path (and query) the app's routes see is `routed`.
async fn serve(
    shared: &Shared,
    method: Method,
    routed: &str,
    mut headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            return RequestError::body(rejection, MAX_HTTP_ACTION_REQUEST_BYTES, "MAX_HTTP_ACTION_REQUEST_BYTES")
                .into_response();
        }
    };
    if let Some(forwarder) = &shared.forwarder {
        // A replica: the action's writes must run on the writer, so all of it does.
        return forwarder
            .http_action(method, routed, &headers, body)
            .await
            .unwrap_or_else(|error| error.to_request_error().into_response());
    }
    let via_replica = headers.remove(VIA_REPLICA_HEADER).is_some();
    if via_replica && let Some(refusal) = not_the_writer(&shared.store) {
        return refusal;
    }
    let identity = identify(shared, &headers).await.unwrap_or(Identity::Unauthenticated);
    let request = match request(method, routed, &headers, body) {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    let outcome = shared.runtime.run_http_action(request, &identity).await;
    let mut response = response(outcome.response);
    if via_replica {
        // The handler's commits were acknowledged, so published: the newest is at or after them all.
        let ts = HeaderValue::from(shared.store.snapshot().ts().nanos());
        response.headers_mut().insert(COMMIT_TS_HEADER, ts);
    }
    response
}

fn request(method: Method, routed: &str, headers: &HeaderMap, body: Bytes) -> Result<HttpRequest, RequestError> {
    let host = headers.get(header::HOST).and_then(|host| host.to_str().ok()).unwrap_or("localhost");
    let headers = headers
        .iter()
        .map(|(name, value)| match std::str::from_utf8(value.as_bytes()) {
            Ok(value) => Ok((name.as_str().to_owned(), value.to_owned())),
            Err(_) => Err(RequestError::invalid(format!("The value of header `{name}` is not UTF-8 text"))),
        })
        .collect::<Result<_, _>>()?;
    Ok(HttpRequest {
        method: method.as_str().to_owned(),
        url: format!("http://{host}{routed}"),
        headers,
        body: body.into(),
    })
}

fn response(answer: HttpResponse) -> Response {
    let status = StatusCode::from_u16(answer.status).expect("the runtime answers with statuses from 100 to 999");
    let mut response = Response::new(Body::from(answer.body));
    *response.status_mut() = status;
    for (name, value) in answer.headers {
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(&value)) else {
            tracing::warn!(header = name, "an HTTP action answered with an invalid header");
            let message = format!("The HTTP action answered with an invalid header `{name}`");
            return (StatusCode::INTERNAL_SERVER_ERROR, message).into_response();
        };
        response.headers_mut().append(name, value);
    }
    response
}
