#!/usr/bin/env bash
# Create/refresh the kernel virtualenv at <repo>/.venv with scripts/requirements.txt.
# Idempotent: skips pip when the venv exists and requirements are unchanged (stamp file).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
REQ="$ROOT/scripts/requirements.txt"
STAMP="$VENV/.requirements.stamp"
PY_BOOT="${PYTHON_BOOTSTRAP:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "creating virtualenv at $VENV" >&2
    "$PY_BOOT" -m venv "$VENV"
fi

if [ -f "$STAMP" ] && cmp -s "$REQ" "$STAMP"; then
    echo "python requirements already installed" >&2
else
    echo "installing python requirements" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
    cp "$REQ" "$STAMP"
fi

echo "$VENV/bin/python"
