"""Health and readiness checks: plain functions the /healthz and /readyz views call.

- readiness (`/readyz`): this web process can serve pages: the database and the shared cache answer
  (an LTI launch needs both).  A load balancer sends traffic only to ready processes.
- health (`/healthz`): the whole service works: readiness, plus the broker answers and a worker of
  each queue (short tasks: `default`; model training: `training`) is alive: it answers a broadcast
  (Redis, RabbitMQ), or, on the file-system broker, which has no broadcast, it recorded a heartbeat
  recently (the beat asks every minute; a worker also records one when it starts).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from scoring.models import WorkerHeartbeat

WORKER_QUEUES = ("default", "training")


@dataclass
class Report:
    checks: dict[str, object] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, object]:
        return {"status": "ok" if self.ok else "unhealthy", **self.checks, "problems": self.problems}


def _error(exc: BaseException) -> str:
    return f"error: {type(exc).__name__}"


def check_database(report: Report) -> bool:
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any driver error means "not ready"
        report.checks["database"] = _error(exc)
        report.problems.append("the database does not answer (DATABASE_URL)")
        return False
    report.checks["database"] = "ok"
    return True


def check_cache(report: Report) -> None:
    key = f"health:{secrets.token_hex(8)}"
    try:
        cache.set(key, 1, timeout=10)
        hit = cache.get(key) == 1
        cache.delete(key)
    except Exception as exc:  # Redis down, or the database cache table missing
        report.checks["cache"] = _error(exc)
        report.problems.append("the shared cache does not answer (CACHE_URL, or `manage.py migrate` not run)")
        return
    report.checks["cache"] = "ok" if hit else "error: value not kept"
    if not hit:
        report.problems.append("the shared cache does not keep values")


def check_broker(report: Report) -> None:
    url = settings.CELERY_BROKER_URL
    if url.startswith("filesystem"):
        folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
        ok = folder.is_dir()
        report.checks["broker"] = "ok" if ok else "error: queue folder missing"
        if not ok:
            report.problems.append(f"the file-system broker's folder {folder} is missing")
        return
    from kdgrade.celery import app

    try:
        with app.connection_for_write(url) as conn:
            conn.ensure_connection(max_retries=1, timeout=2, interval_start=0)
    except Exception as exc:
        report.checks["broker"] = _error(exc)
        report.problems.append("the broker does not answer (CELERY_BROKER_URL)")
        return
    report.checks["broker"] = "ok"


def _queues_with_live_workers() -> set[str] | None:
    """Queues consumed by workers that answer a broadcast now (1 s), or None where the broker has no
    broadcast (the file-system broker) or does not answer."""
    if settings.CELERY_BROKER_URL.startswith("filesystem"):
        return None
    from kdgrade.celery import app

    try:
        with app.connection_for_write(settings.CELERY_BROKER_URL) as conn:
            replies = app.control.inspect(timeout=1.0, connection=conn).active_queues() or {}
    except Exception:  # broker down: reported by check_broker
        return None
    return {q["name"] for queues in replies.values() for q in (queues or [])}


def check_workers(report: Report, *, broker_ok: bool = True) -> None:
    """A queue is served when a worker on it answers a broadcast now (Redis, RabbitMQ), else when one
    recorded a heartbeat within KDGRADE_HEALTH_HEARTBEAT_MAX_AGE (file-system broker)."""
    max_age = timedelta(seconds=float(settings.KDGRADE_HEALTH_HEARTBEAT_MAX_AGE))
    now = timezone.now()
    live = _queues_with_live_workers() if broker_ok else set()
    workers: dict[str, object] = {}
    for queue in WORKER_QUEUES:
        last = (WorkerHeartbeat.objects.filter(queue=queue).order_by("-seen_at")
                .values_list("seen_at", flat=True).first())
        if live is not None:
            alive, how = queue in live, "answered now"
        else:
            how = f"heartbeat within {int(max_age.total_seconds())} s"
            alive = last is not None and now - last <= max_age
        workers[queue] = {"last_heartbeat": last.isoformat() if last else None, "alive": alive, "checked_by": how}
        if not alive:
            report.problems.append(f"no worker of the {queue!r} queue is alive ({how}: no)")
    report.checks["workers"] = workers
    report.checks["last_worker_heartbeat"] = workers["default"]["last_heartbeat"]  # type: ignore[index]


def readiness() -> Report:
    report = Report()
    if check_database(report):
        check_cache(report)
    return report


def health() -> Report:
    report = readiness()
    check_broker(report)
    if report.checks.get("database") == "ok":
        check_workers(report, broker_ok=report.checks.get("broker") == "ok")
    return report
