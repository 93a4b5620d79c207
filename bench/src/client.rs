//! The bench's clients. A minimal client of Convex's sync protocol over tokio-tungstenite, speaking
//! the JSON messages directly (as `crates/sync/src/messages.rs` parses them): connect, subscribe,
//! mutate, and read the `sentAt` field that the benchmark app's `items` carry out of every query
//! update. And a caller of Convex's HTTP function API (`reqwest`), as the keynote-2 harness calls a
//! deployment.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value as Json, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What the bench's sockets (clients, and the raw broadcaster's ends) read into: the server's own
/// size. tungstenite zeroes its whole read buffer before every read, and its default (128 KiB) made
/// that the largest cost of 10,000 clients each reading one small Transition.
pub fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(livebase_server::WEBSOCKET_READ_BUFFER_BYTES)
}

/// Opens a WebSocket to `path` on `address`, with Nagle's algorithm off as a latency-minded
/// client has it.
pub async fn open(address: SocketAddr, path: &str) -> Socket {
    let url = format!("ws://{address}{path}");
    let (socket, _) = tokio_tungstenite::connect_async_with_config(url.as_str(), Some(websocket_config()), true)
        .await
        .unwrap_or_else(|error| panic!("connect to {url}: {error}"));
    socket
}

/// The next text message as JSON; `None` once the socket is closed.
pub async fn next_json(socket: &mut Socket) -> Option<Json> {
    let text = next_text(socket).await?;
    Some(serde_json::from_str(&text).expect("the server sends JSON"))
}

/// The next text message; `None` once the socket is closed.
async fn next_text(socket: &mut Socket) -> Option<tokio_tungstenite::tungstenite::Utf8Bytes> {
    loop {
        match socket.next().await? {
            Ok(Message::Text(text)) => return Some(text),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Hands the text of every message `socket` receives to `handle`, until the socket closes or
/// `stop` is cancelled: a subscribed client's reader task. Parsing is left to `handle`, which may
/// need only a field or two (see [`QueryUpdates`]).
pub async fn read_messages(mut socket: Socket, stop: livebase_server::CancellationToken, mut handle: impl FnMut(&str)) {
    // Made once: a fresh one per message would join the token's waiters, one list for all readers.
    let stopped = stop.cancelled_owned();
    tokio::pin!(stopped);
    loop {
        let message = tokio::select! {
            () = &mut stopped => return,
            message = next_text(&mut socket) => message,
        };
        let Some(message) = message else { return };
        handle(&message);
    }
}

pub async fn send_json(socket: &mut Socket, message: &Json) {
    socket.send(Message::text(message.to_string())).await.expect("send a message");
}

/// The writer's clock in microseconds since the Unix epoch: what `sentAt` holds. Writers and
/// readers are in one process, and a float64 holds these exactly.
pub fn now_micros() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_micros() as f64
}

/// What a subscriber measures in a server message: the `sentAt` of every query update of a
/// Transition, and the Transition's timestamp. Read without building the message's JSON tree: the
/// harness's subscribers share the 2 cores with the server they measure, and with 10,000 of them,
/// building a tree of every message took a good part of the CPU time the server needed.
#[derive(Debug, PartialEq)]
pub struct QueryUpdates {
    pub sent_at: Vec<f64>,
    /// The Transition's `endVersion.ts`, in nanoseconds.
    pub end_ts_nanos: Option<u64>,
}

impl QueryUpdates {
    pub fn read(message: &str) -> QueryUpdates {
        #[derive(Deserialize)]
        struct Message<'a> {
            #[serde(rename = "type", borrow)]
            kind: Cow<'a, str>,
            #[serde(default, borrow)]
            modifications: Vec<Modification<'a>>,
            #[serde(rename = "endVersion", borrow)]
            end_version: Option<Version<'a>>,
        }
        #[derive(Deserialize)]
        struct Modification<'a> {
            #[serde(rename = "type", borrow)]
            kind: Cow<'a, str>,
            #[serde(borrow)]
            value: Option<&'a RawValue>,
        }
        #[derive(Deserialize)]
        struct Version<'a> {
            #[serde(borrow)]
            ts: Cow<'a, str>,
        }
        #[derive(Deserialize)]
        struct SentAt {
            #[serde(rename = "sentAt")]
            sent_at: Option<f64>,
        }
        let message: Message<'_> = serde_json::from_str(message).expect("the server sends messages with a type");
        if message.kind != "Transition" {
            return QueryUpdates { sent_at: Vec::new(), end_ts_nanos: None };
        }
        let sent_at = message
            .modifications
            .iter()
            .filter(|modification| modification.kind == "QueryUpdated")
            .filter_map(|modification| serde_json::from_str::<SentAt>(modification.value?.get()).ok()?.sent_at)
            .collect();
        let end_ts_nanos = message.end_version.map(|version| decode_timestamp(&version.ts));
        QueryUpdates { sent_at, end_ts_nanos }
    }
}

pub fn mutation_message(request_id: u32, path: &str, args: Json) -> Json {
    json!({"type": "Mutation", "requestId": request_id, "udfPath": path, "args": [args]})
}

/// One sync-protocol session.
pub struct SyncClient {
    pub socket: Socket,
    query_set_version: u32,
    next_request: u32,
}

impl SyncClient {
    pub async fn connect(address: SocketAddr) -> SyncClient {
        let mut socket = open(address, "/api/sync").await;
        let session: u128 = rand::random();
        let session = format!("{session:032x}");
        let session_id = format!(
            "{}-{}-{}-{}-{}",
            &session[..8],
            &session[8..12],
            &session[12..16],
            &session[16..20],
            &session[20..]
        );
        let connect = json!({
            "type": "Connect",
            "sessionId": session_id,
            "connectionCount": 0,
            "lastCloseReason": "InitialConnect",
            "clientTs": 0,
        });
        send_json(&mut socket, &connect).await;
        SyncClient { socket, query_set_version: 0, next_request: 0 }
    }

    /// Adds `(query id, function path, args)` subscriptions and waits for the Transition that
    /// carries their first results; returns it.
    pub async fn subscribe(&mut self, queries: impl IntoIterator<Item = (u32, &str, Json)>) -> Json {
        let modifications: Vec<Json> = queries
            .into_iter()
            .map(|(query_id, path, args)| json!({"type": "Add", "queryId": query_id, "udfPath": path, "args": [args]}))
            .collect();
        let base_version = self.query_set_version;
        self.query_set_version += 1;
        let modify = json!({
            "type": "ModifyQuerySet",
            "baseVersion": base_version,
            "newVersion": self.query_set_version,
            "modifications": modifications,
        });
        send_json(&mut self.socket, &modify).await;
        loop {
            let message = next_json(&mut self.socket).await.expect("the server answers a subscription");
            assert_ne!(message["type"], "FatalError", "the server refused the subscription: {message}");
            if message["type"] == "Transition" && message["endVersion"]["querySet"] == self.query_set_version {
                return message;
            }
        }
    }

    /// Runs a mutation and waits for its response, skipping other messages; returns the response.
    pub async fn mutate(&mut self, path: &str, args: Json) -> Json {
        let request_id = self.next_request;
        self.next_request += 1;
        send_json(&mut self.socket, &mutation_message(request_id, path, args)).await;
        loop {
            let message = next_json(&mut self.socket).await.expect("the server answers a mutation");
            if message["type"] == "MutationResponse" && message["requestId"] == request_id {
                assert_eq!(message["success"], true, "mutation {path} failed: {message}");
                return message;
            }
            assert_ne!(message["type"], "FatalError", "the server refused the mutation: {message}");
        }
    }
}

/// The commit timestamp a `MutationResponse` or a Transition's `endVersion` carries (`ts`, in the
/// wire form), in nanoseconds.
pub fn timestamp_nanos(ts: &Json) -> u64 {
    decode_timestamp(ts.as_str().unwrap_or_else(|| panic!("a timestamp is a string: {ts}")))
}

fn decode_timestamp(text: &str) -> u64 {
    livebase_sync::Timestamp::decode(text).unwrap_or_else(|error| panic!("timestamp {text}: {error}")).nanos()
}

/// A caller of Convex's HTTP function API, as keynote-2's harness calls a Convex deployment.
#[derive(Clone)]
pub struct HttpCaller {
    client: reqwest::Client,
    base: String,
}

impl HttpCaller {
    pub fn new(address: SocketAddr) -> HttpCaller {
        HttpCaller { client: reqwest::Client::new(), base: format!("http://{address}") }
    }

    /// `POST /api/<kind>?format=json` with `{path, args}`; the function's value, or its error message.
    pub async fn call(&self, kind: &str, path: &str, args: Json) -> Result<Json, String> {
        let body = json!({ "path": path, "args": args, "format": "json" });
        let response = self
            .client
            .post(format!("{}/api/{kind}?format=json", self.base))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|error| error.to_string())?;
        let text = response.text().await.map_err(|error| error.to_string())?;
        let reply: Json = serde_json::from_str(&text).map_err(|error| format!("{error}: {text}"))?;
        match reply["status"].as_str() {
            Some("success") => Ok(reply["value"].clone()),
            _ => Err(reply["errorMessage"].as_str().map_or(text, str::to_owned)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app;
    use crate::server::InProcess;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_subscriber_gets_the_writers_sent_at() {
        let server = InProcess::start(&app::schema(), app::registry()).await;
        let address = server.address;
        let mut subscriber = SyncClient::connect(address).await;
        subscriber.subscribe([(0, "items:get", json!({"key": 3.0}))]).await;
        let mut writer = SyncClient::connect(address).await;
        writer.mutate("items:set", json!({"key": 4.0, "sentAt": 41.0})).await;
        writer.mutate("items:set", json!({"key": 3.0, "sentAt": 42.0})).await;
        loop {
            let message = next_json(&mut subscriber.socket).await.expect("an update");
            let sent_at = QueryUpdates::read(&message.to_string()).sent_at;
            if !sent_at.is_empty() {
                assert_eq!(sent_at, [42.0], "only the subscribed key's update: {message}");
                break;
            }
        }
        server.shutdown.cancel();
        drop((subscriber, writer));
        server.served.await.expect("server task").expect("serve");
    }

    #[test]
    fn sent_at_comes_from_the_query_updates_of_a_transition() {
        let ts = livebase_sync::Timestamp::from_nanos(1_234).encode();
        let transition = json!({
            "type": "Transition",
            "endVersion": {"querySet": 1, "identity": 0, "ts": ts},
            "modifications": [
                {"type": "QueryUpdated", "queryId": 0, "value": {"key": 0.0, "sentAt": 12.5}},
                {"type": "QueryFailed", "queryId": 1, "errorMessage": "no"},
                {"type": "QueryUpdated", "queryId": 2, "value": null},
                {"type": "QueryUpdated", "queryId": 3, "value": {"sentAt": 14.0}},
            ],
        });
        let read = QueryUpdates::read(&transition.to_string());
        assert_eq!(read, QueryUpdates { sent_at: vec![12.5, 14.0], end_ts_nanos: Some(1_234) });
        let response =
            json!({"type": "MutationResponse", "modifications": [{"type": "QueryUpdated", "value": {"sentAt": 1.0}}]});
        let read = QueryUpdates::read(&response.to_string());
        assert!(read.sent_at.is_empty(), "only Transitions carry query updates");
    }
}
