//! The official npm client's folder (`tests/js`), with its pinned packages installed. Included with
//! `#[path]` by the tests that run Node scripts against a server.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

use crate::process::run;

/// Covers `npm ci` on a cold cache.
const NPM_TIMEOUT: Duration = Duration::from_secs(300);

/// Installs the pinned packages unless `./scripts/test.sh` (or an earlier run) already did.
pub async fn js_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    if !dir.join("node_modules/convex").is_dir() {
        let output =
            run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir), NPM_TIMEOUT).await;
        assert!(output.status.success(), "npm ci failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    dir
}
