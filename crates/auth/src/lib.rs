//! Livebase's authentication: which token issuers a deployment trusts ([`AuthConfig`], shaped like
//! Convex's `auth.config.ts`: OpenID Connect providers and custom JWT providers), and the
//! [`Verifier`] that turns a client's JWT into the [`UserIdentity`](livebase_functions::UserIdentity)
//! functions see, or an [`AuthError`] saying why not.
//!
//! Keys come from the issuers: an OIDC provider's through its discovery document, a custom
//! provider's from its JWKS URL or inline. Fetched keys are cached for [`limits::JWKS_CACHE_TTL`]
//! and fetched again early when a token names a key the cache lacks (a rotation), at most once per
//! [`limits::JWKS_REFETCH_INTERVAL`].
//!
//! ```no_run
//! use livebase_auth::{AuthConfig, Provider, Verifier};
//!
//! let config = AuthConfig {
//!     providers: vec![Provider::Oidc { domain: "https://issuer.example.com".into(), application_id: "my-app".into() }],
//! };
//! let verifier = Verifier::new(config)?;
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! match verifier.verify("eyJ...").await {
//!     Ok(identity) => println!("{}", identity.token_identifier),
//!     Err(error) => println!("rejected: {error}"),
//! }
//! # });
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod keys;
pub mod limits;
#[cfg(feature = "testing")]
pub mod testing;
mod verifier;

pub use config::{AuthConfig, ConfigError, JwksSource, Provider, SigningAlgorithm};
pub use verifier::{AuthError, VerifiedToken, Verifier};
