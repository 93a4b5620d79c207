//! A writer and two read replicas as separate `livebase` processes on one PostgreSQL schema, with
//! the official Rust client subscribed on each replica: mutations sent to any node (over HTTP and
//! over WebSocket) reach every client in commit order without gaps, a mutation sent to a replica
//! answers only once that replica shows it, a replica killed with SIGKILL comes back and its clients
//! resume, and after the writer is killed a new writer on the same database has every acknowledged
//! commit and the replicas forward to it. A writer that lost its lease but still runs sends the
//! replicas on to the new writer, and a replica shows an HTTP route's writes before it answers.
//!
//! Needs PostgreSQL (`LIVEBASE_TEST_POSTGRES`, by default `postgres://postgres@127.0.0.1:5432/test`);
//! without it the test says loudly that it is skipped, unless `LIVEBASE_REQUIRE_POSTGRES=1`.

#[path = "common/rust_clients.rs"]
mod rust_clients;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use convex::{ConvexClient, FunctionResult, QuerySubscription};
use rust_clients::{RustClients, args, next_bodies};
use serde_json::{Value as Json, json};
use tokio::process::{Child, Command};

const BINARY: &str = env!("CARGO_BIN_EXE_livebase");
/// A bound on waiting for the processes and clients, not a pause: the test fails if it is reached.
/// Covers a client's reconnection backoff after its replica was killed.
const PATIENCE: Duration = Duration::from_secs(60);
const POSTGRES_VARIABLE: &str = "LIVEBASE_TEST_POSTGRES";
const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";
/// Set (to 1) where PostgreSQL is known to run: the test then fails instead of being skipped.
const REQUIRE_POSTGRES_VARIABLE: &str = "LIVEBASE_REQUIRE_POSTGRES";

/// A schema of the test PostgreSQL of this test's own, dropped at the end.
struct TestSchema {
    url: String,
    name: String,
}

impl TestSchema {
    /// `None` (said loudly) when there is no PostgreSQL to use.
    fn new() -> Option<TestSchema> {
        let url = std::env::var(POSTGRES_VARIABLE).unwrap_or_else(|_| DEFAULT_POSTGRES.to_owned());
        match sql(&url, "SELECT 1") {
            Ok(()) => Some(TestSchema { url, name: format!("livebase_test_{:016x}", rand::random::<u64>()) }),
            Err(why) if std::env::var(REQUIRE_POSTGRES_VARIABLE).is_ok_and(|value| value == "1") => {
                panic!("PostgreSQL not reachable at {url} ({why}), but {REQUIRE_POSTGRES_VARIABLE}=1 says it must be")
            }
            Err(why) => {
                eprintln!("!!!!! SKIPPED: PostgreSQL not reachable at {url} ({why}); set {POSTGRES_VARIABLE} !!!!!");
                None
            }
        }
    }

    fn execute(&self, statements: &str) {
        sql(&self.url, &format!("SET search_path TO {}; {statements}", self.name)).expect("the statements run");
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        if let Err(error) = sql(&self.url, &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name)) {
            eprintln!("dropping test schema {} failed: {error}", self.name);
        }
    }
}

/// An `ACCESS EXCLUSIVE` lock on one of the test schema's tables, held by an open transaction on a
/// connection of its own until dropped.
struct TableLock {
    release: Option<std::sync::mpsc::Sender<()>>,
    holder: Option<std::thread::JoinHandle<()>>,
}

impl TableLock {
    fn take(db: &TestSchema, table: &str) -> TableLock {
        let (url, statement) = (db.url.clone(), format!("LOCK TABLE {}.{table} IN ACCESS EXCLUSIVE MODE", db.name));
        let (locked, taken) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
            let mut transaction = client.transaction().expect("begin");
            transaction.batch_execute(&statement).expect("lock");
            locked.send(()).expect("the test waits for the lock");
            // Nothing is sent: the sender's drop releases the lock.
            let _ = released.recv();
            transaction.rollback().expect("rollback");
        });
        taken.recv().expect("the lock is taken");
        TableLock { release: Some(release), holder: Some(holder) }
    }
}

impl Drop for TableLock {
    fn drop(&mut self) {
        self.release.take();
        if let Some(holder) = self.holder.take() {
            holder.join().expect("the lock holder ends");
        }
    }
}

/// Runs `statements` on a plain thread: the blocking client can't run inside the test's runtime.
fn sql(url: &str, statements: &str) -> Result<(), String> {
    let (url, statements) = (url.to_owned(), statements.to_owned());
    std::thread::spawn(move || {
        let mut config: postgres::Config = url.parse().map_err(|error| format!("{error}"))?;
        config.connect_timeout(Duration::from_secs(5));
        let mut client = config.connect(postgres::NoTls).map_err(|error| error.to_string())?;
        client.batch_execute(&statements).map_err(|error| error.to_string())
    })
    .join()
    .expect("no panic")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One `livebase serve` process.
struct Node {
    child: Child,
    args: Vec<String>,
    url: String,
    /// The site port, where the app's HTTP routes are served at the root.
    site_url: String,
}

impl Node {
    async fn writer(db: &TestSchema) -> Node {
        Node::start(vec!["--db".to_owned(), db.url.clone(), "--db-schema".to_owned(), db.name.clone()]).await
    }

    async fn replica(db: &TestSchema) -> Node {
        Node::start(vec!["--replica-of".to_owned(), db.url.clone(), "--db-schema".to_owned(), db.name.clone()]).await
    }

    async fn start(mut args: Vec<String>) -> Node {
        let (port, site_port) = (free_port(), free_port());
        args.extend(["--port".to_owned(), port.to_string(), "--site-port".to_owned(), site_port.to_string()]);
        let (url, site_url) = (format!("http://127.0.0.1:{port}"), format!("http://127.0.0.1:{site_port}"));
        let mut node = Node { child: spawn(&args), args, url, site_url };
        node.ready().await;
        node
    }

    /// Waits until the node answers `/version`, which it does once it serves.
    async fn ready(&mut self) {
        let client = reqwest::Client::new();
        let ready = async {
            loop {
                if let Ok(response) = client.get(format!("{}/version", self.url)).send().await {
                    return response.status();
                }
                if let Some(status) = self.child.try_wait().unwrap() {
                    panic!("livebase {:?} exited: {status}", self.args);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let status = tokio::time::timeout(PATIENCE, ready).await.expect("the node answers /version");
        assert_eq!(status, 200);
    }

    /// SIGKILL: no shutdown, no lease released.
    async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }

    /// Starts the process again with the same arguments, on the same ports.
    async fn restart(&mut self) {
        self.child = spawn(&self.args);
        self.ready().await;
    }

    /// Calls `path` over the HTTP API; the value of its successful outcome.
    async fn call(&self, kind: &str, path: &str, args: Json) -> Json {
        let response = reqwest::Client::new()
            .post(format!("{}/api/{kind}", self.url))
            .body(json!({ "path": path, "args": args }).to_string())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let outcome: Json = serde_json::from_str(&response.text().await.unwrap()).unwrap();
        assert!(status.is_success() && outcome["status"] == "success", "{kind} {path} on {}: {outcome}", self.url);
        outcome["value"].clone()
    }

    async fn bodies(&self) -> Vec<String> {
        let messages = self.call("query", "messages:list", json!({})).await;
        messages.as_array().unwrap().iter().map(|message| message["body"].as_str().unwrap().to_owned()).collect()
    }

    /// Sends a message over HTTP, and checks that this node shows it as soon as the call answered.
    async fn send(&self, body: &str) {
        self.call("mutation", "messages:send", json!({ "body": body })).await;
        assert_eq!(self.bodies().await.last().map(String::as_str), Some(body), "read-your-writes on {}", self.url);
    }
}

/// The header a writer answers a replica's proxied HTTP route with; never passed on to clients.
const COMMIT_TS_HEADER: &str = "x-livebase-commit-ts";

/// `POST <url>/messages` with `body`, the app's HTTP route that sends a message; its status and
/// text. Checks that the writer's commit timestamp for replicas does not reach the client.
async fn post_message(url: &str, body: &str) -> (u16, String) {
    let response = reqwest::Client::new().post(format!("{url}/messages")).body(body.to_owned()).send().await.unwrap();
    assert!(!response.headers().contains_key(COMMIT_TS_HEADER), "{:?}", response.headers());
    (response.status().as_u16(), response.text().await.unwrap())
}

fn spawn(args: &[String]) -> Child {
    Command::new(BINARY)
        .arg("serve")
        .args(args)
        .env_remove("LIVEBASE_ADMIN_KEY")
        .env_remove("LIVEBASE_DB")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts")
}

/// A Rust client on a replica, subscribed to `messages:list`, and what it has seen so far.
struct Subscriber {
    client: ConvexClient,
    subscription: QuerySubscription,
    seen: Vec<String>,
}

impl Subscriber {
    async fn connect(clients: &RustClients, node: &Node) -> Subscriber {
        let mut client = clients.connect(&node.url).await;
        let mut subscription = client.subscribe("messages:list", BTreeMap::new()).await.unwrap();
        let seen = next_bodies(&mut subscription, PATIENCE).await;
        Subscriber { client, subscription, seen }
    }

    /// Follows the subscription until it shows `expected`. Every result on the way must be a prefix
    /// of it no shorter than the one before: commit order, no gaps, never back in time.
    async fn follow_to(&mut self, expected: &[String]) {
        while self.seen != expected {
            let next = next_bodies(&mut self.subscription, PATIENCE).await;
            assert!(
                expected.starts_with(&next),
                "a result out of commit order: {next:?}, expected a prefix of {expected:?}"
            );
            assert!(next.len() >= self.seen.len(), "back in time: {next:?} after {:?}", self.seen);
            self.seen = next;
        }
    }

    /// Sends a message over this client's WebSocket (forwarded by its replica, with a replay key).
    async fn send(&mut self, body: &str) {
        let sent = self.client.mutation("messages:send", args(&[("body", body.into())])).await.unwrap();
        assert!(matches!(sent, FunctionResult::Value(convex::Value::String(_))), "{sent:?}");
    }
}

/// The next message's body, noted in `sent`, which is commit order: each send answers before the next.
fn next(sent: &mut Vec<String>) -> String {
    sent.push(format!("m{}", sent.len()));
    sent.last().expect("just pushed").clone()
}

async fn follow_all(subscribers: &mut [Subscriber], expected: &[String]) {
    for subscriber in subscribers {
        subscriber.follow_to(expected).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_and_two_replicas_serve_every_change_in_order_through_crashes_and_failover() {
    let Some(db) = TestSchema::new() else { return };
    let mut writer = Node::writer(&db).await;
    let mut first = Node::replica(&db).await;
    let second = Node::replica(&db).await;
    let clients = RustClients::new();
    // Two clients on each replica: [0] and [2] only watch, [1] and [3] also send.
    let mut subscribers = Vec::new();
    for node in [&first, &first, &second, &second] {
        subscribers.push(Subscriber::connect(&clients, node).await);
    }
    assert!(subscribers.iter().all(|subscriber| subscriber.seen.is_empty()));
    let mut sent: Vec<String> = Vec::new();

    // Every node takes writes: the writer directly, the replicas by forwarding.
    writer.send(&next(&mut sent)).await;
    first.send(&next(&mut sent)).await;
    second.send(&next(&mut sent)).await;
    subscribers[1].send(&next(&mut sent)).await;
    subscribers[3].send(&next(&mut sent)).await;
    first.send(&next(&mut sent)).await;
    let expected = sent.clone();
    follow_all(&mut subscribers, &expected).await;

    // A replica killed mid-stream misses commits, comes back from PostgreSQL, and its clients resume.
    first.kill().await;
    second.send(&next(&mut sent)).await;
    subscribers[3].send(&next(&mut sent)).await;
    first.restart().await;
    first.send(&next(&mut sent)).await;
    subscribers[1].send(&next(&mut sent)).await;
    let expected = sent.clone();
    follow_all(&mut subscribers, &expected).await;

    // The writer dies without releasing its lease; once the lease has expired (made so here rather
    // than waited for) a new writer takes over the same database, and the replicas find it.
    writer.kill().await;
    db.execute("UPDATE lease SET expires_at = now() - interval '1 second'");
    let new_writer = Node::writer(&db).await;
    first.send(&next(&mut sent)).await;
    subscribers[3].send(&next(&mut sent)).await;
    new_writer.send(&next(&mut sent)).await;
    second.send(&next(&mut sent)).await;
    let expected = sent.clone();
    follow_all(&mut subscribers, &expected).await;
    assert_eq!(new_writer.bodies().await, expected, "no acknowledged commit is lost");
    assert_eq!(first.bodies().await, expected);

    drop(subscribers);
    clients.shut_down();
    for mut node in [new_writer, first, second] {
        node.kill().await;
    }
}

/// A client's `maxObservedTimestamp` one nanosecond past what the replica has: the replica must not
/// answer before a commit takes it there, or the client would see time go back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reconnecting_to_a_replica_behind_what_it_saw_waits_until_the_replica_catches_up() {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let Some(db) = TestSchema::new() else { return };
    let mut writer = Node::writer(&db).await;
    let mut replica = Node::replica(&db).await;
    writer.send("before").await;
    let latest = reqwest::Client::new().post(format!("{}/api/query_ts", replica.url)).send().await.unwrap();
    let latest: Json = serde_json::from_str(&latest.text().await.unwrap()).unwrap();
    let decode = |ts: &Json| u64::from_le_bytes(STANDARD.decode(ts.as_str().unwrap()).unwrap().try_into().unwrap());
    let seen = decode(&latest["ts"]) + 1;

    let url = format!("{}/api/1.48.0/sync", replica.url.replacen("http", "ws", 1));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let connect = json!({ "type": "Connect", "sessionId": "3f0c1a52-9d7e-4b1a-8c55-0d6f3e2a9b10", "connectionCount": 1,
                          "lastCloseReason": "test", "maxObservedTimestamp": STANDARD.encode(seen.to_le_bytes()) });
    let subscribe = json!({ "type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1,
                            "modifications": [{ "type": "Add", "queryId": 0, "udfPath": "messages:list", "args": [{}] }] });
    // An action answered (by the writer) after the subscription was made: without waiting, the replica
    // would send the subscription's first result, at the timestamp it has, before the answer.
    let action = json!({ "type": "Action", "requestId": 0, "udfPath": "messages:echo", "args": [{ "text": "hi" }] });
    for message in [connect, subscribe, action] {
        socket.send(Message::text(message.to_string())).await.unwrap();
    }
    let mut next_message = async || loop {
        let message = tokio::time::timeout(PATIENCE, socket.next()).await.expect("a message").unwrap().unwrap();
        let message: Json = serde_json::from_str(message.to_text().unwrap()).unwrap();
        if message["type"] != "Ping" {
            return message;
        }
    };
    // Other commits of the writer (its own bookkeeping) may take the replica past `seen` at any
    // moment, so what is checked is every Transition's timestamp, up to the one showing `after`.
    let mut answered = false;
    loop {
        let message = next_message().await;
        if message["type"] == "ActionResponse" {
            assert_eq!(message["result"], "hi", "{message}");
            answered = true;
            writer.send("after").await;
            continue;
        }
        assert_eq!(message["type"], "Transition", "{message}");
        assert!(decode(&message["endVersion"]["ts"]) >= seen, "never before what the client saw: {message}");
        let value = &message["modifications"][0]["value"];
        let bodies: Vec<&str> = match value.as_array() {
            Some(messages) => messages.iter().map(|message| message["body"].as_str().unwrap()).collect(),
            None => continue,
        };
        if answered && bodies == ["before", "after"] {
            break;
        }
    }
    writer.kill().await;
    replica.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_passes_http_actions_on_to_the_writer_so_their_mutations_commit() {
    let Some(db) = TestSchema::new() else { return };
    let writer = Node::writer(&db).await;
    let replica = Node::replica(&db).await;
    for (base, body) in
        [(format!("{}/http", replica.url), "over the API port"), (replica.site_url.clone(), "over the site port")]
    {
        let (status, id) = post_message(&base, body).await;
        assert_eq!(status, 201, "POST {base}/messages: {id}");
        assert!(!id.is_empty(), "the new message's id");
        // Read at once: the replica answered only once it showed the route's commit.
        assert_eq!(replica.bodies().await.last().map(String::as_str), Some(body), "read-your-writes on the replica");
        assert_eq!(writer.bodies().await.last().map(String::as_str), Some(body), "committed on the writer");
    }
    let (status, answer) = post_message(&format!("{}/http/nowhere", replica.url), "x").await;
    assert_eq!(
        (status, answer.as_str()),
        (404, "No HttpAction routed for /nowhere/messages"),
        "the writer's answer as is"
    );
}

/// The first writer loses its lease to a second while it still runs. The replica, which knows the
/// first from an earlier forward, sends it the next mutation: the first refuses it as not the
/// writer (typed, nothing committed), and the replica finds the second through the lease and commits
/// there, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_that_lost_its_lease_sends_forwarded_calls_on_to_the_new_writer() {
    let Some(db) = TestSchema::new() else { return };
    let mut old_writer = Node::writer(&db).await;
    let replica = Node::replica(&db).await;
    replica.send("before the takeover").await;
    db.execute("UPDATE lease SET expires_at = now() - interval '1 second'");
    let mut new_writer = Node::writer(&db).await;

    replica.send("after the takeover").await;
    let expected = ["before the takeover", "after the takeover"];
    assert_eq!(new_writer.bodies().await, expected, "committed once, on the new writer");
    assert_eq!(replica.bodies().await, expected);

    // What the replica was told: the old writer refuses a replica's call before running it.
    let refusal = reqwest::Client::new()
        .post(format!("{}/http/messages", old_writer.url))
        .header("x-livebase-via-replica", "1")
        .body("to the old writer")
        .send()
        .await
        .unwrap();
    assert_eq!(refusal.status(), 503);
    assert!(refusal.headers().contains_key("x-livebase-not-the-writer"), "{:?}", refusal.headers());
    let refusal: Json = serde_json::from_str(&refusal.text().await.unwrap()).unwrap();
    assert_eq!(refusal["code"], "NotTheWriter", "{refusal}");
    assert_eq!(new_writer.bodies().await, expected, "the refused call ran nowhere");
    old_writer.kill().await;
    new_writer.kill().await;
}

/// A replica answers an HTTP route only once it shows the route's writes: held back from following
/// the writer, it answers 504 `ReplicaBehind` after `REPLICA_CATCH_UP_TIMEOUT` (10 s) rather than
/// answering at once with a state that lacks them; following again, it answers at once and shows them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_answers_an_http_route_only_once_it_shows_the_routes_writes() {
    let Some(db) = TestSchema::new() else { return };
    let writer = Node::writer(&db).await;
    let replica = Node::replica(&db).await;
    let held_back = "while the replica is held back";
    {
        // The replica reads `meta` before every log group it applies; the writer's commits do not.
        let _lock = TableLock::take(&db, "meta");
        let (status, answer) = post_message(&format!("{}/http", replica.url), held_back).await;
        assert_eq!(status, 504, "{answer}");
        let answer: Json = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["code"], "ReplicaBehind", "{answer}");
        assert_eq!(writer.bodies().await, [held_back], "committed on the writer, once");
    }
    let following = "once the replica follows again";
    let (status, _) = post_message(&format!("{}/http", replica.url), following).await;
    assert_eq!(status, 201);
    assert_eq!(replica.bodies().await, [held_back, following], "read-your-writes on the replica");
}
