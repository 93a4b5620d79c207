//! Server memory per idle connection and per idle subscription: the server process's resident
//! memory (`VmRSS`) before and after opening connections, then after each subscribes to queries of
//! its own (`items:get({key})`, one document's index range each). Kernel socket buffers are not
//! the process's and are not counted.

use serde_json::json;

use crate::Effort;
use crate::client::SyncClient;
use crate::report::{Report, verdict};
use crate::server::ServerProcess;

const SECTION: &str = "Memory (server process, resident)";
const CONNECTIONS: usize = 2_000;
const SUBSCRIPTIONS_PER_CONNECTION: usize = 10;
/// The targets.
const TARGET_BYTES_PER_CONNECTION: f64 = 20.0 * 1024.0;
const TARGET_BYTES_PER_SUBSCRIPTION: f64 = 2.0 * 1024.0;

pub fn run(effort: Effort, report: &mut Report) {
    println!("{SECTION}");
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let (mut per_connection, mut per_subscription) = (Vec::new(), Vec::new());
    for _ in 0..effort.runs {
        let (connection, subscription) = tokio.block_on(measure());
        per_connection.push(connection);
        per_subscription.push(subscription);
    }
    let connection =
        report.add(SECTION, &format!("per idle connection ({CONNECTIONS} connections)"), "bytes", per_connection);
    let subscription = report.add(
        SECTION,
        &format!("per idle subscription ({SUBSCRIPTIONS_PER_CONNECTION} on each of {CONNECTIONS} connections)"),
        "bytes",
        per_subscription,
    );
    report.note(format!(
        "memory: {:.1} KiB per idle connection, target <= {:.0} KiB: {}; {:.2} KiB per idle subscription, target <= {:.0} \
         KiB: {}",
        connection / 1024.0,
        TARGET_BYTES_PER_CONNECTION / 1024.0,
        verdict(connection <= TARGET_BYTES_PER_CONNECTION),
        subscription / 1024.0,
        TARGET_BYTES_PER_SUBSCRIPTION / 1024.0,
        verdict(subscription <= TARGET_BYTES_PER_SUBSCRIPTION)
    ));
}

/// One fresh server: bytes per connection and per subscription.
async fn measure() -> (f64, f64) {
    let server = ServerProcess::start("server");
    // One connection and subscription first, so that what the first of each sets up once (the
    // runtime's buffers, the index's arena) is not counted as theirs.
    let mut warm_up = SyncClient::connect(server.address).await;
    warm_up.subscribe([(0, "items:get", json!({"key": -1.0}))]).await;
    let before = server.resident_bytes();
    let mut clients = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let mut client = SyncClient::connect(server.address).await;
        // An empty query set change is answered with a Transition: the server has set the
        // connection up once it arrives.
        client.subscribe([]).await;
        clients.push(client);
    }
    let connected = server.resident_bytes();
    for (number, client) in clients.iter_mut().enumerate() {
        let queries = (0..SUBSCRIPTIONS_PER_CONNECTION).map(|query| {
            let key = (number * SUBSCRIPTIONS_PER_CONNECTION + query) as f64;
            (query as u32, "items:get", json!({"key": key}))
        });
        client.subscribe(queries).await;
    }
    let subscribed = server.resident_bytes();
    drop(clients);
    let per_connection = connected.saturating_sub(before) as f64 / CONNECTIONS as f64;
    let per_subscription =
        subscribed.saturating_sub(connected) as f64 / (CONNECTIONS * SUBSCRIPTIONS_PER_CONNECTION) as f64;
    (per_connection, per_subscription)
}
