//! The command-line arguments of every binary that serves an app (`livebase serve`, the demo):
//! where the data is, whether this node is the writer or a read replica, and where it listens.
//! One `clap` struct, flattened into each binary's own arguments with `#[command(flatten)]`.

use std::net::SocketAddr;
use std::time::Duration;

use livebase_store::{DEFAULT_POSTGRES_SCHEMA, PostgresConfig, Storage, StoreConfig};
use tokio::net::TcpListener;

#[derive(clap::Args, Clone, Debug)]
pub struct ServeArgs {
    /// Where the database lives: a data directory (created if missing), or a PostgreSQL URL
    /// (`postgres://user@host:5432/db`; one writer at a time). Unused with `--replica-of`.
    #[arg(long = "db", visible_aliases = ["data-dir", "data"], env = "LIVEBASE_DB", default_value = "./livebase_data")]
    pub db: String,
    /// Serve as a read replica of the writer on this PostgreSQL database: queries and subscriptions
    /// are answered here, mutations and actions forwarded to the writer.
    #[arg(long, env = "LIVEBASE_REPLICA_OF")]
    pub replica_of: Option<String>,
    /// The PostgreSQL schema holding the deployment's tables (writer and replicas must agree).
    #[arg(long, default_value = DEFAULT_POSTGRES_SCHEMA)]
    pub db_schema: String,
    /// Seconds a writer waits for another writer's PostgreSQL lease to be released or to expire (after
    /// a crash) before refusing to start; 0 refuses at once.
    #[arg(long, default_value_t = 0)]
    pub lease_wait_secs: u64,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The API port: WebSocket sync and HTTP function calls.
    #[arg(long, default_value_t = 3210)]
    pub port: u16,
    /// The site port: the app's HTTP actions (and routes) at its root.
    #[arg(long, default_value_t = 3211)]
    pub site_port: u16,
    /// A PostgreSQL writer's API URL as its replicas reach it, kept with its lease
    /// [default: http://<host>:<port>; set it when listening on 0.0.0.0].
    #[arg(long)]
    pub advertise_url: Option<String>,
}

impl ServeArgs {
    /// The API and site listeners. Bound before the store opens, so bad addresses are refused before
    /// anything is created and a writer advertises the port it really has.
    pub async fn bind(&self) -> std::io::Result<(TcpListener, TcpListener)> {
        let api = TcpListener::bind((self.host.as_str(), self.port)).await?;
        let site = TcpListener::bind((self.host.as_str(), self.site_port)).await?;
        Ok((api, site))
    }

    /// The store to open for a node whose API listens on `api`.
    pub fn store_config(&self, api: SocketAddr) -> StoreConfig {
        if let Some(url) = &self.replica_of {
            return StoreConfig::replica_of(PostgresConfig {
                schema: self.db_schema.clone(),
                ..PostgresConfig::new(url)
            });
        }
        let mut config = StoreConfig::from_location(&self.db);
        if let Storage::Postgres(postgres) = &mut config.storage {
            postgres.schema = self.db_schema.clone();
            postgres.lease_wait = Duration::from_secs(self.lease_wait_secs);
            postgres.advertise_url = Some(self.advertise_url.clone().unwrap_or_else(|| format!("http://{api}")));
        }
        config
    }
}
