"""The lexical model: TF-IDF (word 1-2 and character 2-5 grams, sublinear) + ridge regression on the
level index.  The strongest simple baseline, and half of the default teacher ensemble.  scikit-learn."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


class TfidfRidge:
    """``fit(texts, y)`` on level indices (or any continuous target); ``predict`` the continuous score."""

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    def fit(self, texts: Sequence[str], y: np.ndarray) -> TfidfRidge:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import Ridge
        from sklearn.pipeline import make_pipeline, make_union

        vec = make_union(
            TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, min_df=2, lowercase=True),
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2, lowercase=True),
        )
        self.model_ = make_pipeline(vec, Ridge(alpha=self.alpha)).fit(list(texts), np.asarray(y, dtype=np.float64))
        return self

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return self.model_.predict(list(texts))

    def n_params(self) -> int:
        ridge = self.model_[-1]
        return int(ridge.coef_.size + 1)


def fold_ids(n: int, folds: int, seed: int, y: np.ndarray | None = None) -> np.ndarray:
    """Fold of each row (stratified by ``y`` when given: each level spread over the folds)."""
    rng = np.random.RandomState(seed)
    out = np.zeros(n, dtype=np.int64)
    if y is None:
        out[rng.permutation(n)] = np.arange(n) % folds
        return out
    y = np.asarray(y)
    offset = 0
    for level in np.unique(y):
        rows = np.flatnonzero(y == level)
        out[rng.permutation(rows)] = (np.arange(len(rows)) + offset) % folds
        offset += len(rows)
    return out


def out_of_fold(fit_predict: Callable[[np.ndarray, np.ndarray], np.ndarray], n: int, folds: np.ndarray) -> np.ndarray:
    """Predictions of each row by a model fitted without its fold: ``fit_predict(train_rows, predict_rows)``."""
    out = np.zeros(n, dtype=np.float64)
    for k in np.unique(folds):
        held = np.flatnonzero(folds == k)
        out[held] = fit_predict(np.flatnonzero(folds != k), held)
    return out
