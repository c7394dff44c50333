"""The featuriser: deterministic, batch-independent, state round trip, and free of torch/transformers."""

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from distillation.features import N_DENSE, Featurizer

pytestmark = pytest.mark.ml

ROOT = Path(__file__).resolve().parent.parent
RESPONSES = [
    "Metal is a good CONDUCTOR of heat, so the heat moves fast!",
    "because the soup is hot",
    "",
    "Wood is an insulator; métal conducts heat (thermal energy) quickly.",
    "i dont know",
]
QUESTION = "Why does a metal spoon in hot soup get hot faster than a wooden spoon?"
REFERENCE = "Metal is a good conductor of heat; wood is an insulator."


def test_shapes_dtypes_and_names():
    fz = Featurizer(n_buckets=1024)
    out = fz.transform(RESPONSES, QUESTION, REFERENCE)
    assert list(out) == fz.input_names == ["bag", "dense"]
    assert out["bag"].shape == (5, 1024) and out["bag"].dtype == np.float32
    assert out["dense"].shape == (5, N_DENSE) and out["dense"].dtype == np.float32
    assert np.all(np.isfinite(out["bag"])) and np.all(np.isfinite(out["dense"]))
    assert out["bag"][2].sum() == 0  # the empty answer has no n-grams
    assert out["bag"][0].sum() > 0
    # the answer that copies the reference shares more of it than "i dont know"
    assert out["dense"][0, 0] > out["dense"][4, 0]


def test_rows_do_not_depend_on_the_batch():
    fz = Featurizer(n_buckets=2048, cross_question=True)
    questions = [QUESTION, "What do plants need light for?"] * 2 + [QUESTION]
    refs = [REFERENCE, ["Photosynthesis.", "To make food."]] * 2 + [REFERENCE]
    whole = fz.transform(RESPONSES, questions, refs)
    for i in range(len(RESPONSES)):
        one = fz.transform(RESPONSES[i : i + 1], questions[i : i + 1], refs[i : i + 1])
        np.testing.assert_array_equal(one["bag"][0], whole["bag"][i])
        np.testing.assert_array_equal(one["dense"][0], whole["dense"][i])
    rev = fz.transform(RESPONSES[::-1], questions[::-1], refs[::-1])
    np.testing.assert_array_equal(rev["bag"][::-1], whole["bag"])


def test_state_round_trip_and_serving_copy_are_identical():
    fz = Featurizer(n_buckets=512, word_ngrams=(1, 1), char_ngrams=(2, 4), cross_question=True)
    state = json.loads(json.dumps(fz.to_state()))
    served = Featurizer.from_state(state)
    assert served == fz
    a, b = fz.transform(RESPONSES, QUESTION, REFERENCE), served.transform(RESPONSES, QUESTION, REFERENCE)
    for k in a:
        assert a[k].tobytes() == b[k].tobytes()
    with pytest.raises(ValueError):
        Featurizer.from_state({**state, "format": "other"})
    with pytest.raises(ValueError):
        Featurizer(n_buckets=1000)


def test_hash_is_stable_across_versions():
    """A fixed fingerprint: a change here silently breaks every deployed model version."""
    out = Featurizer(n_buckets=4096).transform(RESPONSES, QUESTION, REFERENCE)
    digest = hashlib.sha256(out["bag"].tobytes() + out["dense"].tobytes()).hexdigest()
    assert digest == FINGERPRINT


def test_question_and_reference_change_the_features():
    fz = Featurizer(n_buckets=1024, cross_question=True)
    a = fz.transform(RESPONSES, QUESTION, REFERENCE)
    b = fz.transform(RESPONSES, "What do plants need light for?", "Photosynthesis makes food.")
    assert not np.array_equal(a["bag"], b["bag"]) and not np.array_equal(a["dense"], b["dense"])
    with pytest.raises(ValueError):
        fz.transform(RESPONSES, [QUESTION], REFERENCE)
    with pytest.raises(TypeError):
        fz.transform("one string")


def test_fast_enough_for_batches():
    texts = [RESPONSES[i % 5] + f" answer number {i} with some more words about heat and metal" for i in range(1000)]
    fz = Featurizer()
    fz.transform(texts, QUESTION, REFERENCE)
    t = time.perf_counter()
    fz.transform(texts, QUESTION, REFERENCE)
    assert time.perf_counter() - t < 0.5  # ~15-30 ms here; generous for a loaded CI machine


def test_serving_modules_import_no_training_stack():
    code = (
        "import sys, distillation.features, distillation.artifact;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'sklearn', 'django'));"
        "print(','.join(bad))"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert res.stdout.strip() == ""
    # and the check itself can fail: the training modules do pull torch in
    res = subprocess.run(
        [sys.executable, "-c", "import sys, distillation.student; print('torch' in sys.modules)"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    assert res.stdout.strip() == "True"


FINGERPRINT = "d5929fd495df5ab6970ba856528f4d4f981bc718b92513cffe840cd4abb1afc0"
