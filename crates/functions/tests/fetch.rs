//! Outgoing HTTP from actions against a real HTTP server on loopback, and the time limits of actions.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use livebase_functions::limits::{MAX_ACTION_DURATION, MAX_FETCH_DURATION, MAX_FETCH_RESPONSE_BYTES};
use livebase_functions::{Function, FunctionError, HttpRequest, Identity, Registry, Runtime, object_validator};
use livebase_store::{Store, StoreConfig};
use livebase_value::{Object, ObjectField, Validator, Value};

/// Serves on 127.0.0.1 until the test's runtime ends; returns the base URL.
async fn http_server() -> String {
    let app = Router::new()
        .route("/hello", get(|| async { ([("x-greeting", "hi")], "hello") }))
        .route("/missing", get(|| async { (StatusCode::NOT_FOUND, "no such thing") }))
        .route(
            "/echo",
            post(|headers: HeaderMap, body: Bytes| async move {
                let token = headers.get("authorization").map(|value| value.to_str().unwrap().to_owned());
                format!("{} {}", token.unwrap_or_default(), String::from_utf8_lossy(&body))
            }),
        )
        .route(
            "/bytes/{count}",
            get(|axum::extract::Path(count): axum::extract::Path<usize>| async move { vec![b'x'; count] }),
        )
        .route("/hang", get(std::future::pending::<&'static str>));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.expect("the test server serves") });
    url
}

/// `http:fetch({url, method?, body?})` returns `{status, body}`; `slow:sleep({millis})` sleeps.
fn runtime(directory: &tempfile::TempDir) -> Runtime {
    let mut registry = Registry::new();
    let fetch_args = object_validator([
        ("url", ObjectField::required(Validator::String)),
        ("body", ObjectField::optional(Validator::String)),
    ]);
    registry
        .register(Function::action("http:fetch", fetch_args, |ctx, args| async move {
            let Some(Value::String(url)) = args.get("url") else { unreachable!("validated") };
            let request = match args.get("body") {
                Some(Value::String(body)) => {
                    HttpRequest::post(url, body.as_bytes()).header("Authorization", "Bearer t0k")
                }
                _ => HttpRequest::get(url),
            };
            let response = ctx.fetch(request).await?;
            let greeting = response.header("X-Greeting").unwrap_or("").to_owned();
            Ok(Value::Object(Object::from([
                ("status".to_owned(), Value::Int64(response.status.into())),
                ("greeting".to_owned(), Value::String(greeting)),
                ("length".to_owned(), Value::Int64(response.body.len() as i64)),
                (
                    "body".to_owned(),
                    Value::String(String::from_utf8_lossy(&response.body[..response.body.len().min(64)]).into_owned()),
                ),
            ])))
        }))
        .unwrap()
        .register(Function::action(
            "slow:sleep",
            object_validator([("millis", ObjectField::required(Validator::Float64))]),
            |_ctx, args| async move {
                let Some(Value::Float64(millis)) = args.get("millis") else { unreachable!("validated") };
                tokio::time::sleep(Duration::from_secs_f64(millis / 1_000.0)).await;
                Ok(Value::Null)
            },
        ))
        .unwrap();
    let store = Store::open(StoreConfig::new(directory.path())).expect("the store opens");
    Runtime::new(store, registry)
}

async fn fetch(runtime: &Runtime, url: String, body: Option<&str>) -> Result<Object, FunctionError> {
    let mut args = Object::from([("url".to_owned(), Value::String(url))]);
    if let Some(body) = body {
        args.insert("body".to_owned(), Value::from(body));
    }
    match runtime.run_action("http:fetch", args, &Identity::Unauthenticated).await.result? {
        Value::Object(fields) => Ok(fields),
        other => panic!("http:fetch returns an object, not {other:?}"),
    }
}

#[tokio::test]
async fn actions_fetch_over_http_and_see_status_headers_and_body() {
    let directory = tempfile::tempdir().unwrap();
    let (runtime, url) = (runtime(&directory), http_server().await);

    let hello = fetch(&runtime, format!("{url}/hello"), None).await.unwrap();
    assert_eq!(hello["status"], Value::Int64(200));
    assert_eq!(hello["greeting"], Value::from("hi"), "headers are found whatever their case");
    assert_eq!(hello["body"], Value::from("hello"));

    let missing = fetch(&runtime, format!("{url}/missing"), None).await.unwrap();
    assert_eq!(missing["status"], Value::Int64(404), "an error status is an answer, not a failure");

    let echoed = fetch(&runtime, format!("{url}/echo"), Some("ping")).await.unwrap();
    assert_eq!(echoed["body"], Value::from("Bearer t0k ping"), "method, header and body reach the server");
}

#[tokio::test]
async fn responses_are_read_up_to_the_limit_and_no_further() {
    let directory = tempfile::tempdir().unwrap();
    let (runtime, url) = (runtime(&directory), http_server().await);

    let at_limit = fetch(&runtime, format!("{url}/bytes/{MAX_FETCH_RESPONSE_BYTES}"), None).await.unwrap();
    assert_eq!(at_limit["length"], Value::Int64(MAX_FETCH_RESPONSE_BYTES as i64));

    let over = fetch(&runtime, format!("{url}/bytes/{}", MAX_FETCH_RESPONSE_BYTES + 1), None).await.unwrap_err();
    assert!(over.to_string().contains("MAX_FETCH_RESPONSE_BYTES"), "{over}");
}

#[tokio::test]
async fn bad_requests_fail_clearly_without_reaching_the_network() {
    let directory = tempfile::tempdir().unwrap();
    let runtime = runtime(&directory);
    for (url, expected) in [
        ("not a url".to_owned(), "bad URL"),
        ("ftp://127.0.0.1/file".to_owned(), "only http and https"),
        // Port 9 (discard) on loopback: nothing listens in a test machine's usual setup, so the
        // connection is refused.
        ("http://127.0.0.1:9/".to_owned(), "fetch GET http://127.0.0.1:9/"),
    ] {
        let error = fetch(&runtime, url.clone(), None).await.unwrap_err();
        assert!(matches!(error, FunctionError::Failed(_)), "{url}: {error:?}");
        assert!(error.to_string().contains(expected), "{url}: {error}");
    }
}

// Paused time: the runtime jumps the clock to the next timer whenever every task waits, so the
// limits are reached at once, without waiting minutes.
#[tokio::test(start_paused = true)]
async fn a_request_with_no_answer_fails_after_max_fetch_duration() {
    let directory = tempfile::tempdir().unwrap();
    let (runtime, url) = (runtime(&directory), http_server().await);
    let started = tokio::time::Instant::now();
    let error = fetch(&runtime, format!("{url}/hang"), None).await.unwrap_err();
    assert!(error.to_string().contains("MAX_FETCH_DURATION"), "{error}");
    assert!(started.elapsed() >= MAX_FETCH_DURATION, "failed after {:?}", started.elapsed());
}

#[tokio::test(start_paused = true)]
async fn an_action_running_past_max_action_duration_is_stopped() {
    let directory = tempfile::tempdir().unwrap();
    let runtime = runtime(&directory);
    let sleep = |millis: Duration| {
        let args = Object::from([("millis".to_owned(), Value::Float64(millis.as_secs_f64() * 1_000.0))]);
        runtime.run_action("slow:sleep", args, &Identity::Unauthenticated)
    };
    let just_inside = sleep(MAX_ACTION_DURATION - Duration::from_millis(1)).await;
    assert_eq!(just_inside.result, Ok(Value::Null));
    let too_long = sleep(MAX_ACTION_DURATION + Duration::from_millis(1)).await;
    let error = too_long.result.unwrap_err();
    assert!(error.to_string().contains("MAX_ACTION_DURATION"), "{error}");
}
