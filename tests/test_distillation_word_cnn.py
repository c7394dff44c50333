"""The word CNN beside the linear bag: torch training, numpy prediction and the ONNX twin agree."""

import numpy as np
import pytest

from distillation import onnx_contract as oc
from distillation.features import Featurizer, word_vocabulary
from distillation.student import Features, LinearStudent, NewQuestionBranch
from distillation.word_cnn import WordCNN, embedding_init

pytestmark = pytest.mark.ml

WORDS = ["water", "heat", "evaporates", "sun", "salt", "cloud", "rain", "ice", "cold", "warm", "the", "a", "is", "of"]


def _data(n: int = 240, seed: int = 0):
    rng = np.random.RandomState(seed)
    texts = [" ".join(rng.choice(WORDS, rng.randint(0, 14))) for _ in range(n)]
    # the level depends on word order ("heat" before "evaporates"), which a bag of single words cannot see
    y = np.array([min(2, ("evaporates" in t) + (" ".join(t.split()[:3]).count("heat") > 0)) for t in texts], float)
    return texts, y


def _fitted(texts, y, seed: int = 0):
    vocab, _spelled = word_vocabulary(texts, 50)
    fz = Featurizer(n_buckets=256, vocabulary=vocab, max_words=10)
    X = Features.compute(fz, texts, "Why does water evaporate?", "heat makes water evaporate", chunk=37)
    init = np.random.RandomState(1).randn(len(vocab), 4).astype(np.float32)
    cnn = WordCNN(init, channels=6, epochs=20, seed=seed).fit(X.words, y)
    return fz, X, cnn


def test_numpy_prediction_is_the_torch_network():
    import torch

    texts, y = _data()
    _, X, cnn = _fitted(texts, y)
    net = cnn._net()
    with torch.no_grad():
        net.emb.weight[:] = torch.from_numpy(cnn.embedding_)
        net.conv.weight[:] = torch.from_numpy(cnn.conv_weight_)
        net.conv.bias[:] = torch.from_numpy(cnn.conv_bias_)
        net.head.weight[:] = torch.from_numpy(cnn.head_weight_.reshape(1, -1))
        net.head.bias[:] = cnn.head_bias_
        expected = net.eval()(torch.from_numpy(X.words)).numpy()
    np.testing.assert_allclose(cnn.predict(X.words), expected, atol=1e-5)
    assert np.corrcoef(cnn.predict(X.words), y)[0, 1] > 0.5  # it learnt the signal, not noise
    assert cnn.n_params() == (len(cnn.embedding_) * 4) + 6 * 4 * 3 + 6 + 2 * 6 + 1
    again = _fitted(texts, y)[2]
    assert all(np.array_equal(getattr(cnn, k), getattr(again, k))
               for k in ("embedding_", "conv_weight_", "conv_bias_", "head_weight_"))  # same seed, same model
    other = _fitted(texts, y, seed=1)[2]
    assert not np.array_equal(cnn.conv_weight_, other.conv_weight_)


def test_student_with_a_word_cnn_and_its_onnx_twin_agree_whatever_the_batch():
    texts, y = _data()
    fz, X, cnn = _fitted(texts, y)
    st = LinearStudent(alpha=1.0).fit(X, y)
    linear_only = st.decision_function(X)
    st.set_words(cnn, 0.5).set_decoding([0, 1, 2], [0.5, 1.5], 0.3)
    np.testing.assert_allclose(st.decision_function(X), 0.5 * linear_only + 0.5 * cnn.predict(X.words))
    assert st.n_params() == 256 + fz.n_dense + 1 + 3 + cnn.n_params() + 1
    sess = oc.session(st.to_onnx().SerializeToString())
    assert sorted(i.name for i in sess.get_inputs()) == sorted(fz.input_names)
    q, r = "Why does water evaporate?", "heat makes water evaporate"
    whole = oc.run(sess, fz.transform(texts, q, r))
    assert oc.parity(st.predict_proba(X), whole["probabilities"]) < 1e-5
    assert np.array_equal(whole["level"], st.predict_levels(X))
    # one answer at a time (no padding) and in another batch: the same scores
    for i in (0, 5, 17):
        one = oc.run(sess, fz.transform([texts[i]], q, r))
        np.testing.assert_allclose(one["score"], whole["score"][i : i + 1], atol=1e-5)
    empty = oc.run(sess, fz.transform(["", "heat"], q, r))
    np.testing.assert_allclose(empty["score"], st.decision_function(Features.compute(fz, ["", "heat"], q, r)),
                               atol=1e-5)
    oc.validate(sess, 3, probe=fz.transform(["x", ""], q, r))
    assert oc.run(sess, fz.transform([], q, r))["score"].shape == (0,)


def test_a_word_cnn_student_refuses_what_it_cannot_score():
    texts, y = _data(80)
    fz, X, cnn = _fitted(texts, y)
    st = LinearStudent(alpha=1.0).fit(X, y).set_words(cnn, 0.25)
    plain = Features.compute(Featurizer(n_buckets=256), texts, "q", "r")
    with pytest.raises(ValueError, match="reads word ids"):
        st.decision_function(plain)
    branch = NewQuestionBranch(np.zeros(fz.n_dense), 0.0, np.array([0.5, 1.5]), 1.0, 0)
    with pytest.raises(ValueError, match="no new-question branch"):
        st.set_new_questions(branch)
    with pytest.raises(ValueError, match="share"):
        st.set_words(cnn, 1.0)
    assert st.set_words(cnn, 0.0).words_ is None  # share 0: the linear student alone


def test_embedding_init_is_a_unit_scale_projection_of_the_piece_embeddings():
    class Tok:
        unk_token_id = 0
        pieces = {"heat": [1], "water": [2, 3], "zzz": []}

        def __call__(self, word, add_special_tokens=False):
            return {"input_ids": self.pieces[word]}

    table = np.random.RandomState(0).randn(4, 8).astype(np.float32)
    e = embedding_init(["heat", "water", "zzz"], Tok(), table, 4)
    assert e.shape == (3, 4) and e.dtype == np.float32
    assert e.std() == pytest.approx(1.0, rel=1e-5)
    assert np.allclose(e[:, 2:], 0)  # 3 words span at most 2 directions once centred


@pytest.mark.parametrize("n_levels", [2, 4, 6])
def test_the_default_word_cnn_form_stays_within_the_parameter_budget_at_its_largest(n_levels):
    """The issue's budget is 50,000 parameters: the word-CNN form of the default configuration, with its
    vocabulary full (every word seen twice, more words than it keeps) and a decoding of up to 6 levels."""
    from distillation.config import StudentConfig

    cfg = StudentConfig()
    words = [f"w{i}" for i in range(cfg.word_cnn_vocabulary + 300)]
    texts = [" ".join(words[i : i + 40]) for i in range(0, len(words), 20)] * 2
    vocab, _ = word_vocabulary(texts, cfg.word_cnn_vocabulary, cfg.word_cnn_min_count)
    assert len(vocab) == cfg.word_cnn_vocabulary
    fz = Featurizer(n_buckets=cfg.word_cnn_buckets, vocabulary=vocab, max_words=cfg.word_cnn_max_words)
    X = Features.compute(fz, texts, "q", "r")
    y = np.arange(len(texts), dtype=float) % n_levels
    init = np.zeros((len(vocab), cfg.word_cnn_dim), np.float32)
    cnn = WordCNN(init, cfg.word_cnn_channels, epochs=1).fit(X.words, y)
    k = n_levels
    st = LinearStudent(alpha=1.0).fit(X, y).set_words(cnn, 0.5)
    st.set_decoding(list(range(k)), np.arange(k - 1) + 0.5, 0.3, np.eye(k, k + 1))
    assert cnn.n_params() == (cfg.word_cnn_vocabulary + 2) * cfg.word_cnn_dim + 3 * cfg.word_cnn_dim * \
        cfg.word_cnn_channels + cfg.word_cnn_channels + 2 * cfg.word_cnn_channels + 1
    assert st.n_params() <= 50_000
