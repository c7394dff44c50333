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
