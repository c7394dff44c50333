#!/usr/bin/env bash
# One command to run kdgrade on a fresh machine: install, migrate, load the demo,
# then the web server and a Celery worker (with its beat scheduler) together.
# Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh all
PY=.venv/bin/python
export PYTHONUNBUFFERED=1
$PY manage.py migrate --noinput -v0
$PY manage.py createcachetable
$PY manage.py load_demo --with-model
$PY manage.py ensure_admin
HOST="${KDGRADE_HOST:-127.0.0.1}"
PORT="${KDGRADE_PORT:-8000}"
.venv/bin/celery -A kdgrade worker -B -Q default --concurrency 2 -n default@%h --loglevel INFO \
  --schedule "${KDGRADE_DATA_DIR:-var}/celerybeat-schedule" &
worker=$!
# Training (retraining from the admin) has its own worker, one run at a time, so it never delays a grade.
.venv/bin/celery -A kdgrade worker -Q training --concurrency 1 -n training@%h --loglevel INFO &
trainer=$!
$PY manage.py runserver --noreload "$HOST:$PORT" &
web=$!
LMS_PORT="${KDGRADE_DEV_LMS_PORT:-8765}"
lms=""
if [ "${KDGRADE_MODE:-development}" = "development" ] && [ "${KDGRADE_DEV_LMS:-on}" = "on" ]; then
  # A local LMS (a real LTI 1.3 platform library) to try launches and grade passback.
  $PY manage.py lti_dev_lms --port "$LMS_PORT" &
  lms=$!
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
