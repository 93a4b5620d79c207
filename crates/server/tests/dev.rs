//! `livebase dev` and `livebase deploy` as a developer uses them: the real binary serving a copy of
//! the `convex/` folder beside this file, edited while it runs, called over HTTP and watched over
//! WebSocket by the official Rust client.

#[path = "common/rust_clients.rs"]
mod rust_clients;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use livebase_auth::testing::{RSA_KEY_1, RSA_KEY_2, TestKey, jwks, now_secs};
use livebase_js::limits::MAX_BUNDLE_BYTES;
use serde_json::{Value as Json, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use convex::QuerySubscription;
use rust_clients::{RustClients, args, next_bodies};

const BINARY: &str = env!("CARGO_BIN_EXE_livebase");
const ADMIN_KEY: &str = "dev-test-admin-key";
/// The issuer the fixture's auth.config.ts trusts (with `RSA_KEY_1`), through `livebase dev`'s
/// environment.
const ISSUER: &str = "https://issuer.test";
/// A bound on waiting for the server (to start, to reload), not a pause: reaching it fails the test.
const PATIENCE: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `livebase dev` process serving a copy of the fixture folder, with what it prints to stderr.
struct Dev {
    _child: Child,
    url: String,
    folder: PathBuf,
    stderr: mpsc::UnboundedReceiver<String>,
    _scratch: tempfile::TempDir,
}

async fn start_dev() -> Dev {
    let scratch = tempfile::tempdir().unwrap();
    let folder = scratch.path().join("convex");
    copy_fixture(&folder);
    let mut command = Command::new(BINARY);
    command.arg("dev").arg(&folder).arg("--db").arg(scratch.path().join("data"));
    let key_set = base64::engine::general_purpose::STANDARD.encode(jwks(&[&RSA_KEY_1]).to_string());
    command.env("TEST_ISSUER", ISSUER).env("TEST_JWKS", format!("data:text/plain;charset=utf-8;base64,{key_set}"));
    let (child, url, stderr) = spawn_server(command).await;
    Dev { _child: child, url, folder, stderr, _scratch: scratch }
}

/// Starts `command` (a `livebase` serving command) on free ports with `ADMIN_KEY`; returns it once it
/// serves, with its URL and a channel of the lines it prints to stderr.
async fn spawn_server(mut command: Command) -> (Child, String, mpsc::UnboundedReceiver<String>) {
    let port = free_port();
    let mut child = command
        .args(["--port", &port.to_string(), "--site-port", &free_port().to_string()])
        .env("LIVEBASE_ADMIN_KEY", ADMIN_KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let (lines, mut stderr) = mpsc::unbounded_channel();
    let mut reader = BufReader::new(child.stderr.take().unwrap()).lines();
    tokio::spawn(async move {
        while let Ok(Some(line)) = reader.next_line().await {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let ready = async {
        while client.get(format!("{url}/version")).send().await.is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                let mut printed = Vec::new();
                while let Ok(line) = stderr.try_recv() {
                    printed.push(line);
                }
                panic!("the server exited ({status}) instead of serving:\n{}", printed.join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(PATIENCE, ready).await.expect("the server serves");
    (child, url, stderr)
}

/// Waits for the subscription's result to be messages with `expected` bodies (a reload that changes
/// nothing a query returns may send its result again).
async fn await_bodies(subscription: &mut QuerySubscription, expected: &[&str]) {
    let arrived = async { while next_bodies(subscription, PATIENCE).await != expected {} };
    tokio::time::timeout(PATIENCE, arrived).await.unwrap_or_else(|_| panic!("the subscription got {expected:?}"));
}

fn copy_fixture(to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dev/convex");
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Replaces a file of the folder in one step (a hidden file renamed over it), so the watcher never
/// sees it half written.
fn write_atomically(folder: &Path, name: &str, text: &str) {
    let staged = folder.join(format!(".{name}.tmp"));
    std::fs::write(&staged, text).unwrap();
    std::fs::rename(staged, folder.join(name)).unwrap();
}

/// `messages.ts` with `VERSION` set to `version`.
fn messages_source(version: &str) -> String {
    let source = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dev/convex/messages.ts"));
    source.unwrap().replace(r#"VERSION = "one""#, &format!("VERSION = {version:?}"))
}

impl Dev {
    async fn call(&self, kind: &str, path: &str, args: Json) -> Json {
        let (status, answer) = self.call_as(kind, path, args, None).await;
        assert_eq!((status, &answer["status"]), (200, &json!("success")), "{answer}");
        answer["value"].clone()
    }

    async fn call_as(&self, kind: &str, path: &str, args: Json, token: Option<&str>) -> (u16, Json) {
        let body = json!({ "path": path, "args": args, "format": "json" });
        let mut request = reqwest::Client::new().post(format!("{}/api/{kind}", self.url)).body(body.to_string());
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, serde_json::from_str(&response.text().await.unwrap()).unwrap())
    }

    async fn version(&self) -> Json {
        self.call("query", "messages:version", json!({})).await
    }

    /// Waits until `messages:version` answers `expected`.
    async fn await_version(&self, expected: &str) {
        let reloaded = async {
            while self.version().await != expected {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(PATIENCE, reloaded).await.unwrap_or_else(|_| panic!("the version became {expected}"));
    }

    /// Waits for a line of stderr containing `text`.
    async fn await_stderr(&mut self, text: &str) -> String {
        let found = async {
            loop {
                let line = self.stderr.recv().await.expect("livebase dev is running");
                if line.contains(text) {
                    return line;
                }
            }
        };
        tokio::time::timeout(PATIENCE, found).await.unwrap_or_else(|_| panic!("livebase dev printed `{text}`"))
    }

    async fn deploy_bundle(&self, bundle: String, admin_key: &str) -> (u16, Json) {
        let response = reqwest::Client::new()
            .post(format!("{}/api/admin/deploy", self.url))
            .header("Authorization", format!("Convex {admin_key}"))
            .body(bundle)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, serde_json::from_str(&response.text().await.unwrap()).unwrap_or(Json::Null))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn edits_reload_the_functions_and_subscribers_get_the_new_results() {
    let mut dev = start_dev().await;
    assert_eq!(dev.version().await, "one");
    dev.call("mutation", "messages:send", json!({ "body": "hello" })).await;
    let clients = RustClients::new();
    let mut client = clients.connect(&dev.url).await;
    let mut subscription = client.subscribe("messages:list", args(&[])).await.unwrap();
    assert_eq!(next_bodies(&mut subscription, PATIENCE).await, ["hello"]);

    let shouting = messages_source("two").replace("body: message.body }", "body: message.body + \"!\" }");
    assert_ne!(shouting, messages_source("two"), "the edit changes `list`");
    write_atomically(&dev.folder, "messages.ts", &shouting);
    dev.await_version("two").await;
    // The subscription's query reran on the new code, with no commit.
    await_bodies(&mut subscription, &["hello!"]).await;

    write_atomically(&dev.folder, "broken.ts", "export const broken = ;\n");
    dev.await_stderr("The functions were not reloaded; the previous ones still serve.").await;
    let line = dev.await_stderr("broken.ts").await;
    assert!(line.contains("broken.ts:1:"), "esbuild's error names the place: {line}");
    assert_eq!(dev.version().await, "two");
    dev.call("mutation", "messages:send", json!({ "body": "still" })).await;
    await_bodies(&mut subscription, &["hello!", "still!"]).await;

    // Fixed: the next version loads.
    std::fs::remove_file(dev.folder.join("broken.ts")).unwrap();
    write_atomically(&dev.folder, "messages.ts", &messages_source("three"));
    dev.await_version("three").await;
    await_bodies(&mut subscription, &["hello", "still"]).await;
    drop(subscription);
    drop(client);
    clients.shut_down();
}

#[tokio::test(flavor = "multi_thread")]
async fn livebase_deploy_replaces_the_functions_with_the_admin_key_only() {
    let dev = start_dev().await;
    let elsewhere = tempfile::tempdir().unwrap();
    copy_fixture(elsewhere.path());
    write_atomically(elsewhere.path(), "messages.ts", &messages_source("deployed"));
    let deploy = |admin_key: &'static str| {
        Command::new(BINARY)
            .arg("deploy")
            .arg(elsewhere.path())
            .args(["--url", &dev.url])
            .env("LIVEBASE_ADMIN_KEY", admin_key)
            .output()
    };

    let refused = deploy("not-the-admin-key").await.unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("401") && stderr.contains("Wrong admin key"), "{stderr}");
    assert_eq!(dev.version().await, "one");

    let deployed = deploy(ADMIN_KEY).await.unwrap();
    let stdout = String::from_utf8_lossy(&deployed.stdout);
    assert!(deployed.status.success(), "{stdout} {}", String::from_utf8_lossy(&deployed.stderr));
    assert!(stdout.contains("Deployed 4 functions and 0 crons"), "{stdout}");
    assert_eq!(dev.version().await, "deployed");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_bundles_are_refused_and_change_nothing() {
    let dev = start_dev().await;
    let (status, answer) = dev.deploy_bundle("this is not JavaScript".to_owned(), ADMIN_KEY).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("Evaluating the bundle failed"), "{answer}");
    assert_eq!(dev.version().await, "one");

    let folder = tempfile::tempdir().unwrap();
    copy_fixture(folder.path());
    write_atomically(folder.path(), "messages.ts", &messages_source("padded"));
    let bundle = livebase_js::bundle(folder.path(), &livebase_js::default_npm_dir()).unwrap();
    let padded = |length: usize| format!("{bundle}//{}", "x".repeat(length - bundle.len() - 2));
    let (status, answer) = dev.deploy_bundle(padded(MAX_BUNDLE_BYTES + 1), ADMIN_KEY).await;
    assert_eq!(status, 413, "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("MAX_BUNDLE_BYTES"), "{answer}");
    assert_eq!(dev.version().await, "one");

    let (status, answer) = dev.deploy_bundle(padded(MAX_BUNDLE_BYTES), ADMIN_KEY).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["functions"], 4);
    assert_eq!(dev.version().await, "padded");
}

#[tokio::test(flavor = "multi_thread")]
async fn livebase_serve_refuses_deploys() {
    let data = tempfile::tempdir().unwrap();
    let mut command = Command::new(BINARY);
    command.arg("serve").arg("--db").arg(data.path());
    let (_child, url, _stderr) = spawn_server(command).await;
    let response = reqwest::Client::new()
        .post(format!("{url}/api/admin/deploy"))
        .header("Authorization", format!("Convex {ADMIN_KEY}"))
        .body("export const modules = {};")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let answer: Json = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert!(answer["message"].as_str().unwrap().contains("Start `livebase dev` to deploy"), "{answer}");
    let functions = reqwest::Client::new()
        .post(format!("{url}/api/query"))
        .body(json!({ "path": "messages:list", "args": {}, "format": "json" }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(functions.status(), 200, "the built-in app still serves");
}

#[tokio::test(flavor = "multi_thread")]
async fn user_tokens_are_checked_against_the_providers_of_auth_config() {
    let dev = start_dev().await;
    let token =
        |key: &TestKey| key.sign(&json!({ "iss": ISSUER, "sub": "ada", "iat": now_secs(), "exp": now_secs() + 60 }));
    let (status, answer) = dev.call_as("query", "users:subject", json!({}), Some(&token(&RSA_KEY_1))).await;
    assert_eq!((status, &answer["value"]), (200, &json!("ada")), "{answer}");
    assert_eq!(dev.call("query", "users:subject", json!({})).await, Json::Null);
    let (status, answer) = dev.call_as("query", "users:subject", json!({}), Some(&token(&RSA_KEY_2))).await;
    assert_eq!(status, 401, "a key the issuer does not have: {answer}");
}
