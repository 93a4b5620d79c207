//! REST list requests per second on loopback: `GET /api/v1/runs?limit=100&cursor=...` with an API
//! key, each request a page of 100 documents from a 10,000-document table, loaded by `wrk` (a
//! separate process, `wrk.rs`) over keep-alive connections. Every request picks one of the
//! table's 100 page cursors at random, so the pages come from all depths of the list.

use std::fmt::Write as _;

use livebase_functions::{Registry, Runtime};
use livebase_server::rest::api_keys::{self, NewApiKey};
use livebase_server::rest::{RestConfig, RestList};
use livebase_server::{ServerConfig, serve};
use livebase_store::{Store, StoreConfig};
use livebase_value::{Object, Value};
use tokio::net::TcpListener;

use crate::Effort;
use crate::report::Report;
use crate::wrk::{self, CONNECTIONS};

const SECTION: &str = "REST list endpoint (HTTP, loopback, wrk)";
const PATH: &str = "/api/v1/runs";
const DOCUMENTS: usize = 10_000;
const LIMIT: usize = 100;

pub fn run(effort: Effort, report: &mut Report) {
    println!("{SECTION}");
    if !wrk::installed() {
        report.skipped("REST list benchmark skipped: `wrk` is not installed (`apt-get install wrk`)");
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let directory = tempfile::tempdir().expect("temporary directory");
    let (address, key, shutdown) = runtime.block_on(start_server(directory.path()));
    let paths = runtime.block_on(page_paths(address, &key));
    let script = directory.path().join("pages.lua");
    std::fs::write(&script, lua_script(&paths, &key)).expect("write the wrk script");

    let runs = (0..effort.runs).map(|_| wrk::run(address, &script, effort.duration).requests_per_second).collect();
    report.add(
        SECTION,
        &format!("pages of {LIMIT} from {DOCUMENTS} documents, {CONNECTIONS} connections"),
        "requests/s",
        runs,
    );
    shutdown.cancel();
}

async fn start_server(
    directory: &std::path::Path,
) -> (std::net::SocketAddr, String, livebase_server::CancellationToken) {
    let store = Store::open(StoreConfig::new(directory)).expect("open store");
    store
        .transact(|tx| {
            for n in 0..DOCUMENTS {
                let fields = Object::from([
                    ("n".to_owned(), Value::Int64(n as i64)),
                    ("name".to_owned(), Value::from(format!("run {n}"))),
                    ("status".to_owned(), Value::from("succeeded")),
                ]);
                tx.insert("runs", fields)?;
            }
            Ok(())
        })
        .await
        .expect("load runs");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("local address");
    let config = ServerConfig {
        rest: RestConfig { lists: vec![RestList::new(PATH, "runs")], ..RestConfig::default() },
        ..ServerConfig::default()
    };
    let shutdown = config.shutdown.clone();
    let server_store = store.clone();
    tokio::spawn(async move { serve(listener, Runtime::new(server_store, Registry::new()), config).await });
    // `serve` declares `_api_keys` before it listens; creating a key waits for that.
    let new = NewApiKey { name: "bench".to_owned(), rate_limit_per_minute: None };
    let key = loop {
        match api_keys::create(&store, api_keys::DEFAULT_API_KEY_PREFIX, &new).await {
            Ok(created) => break created.key,
            Err(_) => tokio::task::yield_now().await,
        }
    };
    (address, key, shutdown)
}

/// The path of every page of the list, found by walking it once.
async fn page_paths(address: std::net::SocketAddr, key: &str) -> Vec<String> {
    let mut paths = vec![format!("{PATH}?limit={LIMIT}")];
    loop {
        let body = get(address, paths.last().expect("not empty"), key).await;
        let page: serde_json::Value = serde_json::from_str(&body).expect("a JSON page");
        match page["nextCursor"].as_str() {
            Some(cursor) => paths.push(format!("{PATH}?limit={LIMIT}&cursor={cursor}")),
            None => return paths,
        }
    }
}

/// One HTTP/1.1 request on its own connection, for the setup only (wrk does the measured load).
async fn get(address: std::net::SocketAddr, path: &str, key: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect");
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("receive");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

fn lua_script(paths: &[String], key: &str) -> String {
    let mut script = String::from("local paths = {\n");
    for path in paths {
        writeln!(script, "  \"{path}\",").expect("write to a string");
    }
    write!(
        script,
        "}}\nwrk.headers[\"Authorization\"] = \"Bearer {key}\"\n\
         request = function()\n  return wrk.format(\"GET\", paths[math.random(#paths)])\nend\n"
    )
    .expect("write to a string");
    script
}
