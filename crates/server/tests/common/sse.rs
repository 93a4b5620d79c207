//! A reader of Server-Sent Events from a streaming HTTP response (the live lists of the HTTP API).

#![allow(dead_code, reason = "each test binary reads the fields it needs")]

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value as Json;

/// How long a reader waits for the next event before the test fails.
const EVENT_PATIENCE: Duration = Duration::from_secs(30);

pub struct EventReader {
    response: reqwest::Response,
    buffer: String,
}

/// One event with data: its `event` and `id` fields (empty when absent) and its `data` as JSON.
pub struct Event {
    pub event: String,
    pub id: String,
    pub data: Json,
}

impl EventReader {
    pub fn new(response: reqwest::Response) -> EventReader {
        EventReader { response, buffer: String::new() }
    }

    /// The next event that carries data (comments and keep-alives are skipped).
    pub async fn next(&mut self) -> Event {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut fields: BTreeMap<&str, String> = BTreeMap::new();
                for line in block.lines().filter(|line| !line.starts_with(':') && !line.is_empty()) {
                    let (name, value) = line.split_once(':').unwrap_or((line, ""));
                    fields.entry(name).or_default().push_str(value.strip_prefix(' ').unwrap_or(value));
                }
                if let Some(data) = fields.get("data") {
                    return Event {
                        event: fields.get("event").cloned().unwrap_or_default(),
                        id: fields.get("id").cloned().unwrap_or_default(),
                        data: serde_json::from_str(data).unwrap(),
                    };
                }
                continue;
            }
            let chunk = tokio::time::timeout(EVENT_PATIENCE, self.response.chunk()).await.expect("an event in time");
            let chunk = chunk.unwrap().expect("the stream stays open");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}
