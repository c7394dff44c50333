"""A worker stopped with SIGTERM exits: promptly when idle with scheduled (ETA) tasks in hand, and
within KDGRADE_WORKER_SHUTDOWN_GRACE when the broker stopped answering (it used to hang after
"Restoring N unacknowledged message(s)" until SIGKILL).  Real `celery worker` processes (prefork)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from tests.tcp_proxy import FreezableProxy
from tests.workers import ROOT, child_env, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _worker(log: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "kdgrade", "worker", "-Q", "default,training", "--concurrency", "2",
         "--loglevel", "INFO", "-n", f"shutdown-{os.getpid()}@%h"],
        cwd=ROOT, env=child_env(**env), stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def _queue_eta_tasks(broker_url: str) -> None:
    """Two tasks due in 5 minutes: a worker holds them unacknowledged until then."""
    from kdgrade.celery import app

    with app.connection_for_write(broker_url) as conn:
        for i in range(2):
            app.send_task("scoring.heartbeat", kwargs={"marker": f"eta-{i}"}, countdown=300, connection=conn)


def _stop(proc: subprocess.Popen, timeout: float) -> tuple[int | None, float]:
    started = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None, time.monotonic() - started
    return code, time.monotonic() - started


def test_sigterm_stops_a_worker_holding_scheduled_tasks(tmp_path):
    _queue_eta_tasks(settings.CELERY_BROKER_URL)
    log = tmp_path / "worker.log"
    proc = _worker(log)
    try:
        wait_until(lambda: log.read_text().count("received") >= 2, timeout=60, message="the worker to take the tasks")
    finally:
        code, took = _stop(proc, timeout=30)
    assert code == 0, f"exit {code} after {took:.1f}s\n{log.read_text()[-2000:]}"
    assert took < 20


@pytest.mark.skipif(not settings.CELERY_BROKER_URL.startswith("redis://"),
                    reason="a silent broker needs a network broker (servers configuration: Redis)")
def test_sigterm_stops_a_worker_whose_broker_went_silent(tmp_path):
    host_port, _, db = settings.CELERY_BROKER_URL[len("redis://"):].partition("/")
    host, _, port = host_port.rpartition("@")[2].partition(":")
    proxy = FreezableProxy(host, int(port or 6379))
    url = f"redis://127.0.0.1:{proxy.port}/{db or 0}"
    try:
        _queue_eta_tasks(url)
        log = tmp_path / "worker.log"
        proc = _worker(log, CELERY_BROKER_URL=url, KDGRADE_WORKER_SHUTDOWN_GRACE="6")
        try:
            wait_until(lambda: log.read_text().count("received") >= 2, timeout=60,
                       message="the worker to take the tasks")
            proxy.freeze()
            time.sleep(1)
        finally:
            code, took = _stop(proc, timeout=30)
    finally:
        proxy.close()
    text = log.read_text()
    assert code is not None, f"the worker hung after SIGTERM\n{text[-2000:]}"
    assert took < 15 and code == 1, f"exit {code} after {took:.1f}s\n{text[-2000:]}"
    assert "ending it now" in text
