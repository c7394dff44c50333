#!/usr/bin/env bash
# Creates .venv and installs the pinned requirements into it (again only when they change).
# Usage: scripts/bootstrap.sh [serve|all|dev]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-all}"
case "$profile" in
  serve) req=requirements/serve.txt ;;
  all) req=requirements.txt ;;
  dev) req=requirements/dev.txt ;;
  *) echo "bootstrap: unknown profile '$profile' (serve, all or dev)" >&2; exit 2 ;;
esac
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.kdgrade-$profile"
digest=$(cat requirements.txt requirements/*.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
  echo "bootstrap: installing $req (pinned by requirements/constraints.txt)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$req" -c requirements/constraints.txt 2>&1 \
    | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import django, celery, onnxruntime" || { echo "bootstrap: install failed" >&2; exit 1; }
  echo "$digest" > "$stamp"
fi
if [ "$profile" = dev ]; then
  # Browser tests (tests/browser/) drive Debian's Chromium and inject axe-core from npm (package-lock.json).
  if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    echo "bootstrap: installing Debian's chromium and chromium-driver (apt-get; needs root)"
    if [ "$(id -u)" -eq 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
    else
      sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
    fi
  fi
  if [ ! -f node_modules/.kdgrade-lock ] || ! cmp -s package-lock.json node_modules/.kdgrade-lock; then
    command -v npm >/dev/null || { echo "bootstrap: npm is needed for the browser tests (apt-get install npm)" >&2; exit 1; }
    echo "bootstrap: npm ci (axe-core for the browser tests)"
    npm ci --no-audit --no-fund --silent
    cp package-lock.json node_modules/.kdgrade-lock
  fi
fi
