#!/usr/bin/env bash
# Runs the example's TypeScript unit tests with Node: esbuild (from livebase-js's npm folder) bundles each
# *.test.ts, stripping its types, and `node --test` runs the bundles. demo/tests/typescript.rs runs it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
esbuild="$here/../../../crates/js/npm/node_modules/.bin/esbuild"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for test in "$here"/*.test.ts; do
  "$esbuild" "$test" --bundle --format=esm --platform=node --log-level=warning \
    --outfile="$out/$(basename "$test" .ts).mjs"
done
node --test "$out"/*.mjs
