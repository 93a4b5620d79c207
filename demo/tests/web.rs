//! Piano Mirror's web page (`demo/web`) in headless Chromium, loaded from the site port of each backend
//! (the demo binary, and `livebase dev` serving the TypeScript app with the page of `demo/web/dist`):
//! the student list's live pagination and two browsers mirroring piano keys over WebRTC; and the
//! committed bundle the binary embeds (`demo/web/dist`) is what `demo/web/build.sh` builds from the
//! sources. The Node scripts under `demo/web/tests/` drive Chromium (with the harness of
//! `crates/server/tests/browser`) and say `OK` or why not; `scripts/browser-env.sh` installs Chromium
//! and the pinned npm packages. With `LIVEBASE_SCREENSHOT_DIR=docs` the scripts save the screenshots
//! README shows.

#[macro_use]
mod common;
#[path = "../../crates/server/tests/common/process.rs"]
mod process;

use std::path::PathBuf;
use std::time::Duration;

use common::Backend;
use process::run;
use tokio::process::Command;

/// Covers installing Chromium and `npm ci` on a fresh machine; instant when they are present.
const SETUP_TIMEOUT: Duration = Duration::from_secs(600);
/// The scripts give up on their own well before this (their watchdog is 120 s).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);
/// esbuild bundles the page in about a second.
const BUILD_TIMEOUT: Duration = Duration::from_secs(120);
/// What `demo/web/build.sh` writes.
const BUILT_FILES: [&str; 2] = ["index.html", "app.js"];

/// The repository's root, with Chromium and the npm packages installed.
async fn browser_env() -> PathBuf {
    let root = common::repository_root();
    let setup = run(&mut Command::new(root.join("scripts/browser-env.sh")), SETUP_TIMEOUT).await;
    assert!(setup.status.success(), "scripts/browser-env.sh failed: {}", String::from_utf8_lossy(&setup.stderr));
    root
}

async fn run_script(backend: Backend, script: &str) {
    let root = browser_env().await;

    let data = tempfile::tempdir().unwrap();
    let (mut demo, api, site) = common::start(backend, data.path()).await;
    let output = run(
        Command::new("node").arg(script).arg(&api).arg(&site).current_dir(root.join("demo/web/tests")),
        SCRIPT_TIMEOUT,
    )
    .await;
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{script} failed:\n{stdout}\n{stderr}");
    // The clients may log (reconnects) before the verdict.
    assert!(stdout.lines().any(|line| line.starts_with("OK ")), "{stdout}\n{stderr}");
    demo.kill().await.unwrap();
}

async fn the_student_list_loads_pages_and_stays_equal_to_the_center_under_live_writes(backend: Backend) {
    run_script(backend, "students.mjs").await;
}

async fn two_browsers_join_a_room_and_mirror_piano_keys_over_webrtc(backend: Backend) {
    run_script(backend, "piano.mjs").await;
}

for_both_backends!(
    the_student_list_loads_pages_and_stays_equal_to_the_center_under_live_writes,
    two_browsers_join_a_room_and_mirror_piano_keys_over_webrtc,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_committed_bundle_is_what_build_sh_builds_from_the_sources() {
    let root = browser_env().await;
    let built = tempfile::tempdir().unwrap();
    let output = run(Command::new(root.join("demo/web/build.sh")).arg(built.path()), BUILD_TIMEOUT).await;
    assert!(output.status.success(), "demo/web/build.sh failed: {}", String::from_utf8_lossy(&output.stderr));
    for file in BUILT_FILES {
        let committed = std::fs::read(root.join("demo/web/dist").join(file)).unwrap_or_default();
        let fresh = std::fs::read(built.path().join(file)).unwrap();
        assert!(committed == fresh, "demo/web/dist/{file} is stale: run demo/web/build.sh and commit demo/web/dist");
    }
}
