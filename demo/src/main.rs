//! `piano-mirror`: the demo app served by Livebase (arguments shared with `livebase serve`).
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
use livebase_server::{ServeArgs, ServerConfig, admin_key, serve};
use livebase_store::Store;
use piano_mirror::{DevSigner, Site};

#[global_allocator]
static ALLOCATOR: livebase_server::allocator::Allocator = livebase_server::allocator::Allocator;

#[derive(Parser)]
#[command(version, about = "Piano Mirror: Livebase's demo app")]
struct Options {
    #[command(flatten)]
    serve: ServeArgs,
    /// The API's URL as browsers reach it, written into the page [default: http://<host>:<port>].
    #[arg(long)]
    api_url: Option<String>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    livebase_server::allocator::keep_freed_memory();
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let options = Options::parse();
    // Bad options are refused before anything is created.
    let (listener, site_listener) = options.serve.bind().await?;
    let api_url = match options.api_url {
        Some(api_url) => api_url,
        None => format!("http://{}", listener.local_addr()?),
    };
    let site = Site::new(&api_url)?;
    let store = Store::open(options.serve.store_config(listener.local_addr()?))?;
    // A read replica follows the writer, which creates the schema, the sign-in key and the seed data.
    let writer = !store.is_replica();
    if writer {
        let new_deployment = admin_key::is_new_deployment(&store);
        store.apply_schema(&piano_mirror::schema()).await?;
        if new_deployment && std::env::var(admin_key::ADMIN_KEY_VARIABLE).is_err() {
            println!("New deployment. Its admin key (keep it secret): {}", admin_key::admin_key(&store));
        }
    }
    let admin_key = admin_key::admin_key(&store);

    // The sign-in route needs the deployment's signing key, which lives in the deployment: read it
    // with the app's functions first, then register the route beside them.
    let signer = DevSigner::load_or_create(&Runtime::new(store.clone(), piano_mirror::registry()?)).await?;
    let mut registry = piano_mirror::registry()?;
    signer.register_route(&mut registry)?;
    site.register_routes(&mut registry)?;
    let runtime = Runtime::new(store, registry);
    let scheduler = match writer {
        true => {
            let seeded = piano_mirror::seed_demo_data(&runtime).await?;
            tracing::info!("demo data: {seeded}");
            Some(runtime.start_scheduler().await?)
        }
        false => None,
    };

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
    if let Some(scheduler) = scheduler {
        scheduler.stop().await;
    }
    Ok(())
}
