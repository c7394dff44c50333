"""A real Celery worker process on the configured broker writes to the test database."""

import uuid

import pytest
from django.conf import settings

from scoring.models import WorkerHeartbeat
from scoring.tasks import heartbeat
from tests.workers import celery_worker, wait_until


@pytest.mark.django_db(transaction=True)
def test_task_runs_in_a_real_worker_and_its_effect_lands_in_the_database():
    marker = uuid.uuid4().hex
    with celery_worker() as proc:
        heartbeat.delay(marker=marker)
        row = wait_until(
            lambda: WorkerHeartbeat.objects.filter(marker=marker).first(),
            timeout=90,
            message=f"the worker (broker {settings.CELERY_BROKER_URL.split(':')[0]}) to record the heartbeat",
        )
        assert proc.poll() is None, "the worker died"
    assert row.queue == "default"
    # The task ran in another process, not eagerly in this one.
    assert not settings.CELERY_TASK_ALWAYS_EAGER


@pytest.mark.django_db
def test_a_heartbeat_forgets_its_queues_heartbeats_older_than_the_retention(settings):
    from datetime import timedelta

    from django.utils import timezone

    from scoring.services import record_heartbeat

    settings.KDGRADE_HEARTBEAT_KEEP_HOURS = 24
    now = timezone.now()
    old = WorkerHeartbeat.objects.create(hostname="w", queue="default", marker="old")
    recent = WorkerHeartbeat.objects.create(hostname="w", queue="default", marker="recent")
    other = WorkerHeartbeat.objects.create(hostname="w", queue="training", marker="other queue, old")
    WorkerHeartbeat.objects.filter(pk__in=[old.pk, other.pk]).update(seen_at=now - timedelta(hours=25))
    WorkerHeartbeat.objects.filter(pk=recent.pk).update(seen_at=now - timedelta(hours=23))
    beat = record_heartbeat(queue="default", marker="new")
    left = set(WorkerHeartbeat.objects.values_list("marker", flat=True))
    assert left == {"recent", "other queue, old", "new"} and beat.marker == "new"
    settings.KDGRADE_HEARTBEAT_KEEP_HOURS = 0  # 0: keep every heartbeat
    record_heartbeat(queue="training")
    assert WorkerHeartbeat.objects.filter(marker="other queue, old").exists()
