"""score_submission / score_answers: the item's active version, flags, one version per request, and
activation seen by other processes and threads without a restart."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import numpy as np
import onnxruntime as ort
import pytest

from distillation.features import Featurizer
from scoring import versions
from scoring.models import Score, Submission
from scoring.services import reference_text, rubric_level, score_answers, score_submission
from tests.scoring_support import ANSWERS, ROOT
from tests.workers import child_env


def _direct(version_dir, item, responses) -> tuple[np.ndarray, np.ndarray]:
    """The version's ONNX graph run by hand on the featuriser's output (no scoring code involved):
    probabilities and decoded level indices."""
    state = json.loads((version_dir / "featurizer.json").read_text())
    feeds = Featurizer.from_state(state).transform(responses, item.question, reference_text(item))
    session = ort.InferenceSession(str(version_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    probs, level = session.run(["probabilities", "level"], feeds)
    return probs, level


def _direct_probabilities(version_dir, item, responses) -> np.ndarray:
    return _direct(version_dir, item, responses)[0]


@pytest.mark.django_db
def test_score_submission_stores_the_active_versions_score(demo_versions, model_dirs):
    item, v1, _ = demo_versions
    versions.activate_version(v1)
    sub = Submission.objects.create(item=item, response=ANSWERS[0], learner_ref="s1")
    score = score_submission(sub)
    score.refresh_from_db()
    probs_all, levels = _direct(model_dirs["v1"], item, [ANSWERS[0]])
    expected, level = probs_all[0], int(levels[0])
    probs = np.array([score.probabilities[str(k)] for k in (0, 1, 2)])
    assert np.abs(probs - expected).max() <= 1e-6
    assert score.model_version_id == v1.pk
    assert score.confidence == pytest.approx(float(expected[level]), abs=1e-6)
    # no threshold set on the item: the one fitted with the version decides
    assert item.confidence_threshold is None
    fitted = json.loads((model_dirs["v1"] / "manifest.json").read_text())["decoding"]["confidence_threshold"]
    if score.confidence < fitted:
        assert score.flags == ["low_confidence"]
    else:
        assert score.flags == []
    assert score.model_score == level == score.final_score
    assert rubric_level(item, score.model_score).label in {"Not yet", "Partly", "Complete"}


@pytest.mark.django_db
def test_flags_decline_or_queue_for_review(demo_versions):
    item, v1, _ = demo_versions
    versions.activate_version(v1)
    empty = score_submission(Submission.objects.create(item=item, response="   \n "))
    assert empty.flags == ["empty"] and empty.model_score is None and empty.final_score is None
    assert empty.needs_review
    copy = score_submission(Submission.objects.create(item=item, response=item.question))
    assert "copy_of_question" in copy.flags and copy.model_score is None
    item.confidence_threshold = 1.01  # the most the field allows, above any probability: every score goes to review
    item.save()
    unsure = score_submission(Submission.objects.create(item=item, response=ANSWERS[1]))
    assert unsure.flags == ["low_confidence"] and unsure.model_score is not None


@pytest.mark.django_db
def test_without_an_active_version_answers_are_flagged_not_crashed(demo_versions):
    item, v1, _ = demo_versions
    score = score_submission(Submission.objects.create(item=item, response=ANSWERS[0]))
    assert (score.model_score, score.model_version, score.flags) == (None, None, ["no_active_model"])
    versions.activate_version(v1)
    # the active version's files vanish under a running server: flagged, not a 500
    import shutil

    shutil.rmtree(v1.artifact_path)
    from scoring.scorer import clear_cache

    clear_cache()
    score = score_submission(Submission.objects.create(item=item, response=ANSWERS[0]))
    assert score.flags == ["no_active_model"] and score.model_score is None


@pytest.mark.django_db
def test_a_batch_equals_single_answers_and_the_onnx_graph(demo_versions, model_dirs):
    item, _, v2 = demo_versions
    versions.activate_version(v2)
    batch = score_answers(item, ANSWERS)
    assert batch.version.pk == v2.pk
    direct = _direct_probabilities(model_dirs["v2"], item, ANSWERS)
    for i, answer in enumerate(ANSWERS):
        one = score_answers(item, [answer]).results[0]
        row = np.array([batch.results[i].probabilities[k] for k in (0, 1, 2)])
        assert np.abs(row - direct[i]).max() <= 1e-6
        assert one.probabilities == pytest.approx(batch.results[i].probabilities, abs=1e-6)


@pytest.mark.django_db
def test_a_large_batch_equals_the_graph_and_the_flags(demo_versions, model_dirs):
    """A batch of more than 256 answers, flagged and normal ones mixed: the graph's probabilities, and
    check_response's flags (or low_confidence below the item's threshold), in the answers' order."""
    from scoring.flags import check_response

    item, v1, _ = demo_versions
    versions.activate_version(v1)
    odd = ["", "asdfgh qwerty zxcvbn", item.question, "El metal conduce el calor mejor que la madera."]
    answers = [f"{a} ({i})" for i in range(300 // len(ANSWERS) + 1) for a in ANSWERS]
    for i, text in enumerate(odd):
        answers.insert(50 + 70 * i, text)
    assert len(answers) > 256
    direct, levels = _direct(model_dirs["v1"], item, answers)
    # an admin's override of the fitted threshold, halfway through the confidences: both kinds occur
    item.confidence_threshold = float(np.median(direct[np.arange(len(answers)), levels]))
    item.save()
    batch = score_answers(item, answers)
    got = np.array([[r.probabilities[k] for k in (0, 1, 2)] for r in batch.results])
    assert got.shape == direct.shape and np.abs(got - direct).max() <= 1e-6
    for answer, result in zip(answers, batch.results, strict=True):
        pre = check_response(answer, question=item.question, language=item.language)
        assert result.flags == (pre or (["low_confidence"] if result.confidence < item.confidence_threshold
                                        else []))
        assert (result.score is None) == bool(pre)  # every flag here declines
        if result.score is not None:
            assert result.label == rubric_level(item, result.score).label
    assert [batch.results[50 + 70 * i].flags for i in range(len(odd))] == [
        ["empty"], ["gibberish"], ["copy_of_question"], ["wrong_language"]]
    assert sum(r.flags == ["low_confidence"] for r in batch.results) and sum(not r.flags for r in batch.results)


@pytest.mark.django_db(transaction=True)
def test_activation_reaches_another_process_without_a_restart(demo_versions):
    """A separate Python process (as a gunicorn or Celery worker would be) keeps its sessions cached
    and still follows the active version at its next request."""
    item, v1, v2 = demo_versions
    versions.activate_version(v1)
    script = (
        "import django, json, sys; django.setup()\n"
        "from scoring.models import Item\n"
        "from scoring.services import score_answers\n"
        "from scoring.scorer import cached_models\n"
        "item = Item.objects.get(external_id='heat-spoon')\n"
        "for line in sys.stdin:\n"
        "    b = score_answers(item, [line.strip()])\n"
        "    print(json.dumps([b.version.pk if b.version else None, len(cached_models())]), flush=True)\n"
    )
    env = child_env(DJANGO_SETTINGS_MODULE="kdgrade.settings")
    child = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        def ask() -> list:
            child.stdin.write(ANSWERS[0] + "\n")
            child.stdin.flush()
            line = child.stdout.readline()
            assert line, child.stderr.read()
            return json.loads(line)

        assert ask() == [v1.pk, 1]
        assert ask() == [v1.pk, 1]
        versions.activate_version(v2)
        assert ask() == [v2.pk, 2]
        versions.rollback(item)
        assert ask() == [v1.pk, 2]  # back to the first session, still cached
        versions.retire_version(v1)
        assert ask() == [None, 2]
    finally:
        child.stdin.close()
        child.wait(timeout=30)


@pytest.mark.django_db(transaction=True)
def test_switching_versions_under_load_loses_nothing_and_never_mixes(demo_versions, model_dirs):
    from django.db import connection

    item, v1, v2 = demo_versions
    versions.activate_version(v1)
    expected = {v1.pk: _direct_probabilities(model_dirs["v1"], item, ANSWERS),
                v2.pk: _direct_probabilities(model_dirs["v2"], item, ANSWERS)}
    assert np.abs(expected[v1.pk] - expected[v2.pk]).max() > 1e-3  # the two versions do differ
    stop = threading.Event()
    seen: list[int] = []
    failures: list[str] = []

    def client() -> None:
        try:
            while not stop.is_set():
                batch = score_answers(item, ANSWERS, require_model=True)
                got = np.array([[r.probabilities[k] for k in (0, 1, 2)] for r in batch.results])
                if len(batch.results) != len(ANSWERS) or np.abs(got - expected[batch.version.pk]).max() > 1e-6:
                    failures.append(f"batch mixed or wrong for version {batch.version.pk}")
                seen.append(batch.version.pk)
        except Exception as exc:  # any failure is a lost request
            failures.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=client) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(12):
        versions.activate_version(v2 if i % 2 == 0 else v1)
        time.sleep(0.03)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert not failures, failures[:5]
    assert set(seen) == {v1.pk, v2.pk} and len(seen) > 20


@pytest.mark.django_db
def test_scores_are_kept_per_submission(demo_versions):
    item, v1, v2 = demo_versions
    versions.activate_version(v1)
    sub = Submission.objects.create(item=item, response=ANSWERS[2])
    score_submission(sub)
    versions.activate_version(v2)
    score_submission(sub)
    assert list(Score.objects.filter(submission=sub).order_by("id").values_list("model_version", flat=True)) == [
        v1.pk, v2.pk]


@pytest.mark.django_db
def test_a_stored_batch_writes_the_rows_the_orm_writes(demo_versions, monkeypatch):
    """The batch insert (two multi-row INSERTs per chunk) against the ORM's bulk_create: same rows."""
    from django.forms.models import model_to_dict

    from scoring import batch_insert
    from scoring.models import Score, Submission
    from scoring.services import create_scored_submissions

    item, v1, _ = demo_versions
    versions.activate_version(v1)
    answers = [(text, f"learner-{i}") for i, text in enumerate(ANSWERS * 3)]
    answers += [("", "learner-empty"), ("asdf qwer zxcv", "learner-mash")]
    monkeypatch.setattr(batch_insert, "CHUNK", 7)  # several statements per batch
    assert batch_insert.supported()

    def stored(fast: bool) -> tuple[list[dict], list[dict]]:
        monkeypatch.setattr(batch_insert, "supported", lambda: fast)
        _, ids = create_scored_submissions(item, answers)
        assert all(ids) and len(ids) == len(answers)
        rows = Submission.objects.filter(pk__in=ids).order_by("pk")
        scores = Score.objects.filter(submission__in=rows).order_by("submission_id")
        assert ids == [r.pk for r in rows]  # ids returned in the answers' order
        assert [(r.response, r.learner_ref) for r in rows] == answers
        assert all(r.created_at is not None for r in rows)
        assert all(s.created_at is not None and s.updated_at is not None for s in Score.objects.filter(
            submission__in=rows))
        drop = ("id", "submission", "created_at", "updated_at")
        return ([{k: v for k, v in model_to_dict(r).items() if k not in drop} for r in rows],
                [{k: v for k, v in model_to_dict(s).items() if k not in drop} for s in scores])

    orm_subs, orm_scores = stored(False)
    fast_subs, fast_scores = stored(True)
    assert fast_subs == orm_subs and fast_scores == orm_scores
    assert len(fast_scores) == len(answers)
    assert any(s["final_score"] is None and s["flags"] for s in fast_scores)  # the empty answer declined
    assert any(s["final_score"] is not None and s["probabilities"] for s in fast_scores)
