"""Real Celery worker processes for tests (not eager mode)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def test_database_url() -> str:
    """DATABASE_URL of the database the current test uses, for a child process."""
    cfg = connection.settings_dict
    if cfg["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{cfg['NAME']}"
    user = cfg.get("USER") or ""
    password = f":{cfg['PASSWORD']}" if cfg.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{cfg.get('HOST') or '127.0.0.1'}:{cfg.get('PORT') or 5432}/{cfg['NAME']}"


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["DATABASE_URL"] = test_database_url()
    env["PYTHONUNBUFFERED"] = "1"
    # The tests' LMS (DevPlatform) listens on 127.0.0.1: let the worker's outbound calls reach it.
    env.setdefault("KDGRADE_OUTBOUND_ALLOW_PRIVATE", "true")
    env.update(extra)
    return env


@contextmanager
def celery_worker(
    queues: str = "default", pool: str = "solo", extra_env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen]:
    """Start `celery worker` as a separate process on the configured broker; stop it after."""
    name = f"test-{uuid.uuid4().hex[:8]}@%h"
    log_dir = Path(os.environ.get("KDGRADE_DATA_DIR", ROOT / "var"))
    log_dir.mkdir(parents=True, exist_ok=True)
    log = open(log_dir / f"worker-{name.split('@')[0]}.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "kdgrade", "worker", "-Q", queues, "-n", name,
         "--pool", pool, "--concurrency", "1", "--without-gossip", "--without-mingle",
         "--loglevel", "INFO"],
        cwd=ROOT, env=child_env(**(extra_env or {})), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def wait_until(predicate, timeout: float = 60.0, interval: float = 0.2, message: str = "condition"):
    """Poll `predicate` until it returns something truthy, or fail the test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")
