//! Livebase's benchmark harness: runs every scenario several times, prints progress, and rewrites
//! `bench/RESULTS.md` and `bench/results.json` with the machine, the command and min/median/max of
//! every figure. Benchmarks measure; tests never time anything.

mod commits;
mod pagination;
mod report;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

// The engine's copy-on-write snapshots allocate and free many small nodes; the server uses mimalloc
// for that, so the benchmarks do too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "Runs Livebase's benchmarks and writes the results page")]
struct Options {
    /// Fewer, shorter runs: finishes in a few minutes on a 2-core machine.
    #[arg(long)]
    quick: bool,
    /// Folder for RESULTS.md and results.json.
    #[arg(long, default_value = "bench")]
    out: PathBuf,
}

/// How long and how often each scenario runs.
#[derive(Clone, Copy)]
pub struct Effort {
    pub runs: usize,
    pub duration: Duration,
}

fn main() {
    let options = Options::parse();
    let effort = if options.quick {
        Effort { runs: 3, duration: Duration::from_secs(2) }
    } else {
        Effort { runs: 5, duration: Duration::from_secs(5) }
    };
    let mut report = report::Report::new(std::env::args().collect::<Vec<_>>().join(" "));
    commits::run(effort, &mut report);
    pagination::run(effort, &mut report);
    report.write(&options.out).expect("write results");
    println!("wrote {}", options.out.join("RESULTS.md").display());
}
