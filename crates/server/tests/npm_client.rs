//! Conformance with the official Convex npm client (`tests/js/conformance.mjs`, convex 1.48.0 on
//! Node): subscribe, mutate, run an action, against a real server; and its reconnect after the
//! server restarts (`tests/js/reconnect.mjs`); and signing in with a JWT (`tests/js/auth.mjs`); and
//! its `ConvexHttpClient`, which calls functions over HTTP (`tests/js/http_client.mjs`).

mod common;
#[path = "common/http_app.rs"]
mod http_app;
#[path = "common/npm.rs"]
mod npm;
#[path = "common/process.rs"]
mod process;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::time::Duration;

use common::{PATIENCE, TestServer};
use livebase_auth::testing::{RSA_KEY_1, TestIssuer, now_secs};
use livebase_auth::{AuthConfig, Provider, Verifier};
use livebase_functions::{Function, object_validator};
use livebase_server::{ServerConfig, app};
use livebase_value::{ObjectField, Validator, Value};
use npm::js_dir;
use process::run;
use tokio::process::Command;
use tokio::sync::mpsc;

/// The scripts themselves give up after 20 s.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_npm_client_subscribes_mutates_and_acts() {
    let dir = js_dir().await;
    let server = TestServer::start().await;
    let url = format!("http://{}", server.addr);
    let output = run(Command::new("node").arg("conformance.mjs").arg(&url).current_dir(&dir), SCRIPT_TIMEOUT).await;
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the script failed:\n{stdout}\n{stderr}");
    assert!(stdout.starts_with("OK "), "{stdout}\n{stderr}");
    server.stop().await;
}

/// The app with `gated:send({body})`, which is `messages:send` except that its first run reports on
/// `entered` and then waits for a message on `release` before it commits.
fn gated_app(entered: mpsc::UnboundedSender<()>, release: std_mpsc::Receiver<()>) -> livebase_functions::Registry {
    let mut registry = app::registry();
    let gated = AtomicBool::new(true);
    let release = Mutex::new(release);
    let args = object_validator([("body", ObjectField::required(Validator::String))]);
    registry
        .register(Function::mutation("gated:send", args, move |ctx, args| {
            if gated.swap(false, Ordering::SeqCst) {
                entered.send(()).expect("the test waits for the mutation");
                // Bounded: a test that failed meanwhile must not leave a worker thread blocked.
                let released = release.lock().unwrap().recv_timeout(PATIENCE);
                released.expect("the test releases the mutation");
            }
            Ok(Value::String(ctx.db().insert("messages", args)?.encode()))
        }))
        .expect("a new function");
    registry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_npm_client_resumes_after_a_restart_and_its_lost_mutation_runs_once() {
    let dir = js_dir().await;
    let (entered_tx, mut entered) = mpsc::unbounded_channel();
    let (release, released) = std_mpsc::channel();
    let registry = gated_app(entered_tx, released);
    let mut server = TestServer::start_app(app::schema(), registry, |config| config).await;
    let url = format!("http://{}", server.addr);
    let body = "sent across a restart";
    let script =
        Command::new("node").arg("reconnect.mjs").arg(&url).arg(body).current_dir(&dir).kill_on_drop(true).output();
    let client = tokio::spawn(script);
    tokio::time::timeout(PATIENCE, entered.recv()).await.expect("the client calls gated:send").unwrap();
    let mut commits = server.store.subscribe();
    let store = server.store.clone();
    // The mutation commits while no server runs: its answer is lost with its connection.
    let commit_lost_answer = async move {
        release.send(()).unwrap();
        while store.snapshot().document_count("messages") == 0 {
            tokio::time::timeout(PATIENCE, commits.recv()).await.expect("the mutation commits").unwrap();
        }
    };
    server.restart(commit_lost_answer, ServerConfig::default()).await;
    let output = tokio::time::timeout(SCRIPT_TIMEOUT, client).await.expect("the script ends").unwrap().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the script failed:\n{stdout}\n{stderr}");
    // The client logs its reconnect on stdout too: the verdict is the last line.
    assert!(stdout.lines().last().is_some_and(|line| line.starts_with("OK ")), "{stdout}\n{stderr}");
    let messages = server.store.snapshot().documents("messages");
    let bodies: Vec<_> = messages.iter().map(|message| message.get("body").cloned().unwrap()).collect();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert_eq!(
        bodies.iter().filter(|seen| **seen == Value::from(body)).count(),
        1,
        "the replay ran nothing: {bodies:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_npm_client_signs_in_with_a_token_and_is_refused_an_expired_one() {
    let dir = js_dir().await;
    let issuer = TestIssuer::start(&[&RSA_KEY_1]).await;
    let provider = Provider::Oidc { domain: issuer.url().to_owned(), application_id: "npm-client".to_owned() };
    let verifier = Arc::new(Verifier::new(AuthConfig { providers: vec![provider] }).unwrap());
    let server = TestServer::start_with(|config| ServerConfig { auth: Some(verifier), ..config }).await;
    let valid = RSA_KEY_1.sign(&issuer.claims("ada", "npm-client"));
    let mut expired = issuer.claims("ada", "npm-client");
    expired["exp"] = (now_secs() - 3_600).into();
    let expired = RSA_KEY_1.sign(&expired);
    let url = format!("http://{}", server.addr);
    let mut script = Command::new("node");
    script.arg("auth.mjs").args([&url, &valid, &expired, "ada"]).current_dir(&dir);
    let output = run(&mut script, SCRIPT_TIMEOUT).await;
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the script failed:\n{stdout}\n{stderr}");
    assert!(stdout.starts_with("OK "), "{stdout}\n{stderr}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_http_client_queries_mutates_and_acts() {
    let dir = js_dir().await;
    let (server, _) = http_app::start().await;
    let url = format!("http://{}", server.addr);
    let mut script = Command::new("node");
    script.arg("http_client.mjs").args([&url, http_app::ADMIN_KEY, &http_app::ada_token(), "ada"]).current_dir(&dir);
    let output = run(&mut script, SCRIPT_TIMEOUT).await;
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the script failed:\n{stdout}\n{stderr}");
    assert!(stdout.starts_with("OK"), "{stdout}\n{stderr}");
    server.stop().await;
}
