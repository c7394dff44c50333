"""The Celery app.  Broker and queues come from Django settings (CELERY_*)."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time

from celery import Celery
from celery.signals import worker_init, worker_ready, worker_shutting_down

from kdgrade.env import ConfigError, exit_on_config_error

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kdgrade.settings")


def _load_settings() -> None:
    """Read the settings now, so a bad one stops the worker with one line, not a trace."""
    from django.conf import settings

    try:
        settings.INSTALLED_APPS  # noqa: B018 - forces the settings module to load
    except ConfigError as exc:
        exit_on_config_error(exc)
    if settings.CELERY_BROKER_URL.startswith("filesystem"):
        # The server-less broker is a pair of folders; producers and workers need them.
        for key in ("data_folder_in", "processed_folder", "control_folder"):
            os.makedirs(settings.CELERY_BROKER_TRANSPORT_OPTIONS[key], exist_ok=True)


log = logging.getLogger(__name__)
_load_settings()
app = Celery("kdgrade")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _prepare_worker(**_: object) -> None:
    """Create the file-system broker's folders and fail fast on an unreachable database."""
    from kdgrade.startup import check_database, prepare_data_dirs

    prepare_data_dirs()
    check_database()


@worker_ready.connect
def _announce_worker(sender: object = None, **_: object) -> None:
    """A heartbeat for each queue this worker consumes, as soon as it is ready (/healthz need not wait
    for the beat's first one)."""
    from scoring.services import record_heartbeat

    try:
        queues = {q.name for q in sender.task_consumer.queues}  # type: ignore[union-attr]
    except AttributeError:
        queues = {"default"}
    for queue in sorted(queues):
        record_heartbeat(queue=queue, marker="worker started")


_watchdog_started = threading.Event()


@worker_shutting_down.connect
def _bound_the_shutdown(sig: str = "", how: str = "", **_: object) -> None:
    """A stopped worker (SIGTERM, SIGINT) exits within KDGRADE_WORKER_SHUTDOWN_GRACE seconds.

    Celery's warm shutdown waits for running tasks and then hands unacknowledged messages back to the
    broker; a broker that stopped answering wedges that step (the worker was seen hanging after
    "Restoring N unacknowledged message(s)" until SIGKILL).  After the grace period the worker ends its
    pool processes and exits with status 1.  Nothing is lost: tasks are acknowledged late (the broker
    redelivers them) and idempotent, and the beat's outbox sweep re-queues every grade post that is due.
    """
    from django.conf import settings

    grace = float(settings.KDGRADE_WORKER_SHUTDOWN_GRACE)
    if grace <= 0 or _watchdog_started.is_set():
        return
    _watchdog_started.set()
    threading.Thread(target=_exit_after, args=(grace, sig), name="kdgrade-shutdown-watchdog", daemon=True).start()


def _exit_after(grace: float, sig: str) -> None:
    time.sleep(grace)
    from billiard.process import active_children

    log.error("kdgrade: worker still stopping %.0f s after %s; ending it now (unacknowledged tasks are "
              "redelivered)", grace, sig or "the stop signal")
    for child in active_children():
        with contextlib.suppress(OSError, ValueError, AttributeError):  # already gone
            child.kill()
    logging.shutdown()
    os._exit(1)
