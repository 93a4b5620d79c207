#!/usr/bin/env bash
# Makes sure the PostgreSQL the store's tests use is running, starting the Debian cluster when it is
# installed but stopped. Prints `LIVEBASE_REQUIRE_POSTGRES=1` when PostgreSQL answers (the caller
# exports it so the PostgreSQL tests fail rather than skip), and a loud warning when it does not.
# Tests connect to $LIVEBASE_TEST_POSTGRES (default postgres://postgres@127.0.0.1:5432/test).
set -euo pipefail

url="${LIVEBASE_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}"
reachable() { pg_isready -q -d "$url" -t 3 2>/dev/null; }

if command -v pg_isready >/dev/null 2>&1 && ! reachable && command -v pg_ctlcluster >/dev/null 2>&1; then
  # The Debian package's cluster, e.g. `15 main`.
  cluster="$(pg_lsclusters -h 2>/dev/null | awk 'NR == 1 { print $1, $2 }')"
  if [ -n "$cluster" ]; then
    echo "starting PostgreSQL cluster $cluster" >&2
    # shellcheck disable=SC2086 # two words: version and name
    pg_ctlcluster $cluster start >&2 || sudo -n pg_ctlcluster $cluster start >&2 || true
    for _ in $(seq 1 30); do reachable && break; sleep 1; done
  fi
fi

if command -v pg_isready >/dev/null 2>&1 && reachable; then
  echo "LIVEBASE_REQUIRE_POSTGRES=1"
else
  cat >&2 <<WARNING
################################################################################
# PostgreSQL is not reachable at $url:
# the store's PostgreSQL tests will be SKIPPED. Install and start PostgreSQL, or
# set LIVEBASE_TEST_POSTGRES to a database they may create schemas in.
################################################################################
WARNING
fi
