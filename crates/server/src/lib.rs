//! Livebase's server: the WebSocket endpoint of Convex's sync protocol, and live queries.
//!
//! [`serve`] accepts connections on `/api/<client version>/sync` (the JavaScript client) and
//! `/api/sync` (the Rust and Python clients). Each socket gets a thin loop (`socket.rs`) around the
//! protocol state machine of `livebase_sync`; one task (`hub.rs`) follows the store's change
//! stream and tells connections which of their queries a commit changed, found through an interval
//! index over every live query's read set (`subscriptions.rs`, `prefix_index.rs`, `interval_index.rs`).
//!
//! Over HTTP, the same port serves function calls (`http_api.rs`: `/api/query`, `/api/mutation`,
//! ...) and the app's HTTP actions under `/http/` (`http_actions.rs`); the optional site port
//! serves the HTTP actions at its root.
//!
//! A node is the writer of its store or, on PostgreSQL, a read replica (`Store::is_replica`): a
//! replica serves queries and subscriptions from its own store, which follows the writer's commits,
//! and forwards mutations and actions to the writer (`forward.rs`).

pub mod admin_env;
pub mod admin_key;
pub mod allocator;
pub mod app;
pub mod deploy;
pub mod dev;
pub mod forward;
mod http_actions;
pub mod http_api;
mod hub;
mod interval_index;
mod prefix_index;
pub mod rest;
mod serve_args;
mod shared_runs;
mod socket;
pub mod static_site;
mod subscriptions;
mod wake_gated;

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{State, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use axum::serve::ListenerExt;
use livebase_auth::Verifier;
use livebase_functions::Runtime;
use livebase_functions::limits::MUTATION_REPLAY_RETENTION;
use livebase_store::Store;
use livebase_sync::{HEARTBEAT_INTERVAL, MAX_MESSAGE_BYTES};
use tokio::net::TcpListener;
pub use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use serve_args::ServeArgs;
pub use shared_runs::MAX_SHARED_QUERY_RUNS;
pub use socket::{MAX_OUTGOING_MESSAGES, SHUTDOWN_CLOSE_REASON, SLOW_CLIENT_CLOSE_REASON};
pub use subscriptions::RECENT_COMMITS_CAPACITY;
/// The matcher of commits against live queries' read sets, public for the benchmark of its cost
/// (`bench/src/matching.rs`); the server uses it through its subscription hub.
#[doc(hidden)]
pub use subscriptions::Subscriptions;

/// Bytes of each WebSocket's read buffer.
pub const WEBSOCKET_READ_BUFFER_BYTES: usize = 4 * 1_024;

/// How often the server deletes the mutation results kept for replays longer than
/// `MUTATION_REPLAY_RETENTION`.
pub const REPLAY_PRUNE_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct ServerConfig {
    /// Cancel to stop accepting connections and close every socket; [`serve`] returns once all
    /// are closed.
    pub shutdown: CancellationToken,
    /// Checks users' tokens (the sync protocol's `Authenticate`, the HTTP API's `Bearer`) against
    /// the deployment's auth providers; `None` refuses every user token.
    pub auth: Option<Arc<Verifier>>,
    /// The admin key (`Authorization: Convex <admin key>`); `None` disables the admin API.
    pub admin_key: Option<String>,
    /// The HTTP API's list endpoints and API key prefix (see [`rest`]).
    pub rest: rest::RestConfig,
    /// The site port (Convex's 3211): the app's HTTP actions at its root. `None` serves them only
    /// under `/http/` on the main listener.
    pub site_listener: Option<TcpListener>,
    /// How long a WebSocket may go without a message to the client before it is sent a `Ping`;
    /// `None` for `livebase_sync::HEARTBEAT_INTERVAL`. Shorter only in tests.
    pub heartbeat_interval: Option<Duration>,
    /// `Some` when admins may replace the functions with a TypeScript bundle (`POST /api/admin/deploy`,
    /// see [`deploy`]), holding what its configuration files read as `process.env` ([`deploy::base_env`]):
    /// `livebase dev` accepts deploys, `livebase serve` (whose functions are built in) does not.
    pub deploy_env: Option<std::collections::BTreeMap<String, String>>,
    /// A built web page served on the site port (`livebase dev --site-dir`).
    pub site_files: Option<static_site::StaticSite>,
}

/// What every connection shares.
struct Shared {
    runtime: Runtime,
    store: Store,
    hub: Arc<hub::Hub>,
    shutdown: CancellationToken,
    auth: Option<Arc<Verifier>>,
    admin_key: Option<String>,
    heartbeat_interval: Duration,
    connections: TaskTracker,
    /// On a read replica, the way to the writer for mutations and actions.
    forwarder: Option<forward::Forwarder>,
    deploy_env: Option<std::collections::BTreeMap<String, String>>,
}

/// Serves `runtime`'s functions on `listener` until `config.shutdown` is cancelled.
pub async fn serve(listener: TcpListener, runtime: Runtime, config: ServerConfig) -> std::io::Result<()> {
    let ServerConfig { shutdown, auth, admin_key, rest, site_listener, heartbeat_interval, deploy_env, site_files } =
        config;
    let store = runtime.store().clone();
    if store.is_replica() && admin_key.is_none() {
        let problem = "a read replica needs the admin key: it authenticates its calls to the writer";
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, problem));
    }
    rest::prepare(&store, &rest)
        .await
        .map_err(|problem| std::io::Error::new(std::io::ErrorKind::InvalidInput, problem))?;
    let rest_routes = rest::router(store.clone(), rest, admin_key.clone(), shutdown.clone());
    let hub = hub::Hub::start(store.clone(), runtime.registry_version(), shutdown.clone());
    let forwarder = match (&admin_key, store.is_replica()) {
        (Some(admin_key), true) => Some(forward::Forwarder::new(store.clone(), admin_key.clone(), hub.watermark())),
        _ => {
            // Only the writer writes; it prunes for every node, since replays are recorded there.
            tokio::spawn(prune_mutation_replays(runtime.clone(), shutdown.clone()));
            None
        }
    };
    let connections = TaskTracker::new();
    let shared = Arc::new(Shared {
        runtime,
        store,
        hub,
        shutdown: shutdown.clone(),
        auth,
        admin_key,
        heartbeat_interval: heartbeat_interval.unwrap_or(HEARTBEAT_INTERVAL),
        deploy_env,
        connections: connections.clone(),
        forwarder,
    });
    // Small messages must leave at once: Nagle's algorithm with delayed ACKs adds ~40 ms to them.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::warn!("could not set TCP_NODELAY: {error}");
        }
    });
    let api = axum::serve(listener, api_router(Arc::clone(&shared), rest_routes.clone()))
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    match site_listener {
        Some(site_listener) => {
            let site_routes = site_files.map(static_site::StaticSite::router).unwrap_or_default();
            let site = axum::serve(site_listener, site_router(shared, rest_routes.merge(site_routes)))
                .with_graceful_shutdown(shutdown.cancelled_owned());
            tokio::try_join!(api.into_future(), site.into_future())?;
        }
        None => api.await?,
    }
    // Upgraded sockets are no longer the HTTP server's: wait for their own loops to close them.
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Every route of the API port. Other HTTP surfaces merge their routes here: `rest_routes` (the
/// REST endpoints) are served on both ports.
fn api_router(shared: Arc<Shared>, rest_routes: Router) -> Router {
    Router::new()
        .route("/api/sync", get(sync))
        .route("/api/{client_version}/sync", get(sync))
        .route("/version", get(version))
        .merge(http_api::routes())
        .merge(admin_env::routes())
        .merge(deploy::routes())
        .merge(forward::routes())
        .merge(http_actions::api_port_routes())
        .with_state(shared)
        .merge(rest_routes)
}

/// Every route of the site port: the app's HTTP actions at the root, for every path the routes
/// merged here (`rest_routes`, as on the API port) leave unrouted.
fn site_router(shared: Arc<Shared>, rest_routes: Router) -> Router {
    http_actions::site_port_routes().with_state(shared).merge(rest_routes)
}

/// `GET /version`: the server's version; answering at all means it is ready to serve.
async fn version() -> &'static str {
    concat!("livebase ", env!("CARGO_PKG_VERSION"))
}

async fn sync(State(shared): State<Arc<Shared>>, upgrade: WebSocketUpgrade) -> Response {
    // One byte over the protocol's limit: a message just too long reaches the protocol machine,
    // which answers with a FatalError naming the limit; anything longer is cut off unread.
    let limit = MAX_MESSAGE_BYTES + 1;
    // A small read buffer: tungstenite's default (128 KiB) would be most of an idle connection's
    // memory; large messages still arrive, the buffer grows for them.
    upgrade.read_buffer_size(WEBSOCKET_READ_BUFFER_BYTES).max_message_size(limit).max_frame_size(limit).on_upgrade(
        move |socket| {
            let connections = shared.connections.clone();
            connections.track_future(socket::run(socket, shared))
        },
    )
}

async fn prune_mutation_replays(runtime: Runtime, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(REPLAY_PRUNE_INTERVAL);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match runtime.prune_mutation_replays(MUTATION_REPLAY_RETENTION).await {
            Ok(pruned) => tracing::debug!(pruned, "pruned expired mutation replay records"),
            Err(error) => tracing::warn!(%error, "could not prune mutation replay records"),
        }
    }
}
