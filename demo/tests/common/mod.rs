//! The demo binary as tests start it: on free ports, with a fresh data directory and a known admin key.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

const BINARY: &str = env!("CARGO_BIN_EXE_piano-mirror");
/// A bound on waiting for the server, not a pause: the test fails if it is reached.
const PATIENCE: Duration = Duration::from_secs(60);
#[allow(dead_code, reason = "only the tests of the admin API use it")]
pub const ADMIN_KEY: &str = "test-admin-key";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub async fn start(data: &std::path::Path) -> (Child, String, String) {
    let (port, site_port) = (free_port(), free_port());
    let child = Command::new(BINARY)
        .args(["--data", data.to_str().unwrap(), "--port", &port.to_string(), "--site-port", &site_port.to_string()])
        .env("LIVEBASE_ADMIN_KEY", ADMIN_KEY)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the demo starts");
    let (api, site) = (format!("http://127.0.0.1:{port}"), format!("http://127.0.0.1:{site_port}"));
    let ready = async {
        loop {
            if let Ok(response) = reqwest::get(format!("{api}/version")).await {
                return response.status();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    assert_eq!(tokio::time::timeout(PATIENCE, ready).await.expect("the demo answers /version"), 200);
    (child, api, site)
}
