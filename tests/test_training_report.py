"""The run report page renders every part a report entry has as server-side SVG, escapes what it shows,
and says which parts an older report lacks."""

from __future__ import annotations

import re

import pytest

from scoring.demo_data import load_demo
from training.models import TrainingRun, TrainingRunItem

ENTRY = {
    "n_train": 120, "n_test": 30, "labels": [0, 1, 2], "human_human_qwk": 0.91,
    "models": {"teacher": {"qwk": 0.85, "accuracy": 0.8, "macro_f1": 0.78, "params": 22_000_000},
               "student": {"qwk": 0.84, "accuracy": 0.77, "exact": 0.77, "macro_f1": 0.75, "smd": 0.05,
                           "params": 48_009, "onnx_bytes": 200_000, "responses_per_s": 25_000.0,
                           "agreement_with_teacher": 0.9},
               "tfidf": {"qwk": 0.8, "accuracy": 0.7, "macro_f1": 0.7, "params": 9000}},
    "confusion": {"labels": [0, 1, 2], "matrix": [[9, 1, 0], [2, 7, 1], [0, 1, 9]]},
    "per_level": {"0": {"precision": 0.82, "recall": 0.9, "n": 10}, "1": {"precision": 0.78, "recall": 0.7, "n": 10},
                  "2": {"precision": 0.9, "recall": 0.9, "n": 10}},
    "distribution": {"human": {"0": 10, "1": 10, "2": 10}, "student": {"0": 11, "1": 9, "2": 10}},
    "groups": {"school": {"north": {"n": 15, "qwk": 0.86, "exact": 0.8, "smd": 0.02},
                          "<script>x</script>": {"n": 15, "qwk": 0.8, "exact": 0.73, "smd": -0.04}}},
    "teacher_training": {"epochs": [{"epoch": 1, "val_qwk": 0.5, "val_loss": 0.9},
                                    {"epoch": 2, "val_qwk": 0.8, "val_loss": 0.6}]},
    "student_training": {"form": "word_cnn", "candidates": {
        "linear": {"params": 49_190, "oof_qwk": 0.7234, "test_qwk": 0.74},
        "word_cnn": {"params": 33_000, "oof_qwk": 0.7416, "test_qwk": 0.78, "word_cnn_share": 0.5},
        "rule": "..."}},
}


@pytest.mark.django_db
def test_report_page_draws_the_pictures_and_tables(admin_client):
    item = load_demo()
    run = TrainingRun.objects.create(status=TrainingRun.Status.SUCCEEDED, preset="tiny")
    TrainingRunItem.objects.create(run=run, item=item, status="done", report=ENTRY, gates=[
        {"name": "qwk", "passed": True, "value": 0.84, "threshold": 0.7, "message": "QWK is 0.840."}])
    page = admin_client.get(f"/admin/training/trainingrun/{run.pk}/report/")
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('class="chart"') == 6, "confusion, per level, distribution, QWK and loss curves, one group chart"
    ids = re.findall(r'id="(chart\d+-[td])"', html)
    assert len(ids) == 12 and len(set(ids)) == 12, "each chart has its own title and description ids"
    for ref in re.findall(r'aria-labelledby="(chart[^"]+)"', html):
        assert set(ref.split()) <= set(ids)
    assert "18 of 30 test answers on the diagonal" not in html and "25 of 30 test answers on the diagonal" in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html and "<script>x</script>" not in html
    assert "Student (distilled)" in html and "TF-IDF baseline" in html and "48009" in html
    assert "Not in this version" not in html
    assert ("Student: a word network beside a smaller bag of words was kept. On the training answers, held out "
            "in turn, it agreed with the humans at QWK 0.742, the bag of words alone at 0.723.") in html


@pytest.mark.django_db
def test_an_older_report_says_what_it_lacks(admin_client):
    item = load_demo()
    run = TrainingRun.objects.create(status=TrainingRun.Status.SUCCEEDED)
    old = {k: v for k, v in ENTRY.items() if k in ("n_train", "n_test", "labels", "models")}
    TrainingRunItem.objects.create(run=run, item=item, status="done", report=old)
    html = admin_client.get(f"/admin/training/trainingrun/{run.pk}/report/").content.decode()
    assert 'class="chart"' not in html
    assert "Not in this version's report: the confusion matrix, per-level precision and recall" in html
    assert "no per-group breakdown" in html
    assert "Student: " not in html  # a report from before the word network says nothing of forms
