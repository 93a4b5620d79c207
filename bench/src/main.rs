//! Livebase's benchmark harness: runs every scenario several times, prints progress, and rewrites
//! `bench/RESULTS.md` and `bench/results.json` with the machine, the command and min/median/max of
//! every figure. Benchmarks measure; tests never time anything.

mod app;
mod broadcaster;
mod chart;
mod client;
mod commits;
mod fanout;
mod http_calls;
mod js_calls;
mod js_engine;
mod keynote;
mod matching;
mod memory;
mod pagination;
mod pagination_churn;
mod postgres;
mod postgres_store;
mod replica_fanout;
mod report;
mod rest_list;
mod server;
mod socket_commits;
mod transfer;
mod wrk;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

// The engine's copy-on-write snapshots allocate and free many small nodes; the benchmarks use the
// server's allocator, tuned as the server tunes it.
#[global_allocator]
static ALLOCATOR: livebase_server::allocator::Allocator = livebase_server::allocator::Allocator;

#[derive(Parser)]
#[command(about = "Runs Livebase's benchmarks and writes the results page")]
struct Options {
    /// Fewer, shorter runs: finishes in a few minutes on a 2-core machine.
    #[arg(long)]
    quick: bool,
    /// Folder for RESULTS.md and results.json.
    #[arg(long, default_value = "bench")]
    out: PathBuf,
    /// Runs only the scenarios whose name contains this (while working on one); a scenario's exact
    /// name runs that scenario alone (`commits` is also part of two other names).
    #[arg(long)]
    only: Option<String>,
    #[command(subcommand)]
    role: Option<Role>,
}

/// The processes the harness starts itself as, so that load generator and server are separate
/// processes, as a client and a server are.
#[derive(Subcommand)]
enum Role {
    /// Serves the benchmark app over WebSocket; prints the port, stops when stdin closes.
    #[command(hide = true)]
    Server,
    /// Relays every message a client sends to every other client; prints the port, stops when
    /// stdin closes.
    #[command(hide = true)]
    Broadcaster,
    /// Serves SpacetimeDB's keynote-2 transfer functions over HTTP; prints the port, stops when
    /// stdin closes.
    #[command(hide = true)]
    KeynoteServer,
    /// Serves the benchmark app on PostgreSQL as a writer or read replica (configured by the
    /// environment); prints the port, stops when stdin closes.
    #[command(hide = true)]
    PostgresNode,
    /// Serves the benchmark app with the TypeScript twins of its functions; prints the port, stops
    /// when stdin closes.
    #[command(hide = true)]
    JsServer,
    /// The keynote scenario alone, with the full run's effort: prints its figures without writing
    /// the results page (`bench/keynote.sh`).
    #[command(hide = true)]
    Keynote,
}

/// A scenario measures and records its figures in the report.
type Scenario = fn(Effort, &mut report::Report);

/// Every scenario, in the order they run.
const SCENARIOS: [(&str, Scenario); 14] = [
    ("commits", commits::run),
    ("commits-on-postgres", postgres_store::run),
    ("socket-commits", socket_commits::run),
    ("transfer", transfer::run),
    ("keynote", keynote::run),
    ("matching", matching::run),
    ("fanout", fanout::run),
    ("replica-fanout", replica_fanout::run),
    ("memory", memory::run),
    ("pagination", pagination::run),
    ("pagination-churn", pagination_churn::run),
    ("rest-list", rest_list::run),
    ("http-calls", http_calls::run),
    ("js-calls", js_calls::run),
];

/// How long and how often each scenario runs.
#[derive(Clone, Copy)]
pub struct Effort {
    pub runs: usize,
    pub duration: Duration,
    /// `--quick`: scenarios that scale with clients use fewer.
    pub quick: bool,
}

impl Effort {
    fn new(quick: bool) -> Effort {
        if quick {
            Effort { runs: 3, duration: Duration::from_secs(2), quick }
        } else {
            Effort { runs: 5, duration: Duration::from_secs(5), quick }
        }
    }
}

fn main() {
    livebase_server::allocator::keep_freed_memory();
    let options = Options::parse();
    match options.role {
        Some(Role::Server) => return server::serve_benchmark_app(),
        Some(Role::Broadcaster) => return broadcaster::serve(),
        Some(Role::KeynoteServer) => return keynote::serve_keynote_app(),
        Some(Role::PostgresNode) => return replica_fanout::serve_postgres_node(),
        Some(Role::JsServer) => return js_calls::serve_js_app(),
        Some(Role::Keynote) => {
            let mut report = report::Report::new(std::env::args().collect::<Vec<_>>().join(" "));
            keynote::run(Effort::new(false), &mut report);
            return exit_on_failures(&report);
        }
        None => {}
    }
    let effort = Effort::new(options.quick);
    let mut report = report::Report::new(std::env::args().collect::<Vec<_>>().join(" "));
    let exact = SCENARIOS.iter().any(|(name, _)| options.only.as_deref() == Some(*name));
    for (name, scenario) in SCENARIOS {
        let chosen = |only: &String| if exact { name == only } else { name.contains(only.as_str()) };
        if options.only.as_ref().is_none_or(chosen) {
            scenario(effort, &mut report);
        }
    }
    commits::chart(&mut report);
    report.write(&options.out).expect("write results");
    println!("wrote {}", options.out.join("RESULTS.md").display());
    exit_on_failures(&report);
}

/// A scenario whose correctness check failed fails the command too, after its figures are written.
fn exit_on_failures(report: &report::Report) {
    if report.failures() > 0 {
        eprintln!("{} correctness check(s) FAILED: see the findings", report.failures());
        std::process::exit(1);
    }
}

/// CPU seconds a process has used, user and system, from its `/proc/<pid>/stat` (fields 14 and 15,
/// in clock ticks of 1/100 s).
pub fn cpu_seconds(stat_path: &str) -> f64 {
    let stat = std::fs::read_to_string(stat_path).unwrap_or_else(|error| panic!("{stat_path}: {error}"));
    // The command name (field 2) may hold spaces; the fields after it start past its closing parenthesis.
    let after_name = &stat[stat.rfind(')').expect("stat has a command name") + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    ticks as f64 / 100.0
}
