//! The app the HTTP API's tests call: notes, an internal query, a user error with data, an action,
//! and HTTP routes; served with an admin key, a user-token verifier and a site port. Included with
//! `#[path]` by the tests that call it over HTTP.

use std::net::SocketAddr;
use std::sync::Arc;

use livebase_auth::testing::{RSA_KEY_1, jwks, now_secs};
use livebase_auth::{AuthConfig, JwksSource, Provider, SigningAlgorithm, Verifier};
use livebase_functions::{Function, FunctionError, HttpMethod, HttpResponse, HttpRoute, Registry, object_validator};
use livebase_query::Query;
use livebase_store::{Schema, TableSchema};
use livebase_value::{Object, ObjectField, Validator, Value};
use serde_json::json;
use tokio::net::TcpListener;

use crate::common::TestServer;

pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

const ISSUER: &str = "https://issuer.test";

/// A valid token of user `ada`, from the one issuer the server trusts.
pub fn ada_token() -> String {
    RSA_KEY_1.sign(&json!({ "iss": ISSUER, "sub": "ada", "iat": now_secs(), "exp": now_secs() + 3_600 }))
}

/// The server, and the address of its site port.
pub async fn start() -> (TestServer, SocketAddr) {
    let site_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let site = site_listener.local_addr().unwrap();
    let server = TestServer::start_app(schema(), registry(), move |mut config| {
        config.admin_key = Some(ADMIN_KEY.to_owned());
        let provider = Provider::CustomJwt {
            issuer: ISSUER.to_owned(),
            jwks: JwksSource::Inline(jwks(&[&RSA_KEY_1]).to_string()),
            algorithm: SigningAlgorithm::RS256,
            application_id: None,
        };
        let verifier = Verifier::new(AuthConfig { providers: vec![provider] }).expect("a valid auth config");
        config.auth = Some(Arc::new(verifier));
        config.site_listener = Some(site_listener);
        config
    })
    .await;
    (server, site)
}

fn schema() -> Schema {
    Schema { tables: vec![TableSchema::new("notes")] }
}

fn registry() -> Registry {
    let mut registry = Registry::new();
    let none = || object_validator([]);
    registry
        .register(Function::mutation(
            "notes:add",
            object_validator([("text", ObjectField::required(Validator::String))]),
            |ctx, args| {
                ctx.log(livebase_functions::LogLevel::Log, format!("adding {}", args["text"]));
                Ok(Value::String(ctx.db().insert("notes", args)?.encode()))
            },
        ))
        .unwrap()
        .register(Function::query("notes:list", none(), |ctx, _| {
            let notes = ctx.db().query(Query::table("notes")).collect()?;
            Ok(Value::Array(notes.iter().map(|note| note.object()["text"].clone()).collect()))
        }))
        .unwrap()
        .register(Function::query("notes:count", none(), |ctx, _| {
            Ok(Value::Int64(ctx.db().query(Query::table("notes")).collect()?.len() as i64))
        }))
        .unwrap()
        .register(Function::query("notes:secret", none(), |_, _| Ok(Value::from("the secret"))).internal())
        .unwrap()
        .register(Function::query("notes:whoami", none(), |ctx, _| {
            Ok(ctx.auth().get_user_identity().map_or(Value::Null, |user| Value::from(user.subject.as_str())))
        }))
        .unwrap()
        .register(Function::mutation("notes:reject", none(), |_, _| {
            let data = Object::from([("code".to_owned(), Value::from("NOPE")), ("count".to_owned(), Value::Int64(3))]);
            Err(FunctionError::user(Value::Object(data)))
        }))
        .unwrap()
        .register(Function::action(
            "notes:echo",
            object_validator([("value", ObjectField::required(Validator::Any))]),
            |_, args| async move { Ok(args["value"].clone()) },
        ))
        .unwrap()
        .route(HttpRoute::exact(HttpMethod::Post, "/notes", |ctx, request| async move {
            let text = Value::String(request.text()?.to_owned());
            ctx.run_mutation("notes:add", Object::from([("text".to_owned(), text)])).await?;
            let Value::Int64(count) = ctx.run_query("notes:count", Object::new()).await? else {
                return Err(FunctionError::failed("`notes:count` returns an int64"));
            };
            Ok(HttpResponse::text(201, count.to_string()))
        }))
        .unwrap()
        .route(HttpRoute::prefix(HttpMethod::Get, "/files/", |ctx, request| async move {
            let user = ctx.auth().get_user_identity().map_or("nobody".to_owned(), |user| user.subject.clone());
            let probe = request.header_value("x-probe").unwrap_or("-");
            Ok(HttpResponse::text(200, format!("prefix {} probe={probe} user={user}", request.url))
                .with_header("x-route", "prefix"))
        }))
        .unwrap()
        .route(HttpRoute::exact(HttpMethod::Get, "/files/special", |_, _| async {
            Ok(HttpResponse::text(200, "exact"))
        }))
        .unwrap()
        .route(HttpRoute::exact(HttpMethod::Post, "/length", |_, request| async move {
            Ok(HttpResponse::text(200, request.body.len().to_string()))
        }))
        .unwrap()
        .route(HttpRoute::exact(HttpMethod::Get, "/fail", |_, _| async {
            Err(FunctionError::user(Value::from("the route failed")))
        }))
        .unwrap();
    registry
}
