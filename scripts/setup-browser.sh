#!/usr/bin/env bash
# Everything the browser test (tests/browser.rs) needs: Debian's chromium, and playwright-core
# (pinned in tests/browser/package-lock.json) to drive it. Idempotent; safe to run every time.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends chromium chromium-driver fonts-dejavu-core
fi

cd tests/browser
if [ -f package-lock.json ]; then
  # Skip when node_modules already matches the lock file.
  if [ ! -d node_modules/playwright-core ] || ! cmp -s package-lock.json node_modules/.package-lock.json.copy; then
    npm ci --no-audit --no-fund
    cp package-lock.json node_modules/.package-lock.json.copy
  fi
else
  npm install --no-audit --no-fund
fi
echo "browser test setup ready: $(/usr/bin/chromium --version 2>/dev/null), playwright-core $(node -p "require('./node_modules/playwright-core/package.json').version")"
