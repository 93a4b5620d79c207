#!/usr/bin/env bash
# Runs every benchmark scenario and rewrites bench/RESULTS.md and bench/results.json.
# Usage: bench/run.sh [--quick]   (--quick: fewer and shorter runs, under 10 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
# wrk loads the REST list endpoint; Debian packages it.
if ! command -v wrk >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null || echo "could not install wrk: the REST list scenario will be skipped" >&2
fi
# The charts' labels are drawn in DejaVu Sans (Debian: fonts-dejavu-core).
if [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then
  (apt-get update -qq && apt-get install -y -qq fonts-dejavu-core) >/dev/null || echo "could not install fonts-dejavu-core: no charts" >&2
fi
# PostgreSQL is the baseline of the transfer and insert scenarios, and the store of the
# commits-on-postgres and replica-fanout (writer + 2 read replicas) scenarios; start Debian's cluster if
# it is installed but stopped. Without it those say "skipped: no PostgreSQL".
if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  pg_ctlcluster 15 main start 2>/dev/null || echo "PostgreSQL is not running: its baselines will be skipped" >&2
fi
# esbuild and the npm `convex` server library, which the TypeScript scenario (js-calls) bundles
# bench/convex with.
if [ ! -d crates/js/npm/node_modules ]; then npm ci --prefix crates/js/npm --no-audit --no-fund; fi
# The fan-out scenario holds 10,000 client sockets in the harness, and the server as many.
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 10100 ]; then
  echo "the fan-out scenario needs 10,100 file descriptors per process, the limit is $(ulimit -n)" >&2
  exit 1
fi
cargo build --release -p livebase-bench
# The build (and any install above) leaves dirty pages that the kernel writes back over the next
# seconds; flushed now, so that they do not slow the first scenarios' fsyncs.
sync
exec target/release/livebase-bench --out bench "$@"
