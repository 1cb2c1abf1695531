#!/usr/bin/env bash
# Installs diesel CLI (PostgreSQL only) once per machine and prints its path. It lives in the
# user's cache folder, not the checkout, so every clone on the machine (CI's fresh ones too)
# reuses it, and `cargo clean` keeps it. DIESEL_CLI_ROOT picks another folder.
set -euo pipefail
cd "$(dirname "$0")/.."

root="${DIESEL_CLI_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/reactive-notebook/diesel}"
bin="$root/bin/diesel"
if [ ! -x "$bin" ]; then
  echo "installing diesel CLI into $root (once per machine)" >&2
  cargo install diesel_cli --locked --no-default-features --features postgres --root "$root" >&2
fi
echo "$bin"
