//! Outgoing HTTP from actions (`fetch` in Convex's actions): the only way a function reaches the
//! network, so queries and mutations stay deterministic. Every request is bounded in time and in the
//! bytes it sends and receives (`limits.rs`), since an action's memory and duration are the server's.

use std::time::Duration;

use reqwest::Client;
use reqwest::header::{HeaderName, HeaderValue};

use crate::error::FunctionError;
use crate::limits::{MAX_FETCH_DURATION, MAX_FETCH_REDIRECTS, MAX_FETCH_REQUEST_BYTES, MAX_FETCH_RESPONSE_BYTES};

/// An HTTP request an action sends.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn get(url: impl Into<String>) -> HttpRequest {
        HttpRequest { method: "GET".to_owned(), url: url.into(), headers: Vec::new(), body: Vec::new() }
    }

    pub fn post(url: impl Into<String>, body: impl Into<Vec<u8>>) -> HttpRequest {
        HttpRequest { method: "POST".to_owned(), url: url.into(), headers: Vec::new(), body: body.into() }
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> HttpRequest {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// The answer to an [`HttpRequest`], read whole.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names in lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(found, _)| found.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value, FunctionError> {
        serde_json::from_slice(&self.body)
            .map_err(|error| FunctionError::failed(format!("The response body is not JSON: {error}")))
    }
}

/// The client every action of a runtime shares (one connection pool).
pub(crate) fn client() -> Client {
    Client::builder()
        .timeout(MAX_FETCH_DURATION)
        .connect_timeout(MAX_FETCH_DURATION.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::limited(MAX_FETCH_REDIRECTS))
        .build()
        .expect("a client without custom TLS settings always builds")
}

pub(crate) async fn fetch(client: &Client, request: HttpRequest) -> Result<HttpResponse, FunctionError> {
    let failed = |why: String| FunctionError::failed(format!("fetch {} {}: {why}", request.method, request.url));
    if request.body.len() > MAX_FETCH_REQUEST_BYTES {
        return Err(failed(format!(
            "the body has {} bytes, more than the {MAX_FETCH_REQUEST_BYTES} allowed (MAX_FETCH_REQUEST_BYTES)",
            request.body.len()
        )));
    }
    let method =
        reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|_| failed("not an HTTP method".to_owned()))?;
    let url = reqwest::Url::parse(&request.url).map_err(|error| failed(format!("bad URL: {error}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(failed("only http and https URLs can be fetched".to_owned()));
    }
    let mut builder = client.request(method, url);
    for (name, value) in &request.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| failed(format!("bad header name `{name}`")))?;
        let value = HeaderValue::from_str(value).map_err(|_| failed(format!("bad value for header `{name}`")))?;
        builder = builder.header(name, value);
    }
    let mut response = builder.body(request.body.clone()).send().await.map_err(|error| failed(describe(&error)))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    let too_large = || {
        failed(format!(
            "the response is larger than the {MAX_FETCH_RESPONSE_BYTES} bytes allowed (MAX_FETCH_RESPONSE_BYTES)"
        ))
    };
    if response.content_length().is_some_and(|length| length > MAX_FETCH_RESPONSE_BYTES as u64) {
        return Err(too_large());
    }
    // Read in chunks: a missing or lying Content-Length must not make us buffer without bound.
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|error| failed(describe(&error)))? {
        if body.len() + chunk.len() > MAX_FETCH_RESPONSE_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(HttpResponse { status, headers, body })
}

fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        format!("no complete answer within {MAX_FETCH_DURATION:?} (MAX_FETCH_DURATION)")
    } else if error.is_redirect() {
        format!("more than {MAX_FETCH_REDIRECTS} redirects (MAX_FETCH_REDIRECTS)")
    } else {
        // reqwest's top-level message is generic ("error sending request"): the cause says what happened.
        let mut message = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            message = format!("{message}: {cause}");
            source = cause.source();
        }
        message
    }
}
