//! The admin endpoints for API keys, authorized by `Authorization: Convex <admin key>`:
//! `POST /api/admin/api_keys {"name", "rateLimitPerMinute"?}` answers `{"id", "key"}` (the only
//! time the key is shown); `DELETE /api/admin/api_keys/{id}` revokes it.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, to_bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as JsonValue, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

use crate::rest::api_keys::{self, ApiKeyError, NewApiKey};
use crate::rest::{ApiError, ErrorCode, Rest};

/// Bytes of an admin request's body.
pub const MAX_ADMIN_BODY_BYTES: usize = 4 * 1024;

/// Whether `presented` is the admin key, compared in constant time. Digests are compared, so the
/// time taken does not even depend on the keys' lengths.
pub fn admin_key_matches(admin_key: &str, presented: &str) -> bool {
    Sha256::digest(admin_key.as_bytes()).ct_eq(&Sha256::digest(presented.as_bytes())).into()
}

fn authorize_admin(rest: &Rest, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(admin_key) = &rest.admin_key else {
        return Err(ApiError::unauthorized("This server has no admin key configured: the admin API is disabled"));
    };
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::unauthorized("Missing `Authorization: Convex <admin key>` header"));
    };
    let Some(presented) = value.to_str().ok().and_then(|value| value.strip_prefix("Convex ")) else {
        return Err(ApiError::unauthorized("Malformed `Authorization` header: expected `Convex <admin key>`"));
    };
    if !admin_key_matches(admin_key, presented) {
        return Err(ApiError::unauthorized("Wrong admin key"));
    }
    Ok(())
}

pub(crate) async fn create_key(State(rest): State<Arc<Rest>>, headers: HeaderMap, body: Body) -> Response {
    match create(&rest, &headers, body).await {
        Ok((id, key)) => (StatusCode::CREATED, Json(json!({ "id": id, "key": key }))).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn create(rest: &Rest, headers: &HeaderMap, body: Body) -> Result<(String, String), ApiError> {
    authorize_admin(rest, headers)?;
    let body = to_bytes(body, MAX_ADMIN_BODY_BYTES).await.map_err(|_| {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("The body is over {MAX_ADMIN_BODY_BYTES} bytes (MAX_ADMIN_BODY_BYTES)"),
        )
    })?;
    let new = parse_new_key(&body)?;
    match api_keys::create(&rest.store, &rest.api_key_prefix, &new).await {
        Ok(created) => Ok((created.id.encode(), created.key)),
        Err(ApiKeyError::Invalid(param, message)) => Err(ApiError::validation(param, message)),
        Err(error @ ApiKeyError::TooMany) => Err(ApiError::new(ErrorCode::Validation, error.to_string())),
        Err(ApiKeyError::Commit(error)) => Err(ApiError::internal(error)),
    }
}

fn parse_new_key(body: &[u8]) -> Result<NewApiKey, ApiError> {
    let invalid = |message: &str| ApiError::validation("body", message.to_owned());
    let expected = "The body must be a JSON object `{\"name\": string, \"rateLimitPerMinute\"?: integer}`";
    let Ok(JsonValue::Object(fields)) = serde_json::from_slice::<JsonValue>(body) else {
        return Err(invalid(expected));
    };
    if let Some(unknown) = fields.keys().find(|field| !["name", "rateLimitPerMinute"].contains(&field.as_str())) {
        let shown: String = unknown.chars().take(64).collect();
        return Err(invalid(&format!("Unknown field `{shown}`. {expected}")));
    }
    let Some(JsonValue::String(name)) = fields.get("name") else {
        return Err(ApiError::validation("name", "`name` is required and must be a string"));
    };
    let rate_limit_per_minute = match fields.get("rateLimitPerMinute") {
        None | Some(JsonValue::Null) => None,
        Some(limit) => Some(limit.as_u64().ok_or_else(|| {
            ApiError::validation("rateLimitPerMinute", "`rateLimitPerMinute` must be a whole number of requests")
        })?),
    };
    Ok(NewApiKey { name: name.clone(), rate_limit_per_minute })
}

pub(crate) async fn revoke_key(State(rest): State<Arc<Rest>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let revoked = async {
        authorize_admin(&rest, &headers)?;
        match api_keys::revoke(&rest.store, &id).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(ApiError::new(ErrorCode::NotFound, "No API key has this id (or it was revoked already)")),
            Err(ApiKeyError::Invalid(param, message)) => Err(ApiError::validation(param, message)),
            Err(error) => Err(ApiError::internal(error)),
        }
    };
    match revoked.await {
        Ok(()) => {
            if let Ok(id) = livebase_value::DocumentId::decode(&id) {
                rest.rate_limiter.forget(id);
            }
            StatusCode::NO_CONTENT.into_response()
        }
        Err(error) => error.into_response(),
    }
}
