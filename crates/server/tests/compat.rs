//! The TypeScript compatibility suite: the `convex/` folder in `tests/compat/convex`, loaded by
//! livebase-js and served by a real server (with its scheduler, a token verifier and a site port for
//! HTTP routes), checked through the official npm clients by `tests/js/compat.mjs`. One test per
//! area, so a failure names what broke: database syscalls, validators, ConvexError data, pagination
//! with filters, scheduling, actions, HTTP routes, web APIs.

mod common;
#[path = "common/npm.rs"]
mod npm;
#[path = "common/process.rs"]
mod process;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::TestServer;
use livebase_auth::testing::{RSA_KEY_1, TestIssuer};
use livebase_auth::{AuthConfig, Provider, Verifier};
use livebase_functions::Registry;
use livebase_server::ServerConfig;
use npm::js_dir;
use process::run;
use tokio::net::TcpListener;
use tokio::process::Command;

/// The script gives up on its own after 20 s.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);
const APPLICATION_ID: &str = "compat";
const SUBJECT: &str = "ada";

/// Serves the suite's folder and runs `compat.mjs <area>` against it.
async fn check(area: &str) {
    let dir = js_dir().await;
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat/convex");
    let app = livebase_js::App::load(&folder, &livebase_js::default_npm_dir()).expect("loading the suite's folder");
    let mut registry = Registry::new();
    app.register(&mut registry).expect("registering its functions");
    let config = app.config(&BTreeMap::new()).expect("reading schema.ts");
    let schema = config.schema.expect("the suite has a schema.ts");

    let issuer = TestIssuer::start(&[&RSA_KEY_1]).await;
    let provider = Provider::Oidc { domain: issuer.url().to_owned(), application_id: APPLICATION_ID.to_owned() };
    let verifier = Arc::new(Verifier::new(AuthConfig { providers: vec![provider] }).expect("a valid auth config"));
    let site_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let site = site_listener.local_addr().unwrap();
    let server = TestServer::start_app(schema, registry, |config| ServerConfig {
        auth: Some(verifier),
        site_listener: Some(site_listener),
        ..config
    })
    .await;
    let scheduler = server.runtime().start_scheduler().await.expect("the scheduler starts");

    let token = RSA_KEY_1.sign(&issuer.claims(SUBJECT, APPLICATION_ID));
    let (url, site_url) = (format!("http://{}", server.addr), format!("http://{site}"));
    let mut script = Command::new("node");
    script.arg("compat.mjs").args([area, &url, &site_url, &token, SUBJECT]).current_dir(&dir);
    let output = run(&mut script, SCRIPT_TIMEOUT).await;
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "compat.mjs {area} failed:\n{stdout}\n{stderr}");
    assert!(stdout.lines().any(|line| line == format!("OK {area}")), "{stdout}\n{stderr}");
    scheduler.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_syscalls_and_run_udf_through_the_npm_client() {
    check("syscalls").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_validator_as_arguments_and_returns() {
    check("validators").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn convex_errors_carry_their_data_from_every_kind_of_function() {
    check("errors").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_queries_paginate_by_hand_and_live() {
    check("pagination").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_scheduled_from_mutations_and_actions_run_or_are_canceled() {
    check("scheduling").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_call_queries_mutations_and_actions() {
    check("actions").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_routes_answer_plain_fetch() {
    check("http").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_apis_in_queries_and_actions() {
    check("web").await;
}
