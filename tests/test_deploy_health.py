"""Health, readiness and liveness: a real worker process makes /healthz healthy; no worker, a stale
heartbeat or an unreachable broker make it 503 with the problem in words; /readyz follows the database
and the cache only.  And `migrate` alone creates every table a launch needs (the database cache)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from scoring.models import WorkerHeartbeat
from tests.workers import ROOT, celery_worker, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_no_worker_means_unhealthy_but_ready(client):
    health = client.get("/healthz")
    assert health.status_code == 503
    body = health.json()
    assert body["status"] == "unhealthy" and body["database"] == "ok" and body["cache"] == "ok"
    assert body["last_worker_heartbeat"] is None
    assert any("'default' queue" in p for p in body["problems"]), body
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"
    assert client.get("/livez").content == b"ok"


def test_a_real_worker_makes_it_healthy_and_a_stale_heartbeat_unhealthy_again(client, settings):
    with celery_worker(queues="default,training"):
        body = wait_until(lambda: (r := client.get("/healthz")).status_code == 200 and r.json(), timeout=60,
                          message="/healthz to turn healthy once the worker is ready")
    assert body["status"] == "ok" and body["broker"] == "ok" and body["problems"] == []
    assert body["workers"]["default"]["alive"] and body["workers"]["training"]["alive"]
    assert WorkerHeartbeat.objects.filter(marker="worker started").count() == 2
    # Stopped: a network broker's broadcast finds no worker at once; the file-system broker has none,
    # so there the heartbeat has to age.
    settings.KDGRADE_HEALTH_HEARTBEAT_MAX_AGE = 0.5
    stale = wait_until(lambda: (r := client.get("/healthz")).status_code == 503 and r.json(), timeout=10,
                       message="the stopped worker to be noticed")
    assert not stale["workers"]["default"]["alive"] and not stale["workers"]["training"]["alive"]


def test_a_stopped_worker_is_noticed_at_once_on_a_network_broker(client, settings):
    if settings.CELERY_BROKER_URL.startswith("filesystem"):
        pytest.skip("the file-system broker has no broadcast: liveness comes from heartbeats there")
    with celery_worker(queues="default,training"):
        wait_until(lambda: client.get("/healthz").status_code == 200, timeout=60, message="healthy")
    body = client.get("/healthz").json()  # heartbeats are seconds old, but nobody answers
    assert body["status"] == "unhealthy" and body["workers"]["default"]["checked_by"] == "answered now"
    assert not body["workers"]["default"]["alive"]


def test_an_unreachable_broker_is_reported(client, settings):
    WorkerHeartbeat.objects.create(hostname="w", queue="default")
    WorkerHeartbeat.objects.create(hostname="w", queue="training")
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    resp = client.get("/healthz")
    assert resp.status_code == 503
    body = resp.json()
    assert body["broker"].startswith("error") and "the broker does not answer (CELERY_BROKER_URL)" in body["problems"]
    assert client.get("/readyz").status_code == 200  # pages can still be served


@pytest.mark.django_db(transaction=False)
def test_migrate_alone_creates_the_cache_table_a_launch_reads(tmp_path):
    """A fresh database: `migrate`, then the database cache (no CACHE_URL) works in a new process."""
    env = {"PATH": "/usr/bin:/bin", "KDGRADE_DATA_DIR": str(tmp_path), "HOME": str(tmp_path),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.sqlite3'}"}
    done = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    probe = ("import django, os; os.environ['DJANGO_SETTINGS_MODULE']='kdgrade.settings'; django.setup();"
             "from django.core.cache import cache; cache.set('k', 42); print(cache.get('k'))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "42", out.stderr[-2000:]


def test_probes_answer_a_local_health_check_in_production(client, settings):
    """A container health check asks http://127.0.0.1:8000/readyz: not an allowed host, not HTTPS."""
    settings.ALLOWED_HOSTS = ["kdgrade.district.org"]
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/readyz", HTTP_HOST="127.0.0.1:8000").status_code == 200
    assert client.get("/livez", HTTP_HOST="127.0.0.1:8000").status_code == 200
    assert client.get("/healthz", HTTP_HOST="127.0.0.1:8000").status_code == 503  # no worker in this test
    assert client.get("/", HTTP_HOST="127.0.0.1:8000").status_code == 400  # everything else: host checked
