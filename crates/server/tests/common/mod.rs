//! A real server on a free loopback port, over a throwaway data directory.

use std::net::SocketAddr;
use std::time::Duration;

use livebase_functions::Runtime;
use livebase_server::{ServerConfig, app, serve};
use livebase_store::{Store, StoreConfig};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a test waits for anything the server should do at once; failing beats hanging.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    serving: JoinHandle<std::io::Result<()>>,
    _data_dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(|config| config).await
    }

    pub async fn start_with(configure: impl FnOnce(ServerConfig) -> ServerConfig) -> TestServer {
        let data_dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreConfig::new(data_dir.path())).unwrap();
        store.apply_schema(&app::schema()).await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = configure(ServerConfig::default());
        let shutdown = config.shutdown.clone();
        let serving = tokio::spawn(serve(listener, Runtime::new(store, app::registry()), config));
        TestServer { addr, shutdown, serving, _data_dir: data_dir }
    }

    /// Shuts the server down and waits until every connection is closed.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(PATIENCE, self.serving).await.expect("the server stops").unwrap().unwrap();
    }
}
