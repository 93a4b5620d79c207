#!/usr/bin/env bash
# Installs what the browser tests need: Debian's Chromium (at /usr/bin/chromium, driven by
# playwright-core, which cannot download browsers here) and the pinned npm packages of
# crates/server/tests/browser (react, react-dom, convex, playwright-core, esbuild) and of demo/web
# from their lockfiles.
# Idempotent and quick when up to date: it reinstalls the packages only when the lockfile changed.
set -euo pipefail
cd "$(dirname "$0")/.."
# Tests running in parallel each call this script: one installs, the others wait and find it done.
exec 9>"${TMPDIR:-/tmp}/livebase-browser-env.lock"
flock 9

if [ ! -x /usr/bin/chromium ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

# The demo's web page (demo/web) has its own packages (react, react-dom, convex, and esbuild for its
# build.sh); its tests use the harness and packages of crates/server/tests/browser.
for packages in crates/server/tests/browser demo/web; do
  stamp="$packages/node_modules/.livebase-package-lock.json"
  if ! cmp -s "$packages/package-lock.json" "$stamp"; then
    npm ci --prefix "$packages" --no-audit --no-fund --loglevel=error
    cp "$packages/package-lock.json" "$stamp"
  fi
done
