#!/usr/bin/env bash
# SpacetimeDB's keynote-2 transfer workload against Livebase over the Convex HTTP API: the `keynote`
# scenario of bench/run.sh alone, with the full run's effort. It serves the keynote app
# (bench/src/keynote.rs) from a child process on a temporary data directory, seeds 100,000 accounts
# through seed:seed_range, runs transfers under uniform and zipf 1.5 account choices, checks after
# each that the total balance is unchanged, and prints the figures (transfers/s, latency); it does
# not rewrite bench/RESULTS.md, which bench/run.sh writes with every scenario.
# Usage: bench/keynote.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p livebase-bench
exec target/release/livebase-bench keynote
