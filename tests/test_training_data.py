"""What a training run trains on: uploaded answers with their group columns, teacher-confirmed live scores
as labels, unscored live answers for the teacher model to label."""

from __future__ import annotations

import pytest
from django.utils import timezone

from distillation.data import read_csv
from scoring.demo_data import load_demo
from scoring.models import Score, Submission
from tests.training_support import demo_upload
from training import importing, runs
from training.models import TrainingRun


@pytest.mark.django_db
def test_run_files_hold_uploads_confirmed_scores_and_unscored_answers(tmp_path):
    item = load_demo()  # its seeded demo answers must not count as live answers
    importing.import_items(demo_upload("u", extra={"score2": ["1", "2"], "school": ["north", "south"]}), "a.csv")
    confirmed = Submission.objects.create(item=item, response="Metal takes heat from the hand fast.",
                                          source=Submission.Source.LTI)
    Score.objects.create(submission=confirmed, model_score=1, override_score=2, overridden_by="t",
                         overridden_at=timezone.now())
    unscored = Submission.objects.create(item=item, response="the metal is colder", source=Submission.Source.LTI)
    Score.objects.create(submission=unscored, model_score=0, flags=["low_confidence"])
    run = TrainingRun.objects.create(preset="tiny")

    train, unlabelled, n, m = runs.write_training_files(run, item, tmp_path)
    ds = read_csv(train)  # the canonical format distill reads
    assert n == len(ds) == 37
    live = ds.response_id.index(f"live-{confirmed.pk}")
    assert ds.score[live] == 2 and ds.response[live] == confirmed.response
    assert ds.extra["school"][:2] == ["north", "south"] and ds.score2()[:2] == [1, 2]
    un = read_csv(unlabelled, labelled=False)
    assert m == 1 and un.response_id == [f"live-{unscored.pk}"]

    run.include_confirmed = run.include_unscored = False
    train, unlabelled, n, m = runs.write_training_files(run, item, tmp_path / "without")
    assert n == 36 and unlabelled is None and m == 0


@pytest.mark.django_db
def test_start_refuses_items_without_answers_and_items_already_training():
    item = load_demo()
    with pytest.raises(runs.RunRefused, match="no scored answers"):
        runs.start_run([item], enqueue=False)
    importing.import_items(demo_upload("s"), "a.csv")
    first = runs.start_run([item], enqueue=False)
    with pytest.raises(runs.RunRefused, match="already in run"):
        runs.start_run([item], enqueue=False)
    cancelled = runs.cancel_run(first)
    assert cancelled.status == "cancelled" and cancelled.run_items.get().status == "cancelled"
    assert runs.execute_run(first.pk) is None, "a cancelled run never starts"


def test_percentage_follows_the_pipeline_stages_and_never_goes_back():
    f = runs.item_fraction("teacher", 5, 10, 1, 4, 0.0)
    assert 0.02 < f < 0.60
    assert runs.item_fraction("student (KD)", 1, 8, 1, 8, f) > f
    assert runs.item_fraction("some new stage", None, None, None, None, 0.7) == 0.7
    assert runs.item_fraction("teacher", 0, 10, 1, 4, 0.7) == 0.7
    assert runs.item_fraction("done", None, None, None, None, 0.9) == 1.0


def test_beat_sweeps_stale_runs_and_training_goes_to_its_own_queue():
    from django.conf import settings

    from kdgrade.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["training-sweep-stale-runs"]
    assert entry["task"] == "training.sweep_stale_runs" and entry["schedule"] <= 60
    app.loader.import_default_modules()
    assert {"training.train_run", "training.sweep_stale_runs"} <= set(app.tasks)
    route = app.amqp.router.route({}, "training.train_run")
    assert route["queue"].name == "training"
    assert app.amqp.router.route({}, "training.sweep_stale_runs")["queue"].name == "default"


@pytest.mark.django_db(transaction=True)
def test_train_items_command_runs_the_same_service_and_reports_the_gates():
    import subprocess
    import sys

    from tests.workers import ROOT, child_env

    item = load_demo()
    importing.import_items(demo_upload("cli"), "a.csv")
    done = subprocess.run([sys.executable, "manage.py", "train_items", "heat-spoon", "--tiny", "--now"], cwd=ROOT,
                          env=child_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    run = TrainingRun.objects.get()
    assert run.status == "succeeded" and run.progress_rows.count() >= 3
    ri = run.run_items.get()
    assert ri.model_version.item == item and ri.model_version.status == "ready"
    assert "heat-spoon: Done heat-spoon v1 (ready)" in done.stdout and "gates" in done.stdout
    missing = subprocess.run([sys.executable, "manage.py", "train_items", "nope"], cwd=ROOT, env=child_env(),
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode != 0 and "no such item: nope" in missing.stderr


def test_an_admin_run_skips_the_int8_teacher_unless_its_config_asks():
    for preset in ("default", "tiny"):
        run = TrainingRun(preset=preset)
        assert runs.distill_config(run).teacher.export_int8 is False
        run.config = {"teacher": {"export_int8": True}, "student": {"alphas": [1.0]}}
        config = runs.distill_config(run)
        assert config.teacher.export_int8 is True and config.student.alphas == (1.0,)
