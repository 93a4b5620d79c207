//! The `livebase` command: `livebase serve --db DIR --port 3210`, or on PostgreSQL a writer
//! (`--db postgres://...`) and read replicas (`--replica-of postgres://...`).

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use livebase_auth::{AuthConfig, Verifier};
use livebase_functions::Runtime;
use livebase_server::{ServeArgs, ServerConfig, admin_key, app, rest, serve};
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
    /// Serves the built-in app over WebSocket and HTTP.
    Serve {
        #[command(flatten)]
        serve: ServeArgs,
        /// Auth providers (Convex's auth.config as JSON, see the README); without it every user
        /// token is refused.
        #[arg(long)]
        auth_config: Option<PathBuf>,
    },
    /// Prints the admin key of a deployment no server has open (derived from its data, or
    /// LIVEBASE_ADMIN_KEY when set).
    AdminKey {
        #[arg(long = "db", visible_alias = "data-dir", env = "LIVEBASE_DB")]
        data_dir: String,
    },
    /// Sets, reads, lists or removes the environment variables of a running deployment, through
    /// its admin API (the admin key comes from LIVEBASE_ADMIN_KEY).
    Env {
        /// The deployment's API port.
        #[arg(long, default_value = "http://127.0.0.1:3210", env = "LIVEBASE_URL")]
        url: String,
        #[command(subcommand)]
        action: EnvAction,
    },
    /// Creates or revokes API keys of the list endpoints, in a data directory no server has open
    /// (a running server does it through `POST /api/admin/api_keys`).
    ApiKey {
        #[arg(long = "db", visible_alias = "data-dir", env = "LIVEBASE_DB")]
        data_dir: String,
        #[command(subcommand)]
        action: ApiKeyAction,
    },
}

#[derive(Subcommand)]
enum ApiKeyAction {
    /// Creates a key and prints `{"id", "key"}`: the only time the key is shown.
    Create {
        #[arg(long)]
        name: String,
        /// Requests per minute this key may make; unlimited when absent.
        #[arg(long)]
        rate_limit_per_minute: Option<u64>,
        /// Must be the prefix the server accepts.
        #[arg(long, default_value = rest::DEFAULT_API_KEY_PREFIX)]
        prefix: String,
    },
    /// Revokes the key with this id.
    Revoke { id: String },
}

#[derive(Subcommand)]
enum EnvAction {
    /// Sets a variable.
    Set { name: String, value: String },
    /// Prints a variable's value.
    Get { name: String },
    /// Prints every variable as `NAME=value`.
    List,
    /// Removes a variable.
    Remove { name: String },
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let (serve_args, auth_config) = match Cli::parse().command {
        Command::Serve { serve, auth_config } => (serve, auth_config),
        Command::ApiKey { data_dir, action } => return api_key(&data_dir, action).await,
        Command::AdminKey { data_dir } => {
            let store = Store::open(StoreConfig::from_location(&data_dir))?;
            println!("{}", admin_key::admin_key(&store));
            return Ok(());
        }
        Command::Env { url, action } => return env(&url, action).await,
    };
    let auth = match auth_config {
        Some(path) => {
            Some(Arc::new(AuthConfig::load(&path).and_then(Verifier::new).map_err(|error| error.to_string())?))
        }
        None => None,
    };
    let (listener, site_listener) = serve_args.bind().await?;
    let store_config = serve_args.store_config(listener.local_addr()?);
    let storage = store_config.storage.to_string();
    let store = Store::open(store_config)?;
    // A replica's schema is the writer's, which it follows.
    if !store.is_replica() {
        let new_deployment = admin_key::is_new_deployment(&store);
        store.apply_schema(&app::schema()).await?;
        if new_deployment && std::env::var(admin_key::ADMIN_KEY_VARIABLE).is_err() {
            // Shown once, at creation; `livebase admin-key` derives it again from the data.
            println!("New deployment. Its admin key (keep it secret): {}", admin_key::admin_key(&store));
        }
    }
    let admin_key = admin_key::admin_key(&store);
    tracing::info!("serving {storage} on ws://{}/api/sync", listener.local_addr()?);
    tracing::info!("serving HTTP actions on http://{}/", site_listener.local_addr()?);
    let config = ServerConfig {
        auth,
        admin_key: Some(admin_key),
        rest: rest::RestConfig { lists: app::rest_lists(), ..rest::RestConfig::default() },
        site_listener: Some(site_listener),
        ..ServerConfig::default()
    };
    let shutdown = config.shutdown.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            shutdown.cancel();
        }
    });
    let runtime = Runtime::new(store.clone(), app::registry());
    // Scheduled jobs and crons run on the writer, whose commits the replicas follow.
    let scheduler = if store.is_replica() { None } else { Some(runtime.start_scheduler().await?) };
    serve(listener, runtime, config).await?;
    if let Some(scheduler) = scheduler {
        scheduler.stop().await;
    }
    Ok(())
}

/// `livebase env ...`: one admin API call.
async fn env(url: &str, action: EnvAction) -> Result<(), Box<dyn std::error::Error>> {
    let key = std::env::var(admin_key::ADMIN_KEY_VARIABLE)
        .map_err(|_| format!("Set {} to the deployment's admin key", admin_key::ADMIN_KEY_VARIABLE))?;
    let client = reqwest::Client::new();
    let base = format!("{}/api/admin/env", url.trim_end_matches('/'));
    let request = match &action {
        EnvAction::Set { name, value } => {
            client.put(format!("{base}/{name}")).body(serde_json::json!({ "value": value }).to_string())
        }
        EnvAction::Get { .. } | EnvAction::List => client.get(&base),
        EnvAction::Remove { name } => client.delete(format!("{base}/{name}")),
    };
    let response = request.header("Authorization", format!("Convex {key}")).send().await?;
    let status = response.status();
    let body = response.text().await?;
    if !status.is_success() {
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|error| error["message"].as_str().map(str::to_owned))
            .unwrap_or(body);
        return Err(format!("{status}: {message}").into());
    }
    match action {
        EnvAction::Set { name, .. } => println!("set {name}"),
        EnvAction::Remove { name } => println!("removed {name}"),
        EnvAction::Get { name } => {
            let variables: serde_json::Value = serde_json::from_str(&body)?;
            match variables["variables"][&name].as_str() {
                Some(value) => println!("{value}"),
                None => return Err(format!("{name} is not set").into()),
            }
        }
        EnvAction::List => {
            let variables: serde_json::Value = serde_json::from_str(&body)?;
            for (name, value) in variables["variables"].as_object().into_iter().flatten() {
                println!("{name}={}", value.as_str().unwrap_or_default());
            }
        }
    }
    Ok(())
}

async fn api_key(data_dir: &str, action: ApiKeyAction) -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::open(StoreConfig::from_location(data_dir))?;
    store.apply_system_schema(&rest::api_keys::schema()).await?;
    match action {
        ApiKeyAction::Create { name, rate_limit_per_minute, prefix } => {
            let new = rest::api_keys::NewApiKey { name, rate_limit_per_minute };
            let created = rest::api_keys::create(&store, &prefix, &new).await?;
            println!("{}", serde_json::json!({ "id": created.id.encode(), "key": created.key }));
        }
        ApiKeyAction::Revoke { id } => {
            if !rest::api_keys::revoke(&store, &id).await? {
                return Err(format!("No API key has id `{id}`").into());
            }
            println!("revoked {id}");
        }
    }
    Ok(())
}
