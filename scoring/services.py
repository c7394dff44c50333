"""Business logic of the scoring app that is not about models or the LMS."""

from __future__ import annotations

import socket

from scoring.models import WorkerHeartbeat


def record_heartbeat(*, queue: str, marker: str = "") -> WorkerHeartbeat:
    """Note that a worker on `queue` is alive (called from a Celery task)."""
    return WorkerHeartbeat.objects.create(hostname=socket.gethostname(), queue=queue, marker=marker)
