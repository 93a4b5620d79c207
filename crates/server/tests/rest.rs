//! The HTTP API against a real server over loopback: list endpoints with seed 001's contract (and
//! its TypeScript and Python clients), API keys and the admin API, live lists over Server-Sent
//! Events, and the OpenAPI document under schemathesis.

mod common;
#[path = "common/sse.rs"]
mod sse;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{PATIENCE, TestServer};
use livebase_server::rest::{DEFAULT_PAGE_LIMIT, MAX_API_KEYS, MAX_PAGE_LIMIT, RestConfig, RestList, api_keys};
use livebase_store::{BY_CREATION_TIME, Document, KeyRange, Order, Store};
use livebase_value::{DocumentId, Object, Value};
use rand::Rng as _;
use reqwest::StatusCode;
use serde_json::{Value as Json, json};
use sse::{Event, EventReader};
use tokio::sync::Mutex;

const ADMIN_KEY: &str = "test-admin-key";
const RUNS: &str = "/api/v1/runs";
const NOTES: &str = "/api/v1/notes";

/// Items as the seed's clients expect them: `{id, n}`.
fn run_item(document: &Document) -> Json {
    json!({ "id": document.id().encode(), "n": livebase_value::to_plain_json(document.get("n").unwrap_or(&Value::Null)) })
}

async fn start() -> TestServer {
    TestServer::start_with(|mut config| {
        config.admin_key = Some(ADMIN_KEY.to_owned());
        config.rest = RestConfig {
            lists: vec![RestList::new(RUNS, "runs").project(run_item), RestList::new(NOTES, "notes")],
            ..RestConfig::default()
        };
        config
    })
    .await
}

fn url(server: &TestServer, path: &str) -> String {
    format!("http://{}{path}", server.addr)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(PATIENCE).build().unwrap()
}

async fn json_of(response: reqwest::Response) -> (StatusCode, reqwest::header::HeaderMap, Json) {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() { Json::Null } else { serde_json::from_str(&text).expect(&text) };
    (status, headers, body)
}

async fn create_key(server: &TestServer, body: Json) -> (StatusCode, Json) {
    let response = client()
        .post(url(server, "/api/admin/api_keys"))
        .header("Authorization", format!("Convex {ADMIN_KEY}"))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let (status, _, body) = json_of(response).await;
    (status, body)
}

async fn new_key(server: &TestServer) -> String {
    let (status, body) = create_key(server, json!({ "name": "test" })).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["key"].as_str().unwrap().to_owned()
}

/// `GET path?query` with the key; the status and JSON body.
async fn get(server: &TestServer, path_and_query: &str, key: &str) -> (StatusCode, Json) {
    let response = client()
        .get(url(server, path_and_query))
        .header("Authorization", format!("Bearer {key}"))
        .send()
        .await
        .unwrap();
    let (status, _, body) = json_of(response).await;
    (status, body)
}

fn assert_error(status: StatusCode, body: &Json, expected: StatusCode, code: &str, param: Option<&str>) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|message| !message.is_empty()), "{body}");
    assert_eq!(body["error"]["param"].as_str(), param, "{body}");
}

async fn insert_runs(store: &Store, count: usize) -> Vec<DocumentId> {
    let (ids, _) = store
        .transact(|tx| {
            (0..count)
                .map(|n| tx.insert("runs", Object::from([("n".to_owned(), Value::Int64(n as i64))])))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .unwrap();
    ids
}

/// The list as the store has it, newest first: what a scan should return.
fn stored_order(store: &Store) -> Vec<String> {
    let mut tx = store.begin();
    let scan = tx.scan("runs", BY_CREATION_TIME, KeyRange::all(), Order::Desc).unwrap();
    scan.map(|document| document.unwrap().id().encode()).collect()
}

fn ids(page: &Json) -> Vec<String> {
    page["data"].as_array().unwrap().iter().map(|item| item["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn an_empty_list_is_one_final_page() {
    let server = start().await;
    let key = new_key(&server).await;
    let (status, page) = get(&server, RUNS, &key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page, json!({ "data": [], "nextCursor": null, "hasMore": false }));
    server.stop().await;
}

#[tokio::test]
async fn has_more_turns_false_on_the_page_holding_the_last_item() {
    let server = start().await;
    let key = new_key(&server).await;
    insert_runs(&server.store, 60).await;
    let expected = stored_order(&server.store);

    let (_, first) = get(&server, RUNS, &key).await;
    assert_eq!(ids(&first), expected[..DEFAULT_PAGE_LIMIT], "25 newest by default");
    assert_eq!(first["hasMore"], true);

    // 60 = 3 × 20: the third page ends exactly at the last item and says so.
    let mut cursor: Option<String> = None;
    for page_number in 0..3 {
        let query = match &cursor {
            None => format!("{RUNS}?limit=20"),
            Some(cursor) => format!("{RUNS}?limit=20&cursor={cursor}"),
        };
        let (status, page) = get(&server, &query, &key).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(ids(&page), expected[page_number * 20..(page_number + 1) * 20]);
        let last = page_number == 2;
        assert_eq!(page["hasMore"], !last, "{page}");
        assert_eq!(page["nextCursor"].is_null(), last, "{page}");
        cursor = page["nextCursor"].as_str().map(str::to_owned);
    }
    let (_, whole) = get(&server, &format!("{RUNS}?limit={MAX_PAGE_LIMIT}"), &key).await;
    assert_eq!(ids(&whole), expected);
    assert_eq!((whole["hasMore"].clone(), whole["nextCursor"].clone()), (json!(false), Json::Null));
    server.stop().await;
}

/// What one scan saw while a writer inserted and deleted around it.
#[derive(Default)]
struct Writes {
    inserted: HashSet<String>,
    deleted: HashSet<String>,
}

/// Inserts and deletes runs until stopped; holds `gate` for each write so that a walker can keep
/// writes out of its first request.
async fn write_concurrently(store: Store, gate: Arc<Mutex<Writes>>, stop: tokio_util::sync::CancellationToken) {
    let mut writes = 0u64;
    while !stop.is_cancelled() {
        let mut log = gate.lock().await;
        let delete = writes % 2 == 1;
        if delete {
            let live = stored_order(&store);
            let victim = live[rand::rng().random_range(0..live.len())].clone();
            let id = DocumentId::decode(&victim).unwrap();
            store.transact(|tx| tx.delete(id)).await.unwrap();
            log.deleted.insert(victim);
        } else {
            let fields = Object::from([("n".to_owned(), Value::Int64(-1))]);
            let (id, _) = store.transact(|tx| tx.insert("runs", fields.clone())).await.unwrap();
            log.inserted.insert(id.encode());
        }
        drop(log);
        writes += 1;
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walks_with_every_limit_see_each_item_once_while_others_write() {
    let server = start().await;
    let key = new_key(&server).await;
    insert_runs(&server.store, 1_000).await;
    let gate = Arc::new(Mutex::new(Writes::default()));
    let stop = tokio_util::sync::CancellationToken::new();
    let writer = tokio::spawn(write_concurrently(server.store.clone(), Arc::clone(&gate), stop.clone()));
    let mut total_concurrent_writes = 0;

    for limit in 1..=MAX_PAGE_LIMIT {
        // The scan starts with its first request: no write between reading the list and it.
        let mut log = gate.lock().await;
        *log = Writes::default();
        let at_start = stored_order(&server.store);
        let (status, mut page) = get(&server, &format!("{RUNS}?limit={limit}"), &key).await;
        drop(log);
        let mut seen = Vec::new();
        loop {
            assert_eq!(status, StatusCode::OK, "{page}");
            let items = ids(&page);
            assert!(items.len() <= limit);
            assert!(!items.is_empty() || page["hasMore"] == false, "only a final page may be empty: {page}");
            seen.extend(items);
            if page["hasMore"] == false {
                assert!(page["nextCursor"].is_null());
                break;
            }
            let cursor = page["nextCursor"].as_str().unwrap();
            page = get(&server, &format!("{RUNS}?limit={limit}&cursor={cursor}"), &key).await.1;
        }
        let log = gate.lock().await;
        total_concurrent_writes += log.inserted.len() + log.deleted.len();
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "limit {limit}: an item came twice");
        let position: BTreeMap<&String, usize> = at_start.iter().enumerate().map(|(at, id)| (id, at)).collect();
        for id in &seen {
            assert!(!log.inserted.contains(id), "limit {limit}: saw {id}, inserted during the scan");
            assert!(position.contains_key(id), "limit {limit}: saw {id}, which was not there when the scan began");
        }
        assert!(seen.windows(2).all(|pair| position[&pair[0]] < position[&pair[1]]), "limit {limit}: not newest first");
        let missed: Vec<&String> =
            at_start.iter().filter(|id| !log.deleted.contains(*id) && !unique.contains(id)).collect();
        assert!(missed.is_empty(), "limit {limit}: missed {missed:?}, there for the whole scan");
    }
    stop.cancel();
    writer.await.unwrap();
    assert!(total_concurrent_writes > 100, "the writer wrote during the scans ({total_concurrent_writes} writes)");
    server.stop().await;
}

#[tokio::test]
async fn every_bad_limit_is_a_validation_error() {
    let server = start().await;
    let key = new_key(&server).await;
    insert_runs(&server.store, 3).await;
    for query in
        ["limit=0", "limit=101", "limit=-1", "limit=2.5", "limit=abc", "limit=", "limit=1&limit=2", "limit=1e1"]
    {
        let (status, body) = get(&server, &format!("{RUNS}?{query}"), &key).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION", Some("limit"));
    }
    let (status, body) = get(&server, &format!("{RUNS}?limit=5&page=2"), &key).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION", Some("query"));
    server.stop().await;
}

#[tokio::test]
async fn every_bad_cursor_is_a_validation_error_never_a_wrong_page() {
    let server = start().await;
    let key = new_key(&server).await;
    insert_runs(&server.store, 10).await;
    let (_, page) = get(&server, &format!("{RUNS}?limit=3"), &key).await;
    let cursor = page["nextCursor"].as_str().unwrap().to_owned();

    // A cursor of another list (another table), and one of another deployment (another secret).
    server
        .store
        .transact(|tx| tx.insert("notes", Object::new()).and_then(|_| tx.insert("notes", Object::new())))
        .await
        .unwrap();
    let (_, notes) = get(&server, &format!("{NOTES}?limit=1"), &key).await;
    let foreign_list = notes["nextCursor"].as_str().unwrap().to_owned();
    let other = start().await;
    let other_key = new_key(&other).await;
    insert_runs(&other.store, 10).await;
    let (_, other_page) = get(&other, &format!("{RUNS}?limit=3"), &other_key).await;
    let foreign_deployment = other_page["nextCursor"].as_str().unwrap().to_owned();
    other.stop().await;

    let mut tampered = cursor.clone().into_bytes();
    let middle = tampered.len() / 2;
    tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let truncated = cursor[..cursor.len() - 4].to_owned();
    let extended = format!("{cursor}AAAA");
    for bad in ["abc", "%21%21%21", "eyJpZCI6ImtfN2Y4YSIsIl90cyI6MTcyMzAwMDAwMH0", "", &tampered, &truncated, &extended]
        .into_iter()
        .chain([foreign_list.as_str(), foreign_deployment.as_str()])
    {
        let (status, body) = get(&server, &format!("{RUNS}?limit=3&cursor={bad}"), &key).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION", Some("cursor"));
    }
    let (status, body) = get(&server, &format!("{RUNS}?cursor={cursor}&cursor={cursor}"), &key).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION", Some("cursor"));
    // The genuine cursor still works.
    assert_eq!(get(&server, &format!("{RUNS}?limit=3&cursor={cursor}"), &key).await.0, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn missing_malformed_unknown_and_revoked_keys_get_401() {
    let server = start().await;
    let key = new_key(&server).await;
    let (status, _, body) = json_of(client().get(url(&server, RUNS)).send().await.unwrap()).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED", None);

    let mut unknown = key.clone().into_bytes();
    let last = unknown.len() - 1;
    unknown[last] = if unknown[last] == b'A' { b'B' } else { b'A' };
    let unknown = String::from_utf8(unknown).unwrap();
    let other_prefix = key.replacen("cc_live_", "cc_test_", 1);
    let headers = [
        format!("Basic {key}"),
        format!("bearer {key}"),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        format!("Convex {ADMIN_KEY}"),
        "Bearer cc_live_".to_owned(),
        format!("Bearer {}", &key[..key.len() - 1]),
        format!("Bearer {key}A"),
        format!("Bearer {}", key.replacen('_', "!", 2)),
        format!("Bearer {other_prefix}"),
        format!("Bearer {unknown}"),
    ];
    for header in &headers {
        let response = client().get(url(&server, RUNS)).header("Authorization", header).send().await.unwrap();
        let (status, _, body) = json_of(response).await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED", None);
    }

    // Revoked: the key worked until then.
    let (_, created) = create_key(&server, json!({ "name": "short-lived" })).await;
    let revocable = created["key"].as_str().unwrap();
    assert_eq!(get(&server, RUNS, revocable).await.0, StatusCode::OK);
    let revoke = |id: String| {
        client()
            .delete(url(&server, &format!("/api/admin/api_keys/{id}")))
            .header("Authorization", format!("Convex {ADMIN_KEY}"))
            .send()
    };
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(revoke(id.clone()).await.unwrap().status(), StatusCode::NO_CONTENT);
    let (status, body) = get(&server, RUNS, revocable).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED", None);
    let (status, _, body) = json_of(revoke(id).await.unwrap()).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND", None);
    assert_eq!(get(&server, RUNS, &key).await.0, StatusCode::OK, "other keys are unaffected");
    server.stop().await;
}

#[tokio::test]
async fn the_admin_api_checks_its_key_and_its_input() {
    let server = start().await;
    let endpoint = url(&server, "/api/admin/api_keys");
    let body = json!({ "name": "ci" }).to_string();
    for header in [None, Some("Convex wrong-key".to_owned()), Some(format!("Bearer {ADMIN_KEY}"))] {
        let mut request = client().post(&endpoint).body(body.clone());
        if let Some(header) = header {
            request = request.header("Authorization", header);
        }
        let (status, _, error) = json_of(request.send().await.unwrap()).await;
        assert_error(status, &error, StatusCode::UNAUTHORIZED, "UNAUTHORIZED", None);
    }
    let long_name = "x".repeat(65);
    let cases = [
        ("not json".to_owned(), "body"),
        ("[]".to_owned(), "body"),
        (json!({}).to_string(), "name"),
        (json!({ "name": 5 }).to_string(), "name"),
        (json!({ "name": "" }).to_string(), "name"),
        (json!({ "name": long_name }).to_string(), "name"),
        (json!({ "name": "ci", "scopes": [] }).to_string(), "body"),
        (json!({ "name": "ci", "rateLimitPerMinute": 0 }).to_string(), "rateLimitPerMinute"),
        (json!({ "name": "ci", "rateLimitPerMinute": 1.5 }).to_string(), "rateLimitPerMinute"),
        (json!({ "name": "ci", "rateLimitPerMinute": -3 }).to_string(), "rateLimitPerMinute"),
    ];
    for (body, param) in cases {
        let (status, error) = {
            let response = client()
                .post(&endpoint)
                .header("Authorization", format!("Convex {ADMIN_KEY}"))
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let (status, _, error) = json_of(response).await;
            (status, error)
        };
        assert_error(status, &error, StatusCode::BAD_REQUEST, "VALIDATION", Some(param));
    }
    let huge = json!({ "name": "x".repeat(8 * 1024) }).to_string();
    let response = client()
        .post(&endpoint)
        .header("Authorization", format!("Convex {ADMIN_KEY}"))
        .body(huge)
        .send()
        .await
        .unwrap();
    let (status, _, error) = json_of(response).await;
    assert_error(status, &error, StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", None);
    // Nothing was created by the rejected requests.
    let mut tx = server.store.begin();
    assert_eq!(tx.count("_api_keys", BY_CREATION_TIME, KeyRange::all()).unwrap(), 0);

    let delete = |id: &str| {
        client()
            .delete(url(&server, &format!("/api/admin/api_keys/{id}")))
            .header("Authorization", format!("Convex {ADMIN_KEY}"))
            .send()
    };
    let (status, _, error) = json_of(delete("not-an-id").await.unwrap()).await;
    assert_error(status, &error, StatusCode::BAD_REQUEST, "VALIDATION", Some("id"));
    // A real id, of another table: not a key.
    let run = insert_runs(&server.store, 1).await[0].encode();
    let (status, _, error) = json_of(delete(&run).await.unwrap()).await;
    assert_error(status, &error, StatusCode::NOT_FOUND, "NOT_FOUND", None);
    assert_eq!(stored_order(&server.store), vec![run]);
    server.stop().await;
}

#[tokio::test]
async fn without_an_admin_key_the_admin_api_is_closed() {
    let server = TestServer::start().await;
    let response = client()
        .post(url(&server, "/api/admin/api_keys"))
        .header("Authorization", "Convex anything")
        .body(json!({ "name": "ci" }).to_string())
        .send()
        .await
        .unwrap();
    let (status, _, error) = json_of(response).await;
    assert_error(status, &error, StatusCode::UNAUTHORIZED, "UNAUTHORIZED", None);
    server.stop().await;
}

#[tokio::test]
async fn a_key_over_its_rate_limit_gets_429_with_retry_after() {
    let server = start().await;
    let (_, created) = create_key(&server, json!({ "name": "slow", "rateLimitPerMinute": 1 })).await;
    let key = created["key"].as_str().unwrap();
    assert_eq!(get(&server, RUNS, key).await.0, StatusCode::OK);
    let response =
        client().get(url(&server, RUNS)).header("Authorization", format!("Bearer {key}")).send().await.unwrap();
    let (status, headers, body) = json_of(response).await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED", None);
    let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // Unlimited keys are unaffected.
    let other = new_key(&server).await;
    for _ in 0..5 {
        assert_eq!(get(&server, RUNS, &other).await.0, StatusCode::OK);
    }
    server.stop().await;
}

#[tokio::test]
async fn the_cli_creates_and_revokes_keys_stored_as_hashes() {
    let data_dir = tempfile::tempdir().unwrap();
    let livebase = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_livebase"))
            .args(["api-key", "--data-dir", data_dir.path().to_str().unwrap()])
            .args(args)
            .output()
            .unwrap();
        (output.status.success(), String::from_utf8(output.stdout).unwrap(), String::from_utf8(output.stderr).unwrap())
    };
    let (ok, stdout, stderr) = livebase(&["create", "--name", "ci", "--rate-limit-per-minute", "100"]);
    assert!(ok, "{stderr}");
    let created: Json = serde_json::from_str(&stdout).unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("cc_live_"), "{key}");
    let (ok, _, stderr) = livebase(&["create", "--name", ""]);
    assert!(!ok && stderr.contains("name"), "{stderr}");

    let server_on = |data_dir: &Path| {
        let store = Store::open(livebase_store::StoreConfig::new(data_dir)).unwrap();
        let mut tx = store.begin();
        let rows: Vec<Arc<Document>> =
            tx.scan("_api_keys", BY_CREATION_TIME, KeyRange::all(), Order::Asc).unwrap().map(Result::unwrap).collect();
        let stored = format!("{rows:?}");
        let verified = livebase_server::rest::api_keys::verify(&store, "cc_live_", &key);
        (rows.len(), stored, verified.is_ok())
    };
    let (rows, stored, verified) = server_on(data_dir.path());
    assert_eq!(rows, 1);
    assert!(verified);
    let secret_part = &key[key.len() - 43..];
    assert!(!stored.contains(secret_part), "only a hash of the key is stored");

    let id = created["id"].as_str().unwrap();
    let (ok, _, stderr) = livebase(&["revoke", id]);
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = livebase(&["revoke", id]);
    assert!(!ok && stderr.contains(id), "{stderr}");
    let (rows, _, verified) = server_on(data_dir.path());
    assert_eq!((rows, verified), (0, false));
}

async fn subscribe(server: &TestServer, query: &str, key: &str, last_event_id: Option<&str>) -> reqwest::Response {
    let mut request = client_without_timeout()
        .get(url(server, query))
        .header("Authorization", format!("Bearer {key}"))
        .header("Accept", "text/event-stream");
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id);
    }
    request.send().await.unwrap()
}

fn client_without_timeout() -> reqwest::Client {
    reqwest::Client::new()
}

#[tokio::test]
async fn a_live_list_streams_its_page_and_every_change_with_a_pinned_end() {
    let server = start().await;
    let key = new_key(&server).await;
    let ids_at_start = insert_runs(&server.store, 5).await;
    let response = subscribe(&server, &format!("{RUNS}?limit=3"), &key, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut events = EventReader::new(response);
    let newest_first: Vec<String> = ids_at_start.iter().rev().map(DocumentId::encode).collect();

    let Event { event, id: end, data: page } = events.next().await;
    assert_eq!(event, "page");
    assert_eq!(ids(&page), newest_first[..3]);
    assert_eq!((page["hasMore"].clone(), page["nextCursor"].as_str()), (json!(true), Some(end.as_str())));

    // An insert at the head grows the page: its end stays where it was.
    let new = insert_runs(&server.store, 1).await[0].encode();
    let Event { id, data: page, .. } = events.next().await;
    assert_eq!(id, end, "the end is pinned");
    let mut expected = vec![new.clone()];
    expected.extend_from_slice(&newest_first[..3]);
    assert_eq!(ids(&page), expected);

    // A delete inside the page shrinks it; one after its end changes nothing in it.
    let inside = DocumentId::decode(&newest_first[1]).unwrap();
    let after_end = ids_at_start[0];
    server.store.transact(|tx| tx.delete(after_end)).await.unwrap();
    server.store.transact(|tx| tx.delete(inside)).await.unwrap();
    let Event { data: page, .. } = events.next().await;
    assert_eq!(ids(&page), [new.clone(), newest_first[0].clone(), newest_first[2].clone()]);
    assert_eq!(page["hasMore"], true, "one item is left after the end");

    // The next page starts exactly at the end: no gap, no overlap.
    let (_, next) = get(&server, &format!("{RUNS}?limit=10&cursor={end}"), &key).await;
    assert_eq!(ids(&next), [newest_first[3].clone()]);
    drop(events);

    // Reconnecting with the last event's id resumes the same page, as it is now.
    let response = subscribe(&server, &format!("{RUNS}?limit=3"), &key, Some(&end)).await;
    let mut resumed = EventReader::new(response);
    let Event { id, data: page, .. } = resumed.next().await;
    assert_eq!(id, end);
    assert_eq!(ids(&page), [new, newest_first[0].clone(), newest_first[2].clone()]);
    drop(resumed);

    let response = subscribe(&server, &format!("{RUNS}?limit=3"), &key, Some("forged")).await;
    let (status, _, body) = json_of(response).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION", Some("Last-Event-ID"));
    let response = subscribe(&server, &format!("{RUNS}?limit=0"), &key, None).await;
    let (status, _, body) = json_of(response).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION", Some("limit"));
    server.stop().await;
}

#[tokio::test]
async fn live_lists_beyond_the_configured_maximum_get_503() {
    let server = TestServer::start_with(|mut config| {
        config.admin_key = Some(ADMIN_KEY.to_owned());
        config.rest =
            RestConfig { lists: vec![RestList::new(RUNS, "runs")], max_live_lists: 2, ..RestConfig::default() };
        config
    })
    .await;
    let key = new_key(&server).await;
    let first = subscribe(&server, RUNS, &key, None).await;
    let second = subscribe(&server, RUNS, &key, None).await;
    assert_eq!((first.status(), second.status()), (StatusCode::OK, StatusCode::OK));
    let (status, _, body) = json_of(subscribe(&server, RUNS, &key, None).await).await;
    assert_error(status, &body, StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", None);
    assert_eq!(get(&server, RUNS, &key).await.0, StatusCode::OK, "plain pages are not counted");
    // A closed stream frees its place once the server notices, at its next write: make it write.
    let mut events = EventReader::new(first);
    events.next().await;
    drop(events);
    insert_runs(&server.store, 1).await;
    let reopened = tokio::time::timeout(PATIENCE, async {
        loop {
            let response = subscribe(&server, RUNS, &key, None).await;
            if response.status() == StatusCode::OK {
                return response;
            }
        }
    })
    .await
    .expect("the closed stream's place is freed");
    drop((second, reopened));
    server.stop().await;
}

#[tokio::test]
async fn a_deployment_holds_at_most_max_api_keys() {
    let server = start().await;
    let prefix = livebase_server::rest::DEFAULT_API_KEY_PREFIX;
    let new = api_keys::NewApiKey { name: "bulk".to_owned(), rate_limit_per_minute: None };
    for _ in 0..MAX_API_KEYS - 1 {
        api_keys::create(&server.store, prefix, &new).await.unwrap();
    }
    let (status, last) = create_key(&server, json!({ "name": "last" })).await;
    assert_eq!(status, StatusCode::CREATED, "key number {MAX_API_KEYS} is allowed");
    let (status, body) = create_key(&server, json!({ "name": "one too many" })).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION", None);
    assert!(body["error"]["message"].as_str().unwrap().contains("MAX_API_KEYS"), "{body}");
    // Revoking one makes room again.
    let id = last["id"].as_str().unwrap();
    let response = client()
        .delete(url(&server, &format!("/api/admin/api_keys/{id}")))
        .header("Authorization", format!("Convex {ADMIN_KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(create_key(&server, json!({ "name": "again" })).await.0, StatusCode::CREATED);
    server.stop().await;
}

async fn revoke_key(server: &TestServer, id: &str) -> StatusCode {
    let response = client()
        .delete(url(server, &format!("/api/admin/api_keys/{id}")))
        .header("Authorization", format!("Convex {ADMIN_KEY}"))
        .send()
        .await
        .unwrap();
    response.status()
}

#[tokio::test]
async fn a_single_record_is_200_then_404_once_deleted_and_400_for_a_bad_or_foreign_id() {
    let server = start().await;
    let (_, created) = create_key(&server, json!({ "name": "reader" })).await;
    let key = created["key"].as_str().unwrap().to_owned();
    let ids = insert_runs(&server.store, 3).await;
    let (note, _) = server.store.transact(|tx| tx.insert("notes", Object::new())).await.unwrap();

    let record = |id: &DocumentId| format!("{RUNS}/{}", id.encode());
    let (status, body) = get(&server, &record(&ids[1]), &key).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({ "id": ids[1].encode(), "n": "1" }), "the list's projection (int64 as a string)");
    let (status, body) = get(&server, &format!("{NOTES}/{}", note.encode()), &key).await;
    assert_eq!((status, &body["_id"]), (StatusCode::OK, &json!(note.encode())), "the whole document by default");

    server.store.transact(|tx| tx.delete(ids[1])).await.unwrap();
    let (status, body) = get(&server, &record(&ids[1]), &key).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND", None);
    let never_inserted = DocumentId::generate(ids[0].table(), &mut rand::rng(), 0);
    let (status, body) = get(&server, &record(&never_inserted), &key).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "NOT_FOUND", None);

    let api_key_id = created["id"].as_str().unwrap();
    let mut altered = ids[0].encode().into_bytes();
    altered[0] = if altered[0] == b'a' { b'b' } else { b'a' };
    let altered = String::from_utf8(altered).unwrap();
    let malformed = ["abc", "%FF", "%20", &altered, &format!("{}x", ids[0].encode()), &"a".repeat(1_000)];
    for id in malformed.into_iter().chain([note.encode().as_str(), api_key_id]) {
        let (status, body) = get(&server, &format!("{RUNS}/{id}"), &key).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION", Some("id"));
    }
    let (status, body) = get(&server, &format!("{}?fields=n", record(&ids[0])), &key).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION", Some("query"));

    let (status, _, body) = json_of(client().get(url(&server, &record(&ids[0]))).send().await.unwrap()).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED", None);
    assert_eq!(revoke_key(&server, api_key_id).await, StatusCode::NO_CONTENT);
    let (status, body) = get(&server, &record(&ids[0]), &key).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED", None);
    server.stop().await;
}

#[tokio::test]
async fn cursors_work_only_with_their_key_and_die_with_it_alone() {
    let server = start().await;
    let (_, revoked) = create_key(&server, json!({ "name": "revoked" })).await;
    let (revoked_key, revoked_id) = (revoked["key"].as_str().unwrap(), revoked["id"].as_str().unwrap());
    let key = new_key(&server).await;
    insert_runs(&server.store, 30).await;
    let expected = stored_order(&server.store);

    let (_, revoked_page) = get(&server, &format!("{RUNS}?limit=10"), revoked_key).await;
    let revoked_cursor = revoked_page["nextCursor"].as_str().unwrap().to_owned();
    let (_, first) = get(&server, &format!("{RUNS}?limit=10"), &key).await;
    let cursor = first["nextCursor"].as_str().unwrap().to_owned();
    assert_ne!(cursor, revoked_cursor, "the same position, told apart by key");

    // Another key's cursor, as a list cursor and as a live list's cursor or event id.
    let (status, body) = get(&server, &format!("{RUNS}?limit=10&cursor={revoked_cursor}"), &key).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION", Some("cursor"));
    let (status, _, body) =
        json_of(subscribe(&server, &format!("{RUNS}?cursor={revoked_cursor}"), &key, None).await).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION", Some("cursor"));
    let (status, _, body) = json_of(subscribe(&server, RUNS, &key, Some(&revoked_cursor)).await).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "VALIDATION", Some("Last-Event-ID"));

    assert_eq!(get(&server, &format!("{RUNS}?limit=10&cursor={revoked_cursor}"), revoked_key).await.0, StatusCode::OK);
    assert_eq!(revoke_key(&server, revoked_id).await, StatusCode::NO_CONTENT);
    let (status, body) = get(&server, &format!("{RUNS}?limit=10&cursor={revoked_cursor}"), revoked_key).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "UNAUTHORIZED", None);

    // The other key's walk goes on from where it was, to the end.
    let mut seen = ids(&first);
    let mut cursor = Some(cursor);
    while let Some(current) = cursor {
        let (status, page) = get(&server, &format!("{RUNS}?limit=10&cursor={current}"), &key).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(ids(&page));
        cursor = page["nextCursor"].as_str().map(str::to_owned);
        assert!(seen.len() <= expected.len(), "the walk ends");
    }
    assert_eq!(seen, expected);
    server.stop().await;
}

#[tokio::test]
async fn the_openapi_document_describes_the_lists_and_the_admin_api() {
    let server = start().await;
    let (status, _, document) = json_of(client().get(url(&server, "/api/openapi.json")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(document["openapi"], "3.0.3");
    for path in
        [RUNS, NOTES, "/api/v1/runs/{id}", "/api/v1/notes/{id}", "/api/admin/api_keys", "/api/admin/api_keys/{id}"]
    {
        assert!(document["paths"][path].is_object(), "{path} is documented");
    }
    let limit = &document["paths"][RUNS]["get"]["parameters"][0];
    assert_eq!((limit["name"].as_str(), limit["schema"]["maximum"].as_u64()), (Some("limit"), Some(100)));
    server.stop().await;
}

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python environment of `scripts/python-env.sh` (made on first use).
fn python_venv() -> PathBuf {
    let output = std::process::Command::new(repository_root().join("scripts/python-env.sh")).output().unwrap();
    assert!(output.status.success(), "python-env.sh: {}", String::from_utf8_lossy(&output.stderr));
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

/// Runs a seed client against a list of 250 runs and checks it printed every id, newest first.
async fn check_seed_client(program: &Path, args: &[&Path]) {
    let server = start().await;
    let key = new_key(&server).await;
    insert_runs(&server.store, 250).await;
    let output = tokio::process::Command::new(program)
        .args(args)
        .env("LIVEBASE_URL", format!("http://{}", server.addr))
        .env("CC_KEY", &key)
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let printed: Vec<String> = String::from_utf8(output.stdout).unwrap().lines().map(str::to_owned).collect();
    assert_eq!(printed, stored_order(&server.store));
    server.stop().await;
}

#[tokio::test]
async fn seed_001s_typescript_client_walks_a_list_to_its_end() {
    let js = repository_root().join("crates/server/tests/js");
    let esbuild = js.join("node_modules/.bin/esbuild");
    assert!(esbuild.exists(), "run `npm ci --prefix crates/server/tests/js` (scripts/test.sh does)");
    let out = tempfile::tempdir().unwrap();
    let compiled = out.path().join("paginate.mjs");
    let source = repository_root().join("crates/server/tests/rest/paginate.ts");
    let status = std::process::Command::new(&esbuild)
        .arg(&source)
        .args(["--format=esm", "--platform=node", "--log-level=warning"])
        .arg(format!("--outfile={}", compiled.display()))
        .status()
        .unwrap();
    assert!(status.success());
    check_seed_client(Path::new("node"), &[&compiled]).await;
}

#[tokio::test]
async fn seed_001s_python_client_walks_a_list_to_its_end() {
    let python = python_venv().join("bin/python");
    check_seed_client(&python, &[&repository_root().join("crates/server/tests/rest/paginate.py")]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_errors() {
    let venv = python_venv();
    let server = start().await;
    let key = new_key(&server).await;
    insert_runs(&server.store, 30).await;
    // The lists with an API key, the admin endpoints with the admin key: each gets past its auth.
    let passes = [
        ("--exclude-path-regex", format!("Authorization: Bearer {key}")),
        ("--include-path-regex", format!("Authorization: Convex {ADMIN_KEY}")),
    ];
    for (filter, header) in passes {
        let output = tokio::process::Command::new(venv.join("bin/schemathesis"))
            .arg("run")
            .arg(url(&server, "/api/openapi.json"))
            .args([filter, "^/api/admin/"])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            ])
            .args(["--max-examples", "60", "--seed", "1"])
            .args(["--header", &header])
            .env("NO_COLOR", "1")
            .output()
            .await
            .unwrap();
        let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "{report}");
        assert!(!report.contains("Authentication failed"), "{report}");
    }
    server.stop().await;
}
