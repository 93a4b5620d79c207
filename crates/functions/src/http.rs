//! HTTP actions: routes an app defines (Convex's `httpRouter`), each a method and an exact path or a
//! path prefix, whose handler gets the request and an [`ActionCtx`] and returns a response.
//!
//! Matching follows Convex: `HEAD` is routed as `GET`; an exact path wins over any prefix; among
//! prefixes the longest wins; no match (including a path matched only for another method) is a 404.
//! Paths are matched as they appear in the URL, not percent-decoded, like `new URL(url).pathname`.
//! This module knows nothing of sockets: the server turns HTTP requests into [`HttpRequest`]s.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::context::ActionCtx;
use crate::error::{FunctionError, RegistryError};
use crate::fetch::{HttpRequest, HttpResponse};
use crate::limits::MAX_HTTP_ROUTES;

/// The methods a route can be defined for (Convex's `ROUTABLE_HTTP_METHODS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HttpMethod {
    Get,
    Post,
    Put,
    Delete,
    Options,
    Patch,
}

impl HttpMethod {
    /// The method a request with `method` is routed as: `HEAD` as `GET` (the server drops the
    /// body), other methods, lowercase ones included, not at all.
    pub fn route_of(method: &str) -> Option<HttpMethod> {
        Some(match method {
            "GET" | "HEAD" => HttpMethod::Get,
            "POST" => HttpMethod::Post,
            "PUT" => HttpMethod::Put,
            "DELETE" => HttpMethod::Delete,
            "OPTIONS" => HttpMethod::Options,
            "PATCH" => HttpMethod::Patch,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Options => "OPTIONS",
            HttpMethod::Patch => "PATCH",
        }
    }
}

impl fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What routes see of a request (the type is `fetch`'s: one shape for HTTP either way, as the Fetch
/// API's `Request` is in Convex). `url` is the full URL, `http://host/path?query`, its path the one
/// the app's routes see (without the API port's `/http` prefix); `method` is as sent (`HEAD` stays
/// `HEAD`); header names are lowercase.
impl HttpRequest {
    /// The URL's path, without query or fragment: what routes match.
    pub fn path(&self) -> &str {
        let after_scheme = self.url.split_once("://").map_or(self.url.as_str(), |(_, rest)| rest);
        let path = after_scheme.find('/').map_or("/", |start| &after_scheme[start..]);
        path.split(['?', '#']).next().expect("split yields at least one piece")
    }

    /// The first value of header `name` (any case).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(found, _)| found.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    /// The body as UTF-8 text (`request.text()`).
    pub fn text(&self) -> Result<&str, FunctionError> {
        std::str::from_utf8(&self.body)
            .map_err(|error| FunctionError::failed(format!("The request body is not UTF-8 text: {error}")))
    }
}

/// Building what an HTTP action answers.
impl HttpResponse {
    /// An empty response with `status`.
    pub fn new(status: u16) -> HttpResponse {
        HttpResponse { status, headers: Vec::new(), body: Vec::new() }
    }

    /// A `text/plain` response.
    pub fn text(status: u16, text: impl Into<String>) -> HttpResponse {
        HttpResponse::new(status).with_header("content-type", "text/plain; charset=utf-8").with_body(text.into())
    }

    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> HttpResponse {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn with_body(self, body: impl Into<Vec<u8>>) -> HttpResponse {
        HttpResponse { body: body.into(), ..self }
    }
}

/// What an HTTP action's handler returns: its work, run as a task of its own.
pub type HttpActionFuture = Pin<Box<dyn Future<Output = Result<HttpResponse, FunctionError>> + Send>>;

pub(crate) type HttpHandler = Arc<dyn Fn(ActionCtx, HttpRequest) -> HttpActionFuture + Send + Sync>;

/// Where a route applies.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RoutePath {
    /// Exactly this path (`path: "/messages"`).
    Exact(String),
    /// Every path starting with this one, which ends with `/` (`pathPrefix: "/files/"`).
    Prefix(String),
}

impl RoutePath {
    /// The path or the prefix.
    pub fn as_str(&self) -> &str {
        match self {
            RoutePath::Exact(path) | RoutePath::Prefix(path) => path,
        }
    }
}

impl fmt::Display for RoutePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoutePath::Exact(path) => f.write_str(path),
            RoutePath::Prefix(prefix) => write!(f, "{prefix}*"),
        }
    }
}

/// A route, ready to register with [`crate::Registry::route`].
pub struct HttpRoute {
    pub(crate) method: HttpMethod,
    pub(crate) path: RoutePath,
    pub(crate) handler: HttpHandler,
}

impl HttpRoute {
    /// A route for `method` on exactly `path`.
    pub fn exact<F, Fut>(method: HttpMethod, path: &str, handler: F) -> HttpRoute
    where
        F: Fn(ActionCtx, HttpRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<HttpResponse, FunctionError>> + Send + 'static,
    {
        HttpRoute::new(method, RoutePath::Exact(path.to_owned()), handler)
    }

    /// A route for `method` on every path starting with `prefix`, which must end with `/`.
    pub fn prefix<F, Fut>(method: HttpMethod, prefix: &str, handler: F) -> HttpRoute
    where
        F: Fn(ActionCtx, HttpRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<HttpResponse, FunctionError>> + Send + 'static,
    {
        HttpRoute::new(method, RoutePath::Prefix(prefix.to_owned()), handler)
    }

    fn new<F, Fut>(method: HttpMethod, path: RoutePath, handler: F) -> HttpRoute
    where
        F: Fn(ActionCtx, HttpRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<HttpResponse, FunctionError>> + Send + 'static,
    {
        let handler: HttpHandler = Arc::new(move |ctx, request| Box::pin(handler(ctx, request)));
        HttpRoute { method, path, handler }
    }

    /// The name a route goes by in logs and errors: `GET /messages`, `POST /files/*`.
    pub(crate) fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// An app's routes.
#[derive(Default)]
pub(crate) struct HttpRouter {
    exact: BTreeMap<(String, HttpMethod), HttpRoute>,
    /// Per method, longest prefix first, so the first match is the longest.
    prefixes: BTreeMap<HttpMethod, Vec<HttpRoute>>,
    len: usize,
}

impl HttpRouter {
    pub(crate) fn add(&mut self, route: HttpRoute) -> Result<(), RegistryError> {
        let invalid = |why: &str| Err(RegistryError::InvalidRoute { route: route.name(), why: why.to_owned() });
        let path = route.path.as_str();
        if !path.starts_with('/') {
            return invalid("the path does not start with `/`");
        }
        if path == "/.files" || path.starts_with("/.files/") {
            return invalid("paths under `/.files/` are reserved");
        }
        if self.len == MAX_HTTP_ROUTES {
            return Err(RegistryError::TooManyRoutes(route.name()));
        }
        match &route.path {
            RoutePath::Exact(path) => {
                let key = (path.clone(), route.method);
                if self.exact.contains_key(&key) {
                    return Err(RegistryError::DuplicateRoute(route.name()));
                }
                self.exact.insert(key, route);
            }
            RoutePath::Prefix(prefix) => {
                if !prefix.ends_with('/') {
                    return invalid("a path prefix must end with `/`");
                }
                let routes = self.prefixes.entry(route.method).or_default();
                if routes.iter().any(|existing| existing.path == route.path) {
                    return Err(RegistryError::DuplicateRoute(route.name()));
                }
                let at = routes.partition_point(|existing| existing.path.as_str().len() >= prefix.len());
                routes.insert(at, route);
            }
        }
        self.len += 1;
        assert!(self.len <= MAX_HTTP_ROUTES);
        Ok(())
    }

    /// The route a request for `path` with `method` goes to, if any.
    pub(crate) fn lookup(&self, method: &str, path: &str) -> Option<&HttpRoute> {
        let method = HttpMethod::route_of(method)?;
        if let Some(route) = self.exact.get(&(path.to_owned(), method)) {
            return Some(route);
        }
        let prefixes = self.prefixes.get(&method)?;
        prefixes.iter().find(|route| matches!(&route.path, RoutePath::Prefix(prefix) if path.starts_with(prefix)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(url: &str) -> HttpRequest {
        HttpRequest { method: "GET".to_owned(), url: url.to_owned(), headers: Vec::new(), body: Vec::new() }
    }

    fn route(method: HttpMethod, path: RoutePath) -> HttpRoute {
        HttpRoute::new(method, path, |_, _| async { Ok(HttpResponse::new(200)) })
    }

    fn matched(router: &HttpRouter, method: &str, path: &str) -> Option<String> {
        router.lookup(method, path).map(HttpRoute::name)
    }

    #[test]
    fn the_path_is_the_url_without_query_or_fragment() {
        assert_eq!(request("http://localhost:3211/a/b?x=1#top").path(), "/a/b");
        assert_eq!(request("http://localhost:3211").path(), "/");
        assert_eq!(request("http://localhost:3211/?x=/y").path(), "/");
        assert_eq!(request("https://h/%20a").path(), "/%20a");
    }

    #[test]
    fn exact_paths_win_then_the_longest_prefix() {
        let mut router = HttpRouter::default();
        router.add(route(HttpMethod::Get, RoutePath::Prefix("/files/".into()))).unwrap();
        router.add(route(HttpMethod::Get, RoutePath::Prefix("/files/images/".into()))).unwrap();
        router.add(route(HttpMethod::Get, RoutePath::Prefix("/".into()))).unwrap();
        router.add(route(HttpMethod::Get, RoutePath::Exact("/files/images/logo".into()))).unwrap();
        router.add(route(HttpMethod::Post, RoutePath::Exact("/upload".into()))).unwrap();
        assert_eq!(matched(&router, "GET", "/files/images/logo").as_deref(), Some("GET /files/images/logo"));
        assert_eq!(matched(&router, "GET", "/files/images/icon").as_deref(), Some("GET /files/images/*"));
        assert_eq!(matched(&router, "GET", "/files/doc").as_deref(), Some("GET /files/*"));
        assert_eq!(matched(&router, "GET", "/files").as_deref(), Some("GET /*"), "`/files/` does not match `/files`");
        assert_eq!(matched(&router, "HEAD", "/files/doc").as_deref(), Some("GET /files/*"));
        assert_eq!(matched(&router, "POST", "/upload").as_deref(), Some("POST /upload"));
        assert_eq!(matched(&router, "POST", "/upload/more"), None);
        assert_eq!(matched(&router, "PUT", "/upload"), None, "a path routed for another method only");
        assert_eq!(matched(&router, "get", "/files/doc"), None, "methods are case-sensitive");
        assert_eq!(matched(&router, "TRACE", "/files/doc"), None);
    }

    #[test]
    fn bad_and_duplicate_routes_are_refused() {
        let mut router = HttpRouter::default();
        let refused = |router: &mut HttpRouter, method, path| router.add(route(method, path)).unwrap_err().to_string();
        assert!(refused(&mut router, HttpMethod::Get, RoutePath::Exact("relative".into())).contains("start with `/`"));
        assert!(refused(&mut router, HttpMethod::Get, RoutePath::Prefix("/no-slash".into())).contains("end with `/`"));
        assert!(refused(&mut router, HttpMethod::Get, RoutePath::Exact("/.files/x".into())).contains("reserved"));
        router.add(route(HttpMethod::Get, RoutePath::Exact("/a".into()))).unwrap();
        router.add(route(HttpMethod::Post, RoutePath::Exact("/a".into()))).unwrap();
        router.add(route(HttpMethod::Get, RoutePath::Prefix("/a/".into()))).unwrap();
        let duplicate = refused(&mut router, HttpMethod::Get, RoutePath::Exact("/a".into()));
        assert!(duplicate.contains("`GET /a` is registered twice"), "{duplicate}");
        let duplicate = refused(&mut router, HttpMethod::Get, RoutePath::Prefix("/a/".into()));
        assert!(duplicate.contains("`GET /a/*` is registered twice"), "{duplicate}");
    }

    #[test]
    fn routes_are_bounded() {
        let mut router = HttpRouter::default();
        for n in 0..MAX_HTTP_ROUTES {
            router.add(route(HttpMethod::Get, RoutePath::Exact(format!("/{n}")))).unwrap();
        }
        let error = router.add(route(HttpMethod::Get, RoutePath::Exact("/one-more".into()))).unwrap_err();
        assert!(error.to_string().contains("MAX_HTTP_ROUTES"), "{error}");
    }
}
