//! The `livebase` command: `livebase serve --data-dir DIR --port 3210`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use livebase_functions::Runtime;
use livebase_server::{ServerConfig, app, serve};
use livebase_store::{Store, StoreConfig};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(version, about = "Livebase: a reactive document database speaking Convex's protocol")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serves the built-in app over WebSocket.
    Serve {
        /// Where the database lives; created if missing.
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        #[arg(long, default_value_t = 3210)]
        port: u16,
    },
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let Command::Serve { data_dir, host, port } = Cli::parse().command;
    let store = Store::open(StoreConfig::new(&data_dir))?;
    store.apply_schema(&app::schema()).await?;
    let listener = tokio::net::TcpListener::bind((host.as_str(), port)).await?;
    tracing::info!("serving {} on ws://{}/api/sync", data_dir.display(), listener.local_addr()?);
    let config = ServerConfig::default();
    let shutdown = config.shutdown.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            shutdown.cancel();
        }
    });
    serve(listener, Runtime::new(store, app::registry()), config).await?;
    Ok(())
}
