//! Test support (feature `testing`): fixed signing keys and a local OpenID Connect issuer serving
//! its discovery document and key set over real HTTP. The keys are public in this repository:
//! never trust them outside tests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json as JsonBody;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Value as Json, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::SigningAlgorithm;

/// A private key with its key id.
pub struct TestKey {
    pub kid: &'static str,
    pub algorithm: SigningAlgorithm,
    pem: &'static str,
}

pub const RSA_KEY_1: TestKey =
    TestKey { kid: "rsa-1", algorithm: SigningAlgorithm::RS256, pem: include_str!("rsa1.pem") };
pub const RSA_KEY_2: TestKey =
    TestKey { kid: "rsa-2", algorithm: SigningAlgorithm::RS256, pem: include_str!("rsa2.pem") };
pub const P256_KEY_1: TestKey =
    TestKey { kid: "p256-1", algorithm: SigningAlgorithm::ES256, pem: include_str!("p256-1.pem") };
pub const P256_KEY_2: TestKey =
    TestKey { kid: "p256-2", algorithm: SigningAlgorithm::ES256, pem: include_str!("p256-2.pem") };

impl TestKey {
    fn encoding_key(&self) -> EncodingKey {
        match self.algorithm {
            SigningAlgorithm::RS256 => EncodingKey::from_rsa_pem(self.pem.as_bytes()),
            SigningAlgorithm::ES256 => EncodingKey::from_ec_pem(self.pem.as_bytes()),
        }
        .expect("the test keys are valid PEM")
    }

    /// The public key as a JWK, with its `kid`, `alg` and `use`.
    pub fn jwk(&self) -> Json {
        let mut jwk = Jwk::from_encoding_key(&self.encoding_key(), self.algorithm.jwt_algorithm())
            .expect("the test keys have public halves");
        jwk.common.key_id = Some(self.kid.to_owned());
        let mut jwk = serde_json::to_value(jwk).expect("a JWK serializes");
        jwk["use"] = "sig".into();
        jwk
    }

    /// A token with `claims`, signed with this key and naming it in `kid`.
    pub fn sign(&self, claims: &Json) -> String {
        self.sign_with_header(claims, Some(self.kid))
    }

    /// A token whose header names `kid` (or none) whatever key signed it.
    pub fn sign_with_header(&self, claims: &Json, kid: Option<&str>) -> String {
        let mut header = Header::new(self.algorithm.jwt_algorithm());
        header.kid = kid.map(str::to_owned);
        encode(&header, claims, &self.encoding_key()).expect("test claims encode")
    }
}

/// A key set (`{"keys": [...]}`) of the keys' public halves.
pub fn jwks(keys: &[&TestKey]) -> Json {
    json!({ "keys": keys.iter().map(|key| key.jwk()).collect::<Vec<_>>() })
}

/// Seconds since the epoch, as JWTs count time.
pub fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("the clock is past 1970").as_secs() as i64
}

/// An OpenID Connect issuer on a free loopback port: serves
/// `/.well-known/openid-configuration` and the key set it names, which tests can replace.
pub struct TestIssuer {
    url: String,
    state: Arc<IssuerState>,
    serving: JoinHandle<()>,
}

struct IssuerState {
    url: String,
    jwks: Mutex<Json>,
    jwks_fetches: AtomicUsize,
}

impl TestIssuer {
    pub async fn start(keys: &[&TestKey]) -> TestIssuer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free loopback port");
        let url = format!("http://{}", listener.local_addr().expect("a bound address"));
        let state =
            Arc::new(IssuerState { url: url.clone(), jwks: Mutex::new(jwks(keys)), jwks_fetches: AtomicUsize::new(0) });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks.json", get(key_set))
            .with_state(Arc::clone(&state));
        let serving = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("the test issuer serves");
        });
        TestIssuer { url, state, serving }
    }

    /// The issuer's URL, its tokens' `iss`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn jwks_url(&self) -> String {
        format!("{}/jwks.json", self.url)
    }

    /// Replaces the published keys (a key rotation).
    pub fn publish(&self, keys: &[&TestKey]) {
        *self.state.jwks.lock().unwrap_or_else(PoisonError::into_inner) = jwks(keys);
    }

    /// How many times the key set was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Claims of a valid token for `subject`, good for an hour.
    pub fn claims(&self, subject: &str, audience: &str) -> Json {
        let now = now_secs();
        json!({"iss": self.url, "sub": subject, "aud": audience, "iat": now, "exp": now + 3_600})
    }
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

async fn discovery(State(state): State<Arc<IssuerState>>) -> JsonBody<Json> {
    JsonBody(json!({"issuer": state.url, "jwks_uri": format!("{}/jwks.json", state.url)}))
}

async fn key_set(State(state): State<Arc<IssuerState>>) -> JsonBody<Json> {
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    JsonBody(state.jwks.lock().unwrap_or_else(PoisonError::into_inner).clone())
}
