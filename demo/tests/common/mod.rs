//! The demo's two backends as tests start them: the `piano-mirror` binary (the app in Rust) and
//! `livebase dev` serving the same app written in TypeScript (`examples/piano-mirror-ts/convex`), each
//! on free ports, with a fresh data directory and a known admin key. [`for_both_backends!`] runs a test
//! body once per backend, so both pass the same tests.

#![allow(dead_code, reason = "each test file uses its own part")]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::process::{Child, Command};

const BINARY: &str = env!("CARGO_BIN_EXE_piano-mirror");
/// A bound on waiting for the server, not a pause: the test fails if it is reached. Covers bundling
/// the TypeScript app with esbuild.
const PATIENCE: Duration = Duration::from_secs(60);
pub const ADMIN_KEY: &str = "test-admin-key";

/// Which implementation of the app a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `demo/src`, served by the `piano-mirror` binary.
    Rust,
    /// `examples/piano-mirror-ts/convex`, served by `livebase dev` with the page of `demo/web/dist`.
    TypeScript,
}

/// Declares, for each named `async fn(Backend)` of the file, the tests `rust::<name>` and
/// `typescript::<name>` running it against each backend.
macro_rules! for_both_backends {
    ($($test:ident),* $(,)?) => {
        mod rust {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::common::Backend::Rust).await
                }
            )*
        }
        mod typescript {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::common::Backend::TypeScript).await
                }
            )*
        }
    };
}

pub fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The TypeScript app's `convex/` folder.
pub fn typescript_app() -> PathBuf {
    repository_root().join("examples/piano-mirror-ts/convex")
}

/// The `livebase` binary of this workspace. Cargo builds only the binaries of the package under test,
/// so this asks cargo to build it (instant when it is up to date) and takes the path cargo reports.
pub fn livebase_binary() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let output = std::process::Command::new(env!("CARGO"))
            .args(["build", "-p", "livebase-server", "--bin", "livebase", "--message-format=json"])
            .current_dir(repository_root())
            .stderr(Stdio::inherit())
            .output()
            .expect("cargo runs");
        assert!(output.status.success(), "cargo could not build `livebase`");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find_map(|message| {
                let is_livebase = message["target"]["name"] == "livebase" && message["target"]["kind"][0] == "bin";
                message["executable"].as_str().filter(|_| is_livebase).map(PathBuf::from)
            })
            .expect("cargo reports the `livebase` executable")
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `backend` with its data in `data`; answers the server and its API and site URLs once it
/// answers `GET /version`.
pub async fn start(backend: Backend, data: &Path) -> (Child, String, String) {
    // `livebase` is built first: the ports are taken just before the server binds them.
    let mut command = match backend {
        Backend::Rust => Command::new(BINARY),
        Backend::TypeScript => {
            let mut command = Command::new(livebase_binary());
            command.arg("dev").arg(typescript_app()).arg("--site-dir").arg(repository_root().join("demo/web/dist"));
            command
        }
    };
    let (port, site_port) = (free_port().to_string(), free_port().to_string());
    command.args(["--data", data.to_str().unwrap(), "--port", &port, "--site-port", &site_port]);
    let child = command.env("LIVEBASE_ADMIN_KEY", ADMIN_KEY).stdout(Stdio::null()).kill_on_drop(true).spawn().unwrap();
    let (api, site) = (format!("http://127.0.0.1:{port}"), format!("http://127.0.0.1:{site_port}"));
    let ready = async {
        loop {
            if let Ok(response) = reqwest::get(format!("{api}/version")).await {
                return response.status();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    assert_eq!(tokio::time::timeout(PATIENCE, ready).await.expect("the server answers /version"), 200);
    (child, api, site)
}
