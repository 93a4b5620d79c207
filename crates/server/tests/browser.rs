//! Browser tests: React pages using the official npm client's hooks, in headless Chromium, against
//! a real server. The Node scripts under `tests/browser/` drive the browser (playwright-core) and
//! say `OK` or why not; `scripts/browser-env.sh` installs Chromium and the pinned packages.

mod common;
#[path = "common/process.rs"]
mod process;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::TestServer;
use process::run;
use tokio::process::Command;

/// Covers installing Chromium and `npm ci` on a fresh machine; instant when they are present.
const SETUP_TIMEOUT: Duration = Duration::from_secs(600);
/// The scripts give up on their own well before this (their watchdog is 150 s).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

/// Runs `scripts/browser-env.sh` (a no-op when `./scripts/test.sh` already did) and returns the
/// scripts' folder.
async fn browser_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let output = run(&mut Command::new(root.join("scripts/browser-env.sh")), SETUP_TIMEOUT).await;
    assert!(output.status.success(), "scripts/browser-env.sh failed: {}", String::from_utf8_lossy(&output.stderr));
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

async fn run_script(script: &str, server: &TestServer) {
    let dir = browser_dir().await;
    let url = format!("http://{}", server.addr);
    let output = run(Command::new("node").arg(script).arg(&url).current_dir(&dir), SCRIPT_TIMEOUT).await;
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{script} failed:\n{stdout}\n{stderr}");
    // The clients may log (reconnects) before the verdict.
    assert!(stdout.lines().any(|line| line.starts_with("OK ")), "{stdout}\n{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_react_page_paginates_live_without_duplicates_or_gaps_under_concurrent_writes() {
    let server = TestServer::start().await;
    run_script("paginated_messages.mjs", &server).await;
    server.stop().await;
}
