//! Child processes of tests (Node scripts, setup scripts), bounded in time and killed if the test
//! gives up on them. Included with `#[path]` by the tests that run processes, so tests that don't
//! have no unused code.

use std::process::Output;
use std::time::Duration;

use tokio::process::Command;

pub async fn run(command: &mut Command, timeout: Duration) -> Output {
    let child = command.kill_on_drop(true).output();
    let output = tokio::time::timeout(timeout, child).await.unwrap_or_else(|_| panic!("{command:?} timed out"));
    output.unwrap_or_else(|error| panic!("{command:?} could not run: {error}"))
}
