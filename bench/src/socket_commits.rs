//! Durable commits per second over WebSocket: 1, 8 and 64 sync-protocol clients, each running one
//! small mutation (`items:insert`) after another, against the server in its own process. The
//! difference to the in-process figures is the protocol, the socket and the function runtime.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::Effort;
use crate::client::SyncClient;
use crate::report::{Report, percentile};
use crate::server::ServerProcess;

pub const SECTION: &str = "Durable commits over WebSocket (server in its own process)";

pub fn run(effort: Effort, report: &mut Report) {
    println!("{SECTION}");
    let tokio = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let server = ServerProcess::start("server");
    // As many clients as the in-process scenario has writers, to compare the two.
    for clients in crate::commits::WRITER_COUNTS {
        let (mut rates, mut p50, mut p99, mut server_cpu) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..effort.runs {
            let cpu_before = server.cpu_seconds();
            let (rate, latencies) = tokio.block_on(mutations(&server, clients, effort.duration));
            server_cpu.push((server.cpu_seconds() - cpu_before) * 1e6 / latencies.len().max(1) as f64);
            rates.push(rate);
            p50.push(percentile(&latencies, 0.50));
            p99.push(percentile(&latencies, 0.99));
        }
        report.add(SECTION, &format!("{clients} clients"), "commits/s", rates);
        report.add(SECTION, &format!("{clients} clients: latency p50"), "µs", p50);
        report.add(SECTION, &format!("{clients} clients: latency p99"), "µs", p99);
        report.add(SECTION, &format!("{clients} clients: server CPU per commit"), "µs", server_cpu);
    }
}

/// `clients` connections each call `items:insert` one after another for `duration`; returns
/// commits per second and every call's latency in microseconds.
async fn mutations(server: &ServerProcess, clients: usize, duration: Duration) -> (f64, Vec<u64>) {
    let mut connections = Vec::new();
    for _ in 0..clients {
        connections.push(SyncClient::connect(server.address).await);
    }
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = connections
        .into_iter()
        .enumerate()
        .map(|(writer, mut client)| {
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let args = json!({"writer": writer as f64, "sequence": latencies.len() as f64});
                    client.mutate("items:insert", args).await;
                    latencies.push(sent.elapsed().as_micros() as u64);
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("mutation client"));
    }
    (latencies.len() as f64 / started.elapsed().as_secs_f64(), latencies)
}
