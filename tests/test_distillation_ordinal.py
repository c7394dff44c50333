"""Ordinal decoding: QWK-fitted cut-points, the cumulative-logit link, calibration error, thresholds."""

import numpy as np
import pytest

from distillation import ordinal
from distillation.metrics import qwk

pytestmark = pytest.mark.ml


def test_decode_counts_the_cut_points_exceeded():
    assert ordinal.decode([-1.0, 0.5, 0.51, 2.7, 9.0], [0.5, 1.5, 2.5]).tolist() == [0, 0, 1, 3, 3]


def test_fitted_cut_points_beat_rounding_on_a_biased_regressor():
    rng = np.random.RandomState(0)
    y = rng.randint(0, 4, 600)
    f = 0.6 * y + 0.3 + rng.normal(0, 0.25, len(y))  # shrunk and shifted, as a regressor often is
    rounded = np.clip(np.rint(f), 0, 3).astype(int)
    cuts = ordinal.fit_cutpoints(f, y, 4)
    assert np.all(np.diff(cuts) > 0)
    assert qwk(y, ordinal.decode(f, cuts), range(4)) > qwk(y, rounded, range(4)) + 0.05
    # deterministic
    assert np.array_equal(cuts, ordinal.fit_cutpoints(f, y, 4))


def test_probabilities_sum_to_one_and_peak_inside_the_interval():
    cuts = [0.5, 1.5, 2.5]
    p = ordinal.level_probabilities(np.array([0.0, 1.0, 2.0, 3.0]), cuts, 0.2)
    np.testing.assert_allclose(p.sum(1), 1.0)
    assert p.argmax(1).tolist() == [0, 1, 2, 3]
    near_edge = ordinal.level_probabilities(np.array([1.45]), cuts, 0.2)[0]
    assert near_edge[1] < p[1, 1]  # close to a boundary: less sure


def test_fit_scale_recovers_a_known_link():
    rng = np.random.RandomState(1)
    cuts = np.array([0.5, 1.5])
    f = rng.uniform(-0.5, 2.5, 4000)
    true_scale = 0.3
    p = ordinal.level_probabilities(f, cuts, true_scale)
    y = np.array([rng.choice(3, p=row) for row in p])
    assert ordinal.fit_scale(f, y, cuts) == pytest.approx(true_scale, rel=0.15)


def test_expected_calibration_error():
    conf = np.array([0.9] * 10 + [0.6] * 10)
    correct = np.array([1] * 9 + [0] + [1] * 3 + [0] * 7)
    # bin 0.9: accuracy 0.9 (gap 0); bin 0.6: accuracy 0.3 (gap 0.3) -> ECE 0.15
    assert ordinal.expected_calibration_error(conf, correct) == pytest.approx(0.15)


def test_threshold_is_the_largest_share_that_reaches_the_target():
    conf = np.linspace(1.0, 0.01, 100)
    correct = np.r_[np.ones(60), np.zeros(40)].astype(bool)  # the 60 most confident are all right
    sel = ordinal.choose_threshold(conf, correct, 0.9, "test")
    # 60 right + 6 wrong = 66 answers at 0.909 agreement; a 67th would fall below 0.9
    assert sel.coverage == pytest.approx(0.66) and sel.agreement >= 0.9
    assert sel.threshold == pytest.approx(conf[65], abs=1e-6)
    assert ordinal.selective_metrics(conf, correct, sel.threshold) == {"coverage": 0.66, "agreement": sel.agreement}
    nothing = ordinal.choose_threshold(conf, np.zeros(100, bool), 0.5)
    assert nothing.threshold > 1.0 and nothing.coverage == 0.0 and nothing.agreement is None


def test_threshold_never_splits_tied_confidences():
    conf = np.array([0.9] * 20 + [0.5] * 20)
    correct = np.r_[np.ones(20), np.ones(5), np.zeros(15)].astype(bool)
    sel = ordinal.choose_threshold(conf, correct, 0.9)
    assert sel.threshold == 0.9 and sel.coverage == 0.5


def test_the_teachers_weight_follows_what_it_does_for_the_student():
    """The weight of the teacher's targets is chosen out of fold: a teacher that knows the signal without
    the raters' noise is leant on, a misleading one is not."""
    import scipy.sparse as sp

    from distillation.config import StudentConfig
    from distillation.pipeline import StudentData, fit_student
    from distillation.student import Features

    rng = np.random.default_rng(0)
    n = 300
    dense = rng.normal(size=(n, 3)).astype(np.float32)
    latent = 1.5 + dense[:, 0]
    human = np.clip(np.round(latent + 0.8 * rng.normal(size=n)), 0, 3).astype(np.int64)
    # many rare words that carry nothing: fitted to noisy labels, they learn the raters' noise
    bag = sp.random(n, 3000, density=0.01, random_state=0, format="csr", data_rvs=lambda k: np.ones(k))
    cfg = StudentConfig(alphas=(1.0,), folds=5, teacher_weights=(0.25, 0.75))
    quiet = lambda *a, **k: None  # noqa: E731

    def chosen(teacher):
        data = StudentData(Features(bag, dense), human, teacher, n)
        return fit_student(data, [0, 1, 2, 3], cfg, 0, distil=True, stagewise=False, say=quiet,
                           name="t").teacher_weight

    assert chosen(latent.astype(np.float64)) == 0.75  # the teacher knows the signal without the raters' noise
    misleading = 3.0 - latent.astype(np.float64)  # upside down
    assert chosen(misleading) == 0.25


def test_a_cross_fitted_teachers_held_out_estimate_uses_the_copy_that_never_saw_the_fold():
    """With one teacher copy per fold, the student's fit that predicts fold k learns copy k's scores; the
    copies' mean (data.teacher) is only the final student's target."""
    import scipy.sparse as sp

    from distillation.config import StudentConfig
    from distillation.pipeline import StudentData, fit_student
    from distillation.student import Features

    rng = np.random.default_rng(0)
    n = 300
    dense = rng.normal(size=(n, 3)).astype(np.float32)
    latent = (1.5 + dense[:, 0]).astype(np.float64)
    human = np.clip(np.round(latent + 0.8 * rng.normal(size=n)), 0, 3).astype(np.int64)
    bag = sp.random(n, 3000, density=0.01, random_state=0, format="csr", data_rvs=lambda k: np.ones(k))
    folds = np.arange(n) % 4
    cfg = StudentConfig(alphas=(1.0,), folds=5, teacher_weights=(0.25, 0.75))
    quiet = lambda *a, **k: None  # noqa: E731

    def fit(mean, copies):
        data = StudentData(Features(bag, dense), human, mean, n, folds, np.stack(copies))
        return fit_student(data, [0, 1, 2, 3], cfg, 0, distil=True, stagewise=False, say=quiet, name="t")

    # a good-looking mean over misleading copies: the held-out estimate sees what the copies are
    assert fit(latent, [3.0 - latent] * 4).teacher_weight == 0.25
    assert fit(3.0 - latent, [latent] * 4).teacher_weight == 0.75
    # the final student learns the mean: same fitted weights whatever the copies were, given w and alpha
    a = fit(latent, [latent] * 4)
    b = fit(latent, [latent + rng.normal(scale=0.01, size=n) for _ in range(4)])
    assert a.teacher_weight == b.teacher_weight == 0.75
    np.testing.assert_allclose(a.model.coef_dense_, b.model.coef_dense_)


def _pooled_data(n: int = 240, n_questions: int = 12):
    import scipy.sparse as sp

    from distillation.pipeline import StudentData
    from distillation.student import Features

    rng = np.random.default_rng(1)
    dense = rng.normal(size=(n, 3)).astype(np.float32)
    human = np.clip(np.round(1.5 + dense[:, 0] + 0.5 * rng.normal(size=n)), 0, 3).astype(np.int64)
    bag = sp.random(n, 500, density=0.02, random_state=1, format="csr", data_rvs=lambda k: np.ones(k))
    questions = rng.permutation(np.arange(n) % n_questions)
    return StudentData(Features(bag, dense), human, human.astype(np.float64), n, questions=questions)


def test_a_pooled_models_held_out_questions_are_held_out_whole(monkeypatch):
    """The estimate for questions the model never saw never trains on any answer to the held-out questions."""
    from distillation import pipeline
    from distillation.config import StudentConfig

    data = _pooled_data()

    def rows_of(features):  # which labelled rows a Features slice holds (their dense rows are distinct)
        return [int(np.flatnonzero((data.features.dense == r).all(axis=1))[0]) for r in features.dense]

    trained, held_out = [], []

    class Recording(pipeline.LinearStudent):
        def fit(self, X, y, sample_weight=None):
            trained.append(rows_of(X))
            return super().fit(X, y, sample_weight)

        def decision_function(self, X):
            held_out.append(rows_of(X))
            return super().decision_function(X)

    monkeypatch.setattr(pipeline, "LinearStudent", Recording)
    out = pipeline._heldout_question_qwk(data, [0, 1, 2, 3], StudentConfig(alphas=(1.0,), folds=4), True,
                                         lambda *a, **k: None, "t")
    assert set(out) == {1.0} and -1.0 <= out[1.0] <= 1.0
    assert len(trained) == len(held_out) == 4
    for train_rows, held_rows in zip(trained, held_out, strict=True):
        assert not set(data.questions[train_rows]) & set(data.questions[held_rows])
    assert sorted(r for h in held_out for r in h) == list(range(data.n_labelled))  # every row held out once
    assert pipeline._heldout_question_qwk(
        pipeline.replace(data, questions=None), [0, 1, 2, 3], StudentConfig(), True, lambda *a, **k: None, "t") is None


def test_a_pooled_models_ridge_strength_weighs_held_out_questions(monkeypatch):
    """A pooled model's ridge strength is chosen on the mean of the held-out-answer and held-out-question
    QWKs: a strength that transfers to new questions wins when the answers' own estimate is close."""
    from distillation import pipeline
    from distillation.config import StudentConfig

    data = _pooled_data()
    cfg = StudentConfig(alphas=(1.0, 3.0), folds=4, teacher_weights=(0.5,))
    quiet = lambda *a, **k: None  # noqa: E731
    for favoured in (1.0, 3.0):
        by_question = {a: (0.9 if a == favoured else 0.0) for a in cfg.alphas}
        monkeypatch.setattr(pipeline, "_heldout_question_qwk", lambda *a, bq=by_question, **k: bq)
        fitted = pipeline.fit_student(data, [0, 1, 2, 3], cfg, 0, distil=True, stagewise=True, say=quiet, name="t")
        assert fitted.alpha == favoured and fitted.heldout_question_qwk == 0.9
