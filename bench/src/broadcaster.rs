//! The physical limit of fan-out: a minimal WebSocket broadcaster (tokio-tungstenite) that relays
//! every message one client sends to every other client, doing nothing else. The fan-out scenario
//! has it push the same bytes to the same number of clients as Livebase's Transitions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::server::{listen, run_until_stdin_closes};

/// Messages queued to one client before the relay waits for it: the server's own bound
/// (`livebase_server::MAX_OUTGOING_MESSAGES`), so both hold as much per client.
const MAX_QUEUED_PER_CLIENT: usize = livebase_server::MAX_OUTGOING_MESSAGES;

/// The first message to each client: it is registered.
pub const READY: &str = r#"{"type":"Ready"}"#;

type Clients = Arc<Mutex<HashMap<u64, mpsc::Sender<Message>>>>;

/// The `broadcaster` role.
pub fn serve() {
    run_until_stdin_closes(|_shutdown| async move { broadcast(listen().await).await });
}

/// Accepts clients on `listener` and relays their messages, until the task is dropped.
async fn broadcast(listener: TcpListener) {
    let clients: Clients = Arc::default();
    let next_id = AtomicU64::new(0);
    loop {
        let (stream, _) = listener.accept().await.expect("accept");
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(relay(stream, id, Arc::clone(&clients)));
    }
}

async fn relay(stream: TcpStream, id: u64, clients: Clients) {
    stream.set_nodelay(true).expect("nodelay");
    let Ok(socket) = tokio_tungstenite::accept_async_with_config(stream, Some(crate::client::websocket_config())).await
    else {
        return;
    };
    let (mut sink, mut source) = socket.split();
    let (sender, mut outgoing) = mpsc::channel(MAX_QUEUED_PER_CLIENT);
    clients.lock().unwrap_or_else(PoisonError::into_inner).insert(id, sender.clone());
    // Tells the client it will get every message from now on (as a subscription's first
    // Transition does), so that measuring starts only once every client is in.
    if sender.send(Message::text(READY)).await.is_err() {
        return;
    }
    tokio::spawn(async move {
        while let Some(message) = outgoing.recv().await {
            if sink.send(message).await.is_err() {
                return;
            }
        }
    });
    while let Some(Ok(message)) = source.next().await {
        if !message.is_text() {
            continue;
        }
        let others: Vec<mpsc::Sender<Message>> = clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(other, _)| **other != id)
            .map(|(_, sender)| sender.clone())
            .collect();
        for other in others {
            // A client that left has dropped its receiver: nothing to deliver.
            let _ = other.send(message.clone()).await;
        }
    }
    clients.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
}

#[cfg(test)]
mod tests {
    use futures_util::SinkExt;
    use serde_json::json;

    use super::*;
    use crate::client::{next_json, open};

    #[tokio::test]
    async fn every_other_client_gets_each_message() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let broadcaster = tokio::spawn(broadcast(listener));
        let mut clients = Vec::new();
        for _ in 0..3 {
            let mut client = open(address, "/").await;
            assert_eq!(next_json(&mut client).await.expect("ready").to_string(), READY);
            clients.push(client);
        }
        let message = json!({"type": "Transition", "n": 1});
        clients[0].send(Message::text(message.to_string())).await.expect("send");
        for client in &mut clients[1..] {
            assert_eq!(next_json(client).await, Some(message.clone()));
        }
        broadcaster.abort();
    }
}
