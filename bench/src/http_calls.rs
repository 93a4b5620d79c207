//! Function calls per second through Convex's HTTP API on loopback: `POST /api/query` of
//! `items:get({key: 0})` (one document through an index) and `POST /api/mutation` of
//! `items:insert` (one durable insert), against the benchmark app served by a child process and
//! loaded by `wrk` over keep-alive connections.

use std::fmt::Write as _;
use std::net::SocketAddr;

use serde_json::{Value as Json, json};

use crate::Effort;
use crate::client::HttpCaller;
use crate::report::Report;
use crate::server::ServerProcess;
use crate::wrk::{self, CONNECTIONS};

const SECTION: &str = "HTTP function calls (Convex HTTP API, loopback, wrk)";

/// The calls loaded: (figure name, `/api/<kind>`, function path, arguments).
fn calls() -> [(&'static str, &'static str, &'static str, Json); 2] {
    [
        ("queries (items:get)", "query", "items:get", json!({"key": 0.0})),
        ("mutations (items:insert)", "mutation", "items:insert", json!({"writer": 0.0, "sequence": 0.0})),
    ]
}

pub fn run(effort: Effort, report: &mut Report) {
    println!("{SECTION}");
    if !wrk::installed() {
        report.skipped("HTTP function call benchmark skipped: `wrk` is not installed (`apt-get install wrk`)");
        return;
    }
    let server = ServerProcess::start("server");
    let caller = HttpCaller::new(server.address);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    // The queried item exists, and each call is checked once to succeed: wrk sees only the HTTP
    // status, which is 200 for a function's error too.
    runtime.block_on(async {
        caller.call("mutation", "items:set", json!({"key": 0.0, "sentAt": 1.0})).await.expect("items:set");
        for (name, kind, path, args) in calls() {
            let value = caller.call(kind, path, args).await.unwrap_or_else(|error| panic!("{name}: {error}"));
            assert!(!value.is_null(), "{name} answers a value");
        }
    });
    for (name, kind, path, args) in calls() {
        load(report, SECTION, name, server.address, (kind, path, &args), effort);
    }
}

/// Loads `address` with `POST /api/<kind>` of `path(args)` through wrk, `effort.runs` times, and
/// records the calls/s and latency p50/p99 as `name` in `section`; returns the median calls/s.
pub fn load(
    report: &mut Report,
    section: &str,
    name: &str,
    address: SocketAddr,
    (kind, path, args): (&str, &str, &Json),
    effort: Effort,
) -> f64 {
    let directory = tempfile::tempdir().expect("temporary directory");
    let script = directory.path().join(format!("{kind}.lua"));
    std::fs::write(&script, lua_script(kind, path, args)).expect("write the wrk script");
    let runs: Vec<wrk::WrkRun> = (0..effort.runs).map(|_| wrk::run(address, &script, effort.duration)).collect();
    let name = format!("{name}, {CONNECTIONS} connections");
    let rate = report.add(section, &name, "calls/s", runs.iter().map(|run| run.requests_per_second).collect());
    report.add(section, &format!("{name}: latency p50"), "ms", runs.iter().map(|run| run.p50_millis).collect());
    report.add(section, &format!("{name}: latency p99"), "ms", runs.iter().map(|run| run.p99_millis).collect());
    rate
}

/// A wrk script sending `POST /api/<kind>` with the call as its JSON body.
fn lua_script(kind: &str, path: &str, args: &Json) -> String {
    let body = json!({"path": path, "args": args, "format": "json"});
    let mut script = String::new();
    // A Lua long string holds the JSON as it is.
    writeln!(script, "local body = [[{body}]]").expect("write to a string");
    write!(
        script,
        "wrk.headers[\"Content-Type\"] = \"application/json\"\n\
         request = function()\n  return wrk.format(\"POST\", \"/api/{kind}\", nil, body)\nend\n"
    )
    .expect("write to a string");
    script
}
