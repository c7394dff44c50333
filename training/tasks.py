"""Celery tasks of the training app: thin wrappers that take ids and call services."""

from __future__ import annotations

from celery import shared_task

from training import runs


@shared_task(name="training.train_run", acks_late=True)
def train_run(run_id: int) -> str | None:
    """Execute a training run (routed to the `training` queue: a worker with --concurrency 1)."""
    run = runs.execute_run(run_id)
    return run.status if run else None


@shared_task(name="training.sweep_stale_runs")
def sweep_stale_runs() -> list[int]:
    """Fail runs whose worker stopped beating (beat calls this every KDGRADE_TRAINING_SWEEP_SECONDS)."""
    return runs.sweep_stale_runs()
