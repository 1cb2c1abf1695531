#!/usr/bin/env bash
# The whole test suite: kernel virtualenv, then every Rust test on SQLite and PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup-python.sh
./scripts/setup-browser.sh
# Wheels for the managed-environment tests, downloaded once; they provision offline from it.
PYTHON_WHEELS_DIR="$(./scripts/fetch-wheels.sh)"
export PYTHON_WHEELS_DIR
# diesel CLI for tests/admin.rs, built once per machine (minutes) into the user's cache folder and reused afterwards.
DIESEL_CLI="$(./scripts/install-diesel.sh)"
export DIESEL_CLI
export PYTHON="$PWD/.venv/bin/python"
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export RUST_LOG="${RUST_LOG:-warn}"

# Databases left behind by an interrupted earlier run.
if command -v psql >/dev/null; then
  psql "$TEST_DATABASE_URL" -Atqc "SELECT datname FROM pg_database WHERE datname LIKE 'rn\_test\_%'" 2>/dev/null |
    while read -r db; do psql "$TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true; done
fi

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --no-fail-fast "$@"
else
  cargo test --no-fail-fast "$@"
fi
