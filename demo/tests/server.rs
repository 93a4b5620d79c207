//! The demo's backends end to end over HTTP: the run contract (`--port`, `--site-port`, `--data`,
//! `GET /version`), the web page on the site port, dev sign-in on both ports with a token the API
//! accepts, also after a restart (both backends), and the runs list and its single records behind
//! API keys (the Rust binary's server configuration: REST lists are not part of a `convex/` folder).

#[macro_use]
mod common;

use common::{ADMIN_KEY, Backend, start};
use serde_json::{Value, json};

async fn post(url: String, authorization: Option<String>, body: Value) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(url).json(&body);
    if let Some(authorization) = authorization {
        request = request.header("Authorization", authorization);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

/// Signs Ada in on the site port; answers her token.
async fn sign_in(site: &str) -> (String, Value) {
    let (status, signed_in) = post(format!("{site}/auth/dev"), None, json!({"name": "Ada"})).await;
    assert_eq!(status, 200, "{signed_in}");
    (signed_in["token"].as_str().expect("a token").to_owned(), signed_in)
}

async fn sign_in_tokens_work_on_the_api(backend: Backend) {
    let data = tempfile::tempdir().unwrap();
    let (mut child, api, site) = start(backend, data.path()).await;

    let (token, signed_in) = sign_in(&site).await;
    let (status, again) = post(format!("{api}/http/auth/dev"), None, json!({"name": "Ada"})).await;
    assert_eq!(status, 200);
    assert_eq!(again["userId"], signed_in["userId"], "the same name is the same user, on either port");
    let (status, refused) = post(format!("{site}/auth/dev"), None, json!({"nom": "Ada"})).await;
    assert_eq!(status, 400, "{refused}");
    let (status, refused) = post(format!("{site}/auth/dev"), None, json!({"name": " "})).await;
    assert_eq!((status, &refused["code"]), (400, &json!("INVALID")), "{refused}");

    let me = json!({"path": "users:me", "args": {}, "format": "json"});
    let (_, answer) = post(format!("{api}/api/query"), Some(format!("Bearer {token}")), me.clone()).await;
    assert_eq!(answer["value"]["_id"], signed_in["userId"], "{answer}");
    let (status, _) = post(format!("{api}/api/query"), Some("Bearer not-a-token".into()), me).await;
    assert_eq!(status, 401);
    child.kill().await.unwrap();
}

/// The sign-in key is the deployment's: a token signed before a restart (even a `kill -9`) still
/// signs its user in after it.
async fn sign_in_tokens_survive_a_restart(backend: Backend) {
    let data = tempfile::tempdir().unwrap();
    let (mut child, _, site) = start(backend, data.path()).await;
    let (token, signed_in) = sign_in(&site).await;
    child.kill().await.unwrap();

    let (mut child, api, _) = start(backend, data.path()).await;
    let me = json!({"path": "users:me", "args": {}, "format": "json"});
    let (status, answer) = post(format!("{api}/api/query"), Some(format!("Bearer {token}")), me).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["value"]["_id"], signed_in["userId"], "{answer}");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn runs_are_listed_with_an_api_key() {
    let data = tempfile::tempdir().unwrap();
    let (mut child, api, site) = start(Backend::Rust, data.path()).await;
    let (token, _) = sign_in(&site).await;
    let create = json!({"path": "runs:create", "args": {"title": "Scales"}, "format": "json"});
    let (_, created) = post(format!("{api}/api/mutation"), Some(format!("Bearer {token}")), create).await;
    assert_eq!(created["status"], "success", "{created}");
    let (status, key) =
        post(format!("{api}/api/admin/api_keys"), Some(format!("Convex {ADMIN_KEY}")), json!({"name": "ci"})).await;
    assert_eq!(status, 201, "{key}");
    let key = key["key"].as_str().unwrap().to_owned();
    let runs: Value = reqwest::Client::new()
        .get(format!("{site}/api/v1/runs?limit=10"))
        .header("Authorization", format!("Bearer {key}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(runs["data"].as_array().map(Vec::len), Some(1), "{runs}");
    assert_eq!(runs["data"][0]["title"], "Scales");
    assert_eq!(runs["hasMore"], false);
    let id = runs["data"][0]["_id"].as_str().expect("an id");
    let run = reqwest::Client::new()
        .get(format!("{site}/api/v1/runs/{id}"))
        .header("Authorization", format!("Bearer {key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(run.status(), 200);
    assert_eq!(run.json::<Value>().await.unwrap(), runs["data"][0], "the record as the list shows it");
    child.kill().await.unwrap();
}

async fn the_site_serves_the_page_with_the_api_url_and_its_bundle(backend: Backend) {
    let data = tempfile::tempdir().unwrap();
    let (mut child, api, site) = start(backend, data.path()).await;
    let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web/dist");

    let page = reqwest::get(format!("{site}/?view=students")).await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(page.headers()["cache-control"], "no-cache");
    let html = page.text().await.unwrap();
    assert!(html.contains(&format!(r#"<meta name="livebase-api" content="{api}">"#)), "{html}");
    assert!(html.contains(r#"<script type="module" src="/app.js">"#), "{html}");

    let script = reqwest::get(format!("{site}/app.js")).await.unwrap();
    assert_eq!(script.status(), 200);
    assert_eq!(script.headers()["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(script.bytes().await.unwrap(), std::fs::read(dist.join("app.js")).unwrap(), "the embedded bundle");
    assert_eq!(reqwest::get(format!("{site}/missing.js")).await.unwrap().status(), 404);
    child.kill().await.unwrap();
}

#[tokio::test]
async fn a_bad_api_url_is_refused_before_the_deployment_is_created() {
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("data");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_piano-mirror"))
        .args(["--data", data.to_str().unwrap(), "--port", "0", "--site-port", "0", "--api-url", "127.0.0.1:3210"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("it must start with http:// or https://"), "{stderr}");
    assert!(!data.exists(), "nothing is created");
}

for_both_backends!(
    sign_in_tokens_work_on_the_api,
    sign_in_tokens_survive_a_restart,
    the_site_serves_the_page_with_the_api_url_and_its_bundle
);
