//! Sign-in for a demo: `POST /auth/dev {"name"}` signs the caller in as that user (created on first
//! use) and answers `{"token", "userId"}`, a JWT the deployment's own custom JWT provider accepts.
//!
//! The signing key is an ES256 key kept in the deployment as an environment variable, created on
//! first start, so tokens stay valid across restarts and the key lives wherever the data does. Anyone
//! can sign in as anyone: this is for demos, not for production apps, which configure a real
//! identity provider instead.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use livebase_auth::{JwksSource, Provider, SigningAlgorithm};
use livebase_functions::{
    FunctionError, HttpMethod, HttpRequest, HttpResponse, HttpRoute, Registry, RegistryError, Runtime,
};
use livebase_value::{Object, Value};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use serde_json::json;

/// The environment variable holding the signing key (PKCS#8 PEM).
pub const DEV_AUTH_KEY_VAR: &str = "PIANO_MIRROR_DEV_AUTH_KEY";
/// The `iss` of the tokens `/auth/dev` signs.
pub const DEV_AUTH_ISSUER: &str = "https://piano-mirror.invalid/dev-auth";
/// The `aud` of the tokens `/auth/dev` signs, checked by the provider.
pub const DEV_AUTH_AUDIENCE: &str = "piano-mirror";
/// How long a signed token is accepted.
pub const DEV_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3_600);
/// Bytes of a sign-in request's body.
pub const MAX_SIGN_IN_BODY_BYTES: usize = 1_024;

const KEY_ID: &str = "piano-mirror-dev-1";

/// The key `/auth/dev` signs with.
#[derive(Clone)]
pub struct DevSigner {
    encoding_key: EncodingKey,
    public_jwk: serde_json::Value,
}

impl DevSigner {
    /// The deployment's signing key, created and stored on first use.
    pub async fn load_or_create(runtime: &Runtime) -> Result<DevSigner, FunctionError> {
        if let Some(pem) = runtime.get_env(DEV_AUTH_KEY_VAR)? {
            return DevSigner::from_pem(&pem);
        }
        let pem = generate_pem();
        runtime.set_env(DEV_AUTH_KEY_VAR, &pem).await?;
        DevSigner::from_pem(&pem)
    }

    fn from_pem(pem: &str) -> Result<DevSigner, FunctionError> {
        let invalid = |why: String| FunctionError::failed(format!("`{DEV_AUTH_KEY_VAR}` is not an ES256 key: {why}"));
        p256::SecretKey::from_pkcs8_pem(pem).map_err(|error| invalid(error.to_string()))?;
        let encoding_key = EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|error| invalid(error.to_string()))?;
        let mut jwk =
            Jwk::from_encoding_key(&encoding_key, Algorithm::ES256).map_err(|error| invalid(error.to_string()))?;
        jwk.common.key_id = Some(KEY_ID.to_owned());
        let public_jwk = serde_json::to_value(jwk).expect("a JWK serializes");
        Ok(DevSigner { encoding_key, public_jwk })
    }

    /// The auth provider accepting this signer's tokens.
    pub fn provider(&self) -> Provider {
        Provider::CustomJwt {
            issuer: DEV_AUTH_ISSUER.to_owned(),
            jwks: JwksSource::Inline(json!({ "keys": [self.public_jwk] }).to_string()),
            algorithm: SigningAlgorithm::ES256,
            application_id: Some(DEV_AUTH_AUDIENCE.to_owned()),
        }
    }

    /// A token for user `user_id` called `name`.
    pub fn sign(&self, user_id: &str, name: &str) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("the clock is after 1970").as_secs();
        let claims = json!({
            "iss": DEV_AUTH_ISSUER,
            "aud": DEV_AUTH_AUDIENCE,
            "sub": user_id,
            "name": name,
            "iat": now,
            "exp": now + DEV_TOKEN_LIFETIME.as_secs(),
        });
        let header = Header { kid: Some(KEY_ID.to_owned()), ..Header::new(Algorithm::ES256) };
        jsonwebtoken::encode(&header, &claims, &self.encoding_key).expect("an ES256 key signs any claims")
    }

    /// Registers `POST /auth/dev`.
    pub fn register_route(&self, registry: &mut Registry) -> Result<(), RegistryError> {
        let signer = self.clone();
        registry.route(HttpRoute::exact(HttpMethod::Post, "/auth/dev", move |ctx, request| {
            let signer = signer.clone();
            async move {
                let name = match sign_in_name(&request) {
                    Ok(name) => name,
                    Err(message) => return Ok(json_response(400, &json!({ "code": "INVALID", "message": message }))),
                };
                let args = Object::from([("name".to_owned(), Value::String(name.clone()))]);
                let user_id = match ctx.run_mutation("users:signIn", args).await {
                    Ok(Value::String(user_id)) => user_id,
                    Ok(other) => return Err(FunctionError::internal(format!("users:signIn returned {other}"))),
                    Err(FunctionError::User { message, data }) => {
                        return Ok(json_response(
                            400,
                            &json!({ "code": "INVALID", "message": message, "data": data.to_string() }),
                        ));
                    }
                    Err(error) => return Err(error),
                };
                let token = signer.sign(&user_id, &name);
                Ok(json_response(200, &json!({ "token": token, "userId": user_id })))
            }
        }))?;
        Ok(())
    }
}

fn generate_pem() -> String {
    // A uniformly random 32-byte string is a valid P-256 scalar except with negligible probability;
    // draw again in that case.
    loop {
        let bytes: [u8; 32] = rand::random();
        if let Ok(key) = p256::SecretKey::from_slice(&bytes) {
            return key.to_pkcs8_pem(LineEnding::LF).expect("a P-256 key encodes as PKCS#8").to_string();
        }
    }
}

fn sign_in_name(request: &HttpRequest) -> Result<String, String> {
    if request.body.len() > MAX_SIGN_IN_BODY_BYTES {
        return Err(format!("The body is over {MAX_SIGN_IN_BODY_BYTES} bytes (MAX_SIGN_IN_BODY_BYTES)"));
    }
    let body: serde_json::Value =
        serde_json::from_slice(&request.body).map_err(|_| "The body must be JSON: {\"name\": string}".to_owned())?;
    match body.get("name") {
        Some(serde_json::Value::String(name)) => Ok(name.clone()),
        _ => Err("`name` is required and must be a string".to_owned()),
    }
}

fn json_response(status: u16, body: &serde_json::Value) -> HttpResponse {
    HttpResponse::new(status).with_header("content-type", "application/json").with_body(body.to_string())
}
