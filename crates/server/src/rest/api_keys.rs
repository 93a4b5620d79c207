//! API keys for the HTTP list endpoints (seed 001's `Authorization: Bearer cc_live_...`).
//!
//! A key is `<prefix><selector><verifier>`: a configurable prefix (`cc_live_` by default), then 16
//! base64url characters of random selector and 43 of random verifier (12 and 32 bytes). A row of
//! the system table `_api_keys` holds the selector, the SHA-256 of the verifier, the key's name and
//! its optional rate limit; the key itself is shown once, at creation, and never stored.
//!
//! Checking a key looks its row up by selector, then compares digests of verifiers in constant
//! time: the index lookup's timing can only tell an attacker whether a selector exists, never
//! anything about a verifier. SHA-256 and not a slow password hash, because a verifier is 256
//! random bits: there is no dictionary to make guessing expensive against.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use livebase_query::{Query, QueryError};
use livebase_store::{
    BY_CREATION_TIME, CommitError, IndexSchema, KeyRange, Schema, Store, TableSchema, Transaction, TransactionError,
};
use livebase_value::{DocumentId, Object, Value};
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

/// The system table of API keys.
pub const API_KEYS_TABLE: &str = "_api_keys";
/// The prefix of new keys unless configured otherwise (seed 001).
pub const DEFAULT_API_KEY_PREFIX: &str = "cc_live_";
/// Characters of a configured prefix.
pub const MAX_API_KEY_PREFIX_LEN: usize = 32;
/// Keys a deployment may have at once.
pub const MAX_API_KEYS: usize = 1_000;
/// Characters of a key's name.
pub const MAX_API_KEY_NAME_LEN: usize = 64;
/// The highest rate limit a key may have, in requests per minute.
pub const MAX_RATE_LIMIT_PER_MINUTE: u64 = 1_000_000;

const SELECTOR_BYTES: usize = 12;
const VERIFIER_BYTES: usize = 32;
const SELECTOR_CHARS: usize = SELECTOR_BYTES / 3 * 4;
const VERIFIER_CHARS: usize = (VERIFIER_BYTES * 4).div_ceil(3);

const BY_SELECTOR: &str = "by_selector";
const SELECTOR: &str = "selector";
const VERIFIER_HASH: &str = "verifierHash";
const NAME: &str = "name";
const RATE_LIMIT: &str = "rateLimitPerMinute";

/// The system schema of `_api_keys`, applied when the server starts and before the CLI writes.
pub fn schema() -> Schema {
    let mut table = TableSchema::new(API_KEYS_TABLE);
    table.indexes.push(IndexSchema { name: BY_SELECTOR.to_owned(), fields: vec![SELECTOR.to_owned()] });
    Schema { tables: vec![table] }
}

/// Checks a configured prefix: 1 to `MAX_API_KEY_PREFIX_LEN` characters of `[A-Za-z0-9_]`, so a
/// key stays one token in a header and in a shell.
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    let valid = !prefix.is_empty()
        && prefix.len() <= MAX_API_KEY_PREFIX_LEN
        && prefix.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "Invalid API key prefix `{prefix}`: 1 to {MAX_API_KEY_PREFIX_LEN} characters of [A-Za-z0-9_] \
             (MAX_API_KEY_PREFIX_LEN)"
        ))
    }
}

/// What creating a key asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewApiKey {
    pub name: String,
    /// Requests per minute, from 1 to `MAX_RATE_LIMIT_PER_MINUTE`; `None`: unlimited.
    pub rate_limit_per_minute: Option<u64>,
}

impl NewApiKey {
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let name_chars = self.name.chars().count();
        if name_chars == 0 || name_chars > MAX_API_KEY_NAME_LEN || self.name.chars().any(char::is_control) {
            return Err((
                NAME,
                format!(
                    "An API key's `name` must be 1 to {MAX_API_KEY_NAME_LEN} characters without control characters \
                     (MAX_API_KEY_NAME_LEN), got {name_chars}"
                ),
            ));
        }
        if let Some(limit) = self.rate_limit_per_minute
            && !(1..=MAX_RATE_LIMIT_PER_MINUTE).contains(&limit)
        {
            return Err((
                RATE_LIMIT,
                format!("`{RATE_LIMIT}` must be from 1 to {MAX_RATE_LIMIT_PER_MINUTE} (MAX_RATE_LIMIT_PER_MINUTE)"),
            ));
        }
        Ok(())
    }
}

/// A key just created: its row's id and the key, which nobody can see again.
#[derive(Clone, Debug)]
pub struct CreatedApiKey {
    pub id: DocumentId,
    pub key: String,
}

/// A key that checked out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifiedKey {
    pub id: DocumentId,
    pub rate_limit_per_minute: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("{1}")]
    Invalid(&'static str, String),
    #[error("The deployment already has {MAX_API_KEYS} API keys (MAX_API_KEYS): revoke one first")]
    TooMany,
    #[error(transparent)]
    Commit(#[from] CommitError),
}

/// Creates a key named `new.name` with a fresh random secret.
pub async fn create(store: &Store, prefix: &str, new: &NewApiKey) -> Result<CreatedApiKey, ApiKeyError> {
    check_prefix(prefix).map_err(|problem| ApiKeyError::Invalid("prefix", problem))?;
    new.check().map_err(|(param, problem)| ApiKeyError::Invalid(param, problem))?;
    let mut selector = [0u8; SELECTOR_BYTES];
    let mut verifier = [0u8; VERIFIER_BYTES];
    rand::rng().fill_bytes(&mut selector);
    rand::rng().fill_bytes(&mut verifier);
    let selector = URL_SAFE_NO_PAD.encode(selector);
    let verifier_hash = Sha256::digest(verifier).to_vec();
    let mut fields = Object::from([
        (NAME.to_owned(), Value::from(new.name.as_str())),
        (SELECTOR.to_owned(), Value::from(selector.as_str())),
        (VERIFIER_HASH.to_owned(), Value::Bytes(verifier_hash)),
    ]);
    if let Some(limit) = new.rate_limit_per_minute {
        fields.insert(RATE_LIMIT.to_owned(), Value::Int64(limit as i64));
    }
    let (id, _) = store
        .transact(|tx| {
            if count(tx)? >= MAX_API_KEYS {
                return Ok(None);
            }
            tx.system_tables().insert(API_KEYS_TABLE, fields.clone()).map(Some)
        })
        .await?;
    let id = id.ok_or(ApiKeyError::TooMany)?;
    Ok(CreatedApiKey { id, key: format!("{prefix}{selector}{}", URL_SAFE_NO_PAD.encode(verifier)) })
}

/// Revokes a key by the id `create` returned; `Ok(false)` when there is no such key.
pub async fn revoke(store: &Store, id: &str) -> Result<bool, ApiKeyError> {
    let Ok(id) = DocumentId::decode(id) else {
        return Err(ApiKeyError::Invalid("id", format!("`{}` is not an API key id", shorten(id))));
    };
    let (revoked, _) = store
        .transact(|tx| {
            if tx.table_name(id.table()) != Some(API_KEYS_TABLE) || tx.get(id)?.is_none() {
                return Ok(false);
            }
            tx.system_tables().delete(id)?;
            Ok(true)
        })
        .await?;
    Ok(revoked)
}

/// Why a presented key was not accepted.
#[derive(Debug)]
pub enum Rejection {
    /// The key is malformed, unknown or revoked; the message says which, for the 401.
    Unauthorized(String),
    /// `_api_keys` could not be read: the server's failure, not the caller's.
    Failed(QueryError),
}

/// Checks a presented key (the part after `Bearer `).
pub fn verify(store: &Store, prefix: &str, presented: &str) -> Result<VerifiedKey, Rejection> {
    let malformed = || {
        Rejection::Unauthorized(format!(
            "Malformed API key: expected `{prefix}` followed by {} base64url characters",
            SELECTOR_CHARS + VERIFIER_CHARS
        ))
    };
    let rest = presented.strip_prefix(prefix).ok_or_else(malformed)?;
    if rest.len() != SELECTOR_CHARS + VERIFIER_CHARS {
        return Err(malformed());
    }
    let (selector, verifier) = rest.split_at(SELECTOR_CHARS);
    let verifier = URL_SAFE_NO_PAD.decode(verifier).map_err(|_| malformed())?;
    if URL_SAFE_NO_PAD.decode(selector).is_err() {
        return Err(malformed());
    }
    let unknown = || Rejection::Unauthorized("Unknown or revoked API key".to_owned());
    let row = lookup(&mut store.begin(), selector).map_err(Rejection::Failed)?.ok_or_else(unknown)?;
    let Some(Value::Bytes(stored)) = row.get(VERIFIER_HASH) else {
        panic!("`{API_KEYS_TABLE}` rows hold `{VERIFIER_HASH}: bytes`, not {row:?}");
    };
    if !bool::from(Sha256::digest(&verifier).as_slice().ct_eq(stored)) {
        return Err(unknown());
    }
    let rate_limit_per_minute = match row.get(RATE_LIMIT) {
        Some(Value::Int64(limit)) => Some(*limit as u64),
        _ => None,
    };
    Ok(VerifiedKey { id: row.id(), rate_limit_per_minute })
}

fn lookup(
    tx: &mut Transaction,
    selector: &str,
) -> Result<Option<std::sync::Arc<livebase_store::Document>>, QueryError> {
    Query::table(API_KEYS_TABLE).with_index(BY_SELECTOR, |range| range.eq(SELECTOR, selector)).first(tx)
}

fn count(tx: &mut Transaction) -> Result<usize, TransactionError> {
    tx.count(API_KEYS_TABLE, BY_CREATION_TIME, KeyRange::all())
}

fn shorten(text: &str) -> String {
    text.chars().take(64).collect()
}

/// Per-key rate limits by the generic cell rate algorithm: a key limited to `n` requests per
/// minute may burst `n`, then gets one more every `60 / n` seconds. Each key's state is one instant
/// (when its budget is next full), in integer time, so the answers are exact. At most one entry per
/// key (`MAX_API_KEYS`), dropped on revocation.
#[derive(Default)]
pub struct RateLimiter {
    full_at: Mutex<HashMap<DocumentId, Instant>>,
}

impl RateLimiter {
    /// Takes one request from `key`'s budget, or says in how many seconds the next one is allowed.
    pub fn acquire(&self, key: &VerifiedKey, now: Instant) -> Result<(), u64> {
        let Some(per_minute) = key.rate_limit_per_minute else { return Ok(()) };
        let per_minute = u32::try_from(per_minute).expect("rate limits are at most MAX_RATE_LIMIT_PER_MINUTE");
        let interval = Duration::from_secs(60) / per_minute;
        let burst = Duration::from_secs(60) - interval;
        let mut full_at = self.full_at.lock().unwrap_or_else(PoisonError::into_inner);
        if full_at.len() >= MAX_API_KEYS && !full_at.contains_key(&key.id) {
            // Entries of revoked keys linger only until here: a full budget is the same as none.
            full_at.retain(|_, full| *full > now);
        }
        let full = full_at.get(&key.id).copied().unwrap_or(now).max(now);
        let used = full - now;
        if used > burst {
            let wait = used - burst;
            return Err(wait.as_secs() + u64::from(wait.subsec_nanos() > 0));
        }
        full_at.insert(key.id, full + interval);
        Ok(())
    }

    pub fn forget(&self, id: DocumentId) {
        self.full_at.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_lengths_add_up() {
        assert_eq!(SELECTOR_CHARS, 16);
        assert_eq!(VERIFIER_CHARS, 43);
        assert_eq!(URL_SAFE_NO_PAD.encode([0u8; SELECTOR_BYTES]).len(), SELECTOR_CHARS);
        assert_eq!(URL_SAFE_NO_PAD.encode([0u8; VERIFIER_BYTES]).len(), VERIFIER_CHARS);
    }

    #[test]
    fn prefixes_are_short_tokens() {
        assert!(check_prefix(DEFAULT_API_KEY_PREFIX).is_ok());
        assert!(check_prefix(&"a".repeat(MAX_API_KEY_PREFIX_LEN)).is_ok());
        for bad in ["", "cc live", "cc-live", "ключ_", &"a".repeat(MAX_API_KEY_PREFIX_LEN + 1)] {
            assert!(check_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_and_rate_limits_are_bounded() {
        let new = |name: &str, limit| NewApiKey { name: name.to_owned(), rate_limit_per_minute: limit };
        assert!(new("ci", None).check().is_ok());
        assert!(new(&"é".repeat(MAX_API_KEY_NAME_LEN), Some(MAX_RATE_LIMIT_PER_MINUTE)).check().is_ok());
        assert_eq!(new("", None).check().unwrap_err().0, NAME);
        assert_eq!(new(&"x".repeat(MAX_API_KEY_NAME_LEN + 1), None).check().unwrap_err().0, NAME);
        assert_eq!(new("a\nb", None).check().unwrap_err().0, NAME);
        assert_eq!(new("ci", Some(0)).check().unwrap_err().0, RATE_LIMIT);
        assert_eq!(new("ci", Some(MAX_RATE_LIMIT_PER_MINUTE + 1)).check().unwrap_err().0, RATE_LIMIT);
    }

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let limiter = RateLimiter::default();
        let table = livebase_value::TableNumber::new(1).unwrap();
        let id = DocumentId::generate(table, &mut rand::rng(), 0);
        let key = VerifiedKey { id, rate_limit_per_minute: Some(2) };
        let start = Instant::now();
        assert_eq!(limiter.acquire(&key, start), Ok(()));
        assert_eq!(limiter.acquire(&key, start), Ok(()));
        assert_eq!(limiter.acquire(&key, start), Err(30), "one request every 30 s");
        assert_eq!(limiter.acquire(&key, start + Duration::from_secs(20)), Err(10));
        assert_eq!(limiter.acquire(&key, start + Duration::from_secs(30)), Ok(()));
        let unlimited = VerifiedKey { id, rate_limit_per_minute: None };
        assert_eq!(limiter.acquire(&unlimited, start), Ok(()));
        limiter.forget(id);
        assert_eq!(limiter.acquire(&key, start + Duration::from_secs(30)), Ok(()), "a fresh bucket is full");
    }
}
