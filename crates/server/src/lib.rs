//! Livebase's server: the WebSocket endpoint of Convex's sync protocol, and live queries.
//!
//! [`serve`] accepts connections on `/api/<client version>/sync` (the JavaScript client) and
//! `/api/sync` (the Rust and Python clients). Each socket gets a thin loop (`socket.rs`) around the
//! protocol state machine of `livebase_sync`; one task (`hub.rs`) follows the store's change
//! stream and tells connections which of their queries a commit changed, found through an interval
//! index over every live query's read set (`subscriptions.rs`, `interval_index.rs`).

pub mod app;
mod hub;
mod interval_index;
mod socket;
mod subscriptions;

use std::sync::Arc;

use axum::Router;
use axum::extract::{State, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use livebase_functions::{Runtime, UserIdentity};
use livebase_store::Store;
use livebase_sync::MAX_MESSAGE_BYTES;
use tokio::net::TcpListener;
pub use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use socket::{MAX_OUTGOING_MESSAGES, SHUTDOWN_CLOSE_REASON, SLOW_CLIENT_CLOSE_REASON};
pub use subscriptions::RECENT_COMMITS_CAPACITY;

/// Checks a user's token (an `Authenticate` of type `User`) and says who it is, or why not.
pub type UserTokenVerifier = Arc<dyn Fn(&str) -> Result<UserIdentity, String> + Send + Sync>;

#[derive(Default)]
pub struct ServerConfig {
    /// Cancel to stop accepting connections and close every socket; [`serve`] returns once all
    /// are closed.
    pub shutdown: CancellationToken,
    /// Until JWT verification exists every user token is rejected, unless a verifier is set here.
    pub verify_user_token: Option<UserTokenVerifier>,
}

/// What every connection shares.
struct Shared {
    runtime: Runtime,
    store: Store,
    hub: Arc<hub::Hub>,
    shutdown: CancellationToken,
    verify_user_token: Option<UserTokenVerifier>,
    connections: TaskTracker,
}

/// Serves `runtime`'s functions on `listener` until `config.shutdown` is cancelled.
pub async fn serve(listener: TcpListener, runtime: Runtime, config: ServerConfig) -> std::io::Result<()> {
    let ServerConfig { shutdown, verify_user_token } = config;
    let store = runtime.store().clone();
    let hub = hub::Hub::start(store.clone(), shutdown.clone());
    let connections = TaskTracker::new();
    let shared = Arc::new(Shared {
        runtime,
        store,
        hub,
        shutdown: shutdown.clone(),
        verify_user_token,
        connections: connections.clone(),
    });
    let app =
        Router::new().route("/api/sync", get(sync)).route("/api/{client_version}/sync", get(sync)).with_state(shared);
    axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await?;
    // Upgraded sockets are no longer the HTTP server's: wait for their own loops to close them.
    connections.close();
    connections.wait().await;
    Ok(())
}

async fn sync(State(shared): State<Arc<Shared>>, upgrade: WebSocketUpgrade) -> Response {
    // One byte over the protocol's limit: a message just too long reaches the protocol machine,
    // which answers with a FatalError naming the limit; anything longer is cut off unread.
    let limit = MAX_MESSAGE_BYTES + 1;
    upgrade.max_message_size(limit).max_frame_size(limit).on_upgrade(move |socket| {
        let connections = shared.connections.clone();
        connections.track_future(socket::run(socket, shared))
    })
}
