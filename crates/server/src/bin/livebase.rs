//! The `livebase` command: `livebase serve --db DIR --port 3210`, or on PostgreSQL a writer
//! (`--db postgres://...`) and read replicas (`--replica-of postgres://...`). `livebase dev ./convex`
//! serves a Convex folder's TypeScript functions and reloads them as it changes; `livebase deploy
//! ./convex` pushes a folder to a running `livebase dev`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Parser, Subcommand};
use livebase_auth::{AuthConfig, Verifier};
use livebase_functions::{Registry, Runtime};
use livebase_server::static_site::StaticSite;
use livebase_server::{ServeArgs, ServerConfig, admin_key, app, deploy, dev, rest, serve};
use livebase_store::{Store, StoreConfig};

/// Where `livebase dev` keeps its data unless `--db` says otherwise.
const DEV_DATA_DIR: &str = "./.livebase/dev";

#[global_allocator]
static ALLOCATOR: livebase_server::allocator::Allocator = livebase_server::allocator::Allocator;

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
    /// Serves the functions of a Convex `convex/` folder (TypeScript on embedded QuickJS: its function
    /// modules, schema.ts, crons.ts, http.ts and auth.config.ts) and reloads them when a file in it
    /// changes. Accepts `livebase deploy`.
    #[command(mut_arg("db", |arg| arg.default_value(DEV_DATA_DIR)))]
    Dev {
        /// The `convex/` folder.
        folder: PathBuf,
        #[command(flatten)]
        serve: ServeArgs,
        #[command(flatten)]
        npm: NpmArgs,
        /// A built web page to serve on the site port beside the app's HTTP routes (read at start; its
        /// HTML gets the API's URL in place of `{{LIVEBASE_API_URL}}`).
        #[arg(long)]
        site_dir: Option<PathBuf>,
    },
    /// Bundles a `convex/` folder here and makes it the functions of a running `livebase dev`
    /// (through `POST /api/admin/deploy`).
    Deploy {
        /// The `convex/` folder.
        folder: PathBuf,
        /// The deployment's API port.
        #[arg(long, default_value = "http://127.0.0.1:3210", env = "LIVEBASE_URL")]
        url: String,
        /// The deployment's admin key.
        #[arg(long, env = "LIVEBASE_ADMIN_KEY", hide_env_values = true)]
        admin_key: String,
        #[command(flatten)]
        npm: NpmArgs,
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

#[derive(clap::Args)]
struct NpmArgs {
    /// Where esbuild and the `convex` npm package are installed [default: the npm folder of
    /// livebase-js in the source tree this binary was built from].
    #[arg(long, env = "LIVEBASE_NPM_DIR")]
    npm_dir: Option<PathBuf>,
}

impl NpmArgs {
    fn dir(self) -> PathBuf {
        self.npm_dir.unwrap_or_else(livebase_js::default_npm_dir)
    }
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
    livebase_server::allocator::keep_freed_memory();
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
        Command::Dev { folder, serve, npm, site_dir } => return dev_server(folder, serve, npm.dir(), site_dir).await,
        Command::Deploy { folder, url, admin_key, npm } => return push(&folder, &url, &admin_key, &npm.dir()).await,
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
    let body = admin_call(request, &key).await?;
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

/// Sends an admin API request; returns the body of a successful answer, or the refusal's message.
async fn admin_call(request: reqwest::RequestBuilder, admin_key: &str) -> Result<String, Box<dyn std::error::Error>> {
    let response = request.header("Authorization", format!("Convex {admin_key}")).send().await?;
    let status = response.status();
    let body = response.text().await?;
    if !status.is_success() {
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|error| error["message"].as_str().map(str::to_owned))
            .unwrap_or(body);
        return Err(format!("{status}: {message}").into());
    }
    Ok(body)
}

/// `livebase dev`: the folder's functions on the store of `serve_args`, reloaded as the folder changes.
async fn dev_server(
    folder: PathBuf,
    serve_args: ServeArgs,
    npm_dir: PathBuf,
    site_dir: Option<PathBuf>,
) -> Result<(), Box<dyn std::error::Error>> {
    if serve_args.replica_of.is_some() {
        return Err("`livebase dev` runs the writer: --replica-of is for `livebase serve`".into());
    }
    // The first version must load: the server's auth providers are its auth.config.ts.
    let source = livebase_js::bundle(&folder, &npm_dir).map_err(|error| error.to_string())?;
    let (listener, site_listener) = serve_args.bind().await?;
    let site_files = match &site_dir {
        Some(dir) => Some(StaticSite::load(dir, &format!("http://{}", listener.local_addr()?))?),
        None => None,
    };
    let store = Store::open(serve_args.store_config(listener.local_addr()?))?;
    let new_deployment = admin_key::is_new_deployment(&store);
    let runtime = Runtime::new(store.clone(), Registry::new());
    let (api, site) = (listener.local_addr()?, site_listener.local_addr()?);
    let base_env = deploy::base_env(api, site);
    let installed = deploy::install(&runtime, source, &base_env).await.map_err(|error| error.to_string())?;
    for warning in &installed.config.warnings {
        eprintln!("warning: {warning}");
    }
    let auth_config = installed.config.auth;
    let auth = auth_config.clone().map(Verifier::new).transpose().map_err(|error| error.to_string())?.map(Arc::new);
    if new_deployment && std::env::var(admin_key::ADMIN_KEY_VARIABLE).is_err() {
        println!("New deployment. Its admin key (keep it secret): {}", admin_key::admin_key(&store));
    }
    println!(
        "Serving {} ({} functions) on http://{api} (WebSocket ws://{api}/api/sync), HTTP actions on http://{site}/",
        folder.display(),
        installed.functions
    );
    let config = ServerConfig {
        auth,
        admin_key: Some(admin_key::admin_key(&store)),
        site_listener: Some(site_listener),
        deploy_env: Some(base_env.clone()),
        site_files,
        ..ServerConfig::default()
    };
    let shutdown = config.shutdown.clone();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            stop.cancel();
        }
    });
    let scheduler = runtime.start_scheduler().await?;
    let watched = dev::Watched { folder, npm_dir, runtime: runtime.clone(), auth: auth_config, base_env };
    tokio::spawn(dev::watch(watched, shutdown));
    serve(listener, runtime, config).await?;
    scheduler.stop().await;
    Ok(())
}

/// `livebase deploy`: bundles the folder here, installs it there.
async fn push(folder: &Path, url: &str, admin_key: &str, npm_dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let source = livebase_js::bundle(folder, npm_dir).map_err(|error| error.to_string())?;
    let request = reqwest::Client::new().post(format!("{}/api/admin/deploy", url.trim_end_matches('/'))).body(source);
    let answer: serde_json::Value = serde_json::from_str(&admin_call(request, admin_key).await?)?;
    for warning in answer["warnings"].as_array().into_iter().flatten() {
        eprintln!("warning: {}", warning.as_str().unwrap_or_default());
    }
    println!("Deployed {} functions and {} crons to {url}.", answer["functions"], answer["crons"]);
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
