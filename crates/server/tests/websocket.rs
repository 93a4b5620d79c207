//! The sync endpoint over a real socket, speaking the protocol's JSON by hand.

mod common;

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{PATIENCE, TestServer};
use futures_util::{SinkExt, StreamExt};
use livebase_auth::limits::CLOCK_LEEWAY;
use livebase_auth::testing::{P256_KEY_1, RSA_KEY_1, TestIssuer, now_secs};
use livebase_auth::{AuthConfig, Provider, Verifier};
use livebase_server::{MAX_OUTGOING_MESSAGES, SHUTDOWN_CLOSE_REASON, SLOW_CLIENT_CLOSE_REASON, ServerConfig};
use livebase_sync::MAX_MESSAGE_BYTES;
use serde_json::{Value as Json, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

const SESSION: &str = "0b7c4f02-39a4-4be1-9b3c-5d7e8f901a2b";

async fn open(server: &TestServer, path: &str) -> Client {
    // The client's own limit must not stop the oversized messages these tests send on purpose.
    let config = WebSocketConfig::default().max_message_size(None).max_frame_size(None);
    let url = format!("ws://{}{path}", server.addr);
    let (client, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), false).await.unwrap();
    client
}

async fn connect(server: &TestServer) -> Client {
    let mut client = open(server, "/api/1.48.0/sync").await;
    send(
        &mut client,
        json!({"type": "Connect", "sessionId": SESSION, "connectionCount": 0, "lastCloseReason": "InitialConnect",
               "clientTs": 0}),
    )
    .await;
    client
}

async fn send(client: &mut Client, message: Json) {
    client.send(Message::text(message.to_string())).await.unwrap();
}

/// The next message, skipping pings; `None` once the server closed the socket.
async fn receive(client: &mut Client) -> Option<Message> {
    loop {
        match tokio::time::timeout(PATIENCE, client.next()).await.expect("the server answers in time") {
            Some(Ok(Message::Text(text))) if text.as_str().contains(r#""type":"Ping""#) => continue,
            Some(Ok(message)) => return Some(message),
            Some(Err(_)) | None => return None,
        }
    }
}

async fn receive_json(client: &mut Client) -> Json {
    match receive(client).await {
        Some(Message::Text(text)) => serde_json::from_str(&text).unwrap(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

fn decode_ts(ts: &Json) -> u64 {
    let bytes = STANDARD.decode(ts.as_str().unwrap()).unwrap();
    u64::from_le_bytes(bytes.try_into().unwrap())
}

fn subscribe_to_list(query_set: u32) -> Json {
    json!({"type": "ModifyQuerySet", "baseVersion": query_set, "newVersion": query_set + 1,
           "modifications": [{"type": "Add", "queryId": 7, "udfPath": "messages:list", "args": [{}]}]})
}

fn bodies(transition: &Json) -> Vec<String> {
    let [update] = transition["modifications"].as_array().unwrap().as_slice() else { panic!("{transition}") };
    assert_eq!(update["type"], "QueryUpdated", "{transition}");
    assert_eq!(update["queryId"], 7);
    update["value"].as_array().unwrap().iter().map(|message| message["body"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutation_reaches_a_subscriber_on_another_connection() {
    let server = TestServer::start().await;
    let mut watcher = connect(&server).await;
    send(&mut watcher, subscribe_to_list(0)).await;
    let first = receive_json(&mut watcher).await;
    assert_eq!(first["type"], "Transition");
    assert_eq!(first["startVersion"], json!({"querySet": 0, "identity": 0, "ts": STANDARD.encode(0u64.to_le_bytes())}));
    assert_eq!(first["endVersion"]["querySet"], 1);
    assert_eq!(bodies(&first), Vec::<String>::new());

    // The Rust and Python clients' endpoint.
    let mut writer = open(&server, "/api/sync").await;
    send(&mut writer, json!({"type": "Connect", "sessionId": SESSION, "connectionCount": 0})).await;
    send(
        &mut writer,
        json!({"type": "Mutation", "requestId": 0, "udfPath": "messages:send", "args": [{"body": "hi"}]}),
    )
    .await;
    let response = receive_json(&mut writer).await;
    assert_eq!(response["type"], "MutationResponse", "{response}");
    assert_eq!(response["success"], true, "{response}");
    let mutation_ts = decode_ts(&response["ts"]);
    // The writer's own Transition confirms the mutation: it reaches the commit.
    let confirmation = receive_json(&mut writer).await;
    assert_eq!(confirmation["type"], "Transition");
    assert!(decode_ts(&confirmation["endVersion"]["ts"]) >= mutation_ts);

    let update = receive_json(&mut watcher).await;
    assert_eq!(update["type"], "Transition");
    assert_eq!(update["startVersion"], first["endVersion"], "Transitions chain");
    assert_eq!(decode_ts(&update["endVersion"]["ts"]), mutation_ts);
    assert_eq!(bodies(&update), ["hi"]);
    assert_eq!(update["modifications"][0]["value"][0]["_id"], response["result"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_run_and_answer() {
    let server = TestServer::start().await;
    let mut client = connect(&server).await;
    send(&mut client, json!({"type": "Action", "requestId": 3, "udfPath": "messages:echo", "args": [{"text": "x"}]}))
        .await;
    let response = receive_json(&mut client).await;
    assert_eq!(
        response,
        json!({"type": "ActionResponse", "requestId": 3, "success": true, "result": "x", "logLines": []})
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_frame_is_answered_and_the_server_keeps_serving() {
    let server = TestServer::start().await;
    for frame in ["not json", r#"{"type": "Mutation", "requestId": 1}"#, r#"{"type": "Nope"}"#] {
        let mut client = connect(&server).await;
        client.send(Message::text(frame)).await.unwrap();
        let answer = receive_json(&mut client).await;
        assert_eq!(answer["type"], "FatalError", "{frame}: {answer}");
        match receive(&mut client).await {
            Some(Message::Close(Some(frame))) => assert_eq!(frame.reason.as_str(), "WSMessageInvalidJson"),
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
    let mut client = connect(&server).await;
    client.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert!(matches!(receive(&mut client).await, Some(Message::Close(Some(frame))) if u16::from(frame.code) == 1003));

    let mut client = connect(&server).await;
    send(&mut client, subscribe_to_list(0)).await;
    assert_eq!(receive_json(&mut client).await["type"], "Transition");
    server.stop().await;
}

/// Pads a ModifyQuerySet message with spaces to exactly `bytes` bytes.
fn padded_subscription(bytes: usize) -> String {
    let message = subscribe_to_list(0).to_string();
    format!("{message}{}", " ".repeat(bytes - message.len()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_up_to_the_size_limit_are_accepted() {
    let server = TestServer::start().await;
    let mut client = connect(&server).await;
    client.send(Message::text(padded_subscription(MAX_MESSAGE_BYTES))).await.unwrap();
    assert_eq!(receive_json(&mut client).await["type"], "Transition");

    let mut client = connect(&server).await;
    client.send(Message::text(padded_subscription(MAX_MESSAGE_BYTES + 1))).await.unwrap();
    let answer = receive_json(&mut client).await;
    assert_eq!(answer["type"], "FatalError");
    assert!(answer["error"].as_str().unwrap().contains(&format!("limit of {MAX_MESSAGE_BYTES} bytes")), "{answer}");

    // Far over the limit: cut off without being read whole.
    let mut client = connect(&server).await;
    let _ = client.send(Message::text(padded_subscription(2 * MAX_MESSAGE_BYTES))).await;
    assert!(matches!(receive(&mut client).await, None | Some(Message::Close(_))));
    server.stop().await;
}

fn authenticate(token: &str) -> Json {
    json!({"type": "Authenticate", "baseVersion": 0, "tokenType": "User", "value": token})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_tokens_are_rejected_without_a_verifier() {
    let server = TestServer::start().await;
    let mut client = connect(&server).await;
    send(&mut client, authenticate("a.b.c")).await;
    let answer = receive_json(&mut client).await;
    assert_eq!(answer["type"], "AuthError", "{answer}");
    assert_eq!(answer["authUpdateAttempted"], true);
    assert!(
        matches!(receive(&mut client).await, Some(Message::Close(Some(frame))) if frame.reason == "AuthUpdateFailed")
    );

    // Logged out is always fine, and confirmed by a Transition raising the identity version.
    let mut client = connect(&server).await;
    send(&mut client, json!({"type": "Authenticate", "baseVersion": 0, "tokenType": "None"})).await;
    let confirmation = receive_json(&mut client).await;
    assert_eq!(confirmation["type"], "Transition");
    assert_eq!(confirmation["endVersion"]["identity"], 1);
    server.stop().await;
}

const APP: &str = "livebase-tests";

/// A server whose auth provider is `issuer` (an OpenID Connect issuer over real HTTP).
async fn server_trusting(issuer: &TestIssuer) -> TestServer {
    let provider = Provider::Oidc { domain: issuer.url().to_owned(), application_id: APP.to_owned() };
    let verifier = Arc::new(Verifier::new(AuthConfig { providers: vec![provider] }).unwrap());
    TestServer::start_with(|config| ServerConfig { auth: Some(verifier), ..config }).await
}

fn subscribe_to_whoami(query_set: u32) -> Json {
    json!({"type": "ModifyQuerySet", "baseVersion": query_set, "newVersion": query_set + 1,
           "modifications": [{"type": "Add", "queryId": 7, "udfPath": "auth:whoami", "args": [{}]}]})
}

/// The `auth:whoami` result a Transition carries, if it carries one.
fn whoami(transition: &Json) -> Option<Json> {
    assert_eq!(transition["type"], "Transition", "{transition}");
    let updates = transition["modifications"].as_array().unwrap();
    updates.iter().find(|update| update["queryId"] == 7).map(|update| update["value"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_identity_reruns_queries_and_a_bad_token_gets_an_auth_error() {
    let issuer = TestIssuer::start(&[&RSA_KEY_1]).await;
    let server = server_trusting(&issuer).await;
    let mut client = connect(&server).await;
    send(&mut client, subscribe_to_whoami(0)).await;
    assert_eq!(whoami(&receive_json(&mut client).await), Some(Json::Null));

    send(&mut client, authenticate(&RSA_KEY_1.sign(&issuer.claims("ada", APP)))).await;
    let confirmation = receive_json(&mut client).await;
    assert_eq!(confirmation["endVersion"]["identity"], 1);
    let identity = whoami(&confirmation).expect("the query reads the identity, so it reran");
    assert_eq!(identity["subject"], "ada");
    assert_eq!(identity["tokenIdentifier"], format!("{}|ada", issuer.url()));

    let mut expired = issuer.claims("ada", APP);
    expired["exp"] = (now_secs() - 3_600).into();
    send(
        &mut client,
        json!({"type": "Authenticate", "baseVersion": 1, "tokenType": "User",
                             "value": RSA_KEY_1.sign(&expired)}),
    )
    .await;
    let answer = receive_json(&mut client).await;
    assert_eq!(
        answer,
        json!({"type": "AuthError", "error": "token expired", "baseVersion": 1, "authUpdateAttempted": true})
    );
    assert!(
        matches!(receive(&mut client).await, Some(Message::Close(Some(frame))) if frame.reason == "AuthUpdateFailed")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_ends_when_its_token_expires() {
    let issuer = TestIssuer::start(&[&RSA_KEY_1]).await;
    let server = server_trusting(&issuer).await;
    let mut client = connect(&server).await;
    // Accepted for three more seconds: `exp` is past, but within the clock leeway.
    let mut claims = issuer.claims("ada", APP);
    claims["exp"] = (now_secs() - CLOCK_LEEWAY.as_secs() as i64 + 3).into();
    send(&mut client, authenticate(&RSA_KEY_1.sign(&claims))).await;
    assert_eq!(receive_json(&mut client).await["endVersion"]["identity"], 1);
    let answer = receive_json(&mut client).await;
    assert_eq!(
        answer,
        json!({"type": "AuthError", "error": "token expired", "baseVersion": 1, "authUpdateAttempted": false})
    );
    assert!(matches!(receive(&mut client).await, Some(Message::Close(Some(frame))) if frame.reason == "TokenExpired"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_after_an_authenticate_run_with_its_identity() {
    let issuer = TestIssuer::start(&[&P256_KEY_1]).await;
    let server = server_trusting(&issuer).await;
    let mut client = connect(&server).await;
    // Sent together: the subscription arrives while the token is checked (its keys fetched).
    send(&mut client, authenticate(&P256_KEY_1.sign(&issuer.claims("grace", APP)))).await;
    send(&mut client, subscribe_to_whoami(0)).await;
    let identity = loop {
        let transition = receive_json(&mut client).await;
        assert_eq!(transition["endVersion"]["identity"], 1, "{transition}");
        if let Some(identity) = whoami(&transition) {
            break identity;
        }
    };
    assert_eq!(identity["subject"], "grace");
    assert_eq!(issuer.jwks_fetches(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_every_socket_with_a_reason() {
    let server = TestServer::start().await;
    let mut client = connect(&server).await;
    send(&mut client, subscribe_to_list(0)).await;
    assert_eq!(receive_json(&mut client).await["type"], "Transition");
    let stopping = tokio::spawn(server.stop());
    match receive(&mut client).await {
        Some(Message::Close(Some(frame))) => {
            assert_eq!(u16::from(frame.code), 1001);
            assert_eq!(frame.reason.as_str(), SHUTDOWN_CLOSE_REASON);
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    drop(client);
    stopping.await.unwrap();
}

/// A client that sends but never reads falls behind by `MAX_OUTGOING_MESSAGES` once the socket's
/// buffers are full, and is disconnected; a client that reads gets every answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_is_disconnected() {
    // Each is answered at once with a failed ActionResponse, and none counts as in flight. Enough
    // that their answers (about 150 bytes each) overflow the loopback buffers and the queue.
    const FRAMES: usize = 300_000;
    let frame = json!({"type": "Action", "requestId": 0, "udfPath": "messages:echo", "args": 1}).to_string();
    let server = TestServer::start().await;
    let mut client = connect(&server).await;
    let mut sent = 0;
    while sent < FRAMES && client.feed(Message::text(frame.clone())).await.is_ok() {
        sent += 1;
    }
    let _ = client.flush().await;
    let mut answers = 0;
    let ending = loop {
        match receive(&mut client).await {
            Some(Message::Text(_)) => answers += 1,
            other => break other,
        }
    };
    assert!(answers < FRAMES, "the client was never disconnected");
    // The close frame gets through if the client read it before the server gave up waiting.
    if let Some(Message::Close(Some(frame))) = &ending {
        assert_eq!((u16::from(frame.code), frame.reason.as_str()), (1013, SLOW_CLIENT_CLOSE_REASON));
    }
    server.stop().await;
}

/// The outgoing limit counts what the client has not read, not what it asked for: a burst of
/// requests many times the limit is answered in full while the client keeps reading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reads_gets_every_answer_to_a_burst() {
    const FRAMES: usize = 8 * MAX_OUTGOING_MESSAGES;
    let frame = json!({"type": "Action", "requestId": 0, "udfPath": "messages:echo", "args": 1}).to_string();
    let server = TestServer::start().await;
    let (mut sink, mut stream) = connect(&server).await.split();
    let flooding = tokio::spawn(async move {
        for _ in 0..FRAMES {
            sink.feed(Message::text(frame.clone())).await.unwrap();
        }
        sink.flush().await.unwrap();
        sink
    });
    for _ in 0..FRAMES {
        let message = tokio::time::timeout(PATIENCE, stream.next()).await.unwrap();
        let Some(Ok(Message::Text(text))) = message else { panic!("{message:?}") };
        assert!(text.as_str().contains(r#""type":"ActionResponse""#), "{text}");
    }
    drop(flooding.await.unwrap());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_pinged() {
    let heartbeat_interval = Some(std::time::Duration::from_millis(20));
    let server = TestServer::start_with(|config| ServerConfig { heartbeat_interval, ..config }).await;
    let mut client = connect(&server).await;
    // Nothing else is owed to a client that subscribed to nothing: every message is a Ping.
    for _ in 0..2 {
        let next = tokio::time::timeout(PATIENCE, client.next()).await.expect("a Ping arrives");
        let Some(Ok(Message::Text(text))) = next else { panic!("expected a Ping, got {next:?}") };
        assert_eq!(serde_json::from_str::<Json>(&text).unwrap(), json!({"type": "Ping"}));
    }
    server.stop().await;
}
