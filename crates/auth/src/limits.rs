//! Every bound the verifier enforces, in one place. Tokens come from clients and key sets from
//! other servers: both are bounded before anything parses them.

use std::time::Duration;

/// Bytes of one token. Identity tokens of real providers are a few KiB; this leaves room for many
/// custom claims while keeping what an unauthenticated client makes the server decode small.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Clock skew tolerated between the issuer and this server when checking `exp`, `nbf` and `iat`.
pub const CLOCK_LEEWAY: Duration = Duration::from_secs(10);

/// How long a fetched key set is used before it is fetched again.
pub const JWKS_CACHE_TTL: Duration = Duration::from_secs(60 * 60);

/// The least time between two fetches of a provider's keys that a token forced: one naming a key
/// id the cached set lacks (the issuer may have rotated its keys), or one arriving after a failed
/// fetch. Without it, tokens with made-up key ids would turn into a flood of requests to the issuer.
pub const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(10);

/// The whole of one HTTP request to an issuer (discovery document or key set), connecting included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Redirects followed by one request to an issuer.
pub const MAX_FETCH_REDIRECTS: usize = 5;

/// Bytes of a discovery document or key set fetched from an issuer (or given inline).
pub const MAX_FETCHED_BYTES: usize = 256 * 1024;

/// Keys in one key set. Providers publish a handful; a token without a key id is tried against
/// each usable key, so this also bounds the signature checks one token costs.
pub const MAX_KEYS_PER_SET: usize = 32;

/// Providers in one auth config.
pub const MAX_PROVIDERS: usize = 64;
