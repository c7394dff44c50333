"""The Celery app.  Broker and queues come from Django settings (CELERY_*)."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_init

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
