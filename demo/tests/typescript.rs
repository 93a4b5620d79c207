//! The TypeScript app's own unit tests (`examples/piano-mirror-ts/tests`, run by Node through its
//! `run-tests.sh`): the dev sign-in's SHA-256, HMAC and ES256 against published vectors and Node's
//! WebCrypto. The app's functions are tested with the Rust app's tests (`app.rs`, `server.rs`, `web.rs`).

#[path = "../../crates/server/tests/common/process.rs"]
mod process;

use std::path::Path;
use std::time::Duration;

use process::run;
use tokio::process::Command;

/// Bundling and running the tests takes about a second.
const TESTS_TIMEOUT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn the_dev_sign_ins_crypto_matches_the_test_vectors_and_webcrypto() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/piano-mirror-ts/tests/run-tests.sh");
    let output = run(&mut Command::new(script), TESTS_TIMEOUT).await;
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the TypeScript tests failed:\n{stdout}\n{stderr}");
    assert!(stdout.lines().any(|line| line == "# fail 0") && !stdout.contains("# pass 0"), "{stdout}");
}
