//! TypeScript functions against Rust ones: the same query (`get`, one document through an index),
//! the same mutation (`insert`, one small durable insert) and an empty query, once as the benchmark
//! app's Rust functions and once as their TypeScript twins in `bench/convex/js.ts` (bundled and run
//! on QuickJS by livebase-js), served side by side by one server process over one store.
//!
//! Both go through the HTTP function API loaded by wrk, as `http_calls` loads the Rust app: that is
//! the path a client's call takes, so the JS/Rust ratio is what a caller sees (HTTP, JSON, the
//! commit pipeline included), and the target (JS mutations at >= 25% of Rust's) is checked
//! on it. The engine's own cost per call (livebase-js keeps a context per worker with the bundle
//! evaluated, so a call is the call itself plus the hops to a worker) is measured apart, in this
//! process with one caller and no network: an empty TypeScript query against an empty Rust one; and
//! `js_engine` measures what a fresh context would cost instead.

use std::path::PathBuf;
use std::time::Duration;

use livebase_functions::{Function, Identity, Registry, Runtime, object_validator};
use livebase_js::App;
use livebase_server::{ServerConfig, serve};
use livebase_store::{Store, StoreConfig};
use livebase_value::{Object, Value};
use serde_json::{Value as Json, json};

use crate::Effort;
use crate::app;
use crate::client::HttpCaller;
use crate::http_calls;
use crate::js_engine;
use crate::report::Report;
use crate::server::{ServerProcess, listen, run_until_stdin_closes};
use crate::wrk;

const SECTION: &str = "TypeScript against Rust functions (Convex HTTP API, loopback, wrk)";
const COST_SECTION: &str = "TypeScript per-call cost (in process, one caller, no network, CPU time)";

/// The target: TypeScript mutations at this share of the Rust ones' throughput at least.
const TARGET_MUTATION_RATIO: f64 = 0.25;

/// The empty Rust query, beside `js:empty`.
const RUST_EMPTY: &str = "rust:empty";
const JS_EMPTY: &str = "js:empty";

/// One call made as a Rust function and as its TypeScript twin.
struct Pair {
    what: &'static str,
    kind: &'static str,
    rust: &'static str,
    js: &'static str,
    args: Json,
    /// The least JS/Rust ratio of calls/s the issue asks for.
    target: Option<f64>,
}

fn pairs() -> [Pair; 3] {
    [
        Pair { what: "query", kind: "query", rust: "items:get", js: "js:get", args: json!({"key": 0.0}), target: None },
        Pair {
            what: "mutation",
            kind: "mutation",
            rust: "items:insert",
            js: "js:insert",
            args: json!({"writer": 0.0, "sequence": 0.0}),
            target: Some(TARGET_MUTATION_RATIO),
        },
        Pair { what: "empty query", kind: "query", rust: RUST_EMPTY, js: JS_EMPTY, args: json!({}), target: None },
    ]
}

fn load_app() -> App {
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("convex");
    App::load(&folder, &livebase_js::default_npm_dir()).unwrap_or_else(|error| panic!("loading bench/convex: {error}"))
}

/// The benchmark app, `rust:empty`, and the TypeScript functions of `js`.
fn registry(js: &App) -> Registry {
    let mut registry = app::registry();
    registry
        .register(Function::query(RUST_EMPTY, object_validator([]), |_, _| Ok(Value::Null)))
        .expect("a new function");
    js.register(&mut registry).expect("the TypeScript functions' names are free");
    registry
}

/// The `js-server` role: the benchmark app with its TypeScript twins on a fresh store, until stdin
/// closes.
pub fn serve_js_app() {
    let data_dir = std::env::var("LIVEBASE_BENCH_DATA_DIR").expect("the harness names a data directory");
    let registry = registry(&load_app());
    run_until_stdin_closes(|shutdown| async move {
        let store = Store::open(StoreConfig::new(data_dir)).expect("open store");
        store.apply_schema(&app::schema()).await.expect("schema");
        let listener = listen().await;
        let config = ServerConfig { shutdown, ..ServerConfig::default() };
        serve(listener, Runtime::new(store, registry), config).await.expect("serve");
    });
}

pub fn run(effort: Effort, report: &mut Report) {
    println!("{SECTION}");
    if wrk::installed() {
        over_http(effort, report);
    } else {
        report.skipped("TypeScript-against-Rust benchmark skipped: `wrk` is not installed (`apt-get install wrk`)");
    }
    println!("{COST_SECTION}");
    let js = load_app();
    per_call_cost(&js, effort, report);
    js_engine::measure(js.source(), effort, report);
}

fn over_http(effort: Effort, report: &mut Report) {
    let server = ServerProcess::start("js-server");
    let caller = HttpCaller::new(server.address);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    // The queried item exists, and each call is checked once to give the same kind of answer in
    // both languages: wrk sees only the HTTP status, which is 200 for a function's error too.
    runtime.block_on(async {
        caller.call("mutation", "items:set", json!({"key": 0.0, "sentAt": 1.0})).await.expect("items:set");
        for pair in pairs() {
            let rust = caller.call(pair.kind, pair.rust, pair.args.clone()).await;
            let js = caller.call(pair.kind, pair.js, pair.args.clone()).await;
            let (rust, js) = (rust.expect(pair.rust), js.expect(pair.js));
            let shape = |value: &Json| value.as_object().map(|fields| fields.keys().cloned().collect::<Vec<_>>());
            assert_eq!(shape(&rust), shape(&js), "{} and {} answer alike: {rust} / {js}", pair.rust, pair.js);
            assert_eq!(rust.is_null(), js.is_null(), "{} and {} answer alike", pair.rust, pair.js);
        }
    });
    for pair in pairs() {
        let mut rates = Vec::new();
        for (language, path) in [("Rust", pair.rust), ("TypeScript", pair.js)] {
            let name = format!("{language} {} ({path})", pair.what);
            let cpu_before = server.cpu_seconds();
            let rate = http_calls::load(report, SECTION, &name, server.address, (pair.kind, path, &pair.args), effort);
            // Where the server's time goes: its CPU over the runs, per call at the median rate.
            let calls = rate * effort.duration.as_secs_f64() * effort.runs as f64;
            let cpu_micros = (server.cpu_seconds() - cpu_before) * 1e6 / calls;
            report.add(SECTION, &cpu_figure(&name), "µs", vec![cpu_micros]);
            rates.push((name, rate));
        }
        let [(rust_name, rust), (js_name, js)] = <[_; 2]>::try_from(rates).expect("two languages");
        report.compare((&js_name, js), (&rust_name, rust), "calls/s", pair.target);
    }
}

fn cpu_figure(name: &str) -> String {
    format!("{name}: server CPU per call")
}

/// Microseconds per call of the empty Rust and TypeScript queries, called back to back by one
/// thread; their difference is what the engine adds to every call.
fn per_call_cost(js: &App, effort: Effort, report: &mut Report) {
    let data = tempfile::tempdir().expect("temporary directory");
    let store = Store::open(StoreConfig::new(data.path())).expect("open store");
    let tokio = tokio::runtime::Runtime::new().expect("tokio runtime");
    tokio.block_on(store.apply_schema(&app::schema())).expect("schema");
    let runtime = Runtime::new(store, registry(js));
    let mut medians = Vec::new();
    for path in [RUST_EMPTY, JS_EMPTY] {
        let runs = (0..effort.runs).map(|_| micros_per_call(&runtime, path, effort.duration)).collect();
        medians.push(report.add(COST_SECTION, &format!("{path}, one caller"), "µs of CPU per call", runs));
    }
    report.note(format!(
        "A TypeScript call costs {:.0} µs of CPU more than a Rust one (an empty query each, in process): the call \
         in the worker's kept QuickJS context, and its hops to the worker thread",
        medians[1] - medians[0]
    ));
}

fn micros_per_call(runtime: &Runtime, path: &str, duration: Duration) -> f64 {
    let call = || {
        let outcome = runtime.run_query(path, Object::new(), &Identity::Unauthenticated, None, None);
        assert_eq!(outcome.result, Ok(Value::Null), "{path} answers null");
    };
    // The process's CPU: a TypeScript call runs on a worker thread of the engine.
    js_engine::cpu_micros_per(&call, duration, "/proc/self/stat")
}
