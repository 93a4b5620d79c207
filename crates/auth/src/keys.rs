//! Verification keys: key sets (JWKS) parsed into usable keys, fetched from issuers over HTTP
//! (through OpenID Connect discovery or a JWKS URL), and cached.

use std::sync::Arc;
use std::time::Instant;

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use serde_json::Value as Json;
use tokio::sync::Mutex;

use crate::config::SigningAlgorithm;
use crate::limits::{
    FETCH_TIMEOUT, JWKS_CACHE_TTL, JWKS_REFETCH_INTERVAL, MAX_FETCH_REDIRECTS, MAX_FETCHED_BYTES, MAX_KEYS_PER_SET,
};

/// A key a token may be signed with.
pub(crate) struct VerificationKey {
    pub(crate) kid: Option<String>,
    pub(crate) algorithm: SigningAlgorithm,
    pub(crate) key: DecodingKey,
}

/// The usable keys of one key set: RSA keys for RS256 and P-256 keys for ES256, not marked for
/// encryption. Others (some providers publish several kinds) are skipped.
pub(crate) struct KeySet {
    keys: Vec<VerificationKey>,
}

impl KeySet {
    pub(crate) fn parse(json: &str) -> Result<KeySet, String> {
        if json.len() > MAX_FETCHED_BYTES {
            return Err(format!("the key set is {} bytes, over the limit of {MAX_FETCHED_BYTES}", json.len()));
        }
        let set: Json = serde_json::from_str(json).map_err(|error| format!("the key set is not JSON: {error}"))?;
        let Some(Json::Array(entries)) = set.get("keys") else {
            return Err("the key set has no `keys` array".to_owned());
        };
        if entries.len() > MAX_KEYS_PER_SET {
            return Err(format!("the key set has {} keys, over the limit of {MAX_KEYS_PER_SET}", entries.len()));
        }
        let keys: Vec<VerificationKey> = entries.iter().filter_map(usable_key).collect();
        if keys.is_empty() {
            return Err("the key set has no RS256 or ES256 signing key".to_owned());
        }
        Ok(KeySet { keys })
    }

    pub(crate) fn contains_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|key| key.kid.as_deref() == Some(kid))
    }

    /// The keys a token with this header may have been signed with: the one it names, or, when
    /// it names none, every key of its algorithm.
    pub(crate) fn candidates(
        &self,
        kid: Option<&str>,
        algorithm: SigningAlgorithm,
    ) -> impl Iterator<Item = &VerificationKey> {
        self.keys
            .iter()
            .filter(move |key| key.algorithm == algorithm && kid.is_none_or(|kid| key.kid.as_deref() == Some(kid)))
    }
}

fn usable_key(entry: &Json) -> Option<VerificationKey> {
    let jwk: Jwk = match serde_json::from_value(entry.clone()) {
        Ok(jwk) => jwk,
        Err(error) => {
            tracing::debug!(%error, "skipping a key the key set holds in an unknown shape");
            return None;
        }
    };
    if jwk.common.public_key_use.as_ref().is_some_and(|key_use| *key_use != PublicKeyUse::Signature) {
        return None;
    }
    let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => SigningAlgorithm::RS256,
        (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
            if ec.curve == EllipticCurve::P256 =>
        {
            SigningAlgorithm::ES256
        }
        _ => return None,
    };
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some(VerificationKey { kid: jwk.common.key_id, algorithm, key })
}

/// Where a provider's keys are fetched from.
pub(crate) enum KeyLocation {
    /// OpenID Connect: the discovery document at `<issuer>/.well-known/openid-configuration`
    /// names the key set's URL (`jwks_uri`).
    Discovery {
        issuer: String,
    },
    Jwks {
        url: String,
    },
}

/// A provider's fetched keys, shared by every verification. The lock is held across a fetch, so
/// that concurrent tokens wait for one fetch instead of each starting their own.
pub(crate) struct RemoteKeys {
    location: KeyLocation,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    fetched: Option<(Arc<KeySet>, Instant)>,
    /// No fetch a token forces (see [`JWKS_REFETCH_INTERVAL`]) before this.
    throttled_until: Option<Instant>,
    last_failure: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
enum Plan {
    UseCache,
    Fetch,
    /// A token names a key the cached set lacks: fetch, and throttle further such fetches.
    ForcedFetch,
}

impl Cache {
    fn plan(&self, kid: Option<&str>, now: Instant) -> Plan {
        let throttled = self.throttled_until.is_some_and(|until| now < until);
        match &self.fetched {
            _ if throttled => Plan::UseCache,
            None => Plan::Fetch,
            Some((_, fetched_at)) if now.duration_since(*fetched_at) >= JWKS_CACHE_TTL => Plan::Fetch,
            Some((keys, _)) if kid.is_some_and(|kid| !keys.contains_kid(kid)) => Plan::ForcedFetch,
            Some(_) => Plan::UseCache,
        }
    }
}

impl RemoteKeys {
    pub(crate) fn new(location: KeyLocation) -> RemoteKeys {
        RemoteKeys { location, cache: Mutex::new(Cache::default()) }
    }

    /// The provider's current keys, fetched first if none are cached, the cached ones are older
    /// than [`JWKS_CACHE_TTL`], or `kid` is not among them. A failed fetch leaves stale keys in use.
    pub(crate) async fn get(&self, http: &reqwest::Client, kid: Option<&str>) -> Result<Arc<KeySet>, String> {
        let mut cache = self.cache.lock().await;
        let now = Instant::now();
        let plan = cache.plan(kid, now);
        if plan != Plan::UseCache {
            if plan == Plan::ForcedFetch {
                cache.throttled_until = Some(now + JWKS_REFETCH_INTERVAL);
            }
            match self.fetch(http).await {
                Ok(keys) => {
                    cache.fetched = Some((Arc::new(keys), Instant::now()));
                    cache.last_failure = None;
                }
                Err(error) => {
                    tracing::warn!(%error, "fetching an auth provider's keys failed");
                    cache.throttled_until = Some(Instant::now() + JWKS_REFETCH_INTERVAL);
                    cache.last_failure = Some(error);
                }
            }
        }
        match (&cache.fetched, &cache.last_failure) {
            (Some((keys, _)), _) => Ok(Arc::clone(keys)),
            (None, Some(failure)) => Err(failure.clone()),
            (None, None) => unreachable!("a fetch either stores keys or a failure"),
        }
    }

    async fn fetch(&self, http: &reqwest::Client) -> Result<KeySet, String> {
        let jwks_url = match &self.location {
            KeyLocation::Jwks { url } => url.clone(),
            KeyLocation::Discovery { issuer } => {
                let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
                let discovery: Json = serde_json::from_slice(&fetch(http, &url).await?)
                    .map_err(|error| format!("{url} is not JSON: {error}"))?;
                let named_issuer = discovery.get("issuer").and_then(Json::as_str);
                if named_issuer.is_none_or(|named| !same_issuer(named, issuer)) {
                    return Err(format!("{url} names issuer {named_issuer:?}, not {issuer:?}"));
                }
                let jwks_uri = discovery.get("jwks_uri").and_then(Json::as_str);
                jwks_uri.ok_or_else(|| format!("{url} has no `jwks_uri`"))?.to_owned()
            }
        };
        let body = fetch(http, &jwks_url).await?;
        let json = std::str::from_utf8(&body).map_err(|_| format!("the key set at {jwks_url} is not UTF-8"))?;
        KeySet::parse(json).map_err(|error| format!("{jwks_url}: {error}"))
    }
}

/// Whether two issuer names are the same: exactly, or but for a trailing `/` (providers differ in
/// whether their `iss` ends with one, and configs copy it either way).
pub(crate) fn same_issuer(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// The HTTP client for issuers: bounded time and redirects.
pub(crate) fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(MAX_FETCH_REDIRECTS))
        .build()
}

/// GETs `url`, reading at most [`MAX_FETCHED_BYTES`] of it.
async fn fetch(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let failed = |error: reqwest::Error| format!("fetching {url} failed: {error}");
    let mut response = http.get(url).send().await.map_err(failed)?;
    if !response.status().is_success() {
        return Err(format!("fetching {url} failed: HTTP {}", response.status()));
    }
    let too_large = || format!("{url} is over the limit of {MAX_FETCHED_BYTES} bytes");
    if response.content_length().is_some_and(|length| length > MAX_FETCHED_BYTES as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(failed)? {
        if body.len() + chunk.len() > MAX_FETCHED_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::testing::{P256_KEY_1, RSA_KEY_1, RSA_KEY_2, jwks};

    fn cache_with(keys: KeySet, fetched_at: Instant) -> Cache {
        Cache { fetched: Some((Arc::new(keys), fetched_at)), ..Cache::default() }
    }

    #[test]
    fn cached_keys_are_refetched_once_the_ttl_is_over() {
        let start = Instant::now();
        let cache = cache_with(KeySet::parse(&jwks(&[&RSA_KEY_1]).to_string()).unwrap(), start);
        let kid = Some(RSA_KEY_1.kid);
        assert_eq!(cache.plan(kid, start + JWKS_CACHE_TTL - Duration::from_millis(1)), Plan::UseCache);
        assert_eq!(cache.plan(kid, start + JWKS_CACHE_TTL), Plan::Fetch);
        assert_eq!(Cache::default().plan(kid, start), Plan::Fetch);
    }

    #[test]
    fn unknown_key_ids_force_a_fetch_at_most_once_per_interval() {
        let start = Instant::now();
        let mut cache = cache_with(KeySet::parse(&jwks(&[&RSA_KEY_1]).to_string()).unwrap(), start);
        assert_eq!(cache.plan(Some(RSA_KEY_2.kid), start), Plan::ForcedFetch);
        cache.throttled_until = Some(start + JWKS_REFETCH_INTERVAL);
        let almost = start + JWKS_REFETCH_INTERVAL - Duration::from_millis(1);
        assert_eq!(cache.plan(Some(RSA_KEY_2.kid), almost), Plan::UseCache);
        assert_eq!(cache.plan(Some(RSA_KEY_2.kid), start + JWKS_REFETCH_INTERVAL), Plan::ForcedFetch);
        // A throttle after a failure also holds back the fetch of an empty cache.
        let failed = Cache { throttled_until: Some(start + JWKS_REFETCH_INTERVAL), ..Cache::default() };
        assert_eq!(failed.plan(None, almost), Plan::UseCache);
    }

    #[test]
    fn key_sets_keep_only_signing_keys_of_accepted_algorithms() {
        let mut set = jwks(&[&RSA_KEY_1, &P256_KEY_1]);
        let keys = set["keys"].as_array_mut().unwrap();
        let mut encryption = keys[0].clone();
        encryption["use"] = "enc".into();
        encryption["kid"] = "encryption".into();
        keys.push(encryption);
        keys.push(serde_json::json!({"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}));
        keys.push(serde_json::json!({"kty": "weird", "kid": "unknown"}));
        let set = KeySet::parse(&set.to_string()).unwrap();
        assert_eq!(
            set.candidates(None, SigningAlgorithm::RS256).map(|key| key.kid.as_deref()).collect::<Vec<_>>(),
            [Some(RSA_KEY_1.kid)]
        );
        assert_eq!(set.candidates(None, SigningAlgorithm::ES256).count(), 1);
        assert!(!set.contains_kid("encryption") && !set.contains_kid("hmac"));
    }

    #[test]
    fn key_sets_are_bounded() {
        let full = serde_json::json!({"keys": vec![jwks(&[&RSA_KEY_1])["keys"][0].clone(); MAX_KEYS_PER_SET]});
        assert!(KeySet::parse(&full.to_string()).is_ok());
        let over = serde_json::json!({"keys": vec![jwks(&[&RSA_KEY_1])["keys"][0].clone(); MAX_KEYS_PER_SET + 1]});
        assert_eq!(
            KeySet::parse(&over.to_string()).err().unwrap(),
            format!("the key set has {} keys, over the limit of {MAX_KEYS_PER_SET}", MAX_KEYS_PER_SET + 1)
        );
        let padded = format!("{}{}", " ".repeat(MAX_FETCHED_BYTES), r#"{"keys":[]}"#);
        assert!(KeySet::parse(&padded).err().unwrap().contains("over the limit"));
        assert_eq!(KeySet::parse(r#"{"keys":[]}"#).err().unwrap(), "the key set has no RS256 or ES256 signing key");
    }
}
