"""Start-up checks that turn bad configuration into one clear line."""

from __future__ import annotations

import os
import sys

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.utils import OperationalError

from kdgrade.env import redact_url


def prepare_data_dirs() -> None:
    for path in (settings.DATA_DIR, settings.MODELS_DIR, settings.MEDIA_ROOT):
        os.makedirs(path, exist_ok=True)
    if settings.CELERY_BROKER_URL.startswith("filesystem"):
        for key in ("data_folder_in", "processed_folder", "control_folder"):
            os.makedirs(settings.CELERY_BROKER_TRANSPORT_OPTIONS[key], exist_ok=True)


def check_database() -> None:
    """Exit with one line naming DATABASE_URL when the database cannot be reached."""
    try:
        connections[DEFAULT_DB_ALIAS].ensure_connection()
    except OperationalError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(
            f"kdgrade: cannot connect to the database in DATABASE_URL "
            f"({redact_url(settings.DATABASE_URL)}): {reason}",
            file=sys.stderr,
        )
        raise SystemExit(3) from None
    finally:
        connections[DEFAULT_DB_ALIAS].close()
