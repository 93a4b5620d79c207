//! Conformance with the official Rust client (the `convex` crate, 0.10) and the official Python
//! client (the `convex` PyPI package, 0.8, which wraps the crate; driven by
//! `tests/python/conformance.py`): subscribe, see another client's mutation, get a mutation's
//! result once its effects are visible, run an action, get an error's data.

#[allow(dead_code, reason = "each test binary uses some of the shared helpers")]
mod common;
#[path = "common/process.rs"]
mod process;
#[path = "common/rust_clients.rs"]
mod rust_clients;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{PATIENCE, TestServer};
use convex::FunctionResult;
use livebase_functions::{Function, FunctionError, Registry, object_validator};
use livebase_query::Query;
use livebase_server::app;
use livebase_value::{ObjectField, Validator};
use process::run;
use rust_clients::{RustClients, args, next_bodies};
use tokio::process::Command;

/// Covers creating the virtual environment and installing the client on a cold cache.
const PYTHON_ENV_TIMEOUT: Duration = Duration::from_secs(300);
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);

/// The built-in app, and `errors:fail({code})`, a mutation that fails with data
/// `{code, reason: "on purpose"}` (a `ConvexError` to the clients).
fn app_with_errors() -> Registry {
    let mut registry = app::registry();
    let args = object_validator([("code", ObjectField::required(Validator::Float64))]);
    registry
        .register(Function::mutation("errors:fail", args, |_ctx, mut args| {
            args.insert("reason".to_owned(), "on purpose".into());
            Err(FunctionError::user(livebase_value::Value::Object(args)))
        }))
        .expect("a new function");
    registry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_rust_client_subscribes_mutates_acts_and_gets_error_data() {
    let server = TestServer::start_app(app::schema(), app_with_errors(), |config| config).await;
    let url = format!("http://{}", server.addr);
    let clients = RustClients::new();
    let mut watcher = clients.connect(&url).await;
    let mut writer = clients.connect(&url).await;
    let mut watched = watcher.subscribe("messages:list", BTreeMap::new()).await.unwrap();
    let mut own = writer.subscribe("messages:list", BTreeMap::new()).await.unwrap();
    assert_eq!(next_bodies(&mut watched, PATIENCE).await, Vec::<String>::new());
    assert_eq!(next_bodies(&mut own, PATIENCE).await, Vec::<String>::new());

    let body = "hello from the rust client";
    let sent = writer.mutation("messages:send", args(&[("body", body.into())])).await.unwrap();
    assert!(matches!(sent, FunctionResult::Value(convex::Value::String(_))), "{sent:?}");
    // The client resolves a mutation once a Transition reached its commit: that Transition carried
    // the new list to the writer's own subscription, and the watcher gets it too.
    assert_eq!(next_bodies(&mut own, PATIENCE).await, [body]);
    assert_eq!(next_bodies(&mut watched, PATIENCE).await, [body]);

    let echoed = writer.action("messages:echo", args(&[("text", "ping".into())])).await.unwrap();
    assert_eq!(echoed, FunctionResult::Value("ping".into()));

    let failed = writer.mutation("errors:fail", args(&[("code", 42.0.into())])).await.unwrap();
    let FunctionResult::ConvexError(error) = failed else { panic!("not a ConvexError: {failed:?}") };
    let expected = args(&[("code", 42.0.into()), ("reason", "on purpose".into())]);
    assert_eq!(error.data, convex::Value::Object(expected));
    let invalid = writer.mutation("messages:send", args(&[("body", 42.0.into())])).await.unwrap();
    let FunctionResult::ErrorMessage(message) = invalid else { panic!("not an error message: {invalid:?}") };
    assert!(message.contains("ArgumentValidationError"), "{message}");
    drop((watched, own, watcher, writer));
    clients.shut_down();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_client_subscribes_mutates_acts_and_gets_error_data() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let setup = run(Command::new("scripts/python-env.sh").current_dir(&root), PYTHON_ENV_TIMEOUT).await;
    assert!(setup.status.success(), "scripts/python-env.sh failed: {}", String::from_utf8_lossy(&setup.stderr));
    let python = Path::new(String::from_utf8(setup.stdout).unwrap().trim()).join("bin/python");
    let server = TestServer::start_app(app::schema(), app_with_errors(), |config| config).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/conformance.py");
    let url = format!("http://{}", server.addr);
    let output = run(Command::new(&python).arg(&script).arg(&url), SCRIPT_TIMEOUT).await;
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the script failed:\n{stdout}\n{stderr}");
    assert!(stdout.starts_with("OK"), "{stdout}\n{stderr}");
    assert_eq!(server.store.snapshot().document_count("messages"), 1, "one message sent");
    server.stop().await;
}

/// The built-in app, and `counted:list`, which is `messages:list` counting its runs in `runs`.
fn app_counting_runs(runs: Arc<AtomicUsize>) -> Registry {
    let mut registry = app::registry();
    registry
        .register(Function::query("counted:list", object_validator([]), move |ctx, _args| {
            runs.fetch_add(1, Ordering::SeqCst);
            let messages = ctx.db().query(Query::table("messages")).collect()?;
            let messages = messages.iter().map(|message| livebase_value::Value::Object(message.object().clone()));
            Ok(livebase_value::Value::Array(messages.collect()))
        }))
        .expect("a new function");
    registry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_subscriptions_of_different_clients_share_one_run_per_commit() {
    const SUBSCRIBERS: usize = 4;
    let runs = Arc::new(AtomicUsize::new(0));
    let server = TestServer::start_app(app::schema(), app_counting_runs(Arc::clone(&runs)), |config| config).await;
    let url = format!("http://{}", server.addr);
    let clients = RustClients::new();
    let mut subscribers = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let mut client = clients.connect(&url).await;
        let mut subscription = client.subscribe("counted:list", BTreeMap::new()).await.unwrap();
        assert_eq!(next_bodies(&mut subscription, PATIENCE).await, Vec::<String>::new());
        subscribers.push((client, subscription));
    }
    runs.store(0, Ordering::SeqCst);
    let mut writer = clients.connect(&url).await;
    let body = "seen by every subscriber";
    writer.mutation("messages:send", args(&[("body", body.into())])).await.unwrap();
    for (_, subscription) in &mut subscribers {
        assert_eq!(next_bodies(subscription, PATIENCE).await, [body]);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1, "{SUBSCRIBERS} subscribers, one commit: one run");
    drop((subscribers, writer));
    clients.shut_down();
    server.stop().await;
}
