//! HTTP actions through the runtime: routing, what handlers get and can do, and how failures answer.

use livebase_functions::limits::MAX_HTTP_ACTION_RESPONSE_BYTES;
use livebase_functions::{
    Function, FunctionError, HttpMethod, HttpRequest, HttpResponse, HttpRoute, INTERNAL_ERROR_MESSAGE, Identity,
    LogLevel, Registry, Runtime, UserIdentity, object_validator,
};
use livebase_query::Query;
use livebase_store::{Schema, Store, StoreConfig, TableSchema};
use livebase_value::{Object, ObjectField, Validator, Value};

struct App {
    runtime: Runtime,
    _directory: tempfile::TempDir,
}

async fn app() -> App {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open(StoreConfig::new(directory.path())).expect("the store opens");
    store.apply_schema(&Schema { tables: vec![TableSchema::new("notes")] }).await.expect("the schema applies");
    App { runtime: Runtime::new(store, registry()), _directory: directory }
}

fn registry() -> Registry {
    let mut registry = Registry::new();
    let text = || object_validator([("text", ObjectField::required(Validator::String))]);
    registry
        .register(
            Function::mutation("notes:add", text(), |ctx, args| {
                Ok(Value::String(ctx.db().insert("notes", args)?.encode()))
            })
            .internal(),
        )
        .unwrap()
        .register(Function::query("notes:count", object_validator([]), |ctx, _| {
            Ok(Value::Float64(ctx.db().query(Query::table("notes")).collect()?.len() as f64))
        }))
        .unwrap()
        // Adds the body as a note through an internal mutation, answers the count from a query.
        .route(HttpRoute::exact(HttpMethod::Post, "/notes", |ctx, request| async move {
            ctx.log(LogLevel::Info, format!("adding from {}", request.path()));
            let text = request.text()?.to_owned();
            ctx.run_mutation("notes:add", Object::from([("text".to_owned(), Value::String(text))])).await?;
            let count = ctx.run_query("notes:count", Object::new()).await?;
            Ok(HttpResponse::text(201, count.to_string()).with_header("x-note", "added"))
        }))
        .unwrap()
        // Echoes what it got.
        .route(HttpRoute::prefix(HttpMethod::Get, "/echo/", |ctx, request| async move {
            let user = ctx.auth().get_user_identity().map_or("nobody".to_owned(), |user| user.subject.clone());
            let echoed = format!(
                "{} {} x-probe={} user={user}",
                request.method,
                request.url,
                request.header_value("X-Probe").unwrap_or("-"),
            );
            Ok(HttpResponse::text(200, echoed))
        }))
        .unwrap()
        .route(HttpRoute::exact(HttpMethod::Get, "/fail", |_, _| async {
            Err(FunctionError::user(Value::from("teapot trouble")))
        }))
        .unwrap()
        .route(HttpRoute::exact(HttpMethod::Get, "/panic", |_, _| async { panic!("the handler broke") }))
        .unwrap()
        .route(HttpRoute::exact(HttpMethod::Get, "/huge", |_, _| async {
            Ok(HttpResponse::new(200).with_body(vec![b'x'; MAX_HTTP_ACTION_RESPONSE_BYTES + 1]))
        }))
        .unwrap()
        .route(HttpRoute::exact(HttpMethod::Get, "/largest", |_, _| async {
            Ok(HttpResponse::new(200).with_body(vec![b'x'; MAX_HTTP_ACTION_RESPONSE_BYTES]))
        }))
        .unwrap()
        .route(HttpRoute::exact(HttpMethod::Get, "/bad-status", |_, _| async { Ok(HttpResponse::new(1_000)) }))
        .unwrap();
    registry
}

fn request(method: &str, url: &str, body: &[u8]) -> HttpRequest {
    HttpRequest {
        method: method.to_owned(),
        url: url.to_owned(),
        headers: vec![("x-probe".to_owned(), "42".to_owned())],
        body: body.to_vec(),
    }
}

fn text(response: &HttpResponse) -> &str {
    std::str::from_utf8(&response.body).expect("a text body")
}

#[tokio::test]
async fn a_route_runs_functions_and_answers_what_it_built() {
    let app = app().await;
    let first =
        app.runtime.run_http_action(request("POST", "http://h/notes", b"one"), &Identity::Unauthenticated).await;
    assert_eq!((first.response.status, text(&first.response)), (201, "1"));
    assert_eq!(first.response.header("x-note"), Some("added"));
    assert_eq!(first.log_lines.len(), 1);
    assert_eq!(first.log_lines[0].to_string(), "[INFO] adding from /notes");
    let second = app.runtime.run_http_action(request("POST", "http://h/notes?x=1", b"two"), &Identity::Unauthenticated);
    assert_eq!(text(&second.await.response), "2", "the query saw both mutations");
}

#[tokio::test]
async fn handlers_get_the_request_and_the_identity() {
    let app = app().await;
    let user = UserIdentity {
        token_identifier: "https://issuer|ada".to_owned(),
        subject: "ada".to_owned(),
        issuer: "https://issuer".to_owned(),
        claims: Object::new(),
    };
    let outcome =
        app.runtime.run_http_action(request("GET", "http://h/echo/a/b?q=1", b""), &Identity::User(user)).await;
    assert_eq!(text(&outcome.response), "GET http://h/echo/a/b?q=1 x-probe=42 user=ada");
    let head = app.runtime.run_http_action(request("HEAD", "http://h/echo/", b""), &Identity::Unauthenticated).await;
    assert_eq!(text(&head.response), "HEAD http://h/echo/ x-probe=42 user=nobody", "HEAD is routed as GET");
}

#[tokio::test]
async fn requests_without_a_route_get_404() {
    let app = app().await;
    for (method, url) in
        [("GET", "http://h/nowhere"), ("PUT", "http://h/notes"), ("GET", "http://h/echo"), ("TRACE", "http://h/echo/")]
    {
        let outcome = app.runtime.run_http_action(request(method, url, b""), &Identity::Unauthenticated).await;
        assert_eq!(outcome.response.status, 404, "{method} {url}");
        assert!(text(&outcome.response).starts_with("No HttpAction routed for /"), "{}", text(&outcome.response));
    }
}

#[tokio::test]
async fn failures_answer_500_with_what_the_client_may_see() {
    let app = app().await;
    let run = |url: &'static str| app.runtime.run_http_action(request("GET", url, b""), &Identity::Unauthenticated);
    let failed = run("http://h/fail").await.response;
    assert_eq!((failed.status, text(&failed)), (500, "teapot trouble"));
    let panicked = run("http://h/panic").await.response;
    assert_eq!((panicked.status, text(&panicked)), (500, INTERNAL_ERROR_MESSAGE), "a panic's message stays in the log");
    let huge = run("http://h/huge").await.response;
    assert_eq!(huge.status, 500);
    assert!(text(&huge).contains("MAX_HTTP_ACTION_RESPONSE_BYTES"), "{}", text(&huge));
    let largest = run("http://h/largest").await.response;
    assert_eq!((largest.status, largest.body.len()), (200, MAX_HTTP_ACTION_RESPONSE_BYTES));
    let bad_status = run("http://h/bad-status").await.response;
    assert_eq!(bad_status.status, 500);
    assert!(text(&bad_status).contains("status 1000"), "{}", text(&bad_status));
}
