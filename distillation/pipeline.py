"""The distillation pipeline: CSV in, one model-version directory per item out, plus a JSON report.

``distill(...)`` is what the ``distill`` management command (and a Celery task) calls;
``distill_csv(train_csv, out_dir, config=DistillConfig.tiny(), seed=0)`` is the short form.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from distillation import artifact, gates, ordinal
from distillation import onnx_contract as oc
from distillation.config import DistillConfig
from distillation.data import DataError, Dataset, check_labels, check_test, read_csv, stratified_split
from distillation.features import Featurizer, question_key, word_vocabulary
from distillation.lexical import TfidfRidge, fold_ids, out_of_fold
from distillation.metrics import qwk, scores
from distillation.student import Features, LinearStudent, NewQuestionBranch, fit_dense
from distillation.word_cnn import WordCNN, embedding_init

POOLED = "pooled"
REPORT_MODELS = ("teacher", "teacher_onnx_int8", "student", "student_no_kd", "tfidf")


class ProgressPrinter:
    """Prints one line per update (at most every ``every`` seconds, always at an epoch's end)."""

    def __init__(self, stream=None, every: float = 2.0):
        self.stream = stream or sys.stderr
        self.every = every
        self._last = 0.0

    def __call__(self, *, item: str = "", stage: str, message: str = "", step: int | None = None,
                 total: int | None = None, epoch: int | None = None, epochs: int | None = None,
                 eta_s: float | None = None, force: bool = False, **extra) -> None:
        now = time.monotonic()
        epoch_end = "val_qwk" in extra or "val_loss" in extra
        if not (force or epoch_end or message or now - self._last >= self.every):
            return
        self._last = now
        parts = [f"[{item}] {stage}" if item else stage]
        if epoch is not None and epochs is not None:
            parts.append(f"epoch {epoch}/{epochs}")
        if step is not None and total is not None:
            parts.append(f"step {step}/{total}")
        for k, v in extra.items():
            parts.append(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}")
        if eta_s is not None:
            parts.append(f"about {_fmt_s(eta_s)} left")
        if message:
            parts.append(message)
        print(" | ".join(parts), file=self.stream, flush=True)


# Rows of the test split whose PyTorch-student probabilities go into parity.json.
PARITY_SAMPLE = 50

def _fmt_s(s: float) -> str:
    s = max(0, round(s))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def _quiet(**_kw) -> None:
    return None


def _set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(max(1, n))


def load_inputs(train_csv, test_csv=None, unlabelled_csv=None, *, pooled: bool = False):
    """Read and validate every input before anything is written.  Raises DataError."""
    train = read_csv(train_csv)
    labels = check_labels(train) if not pooled else None
    if pooled:
        levels = sorted(set(train.score))
        if len(levels) < 2:
            raise DataError(train.path, [(None, "score", f"a single score level ({levels[0]}): nothing to learn")])
        labels = {POOLED: levels}
    test = read_csv(test_csv) if test_csv else None
    if test is not None:
        check_test(test, labels, pooled)
    unlabelled = read_csv(unlabelled_csv, labelled=False) if unlabelled_csv else None
    if unlabelled is not None and not pooled:
        unknown = [(i + 1, "item_id", f"item {x!r} is not in the training file")
                   for i, x in enumerate(unlabelled.item_id) if x not in labels]
        if unknown:
            raise DataError(unlabelled.path, unknown)
    return train, test, unlabelled, labels


def distill_csv(train_csv, out_dir, config: DistillConfig | None = None, seed: int = 0, **kw) -> dict:
    """Short form of :func:`distill` (quiet by default): returns the report."""
    kw.setdefault("progress", _quiet)
    return distill(train_csv, out_dir, config=config or DistillConfig.tiny(), seed=seed, **kw)


def distill(
    train_csv,
    out_dir,
    *,
    test_csv=None,
    unlabelled_csv=None,
    teacher: str | None = None,
    config: DistillConfig | None = None,
    seed: int = 0,
    report_json=None,
    pooled: bool = False,
    items: list[str] | None = None,
    extra_tests: dict[str, str] | None = None,
    progress: Callable[..., None] | None = None,
) -> dict:
    """Train one model version per item (or one pooled over all items) under ``out_dir/<item_id>/`` and
    return the report ``{"items": {item_id: {...}}}``; also written to ``report_json`` when given.
    Input files are validated first: a refused file raises DataError and nothing is written."""
    config = config or DistillConfig()
    if teacher is not None:
        config = config.with_teacher(checkpoint=str(teacher))
    progress = progress or ProgressPrinter()
    train, test, unlabelled, labels = load_inputs(train_csv, test_csv, unlabelled_csv, pooled=pooled)
    if config.teacher.checkpoint not in (None, "tiny") and not Path(config.teacher.checkpoint).is_dir():
        raise DataError(config.teacher.checkpoint, [(None, None, "teacher checkpoint: not a directory")])
    extra = {name: read_csv(path) for name, path in (extra_tests or {}).items()}
    for ds in extra.values():
        check_test(ds, labels, pooled)
    units = list(labels)
    if items:
        missing = [i for i in items if i not in labels]
        if missing:
            raise DataError(train.path, [(None, "item_id", f"item {m!r} is not in the training file") for m in missing])
        units = [u for u in units if u in items]

    out = Path(out_dir)
    report: dict = {"items": {}}
    t_all = time.monotonic()
    for n, unit in enumerate(units, start=1):
        progress(item=unit, stage="start", message=f"item {n}/{len(units)}", force=True)
        if pooled:
            tr, te, un = train, test, unlabelled
        else:
            tr = train.for_item(unit)
            te = test.for_item(unit) if test is not None else None
            un = unlabelled.for_item(unit) if unlabelled is not None else None
        ex = {k: (v if pooled else v.for_item(unit)) for k, v in extra.items()}
        ex = {k: v for k, v in ex.items() if len(v)}
        entry = distill_item(unit, tr, te, un, labels[unit], out, config, seed, progress, extra_tests=ex)
        report["items"][unit] = entry
        if report_json:
            _write_report(report_json, report)
        progress(item=unit, stage="done", message=f"item {n}/{len(units)} in {_fmt_s(entry['seconds'])}", force=True)
    report["seconds"] = round(time.monotonic() - t_all, 1)
    if report_json:
        _write_report(report_json, report)
    return report


def _write_report(path, report: dict) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, p)


# ---------------------------------------------------------------------------------------------------
# One item, in stages.  Each stage is a plain function of arrays and datasets; `distill_item` chains them.

@dataclass
class Splits:
    """The rows of one item: ``labelled`` trains the teacher (cross-fitted over folds), the students and
    the baseline; ``test`` is only ever evaluated."""

    levels: list[int]
    labelled: Dataset
    test: Dataset
    test_source: str
    unlabelled: Dataset | None
    use_context: bool
    pooled_context: bool

    def y(self, ds: Dataset) -> np.ndarray:
        index = {v: i for i, v in enumerate(self.levels)}
        return np.array([index[s] for s in ds.score], dtype=np.int64)

    def context(self, ds: Dataset) -> list[str] | None:
        if not self.use_context:
            return None
        return [f"{q} {r}".strip() for q, r in zip(ds.question, ds.reference_answer, strict=True)]


def make_splits(train: Dataset, test: Dataset | None, unlabelled: Dataset | None, levels: list[int],
                config: DistillConfig, seed: int) -> Splits:
    if test is None:
        keep, held = stratified_split(train.score, config.holdout_fraction, seed)
        test, train = train.select(held), train.select(keep)
        test_source = f"held-out {config.holdout_fraction:.0%} of the training file"
    else:
        test_source = test.path
    pooled_context = len(set(zip(train.question, train.reference_answer, strict=True))) > 1
    use_context = {"auto": pooled_context, "always": True, "never": False}[config.teacher.context]
    return Splits(levels, train, test, test_source,
                  unlabelled if unlabelled is not None and len(unlabelled) else None, use_context, pooled_context)


@dataclass
class Decoding:
    """Cut-points and link scale fitted on held-out predictions, and what they give there."""

    cuts: np.ndarray
    scale: float
    heldout_f: np.ndarray
    heldout_y: np.ndarray
    calibration: np.ndarray | None = None  # matrix scaling of the link's probabilities (ordinal.fit_calibration)

    @classmethod
    def fit(cls, f: np.ndarray, y: np.ndarray, n_levels: int) -> Decoding:
        cuts = ordinal.fit_cutpoints(f, y, n_levels)
        scale = ordinal.fit_scale(f, y, cuts)
        return cls(cuts, scale, np.asarray(f), np.asarray(y), ordinal.fit_calibration(f, y, cuts, scale))

    def levels(self, f: np.ndarray) -> np.ndarray:
        return ordinal.decode(f, self.cuts)

    def probabilities(self, f: np.ndarray) -> np.ndarray:
        return ordinal.calibrated_probabilities(f, self.cuts, self.scale, self.calibration)

    def confidence(self, f: np.ndarray) -> np.ndarray:
        return self.probabilities(f)[np.arange(len(f)), self.levels(f)]

    def threshold(self, target: float, source: str) -> ordinal.Selective:
        f, y = self.heldout_f, self.heldout_y
        return ordinal.choose_threshold(self.confidence(f), self.levels(f) == y, target, source)

    def to_dict(self) -> dict:
        out = {"cut_points": [round(float(c), 6) for c in self.cuts], "scale": round(self.scale, 6)}
        if self.calibration is not None:
            out["calibration"] = [[round(float(x), 6) for x in row] for row in self.calibration]
        return out


@dataclass
class TeacherResult:
    """The cross-fitted teacher: one transformer per fold (averaged on new answers), the lexical half
    fitted on every labelled row, their ensemble weight, and the out-of-fold ensemble score of every
    labelled row (what the decoding, the weight and the students' targets are fitted on)."""

    fitted: list  # distillation.teacher.FittedTeacher per fold (on the CPU after training)
    lexical: TfidfRidge | None
    weight: float  # of the lexical model in the ensemble
    decoding: Decoding
    oof: np.ndarray
    log: dict
    encode: Callable[[Dataset], object]
    seconds: float
    folds: np.ndarray | None = None  # fold of each labelled row (copy k never saw fold k's labels)
    by_copy: np.ndarray | None = None  # [folds, labelled rows]: each copy's ensemble score of every row
    fold_lexical: list = field(default_factory=list)  # each copy's lexical half (fitted on its rows)

    def _transformers(self, ds: Dataset) -> np.ndarray:
        """``[folds, rows]``: each fold transformer's score (their frozen lower layers are shared: cached once)."""
        cached = self.fitted[0].cache(self.encode(ds))
        return np.stack([t.predict(cached) for t in self.fitted])  # float32

    def transformer(self, ds: Dataset) -> np.ndarray:
        """The fold transformers' mean score."""
        return self._transformers(ds).mean(axis=0).astype(np.float64)

    def per_copy(self, ds: Dataset) -> np.ndarray:
        """``[folds, rows]``: each copy's ensemble score (its transformer and the lexical model fitted on
        the same rows) of ``ds``."""
        t = self._transformers(ds).astype(np.float64)
        if not self.fold_lexical:
            return t
        lex = np.stack([m.predict(ds.response) for m in self.fold_lexical])
        return self.weight * lex + (1 - self.weight) * t

    def predict(self, ds: Dataset, transformer_f: np.ndarray | None = None) -> np.ndarray:
        """The ensemble's score; ``transformer_f`` replaces the transformer's own (e.g. the int8 copies')."""
        t = self.transformer(ds) if transformer_f is None else np.asarray(transformer_f, dtype=np.float64)
        return self.blend(t, ds.response)

    def blend(self, t: np.ndarray, texts: list[str]) -> np.ndarray:
        if self.lexical is None or self.weight == 0:
            return t
        return self.weight * self.lexical.predict(texts) + (1 - self.weight) * t


def fit_teacher(sp_: Splits, config: DistillConfig, seed: int, say: Callable[..., None]) -> TeacherResult:
    """Cross-fit the transformer over ``cfg.folds`` folds of the labelled rows; fit the lexical half out
    of fold on the same folds; choose the ensemble weight and fit the decoding on the out-of-fold scores."""
    from distillation import teacher as tch

    t0 = time.monotonic()
    cfg = config.teacher
    lab = sp_.labelled
    y = sp_.y(lab)
    folds = fold_ids(len(lab), cfg.folds, seed + 1, y)
    say("teacher", message=f"fine-tuning {cfg.folds} copies, each on {cfg.folds - 1}/{cfg.folds} of "
        f"{len(lab)} responses", force=True)
    tok = tch.load_tokenizer(cfg.checkpoint)
    max_len = tch.max_length_for(tok, lab.response, sp_.context(lab), cfg)

    def encode(ds: Dataset):
        return tch.Encoded(tok, ds.response, sp_.context(ds), max_len)

    fitted, oof_t, by_copy_t, log = tch.cross_fit(cfg.checkpoint, encode(lab), y, folds, len(sp_.levels), cfg,
                                                  seed, progress=lambda **k: say(**k))
    fitted = [tch.to_cpu(f) for f in fitted]
    log["max_length"] = max_len
    weights = tuple(cfg.lexical_weights) or (0.0,)
    lexical, weight, fold_lexical = None, 0.0, []
    oof, by_copy = oof_t, by_copy_t
    if any(w > 0 for w in weights):
        texts = lab.response
        ks = np.unique(folds)
        # the lexical half of each copy, fitted on the copy's rows, scores every row
        fold_lexical = [TfidfRidge().fit([texts[i] for i in np.flatnonzero(folds != k)], y[folds != k])
                        for k in ks]
        by_copy_lex = np.stack([m.predict(texts) for m in fold_lexical])
        oof_lex = by_copy_lex[np.searchsorted(ks, folds), np.arange(len(lab))]
        best = None
        for w in weights:
            f = w * oof_lex + (1 - w) * oof_t
            q = qwk(y, Decoding.fit(f, y, len(sp_.levels)).levels(f), list(range(len(sp_.levels))))
            if best is None or q > best[0] + 1e-9:
                best = (q, w, f)
        _, weight, oof = best
        by_copy = weight * by_copy_lex + (1 - weight) * by_copy_t
        log["lexical_weight_oof_qwk"] = round(float(best[0]), 6)
        if weight > 0:
            lexical = TfidfRidge().fit(texts, y)
        else:
            fold_lexical = []
    result = TeacherResult(fitted, lexical, float(weight), Decoding.fit(oof, y, len(sp_.levels)), oof, log,
                           encode, 0.0, folds=folds, by_copy=by_copy, fold_lexical=fold_lexical)
    result.seconds = round(time.monotonic() - t0, 1)
    return result


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
            dec = Decoding.fit(oof, data.human, len(levels))
            q = qwk(data.human, dec.levels(oof), list(range(len(levels))))
            if best is None or q > best[0] + 1e-9:
                best = (q, alpha, dec, w, target, oof)
    q, alpha, dec, w, target, oof = best
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
        dec = Decoding.fit(f, data.human, len(levels))
        q = qwk(data.human, dec.levels(f), list(range(len(levels))))
        if best is None or q > best[0] + 1e-9:
            best = (q, share, dec)
    q, share, dec = best
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


# ---- evaluation --------------------------------------------------------------------------------------

def model_metrics(levels: list[int], y: np.ndarray, pred: np.ndarray) -> dict:
    lv = np.asarray(levels)
    out = scores(lv[y], lv[pred], levels)
    out["smd"] = round(gates.smd(lv[y], lv[pred]), 6) if len(y) > 1 else None
    return out


def selective_report(dec: Decoding, conf: np.ndarray, correct: np.ndarray, target: float, source: str) -> dict:
    """The threshold fitted on ``dec``'s held-out predictions, and what it gives on the test answers
    (``conf``: the decoded level's probability; ``correct``: whether that level is the human's)."""
    sel = dec.threshold(target, source)
    return {**sel.to_dict(), "test": ordinal.selective_metrics(conf, correct, sel.threshold),
            "ece": round(ordinal.expected_calibration_error(conf, correct), 6)}


def _confident(dec: Decoding, f: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The decoded level's probability and whether it is the human's, for ``selective_report``."""
    return dec.confidence(f), dec.levels(f) == y


def _link_only(dec: Decoding) -> Decoding:
    return replace(dec, calibration=None)


def _student_confident(student: FittedStudent, f: np.ndarray, dense: np.ndarray,
                       y: np.ndarray, link_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``_confident`` for the served student's scores ``f``: rows of questions it was not trained on are
    decoded by its new-question branch.  ``link_only``: without the link's matrix scaling."""
    dec = _link_only(student.decoding) if link_only else student.decoding
    conf, correct = _confident(dec, f, y)
    nq = student.new_questions
    if nq is not None:
        new = dense[:, nq.branch.seen_column] < 0.5
        conf[new], correct[new] = _confident(_link_only(nq.decoding) if link_only else nq.decoding, f[new], y[new])
    return conf, correct


def link_only_report(dec: Decoding, confident: tuple[np.ndarray, np.ndarray], target: float, source: str) -> dict:
    """What ``selective_report`` gave with the link alone (before the matrix scaling): its threshold,
    coverages and calibration error, for the report's before/after of the scaling.  ``dec``: the
    decoding (its scaling is dropped here); ``confident``: the test rows' link-only confidences."""
    sel = selective_report(_link_only(dec), *confident, target, source)
    return {k: sel[k] for k in ("threshold", "coverage", "test", "ece")}


def agreement_target(ds: Dataset, default: float) -> tuple[float, str]:
    """Exact agreement of the two human ratings where ``score2`` exists, else the configured default."""
    s2 = ds.score2()
    pairs = [(a, b) for a, b in zip(ds.score, s2 or [], strict=False) if b is not None] if s2 else []
    if len(pairs) >= 20:
        return float(np.mean([a == b for a, b in pairs])), "human-human exact agreement"
    return default, "default"


GROUP_MAX_VALUES = 20


def group_columns(ds: Dataset) -> dict[str, list[str]]:
    """Extra columns that look like groups (school, language background...): 2 to 20 distinct values."""
    out = {}
    for name, values in ds.extra.items():
        if name in ("score2",) or name.startswith("p_"):
            continue
        distinct = set(values) - {""}
        if not (2 <= len(distinct) <= GROUP_MAX_VALUES and len(distinct) < len(values)):
            continue
        if len(set(zip(values, ds.score, strict=True))) == len(distinct):  # a copy of the score (a label column)
            continue
        out[name] = values
    return out


def confusion_report(levels: list[int], y: np.ndarray, pred: np.ndarray) -> tuple[dict, dict, dict]:
    k = len(levels)
    m = np.bincount(y * k + pred, minlength=k * k).reshape(k, k)
    per_level = {}
    for i, lv in enumerate(levels):
        tp, support, predicted = int(m[i, i]), int(m[i].sum()), int(m[:, i].sum())
        per_level[str(lv)] = {"n": support, "precision": round(tp / predicted, 6) if predicted else None,
                              "recall": round(tp / support, 6) if support else None}
    dist = {"human": {str(lv): int((y == i).sum()) for i, lv in enumerate(levels)},
            "student": {str(lv): int((pred == i).sum()) for i, lv in enumerate(levels)}}
    return {"labels": list(levels), "rows": "human", "columns": "student", "matrix": m.tolist()}, per_level, dist


def distill_item(
    item_id: str,
    train: Dataset,
    test: Dataset | None,
    unlabelled: Dataset | None,
    levels: list[int],
    out: Path,
    config: DistillConfig,
    seed: int,
    progress: Callable[..., None],
    extra_tests: dict[str, Dataset] | None = None,
) -> dict:
    """Teacher -> soft targets -> students and baseline -> evaluation on the test split -> a verified
    model-version directory ``out/<item_id>/``.  Returns the item's report entry."""
    t_item = time.monotonic()
    _set_threads(config.threads)
    stage_seconds: dict[str, float] = {}  # where the minutes go (the report's "stage_seconds")
    clock = ["splits", t_item]

    def lap(next_stage: str) -> None:
        now = time.monotonic()
        stage_seconds[clock[0]] = stage_seconds.get(clock[0], 0.0) + now - clock[1]
        clock[:] = [next_stage, now]

    def say(stage, **kw):
        lap(stage.split(" (")[0])  # "student (no KD)" counts as "student"
        progress(item=item_id, stage=stage, **kw)

    sp_ = make_splits(train, test, unlabelled, levels, config, seed)
    scfg = config.student
    cross_q = {"auto": sp_.pooled_context, "on": True, "off": False}.get(scfg.cross_question, sp_.pooled_context)
    teacher = fit_teacher(sp_, config, seed, say)
    # a pooled model knows its training questions: one it never saw is scored from the overlap features alone
    known = sorted({question_key(q) for q in sp_.labelled.question}) if sp_.pooled_context else None
    fz = Featurizer(n_buckets=scfg.n_buckets, word_ngrams=scfg.word_ngrams, char_ngrams=scfg.char_ngrams,
                    use_reference=True, cross_question=cross_q, known_questions=known)
    data = soft_targets(sp_, teacher, fz, say)
    new_q = fit_new_question_branch(data, levels, scfg, fz.seen_column, say) if known else None
    student = fit_student(data, levels, scfg, seed + 3, distil=True, stagewise=cross_q, say=say, name="distilled",
                          new_questions=new_q)
    candidates = {"linear": (student, fz)}
    words_init = None
    if scfg.word_cnn and not known:  # a pooled model's words are its training questions': no CNN there
        fz_w, data_w, words_init = word_student_inputs(sp_, teacher, data, config, cross_q)
        if words_init is not None:
            hybrid = fit_student(data_w, levels, scfg, seed + 3, distil=True, stagewise=cross_q, say=say,
                                 name="distilled, word CNN", words_init=words_init)
            candidates["word_cnn"] = (hybrid, fz_w)
            if hybrid.words_share > 0 and hybrid.oof_qwk > student.oof_qwk + scfg.word_cnn_margin:
                student, fz, data = hybrid, fz_w, data_w
            else:
                words_init = None
    no_kd = fit_student(data, levels, scfg, seed + 3, distil=False, stagewise=cross_q, say=say, name="no KD",
                        new_questions=new_q, words_init=words_init)
    say("tfidf", message="TF-IDF ridge baseline, out-of-fold decoding", force=True)
    tfidf, tfidf_dec = fit_tfidf(sp_, scfg, seed + 4)
    target, target_source = agreement_target(sp_.labelled, scfg.default_agreement)

    out.mkdir(parents=True, exist_ok=True)
    work = artifact.atomic_directory(out, prefix=f".tmp-{item_id}-")
    tmpd = Path(tempfile.mkdtemp(prefix="kdgrade-teacher-"))
    try:
        say("export", message="student to ONNX", force=True)
        (work / "model.onnx").write_bytes(student.model.to_onnx().SerializeToString())
        sess = oc.session(work / "model.onnx")
        say("evaluate", message=f"on {len(sp_.test)} test responses ({sp_.test_source})", force=True)
        entry = evaluate(sp_, teacher, student, no_kd, (tfidf, tfidf_dec), fz, sess, config, tmpd,
                         (target, target_source), say)
        for name, ds in (extra_tests or {}).items():
            say("evaluate", message=f"extra test set {name!r}: {len(ds)} responses", force=True)
            sp_x = replace(sp_, test=ds, test_source=ds.path)
            entry.setdefault("extra_tests", {})[name] = evaluate(
                sp_x, teacher, student, no_kd, (tfidf, tfidf_dec), fz, sess, config, None,
                (target, target_source), say, timings=False)
        entry.update({
            "n_train": len(sp_.labelled),
            "labels": levels,
            "teacher_recipe": _teacher_recipe(config, teacher),
            "teacher_training": teacher.log,
            "student_training": {"alpha": student.alpha, "oof_qwk": student.oof_qwk,
                                 "oof_qwk_rows": f"every labelled row ({data.n_labelled}), "
                                 + (f"the teacher's {len(np.unique(data.folds))} folds, each fold's targets from "
                                    "the copy that never saw it" if data.folds is not None else
                                    f"{scfg.folds} folds"),
                                 "teacher_weight": student.teacher_weight, "stagewise": bool(cross_q),
                                 "n_labelled": data.n_labelled, "n_unscored": len(data.features) - data.n_labelled,
                                 "form": "word_cnn" if student.words_share > 0 else "linear",
                                 "word_cnn_share": student.words_share,
                                 "candidates": candidate_report(candidates, sp_, scfg.word_cnn_margin),
                                 **_question_choice(student)},
            "student_no_kd_training": {"alpha": no_kd.alpha, "oof_qwk": no_kd.oof_qwk, **_question_choice(no_kd)},
            "distillation_gain_qwk": round(entry["models"]["student"]["qwk"] - entry["models"]["student_no_kd"]["qwk"],
                                           6),
        })
        entry["gates"] = [g.to_dict() for g in gates.evaluate(entry)]
        entry["gates_passed"] = gates.passed([gates.Gate(**g) for g in entry["gates"]])
        lap("write")
        entry["seconds"] = round(time.monotonic() - t_item, 1)
        entry["stage_seconds"] = {k: round(v, 1) for k, v in stage_seconds.items()}
        write_version(work, item_id, sp_, fz, student, entry, config, seed, train, unlabelled)
        final = out / item_id
        if final.exists():
            old = out / f".old-{item_id}-{os.getpid()}"
            os.replace(final, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        _set_threads(config.threads)
        shutil.rmtree(tmpd, ignore_errors=True)
    return entry


def candidate_report(candidates: dict[str, tuple[FittedStudent, Featurizer]], sp_: Splits, margin: float) -> dict:
    """Each form of distilled student that was fitted: parameters, out-of-fold QWK (what chose between
    them: the word CNN's must beat the linear one's by more than ``margin``) and test QWK (reported only)."""
    test, lv = sp_.test, list(range(len(sp_.levels)))
    out = {}
    for name, (st, fz) in candidates.items():
        pred = st.model.predict_levels(Features.compute(fz, test.response, test.question, test.reference_answer))
        out[name] = {"params": st.model.n_params(), "oof_qwk": st.oof_qwk,
                     "test_qwk": round(qwk(sp_.y(test), pred, lv), 6),
                     **({"word_cnn_share": st.words_share, "linear_part_oof_qwk": st.linear_oof_qwk}
                        if name == "word_cnn" else {})}
    out["rule"] = f"the word CNN form where its out-of-fold QWK beats the linear form's by more than {margin:g}"
    return out


def _question_choice(student: FittedStudent) -> dict:
    if student.heldout_question_qwk is None:
        return {}
    return {"heldout_question_qwk": student.heldout_question_qwk,
            "new_questions": "a question the model was not trained on is scored from the overlap features alone, "
                             "decoded by cut-points fitted on whole questions held out (pooled model)"}


def _teacher_recipe(config: DistillConfig, teacher: TeacherResult) -> str:
    name = config.teacher.checkpoint or "all-MiniLM-L6-v2"
    log = teacher.log
    part = (f"{name} regression, top {log['trained_layers']} of {log['trained_layers'] + log['frozen_layers']} "
            f"layers trained on {log['device']}"
            + (f" in {log['mixed_precision']}" if log.get("mixed_precision") else "")
            + f", mean of {len(teacher.fitted)} cross-fitted copies")
    if teacher.lexical is not None and teacher.weight > 0:
        return f"ensemble: {1 - teacher.weight:.2f} x {part} + {teacher.weight:.2f} x TF-IDF ridge"
    return part


def evaluate(sp_: Splits, teacher: TeacherResult, student: FittedStudent, no_kd: FittedStudent, tfidf_pair,
             fz: Featurizer, sess, config: DistillConfig, tmpd: Path | None, target_pair, say,
             timings: bool = True) -> dict:
    """Every model on ``sp_.test``: metrics, selective scoring at human-level agreement, calibration;
    with ``timings``, sizes and speeds, and the int8 teacher."""
    from distillation import teacher as tch

    test, levels = sp_.test, sp_.levels
    y = sp_.y(test)
    target, source = target_pair
    ks = list(range(len(levels)))
    models: dict = {}

    enc_test = teacher.encode(test)
    t_transformer = teacher.transformer(test)
    f_teacher = teacher.predict(test, t_transformer)
    t_pred = teacher.decoding.levels(f_teacher)
    models["teacher"] = {"params": sum(tch.count_params(f.model) for f in teacher.fitted) + (
        teacher.lexical.n_params() if teacher.lexical is not None and teacher.weight > 0 else 0),
        **model_metrics(levels, y, t_pred),
        "selective": selective_report(teacher.decoding, *_confident(teacher.decoding, f_teacher, y), target, source)}
    models["teacher"]["selective"]["link_only"] = link_only_report(
        teacher.decoding, _confident(_link_only(teacher.decoding), f_teacher, y), target, source)

    feeds = fz.transform(test.response, test.question, test.reference_answer)
    served = oc.run(sess, feeds)
    s_pred = served[oc.LEVEL].astype(np.int64)
    f_student = served[oc.SCORE].astype(np.float64)
    models["student"] = {"params": student.model.n_params(), **model_metrics(levels, y, s_pred),
                         "agreement_with_teacher": round(float((s_pred == t_pred).mean()), 6),
                         "qwk_with_teacher": round(qwk(t_pred, s_pred, ks), 6),
                         "selective": selective_report(
                             student.decoding, *_student_confident(student, f_student, feeds["dense"], y),
                             target, source)}
    models["student"]["selective"]["link_only"] = link_only_report(
        student.decoding, _student_confident(student, f_student, feeds["dense"], y, link_only=True), target, source)
    feats = Features.compute(fz, test.response, test.question, test.reference_answer)
    nk_pred = no_kd.model.predict_levels(feats)
    nk_conf = no_kd.model.predict_proba(feats)[np.arange(len(y)), nk_pred]
    models["student_no_kd"] = {"params": no_kd.model.n_params(), **model_metrics(levels, y, nk_pred),
                               "agreement_with_teacher": round(float((nk_pred == t_pred).mean()), 6),
                               "selective": selective_report(no_kd.decoding, nk_conf, nk_pred == y, target, source)}
    models["student_no_kd"]["selective"]["link_only"] = link_only_report(
        no_kd.decoding, _student_confident(no_kd, no_kd.model.decision_function(feats), feats.dense, y, link_only=True),
        target, source)
    tfidf, tfidf_dec = tfidf_pair
    f_tf = tfidf.predict(test.response)
    tf_pred = tfidf_dec.levels(f_tf)
    models["tfidf"] = {"params": tfidf.n_params(), **model_metrics(levels, y, tf_pred),
                       "agreement_with_teacher": round(float((tf_pred == t_pred).mean()), 6),
                       "selective": selective_report(tfidf_dec, *_confident(tfidf_dec, f_tf, y), target, source)}
    models["tfidf"]["selective"]["link_only"] = link_only_report(
        tfidf_dec, _confident(_link_only(tfidf_dec), f_tf, y), target, source)
    models["teacher_onnx_int8"] = None

    if timings:
        n_single = config.timing_responses
        reps = 1 + 1000 // max(1, len(test))
        sp_texts, sp_q, sp_r = ((test.response * reps)[:1000], (test.question * reps)[:1000],
                                (test.reference_answer * reps)[:1000])
        small = min(len(test), 256)

        def student_score(texts):
            n = len(texts)
            return sess.run([oc.LEVEL], fz.transform(texts, sp_q[:n], sp_r[:n]))[0]

        models["student"].update(oc.time_scorer(student_score, sp_texts, n_single),
                                 onnx_bytes=(sess_path_size(sess)))
        torch_threads(1)
        try:
            def teacher_score(texts):
                sub = replace_rows(test, len(texts), texts)
                return teacher.predict(sub)

            models["teacher"].update(oc.time_scorer(teacher_score, test.response[:small], min(n_single, 30)))
            if config.teacher.export_int8 and tmpd is not None:
                say("teacher_onnx_int8", message="export + int8 quantisation", force=True)
                copies = []
                for k, fitted in enumerate(teacher.fitted):
                    fp32, int8 = tmpd / f"teacher-{k}.onnx", tmpd / f"teacher-{k}.int8.onnx"
                    tch.export_onnx(fitted.model, enc_test, fp32)
                    tch.quantize_int8(fp32, int8)
                    fp32.unlink()
                    copies.append(tch.OnnxTeacher(int8, threads=1))

                def int8_transformer(enc):
                    return np.mean([c.predict(enc) for c in copies], axis=0)

                f_int8 = teacher.predict(test, int8_transformer(enc_test))
                i8_pred = teacher.decoding.levels(f_int8)

                def int8_score(texts):
                    sub = replace_rows(test, len(texts), texts)
                    return teacher.predict(sub, int8_transformer(teacher.encode(sub)))

                models["teacher_onnx_int8"] = {
                    "params": models["teacher"]["params"], **model_metrics(levels, y, i8_pred),
                    **oc.time_scorer(int8_score, test.response[:small], min(n_single, 30)),
                    "onnx_bytes": sum((tmpd / f"teacher-{k}.int8.onnx").stat().st_size
                                      for k in range(len(copies))),
                    "agreement_with_teacher": round(float((i8_pred == t_pred).mean()), 6),
                }
        finally:
            torch_threads(config.threads)

    lv = np.asarray(levels)
    confusion, per_level, dist = confusion_report(levels, y, s_pred)
    groups = group_columns(test)
    hh = _human_human(test, levels)
    hh_source = "test"
    if hh is None:
        hh, hh_source = _human_human(sp_.labelled, levels), "training rows"
    entry = {
        "n_test": len(test),
        "test_source": sp_.test_source if test is sp_.test else test.path,
        "human_human_qwk": hh,
        "human_human_source": hh_source if hh is not None else None,
        "agreement_target": {"exact": round(target, 6), "source": source},
        "models": {k: models[k] for k in REPORT_MODELS},
        "human_gap_qwk": round(hh - models["student"]["qwk"], 6) if hh is not None else None,
        "confusion": confusion,
        "per_level": per_level,
        "distribution": dist,
        "groups": gates.group_breakdown(lv[y], lv[s_pred], groups, levels) if groups else {},
        "teacher_oof_qwk": round(qwk(teacher.decoding.heldout_y, teacher.decoding.levels(teacher.decoding.heldout_f),
                                     ks), 6),
        "decoding": {"teacher": teacher.decoding.to_dict(), "student": student.decoding.to_dict(),
                     **({"student_new_questions": student.new_questions.decoding.to_dict()}
                        if student.new_questions is not None else {})},
        # what the served student gave each test answer: the scorer must reproduce these exactly
        "test_predictions": {"response_id": list(test.response_id), "student": [int(lv[i]) for i in s_pred]},
    }
    return entry


def sess_path_size(sess) -> int | None:
    return None


def torch_threads(n: int) -> None:
    import torch

    torch.set_num_threads(max(1, n))


def replace_rows(ds: Dataset, n: int, texts: list[str]) -> Dataset:
    """The first ``n`` rows of ``ds`` with other response texts (for timing)."""
    sub = ds.select(range(n))
    sub.response = list(texts)
    return sub


def write_version(work: Path, item_id: str, sp_: Splits, fz: Featurizer, student: FittedStudent, entry: dict,
                  config: DistillConfig, seed: int, train: Dataset, unlabelled: Dataset | None) -> None:
    """The model-version files (docs/model_version.md), checksummed and verified."""
    from distillation import teacher as tch

    test = sp_.test
    k = min(PARITY_SAMPLE, len(test))
    sample = Features.compute(fz, test.response[:k], test.question[:k], test.reference_answer[:k])
    # What the numpy student gave at export, so a serving process can prove it reproduces it.
    artifact.write_json(work / "parity.json", {
        "responses": list(test.response[:k]), "questions": list(test.question[:k]),
        "references": list(test.reference_answer[:k]),
        "probabilities": [[float(x) for x in row] for row in student.model.predict_proba(sample)],
    })
    served = oc.run(oc.session(work / "model.onnx"), fz.transform(test.response[:k], test.question[:k],
                                                                  test.reference_answer[:k]))
    diff = oc.parity(student.model.predict_proba(sample), served[oc.PROBABILITIES])
    entry["models"]["student"]["parity_max_abs_diff"] = float(f"{diff:.3g}")
    entry["models"]["student"]["onnx_bytes"] = (work / "model.onnx").stat().st_size
    sel = entry["models"]["student"]["selective"]
    decoding = {**student.decoding.to_dict(), "confidence_threshold": sel["threshold"],
                "threshold_target": sel["target_agreement"], "threshold_target_source": sel["target_source"],
                "fitted_coverage": sel["coverage"], "test_coverage": sel["test"]["coverage"],
                "test_agreement": sel["test"]["agreement"], "ece": sel["ece"]}
    artifact.write_json(work / "featurizer.json", fz.to_state())
    artifact.write_json(work / "config.json", {
        "seed": seed,
        "item_id": item_id,
        "labels": sp_.levels,
        "distill": config.to_dict(),
        "teacher_checkpoint": config.teacher.checkpoint or tch.default_checkpoint(),
        "teacher_context": sp_.use_context,
        "pooled": item_id == POOLED,
        "data": {
            "train": {"path": train.path, "sha256": train.sha256},
            "test": {"path": test.path, "sha256": test.sha256} if sp_.test_source == test.path else None,
            "unlabelled": {"path": unlabelled.path, "sha256": unlabelled.sha256} if unlabelled else None,
        },
        "versions": _versions(),
    })
    artifact.write_json(work / "report.json", entry)
    artifact.write_manifest(work, item_id=item_id, labels=sp_.levels, inputs=list(fz.input_names),
                            opset=oc.OPSET, student_params=student.model.n_params(), parity_max_abs_diff=diff,
                            decoding=decoding, extra_files=("parity.json",))
    artifact.verify(work)


def _human_human(ds: Dataset, levels: list[int]) -> float | None:
    s2 = ds.score2()
    if s2 is None:
        return None
    pairs = [(a, b) for a, b in zip(ds.score, s2, strict=True) if b is not None]
    if not pairs:
        return None
    labs = sorted(set(levels) | {a for a, _ in pairs} | {b for _, b in pairs})
    return round(qwk([a for a, _ in pairs], [b for _, b in pairs], labs), 6)


def _versions() -> dict:
    import onnx
    import onnxruntime
    import sklearn
    import torch
    import transformers

    return {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "sklearn": sklearn.__version__}


def quality_view(report: dict) -> dict:
    """The report without timings (what the same seed must reproduce byte for byte)."""
    timing = {"ms_per_response", "responses_per_s", "seconds", "cache_seconds", "stage_seconds"}

    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in timing}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    return strip(report)
