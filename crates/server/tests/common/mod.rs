//! A real server on a free loopback port, over a throwaway data directory.

use std::net::SocketAddr;
use std::time::Duration;

use livebase_functions::{Registry, Runtime};
use livebase_server::{ServerConfig, app, serve};
use livebase_store::{Schema, Store, StoreConfig};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a test waits for anything the server should do at once; failing beats hanging.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub addr: SocketAddr,
    /// The server's store, for tests that write or read behind its back.
    #[allow(dead_code, reason = "not every test binary writes behind the server's back")]
    pub store: Store,
    runtime: Runtime,
    shutdown: CancellationToken,
    serving: JoinHandle<std::io::Result<()>>,
    _data_dir: tempfile::TempDir,
}

impl TestServer {
    #[allow(dead_code, reason = "tests serving an app of their own start it with `start_app`")]
    pub async fn start() -> TestServer {
        TestServer::start_with(|config| config).await
    }

    #[allow(dead_code, reason = "tests serving an app of their own start it with `start_app`")]
    pub async fn start_with(configure: impl FnOnce(ServerConfig) -> ServerConfig) -> TestServer {
        TestServer::start_app(app::schema(), app::registry(), configure).await
    }

    /// A server of an app of the test's own.
    pub async fn start_app(
        schema: Schema,
        registry: Registry,
        configure: impl FnOnce(ServerConfig) -> ServerConfig,
    ) -> TestServer {
        let data_dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreConfig::new(data_dir.path())).unwrap();
        store.apply_schema(&schema).await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = configure(ServerConfig::default());
        let shutdown = config.shutdown.clone();
        let runtime = Runtime::new(store.clone(), registry);
        let serving = tokio::spawn(serve(listener, runtime.clone(), config));
        TestServer { addr, store, runtime, shutdown, serving, _data_dir: data_dir }
    }

    /// Stops serving (every connection closes) and serves the same store and functions again on the
    /// same address with `config`, as a restarted server would. `between` runs while nothing serves.
    #[allow(dead_code, reason = "only the restart tests restart")]
    pub async fn restart(&mut self, between: impl Future<Output = ()>, config: ServerConfig) {
        self.shutdown.cancel();
        tokio::time::timeout(PATIENCE, &mut self.serving).await.expect("the server stops").unwrap().unwrap();
        between.await;
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.shutdown = config.shutdown.clone();
        self.serving = tokio::spawn(serve(listener, self.runtime.clone(), config));
    }

    /// The runtime the server calls functions on, for tests that run its scheduler too.
    #[allow(dead_code, reason = "only the tests of scheduled functions start the scheduler")]
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Shuts the server down and waits until every connection is closed.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(PATIENCE, self.serving).await.expect("the server stops").unwrap().unwrap();
    }
}
