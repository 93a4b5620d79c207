//! The OpenAPI 3.0 document of the HTTP API, served at `/api/openapi.json`: the app's lists (with
//! their live variant), the admin endpoints for API keys, and the error envelope.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value as JsonValue, json};

use crate::rest::admin::MAX_ADMIN_BODY_BYTES;
use crate::rest::api_keys::{MAX_API_KEY_NAME_LEN, MAX_RATE_LIMIT_PER_MINUTE};
use crate::rest::live::LAST_EVENT_ID;
use crate::rest::params::{CURSOR, DEFAULT_PAGE_LIMIT, ID, LIMIT, MAX_PAGE_LIMIT};
use crate::rest::{ErrorCode, Rest, RestList};

pub(crate) async fn serve(State(rest): State<Arc<Rest>>) -> Json<JsonValue> {
    Json(document(&rest.lists, &rest.api_key_prefix))
}

fn document(lists: &[RestList], api_key_prefix: &str) -> JsonValue {
    let mut paths = Map::new();
    for list in lists {
        paths.insert(list.path().to_owned(), list_path(list));
        paths.insert(format!("{}/{{{ID}}}", list.path()), record_path(list));
    }
    paths.insert("/api/admin/api_keys".to_owned(), create_key_path());
    paths.insert("/api/admin/api_keys/{id}".to_owned(), revoke_key_path());
    paths.insert(
        "/api/openapi.json".to_owned(),
        json!({"get": {
            "operationId": "openapi",
            "summary": "This document",
            "responses": {"200": {"description": "The OpenAPI document", "content": {"application/json": {"schema": {"type": "object"}}}}},
        }}),
    );
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|code| code.as_str()).collect();
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Livebase HTTP API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "List endpoints (forward cursor pagination, newest first, cursors bound to the API key), their single records, live lists over Server-Sent Events, and API keys.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": format!("An API key: `Authorization: Bearer {api_key_prefix}...`"),
                },
                "adminKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "`Convex <admin key>`",
                },
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {
                            "code": {"type": "string", "enum": codes},
                            "message": {"type": "string"},
                            "param": {"type": "string", "description": "The parameter, header or field at fault"},
                        },
                    }},
                },
            },
            "responses": {
                "Error": {
                    "description": "The error envelope",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
            },
        },
    })
}

fn errors(statuses: &[&str]) -> Map<String, JsonValue> {
    statuses.iter().map(|status| ((*status).to_owned(), json!({"$ref": "#/components/responses/Error"}))).collect()
}

fn list_path(list: &RestList) -> JsonValue {
    let page = json!({
        "type": "object",
        "required": ["data", "nextCursor", "hasMore"],
        "properties": {
            "data": {"type": "array", "items": {"type": "object"}},
            "nextCursor": {"type": "string", "nullable": true, "description": "Pass unchanged as `cursor`; null exactly when `hasMore` is false"},
            "hasMore": {"type": "boolean"},
        },
    });
    let mut responses = errors(&["400", "401", "429", "500", "503"]);
    responses.insert(
        "200".to_owned(),
        json!({
            "description": "A page, newest first; or, with `Accept: text/event-stream`, the page and each change to it as `page` events",
            "content": {
                "application/json": {"schema": page},
                "text/event-stream": {"schema": {"type": "string"}},
            },
        }),
    );
    json!({"get": {
        "operationId": format!("list_{}", list.table()),
        "summary": format!("Lists `{}`, newest first", list.table()),
        "security": [{"apiKey": []}],
        "parameters": [
            {
                "name": LIMIT,
                "in": "query",
                "required": false,
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_LIMIT, "default": DEFAULT_PAGE_LIMIT},
            },
            {
                "name": CURSOR,
                "in": "query",
                "required": false,
                "description": "`nextCursor` of the previous page, unchanged; omit for the first page",
                "schema": {"type": "string", "minLength": 1},
            },
            {
                "name": LAST_EVENT_ID,
                "in": "header",
                "required": false,
                "description": "Live lists: the id of the last event received, to resume the same page",
                "schema": {"type": "string", "minLength": 1},
            },
        ],
        "responses": responses,
    }})
}

fn record_path(list: &RestList) -> JsonValue {
    let mut responses = errors(&["400", "401", "404", "429", "500"]);
    responses.insert(
        "200".to_owned(),
        json!({
            "description": "The record, shaped as the list's items",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }),
    );
    json!({"get": {
        "operationId": format!("get_{}", list.table()),
        "summary": format!("One `{}` record by its id", list.table()),
        "security": [{"apiKey": []}],
        "parameters": [{
            "name": ID,
            "in": "path",
            "required": true,
            "description": "The record's `_id`; an id of another table is a 400, an unknown or deleted one a 404",
            "schema": {"type": "string"},
        }],
        "responses": responses,
    }})
}

fn create_key_path() -> JsonValue {
    let mut responses = errors(&["400", "401", "413", "500"]);
    responses.insert(
        "201".to_owned(),
        json!({
            "description": "The new key, shown this once",
            "content": {"application/json": {"schema": {
                "type": "object",
                "required": ["id", "key"],
                "properties": {"id": {"type": "string"}, "key": {"type": "string"}},
            }}},
        }),
    );
    json!({"post": {
        "operationId": "create_api_key",
        "summary": "Creates an API key",
        "security": [{"adminKey": []}],
        "requestBody": {
            "required": true,
            "description": format!("At most {MAX_ADMIN_BODY_BYTES} bytes"),
            "content": {"application/json": {"schema": {
                "type": "object",
                "required": ["name"],
                "additionalProperties": false,
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": MAX_API_KEY_NAME_LEN},
                    "rateLimitPerMinute": {"type": "integer", "minimum": 1, "maximum": MAX_RATE_LIMIT_PER_MINUTE, "nullable": true},
                },
            }}},
        },
        "responses": responses,
    }})
}

fn revoke_key_path() -> JsonValue {
    let mut responses = errors(&["400", "401", "404", "500"]);
    responses.insert("204".to_owned(), json!({"description": "Revoked"}));
    json!({"delete": {
        "operationId": "revoke_api_key",
        "summary": "Revokes an API key",
        "security": [{"adminKey": []}],
        "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
        "responses": responses,
    }})
}
