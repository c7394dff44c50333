"""Celery tasks: thin wrappers that take ids and call services."""

from __future__ import annotations

from celery import shared_task

from scoring import services


@shared_task(name="scoring.heartbeat")
def heartbeat(marker: str = "", queue: str = "default") -> int:
    return services.record_heartbeat(queue=queue, marker=marker).pk
