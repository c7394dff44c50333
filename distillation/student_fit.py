"""The student stages of ``distill``: the teacher's soft targets, the linear student and its word-CNN
form, a pooled model's branch for new questions, the student without the teacher, and the TF-IDF
baseline, each with its choices made and its decoding fitted on out-of-fold predictions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from distillation.config import DistillConfig
from distillation.features import Featurizer, question_key, word_vocabulary
from distillation.lexical import TfidfRidge, fold_ids, out_of_fold
from distillation.metrics import qwk
from distillation.ordinal import Decoding
from distillation.splits import Splits
from distillation.student import Features, LinearStudent, NewQuestionBranch, fit_dense
from distillation.teacher_fit import TeacherResult
from distillation.word_cnn import WordCNN, embedding_init


@dataclass
class StudentData:
    """What the students train on: labelled rows (with human levels) then unscored rows."""

    features: Features
    human: np.ndarray  # level index per labelled row
    teacher: np.ndarray  # teacher score per row (labelled and unscored): the final student's targets
    n_labelled: int
    # With a cross-fitted teacher: the teacher's folds of the labelled rows and each copy's score of every
    # row ([folds, rows]).  The student's out-of-fold fit for fold k then takes its targets from copy k,
    # which never saw fold k's labels (a copy that did would leak them into the held-out estimate).
    folds: np.ndarray | None = None
    by_copy: np.ndarray | None = None
    # A pooled model's question of each labelled row (by ``question_key``, as the featuriser knows them):
    # its branch for questions it never saw is decoded on whole questions held out (fit_new_question_branch).
    questions: np.ndarray | None = None


def student_features(sp_: Splits, fz: Featurizer) -> Features:
    """The students' rows featurised: the labelled answers, then the unscored ones."""
    rows = [sp_.labelled] + ([sp_.unlabelled] if sp_.unlabelled is not None else [])
    return Features.compute(fz, [t for d in rows for t in d.response], [t for d in rows for t in d.question],
                            [t for d in rows for t in d.reference_answer])


def soft_targets(sp_: Splits, teacher: TeacherResult, fz: Featurizer, say: Callable[..., None]) -> StudentData:
    """Each teacher copy's score of every answer, labelled and unscored, and their mean (the final
    student's targets); the featuriser reads them all."""
    lab = sp_.labelled
    n_un = len(sp_.unlabelled) if sp_.unlabelled is not None else 0
    say("soft labels", message=f"teacher scores {n_un} unscored responses (and {len(lab)} labelled)", force=True)
    by_copy = teacher.by_copy
    if n_un:
        by_copy = np.concatenate([by_copy, teacher.per_copy(sp_.unlabelled)], axis=1)
    feats = student_features(sp_, fz)
    questions = None
    if sp_.pooled_context:
        index: dict = {}
        questions = np.array([index.setdefault(question_key(q), len(index)) for q in lab.question])
    return StudentData(feats, sp_.y(lab), by_copy.mean(axis=0), len(lab), teacher.folds, by_copy, questions)


def word_student_inputs(sp_: Splits, teacher: TeacherResult, data: StudentData, config: DistillConfig,
                        cross_q: bool) -> tuple[Featurizer, StudentData, np.ndarray | None]:
    """For the student with a word CNN: its featuriser (a smaller bag and the item's vocabulary), the
    students' data featurised by it, and the vocabulary's initial embeddings from the teacher's own
    word-piece embeddings (None when the training answers repeat too few words for a vocabulary)."""
    from distillation import teacher as tch

    scfg = config.student
    lab = sp_.labelled
    vocab, spellings = word_vocabulary(lab.response, scfg.word_cnn_vocabulary, scfg.word_cnn_min_count)
    fz = Featurizer(n_buckets=scfg.word_cnn_buckets, word_ngrams=scfg.word_ngrams, char_ngrams=scfg.char_ngrams,
                    use_reference=True, cross_question=cross_q, vocabulary=vocab or None,
                    max_words=scfg.word_cnn_max_words)
    if len(vocab) < 2:
        return fz, data, None
    feats = student_features(sp_, fz)
    table = teacher.fitted[0].model.encoder.get_input_embeddings().weight.detach().float().numpy()
    init = embedding_init(spellings, tch.load_tokenizer(config.teacher.checkpoint), table, scfg.word_cnn_dim)
    return fz, replace(data, features=feats), init


@dataclass
class FittedStudent:
    model: LinearStudent
    decoding: Decoding
    alpha: float
    oof_qwk: float
    teacher_weight: float = 0.0  # 0: trained on the human levels alone
    new_questions: NewQuestions | None = None  # pooled models: how questions it never saw are scored
    words_share: float = 0.0  # the word CNN's share of the score (0: none)
    linear_oof_qwk: float | None = None  # with a word CNN: the out-of-fold QWK of its linear part alone

    @property
    def heldout_question_qwk(self) -> float | None:
        return None if self.new_questions is None else self.new_questions.heldout_qwk


@dataclass
class NewQuestions:
    """A pooled student's branch for questions it was not trained on, and its held-out figures."""

    branch: NewQuestionBranch
    decoding: Decoding  # fitted on whole questions held out
    heldout_qwk: float


def question_folds(questions: np.ndarray, folds: int) -> np.ndarray:
    """Fold id per row with every question's rows in one fold (at most ``folds``, one per question at least)."""
    from sklearn.model_selection import GroupKFold

    k = min(folds, len(np.unique(questions)))
    out = np.empty(len(questions), np.int64)
    for i, (_, held) in enumerate(GroupKFold(n_splits=k).split(np.zeros(len(questions)), groups=questions)):
        out[held] = i
    return out


def fit_new_question_branch(data: StudentData, levels: list[int], cfg, seen_column: int,
                            say: Callable[..., None]) -> NewQuestions | None:
    """A pooled model's branch for questions it never saw: ridge on the overlap features alone (the words
    it learned from other questions are noise there), fitted on the human levels of every labelled row,
    decoded by cut-points and a link scale fitted on whole questions held out (``cfg.folds`` groups of
    questions; human levels only, so no teacher copy that saw a held-out question's labels is involved).
    None for a single item."""
    if data.questions is None or len(np.unique(data.questions)) < 2:
        return None
    n_lab = data.n_labelled
    folds = question_folds(data.questions, cfg.folds)
    k = len(np.unique(folds))
    y = data.human.astype(np.float64)
    say("student (new questions)", message=f"overlap features alone, {k} folds of whole questions", force=True)
    dense = data.features.dense[:n_lab]

    def fit_predict(tr, held):
        coef, intercept = fit_dense(dense[tr], y[tr], cfg.dense_weight)
        return dense[held].astype(np.float64) @ coef + intercept

    oof = out_of_fold(fit_predict, n_lab, folds)
    dec = Decoding.fit(oof, data.human, len(levels))
    coef, intercept = fit_dense(dense, y, cfg.dense_weight)
    q = qwk(data.human, dec.levels(oof), list(range(len(levels))))
    branch = NewQuestionBranch(coef, intercept, dec.cuts, dec.scale, seen_column, dec.calibration)
    return NewQuestions(branch, dec, round(float(q), 6))


def student_folds(data: StudentData, cfg, seed: int) -> tuple[bool, np.ndarray, np.ndarray]:
    """Whether each fold has its own teacher copy, the fold of each labelled row, and the fold ids: the
    teacher's folds when it was cross-fitted (for the student without it too: the same comparison)."""
    per_copy = data.folds is not None and data.by_copy is not None
    folds = data.folds if per_copy else fold_ids(data.n_labelled, cfg.folds, seed, data.human)
    return per_copy, folds, np.unique(folds)


def fit_student(data: StudentData, levels: list[int], cfg, seed: int, *, distil: bool, stagewise: bool,
                say: Callable[..., None], name: str, new_questions: NewQuestions | None = None,
                words_init: np.ndarray | None = None) -> FittedStudent:
    """Ridge student on ``w * teacher + (1 - w) * human`` (``distil``; ``w`` from ``cfg.teacher_weights``)
    or on the human levels alone.  ``w`` and the ridge strength are chosen on out-of-fold predictions
    (QWK against the human levels), and the decoding is fitted on them; a teacher weaker than the
    student on some item is mixed in less instead of dragging it down.  With a cross-fitted teacher the
    folds are the teacher's, and the fit that predicts fold k learns copy k's scores, so that no teacher
    behind a held-out estimate saw the held-out labels; the final student learns the copies' mean.

    ``new_questions`` (pooled models, ``fit_new_question_branch``) scores the questions it was not
    trained on; the rest is chosen and fitted on the questions it was.  ``words_init`` (the vocabulary's
    initial embeddings; ``data.features`` then has word ids): a word CNN beside the linear part
    (``fit_words``)."""
    n_lab = data.n_labelled
    per_copy, folds, ks = student_folds(data, cfg, seed)
    weights = tuple(cfg.teacher_weights) if distil else (0.0,)
    rows = np.arange(len(data.features)) if distil else np.arange(n_lab)
    extra = rows[n_lab:]  # unscored rows (teacher targets only) train every fold's model

    def mix(w: float, t: np.ndarray) -> np.ndarray:
        return np.concatenate([w * t[:n_lab] + (1 - w) * data.human, t[n_lab:]])

    best = None
    for w in weights:
        target = mix(w, data.teacher) if distil else data.human.astype(np.float64)
        for alpha in cfg.alphas:
            say(f"student ({name})", message=f"out-of-fold fits, alpha {alpha:g}"
                + (f", teacher weight {w:g}" if distil else ""), force=True)

            def fit_predict(tr, held, alpha=alpha, target=target, w=w):
                idx = np.concatenate([tr, extra])
                if distil and per_copy:  # targets from the copy that never saw the held-out fold
                    target = mix(w, data.by_copy[int(np.searchsorted(ks, folds[held[0]]))])
                m = LinearStudent(alpha, cfg.dense_weight, stagewise).fit(data.features[idx], target[idx])
                return m.decision_function(data.features[held])

            oof = out_of_fold(fit_predict, n_lab, folds)
            dec = Decoding.fit(oof, data.human, len(levels), calibrate=False)
            q = qwk(data.human, dec.levels(oof), list(range(len(levels))))
            if best is None or q > best[0] + 1e-9:
                best = (q, alpha, dec, w, target, oof)
    q, alpha, dec, w, target, oof = best
    dec = dec.with_calibration()
    model = LinearStudent(alpha, cfg.dense_weight, stagewise).fit(data.features[rows], target[rows])
    model.set_new_questions(new_questions.branch if new_questions is not None else None)
    share, linear_q = 0.0, None
    if words_init is not None:
        cnn, share, words_q, words_dec = fit_words(data, levels, cfg, seed, oof, words_init, distil=distil,
                                                   say=say, name=name)
        if share > 0:
            model.set_words(cnn, share)
            linear_q, q, dec = q, words_q, words_dec
    model.set_decoding(levels, dec.cuts, dec.scale, dec.calibration)
    return FittedStudent(model, dec, alpha, round(float(q), 6), float(w), new_questions, share,
                         None if linear_q is None else round(float(linear_q), 6))


def fit_words(data: StudentData, levels: list[int], cfg, seed: int, linear_oof: np.ndarray, init: np.ndarray, *,
              distil: bool, say: Callable[..., None], name: str) -> tuple[WordCNN | None, float, float, Decoding]:
    """A word CNN on ``w * teacher + (1 - w) * human`` (``distil``; ``w``: ``cfg.word_cnn_teacher_weight``)
    or on the human levels, out of fold on the linear part's folds (fold k's targets from teacher copy k),
    and its share of the score, chosen among ``cfg.word_cnn_shares`` (0: none) on the out-of-fold QWK of
    ``share * cnn + (1 - share) * linear``.  Returns the CNN fitted on every row (None for share 0), the
    share, that QWK and the decoding fitted on it."""
    n_lab = data.n_labelled
    per_copy, folds, ks = student_folds(data, cfg, seed)
    w = cfg.word_cnn_teacher_weight if distil else 0.0
    rows = np.arange(len(data.features)) if distil else np.arange(n_lab)
    extra = rows[n_lab:]  # unscored rows (teacher targets only) train every fold's model
    words = data.features.words

    def target(t: np.ndarray) -> np.ndarray:
        return np.concatenate([w * t[:n_lab] + (1 - w) * data.human, t[n_lab:]])

    def make() -> WordCNN:
        return WordCNN(init, cfg.word_cnn_channels, cfg.word_cnn_epochs, seed=seed)

    say(f"student ({name})", message=f"word CNN, {len(ks)} out-of-fold fits", force=True)

    def fit_predict(tr, held):
        t = data.by_copy[int(np.searchsorted(ks, folds[held[0]]))] if distil and per_copy else data.teacher
        idx = np.concatenate([tr, extra])
        return make().fit(words[idx], target(t)[idx]).predict(words[held])

    cnn_oof = out_of_fold(fit_predict, n_lab, folds)
    best = None
    for share in cfg.word_cnn_shares:
        f = share * cnn_oof + (1 - share) * linear_oof
        dec = Decoding.fit(f, data.human, len(levels), calibrate=False)
        q = qwk(data.human, dec.levels(f), list(range(len(levels))))
        if best is None or q > best[0] + 1e-9:
            best = (q, share, dec)
    q, share, dec = best
    dec = dec.with_calibration()
    if share == 0:
        return None, 0.0, q, dec
    return make().fit(words[rows], target(data.teacher)[rows]), share, q, dec


def fit_tfidf(sp_: Splits, cfg, seed: int) -> tuple[TfidfRidge, Decoding]:
    """The TF-IDF ridge baseline on the labelled rows, decoded like the student (out-of-fold cut-points)."""
    lab = sp_.labelled
    y = sp_.y(lab)
    folds = fold_ids(len(lab), cfg.folds, seed, y)
    texts = lab.response
    oof = out_of_fold(lambda tr, held: TfidfRidge().fit([texts[i] for i in tr], y[tr]).predict(
        [texts[i] for i in held]), len(lab), folds)
    return TfidfRidge().fit(texts, y), Decoding.fit(oof, y, len(sp_.levels))
