//! TURN credentials for `signaling:turnConfig`: which provider the deployment's environment variables
//! configure, the request that mints credentials (Cloudflare Realtime's TURN API), and the ICE servers
//! in its response. Without a provider, browsers get a public STUN server only, which connects most
//! peers but not those behind symmetric NATs.

use livebase_functions::{FunctionError, HttpRequest};
use livebase_value::{Object, Value};
use serde::Deserialize;

use crate::limits::{MAX_ICE_SERVERS, MAX_TURN_RESPONSE_BYTES, TURN_CREDENTIAL_TTL};

/// The provider's key id (the `<TOKEN_ID>` of its URL).
pub const TURN_TOKEN_ID_VAR: &str = "CLOUDFLARE_TURN_TOKEN_ID";
/// The provider's API token, sent as a bearer token.
pub const TURN_API_TOKEN_VAR: &str = "CLOUDFLARE_TURN_API_TOKEN";
/// Overrides the provider's base URL (tests point it at a local fake).
pub const TURN_PROVIDER_URL_VAR: &str = "TURN_PROVIDER_URL";
pub const DEFAULT_TURN_PROVIDER_URL: &str = "https://rtc.live.cloudflare.com";
/// The STUN server of the fallback.
pub const FALLBACK_STUN_URL: &str = "stun:stun.l.google.com:19302";

/// A TURN provider configured by environment variables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TurnProvider {
    token_id: String,
    api_token: String,
    base_url: String,
}

impl TurnProvider {
    /// The provider `env` configures: `None` unless both the token id and the API token are set (and
    /// not empty). `env` reads one variable.
    pub fn from_env(
        mut env: impl FnMut(&str) -> Result<Option<String>, FunctionError>,
    ) -> Result<Option<TurnProvider>, FunctionError> {
        let mut set = |name| Ok::<_, FunctionError>(env(name)?.filter(|value: &String| !value.trim().is_empty()));
        let (Some(token_id), Some(api_token)) = (set(TURN_TOKEN_ID_VAR)?, set(TURN_API_TOKEN_VAR)?) else {
            return Ok(None);
        };
        let base_url = set(TURN_PROVIDER_URL_VAR)?.unwrap_or_else(|| DEFAULT_TURN_PROVIDER_URL.to_owned());
        Ok(Some(TurnProvider {
            token_id: token_id.trim().to_owned(),
            api_token: api_token.trim().to_owned(),
            base_url: base_url.trim().trim_end_matches('/').to_owned(),
        }))
    }

    /// Cloudflare's `POST /v1/turn/keys/<TOKEN_ID>/credentials/generate` with `{"ttl": seconds}`.
    /// Fails when the token id would not stay one segment of the URL's path.
    pub fn request(&self) -> Result<HttpRequest, String> {
        let safe = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if !self.token_id.chars().all(safe) {
            return Err(format!("{TURN_TOKEN_ID_VAR} may hold only letters, digits, `-` and `_`"));
        }
        let url = format!("{}/v1/turn/keys/{}/credentials/generate", self.base_url, self.token_id);
        let body = serde_json::json!({ "ttl": TURN_CREDENTIAL_TTL.as_secs() }).to_string();
        Ok(HttpRequest::post(url, body)
            .header("Authorization", format!("Bearer {}", self.api_token))
            .header("Content-Type", "application/json"))
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProviderResponse {
    ice_servers: OneOrMany<IceServer>,
}

#[derive(Deserialize)]
struct IceServer {
    urls: OneOrMany<String>,
    username: Option<String>,
    credential: Option<String>,
}

/// `{iceServers: [...]}` (the shape of `RTCConfiguration`) from the provider's response body: one ICE
/// server or a list of them (Cloudflare's `generate` and `generate-ice-servers` answers), each with
/// `urls` (one or many), `username` and `credential`.
pub fn ice_servers_from_response(body: &[u8]) -> Result<Value, String> {
    if body.len() > MAX_TURN_RESPONSE_BYTES {
        return Err(format!(
            "the TURN provider's response has {} bytes, more than the {MAX_TURN_RESPONSE_BYTES} accepted",
            body.len()
        ));
    }
    let response: ProviderResponse = serde_json::from_slice(body)
        .map_err(|error| format!("the TURN provider's response is not `{{\"iceServers\": ...}}`: {error}"))?;
    let servers = response.ice_servers.into_vec();
    if servers.is_empty() || servers.len() > MAX_ICE_SERVERS {
        return Err(format!("the TURN provider returned {} ICE servers, not 1 to {MAX_ICE_SERVERS}", servers.len()));
    }
    let mut ice_servers = Vec::with_capacity(servers.len());
    for server in servers {
        let urls = server.urls.into_vec();
        let known = |url: &String| ["stun:", "turn:", "turns:"].iter().any(|scheme| url.starts_with(scheme));
        if urls.is_empty() || !urls.iter().all(known) {
            return Err(format!(
                "the TURN provider returned an ICE server with URLs {urls:?}, not stun:/turn:/turns: ones"
            ));
        }
        let mut fields =
            Object::from([("urls".to_owned(), Value::Array(urls.into_iter().map(Value::String).collect()))]);
        fields.extend(server.username.map(|username| ("username".to_owned(), Value::String(username))));
        fields.extend(server.credential.map(|credential| ("credential".to_owned(), Value::String(credential))));
        ice_servers.push(Value::Object(fields));
    }
    Ok(ice_config(ice_servers))
}

/// `{iceServers: [{urls: [FALLBACK_STUN_URL]}]}`.
pub fn stun_only() -> Value {
    let stun = Object::from([("urls".to_owned(), Value::Array(vec![Value::from(FALLBACK_STUN_URL)]))]);
    ice_config(vec![Value::Object(stun)])
}

fn ice_config(servers: Vec<Value>) -> Value {
    Value::Object(Object::from([("iceServers".to_owned(), Value::Array(servers))]))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn provider(variables: &[(&str, &str)]) -> Option<TurnProvider> {
        let variables: HashMap<_, _> = variables.iter().copied().collect();
        TurnProvider::from_env(|name| Ok(variables.get(name).map(|value| (*value).to_owned()))).unwrap()
    }

    #[test]
    fn a_provider_needs_both_its_token_id_and_its_api_token() {
        assert_eq!(provider(&[]), None);
        assert_eq!(provider(&[(TURN_TOKEN_ID_VAR, "key")]), None);
        assert_eq!(provider(&[(TURN_API_TOKEN_VAR, "secret")]), None);
        assert_eq!(provider(&[(TURN_TOKEN_ID_VAR, " "), (TURN_API_TOKEN_VAR, "secret")]), None);
        let cloudflare = provider(&[(TURN_TOKEN_ID_VAR, "key-1"), (TURN_API_TOKEN_VAR, "secret")]).unwrap();
        let request = cloudflare.request().unwrap();
        assert_eq!(request.method, "POST");
        assert_eq!(request.url, "https://rtc.live.cloudflare.com/v1/turn/keys/key-1/credentials/generate");
        assert!(request.headers.contains(&("Authorization".to_owned(), "Bearer secret".to_owned())));
        assert_eq!(request.body, br#"{"ttl":86400}"#);
    }

    #[test]
    fn the_base_url_is_overridable_and_the_token_id_stays_one_path_segment() {
        let overridden = [
            (TURN_TOKEN_ID_VAR, "key"),
            (TURN_API_TOKEN_VAR, "secret"),
            (TURN_PROVIDER_URL_VAR, "http://127.0.0.1:9/"),
        ];
        let request = provider(&overridden).unwrap().request().unwrap();
        assert_eq!(request.url, "http://127.0.0.1:9/v1/turn/keys/key/credentials/generate");
        let escaping = provider(&[(TURN_TOKEN_ID_VAR, "../admin"), (TURN_API_TOKEN_VAR, "secret")]).unwrap();
        assert!(escaping.request().unwrap_err().contains(TURN_TOKEN_ID_VAR));
    }

    #[test]
    fn one_ice_server_or_many_become_a_list() {
        let one = br#"{"iceServers": {"urls": ["stun:stun.cloudflare.com:3478", "turn:turn.cloudflare.com:3478?transport=udp"], "username": "u", "credential": "c"}}"#;
        let parsed =
            serde_json::to_string(&livebase_value::to_plain_json(&ice_servers_from_response(one).unwrap())).unwrap();
        assert_eq!(
            parsed,
            r#"{"iceServers":[{"credential":"c","urls":["stun:stun.cloudflare.com:3478","turn:turn.cloudflare.com:3478?transport=udp"],"username":"u"}]}"#
        );
        let many =
            br#"{"iceServers": [{"urls": "stun:a"}, {"urls": ["turns:b"], "username": "u", "credential": "c"}]}"#;
        let Value::Object(config) = ice_servers_from_response(many).unwrap() else { panic!("an object") };
        assert!(matches!(&config["iceServers"], Value::Array(servers) if servers.len() == 2));
    }

    #[test]
    fn malformed_responses_are_refused_with_a_reason() {
        let refused = |body: &[u8]| ice_servers_from_response(body).unwrap_err();
        assert!(refused(b"not json").contains("is not `{\"iceServers\": ...}`"));
        assert!(refused(br#"{"iceServers": []}"#).contains("returned 0 ICE servers"));
        assert!(refused(br#"{"iceServers": {"urls": ["http://x"]}}"#).contains("not stun:/turn:/turns: ones"));
        assert!(refused(br#"{"iceServers": {"urls": []}}"#).contains("not stun:/turn:/turns: ones"));
        let too_many =
            format!(r#"{{"iceServers": [{}]}}"#, vec![r#"{"urls": "stun:a"}"#; MAX_ICE_SERVERS + 1].join(","));
        assert!(refused(too_many.as_bytes()).contains(&format!("returned {} ICE servers", MAX_ICE_SERVERS + 1)));
        let at_limit = format!(r#"{{"iceServers": [{}]}}"#, vec![r#"{"urls": "stun:a"}"#; MAX_ICE_SERVERS].join(","));
        assert!(ice_servers_from_response(at_limit.as_bytes()).is_ok());
        let padded = format!(r#"{{"iceServers": {{"urls": "stun:a"}}}}{}"#, " ".repeat(MAX_TURN_RESPONSE_BYTES));
        assert!(refused(padded.as_bytes()).contains("more than the"));
    }
}
