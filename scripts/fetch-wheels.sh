#!/usr/bin/env bash
# Fill .wheels/ (or $PYTHON_WHEELS_DIR) once with the wheels of the managed environment's
# requirements (src/pyenv/requirements.txt), so tests provision it offline. Skips the download
# when the directory already holds wheels for these exact requirements (stamp file).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${PYTHON_WHEELS_DIR:-$ROOT/.wheels}"
REQ="$ROOT/src/pyenv/requirements.txt"
STAMP="$DIR/.requirements.stamp"
PY="${PYTHON_BOOTSTRAP:-python3}"

if [ -f "$STAMP" ] && cmp -s "$REQ" "$STAMP"; then
    echo "wheels already in $DIR" >&2
else
    echo "downloading wheels into $DIR" >&2
    mkdir -p "$DIR"
    "$PY" -m pip download --quiet --disable-pip-version-check --only-binary=:all: -r "$REQ" -d "$DIR"
    cp "$REQ" "$STAMP"
fi
echo "$DIR"
