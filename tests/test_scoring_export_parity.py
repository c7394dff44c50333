"""The serving path reproduces, to 1e-5, the probabilities the training side's student gave at export
time (recorded in the version's parity.json, checksummed by the manifest)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from distillation.artifact import verify
from scoring.scorer import open_model

pytestmark = pytest.mark.ml


def test_served_probabilities_equal_the_training_students_at_export(model_dirs):
    for version_dir in model_dirs.values():
        manifest = verify(version_dir)
        assert "parity.json" in manifest.files, "export did not record the student's probabilities"
        sample = json.loads((version_dir / "parity.json").read_text())
        assert len(sample["responses"]) >= 5
        model = open_model(version_dir)
        served = model.predict_proba(sample["responses"], sample["questions"], sample["references"])
        expected = np.asarray(sample["probabilities"])
        assert served.shape == expected.shape
        assert np.abs(served - expected).max() <= 1e-5


def test_a_tampered_parity_sample_is_refused(model_dirs, tmp_path):
    import shutil

    from distillation.artifact import ArtifactError

    copy = tmp_path / "v"
    shutil.copytree(model_dirs["v1"], copy)
    sample = json.loads((copy / "parity.json").read_text())
    sample["probabilities"][0][0] += 0.5
    (copy / "parity.json").write_text(json.dumps(sample))
    with pytest.raises(ArtifactError, match=r"parity\.json"):
        verify(copy)
