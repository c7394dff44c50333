"""Ordinal decoding: QWK-fitted cut-points, the cumulative-logit link, calibration error, thresholds."""

from dataclasses import replace

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


def _link_sample(rng, n, cuts, scale, top_slip=0.0):
    """Predictions and levels drawn from the link; ``top_slip``: the share of answers placed in the top
    level whose human level is one lower (a model surer of its top level than it should be)."""
    f = rng.uniform(-0.5, len(cuts) + 0.5, n)
    p = ordinal.level_probabilities(f, cuts, scale)
    y = (p.cumsum(1) < rng.uniform(size=(n, 1))).sum(1)
    slip = (ordinal.decode(f, cuts) == len(cuts)) & (y == len(cuts)) & (rng.uniform(size=n) < top_slip)
    y[slip] -= 1
    return f, y


def _nll(p, y):
    return float(-np.log(p[np.arange(len(y)), y]).mean())


def test_calibration_corrects_a_link_that_is_too_sure_of_one_level():
    rng = np.random.RandomState(3)
    cuts = np.array([0.5, 1.5, 2.5])
    f, y = _link_sample(rng, 3000, cuts, 0.25, top_slip=0.3)  # held-out predictions: fit here
    f_new, y_new = _link_sample(rng, 3000, cuts, 0.25, top_slip=0.3)  # new answers: judge here
    scale = ordinal.fit_scale(f, y, cuts)
    cal = ordinal.fit_calibration(f, y, cuts, scale)
    assert cal.shape == (4, 5)
    np.testing.assert_array_equal(cal, ordinal.fit_calibration(f, y, cuts, scale))  # deterministic
    before = ordinal.level_probabilities(f_new, cuts, scale)
    after = ordinal.calibrated_probabilities(f_new, cuts, scale, cal)
    np.testing.assert_allclose(after.sum(1), 1.0)
    assert _nll(after, y_new) < _nll(before, y_new) - 0.02

    def top_confidence(p):  # the probability given to the top level where the model decodes it
        top = ordinal.decode(f_new, cuts) == 3
        return p[top, 3].mean(), (y_new[top] == 3).mean()

    said, right = top_confidence(before)
    assert said > right + 0.1  # the link alone: too sure of the top level
    said, right = top_confidence(after)
    assert abs(said - right) < 0.03
    level = ordinal.decode(f_new, cuts)
    assert ordinal.expected_calibration_error(after[np.arange(len(f_new)), level], level == y_new) < \
        ordinal.expected_calibration_error(before[np.arange(len(f_new)), level], level == y_new) - 0.03


def test_a_search_decodes_without_the_scaling_and_calibrates_only_its_winner():
    rng = np.random.RandomState(5)
    cuts = np.array([0.5, 1.5, 2.5])
    f, y = _link_sample(rng, 800, cuts, 0.25, top_slip=0.3)
    full = ordinal.Decoding.fit(f, y, 4)
    bare = ordinal.Decoding.fit(f, y, 4, calibrate=False)
    assert bare.calibration is None and full.calibration is not None
    np.testing.assert_array_equal(bare.levels(f), full.levels(f))  # the levels a search compares
    # the bare decoding's probabilities are the link's alone, so they differ from the calibrated ones
    assert np.abs(bare.probabilities(f) - full.probabilities(f)).max() > 0.01
    done = bare.with_calibration()
    np.testing.assert_array_equal(done.calibration, full.calibration)  # as if fitted in one go
    np.testing.assert_array_equal(done.probabilities(f), full.probabilities(f))
    assert done.threshold(0.9, "default") == full.threshold(0.9, "default")
    assert full.with_calibration() is full  # already calibrated: nothing fitted again


def test_calibration_leaves_a_well_calibrated_link_nearly_alone():
    rng = np.random.RandomState(4)
    cuts = np.array([0.5, 1.5])
    f, y = _link_sample(rng, 3000, cuts, 0.3)
    f_new, y_new = _link_sample(rng, 3000, cuts, 0.3)
    scale = ordinal.fit_scale(f, y, cuts)
    cal = ordinal.fit_calibration(f, y, cuts, scale)
    identity = np.hstack([np.eye(3), np.zeros((3, 1))])
    assert np.abs(cal - identity).max() < 0.15
    before = ordinal.level_probabilities(f_new, cuts, scale)
    assert _nll(ordinal.calibrated_probabilities(f_new, cuts, scale, cal), y_new) < _nll(before, y_new) + 0.005
    # a handful of held-out answers: held near the identity by the penalty, not fitted to noise
    small = ordinal.fit_calibration(f[:12], y[:12], cuts, scale)
    assert np.abs(small - identity).max() < 0.5
    assert ordinal.calibrated_probabilities(f_new, cuts, scale, None) is not None
    np.testing.assert_array_equal(ordinal.calibrated_probabilities(f_new, cuts, scale, None), before)


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
    from distillation.student import Features
    from distillation.student_fit import StudentData, fit_student

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
    from distillation.student import Features
    from distillation.student_fit import StudentData, fit_student

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

    from distillation.student import Features
    from distillation.student_fit import StudentData

    rng = np.random.default_rng(1)
    dense = rng.normal(size=(n, 3)).astype(np.float32)
    human = np.clip(np.round(1.5 + dense[:, 0] + 0.5 * rng.normal(size=n)), 0, 3).astype(np.int64)
    bag = sp.random(n, 500, density=0.02, random_state=1, format="csr", data_rvs=lambda k: np.ones(k))
    questions = rng.permutation(np.arange(n) % n_questions)
    return StudentData(Features(bag, dense), human, human.astype(np.float64), n, questions=questions)


def test_a_pooled_models_new_question_branch_is_decoded_on_questions_held_out_whole(monkeypatch):
    """The branch for questions the model never saw is decoded on held-out predictions that never trained
    on any answer to their question; the branch itself is then fitted on every labelled row."""
    from distillation import student_fit
    from distillation.config import StudentConfig

    data = _pooled_data()
    fits = []
    real_fit_dense = student_fit.fit_dense

    def recording(dense, y, dense_weight, sample_weight=None):
        fits.append([int(np.flatnonzero((data.features.dense == r).all(axis=1))[0]) for r in dense])
        return real_fit_dense(dense, y, dense_weight, sample_weight)

    monkeypatch.setattr(student_fit, "fit_dense", recording)
    nq = student_fit.fit_new_question_branch(data, [0, 1, 2, 3], StudentConfig(folds=4), 2, lambda *a, **k: None)
    *fold_fits, final = fits
    assert len(fold_fits) == 4
    everyone = set(range(data.n_labelled))
    for train_rows in fold_fits:
        held = sorted(everyone - set(train_rows))
        assert held and not set(data.questions[train_rows]) & set(data.questions[held])
    assert sorted(final) == sorted(everyone)
    # the branch decodes with the cut-points and scale fitted on those held-out predictions
    np.testing.assert_array_equal(nq.branch.cuts, nq.decoding.cuts)
    assert nq.branch.scale == nq.decoding.scale and nq.branch.seen_column == 2
    assert nq.heldout_qwk == pytest.approx(
        qwk(data.human, nq.decoding.levels(nq.decoding.heldout_f), [0, 1, 2, 3]), abs=1e-6)
    assert nq.heldout_qwk > 0.5  # human levels follow dense column 0 in this data
    assert student_fit.fit_new_question_branch(
        replace(data, questions=None), [0, 1, 2, 3], StudentConfig(), 2, lambda *a, **k: None) is None


def test_a_pooled_student_scores_a_new_question_from_the_overlap_features_alone():
    """Rows whose question the model was trained on are scored by the whole student (bag and overlap);
    the others by the new-question branch alone, decoded by its own cut-points, in numpy and in ONNX."""
    from distillation import onnx_contract as oc
    from distillation import student_fit
    from distillation.config import StudentConfig
    from distillation.student import Features

    data = _pooled_data()
    seen_col = np.ones((data.n_labelled, 1), np.float32)  # every training row's question is known
    data = replace(data, features=Features(data.features.bag, np.hstack([data.features.dense, seen_col])))
    cfg = StudentConfig(alphas=(1.0,), folds=4, teacher_weights=(0.5,))
    quiet = lambda *a, **k: None  # noqa: E731
    nq = student_fit.fit_new_question_branch(data, [0, 1, 2, 3], cfg, 3, quiet)
    fitted = student_fit.fit_student(data, [0, 1, 2, 3], cfg, 0, distil=True, stagewise=True, say=quiet, name="t",
                                  new_questions=nq)
    model = fitted.model
    assert fitted.heldout_question_qwk == nq.heldout_qwk
    # bag, dense, bias, cut-points, scale, the link's matrix scaling [4, 5]; the branch has its own
    assert model.calibration_.shape == nq.branch.calibration.shape == (4, 5)
    assert model.n_params() == 500 + 4 + 1 + 3 + 1 + 20 + nq.branch.n_params()
    rows = data.features[np.arange(40)]
    new_dense = rows.dense.copy()
    new_dense[20:, 3] = 0.0  # the last 20 rows: a question the model was not trained on
    X = Features(rows.bag, new_dense)
    no_bag = Features(rows.bag * 0.0, new_dense)
    f = model.decision_function(X)
    whole = X.bag @ model.coef_bag_ + X.dense.astype(np.float64) @ model.coef_dense_ + model.intercept_
    np.testing.assert_allclose(f[:20], whole[:20])
    np.testing.assert_allclose(f[20:], X.dense[20:].astype(np.float64) @ nq.branch.coef + nq.branch.intercept)
    g = model.decision_function(no_bag)
    np.testing.assert_allclose(g[20:], f[20:])  # new questions: the answer's words play no part
    assert not np.allclose(g[:20], f[:20])  # known questions: they do
    levels = model.predict_levels(X)
    np.testing.assert_array_equal(levels[:20], ordinal.decode(f[:20], fitted.decoding.cuts))
    np.testing.assert_array_equal(levels[20:], ordinal.decode(f[20:], nq.decoding.cuts))
    assert not np.allclose(fitted.decoding.cuts, nq.decoding.cuts)
    p = model.predict_proba(X)  # each row through its own branch's link and scaling
    np.testing.assert_allclose(p[:20], fitted.decoding.probabilities(f[:20]))
    np.testing.assert_allclose(p[20:], nq.decoding.probabilities(f[20:]))
    assert not np.allclose(nq.branch.calibration, fitted.decoding.calibration)
    # the ONNX twin: the same scores, levels and probabilities (bag entries as the featuriser feeds them)
    coo = X.bag.tocoo()
    order = np.lexsort((coo.col, coo.row))
    feeds = {"bucket": coo.col[order].astype(np.int64), "segment": (coo.row[order] * 4).astype(np.int64),
             "segment_weight": np.ones(len(X) * 4, np.float32), "dense": X.dense.astype(np.float32)}
    out = oc.run(oc.session(model.to_onnx().SerializeToString()), feeds)
    np.testing.assert_allclose(out["score"], f, atol=1e-4)
    np.testing.assert_array_equal(out["level"], levels)
    assert oc.parity(model.predict_proba(X), out["probabilities"]) < 1e-5
