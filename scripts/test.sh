#!/usr/bin/env bash
# Runs every test of the project. This is the command README names and .ci/run calls.
# It installs or starts whatever the tests need, so it works on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

# The official Convex npm client, for the server's conformance test (pinned in its package-lock.json).
if [ ! -d crates/server/tests/js/node_modules ]; then
  npm ci --prefix crates/server/tests/js --no-audit --no-fund
fi

# esbuild and the npm `convex` server library, which livebase-js bundles TypeScript functions with.
if [ ! -d crates/js/npm/node_modules ]; then npm ci --prefix crates/js/npm --no-audit --no-fund; fi

# Headless Chromium (Debian's) and the pinned npm packages of the browser tests.
./scripts/browser-env.sh

# The Python packages of the REST tests (requests for seed 001's client, schemathesis), in a venv.
./scripts/python-env.sh >/dev/null

# PostgreSQL for the store's second backend: started if installed; its tests must pass when it runs.
if [ "$(./scripts/postgres.sh)" = "LIVEBASE_REQUIRE_POSTGRES=1" ]; then
  export LIVEBASE_REQUIRE_POSTGRES=1
fi

# Formatting is part of the build's contract: fail fast, before anything compiles.
cargo fmt --all --check

# cargo-nextest runs test binaries in parallel and reports each; fall back to cargo test without it.
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
# Doc tests (nextest does not run them).
cargo test --workspace --doc
# Lints, as errors: the workspace stays clippy-clean.
cargo clippy --workspace --all-targets --quiet -- -D warnings
