//! The deployment's environment variables over HTTP, for admins (`Authorization: Convex <admin
//! key>`), as `livebase env` uses them:
//!
//! - `GET /api/admin/env` answers `{"variables": {name: value}}`;
//! - `PUT /api/admin/env/{name}` with `{"value": string}` sets one;
//! - `DELETE /api/admin/env/{name}` removes one (404 when it was not set).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use livebase_functions::FunctionError;
use serde_json::{Value as Json, json};

use crate::Shared;
use crate::http_api::{RequestError, require_admin};

/// Bytes of a request's body: a variable's value (`MAX_ENV_VAR_VALUE_BYTES`) as JSON, with room.
pub const MAX_ADMIN_ENV_BODY_BYTES: usize = 4 * livebase_functions::limits::MAX_ENV_VAR_VALUE_BYTES;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/admin/env", get(list))
        .route("/api/admin/env/{name}", axum::routing::put(set).delete(remove))
        .layer(DefaultBodyLimit::max(MAX_ADMIN_ENV_BODY_BYTES))
}

async fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<(), RequestError> {
    require_admin(shared, headers, "Reading or changing environment variables").await
}

fn failed(error: FunctionError) -> Response {
    match error {
        FunctionError::Failed(message) | FunctionError::User { message, .. } => {
            RequestError::invalid(message).into_response()
        }
        FunctionError::Internal(why) => {
            tracing::error!("environment variables: {why}");
            (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({"code": "Internal", "message": "Server Error"})))
                .into_response()
        }
    }
}

async fn list(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(error) = authorize(&shared, &headers).await {
        return error.into_response();
    }
    match shared.runtime.list_env() {
        Ok(variables) => axum::Json(json!({ "variables": variables })).into_response(),
        Err(error) => failed(error),
    }
}

async fn set(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(error) = authorize(&shared, &headers).await {
        return error.into_response();
    }
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            return RequestError::body(rejection, MAX_ADMIN_ENV_BODY_BYTES, "MAX_ADMIN_ENV_BODY_BYTES").into_response();
        }
    };
    let value = match serde_json::from_slice::<Json>(&body) {
        Ok(Json::Object(fields)) if fields.len() == 1 && fields.get("value").is_some_and(Json::is_string) => {
            fields["value"].as_str().expect("checked to be a string").to_owned()
        }
        _ => return RequestError::invalid("The body must be `{\"value\": string}`").into_response(),
    };
    match shared.runtime.set_env(&name, &value).await {
        Ok(_) => axum::Json(json!({ "name": name, "value": value })).into_response(),
        Err(error) => failed(error),
    }
}

async fn remove(State(shared): State<Arc<Shared>>, headers: HeaderMap, Path(name): Path<String>) -> Response {
    if let Err(error) = authorize(&shared, &headers).await {
        return error.into_response();
    }
    match shared.runtime.remove_env(&name).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"code": "NotFound", "message": format!("No environment variable `{name}` is set")})),
        )
            .into_response(),
        Err(error) => failed(error),
    }
}
