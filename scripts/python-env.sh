#!/usr/bin/env bash
# Creates (or reuses) the Python virtual environment the tests run Python tools in, with the
# packages of the requirements files below, and prints its directory.
# Idempotent and quick when up to date: it reinstalls only when a requirements file changed.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${LIVEBASE_PYTHON_VENV:-$PWD/target/python-venv}"
# The REST tests' tools, and the official Convex Python client of the conformance test.
requirements=(crates/server/tests/rest/requirements.txt crates/server/tests/python/requirements.txt)
stamp="$venv/.requirements"
mkdir -p "$(dirname "$venv")"
# Tests in parallel processes may call this at once: one of them installs, the others wait.
exec 9>"$venv.lock"
flock 9
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" >&2
fi
if ! cat "${requirements[@]}" | cmp -s - "$stamp"; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${requirements[@]/#/--requirement=}" >&2
  cat "${requirements[@]}" >"$stamp"
fi
echo "$venv"
