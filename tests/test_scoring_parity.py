"""Scores from the service equal, to 1e-5 in probability and exactly in level, what the training side's
numpy student gives for the same answers.  The training side runs in a child process (scipy and
scikit-learn stay out of the serving process): it rebuilds `distillation.student.LinearStudent` from the
exported weights and scores with the training code's own `Features.compute` + `predict_proba`."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from scoring import versions
from scoring.services import reference_text, score_answers
from tests.scoring_support import ANSWERS, DEMO_CSV, ROOT

pytestmark = pytest.mark.django_db

TRAINING_STUDENT = r"""
import json, sys
import numpy as np, onnx
from onnx import numpy_helper
from distillation.features import Featurizer
from distillation.student import Features, LinearStudent
version_dir, payload = sys.argv[1], json.loads(sys.stdin.read())
w = {t.name: numpy_helper.to_array(t) for t in onnx.load(f"{version_dir}/model.onnx").graph.initializer}
fz = Featurizer.from_state(json.load(open(f"{version_dir}/featurizer.json")))
labels = json.load(open(f"{version_dir}/manifest.json"))["labels"]
st = LinearStudent()
assert w["w_bag"][-1] == 0  # the sink bucket
st.coef_bag_, st.coef_dense_ = w["w_bag"][:-1].astype(float), w["w_dense"].ravel().astype(float)
st.intercept_ = float(w["bias"][0])
calibration = np.hstack([w["cal_w_seen"].T, w["cal_b_seen"].T]).astype(float) if "cal_w_seen" in w else None
st.set_decoding(labels, w["cuts"].ravel().astype(float), float(w["scale"][0]), calibration)
n = len(payload["responses"])
feats = Features.compute(fz, payload["responses"], [payload["question"]] * n, [payload["reference"]] * n)
print(json.dumps({"p": st.predict_proba(feats).tolist(), "score": st.predict(feats).tolist()}))
"""


def _training_side(version_dir, responses, question, reference) -> tuple[np.ndarray, list[int]]:
    payload = json.dumps({"responses": responses, "question": question, "reference": reference})
    done = subprocess.run([sys.executable, "-c", TRAINING_STUDENT, str(version_dir)], input=payload, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return np.array(out["p"]), out["score"]


def test_service_scores_equal_the_training_student(demo_versions):
    import csv

    item, v1, _ = demo_versions
    versions.activate_version(v1)
    with DEMO_CSV.open(encoding="utf-8", newline="") as handle:
        responses = [r["response"] for r in csv.DictReader(handle)] + ANSWERS
    expected, expected_scores = _training_side(v1.artifact_path, responses, item.question, reference_text(item))
    batch = score_answers(item, responses)
    got = np.array([[r.probabilities[k] for k in (0, 1, 2)] for r in batch.results])
    assert got.shape == expected.shape == (len(responses), 3)
    assert np.abs(got - expected).max() <= 1e-5, np.abs(got - expected).max()
    assert np.ptp(expected[:, 0]) > 1e-3  # real, varied probabilities, not a constant
    # the level served is the training side's decoded level wherever the model scored the answer
    for r, s in zip(batch.results, expected_scores, strict=True):
        assert r.score in (None, s)
    assert sum(r.score is not None for r in batch.results) > len(responses) // 2
    # and one answer at a time (the LTI path) as well
    single = np.array([[score_answers(item, [t]).results[0].probabilities[k] for k in (0, 1, 2)]
                       for t in responses[:10]])
    assert np.abs(single - expected[:10]).max() <= 1e-5
