//! Function calls over HTTP and the app's HTTP actions, against a real server over real sockets.

mod common;
#[path = "common/http_app.rs"]
mod http_app;

use std::net::SocketAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http_app::{ADMIN_KEY, ada_token};
use livebase_functions::limits::MAX_HTTP_ACTION_REQUEST_BYTES;
use livebase_server::http_api::{MAX_CALL_BODY_BYTES, MAX_QUERY_BATCH_LEN};
use livebase_store::limits::MAX_RETAINED_SNAPSHOTS;
use livebase_value::{Object, Value};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value as Json, json};

struct Api {
    client: Client,
    addr: SocketAddr,
}

impl Api {
    fn new(addr: SocketAddr) -> Api {
        Api { client: Client::new(), addr }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs `body` to `path`, optionally with an `Authorization` header; the status and JSON answer.
    async fn post(&self, path: &str, body: Json, authorization: Option<&str>) -> (StatusCode, Json) {
        let mut request = self.client.post(self.url(path)).body(body.to_string());
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        answer(request.send().await.unwrap()).await
    }

    async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> (StatusCode, Json) {
        answer(self.client.post(self.url(path)).body(body).send().await.unwrap()).await
    }

    /// A call expected to reach its function: its outcome.
    async fn call(&self, path: &str, body: Json) -> Json {
        let (status, outcome) = self.post(path, body, None).await;
        assert_eq!(status, StatusCode::OK, "{outcome}");
        outcome
    }
}

async fn answer(response: reqwest::Response) -> (StatusCode, Json) {
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}")))
}

fn integer(n: i64) -> Json {
    json!({ "$integer": BASE64.encode(n.to_le_bytes()) })
}

/// The message of a 4xx answer, after checking its shape.
fn refusal(answer: (StatusCode, Json), status: StatusCode, code: &str) -> String {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["code"], code, "{}", answer.1);
    answer.1["message"].as_str().expect("a message").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_mutations_and_actions_answer_in_both_formats() {
    let (server, _) = http_app::start().await;
    let api = Api::new(server.addr);
    let added = api
        .call(
            "/api/mutation",
            json!({ "path": "notes:add", "args": [{ "text": "one" }], "format": "convex_encoded_json" }),
        )
        .await;
    assert_eq!(added["status"], "success", "{added}");
    assert!(added["value"].is_string());
    assert_eq!(added["logLines"], json!(["[LOG] adding \"one\""]));
    api.call("/api/mutation", json!({ "path": "notes:add", "args": { "text": "two" } })).await;

    let lossless =
        api.call("/api/query", json!({ "path": "notes:count", "args": {}, "format": "convex_encoded_json" }));
    assert_eq!(lossless.await, json!({ "status": "success", "value": integer(2), "logLines": [] }));
    let plain = api.call("/api/query", json!({ "path": "notes:count", "args": {}, "format": "json" })).await;
    assert_eq!(plain["value"], "2", "plain JSON writes an int64 as a decimal string");
    let default = api.call("/api/query", json!({ "path": "notes:count" })).await;
    assert_eq!(default["value"], "2", "`json` is the default format, and missing args are `{{}}`");
    let listed = api.call("/api/query", json!({ "path": "notes:list", "args": {} })).await;
    assert_eq!(listed["value"], json!(["one", "two"]));

    let value = json!({ "n": integer(7), "bytes": { "$bytes": "AAE=" }, "list": [1.5, null, true] });
    let echoed = api
        .call(
            "/api/action",
            json!({ "path": "notes:echo", "args": [{ "value": value }], "format": "convex_encoded_json" }),
        )
        .await;
    assert_eq!(echoed["value"], value, "convex_encoded_json round-trips int64 and bytes");
    let echoed = api.call("/api/action", json!({ "path": "notes:echo", "args": { "value": { "n": 7 } } })).await;
    assert_eq!(echoed["value"], json!({ "n": 7.0 }), "plain JSON numbers are float64");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_query_reads_path_and_args_from_the_url() {
    let (server, _) = http_app::start().await;
    let api = Api::new(server.addr);
    api.call("/api/mutation", json!({ "path": "notes:add", "args": { "text": "a b&c" } })).await;
    let url = api.url("/api/query?path=notes%3Alist&args=%7B%7D&format=json");
    let (status, listed) = answer(api.client.get(url).send().await.unwrap()).await;
    assert_eq!((status, &listed["value"]), (StatusCode::OK, &json!(["a b&c"])));
    let (status, echoed) = answer(api.client.get(api.url("/api/query?path=notes:count")).send().await.unwrap()).await;
    assert_eq!((status, &echoed["value"]), (StatusCode::OK, &json!("1")));
    let bad = answer(api.client.get(api.url("/api/query?path=notes:count&args={")).send().await.unwrap()).await;
    assert!(refusal(bad, StatusCode::BAD_REQUEST, "BadRequest").contains("`args` parameter is not JSON"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_errors_answer_200_with_message_and_only_user_errors_carry_data() {
    let (server, _) = http_app::start().await;
    let api = Api::new(server.addr);
    let rejected =
        api.call("/api/mutation", json!({ "path": "notes:reject", "args": {}, "format": "convex_encoded_json" }));
    let rejected = rejected.await;
    assert_eq!(rejected["status"], "error");
    assert_eq!(rejected["errorData"], json!({ "code": "NOPE", "count": integer(3) }));
    assert!(rejected["errorMessage"].as_str().unwrap().contains("NOPE"), "{rejected}");
    let plain = api.call("/api/mutation", json!({ "path": "notes:reject", "args": {} })).await;
    assert_eq!(plain["errorData"], json!({ "code": "NOPE", "count": "3" }));

    let unknown = api.call("/api/query", json!({ "path": "notes:nothing", "args": {} })).await;
    assert_eq!(unknown["status"], "error");
    assert_eq!(unknown["errorMessage"], "Could not find public function for 'notes:nothing'");
    assert!(unknown.get("errorData").is_none(), "only user errors have data: {unknown}");
    let wrong_args = api.call("/api/mutation", json!({ "path": "notes:add", "args": { "text": 5 } })).await;
    assert!(wrong_args["errorMessage"].as_str().unwrap().contains("ArgumentValidationError"), "{wrong_args}");
    let wrong_kind = api.call("/api/mutation", json!({ "path": "notes:list", "args": {} })).await;
    assert!(wrong_kind["errorMessage"].as_str().unwrap().contains("as Mutation"), "{wrong_kind}");
    let bad_path = api.call("/api/query", json!({ "path": "notes:1bad", "args": {} })).await;
    assert!(bad_path["errorMessage"].as_str().unwrap().contains("Invalid function path"), "{bad_path}");
    assert_eq!(api.call("/api/query", json!({ "path": "notes:count" })).await["value"], "0", "nothing was written");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_refused_with_a_code_and_a_message() {
    let (server, _) = http_app::start().await;
    let api = Api::new(server.addr);
    let bad_request = |answer| refusal(answer, StatusCode::BAD_REQUEST, "BadRequest");
    assert!(bad_request(api.post_raw("/api/query", "{nope").await).contains("not JSON"));
    assert!(bad_request(api.post_raw("/api/query", "[1]").await).contains("must be a JSON object, not an array"));
    assert!(bad_request(api.post("/api/query", json!({ "args": {} }), None).await).contains("no `path`"));
    assert!(bad_request(api.post("/api/query", json!({ "path": 1 }), None).await).contains("`path` must be a string"));
    let not_object = api.post("/api/query", json!({ "path": "notes:count", "args": [1, 2] }), None).await;
    assert!(bad_request(not_object).contains("`args` must be an object"));
    let format = api.post("/api/query", json!({ "path": "notes:count", "format": "xml" }), None).await;
    assert!(bad_request(format).contains("Unknown `format` `xml`"));
    let bad_integer =
        json!({ "path": "notes:echo", "args": { "value": { "$integer": "x" } }, "format": "convex_encoded_json" });
    assert!(bad_request(api.post("/api/action", bad_integer, None).await).contains("Invalid `args`"));
    let dollar = json!({ "path": "notes:echo", "args": { "value": { "$integer": "AQAAAAAAAAA=" } } });
    assert!(
        bad_request(api.post("/api/action", dollar, None).await).contains("Invalid `args`"),
        "plain JSON has no `$` keys"
    );
    let component = json!({ "path": "notes:count", "componentPath": "child" });
    assert!(bad_request(api.post("/api/function", component, None).await).contains("componentPath"));
    assert_eq!(api.call("/api/query", json!({ "path": "notes:count" })).await["value"], "0");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_run_at_a_timestamp_from_query_ts_while_it_is_retained() {
    let (server, _) = http_app::start().await;
    let api = Api::new(server.addr);
    api.call("/api/mutation", json!({ "path": "notes:add", "args": { "text": "before" } })).await;
    let (status, ts) = api.post("/api/query_ts", json!({}), None).await;
    assert_eq!(status, StatusCode::OK);
    let ts = ts["ts"].as_str().expect("a ts").to_owned();
    api.call("/api/mutation", json!({ "path": "notes:add", "args": { "text": "after" } })).await;

    let then = api.call("/api/query_at_ts", json!({ "path": "notes:list", "args": {}, "ts": ts })).await;
    assert_eq!(then["value"], json!(["before"]));
    let now = api.call("/api/query", json!({ "path": "notes:list", "args": {} })).await;
    assert_eq!(now["value"], json!(["before", "after"]));

    let bad_request = |answer| refusal(answer, StatusCode::BAD_REQUEST, "BadRequest");
    let missing = api.post("/api/query_at_ts", json!({ "path": "notes:list" }), None).await;
    assert!(bad_request(missing).contains("no `ts`"));
    let garbled = api.post("/api/query_at_ts", json!({ "path": "notes:list", "ts": "nope" }), None).await;
    assert!(bad_request(garbled).contains("Invalid `ts` `nope`"));
    let short =
        api.post("/api/query_at_ts", json!({ "path": "notes:list", "ts": BASE64.encode([1u8; 4]) }), None).await;
    assert!(bad_request(short).contains("exactly 8"));

    let future = json!({ "path": "notes:list", "args": {}, "ts": BASE64.encode(i64::MAX.to_le_bytes()) });
    let future = api.call("/api/query_at_ts", future).await;
    assert!(future["errorMessage"].as_str().unwrap().contains("after the latest commit"), "{future}");

    // Enough commits since `ts` that its state is no longer kept.
    for n in 0..MAX_RETAINED_SNAPSHOTS {
        let text = Object::from([("text".to_owned(), Value::from(n.to_string()))]);
        server.store.transact(|tx| tx.insert("notes", text.clone())).await.unwrap();
    }
    let too_old = api.call("/api/query_at_ts", json!({ "path": "notes:list", "args": {}, "ts": ts })).await;
    let too_old = too_old["errorMessage"].as_str().unwrap();
    assert!(too_old.contains("no longer retained") && too_old.contains("MAX_RETAINED_SNAPSHOTS"), "{too_old}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_batch_answers_each_query_in_order_up_to_its_limit() {
    let (server, _) = http_app::start().await;
    let api = Api::new(server.addr);
    api.call("/api/mutation", json!({ "path": "notes:add", "args": { "text": "x" } })).await;
    let batch = json!({ "queries": [
        { "path": "notes:count", "args": {}, "format": "convex_encoded_json" },
        { "path": "notes:nothing", "args": {} },
        { "path": "notes:list", "args": [{}] },
    ] });
    let (status, answered) = api.post("/api/query_batch", batch, None).await;
    assert_eq!(status, StatusCode::OK);
    let results = answered["results"].as_array().expect("results");
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["value"], integer(1));
    assert_eq!(results[1]["status"], "error", "one failing query fails only itself");
    assert_eq!(results[2]["value"], json!(["x"]));

    let full = json!({ "queries": vec![json!({ "path": "notes:count" }); MAX_QUERY_BATCH_LEN] });
    let (status, answered) = api.post("/api/query_batch", full, None).await;
    assert_eq!((status, answered["results"].as_array().map(Vec::len)), (StatusCode::OK, Some(MAX_QUERY_BATCH_LEN)));
    let over = json!({ "queries": vec![json!({ "path": "notes:count" }); MAX_QUERY_BATCH_LEN + 1] });
    let refused = refusal(api.post("/api/query_batch", over, None).await, StatusCode::BAD_REQUEST, "BadRequest");
    assert!(refused.contains("MAX_QUERY_BATCH_LEN"), "{refused}");
    let malformed = json!({ "queries": [{ "path": "notes:count" }, { "path": 3 }] });
    let refused = refusal(api.post("/api/query_batch", malformed, None).await, StatusCode::BAD_REQUEST, "BadRequest");
    assert!(refused.starts_with("queries[1]: "), "{refused}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_and_function_call_whatever_kind_the_function_is() {
    let (server, _) = http_app::start().await;
    let api = Api::new(server.addr);
    let added = api.call("/api/run/notes/add", json!({ "args": { "text": "by url" } })).await;
    assert_eq!(added["status"], "success", "{added}");
    let counted = api.call("/api/run/notes/count", json!({ "args": {}, "format": "convex_encoded_json" })).await;
    assert_eq!(counted["value"], integer(1));
    let echoed = api.call("/api/function", json!({ "path": "notes:echo", "args": { "value": "hi" } })).await;
    assert_eq!(echoed["value"], "hi");
    let unknown = api.call("/api/run/notes/nothing", json!({ "args": {} })).await;
    assert_eq!(unknown["errorMessage"], "Could not find public function for 'notes:nothing'");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_decide_who_calls_and_bad_ones_are_refused() {
    let (server, _) = http_app::start().await;
    let api = Api::new(server.addr);
    let secret = json!({ "path": "notes:secret", "args": {} });
    let admin = api.post("/api/query", secret.clone(), Some(&format!("Convex {ADMIN_KEY}"))).await;
    assert_eq!(admin, (StatusCode::OK, json!({ "status": "success", "value": "the secret", "logLines": [] })));
    let anonymous = api.call("/api/query", secret.clone()).await;
    assert_eq!(anonymous["errorMessage"], "Could not find public function for 'notes:secret'");
    let user = api.post("/api/query", secret.clone(), Some(&format!("Bearer {}", ada_token()))).await;
    assert_eq!(user.1["status"], "error", "users may not call internal functions either");

    let whoami = json!({ "path": "notes:whoami", "args": {} });
    let ada = api.post("/api/query", whoami.clone(), Some(&format!("Bearer {}", ada_token()))).await;
    assert_eq!(ada.1["value"], "ada");
    let as_admin = api.post("/api/query", whoami.clone(), Some(&format!("Convex {ADMIN_KEY}"))).await;
    assert_eq!(as_admin.1["value"], Json::Null, "an admin is no user");

    let unauthenticated = |answer| refusal(answer, StatusCode::UNAUTHORIZED, "Unauthenticated");
    let wrong_key = api.post("/api/query", secret.clone(), Some(&format!("Convex {ADMIN_KEY}x"))).await;
    assert_eq!(unauthenticated(wrong_key), "Wrong admin key");
    let bad_token = api.post("/api/query", whoami.clone(), Some("Bearer forged")).await;
    assert!(unauthenticated(bad_token).starts_with("Invalid token: the token is not a JWT"));
    let basic =
        api.post("/api/mutation", json!({ "path": "notes:add", "args": { "text": "x" } }), Some("Basic eDp5")).await;
    assert!(unauthenticated(basic).contains("must be `Bearer <token>` or `Convex <admin key>`"));
    assert_eq!(
        api.call("/api/query", json!({ "path": "notes:count" })).await["value"],
        "0",
        "the refused mutation did not run"
    );
    server.stop().await;

    // Without an admin key configured, none is accepted.
    let server = common::TestServer::start().await;
    let api = Api::new(server.addr);
    let refused = api.post("/api/query", json!({ "path": "messages:list" }), Some("Convex anything")).await;
    assert!(unauthenticated(refused).contains("no admin key configured"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_may_call_from_any_origin() {
    let (server, _) = http_app::start().await;
    let api = Api::new(server.addr);
    let preflight = api
        .client
        .request(Method::OPTIONS, api.url("/api/query"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization,content-type")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let headers = preflight.headers();
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert!(headers["access-control-allow-methods"].to_str().unwrap().contains("POST"));
    assert_eq!(headers["access-control-allow-headers"], "authorization,content-type");
    assert_eq!(headers["access-control-max-age"], "86400");

    let call = api.client.post(api.url("/api/query")).header("origin", "https://app.example");
    let response = call.body(json!({ "path": "notes:count" }).to_string()).send().await.unwrap();
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    // HTTP actions answer for themselves, CORS included.
    let action = api.client.get(api.url("/http/files/a")).header("origin", "https://app.example").send().await.unwrap();
    assert!(action.headers().get("access-control-allow-origin").is_none());
    server.stop().await;
}

/// A JSON body of exactly `len` bytes: the call, padded with spaces.
fn padded_call(len: usize) -> String {
    let call = json!({ "path": "notes:count", "args": {} }).to_string();
    format!("{call}{}", " ".repeat(len - call.len()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_bounded_at_their_limits() {
    let (server, site) = http_app::start().await;
    let api = Api::new(server.addr);
    let (status, largest) = api.post_raw("/api/query", padded_call(MAX_CALL_BODY_BYTES)).await;
    assert_eq!((status, &largest["status"]), (StatusCode::OK, &json!("success")));
    let over = api.post_raw("/api/query", padded_call(MAX_CALL_BODY_BYTES + 1)).await;
    assert!(refusal(over, StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge").contains("MAX_CALL_BODY_BYTES"));

    let site = Api::new(site);
    let largest = site.client.post(site.url("/length")).body(vec![b'x'; MAX_HTTP_ACTION_REQUEST_BYTES]).send().await;
    let largest = largest.unwrap();
    assert_eq!(largest.status(), StatusCode::OK);
    assert_eq!(largest.text().await.unwrap(), MAX_HTTP_ACTION_REQUEST_BYTES.to_string());
    let over = site.post_raw("/length", vec![b'x'; MAX_HTTP_ACTION_REQUEST_BYTES + 1]).await;
    assert!(refusal(over, StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge").contains("MAX_HTTP_ACTION_REQUEST_BYTES"));
    server.stop().await;
}

/// Sends a request to an HTTP action: its status, `x-route` header and body.
async fn act(client: &Client, method: Method, url: String, authorization: Option<&str>) -> (u16, String, String) {
    let mut request = client.request(method, url).header("x-probe", "42");
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    let response = request.send().await.unwrap();
    let route = response.headers().get("x-route").map_or("", |value| value.to_str().unwrap()).to_owned();
    (response.status().as_u16(), route, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_routes_are_served_under_http_and_at_the_site_root() {
    let (server, site) = http_app::start().await;
    let client = Client::new();
    for (base, host) in [(format!("http://{}/http", server.addr), server.addr), (format!("http://{site}"), site)] {
        let exact = act(&client, Method::GET, format!("{base}/files/special"), None).await;
        assert_eq!(exact, (200, String::new(), "exact".to_owned()), "the exact path wins over the prefix");
        let prefix = act(&client, Method::GET, format!("{base}/files/a/b?q=1"), None).await;
        let expected = format!("prefix http://{host}/files/a/b?q=1 probe=42 user=nobody");
        assert_eq!(prefix, (200, "prefix".to_owned(), expected), "the URL the routes see has no `/http`");
        let ada = act(&client, Method::GET, format!("{base}/files/x"), Some(&format!("Bearer {}", ada_token()))).await;
        assert!(ada.2.ends_with("user=ada"), "{}", ada.2);
        let webhook = act(&client, Method::GET, format!("{base}/files/x"), Some("Bearer webhook-secret")).await;
        assert_eq!(webhook.0, 200, "a header that does not verify leaves the action unauthenticated");
        assert!(webhook.2.ends_with("user=nobody"), "{}", webhook.2);
        let head = act(&client, Method::HEAD, format!("{base}/files/x"), None).await;
        assert_eq!(head, (200, "prefix".to_owned(), String::new()), "HEAD runs the GET route without a body");

        let nowhere = act(&client, Method::GET, format!("{base}/nowhere"), None).await;
        assert_eq!(nowhere, (404, String::new(), "No HttpAction routed for /nowhere".to_owned()));
        let wrong_method = act(&client, Method::PUT, format!("{base}/files/special"), None).await;
        assert_eq!(wrong_method.0, 404, "a path routed only for other methods");
        let no_slash = act(&client, Method::GET, format!("{base}/files"), None).await;
        assert_eq!(no_slash.0, 404, "`/files/` is not a prefix of `/files`");
        let failed = act(&client, Method::GET, format!("{base}/fail"), None).await;
        assert_eq!(failed, (500, String::new(), "the route failed".to_owned()));
    }
    for root in ["/http", "/http/", "/http?x=1"] {
        let root = act(&client, Method::GET, format!("http://{}{root}", server.addr), None).await;
        assert_eq!(root.2, "No HttpAction routed for /", "`/http` is the routes' root");
    }

    let api = Api::new(server.addr);
    let posted = client.post(api.url("/http/notes")).body("from a webhook").send().await.unwrap();
    assert_eq!((posted.status().as_u16(), posted.text().await.unwrap()), (201, "1".to_owned()));
    let posted = client.post(format!("http://{site}/notes")).body("from the site").send().await.unwrap();
    assert_eq!(posted.text().await.unwrap(), "2");
    let listed = api.call("/api/query", json!({ "path": "notes:list" })).await;
    assert_eq!(listed["value"], json!(["from a webhook", "from the site"]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writers_forward_endpoint_takes_the_admin_key_and_runs_mutations_once_per_replay_key() {
    use livebase_server::forward::FORWARD_PATH;
    let (server, _) = http_app::start().await;
    let api = Api::new(server.addr);
    let admin = format!("Convex {ADMIN_KEY}");
    let add = |text: &str| json!({ "kind": "mutation", "path": "notes:add", "args": { "text": text } });

    let unauthenticated = |answer| refusal(answer, StatusCode::UNAUTHORIZED, "Unauthenticated");
    assert!(
        unauthenticated(api.post(FORWARD_PATH, add("x"), None).await)
            .contains("needs `Authorization: Convex <admin key>`")
    );
    let as_user = api.post(FORWARD_PATH, add("x"), Some(&format!("Bearer {}", ada_token()))).await;
    assert!(unauthenticated(as_user).contains("needs `Authorization: Convex <admin key>`"), "a user may not forward");
    assert_eq!(unauthenticated(api.post(FORWARD_PATH, add("x"), Some("Convex wrong")).await), "Wrong admin key");

    let invalid = |answer| refusal(answer, StatusCode::BAD_REQUEST, "BadRequest");
    let post = |body: Json| api.post(FORWARD_PATH, body, Some(&admin));
    assert!(invalid(post(json!({ "path": "notes:add", "args": {} })).await).contains("`kind`"));
    assert!(invalid(post(json!({ "kind": "query", "path": "notes:count", "args": {} })).await).contains("`kind`"));
    assert!(invalid(post(json!({ "kind": "mutation", "args": {} })).await).contains("`path`"));
    assert!(invalid(post(json!({ "kind": "mutation", "path": "notes:add", "args": [] })).await).contains("`args`"));
    let bad_identity = json!({ "kind": "mutation", "path": "notes:add", "args": {}, "identity": 3 });
    assert!(invalid(post(bad_identity).await).contains("`identity`"));
    let bad_key = json!({ "kind": "mutation", "path": "notes:add", "args": {}, "replayKey": { "sessionId": 1 } });
    assert!(invalid(post(bad_key).await).contains("`replayKey`"));
    let not_json = api.client.post(api.url(FORWARD_PATH)).header("authorization", &admin).body("{");
    assert!(invalid(answer(not_json.send().await.unwrap()).await).contains("not JSON"));
    let forged = json!({ "kind": "mutation", "path": "notes:add", "args": {}, "identity": { "token": "forged" } });
    assert!(unauthenticated(post(forged).await).starts_with("Invalid token"), "the writer checks the token itself");

    let unknown = post(json!({ "kind": "mutation", "path": "notes:nope", "args": {} })).await;
    assert_eq!(unknown.0, StatusCode::OK, "an unknown function is the function's error: {}", unknown.1);
    assert_eq!(unknown.1["status"], "error");
    assert!(unknown.1["errorMessage"].as_str().unwrap().contains("notes:nope"), "{}", unknown.1);
    assert_eq!(unknown.1["ts"], Json::Null);

    // A mutation with a replay key runs once; the replay gets its result and a timestamp at or after
    // the commit, as a client replaying after a reconnect would, whichever node it reconnects to.
    let mut keyed = add("once");
    keyed["replayKey"] = json!({ "sessionId": "a-session", "requestId": 7 });
    let (status, first) = post(keyed.clone()).await;
    assert_eq!((status, &first["status"]), (StatusCode::OK, &json!("success")), "{first}");
    assert_eq!(first["logLines"], json!(["[LOG] adding \"once\""]));
    let first_ts = first["ts"].as_u64().expect("a committed mutation's timestamp");
    let (_, replayed) = post(keyed).await;
    assert_eq!(replayed["value"], first["value"], "the recorded result");
    assert!(replayed["ts"].as_u64().unwrap() >= first_ts);
    let counted = api.call("/api/query", json!({ "path": "notes:count" })).await;
    assert_eq!(counted["value"], "1", "the replay did not run again");

    // The caller's identity: a user by the token, the admin (internal functions), or nobody.
    let echo = |identity: Json| json!({ "kind": "action", "path": "notes:echo", "args": { "value": 1 }, "identity": identity });
    let (_, echoed) = post(echo(json!({ "token": ada_token() }))).await;
    assert_eq!(echoed["value"], 1.0, "{echoed}");
    let rejected = post(json!({ "kind": "mutation", "path": "notes:reject", "args": {}, "identity": "admin" })).await;
    assert_eq!(rejected.1["errorData"]["code"], "NOPE", "user errors carry their data: {}", rejected.1);
    let action_key = json!({ "kind": "action", "path": "notes:echo", "args": { "value": 1 }, "replayKey": { "sessionId": "s", "requestId": 1 } });
    assert!(invalid(post(action_key).await).contains("Only mutations"));
    server.stop().await;
}
