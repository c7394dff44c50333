"""The teacher stage of ``distill``: the transformer cross-fitted over folds (``distillation.teacher``),
its lexical half, their ensemble weight and its decoding, all chosen on out-of-fold scores; and the
report's one-sentence description of it (``teacher_recipe``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from distillation.config import DistillConfig
from distillation.data import Dataset
from distillation.lexical import TfidfRidge, fold_ids
from distillation.metrics import qwk
from distillation.ordinal import Decoding
from distillation.splits import Splits


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
            q = qwk(y, Decoding.fit(f, y, len(sp_.levels), calibrate=False).levels(f), list(range(len(sp_.levels))))
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


def teacher_recipe(config: DistillConfig, teacher: TeacherResult) -> str:
    """One sentence for the report: the backbone, what was trained on which device, the ensemble."""
    name = config.teacher.checkpoint or "all-MiniLM-L6-v2"
    log = teacher.log
    part = (f"{name} regression, top {log['trained_layers']} of {log['trained_layers'] + log['frozen_layers']} "
            f"layers trained on {log['device']}"
            + (f" in {log['mixed_precision']}" if log.get("mixed_precision") else "")
            + f", mean of {len(teacher.fitted)} cross-fitted copies")
    if teacher.lexical is not None and teacher.weight > 0:
        return f"ensemble: {1 - teacher.weight:.2f} x {part} + {teacher.weight:.2f} x TF-IDF ridge"
    return part
