#!/usr/bin/env bash
# Installs diesel CLI (PostgreSQL only) once into .cache/diesel and prints its path.
# The cache lives outside target/ so `cargo clean` keeps it; CI can cache the folder.
set -euo pipefail
cd "$(dirname "$0")/.."

root="${DIESEL_CLI_ROOT:-$PWD/.cache/diesel}"
bin="$root/bin/diesel"
if [ ! -x "$bin" ]; then
  echo "installing diesel CLI into $root (once per machine)" >&2
  cargo install diesel_cli --locked --no-default-features --features postgres --root "$root" >&2
fi
echo "$bin"
