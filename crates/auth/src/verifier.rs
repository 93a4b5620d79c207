//! Checking a token: which provider issued it, its signature against that provider's keys, its
//! claims (`iss`, `aud`, `exp`, `nbf`, `iat`), and the identity it carries.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Validation, decode};
use livebase_functions::UserIdentity;
use livebase_value::{Object, from_plain_json};
use serde_json::{Map, Value as Json};

use crate::config::{AuthConfig, ConfigError, JwksSource, Provider, SigningAlgorithm};
use crate::keys::{KeyLocation, KeySet, RemoteKeys, http_client, same_issuer};
use crate::limits::{CLOCK_LEEWAY, MAX_PROVIDERS, MAX_TOKEN_BYTES};

/// Why a token was rejected. The message is what the client gets in its `AuthError`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the token is {len} bytes, over the limit of {MAX_TOKEN_BYTES}")]
    TokenTooLarge { len: usize },
    #[error("the token is not a JWT: {0}")]
    Malformed(String),
    #[error("tokens signed with {0:?} are not accepted: use RS256 or ES256")]
    UnsupportedAlgorithm(String),
    #[error("no auth provider for issuer {0:?}")]
    UnknownIssuer(String),
    #[error("issuer {issuer:?} signs with {expected}, but the token is signed with {found}")]
    AlgorithmMismatch { issuer: String, expected: SigningAlgorithm, found: SigningAlgorithm },
    #[error("the keys of issuer {issuer:?} are unavailable: {reason}")]
    KeysUnavailable { issuer: String, reason: String },
    #[error("issuer {issuer:?} has no {algorithm} key {}", describe_kid(.kid.as_deref()))]
    UnknownKey { issuer: String, kid: Option<String>, algorithm: SigningAlgorithm },
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("the token is not valid yet (its `nbf` is in the future)")]
    NotYetValid,
    #[error("the token was issued in the future (its `iat`)")]
    IssuedInTheFuture,
    #[error("the token's audience (`aud`) does not include the application ID {0:?}")]
    WrongAudience(String),
    #[error("the token's `{0}` claim is missing or malformed")]
    InvalidClaim(String),
}

fn describe_kid(kid: Option<&str>) -> String {
    kid.map_or_else(|| "(the token names none)".to_owned(), |kid| format!("{kid:?}"))
}

/// A token that passed every check.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedToken {
    pub identity: UserIdentity,
    /// When the token stops being accepted: its `exp`, plus the clock leeway.
    pub expires_at: SystemTime,
}

/// Checks tokens against a deployment's providers. Share one (in an `Arc`) across connections:
/// it caches every provider's keys.
pub struct Verifier {
    providers: Vec<ProviderKeys>,
    http: reqwest::Client,
}

struct ProviderKeys {
    provider: Provider,
    keys: Keys,
}

enum Keys {
    Inline(Arc<KeySet>),
    Remote(RemoteKeys),
}

impl Verifier {
    /// Checks the config (URLs, inline key sets, limits); fetches nothing yet.
    pub fn new(config: AuthConfig) -> Result<Verifier, ConfigError> {
        if config.providers.len() > MAX_PROVIDERS {
            return Err(ConfigError::new(format!(
                "{} providers, over the limit of {MAX_PROVIDERS}",
                config.providers.len()
            )));
        }
        let providers = config
            .providers
            .into_iter()
            .enumerate()
            .map(|(index, provider)| {
                let keys = provider_keys(&provider)
                    .map_err(|message| ConfigError::new(format!("providers[{index}]: {message}")))?;
                Ok(ProviderKeys { provider, keys })
            })
            .collect::<Result<_, ConfigError>>()?;
        let http = http_client().map_err(|error| ConfigError::new(format!("cannot build an HTTP client: {error}")))?;
        Ok(Verifier { providers, http })
    }

    /// Who `token` says the user is, if a configured provider signed it and it is valid now.
    pub async fn verify(&self, token: &str) -> Result<UserIdentity, AuthError> {
        self.verify_token(token).await.map(|verified| verified.identity)
    }

    /// [`Verifier::verify`], also saying until when the token is accepted: a long-lived
    /// connection must stop acting as the user then.
    pub async fn verify_token(&self, token: &str) -> Result<VerifiedToken, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TokenTooLarge { len: token.len() });
        }
        let unverified = Unverified::parse(token)?;
        let mut first_error = None;
        // Several providers may share an issuer (one per application ID): any may accept.
        for provider in self.providers.iter().filter(|keys| same_issuer(keys.provider.issuer(), &unverified.issuer)) {
            match provider.verify(token, &unverified, &self.http).await {
                Ok(verified) => return Ok(verified),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        Err(first_error.unwrap_or(AuthError::UnknownIssuer(unverified.issuer)))
    }
}

fn provider_keys(provider: &Provider) -> Result<Keys, String> {
    check_url(provider.issuer(), "issuer")?;
    Ok(match provider {
        Provider::Oidc { domain, .. } => {
            Keys::Remote(RemoteKeys::new(KeyLocation::Discovery { issuer: domain.clone() }))
        }
        Provider::CustomJwt { jwks: JwksSource::Url(url), .. } => {
            check_url(url, "jwks")?;
            Keys::Remote(RemoteKeys::new(KeyLocation::Jwks { url: url.clone() }))
        }
        Provider::CustomJwt { jwks: JwksSource::Inline(json), .. } => {
            Keys::Inline(Arc::new(KeySet::parse(json).map_err(|error| format!("`jwks`: {error}"))?))
        }
    })
}

fn check_url(url: &str, field: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|error| format!("`{field}` {url:?} is not a URL: {error}"))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(format!("`{field}` {url:?} must be an https (or http) URL"));
    }
    Ok(())
}

/// What a token says about itself before its signature is checked: only used to pick the
/// provider and key.
struct Unverified {
    algorithm: SigningAlgorithm,
    kid: Option<String>,
    issuer: String,
}

impl Unverified {
    fn parse(token: &str) -> Result<Unverified, AuthError> {
        let parts: Vec<&str> = token.splitn(4, '.').collect();
        let [header, claims, _signature] = parts[..] else {
            return Err(AuthError::Malformed("it must have three `.`-separated parts".to_owned()));
        };
        let header = decode_part(header, "header")?;
        let algorithm = match header.get("alg") {
            Some(Json::String(name)) => {
                SigningAlgorithm::from_name(name).ok_or_else(|| AuthError::UnsupportedAlgorithm(name.clone()))?
            }
            _ => return Err(AuthError::Malformed("its header has no `alg`".to_owned())),
        };
        let kid = match header.get("kid") {
            None => None,
            Some(Json::String(kid)) => Some(kid.clone()),
            Some(_) => return Err(AuthError::Malformed("its header's `kid` is not a string".to_owned())),
        };
        let Some(Json::String(issuer)) = decode_part(claims, "payload")?.remove("iss") else {
            return Err(AuthError::InvalidClaim("iss".to_owned()));
        };
        Ok(Unverified { algorithm, kid, issuer })
    }
}

fn decode_part(part: &str, name: &str) -> Result<Map<String, Json>, AuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|error| AuthError::Malformed(format!("its {name} is not base64url: {error}")))?;
    serde_json::from_slice(&bytes)
        .map_err(|error| AuthError::Malformed(format!("its {name} is not a JSON object: {error}")))
}

impl ProviderKeys {
    async fn verify(
        &self,
        token: &str,
        unverified: &Unverified,
        http: &reqwest::Client,
    ) -> Result<VerifiedToken, AuthError> {
        let issuer = self.provider.issuer();
        if let Provider::CustomJwt { algorithm, .. } = &self.provider
            && *algorithm != unverified.algorithm
        {
            return Err(AuthError::AlgorithmMismatch {
                issuer: issuer.to_owned(),
                expected: *algorithm,
                found: unverified.algorithm,
            });
        }
        let kid = unverified.kid.as_deref();
        let keys = match &self.keys {
            Keys::Inline(keys) => Arc::clone(keys),
            Keys::Remote(remote) => remote
                .get(http, kid)
                .await
                .map_err(|reason| AuthError::KeysUnavailable { issuer: issuer.to_owned(), reason })?,
        };
        let validation = self.validation(unverified);
        let mut candidates = keys.candidates(kid, unverified.algorithm).peekable();
        if candidates.peek().is_none() {
            return Err(AuthError::UnknownKey {
                issuer: issuer.to_owned(),
                kid: unverified.kid.clone(),
                algorithm: unverified.algorithm,
            });
        }
        for candidate in candidates {
            match decode::<Map<String, Json>>(token, &candidate.key, &validation) {
                Ok(data) => return verified(data.claims),
                Err(error) if *error.kind() == ErrorKind::InvalidSignature => {}
                Err(error) => return Err(self.rejection(error.into_kind())),
            }
        }
        Err(AuthError::BadSignature)
    }

    fn validation(&self, unverified: &Unverified) -> Validation {
        let mut validation = Validation::new(unverified.algorithm.jwt_algorithm());
        validation.leeway = CLOCK_LEEWAY.as_secs();
        validation.validate_nbf = true;
        validation.set_issuer(&[&unverified.issuer]);
        match self.provider.application_id() {
            Some(application_id) => {
                validation.set_audience(&[application_id]);
                validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
            }
            None => {
                validation.validate_aud = false;
                validation.set_required_spec_claims(&["exp", "iss", "sub"]);
            }
        }
        validation
    }

    fn rejection(&self, kind: ErrorKind) -> AuthError {
        match kind {
            ErrorKind::InvalidSignature => AuthError::BadSignature,
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidAudience => {
                AuthError::WrongAudience(self.provider.application_id().unwrap_or_default().to_owned())
            }
            ErrorKind::InvalidIssuer => AuthError::InvalidClaim("iss".to_owned()),
            ErrorKind::MissingRequiredClaim(claim) | ErrorKind::InvalidClaimFormat(claim) => {
                AuthError::InvalidClaim(claim)
            }
            other => AuthError::Malformed(jsonwebtoken::errors::Error::from(other).to_string()),
        }
    }
}

/// Registered JWT claims, which describe the token rather than the user.
const TOKEN_CLAIMS: [&str; 7] = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"];

/// OpenID Connect's standard claims under the names Convex's `UserIdentity` gives them.
const STANDARD_CLAIMS: [(&str, &str); 17] = [
    ("name", "name"),
    ("given_name", "givenName"),
    ("family_name", "familyName"),
    ("nickname", "nickname"),
    ("preferred_username", "preferredUsername"),
    ("profile", "profileUrl"),
    ("picture", "pictureUrl"),
    ("email", "email"),
    ("email_verified", "emailVerified"),
    ("gender", "gender"),
    ("birthdate", "birthday"),
    ("zoneinfo", "timezone"),
    ("locale", "language"),
    ("phone_number", "phoneNumber"),
    ("phone_number_verified", "phoneNumberVerified"),
    ("address", "address"),
    ("updated_at", "updatedAt"),
];

/// The identity in verified claims (standard claims renamed as Convex names them, custom claims
/// as they are, claims about the token itself left out), and when the token expires.
fn verified(mut claims: Map<String, Json>) -> Result<VerifiedToken, AuthError> {
    let exp = claims.get("exp").and_then(Json::as_f64).ok_or_else(|| AuthError::InvalidClaim("exp".to_owned()))?;
    let expires_at =
        UNIX_EPOCH + Duration::try_from_secs_f64(exp).map_err(|_| AuthError::InvalidClaim("exp".to_owned()))?;
    if let Some(iat) = claims.get("iat") {
        let iat = iat.as_f64().ok_or_else(|| AuthError::InvalidClaim("iat".to_owned()))?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("the clock is past 1970");
        if iat > (now + CLOCK_LEEWAY).as_secs_f64() {
            return Err(AuthError::IssuedInTheFuture);
        }
    }
    let string_claim = |claims: &mut Map<String, Json>, name: &str| match claims.remove(name) {
        Some(Json::String(value)) => Ok(value),
        _ => Err(AuthError::InvalidClaim(name.to_owned())),
    };
    let subject = string_claim(&mut claims, "sub")?;
    let issuer = string_claim(&mut claims, "iss")?;
    let mut user_claims = Object::new();
    for (name, value) in claims {
        if TOKEN_CLAIMS.contains(&name.as_str()) {
            continue;
        }
        let value = from_plain_json(&value).map_err(|_| AuthError::InvalidClaim(name.clone()))?;
        let name =
            STANDARD_CLAIMS.iter().find(|(claim, _)| *claim == name).map_or(name, |(_, renamed)| (*renamed).to_owned());
        user_claims.insert(name, value);
    }
    let identity =
        UserIdentity { token_identifier: format!("{issuer}|{subject}"), subject, issuer, claims: user_claims };
    Ok(VerifiedToken { identity, expires_at: expires_at + CLOCK_LEEWAY })
}
