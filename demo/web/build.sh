#!/usr/bin/env bash
# Bundles Piano Mirror's page (pages/app.jsx, React and the Convex client) into dist/app.js, minified,
# beside dist/index.html, for the piano-mirror binary to embed: `cargo run` then needs no npm. Run it
# after changing pages/ and commit dist/ (a test of demo/tests/web.rs fails while dist/ is stale).
# Usage: demo/web/build.sh [output directory, default demo/web/dist]. Needs `npm ci` in demo/web
# (scripts/browser-env.sh does it). The output depends only on the sources and the pinned esbuild.
set -euo pipefail
web="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$web/dist}"
mkdir -p "$out"
cd "$web"
# Relative paths keep the bundle free of this checkout's location.
node_modules/.bin/esbuild pages/app.jsx --bundle --minify --format=esm --platform=browser --jsx=automatic \
  --define:process.env.NODE_ENV='"production"' --legal-comments=eof --charset=utf8 --log-level=warning \
  --outfile="$out/app.js"
cp pages/index.html "$out/index.html"
