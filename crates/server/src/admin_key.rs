//! The deployment's admin key (`Authorization: Convex <admin key>`): admin HTTP endpoints, internal
//! functions over HTTP, the `livebase env` and `api-key` commands against a running server.
//!
//! Unless `LIVEBASE_ADMIN_KEY` names one, the key is derived from the store's instance secret
//! (made when the deployment was created), so it is stable across restarts without being stored
//! anywhere a function could read it; whoever can read the data can derive it, and could read the
//! data anyway.

use hmac::{Hmac, KeyInit, Mac};
use livebase_store::{Store, Timestamp};
use sha2::Sha256;

/// The environment variable that sets the admin key instead of the derived one.
pub const ADMIN_KEY_VARIABLE: &str = "LIVEBASE_ADMIN_KEY";

/// What every admin key derived by this server starts with.
pub const ADMIN_KEY_PREFIX: &str = "livebase_admin_";

/// The key derived from `store`'s instance secret.
pub fn derived_admin_key(store: &Store) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(store.secret()).expect("HMAC takes keys of any length");
    mac.update(b"livebase admin key v1");
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("{ADMIN_KEY_PREFIX}{hex}")
}

/// The admin key: `LIVEBASE_ADMIN_KEY` when set and not empty, else the derived one.
pub fn admin_key(store: &Store) -> String {
    std::env::var(ADMIN_KEY_VARIABLE).ok().filter(|key| !key.is_empty()).unwrap_or_else(|| derived_admin_key(store))
}

/// Whether `store` has never committed: its first start, when the admin key is printed.
pub fn is_new_deployment(store: &Store) -> bool {
    store.snapshot().ts() == Timestamp::ZERO
}
