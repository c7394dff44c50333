"""Scores from the service equal, to 1e-6 in probability, what the PyTorch student gives for the same
answers.  The PyTorch side runs in a child process (torch stays out of the serving process): it rebuilds
`distillation.student.StudentNet` from the exported weights and scores with the training code's own
`Features.compute` + `predict_proba`, the path the export's parity check used."""

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

TORCH_STUDENT = r"""
import json, sys
import numpy as np, onnx, torch
from onnx import numpy_helper
from distillation.features import Featurizer
from distillation.student import Features, StudentNet, predict_proba
version_dir, payload = sys.argv[1], json.loads(sys.stdin.read())
w = {t.name: numpy_helper.to_array(t) for t in onnx.load(f"{version_dir}/model.onnx").graph.initializer}
fz = Featurizer.from_state(json.load(open(f"{version_dir}/featurizer.json")))
n_buckets, embed = w["embedding"].shape
hidden, n_classes = w["fc2_w"].shape
net = StudentNet(n_buckets, w["fc1_w"].shape[0] - embed, embed, hidden, n_classes)
net.load_state_dict({
    "embedding": torch.from_numpy(w["embedding"].copy()),
    "fc1.weight": torch.from_numpy(w["fc1_w"].T.copy()), "fc1.bias": torch.from_numpy(w["fc1_b"].copy()),
    "fc2.weight": torch.from_numpy(w["fc2_w"].T.copy()), "fc2.bias": torch.from_numpy(w["fc2_b"].copy()),
})
n = len(payload["responses"])
feats = Features.compute(fz, payload["responses"], [payload["question"]] * n, [payload["reference"]] * n)
print(json.dumps(predict_proba(net, feats).astype(float).tolist()))
"""


def _torch_probabilities(version_dir, responses, question, reference) -> np.ndarray:
    payload = json.dumps({"responses": responses, "question": question, "reference": reference})
    done = subprocess.run([sys.executable, "-c", TORCH_STUDENT, str(version_dir)], input=payload, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return np.array(json.loads(done.stdout.strip().splitlines()[-1]))


def test_service_scores_equal_the_pytorch_student(demo_versions):
    import csv

    item, v1, _ = demo_versions
    versions.activate_version(v1)
    with DEMO_CSV.open(encoding="utf-8", newline="") as handle:
        responses = [r["response"] for r in csv.DictReader(handle)] + ANSWERS
    expected = _torch_probabilities(v1.artifact_path, responses, item.question, reference_text(item))
    batch = score_answers(item, responses)
    got = np.array([[r.probabilities[k] for k in (0, 1, 2)] for r in batch.results])
    assert got.shape == expected.shape == (len(responses), 3)
    assert np.abs(got - expected).max() <= 1e-6, np.abs(got - expected).max()
    assert np.ptp(expected[:, 0]) > 1e-3  # real, varied probabilities, not a constant
    # and one answer at a time (the LTI path) as well
    single = np.array([[score_answers(item, [t]).results[0].probabilities[k] for k in (0, 1, 2)]
                       for t in responses[:10]])
    assert np.abs(single - expected[:10]).max() <= 1e-6
