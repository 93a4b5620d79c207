//! `piano-mirror`: the demo app served by Livebase on the embedded store.
//!
//! `cargo run --release -p piano-mirror` serves the API (WebSocket sync, HTTP functions) on
//! `--port` (3210) and the web page (`GET /`, `GET /app.js`) and the app's HTTP routes
//! (`POST /auth/dev`, `GET /api/v1/runs`, `GET /api/v1/runs/<id>`) on `--site-port` (3211), with data
//! in `--data` (`./livebase_data`). The page connects to `--api-url` (the API port's URL). The
//! first start creates the deployment, prints its admin key (unless `LIVEBASE_ADMIN_KEY` sets one)
//! and seeds demo data.

use std::sync::Arc;

use clap::Parser;
use livebase_auth::{AuthConfig, Verifier};
use livebase_functions::Runtime;
use livebase_server::rest::{RestConfig, RestList};
use livebase_server::{ServerConfig, admin_key, serve};
use livebase_store::{Store, StoreConfig};
use piano_mirror::{DevSigner, Site};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(version, about = "Piano Mirror: Livebase's demo app")]
struct Options {
    /// Where the database lives: a directory (created if missing) or a PostgreSQL URL.
    #[arg(long, default_value = "./livebase_data")]
    data: String,
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// The API port: WebSocket sync and HTTP function calls.
    #[arg(long, default_value_t = 3210)]
    port: u16,
    /// The site port: the app's HTTP routes at its root.
    #[arg(long, default_value_t = 3211)]
    site_port: u16,
    /// The API's URL as browsers reach it, written into the page [default: http://<host>:<port>].
    #[arg(long)]
    api_url: Option<String>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let options = Options::parse();
    // Bad options are refused before anything is created.
    let listener = tokio::net::TcpListener::bind((options.host.as_str(), options.port)).await?;
    let site_listener = tokio::net::TcpListener::bind((options.host.as_str(), options.site_port)).await?;
    let api_url = match options.api_url {
        Some(api_url) => api_url,
        None => format!("http://{}", listener.local_addr()?),
    };
    let site = Site::new(&api_url)?;
    let store = Store::open(StoreConfig::from_location(&options.data))?;
    let new_deployment = admin_key::is_new_deployment(&store);
    store.apply_schema(&piano_mirror::schema()).await?;
    let admin_key = admin_key::admin_key(&store);
    if new_deployment && std::env::var(admin_key::ADMIN_KEY_VARIABLE).is_err() {
        println!("New deployment. Its admin key (keep it secret): {admin_key}");
    }

    // The sign-in route needs the deployment's signing key, which lives in the deployment: read it
    // with the app's functions first, then register the route beside them.
    let signer = DevSigner::load_or_create(&Runtime::new(store.clone(), piano_mirror::registry()?)).await?;
    let mut registry = piano_mirror::registry()?;
    signer.register_route(&mut registry)?;
    site.register_routes(&mut registry)?;
    let runtime = Runtime::new(store, registry);
    let seeded = piano_mirror::seed_demo_data(&runtime).await?;
    tracing::info!("demo data: {seeded}");
    let scheduler = runtime.start_scheduler().await?;

    let config = ServerConfig {
        auth: Some(Arc::new(Verifier::new(AuthConfig { providers: vec![signer.provider()] })?)),
        admin_key: Some(admin_key),
        rest: RestConfig { lists: vec![RestList::new("/api/v1/runs", "runs")], ..RestConfig::default() },
        site_listener: Some(site_listener),
        ..ServerConfig::default()
    };
    println!(
        "Piano Mirror is serving {api_url} (API) and http://{}/ (the app: open it in a browser)",
        config.site_listener.as_ref().expect("set above").local_addr()?
    );
    let shutdown = config.shutdown.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            shutdown.cancel();
        }
    });
    serve(listener, runtime, config).await?;
    scheduler.stop().await;
    Ok(())
}
