//! The web APIs (`crates/js/src/web.js`) as functions see them: the queries of `convex/web.ts`, run
//! through the functions runtime, report what the APIs gave them.

use std::path::Path;

use livebase_functions::{FunctionError, Identity, Registry, Runtime};
use livebase_js::App;
use livebase_js::limits::MAX_RANDOM_VALUES_BYTES;
use livebase_store::{Store, StoreConfig};
use livebase_value::{Object, Value};
use serde_json::{Value as Json, json};

struct Deployment {
    runtime: Runtime,
    _directory: tempfile::TempDir,
}

fn deploy() -> Deployment {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open(StoreConfig::new(directory.path())).expect("opening the store");
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/convex");
    let app = App::load(&folder, &livebase_js::default_npm_dir()).expect("loading the convex folder");
    let mut registry = Registry::new();
    app.register(&mut registry).expect("registering its functions");
    Deployment { runtime: Runtime::new(store, registry), _directory: directory }
}

impl Deployment {
    fn call<'a>(&self, name: &str, args: impl IntoIterator<Item = (&'a str, Value)>) -> Result<Value, FunctionError> {
        let args: Object = args.into_iter().map(|(name, value)| (name.to_owned(), value)).collect();
        self.runtime.run_query(&format!("web:{name}"), args, &Identity::Unauthenticated, None, None).result
    }

    /// The JSON report of the query `web:{name}`.
    fn report<'a>(&self, name: &str, args: impl IntoIterator<Item = (&'a str, Value)>) -> Json {
        match self.call(name, args) {
            Ok(Value::String(report)) => serde_json::from_str(&report).expect("a JSON report"),
            other => panic!("web:{name}: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn get_random_values_fills_up_to_the_limit_and_refuses_one_byte_more() {
    let deployment = deploy();
    let fill = |bytes: usize| deployment.report("randomValues", [("bytes", Value::Float64(bytes as f64))]);
    assert_eq!(fill(16), json!({"length": 16, "anyNonZero": true}));
    assert_eq!(fill(MAX_RANDOM_VALUES_BYTES), json!({"length": MAX_RANDOM_VALUES_BYTES, "anyNonZero": true}));
    let refused = fill(MAX_RANDOM_VALUES_BYTES + 1);
    let refused = refused.as_str().expect("an error");
    assert!(refused.starts_with("QuotaExceededError: "), "{refused}");
    assert!(refused.contains("MAX_RANDOM_VALUES_BYTES"), "{refused}");

    let uuids = deployment.report("randomUuid", []);
    let [first, second] = [&uuids[0], &uuids[1]].map(|uuid| uuid.as_str().expect("a string").to_owned());
    assert_ne!(first, second);
    assert_eq!(first.len(), 36);
    assert_eq!(&first[14..15], "4", "version 4: {first}");
}

#[tokio::test(flavor = "multi_thread")]
async fn text_encodes_and_decodes_utf8_and_base64() {
    let deployment = deploy();
    let report = deployment.report("text", []);
    assert_eq!(report["bytes"], json!([104, 195, 169, 108, 108, 111, 32, 226, 130, 172]));
    assert_eq!(report["decoded"], "héllo €");
    assert_eq!(report["fromBuffer"], "héllo €");
    assert_eq!(report["lenient"], "a\u{FFFD}(");
    let fatal = report["fatal"].as_str().expect("an error");
    assert!(fatal.starts_with("TypeError: The data is not valid UTF-8"), "{fatal}");
    assert_eq!(report["base64"], "aGkgdGhlcmU=");
    assert_eq!(report["fromBase64"], "hi there");
    assert!(report["notLatin1"].as_str().expect("an error").starts_with("InvalidCharacterError"), "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn urls_parse_absolute_and_relative_and_invalid_ones_throw_type_errors() {
    let deployment = deploy();
    let url = |input: &str, base: Option<&str>| {
        let base = base.map(|base| ("base", Value::from(base)));
        deployment.report("url", [("input", Value::from(input))].into_iter().chain(base))
    };
    assert_eq!(
        url("HTTPS://Example.COM:443/a/./b/../c?x=1#top", None),
        json!({
            "href": "https://example.com/a/c?x=1&added=a+b#top",
            "origin": "https://example.com",
            "host": "example.com",
            "pathname": "/a/c",
            "search": "?x=1&added=a+b",
            "hash": "#top",
            "params": [["x", "1"], ["added", "a b"]],
            "json": r#"{"url":"https://example.com/a/c?x=1&added=a+b#top"}"#,
        })
    );
    let relative = url("../up?q=%20", Some("http://localhost:3210/api/v1/"));
    // Changing `searchParams` re-serializes the whole query, as browsers do: `%20` becomes `+`.
    assert_eq!(relative["href"], "http://localhost:3210/api/up?q=+&added=a+b");
    assert_eq!(relative["params"], json!([["q", " "], ["added", "a b"]]));

    let invalid = url("/no/base", None);
    assert!(invalid.as_str().expect("an error").starts_with("TypeError: Invalid URL \"/no/base\""), "{invalid}");
    let Err(FunctionError::Failed(uncaught)) = deployment.call("invalidUrl", []) else { panic!("the call must fail") };
    assert!(uncaught.starts_with("Uncaught TypeError: Invalid URL \"not a url\""), "{uncaught}");
}

#[tokio::test(flavor = "multi_thread")]
async fn headers_are_case_insensitive_and_keep_multiple_values() {
    let deployment = deploy();
    let report = deployment.report("headers", []);
    assert_eq!(report["before"], json!({"has": true, "multi": "one, two", "cookies": ["a=1", "b=2"]}));
    assert_eq!(
        report["seen"],
        json!(["content-type: text/plain", "set-cookie: a=1", "set-cookie: b=2", "x-multi: one, two"])
    );
    assert_eq!(report["after"], json!([["set-cookie", "a=1"], ["set-cookie", "b=2"], ["x-multi", "three"]]));
    assert_eq!(report["invalidName"], "TypeError: Invalid header name \"bad name\"");
    assert!(report["invalidValue"].as_str().expect("an error").starts_with("TypeError: Invalid header value"));
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_carry_bodies_of_every_supported_kind_read_once() {
    let deployment = deploy();
    let report = deployment.report("requests", []);
    assert_eq!(report["url"], "https://api.test/items?q=1");
    assert_eq!(report["method"], "POST", "standard methods are upper-cased");
    assert_eq!(report["contentType"], "text/plain;charset=UTF-8");
    assert_eq!(report["parsed"], json!({"a": 1}));
    assert_eq!(report["used"], true);
    assert_eq!(report["readTwice"], "TypeError: The body has already been read");
    assert_eq!(report["cloneText"], r#"{"a":1}"#);
    assert_eq!(report["buffer"], json!([1, 2, 3]));
    assert_eq!(report["bytes"], "hi");
    assert_eq!(report["form"], json!(["application/x-www-form-urlencoded;charset=UTF-8", "a=1+2"]));
    assert_eq!(report["none"], json!(["GET", null, ""]));
    assert_eq!(report["getWithBody"], "TypeError: A GET request cannot have a body");
    assert!(report["relative"].as_str().expect("an error").starts_with("TypeError: Invalid URL"), "{report}");
    assert!(report["stream"].as_str().expect("an error").contains("ReadableStream"), "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn responses_have_status_headers_and_bodies() {
    let deployment = deploy();
    let report = deployment.report("responses", []);
    assert_eq!(report["plain"], json!([201, "Created", true, "7", "created"]));
    assert_eq!(report["json"], json!([400, false, "application/json", {"ok": true}]));
    assert_eq!(report["redirect"], json!([307, "https://x.test/next", null]));
    assert_eq!(report["blob"], json!([2, "text/x-ab", "ab"]));
    assert_eq!(report["empty"], "");
    assert!(report["badStatus"].as_str().expect("an error").starts_with("RangeError"), "{report}");
    assert!(report["nullBodyStatus"].as_str().expect("an error").starts_with("TypeError"), "{report}");
    assert!(report["badRedirect"].as_str().expect("an error").starts_with("RangeError"), "{report}");
}
