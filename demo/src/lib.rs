//! Piano Mirror, the demo app: the backend of the seed's app as Livebase functions.
//!
//! - `students:get`, `students:listByCenter` (a live, paginated list over `by_center_status`),
//!   `centers:create`, `centers:list`, `students:create`, `students:remove` (`students.rs`);
//! - rooms that peers join by a short code: `rooms:create`, `rooms:join`, `rooms:leave`, `rooms:peers`
//!   (`rooms.rs`);
//! - WebRTC signaling through live queries: `signaling:sendMessage`, `signaling:inboxFor`,
//!   `signaling:turnConfig` (an action minting TURN credentials, `turn.rs`) and `signaling:purgeExpired`,
//!   run by an hourly cron (`signaling.rs`);
//! - users (`users:signIn`, internal, for the dev sign-in route; `users:me`) and practice runs
//!   (`runs:create`);
//! - deterministic seed data (`seed.rs`);
//! - the web page (`demo/web`), embedded as built into `demo/web/dist` and served at the site's root
//!   (`site.rs`).
//!
//! The current user is the `users` document whose id is the token's subject. Refusals are user errors
//! with data `{code, message}` ([`ErrorCode`]); every bound is in [`limits`].

mod dev_auth;
mod error;
mod fields;
pub mod limits;
mod rooms;
mod runs;
mod seed;
mod signaling;
mod site;
mod students;
mod turn;
mod users;

use livebase_functions::{Registry, RegistryError};
use livebase_store::{Schema, TableSchema};

pub use dev_auth::{
    DEV_AUTH_AUDIENCE, DEV_AUTH_ISSUER, DEV_AUTH_KEY_VAR, DEV_TOKEN_LIFETIME, DevSigner, MAX_SIGN_IN_BODY_BYTES,
};
pub use error::ErrorCode;
pub use seed::seed_demo_data;
pub use signaling::PURGE_EXPIRED_CRON;
pub use site::{InvalidApiUrl, MAX_API_URL_BYTES, Site};
pub use students::STUDENT_STATUSES;
pub use turn::{
    DEFAULT_TURN_PROVIDER_URL, FALLBACK_STUN_URL, TURN_API_TOKEN_VAR, TURN_PROVIDER_URL_VAR, TURN_TOKEN_ID_VAR,
};

/// The app's tables and indexes.
pub fn schema() -> Schema {
    Schema {
        tables: vec![
            TableSchema::new("users").index("by_name", &["name"]),
            TableSchema::new("centers"),
            TableSchema::new("students").index("by_center_status", &["centerId", "status"]),
            TableSchema::new("rooms").index("by_slug_status", &["slug", "status"]),
            TableSchema::new("roomPeers").index("by_room", &["roomId"]).index("by_room_user", &["roomId", "userId"]),
            TableSchema::new("signalingMessages")
                .index("by_room_and_to_and_creation", &["roomId", "toUserId"])
                .index("by_expires", &["expiresAt"]),
            TableSchema::new("runs"),
        ],
    }
}

/// The app's functions and its cron.
pub fn registry() -> Result<Registry, RegistryError> {
    let mut registry = Registry::new();
    users::register(&mut registry)?;
    students::register(&mut registry)?;
    rooms::register(&mut registry)?;
    signaling::register(&mut registry)?;
    runs::register(&mut registry)?;
    seed::register(&mut registry)?;
    Ok(registry)
}
