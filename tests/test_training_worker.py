"""Training runs executed by a REAL Celery worker on the configured broker (file system or Redis), with the
tiny teacher: progress read through the run page, one item's failure, cancel, and a worker killed mid-run."""

from __future__ import annotations

import os
import signal
import time

import pytest
from django.utils import timezone

from scoring.demo_data import load_demo
from scoring.models import Item, ModelVersion
from tests.training_support import csv_bytes, demo_upload
from tests.workers import celery_worker, wait_until
from training import importing, runs
from training.models import TrainingRun

# A tiny teacher that trains long enough (hundreds of small steps) to be caught mid-run.
LONG = {"teacher": {"epochs": 200, "batch_size": 4}}


def _demo_item_with_answers() -> Item:
    item = load_demo()
    importing.import_items(demo_upload("w", extra={"school": ["north", "south"]}), "demo.csv")
    return item


def _status(client, run_id: int) -> dict:
    r = client.get(f"/admin/training/trainingrun/{run_id}/status.json")
    assert r.status_code == 200
    return r.json()


@pytest.mark.django_db(transaction=True)
def test_worker_trains_each_item_progress_advances_on_the_run_page_and_one_failure_spares_the_other(admin_client):
    item = _demo_item_with_answers()
    flat = Item.objects.create(external_id="flat", title="All answers scored 1", question="Q?", score_min=0,
                               score_max=2)
    importing.import_items(csv_bytes([["flat", "Q?", "R", f"f{i}", f"answer number {i}", 1] for i in range(8)]),
                           "flat.csv")
    run = runs.start_run([flat, item], preset="tiny")
    seen: list[dict] = []
    with celery_worker(queues="training") as proc:
        def finished():
            s = _status(admin_client, run.pk)
            seen.append(s)
            return s["finished"]

        wait_until(finished, timeout=300, interval=0.3, message="the training run to finish")
        assert proc.poll() is None, "the worker died"
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.PARTLY_FAILED, run.error
    bad, good = run.run_items.order_by("id")
    assert bad.status == "failed" and "single score level" in bad.error
    assert good.status == "done" and good.model_version.status == ModelVersion.Status.READY
    assert good.report["models"]["student"]["qwk"] is not None and good.gates, "the report and its gates"
    assert good.report["models"]["teacher_onnx_int8"] is None, "an admin's run skips the int8 teacher"
    assert good.n_train == 36

    running = [s for s in seen if s["status"] == "running"]
    percents = [s["percent"] for s in running]
    assert len(set(percents)) >= 3, f"progress did not advance through the run page: {percents}"
    assert percents == sorted(percents), f"progress went backwards: {percents}"
    assert any(s["stage"] == "teacher" and s["epoch"] and s["step"] for s in running), "stage/epoch/step shown"
    assert any(s["eta"] for s in running), "time left shown"
    rows = list(run.progress_rows.filter(item="heat-spoon").values_list("percent", flat=True))
    assert len(rows) >= 3 and rows == sorted(rows) and rows[-1] > rows[0]

    page = admin_client.get(f"/admin/training/trainingrun/{run.pk}/progress/")
    assert page.status_code == 200 and b'role="progressbar"' in page.content and b"progress.js" in page.content
    report = admin_client.get(f"/admin/training/trainingrun/{run.pk}/report/")
    assert report.status_code == 200
    body = report.content.decode()
    assert "Student (distilled)" in body and "Teacher (transformer)" in body and "<svg" in body
    assert "int8" not in body, "no row for a model the run did not build"
    assert "single score level" in body, "the failed item is explained on the report"


@pytest.mark.django_db(transaction=True)
def test_cancel_stops_a_running_run_and_registers_nothing(admin_client):
    item = _demo_item_with_answers()
    run = runs.start_run([item], preset="tiny", config=LONG)
    with celery_worker(queues="training") as proc:
        wait_until(lambda: (s := _status(admin_client, run.pk))["stage"] == "teacher" and s["step"], timeout=120,
                   message="the teacher to start training")
        r = admin_client.post(f"/admin/training/trainingrun/{run.pk}/cancel/")
        assert r.status_code == 302
        t0 = time.monotonic()
        wait_until(lambda: _status(admin_client, run.pk)["finished"], timeout=60, message="the run to stop")
        stopped_in = time.monotonic() - t0
        assert proc.poll() is None, "cancelling must not kill the worker"
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.CANCELLED and stopped_in < 30
    assert run.run_items.get().status == "cancelled"
    assert not ModelVersion.objects.filter(item=item).exists()


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_run_leaves_the_run_failed_with_its_reason(settings):
    item = _demo_item_with_answers()
    run = runs.start_run([item], preset="tiny", config=LONG)
    stale = 4.0
    with celery_worker(queues="training", extra_env={"KDGRADE_TRAINING_HEARTBEAT_SECONDS": "0.5"}) as proc:
        wait_until(lambda: TrainingRun.objects.filter(pk=run.pk, stage="teacher", step__gt=0).exists(), timeout=120,
                   message="the teacher to start training")
        # Alive: the sweep leaves a beating run alone.
        for _ in range(3):
            time.sleep(stale / 2)
            assert runs.sweep_stale_runs(stale) == []
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        killed_at = timezone.now()
    settings.KDGRADE_TRAINING_STALE_SECONDS = stale
    from training.tasks import sweep_stale_runs  # what beat calls

    wait_until(lambda: run.pk in sweep_stale_runs(), timeout=30, interval=0.5, message="the sweep to fail the run")
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.FAILED
    assert "stopped responding" in run.error and "teacher" in run.error
    assert (run.finished_at - killed_at).total_seconds() < stale + 10
    ri = run.run_items.get()
    assert ri.status == "failed" and "stopped responding" in ri.error
    assert runs.execute_run(run.pk) is None, "a redelivered task must not restart a failed run"
