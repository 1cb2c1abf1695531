#!/usr/bin/env bash
# Create/refresh the kernel virtualenv at <repo>/.venv with scripts/requirements.txt, plus the
# test-only tools of scripts/requirements-test.txt (nbformat, jupytext, prometheus-client).
# Idempotent: skips pip when the venv exists and requirements are unchanged (stamp file).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
REQ="$ROOT/scripts/requirements.txt"
REQ_TEST="$ROOT/scripts/requirements-test.txt"
STAMP="$VENV/.requirements.stamp"
PY_BOOT="${PYTHON_BOOTSTRAP:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "creating virtualenv at $VENV" >&2
    "$PY_BOOT" -m venv "$VENV"
fi

if [ -f "$STAMP" ] && cat "$REQ" "$REQ_TEST" | cmp -s - "$STAMP"; then
    echo "python requirements already installed" >&2
else
    echo "installing python requirements" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ" -r "$REQ_TEST"
    cat "$REQ" "$REQ_TEST" > "$STAMP"
fi

echo "$VENV/bin/python"
