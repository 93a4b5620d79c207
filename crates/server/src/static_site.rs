//! A built web page served from a directory on the site port, beside the app's HTTP routes
//! (`livebase dev --site-dir DIR`): what `npx convex dev` leaves to a separate dev server, in the one
//! process, so a page and the deployment it talks to start together.
//!
//! The files are read once, at start, into memory, and each is a `GET` route of the site port
//! ([`StaticSite::router`], merged before the fallback serving the app's HTTP routes): a file wins over
//! an app route of the same path, and the app's routes (and its reloads) are left alone. `GET /` and
//! `GET /dir/` answer the directory's `index.html`. In HTML files, [`API_URL_PLACEHOLDER`] is replaced
//! by the API's URL, so a page built once finds the deployment serving it.

use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::routing::get;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Files a site directory may hold.
pub const MAX_SITE_FILES: usize = 1_024;
/// Bytes of all of a site directory's files together (they are held in memory).
pub const MAX_SITE_BYTES: u64 = 32 << 20;
/// What HTML files hold where the API's URL goes.
pub const API_URL_PLACEHOLDER: &str = "{{LIVEBASE_API_URL}}";
/// The files' names don't change with their content: browsers must revalidate before reusing them.
const CACHE_CONTROL: &str = "no-cache";

/// Why a site directory can't be served.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error("Can't read the site directory's `{path}`: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("The site directory `{0}` has more than {MAX_SITE_FILES} files (MAX_SITE_FILES)")]
    TooManyFiles(PathBuf),
    #[error("The site directory `{0}` holds more than {MAX_SITE_BYTES} bytes (MAX_SITE_BYTES)")]
    TooLarge(PathBuf),
    #[error("The site directory's file `{0}` has a name that is not UTF-8")]
    NotUtf8(PathBuf),
    #[error("The site directory's file `{0}` can't be served: names are letters, digits, `.`, `_`, `-` and `~`")]
    UnservableName(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SiteError {
    let path = path.to_owned();
    move |source| SiteError::Io { path, source }
}

/// A site directory's files by URL path (`/index.html`), with their content types.
#[derive(Debug)]
pub struct StaticSite {
    files: HashMap<String, (&'static str, Bytes)>,
}

impl StaticSite {
    /// Reads the files under `dir` (hidden ones excepted), writing `api_url` into HTML files.
    pub fn load(dir: &Path, api_url: &str) -> Result<StaticSite, SiteError> {
        let mut site = StaticSite { files: HashMap::new() };
        let mut bytes = 0;
        site.read_dir(dir, dir, api_url, &mut bytes)?;
        Ok(site)
    }

    fn read_dir(&mut self, top: &Path, dir: &Path, api_url: &str, bytes: &mut u64) -> Result<(), SiteError> {
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let path = entry.map_err(io(dir))?.path();
            let name =
                path.file_name().and_then(|name| name.to_str()).ok_or_else(|| SiteError::NotUtf8(path.clone()))?;
            if name.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                self.read_dir(top, &path, api_url, bytes)?;
                continue;
            }
            if self.files.len() == MAX_SITE_FILES {
                return Err(SiteError::TooManyFiles(top.to_owned()));
            }
            *bytes += std::fs::metadata(&path).map_err(io(&path))?.len();
            if *bytes > MAX_SITE_BYTES {
                return Err(SiteError::TooLarge(top.to_owned()));
            }
            let relative = path.strip_prefix(top).expect("the walk stays under the top directory");
            let url_path = relative.to_str().ok_or_else(|| SiteError::NotUtf8(path.clone()))?;
            // What a URL carries as is, and what the router takes literally (not `{param}` or `*`).
            let servable = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '~' | '/');
            if !url_path.chars().all(servable) {
                return Err(SiteError::UnservableName(path.clone()));
            }
            let content_type = content_type(name);
            let mut content = std::fs::read(&path).map_err(io(&path))?;
            if content_type.starts_with("text/html")
                && let Ok(html) = std::str::from_utf8(&content)
            {
                content = html.replace(API_URL_PLACEHOLDER, api_url).into_bytes();
            }
            self.files.insert(format!("/{url_path}"), (content_type, content.into()));
        }
        Ok(())
    }

    /// A `GET` (and so `HEAD`) route per file, and per directory holding an `index.html`.
    pub fn router(self) -> Router {
        let mut router = Router::new();
        for (path, (content_type, content)) in self.files {
            let serve = move || {
                let content = content.clone();
                async move {
                    let headers = [(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, CACHE_CONTROL)];
                    (headers, content)
                }
            };
            if let Some(directory) = path.strip_suffix("index.html") {
                router = router.route(directory, get(serve.clone()));
            }
            router = router.route(&path, get(serve));
        }
        router
    }
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, extension)| extension.to_ascii_lowercase()).as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("ico") => "image/x-icon",
        Some("wasm") => "application/wasm",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, content: &[u8]) {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    #[test]
    fn files_are_keyed_by_url_path_and_html_gets_the_api_url() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "index.html", format!(r#"<meta content="{API_URL_PLACEHOLDER}">"#).as_bytes());
        write(dir.path(), "app.js", format!("const url = '{API_URL_PLACEHOLDER}';").as_bytes());
        write(dir.path(), "docs/index.html", b"docs");
        write(dir.path(), ".hidden", b"secret");
        let site = StaticSite::load(dir.path(), "http://127.0.0.1:3210").unwrap();
        let mut paths: Vec<&str> = site.files.keys().map(String::as_str).collect();
        paths.sort();
        assert_eq!(paths, ["/app.js", "/docs/index.html", "/index.html"]);
        let (content_type, index) = &site.files["/index.html"];
        assert_eq!(*content_type, "text/html; charset=utf-8");
        assert_eq!(&index[..], br#"<meta content="http://127.0.0.1:3210">"#);
        let (content_type, script) = &site.files["/app.js"];
        assert_eq!(*content_type, "text/javascript; charset=utf-8");
        assert!(script.ends_with(format!("'{API_URL_PLACEHOLDER}';").as_bytes()), "only HTML is rewritten");
    }

    #[test]
    fn the_number_of_files_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        for n in 0..MAX_SITE_FILES {
            write(dir.path(), &format!("{n}.txt"), b"x");
        }
        assert_eq!(StaticSite::load(dir.path(), "http://a").unwrap().files.len(), MAX_SITE_FILES);
        write(dir.path(), "one-more.txt", b"x");
        let error = StaticSite::load(dir.path(), "http://a").unwrap_err();
        assert!(error.to_string().contains("MAX_SITE_FILES"), "{error}");
    }

    #[test]
    fn the_bytes_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        // Sparse files: the bound is checked on their length before they are read.
        let sized = |name: &str, len: u64| std::fs::File::create(dir.path().join(name)).unwrap().set_len(len).unwrap();
        sized("a.bin", MAX_SITE_BYTES - 1);
        sized("b.bin", 1);
        assert!(StaticSite::load(dir.path(), "http://a").is_ok(), "exactly the bound");
        sized("b.bin", 2);
        let error = StaticSite::load(dir.path(), "http://a").unwrap_err();
        assert!(error.to_string().contains("MAX_SITE_BYTES"), "{error}");
    }

    #[test]
    fn names_the_router_would_not_take_literally_are_refused() {
        for name in ["{id}.html", "*.js", "a b.png", "é.txt"] {
            let dir = tempfile::tempdir().unwrap();
            write(dir.path(), name, b"x");
            let error = StaticSite::load(dir.path(), "http://a").unwrap_err();
            assert!(matches!(error, SiteError::UnservableName(_)), "{name}: {error}");
        }
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_it() {
        let error = StaticSite::load(Path::new("/nonexistent/site"), "http://a").unwrap_err();
        assert!(error.to_string().contains("/nonexistent/site"), "{error}");
    }
}
