//! The demo's web page, served by the binary on the site port: `GET /` answers `index.html` with the
//! API's URL written into its `<meta name="livebase-api">`, `GET /app.js` the bundled page.
//!
//! `demo/web/build.sh` builds both into `demo/web/dist`, which is committed and embedded here, so
//! `cargo run -p piano-mirror` needs no npm; a test of `demo/tests/web.rs` fails while it is stale.

use std::fmt;

use livebase_functions::{HttpMethod, HttpResponse, HttpRoute, Registry, RegistryError};

const INDEX_HTML: &str = include_str!("../web/dist/index.html");
const APP_JS: &str = include_str!("../web/dist/app.js");
/// What `index.html` holds where the API's URL goes.
const API_URL_PLACEHOLDER: &str = "{{LIVEBASE_API_URL}}";
/// Neither file's name changes with its content, so browsers must revalidate before reusing them.
const CACHE_CONTROL: &str = "no-cache";
/// Bytes of an API URL: far more than any real one needs.
pub const MAX_API_URL_BYTES: usize = 2_048;

/// The page, with the API URL it connects to.
#[derive(Debug)]
pub struct Site {
    index_html: String,
}

/// An API URL the page cannot be given.
pub struct InvalidApiUrl {
    url: String,
    why: String,
}

impl fmt::Display for InvalidApiUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "The API URL {:?} is invalid: {}", self.url, self.why)
    }
}

// `main` returning the error prints its `Debug`: make that the message.
impl fmt::Debug for InvalidApiUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for InvalidApiUrl {}

impl Site {
    /// The page connecting to the Livebase API at `api_url` (`http://host:port`).
    pub fn new(api_url: &str) -> Result<Site, InvalidApiUrl> {
        let invalid = |why: &str| Err(InvalidApiUrl { url: api_url.to_owned(), why: why.to_owned() });
        if api_url.len() > MAX_API_URL_BYTES {
            return invalid(&format!("it is over {MAX_API_URL_BYTES} bytes (MAX_API_URL_BYTES)"));
        }
        if !(api_url.starts_with("http://") || api_url.starts_with("https://")) {
            return invalid("it must start with http:// or https://");
        }
        // The URL goes into an HTML attribute as is: refusing what would need escaping keeps it verbatim.
        if api_url.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '<' | '>' | '&')) {
            return invalid("it must not contain whitespace, quotes, `<`, `>` or `&`");
        }
        assert_eq!(INDEX_HTML.matches(API_URL_PLACEHOLDER).count(), 1, "index.html has one API URL placeholder");
        Ok(Site { index_html: INDEX_HTML.replace(API_URL_PLACEHOLDER, api_url) })
    }

    /// `index.html` as served.
    pub fn index_html(&self) -> &str {
        &self.index_html
    }

    /// Registers `GET /` and `GET /app.js` (and so `HEAD`).
    pub fn register_routes(&self, registry: &mut Registry) -> Result<(), RegistryError> {
        let index_html = self.index_html.clone();
        registry.route(HttpRoute::exact(HttpMethod::Get, "/", move |_, _| {
            let response = file_response("text/html; charset=utf-8", index_html.as_bytes());
            async move { Ok(response) }
        }))?;
        registry.route(HttpRoute::exact(HttpMethod::Get, "/app.js", |_, _| async {
            Ok(file_response("text/javascript; charset=utf-8", APP_JS.as_bytes()))
        }))?;
        Ok(())
    }
}

fn file_response(content_type: &str, body: &[u8]) -> HttpResponse {
    HttpResponse::new(200)
        .with_header("content-type", content_type)
        .with_header("cache-control", CACHE_CONTROL)
        .with_body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_url_is_written_into_the_page() {
        let site = Site::new("http://127.0.0.1:3210").unwrap();
        assert!(site.index_html().contains(r#"<meta name="livebase-api" content="http://127.0.0.1:3210">"#));
        assert!(!site.index_html().contains(API_URL_PLACEHOLDER));
    }

    #[test]
    fn api_urls_that_would_need_escaping_or_are_not_http_are_refused() {
        for url in ["127.0.0.1:3210", "ftp://host", "http://host\"><script>", "http://a b", "http://h/?a=1&b=2"] {
            assert!(Site::new(url).is_err(), "{url} is accepted");
        }
        let longest = format!("https://{}", "h".repeat(MAX_API_URL_BYTES - "https://".len()));
        assert!(Site::new(&longest).is_ok());
        assert!(Site::new(&format!("{longest}h")).unwrap_err().to_string().contains("MAX_API_URL_BYTES"));
    }
}
