#!/usr/bin/env bash
# The whole test suite: ruff, then pytest in two configurations:
#   embedded: SQLite + the file-system Celery broker (always)
#   servers:  PostgreSQL + Redis on 127.0.0.1 (when reachable; under CI=true a missing
#             server is a failure, never a skip)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh dev
PY=.venv/bin/python
export PYTHONUNBUFFERED=1
# Tests keep their files (SQLite test database, broker folders, models) apart from a dev run.
export KDGRADE_DATA_DIR="$PWD/var/test"

echo "== ruff check"
.venv/bin/ruff check .

PG_URL="${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}"

status=0
echo "== pytest, embedded configuration (SQLite, file-system broker)"
env -u DATABASE_URL -u CELERY_BROKER_URL -u CACHE_URL KDGRADE_TEST_CONFIG=embedded \
  $PY -m pytest "$@" || status=$?
[ "$status" -eq 5 ] && { echo "pytest collected no tests: that is a failure"; exit 5; }
[ "$status" -ne 0 ] && exit "$status"

missing=$($PY scripts/servers_missing.py "$PG_URL" "$REDIS_URL")
if [ -n "$missing" ]; then
  if [ "${CI:-}" = "true" ]; then
    echo "FAILED: the servers configuration cannot run under CI: $missing" >&2
    exit 1
  fi
  echo "== NOT RUN: servers configuration (PostgreSQL + Redis): $missing"
  echo "   Only the embedded configuration was tested."
  exit 0
fi
echo "== pytest, servers configuration (PostgreSQL $PG_URL, Redis $REDIS_URL)"
# Tests marked 'ml' touch neither database nor broker: they ran above already.
DATABASE_URL="$PG_URL" CELERY_BROKER_URL="$REDIS_URL" CACHE_URL="${REDIS_URL%/*}/14" KDGRADE_TEST_CONFIG=servers \
  $PY -m pytest -m "not ml" "$@" || status=$?
[ "$status" -eq 5 ] && { echo "pytest collected no tests: that is a failure"; exit 5; }
exit "$status"
