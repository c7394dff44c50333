"""A school admin in a real browser: uploads scored answers, previews them, imports them, starts a training
run, watches the progress bar move (a real Celery worker trains with the tiny teacher) and opens the report.
Screenshots at 320 and 1280 px under var/screenshots/; axe-core must find nothing on any of the pages."""

from __future__ import annotations

import time

import pytest

from scoring.demo_data import load_demo
from tests.browser.support import assert_no_axe_violations, horizontal_overflow, screenshot
from tests.training_support import csv_bytes, demo_rows
from tests.workers import celery_worker
from training.models import TrainingAnswer, TrainingRun

pytestmark = pytest.mark.django_db(transaction=True)

# Long enough (a few hundred small teacher steps) to see the bar move and take pictures mid-run.
SLOWER = {"teacher": {"epochs": 15, "batch_size": 4}}


def _upload_file(path) -> None:
    """The demo answers with a second rater (who differs on every 7th answer) and a school column."""
    header, rows = demo_rows()
    out = []
    for i, r in enumerate(rows):
        s2 = int(r[5]) if i % 7 else min(2, int(r[5]) + 1)
        out.append([*r[:3], f"b-{i:03d}", r[4], r[5], s2, ("north", "south", "east")[i % 3]])
    path.write_bytes(csv_bytes(out, [*header, "score2", "school"]))


def _check(page, name: str) -> None:
    assert_no_axe_violations(page, name)
    screenshot(page, name)
    page.set_viewport_size({"width": 320, "height": 800})
    try:
        assert horizontal_overflow(page) <= 0, f"{name} scrolls sideways at 320 px"
    finally:
        page.set_viewport_size({"width": 1280, "height": 900})


def test_upload_train_watch_progress_and_open_the_report(page, live_server, django_user_model, tmp_path):
    load_demo()
    django_user_model.objects.create_superuser("schooladmin", "a@example.org", "correct-horse-battery")
    answers = tmp_path / "heat-spoon-scored.csv"
    _upload_file(answers)

    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "schooladmin")
    page.fill("#id_password", "correct-horse-battery")
    page.click("input[type=submit]")
    page.goto(f"{live_server.url}/admin/training/importbatch/upload/")
    page.set_input_files("#id_answers", str(answers))
    page.click("button:has-text('Preview')")
    page.wait_for_selector("#preview")
    assert "heat-spoon" in page.inner_text("#preview") and "school" in page.content()
    assert "0.9" in page.inner_text("#preview"), "human-human QWK of the two raters"
    _check(page, "training-upload-preview")
    assert not TrainingAnswer.objects.exists(), "the preview wrote something"
    page.click("button:has-text('Import 36 answers')")
    page.wait_for_selector("text=Imported 36 answers")
    assert TrainingAnswer.objects.count() == 36

    page.goto(f"{live_server.url}/admin/scoring/item/")
    page.check("input[name=_selected_action]")
    page.select_option("select[name=action]", "train")
    page.click("button[name=index]")
    page.select_option("#id_preset", "tiny")
    page.click("button:has-text('Start training')")
    page.wait_for_selector("#bar")
    run = TrainingRun.objects.get()
    TrainingRun.objects.filter(pk=run.pk).update(config=SLOWER)  # before any worker has seen it

    values: list[float] = []
    with celery_worker(queues="training") as proc:
        deadline = time.monotonic() + 240
        shot = False
        while time.monotonic() < deadline:
            values.append(float(page.get_attribute("#bar", "aria-valuenow")))
            if not shot and values[-1] >= 10 and page.is_hidden("#report-link"):
                _check(page, "training-run-progress")
                shot = True
            if page.is_visible("#report-link"):
                break
            page.wait_for_timeout(500)
        assert proc.poll() is None, "the worker died"
    assert page.is_visible("#report-link"), f"the run did not finish; bar values {values[-5:]}"
    moving = sorted(set(values))
    assert shot, f"never caught the run in progress: {moving}"
    assert len(moving) >= 3 and values == sorted(values), f"the bar did not move forward: {values}"
    assert TrainingRun.objects.get().status == "succeeded"

    page.click("#report-link")
    page.wait_for_selector("text=Models side by side")
    assert page.locator("svg.chart").count() >= 2 and "Fairness across groups" in page.content()
    _check(page, "training-report")
