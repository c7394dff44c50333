"""Teacher inputs, soft labels and the KD loss."""

import numpy as np
import pytest
import torch

from distillation.metrics import qwk
from distillation.student import kd_loss
from distillation.teacher import Encoded, load_tokenizer, soft_labels

pytestmark = pytest.mark.ml


def test_long_answers_with_context_are_truncated_to_max_length():
    tok = load_tokenizer(None)  # the MiniLM tokenizer from the package, no download
    long_answer = "the metal spoon conducts heat " * 40
    enc = Encoded(tok, [long_answer, "short"], ["Why does the spoon get hot? Metal conducts heat."] * 2, 32)
    assert enc.lengths.max() <= 32
    ids, mask, tt = enc.batch([0, 1])
    assert ids.shape == (2, 32) and int(mask[1].sum()) == enc.lengths[1] and int(tt[1].max()) == 1


def test_soft_labels_soften_with_temperature():
    logits = np.array([[4.0, 1.0, 0.0]], dtype=np.float32)
    p1, p4 = soft_labels(logits, 1.0), soft_labels(logits, 4.0)
    np.testing.assert_allclose(p1.sum(), 1.0, rtol=1e-6)
    assert p4[0, 0] < p1[0, 0] and p4[0, 2] > p1[0, 2]
    # log-probabilities (what the ONNX labeller gives) soften to the same distribution
    logp = np.log(soft_labels(logits, 1.0))
    np.testing.assert_allclose(soft_labels(logp, 3.0), soft_labels(logits, 3.0), atol=1e-6)


def test_kd_loss_terms():
    soft = torch.tensor([[0.7, 0.2, 0.1]])
    matching = torch.log(soft) * 3.0  # student logits whose T=3 softmax equals the targets
    hard = torch.tensor([-1])  # no human label: KD term only
    assert float(kd_loss(matching, soft, hard, 3.0, 0.7)) == pytest.approx(0.0, abs=1e-5)
    assert float(kd_loss(torch.zeros(1, 3), soft, hard, 3.0, 0.7)) > 0.1
    labelled = torch.tensor([0])
    # with a human label, (1 - alpha) * cross-entropy is added
    ce = float(torch.nn.functional.cross_entropy(matching, labelled))
    assert float(kd_loss(matching, soft, labelled, 3.0, 0.7)) == pytest.approx(0.3 * ce, rel=1e-4)


def test_qwk_known_values():
    assert qwk([0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3]) == 1.0
    assert qwk([0, 0, 1, 1], [1, 1, 0, 0], [0, 1]) == pytest.approx(-1.0)
    # against scikit-learn's cohen_kappa_score(weights="quadratic")
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.RandomState(0)
    a, b = rng.randint(0, 4, 200), rng.randint(0, 4, 200)
    assert qwk(a, b, [0, 1, 2, 3]) == pytest.approx(cohen_kappa_score(a, b, weights="quadratic"), abs=1e-9)
