//! The server under load runs in a process of its own, as it does in production: the harness
//! starts its own binary again with a hidden role (`server`, or the raw `broadcaster`), reads the
//! port it listens on from its first line of output, and stops it when done.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};

use livebase_functions::Runtime;
use livebase_server::{ServerConfig, serve};
use livebase_store::{Store, StoreConfig};
use tokio::net::TcpListener;

use crate::app;

/// A child process serving on loopback; killed when dropped.
pub struct ServerProcess {
    child: Child,
    /// Held open: the child stops when it closes, even if this process dies without dropping it.
    _stdin: ChildStdin,
    pub address: SocketAddr,
    _data: tempfile::TempDir,
}

impl ServerProcess {
    /// Starts this binary as `role` (`server` or `broadcaster`).
    pub fn start(role: &str) -> ServerProcess {
        ServerProcess::start_with_env(role, &[])
    }

    /// Starts this binary as `role` with `env` set in its environment (how a role is configured).
    pub fn start_with_env(role: &str, env: &[(&str, &str)]) -> ServerProcess {
        let data = tempfile::tempdir().expect("temporary directory");
        // The running binary itself, even if a build has replaced the file since it started.
        let mut child = Command::new("/proc/self/exe")
            .arg(role)
            .env("LIVEBASE_BENCH_DATA_DIR", data.path())
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the server process");
        let stdin = child.stdin.take().expect("piped stdin");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut line).expect("read the port");
        let port: u16 = line
            .trim()
            .strip_prefix("listening on port ")
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("the {role} process did not say its port: {line:?}"));
        ServerProcess { child, _stdin: stdin, address: SocketAddr::from(([127, 0, 0, 1], port)), _data: data }
    }

    /// The server's resident memory, from the kernel's accounting.
    pub fn resident_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("/proc/<pid>/status");
        let kilobytes = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().strip_suffix("kB"))
            .and_then(|value| value.trim().parse::<u64>().ok())
            .expect("VmRSS in /proc/<pid>/status");
        kilobytes * 1024
    }

    /// CPU seconds the server has used, user and system.
    pub fn cpu_seconds(&self) -> f64 {
        crate::cpu_seconds(&format!("/proc/{}/stat", self.child.id()))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Already exited is fine: either way it is gone after `wait`.
        let _ = self.child.kill();
        self.child.wait().expect("wait for the server process");
    }
}

/// The `server` role: the benchmark app on a fresh store, until stdin closes.
pub fn serve_benchmark_app() {
    let data_dir = std::env::var("LIVEBASE_BENCH_DATA_DIR").expect("the harness names a data directory");
    run_until_stdin_closes(|config_shutdown| async move {
        let store = Store::open(StoreConfig::new(data_dir)).expect("open store");
        store.apply_schema(&app::schema()).await.expect("schema");
        let listener = listen().await;
        let config = ServerConfig { shutdown: config_shutdown, ..ServerConfig::default() };
        serve(listener, Runtime::new(store, app::registry()), config).await.expect("serve");
    });
}

/// Binds a loopback port and tells the harness which.
pub async fn listen() -> TcpListener {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    announce(&listener);
    listener
}

/// Tells the harness the port of `listener`: the sign that the server is ready for clients.
pub fn announce(listener: &TcpListener) {
    let port = listener.local_addr().expect("local address").port();
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on port {port}").and_then(|()| stdout.flush()).expect("tell the harness the port");
}

/// Runs `serve` on a multi-threaded runtime (one worker per core, as the `livebase` binary does),
/// cancelling its token once stdin reaches its end.
pub fn run_until_stdin_closes<F: Future<Output = ()> + Send + 'static>(
    serve: impl FnOnce(livebase_server::CancellationToken) -> F,
) {
    let shutdown = livebase_server::CancellationToken::new();
    let on_close = shutdown.clone();
    std::thread::spawn(move || {
        // Anything read is ignored: the harness only ever closes stdin.
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        on_close.cancel();
    });
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async move {
        let served = tokio::spawn(serve(shutdown.clone()));
        shutdown.cancelled().await;
        served.abort();
    });
}

/// An app served in this process on 127.0.0.1:0 from a fresh store, for the tests.
#[cfg(test)]
pub struct InProcess {
    pub address: SocketAddr,
    pub shutdown: livebase_server::CancellationToken,
    pub served: tokio::task::JoinHandle<std::io::Result<()>>,
    _data: tempfile::TempDir,
}

#[cfg(test)]
impl InProcess {
    pub async fn start(schema: &livebase_store::Schema, registry: livebase_functions::Registry) -> InProcess {
        let data = tempfile::tempdir().expect("temporary directory");
        let store = Store::open(StoreConfig::new(data.path())).expect("open store");
        store.apply_schema(schema).await.expect("schema");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("local address");
        let config = ServerConfig::default();
        let shutdown = config.shutdown.clone();
        let served = tokio::spawn(serve(listener, Runtime::new(store, registry), config));
        InProcess { address, shutdown, served, _data: data }
    }
}
