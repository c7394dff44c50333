#!/usr/bin/env bash
# One command to run kdgrade on a fresh machine: install, migrate, load the demo,
# then the web server and a Celery worker (with its beat scheduler) together.
# Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
HOST="${KDGRADE_HOST:-127.0.0.1}"
PORT="${KDGRADE_PORT:-8000}"
LMS_PORT="${KDGRADE_DEV_LMS_PORT:-8765}"
# kdgrade's public URL follows the port unless KDGRADE_PUBLIC_URL says otherwise (settings.py).
export KDGRADE_PORT="$PORT" KDGRADE_DEV_LMS_PORT="$LMS_PORT"
port_free() { python3 -c 'import socket, sys; socket.create_server((sys.argv[1], int(sys.argv[2])))' "$1" "$2" 2>/dev/null; }
if ! port_free "$HOST" "$PORT"; then
  echo "kdgrade: port $PORT on $HOST is in use (another kdgrade running?). Stop it, or choose a free port:" \
       "KDGRADE_PORT=8001 bash scripts/run.sh" >&2
  exit 1
fi
bash scripts/bootstrap.sh all
PY=.venv/bin/python
export PYTHONUNBUFFERED=1
$PY manage.py migrate --noinput -v0
$PY manage.py load_demo --with-model
$PY manage.py ensure_admin
if [ "${KDGRADE_MODE:-development}" = "development" ] && [ "${KDGRADE_DEV_LMS:-on}" = "on" ]; then
  # The development LMS runs on 127.0.0.1: let kdgrade's outbound calls (keysets, grades) reach it.
  export KDGRADE_OUTBOUND_ALLOW_PRIVATE="${KDGRADE_OUTBOUND_ALLOW_PRIVATE:-true}"
fi
.venv/bin/celery -A kdgrade worker -B -Q default --concurrency 2 -n default@%h --loglevel INFO \
  --schedule "${KDGRADE_DATA_DIR:-var}/celerybeat-schedule" &
worker=$!
# Training (retraining from the admin) has its own worker, one run at a time, so it never delays a grade.
.venv/bin/celery -A kdgrade worker -Q training --concurrency 1 -n training@%h --loglevel INFO &
trainer=$!
$PY manage.py runserver --noreload "$HOST:$PORT" &
web=$!
lms=""
if [ "${KDGRADE_MODE:-development}" = "development" ] && [ "${KDGRADE_DEV_LMS:-on}" = "on" ]; then
  # A local LMS (a real LTI 1.3 platform library) to try launches and grade passback.
  if port_free 127.0.0.1 "$LMS_PORT"; then
    $PY manage.py lti_dev_lms --port "$LMS_PORT" &
    lms=$!
  else
    echo "kdgrade: port $LMS_PORT is in use: no development LMS this time (set KDGRADE_DEV_LMS_PORT to a free port)" >&2
  fi
fi
stop() { kill "$web" "$worker" "$trainer" $lms 2>/dev/null || true; wait 2>/dev/null || true; }
trap stop INT TERM
echo
echo "kdgrade is starting on http://$HOST:$PORT/  (admin: http://$HOST:$PORT/admin/, login in var/admin-password.txt)"
[ -n "$lms" ] && echo "Development LMS (launch kdgrade as a teacher or a student): http://127.0.0.1:$LMS_PORT/"
echo "Press Ctrl-C to stop the web server and the worker."
# Whichever stops first (or Ctrl-C) stops the other.
wait -n "$web" "$worker" "$trainer" || true
stop
