#!/usr/bin/env bash
# Runs every benchmark scenario and rewrites bench/RESULTS.md and bench/results.json.
# Usage: bench/run.sh [--quick]   (--quick: fewer and shorter runs, under 10 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p livebase-bench
exec target/release/livebase-bench --out bench "$@"
