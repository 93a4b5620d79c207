//! Which issuers a deployment trusts, shaped like Convex's `auth.config.ts`:
//!
//! ```json
//! {
//!   "providers": [
//!     { "domain": "https://issuer.example.com", "applicationID": "my-app" },
//!     {
//!       "type": "customJwt",
//!       "issuer": "https://auth.example.com",
//!       "jwks": "https://auth.example.com/.well-known/jwks.json",
//!       "algorithm": "RS256",
//!       "applicationID": "my-app"
//!     }
//!   ]
//! }
//! ```
//!
//! A custom provider's `jwks` is a URL, a `data:` URI holding the key set (base64, as Convex's docs
//! build it), or the key set's JSON itself.

use std::fmt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::Value as Json;

/// The auth providers of a deployment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthConfig {
    pub providers: Vec<Provider>,
}

/// One issuer whose tokens are accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Provider {
    /// An OpenID Connect issuer: its keys are found through
    /// `<domain>/.well-known/openid-configuration`, and its tokens must name `application_id` in
    /// `aud`.
    Oidc { domain: String, application_id: String },
    /// Any issuer of signed JWTs, with its keys at a URL or given inline.
    CustomJwt { issuer: String, jwks: JwksSource, algorithm: SigningAlgorithm, application_id: Option<String> },
}

impl Provider {
    /// The `iss` its tokens carry.
    pub fn issuer(&self) -> &str {
        match self {
            Provider::Oidc { domain, .. } => domain,
            Provider::CustomJwt { issuer, .. } => issuer,
        }
    }

    /// The audience its tokens must name, if checked.
    pub fn application_id(&self) -> Option<&str> {
        match self {
            Provider::Oidc { application_id, .. } => Some(application_id),
            Provider::CustomJwt { application_id, .. } => application_id.as_deref(),
        }
    }
}

/// Where a custom provider's keys are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwksSource {
    /// Fetched over HTTP(S), cached, and fetched again when stale or when a token names an
    /// unknown key.
    Url(String),
    /// A key set's JSON (`{"keys": [...]}`), fixed for the life of the verifier.
    Inline(String),
}

impl JwksSource {
    /// Reads a config's `jwks` string: a `data:` URI becomes the key set it holds, anything else
    /// is a URL.
    pub fn parse(jwks: &str) -> Result<JwksSource, ConfigError> {
        let Some(data) = jwks.strip_prefix("data:") else {
            return Ok(JwksSource::Url(jwks.to_owned()));
        };
        let Some((media_type, payload)) = data.split_once(',') else {
            return Err(ConfigError::new("a `data:` URI for `jwks` needs a `,` before its data"));
        };
        if !media_type.ends_with(";base64") {
            return Err(ConfigError::new("a `data:` URI for `jwks` must be base64-encoded (`data:...;base64,...`)"));
        }
        let decoded = STANDARD
            .decode(payload)
            .map_err(|error| ConfigError::new(format!("the `data:` URI for `jwks` is not valid base64: {error}")))?;
        let json = String::from_utf8(decoded)
            .map_err(|_| ConfigError::new("the key set in the `data:` URI for `jwks` is not UTF-8"))?;
        Ok(JwksSource::Inline(json))
    }
}

/// The signature algorithms Convex accepts from custom providers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum SigningAlgorithm {
    RS256,
    ES256,
}

impl SigningAlgorithm {
    pub(crate) fn jwt_algorithm(self) -> jsonwebtoken::Algorithm {
        match self {
            SigningAlgorithm::RS256 => jsonwebtoken::Algorithm::RS256,
            SigningAlgorithm::ES256 => jsonwebtoken::Algorithm::ES256,
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<SigningAlgorithm> {
        match name {
            "RS256" => Some(SigningAlgorithm::RS256),
            "ES256" => Some(SigningAlgorithm::ES256),
            _ => None,
        }
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SigningAlgorithm::RS256 => "RS256",
            SigningAlgorithm::ES256 => "ES256",
        })
    }
}

/// Why an auth config was refused; says which provider and field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid auth config: {message}")]
pub struct ConfigError {
    message: String,
}

impl ConfigError {
    pub(crate) fn new(message: impl Into<String>) -> ConfigError {
        ConfigError { message: message.into() }
    }

    fn in_provider(index: usize, message: impl fmt::Display) -> ConfigError {
        ConfigError::new(format!("providers[{index}]: {message}"))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigJson {
    providers: Vec<ProviderJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderJson {
    #[serde(rename = "type")]
    provider_type: Option<String>,
    domain: Option<String>,
    #[serde(rename = "applicationID")]
    application_id: Option<String>,
    issuer: Option<String>,
    jwks: Option<Json>,
    algorithm: Option<String>,
}

impl AuthConfig {
    /// Reads a config file (see the module docs for its shape).
    pub fn load(path: &Path) -> Result<AuthConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| ConfigError::new(format!("cannot read {}: {error}", path.display())))?;
        AuthConfig::from_json(&text)
    }

    pub fn from_json(text: &str) -> Result<AuthConfig, ConfigError> {
        let config: ConfigJson = serde_json::from_str(text).map_err(|error| ConfigError::new(error.to_string()))?;
        let providers = config
            .providers
            .into_iter()
            .enumerate()
            .map(|(index, provider)| provider.parse().map_err(|message| ConfigError::in_provider(index, message)))
            .collect::<Result<_, _>>()?;
        Ok(AuthConfig { providers })
    }
}

impl ProviderJson {
    fn parse(self) -> Result<Provider, String> {
        let ProviderJson { provider_type, domain, application_id, issuer, jwks, algorithm } = self;
        match provider_type.as_deref() {
            None => {
                for (field, given) in [("issuer", issuer.is_some()), ("jwks", jwks.is_some())] {
                    if given {
                        return Err(format!(
                            "`{field}` is for `\"type\": \"customJwt\"` providers; OIDC ones have `domain`"
                        ));
                    }
                }
                if algorithm.is_some() {
                    return Err("`algorithm` is for `\"type\": \"customJwt\"` providers".to_owned());
                }
                let domain = domain.ok_or("an OIDC provider needs `domain`")?;
                let application_id = application_id.ok_or("an OIDC provider needs `applicationID`")?;
                Ok(Provider::Oidc { domain, application_id })
            }
            Some("customJwt") => {
                if domain.is_some() {
                    return Err("a customJwt provider has `issuer`, not `domain`".to_owned());
                }
                let issuer = issuer.ok_or("a customJwt provider needs `issuer`")?;
                let jwks = match jwks.ok_or("a customJwt provider needs `jwks`")? {
                    Json::String(jwks) => JwksSource::parse(&jwks).map_err(|error| error.message)?,
                    inline @ Json::Object(_) => JwksSource::Inline(inline.to_string()),
                    _ => return Err("`jwks` must be a URL, a `data:` URI or a key set object".to_owned()),
                };
                let algorithm = algorithm.ok_or("a customJwt provider needs `algorithm` (RS256 or ES256)")?;
                let algorithm = SigningAlgorithm::from_name(&algorithm)
                    .ok_or_else(|| format!("unsupported `algorithm` {algorithm:?}: use RS256 or ES256"))?;
                Ok(Provider::CustomJwt { issuer, jwks, algorithm, application_id })
            }
            Some(other) => {
                Err(format!("unknown provider `type` {other:?}: leave it out for OIDC, or use \"customJwt\""))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(config: Json) -> Result<AuthConfig, String> {
        AuthConfig::from_json(&config.to_string()).map_err(|error| error.to_string())
    }

    #[test]
    fn reads_convex_shaped_providers() {
        let keys = r#"{"keys":[]}"#;
        let data_uri = format!("data:text/plain;charset=utf-8;base64,{}", STANDARD.encode(keys));
        let config = parse(json!({"providers": [
            {"domain": "https://issuer.example.com", "applicationID": "app"},
            {"type": "customJwt", "issuer": "https://a.example.com", "jwks": "https://a.example.com/jwks.json", "algorithm": "RS256"},
            {"type": "customJwt", "issuer": "https://b.example.com", "jwks": data_uri, "algorithm": "ES256", "applicationID": "b"},
            {"type": "customJwt", "issuer": "https://c.example.com", "jwks": {"keys": []}, "algorithm": "ES256"},
        ]}))
        .unwrap();
        assert_eq!(
            config.providers,
            [
                Provider::Oidc { domain: "https://issuer.example.com".into(), application_id: "app".into() },
                Provider::CustomJwt {
                    issuer: "https://a.example.com".into(),
                    jwks: JwksSource::Url("https://a.example.com/jwks.json".into()),
                    algorithm: SigningAlgorithm::RS256,
                    application_id: None,
                },
                Provider::CustomJwt {
                    issuer: "https://b.example.com".into(),
                    jwks: JwksSource::Inline(keys.into()),
                    algorithm: SigningAlgorithm::ES256,
                    application_id: Some("b".into()),
                },
                Provider::CustomJwt {
                    issuer: "https://c.example.com".into(),
                    jwks: JwksSource::Inline(keys.into()),
                    algorithm: SigningAlgorithm::ES256,
                    application_id: None,
                },
            ]
        );
    }

    #[test]
    fn names_the_provider_and_field_at_fault() {
        let cases = [
            (json!({"providers": [{"domain": "https://x"}]}), "providers[0]: an OIDC provider needs `applicationID`"),
            (
                json!({"providers": [{"domain": "https://x", "applicationID": "a"}, {"type": "customJwt", "issuer": "https://y", "jwks": "https://y/k", "algorithm": "HS256"}]}),
                "providers[1]: unsupported `algorithm` \"HS256\": use RS256 or ES256",
            ),
            (
                json!({"providers": [{"type": "oidc", "domain": "https://x"}]}),
                "providers[0]: unknown provider `type` \"oidc\"",
            ),
            (
                json!({"providers": [{"type": "customJwt", "issuer": "https://y", "jwks": "data:application/json,{}", "algorithm": "RS256"}]}),
                "providers[0]: a `data:` URI for `jwks` must be base64-encoded",
            ),
            (json!({"providers": [{"domain": "https://x", "applicationId": "a"}]}), "unknown field `applicationId`"),
            (json!({"provider": []}), "unknown field `provider`"),
        ];
        for (config, expected) in cases {
            let error = parse(config).unwrap_err();
            assert!(error.contains(expected), "{error:?} should contain {expected:?}");
        }
    }
}
