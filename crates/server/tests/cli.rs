//! The `livebase` binary as an operator uses it: first start prints the admin key once, `/version`
//! answers when ready, `livebase env` manages environment variables through the admin API, and
//! `livebase admin-key` derives the same key again.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BINARY: &str = env!("CARGO_BIN_EXE_livebase");
/// A bound on waiting for the server, not a pause: the test fails if it is reached.
const PATIENCE: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Server {
    child: Child,
    url: String,
    first_line: Option<String>,
}

async fn start(data: &std::path::Path) -> Server {
    let (port, site_port) = (free_port(), free_port());
    let mut child = Command::new(BINARY)
        .args(["serve", "--db", data.to_str().unwrap(), "--port", &port.to_string()])
        .args(["--site-port", &site_port.to_string()])
        .env_remove("LIVEBASE_ADMIN_KEY")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let ready = async {
        loop {
            if let Ok(response) = client.get(format!("{url}/version")).send().await {
                return response;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let response = tokio::time::timeout(PATIENCE, ready).await.expect("the server answers /version");
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().starts_with("livebase "));
    // The admin key line, if any, is printed before the server listens.
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let first_line =
        tokio::time::timeout(Duration::from_millis(500), stdout.next_line()).await.ok().and_then(|line| line.unwrap());
    Server { child, url, first_line }
}

async fn livebase(args: &[&str], admin_key: &str) -> (bool, String, String) {
    let output =
        Command::new(BINARY).args(args).env("LIVEBASE_ADMIN_KEY", admin_key).output().await.expect("the binary runs");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).trim().to_owned();
    (output.status.success(), text(&output.stdout), text(&output.stderr))
}

#[tokio::test]
async fn the_admin_key_is_shown_once_and_manages_environment_variables() {
    let data = tempfile::tempdir().unwrap();
    let mut server = start(data.path()).await;
    let line = server.first_line.take().expect("a new deployment prints its admin key");
    let admin_key = line.rsplit(' ').next().unwrap().to_owned();
    assert!(admin_key.starts_with(livebase_server::admin_key::ADMIN_KEY_PREFIX), "{line}");

    let url = server.url.clone();
    let env = |args: &'static [&'static str], key: String| {
        let url = url.clone();
        async move {
            let mut full = vec!["env", "--url", url.as_str()];
            full.extend_from_slice(args);
            livebase(&full, &key).await
        }
    };
    assert_eq!(env(&["set", "GREETING", "hello there"], admin_key.clone()).await.1, "set GREETING");
    assert_eq!(env(&["get", "GREETING"], admin_key.clone()).await.1, "hello there");
    assert_eq!(env(&["list"], admin_key.clone()).await.1, "GREETING=hello there");
    let (ok, _, error) = env(&["set", "1BAD", "x"], admin_key.clone()).await;
    assert!(!ok && error.contains("Invalid environment variable name"), "{error}");
    let (ok, _, error) = env(&["list"], "livebase_admin_wrong".to_owned()).await;
    assert!(!ok && error.contains("401"), "a wrong key is refused: {error}");
    assert_eq!(env(&["remove", "GREETING"], admin_key.clone()).await.1, "removed GREETING");
    let (ok, _, error) = env(&["remove", "GREETING"], admin_key.clone()).await;
    assert!(!ok && error.contains("404"), "{error}");

    server.child.kill().await.unwrap();
    let (ok, derived, _) = livebase(&["admin-key", "--db", data.path().to_str().unwrap()], "").await;
    assert!(ok);
    assert_eq!(derived, admin_key, "the key is derived again from the data");

    let mut restarted = start(data.path()).await;
    assert_eq!(restarted.first_line, None, "the key is printed only when the deployment is created");
    restarted.child.kill().await.unwrap();
}
