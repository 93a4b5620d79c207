//! Runs `wrk` (Debian's HTTP load tool, a separate process) against the server with a Lua script
//! and reads its rate and latency distribution: the HTTP scenarios' load generator.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// wrk's connections and threads: enough to keep both cores busy.
pub const CONNECTIONS: usize = 16;
const THREADS: usize = 2;

/// What one wrk run measured.
pub struct WrkRun {
    pub requests_per_second: f64,
    pub p50_millis: f64,
    pub p99_millis: f64,
}

/// Whether `wrk` can be run; scenarios say they are skipped if not.
pub fn installed() -> bool {
    Command::new("wrk").arg("--version").output().is_ok()
}

/// Loads `address` with the requests of `script` over `CONNECTIONS` keep-alive connections for
/// `duration` (whole seconds, at least one). Every response must be a 2xx.
pub fn run(address: SocketAddr, script: &Path, duration: Duration) -> WrkRun {
    let output = Command::new("wrk")
        .args(["-t", &THREADS.to_string(), "-c", &CONNECTIONS.to_string()])
        .args(["-d", &format!("{}s", duration.as_secs().max(1))])
        .arg("--latency")
        .arg("-s")
        .arg(script)
        .arg(format!("http://{address}"))
        .output()
        .expect("run wrk");
    parse(&String::from_utf8_lossy(&output.stdout))
}

fn parse(text: &str) -> WrkRun {
    assert!(!text.contains("Non-2xx"), "every request must succeed:\n{text}");
    let field = |prefix: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .map(str::trim)
            .unwrap_or_else(|| panic!("wrk printed no {prefix}:\n{text}"))
    };
    let requests_per_second = field("Requests/sec:").parse().unwrap_or_else(|_| panic!("a rate:\n{text}"));
    let millis = |prefix: &str| millis(field(prefix)).unwrap_or_else(|| panic!("a latency after {prefix}:\n{text}"));
    WrkRun { requests_per_second, p50_millis: millis("50%"), p99_millis: millis("99%") }
}

/// A wrk duration (`512.00us`, `1.25ms`, `2.00s`, `1.00m`) in milliseconds.
fn millis(text: &str) -> Option<f64> {
    let (number, scale) = [("us", 1e-3), ("ms", 1.0), ("s", 1e3), ("m", 60e3)]
        .into_iter()
        .find_map(|(unit, scale)| text.strip_suffix(unit).map(|number| (number, scale)))?;
    number.parse::<f64>().ok().map(|number| number * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_rate_and_the_latency_distribution() {
        let output = "Running 2s test @ http://127.0.0.1:4000\n  2 threads and 16 connections\n\
            \x20 Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency     1.10ms  400.00us   9.00ms   90.00%\n\
            \x20 Latency Distribution\n     50%  812.00us\n     75%    1.20ms\n     90%    1.90ms\n     99%    2.50s\n\
            \x20 24000 requests in 2.00s, 3.00MB read\nRequests/sec:  12000.50\nTransfer/sec:      1.50MB\n";
        let run = parse(output);
        assert_eq!(run.requests_per_second, 12000.5);
        assert!((run.p50_millis - 0.812).abs() < 1e-9, "{}", run.p50_millis);
        assert_eq!(run.p99_millis, 2500.0);
        assert_eq!(millis("1.00m"), Some(60e3));
        assert_eq!(millis("12"), None, "a latency has a unit");
    }

    #[test]
    #[should_panic(expected = "every request must succeed")]
    fn a_failed_request_fails_the_run() {
        parse("  Non-2xx or 3xx responses: 3\nRequests/sec: 10.00\n");
    }
}
