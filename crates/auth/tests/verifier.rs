//! The verifier against real tokens, signed with real keys, whose key sets are served over HTTP
//! by a local OpenID Connect issuer.

use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use livebase_auth::limits::{CLOCK_LEEWAY, MAX_PROVIDERS, MAX_TOKEN_BYTES};
use livebase_auth::testing::{P256_KEY_1, P256_KEY_2, RSA_KEY_1, RSA_KEY_2, TestIssuer, jwks, now_secs};
use livebase_auth::{AuthConfig, AuthError, JwksSource, Provider, SigningAlgorithm, Verifier};
use livebase_value::Value;
use serde_json::{Value as Json, json};

const APP: &str = "livebase-tests";

fn oidc(issuer: &TestIssuer) -> Verifier {
    let provider = Provider::Oidc { domain: issuer.url().to_owned(), application_id: APP.to_owned() };
    Verifier::new(AuthConfig { providers: vec![provider] }).unwrap()
}

fn custom(issuer: &str, jwks: JwksSource, algorithm: SigningAlgorithm, application_id: Option<&str>) -> Provider {
    Provider::CustomJwt {
        issuer: issuer.to_owned(),
        jwks,
        algorithm,
        application_id: application_id.map(str::to_owned),
    }
}

fn leeway() -> i64 {
    CLOCK_LEEWAY.as_secs() as i64
}

#[tokio::test]
async fn a_valid_oidc_token_gives_the_identity_with_convex_claim_names() {
    let issuer = TestIssuer::start(&[&RSA_KEY_1]).await;
    let mut claims = issuer.claims("user-1", APP);
    claims["given_name"] = "Ada".into();
    claims["email_verified"] = true.into();
    claims["org"] = json!({"role": "admin"});
    claims["jti"] = "token-id".into();
    let identity = oidc(&issuer).verify(&RSA_KEY_1.sign(&claims)).await.unwrap();
    assert_eq!(identity.subject, "user-1");
    assert_eq!(identity.issuer, issuer.url());
    assert_eq!(identity.token_identifier, format!("{}|user-1", issuer.url()));
    assert_eq!(
        identity.claims,
        [
            ("givenName".to_owned(), Value::from("Ada")),
            ("emailVerified".to_owned(), Value::Boolean(true)),
            ("org".to_owned(), Value::Object([("role".to_owned(), Value::from("admin"))].into())),
        ]
        .into()
    );
}

#[tokio::test]
async fn keys_are_fetched_once_and_refetched_when_a_token_names_a_new_key() {
    let issuer = TestIssuer::start(&[&RSA_KEY_1]).await;
    let verifier = oidc(&issuer);
    let claims = issuer.claims("user-1", APP);
    verifier.verify(&RSA_KEY_1.sign(&claims)).await.unwrap();
    verifier.verify(&RSA_KEY_1.sign(&claims)).await.unwrap();
    assert_eq!(issuer.jwks_fetches(), 1, "the second token uses the cached keys");

    // The issuer rotates in a new key; the first token naming it makes the verifier refetch.
    issuer.publish(&[&RSA_KEY_1, &RSA_KEY_2]);
    verifier.verify(&RSA_KEY_2.sign(&claims)).await.unwrap();
    assert_eq!(issuer.jwks_fetches(), 2);

    // Another unknown key right after is not worth another fetch.
    let unknown = RSA_KEY_2.sign_with_header(&claims, Some("rsa-3"));
    let error = verifier.verify(&unknown).await.unwrap_err();
    assert_eq!(
        error,
        AuthError::UnknownKey {
            issuer: issuer.url().to_owned(),
            kid: Some("rsa-3".to_owned()),
            algorithm: SigningAlgorithm::RS256
        }
    );
    assert_eq!(error.to_string(), format!("issuer {:?} has no RS256 key \"rsa-3\"", issuer.url()));
    assert_eq!(issuer.jwks_fetches(), 2);
}

#[tokio::test]
async fn custom_providers_take_es256_keys_from_a_url_or_inline() {
    let issuer = TestIssuer::start(&[&P256_KEY_1]).await;
    let data_uri =
        format!("data:text/plain;charset=utf-8;base64,{}", STANDARD.encode(jwks(&[&P256_KEY_2]).to_string()));
    let config = AuthConfig::from_json(
        &json!({"providers": [
            {"type": "customJwt", "issuer": "https://inline.example.com", "jwks": data_uri, "algorithm": "ES256"},
            {"type": "customJwt", "issuer": issuer.url(), "jwks": issuer.jwks_url(), "algorithm": "ES256", "applicationID": APP},
        ]})
        .to_string(),
    )
    .unwrap();
    let verifier = Verifier::new(config).unwrap();

    let fetched = verifier.verify(&P256_KEY_1.sign(&issuer.claims("user-1", APP))).await.unwrap();
    assert_eq!(fetched.token_identifier, format!("{}|user-1", issuer.url()));

    // Without an application ID any audience (or none) is accepted.
    let now = now_secs();
    let inline_claims = json!({"iss": "https://inline.example.com", "sub": "user-2", "exp": now + 60, "aud": "other"});
    let inline = verifier.verify(&P256_KEY_2.sign(&inline_claims)).await.unwrap();
    assert_eq!(inline.token_identifier, "https://inline.example.com|user-2");

    // A token without a `kid` is tried against the keys of its algorithm.
    let no_kid = P256_KEY_2.sign_with_header(&inline_claims, None);
    assert_eq!(verifier.verify(&no_kid).await.unwrap().subject, "user-2");

    // A custom provider takes only its configured algorithm.
    let rsa = RSA_KEY_1.sign(&inline_claims);
    assert_eq!(
        verifier.verify(&rsa).await.unwrap_err().to_string(),
        "issuer \"https://inline.example.com\" signs with ES256, but the token is signed with RS256"
    );
}

#[tokio::test]
async fn time_claims_are_checked_with_a_small_leeway() {
    let issuer = TestIssuer::start(&[&RSA_KEY_1]).await;
    let verifier = oidc(&issuer);
    let with = |changes: Json| {
        let mut claims = issuer.claims("user-1", APP);
        for (name, value) in changes.as_object().unwrap() {
            claims[name] = value.clone();
        }
        RSA_KEY_1.sign(&claims)
    };
    let now = now_secs();
    let half = leeway() / 2;

    let expired = verifier.verify(&with(json!({"exp": now - leeway() - half}))).await.unwrap_err();
    assert_eq!((expired.clone(), expired.to_string()), (AuthError::Expired, "token expired".to_owned()));
    assert!(verifier.verify(&with(json!({"exp": now - half}))).await.is_ok(), "expired within the leeway");

    let early = verifier.verify(&with(json!({"nbf": now + leeway() + half}))).await;
    assert_eq!(early.unwrap_err(), AuthError::NotYetValid);
    assert!(verifier.verify(&with(json!({"nbf": now + half}))).await.is_ok(), "valid soon, within the leeway");

    let future = verifier.verify(&with(json!({"iat": now + leeway() + half}))).await;
    assert_eq!(future.unwrap_err(), AuthError::IssuedInTheFuture);
    assert!(verifier.verify(&with(json!({"iat": now + half}))).await.is_ok());

    // A connection acting on the token learns until when it may.
    let verified = verifier.verify_token(&with(json!({"exp": now + 600}))).await.unwrap();
    assert_eq!(verified.expires_at, UNIX_EPOCH + Duration::from_secs(now as u64 + 600) + CLOCK_LEEWAY);

    let mut no_exp = issuer.claims("user-1", APP);
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_eq!(verifier.verify(&RSA_KEY_1.sign(&no_exp)).await.unwrap_err(), AuthError::InvalidClaim("exp".into()));
}

#[tokio::test]
async fn wrong_issuers_audiences_and_signatures_are_rejected() {
    let issuer = TestIssuer::start(&[&RSA_KEY_1]).await;
    let verifier = oidc(&issuer);
    let claims = issuer.claims("user-1", APP);

    let mut elsewhere = claims.clone();
    elsewhere["iss"] = "https://evil.example.com".into();
    let error = verifier.verify(&RSA_KEY_1.sign(&elsewhere)).await.unwrap_err();
    assert_eq!(error.to_string(), "no auth provider for issuer \"https://evil.example.com\"");

    let other_app = verifier.verify(&RSA_KEY_1.sign(&issuer.claims("user-1", "other-app"))).await.unwrap_err();
    assert_eq!(
        other_app.to_string(),
        format!("the token's audience (`aud`) does not include the application ID {APP:?}")
    );
    let mut no_audience = claims.clone();
    no_audience.as_object_mut().unwrap().remove("aud");
    assert_eq!(
        verifier.verify(&RSA_KEY_1.sign(&no_audience)).await.unwrap_err(),
        AuthError::InvalidClaim("aud".into())
    );

    // Signed by a key the issuer does not publish, claiming one it does.
    let forged = RSA_KEY_2.sign_with_header(&claims, Some(RSA_KEY_1.kid));
    assert_eq!(verifier.verify(&forged).await.unwrap_err(), AuthError::BadSignature);

    // A genuine token whose claims were changed after signing.
    let genuine = RSA_KEY_1.sign(&claims);
    let parts: Vec<&str> = genuine.split('.').collect();
    let mut changed = claims.clone();
    changed["sub"] = "admin".into();
    let tampered = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(changed.to_string()), parts[2]);
    assert_eq!(verifier.verify(&tampered).await.unwrap_err(), AuthError::BadSignature);
    assert_eq!(issuer.jwks_fetches(), 1, "bad tokens naming a known key cause no refetch");
}

#[tokio::test]
async fn providers_sharing_an_issuer_each_accept_their_application() {
    let issuer = TestIssuer::start(&[&RSA_KEY_1]).await;
    let provider = |application_id: &str| Provider::Oidc {
        // With and without the trailing `/` some providers put in `iss`.
        domain: format!("{}/", issuer.url()),
        application_id: application_id.to_owned(),
    };
    let verifier = Verifier::new(AuthConfig { providers: vec![provider("web"), provider("mobile")] }).unwrap();
    for application_id in ["web", "mobile"] {
        let identity = verifier.verify(&RSA_KEY_1.sign(&issuer.claims("user-1", application_id))).await.unwrap();
        assert_eq!(identity.issuer, issuer.url());
    }
    let error = verifier.verify(&RSA_KEY_1.sign(&issuer.claims("user-1", "desktop"))).await.unwrap_err();
    assert_eq!(error, AuthError::WrongAudience("web".into()), "the first provider's refusal is reported");
}

#[tokio::test]
async fn unsigned_and_symmetric_tokens_are_rejected() {
    let issuer = TestIssuer::start(&[&RSA_KEY_1]).await;
    let verifier = oidc(&issuer);
    let claims = issuer.claims("user-1", APP).to_string();
    let unsigned =
        format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#), URL_SAFE_NO_PAD.encode(&claims));
    let error = verifier.verify(&unsigned).await.unwrap_err();
    assert_eq!(error.to_string(), "tokens signed with \"none\" are not accepted: use RS256 or ES256");

    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &issuer.claims("user-1", APP),
        &jsonwebtoken::EncodingKey::from_secret(b"the public key, used as an HMAC secret"),
    )
    .unwrap();
    assert_eq!(verifier.verify(&hs256).await.unwrap_err(), AuthError::UnsupportedAlgorithm("HS256".into()));
    assert_eq!(issuer.jwks_fetches(), 0, "rejected before any key is needed");
}

#[tokio::test]
async fn malformed_and_oversized_tokens_get_clear_errors() {
    let verifier = Verifier::new(AuthConfig::default()).unwrap();
    for (token, expected) in [
        ("", "the token is not a JWT: it must have three `.`-separated parts"),
        ("a.b", "the token is not a JWT: it must have three `.`-separated parts"),
        ("a.b.c.d", "the token is not a JWT: it must have three `.`-separated parts"),
        ("!!.e30.sig", "the token is not a JWT: its header is not base64url"),
        ("bm90IGpzb24.e30.sig", "the token is not a JWT: its header is not a JSON object"),
        ("e30.e30.sig", "the token is not a JWT: its header has no `alg`"),
        ("eyJhbGciOiJSUzI1NiJ9.e30.sig", "the token's `iss` claim is missing or malformed"),
    ] {
        let error = verifier.verify(token).await.unwrap_err().to_string();
        assert!(error.starts_with(expected), "{token:?}: {error:?} should start with {expected:?}");
    }
    let at_limit = "x".repeat(MAX_TOKEN_BYTES);
    assert!(matches!(verifier.verify(&at_limit).await, Err(AuthError::Malformed(_))));
    let over = "x".repeat(MAX_TOKEN_BYTES + 1);
    let error = verifier.verify(&over).await.unwrap_err();
    assert_eq!(error, AuthError::TokenTooLarge { len: MAX_TOKEN_BYTES + 1 });
    assert_eq!(
        error.to_string(),
        format!("the token is {} bytes, over the limit of {MAX_TOKEN_BYTES}", MAX_TOKEN_BYTES + 1)
    );
}

#[tokio::test]
async fn an_unreachable_issuer_makes_its_keys_unavailable() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let provider = Provider::Oidc { domain: url.clone(), application_id: APP.to_owned() };
    let verifier = Verifier::new(AuthConfig { providers: vec![provider] }).unwrap();
    let now = now_secs();
    let token = RSA_KEY_1.sign(&json!({"iss": url, "sub": "user-1", "aud": APP, "exp": now + 60}));
    let error = verifier.verify(&token).await.unwrap_err().to_string();
    let expected =
        format!("the keys of issuer {url:?} are unavailable: fetching {url}/.well-known/openid-configuration failed");
    assert!(error.starts_with(&expected), "{error}");
}

#[test]
fn configs_are_checked_when_the_verifier_is_built() {
    let error = |providers: Vec<Provider>| Verifier::new(AuthConfig { providers }).err().map(|error| error.to_string());
    let oidc = |domain: &str| Provider::Oidc { domain: domain.to_owned(), application_id: APP.to_owned() };
    assert_eq!(
        error(vec![oidc("issuer.example.com")]).unwrap(),
        "invalid auth config: providers[0]: `issuer` \"issuer.example.com\" is not a URL: relative URL without a base"
    );
    assert!(error(vec![oidc("ftp://issuer.example.com")]).unwrap().contains("must be an https (or http) URL"));
    let bad_inline = custom("https://a.example.com", JwksSource::Inline("{}".into()), SigningAlgorithm::RS256, None);
    assert_eq!(
        error(vec![bad_inline]).unwrap(),
        "invalid auth config: providers[0]: `jwks`: the key set has no `keys` array"
    );
    assert_eq!(error(vec![oidc("https://issuer.example.com"); MAX_PROVIDERS]), None);
    assert_eq!(
        error(vec![oidc("https://issuer.example.com"); MAX_PROVIDERS + 1]).unwrap(),
        format!("invalid auth config: {} providers, over the limit of {MAX_PROVIDERS}", MAX_PROVIDERS + 1)
    );
}
