//! The error envelope of the HTTP API: every error is a JSON body
//! `{"error": {"code", "message", "param"?}}` with a stable machine-readable `code`, a message for
//! humans, and the request parameter or header at fault when there is one.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value as JsonValue};

/// The stable codes of the envelope, one per kind of failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// 400: a parameter, header or body is malformed or out of range (`param` names it).
    Validation,
    /// 401: missing, malformed, unknown or revoked credentials.
    Unauthorized,
    /// 404: the addressed resource does not exist.
    NotFound,
    /// 413: the request body is over its limit.
    PayloadTooLarge,
    /// 429: the API key's rate limit is used up; `Retry-After` says for how long.
    RateLimited,
    /// 503: a server-wide bound is reached (live lists), or the store is shutting down.
    Unavailable,
    /// 500: a bug or a failed disk; the message says no more than that.
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Validation => "VALIDATION",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::Internal => "INTERNAL",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            ErrorCode::Validation => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Every code, for the OpenAPI document.
    pub const ALL: [ErrorCode; 7] = [
        ErrorCode::Validation,
        ErrorCode::Unauthorized,
        ErrorCode::NotFound,
        ErrorCode::PayloadTooLarge,
        ErrorCode::RateLimited,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];
}

/// An error answered with the envelope.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub param: Option<&'static str>,
    /// Seconds, for `RateLimited`.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn validation(param: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { code: ErrorCode::Validation, message: message.into(), param: Some(param), retry_after: None }
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError { code: ErrorCode::Unauthorized, message: message.into(), param: None, retry_after: None }
    }

    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into(), param: None, retry_after: None }
    }

    /// A failure that is not the caller's: logged here, answered without details.
    pub fn internal(error: impl std::fmt::Display) -> ApiError {
        tracing::error!(%error, "HTTP API request failed");
        ApiError::new(ErrorCode::Internal, "The server failed to answer this request; it has been logged.")
    }

    pub fn to_json(&self) -> JsonValue {
        let mut error = Map::new();
        error.insert("code".to_owned(), self.code.as_str().into());
        error.insert("message".to_owned(), self.message.clone().into());
        if let Some(param) = self.param {
            error.insert("param".to_owned(), param.into());
        }
        serde_json::json!({ "error": error })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.code.status(), Json(self.to_json())).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.code == ErrorCode::Unauthorized {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
