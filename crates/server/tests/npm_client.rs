//! Conformance with the official Convex npm client (`tests/js/conformance.mjs`, convex 1.48.0 on
//! Node): subscribe, mutate, run an action, against a real server.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::TestServer;
use tokio::process::Command;

/// Covers `npm ci` on a cold cache; the script itself gives up after 20 s.
const NPM_TIMEOUT: Duration = Duration::from_secs(300);
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(30);

async fn run(command: &mut Command, timeout: Duration) -> Output {
    let child = command.kill_on_drop(true).output();
    let output = tokio::time::timeout(timeout, child).await.unwrap_or_else(|_| panic!("{command:?} timed out"));
    output.unwrap_or_else(|error| panic!("{command:?} could not run (is Node installed?): {error}"))
}

/// Installs the pinned packages unless `./scripts/test.sh` (or an earlier run) already did.
async fn js_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    if !dir.join("node_modules/convex").is_dir() {
        let output =
            run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir), NPM_TIMEOUT).await;
        assert!(output.status.success(), "npm ci failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    dir
}

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
