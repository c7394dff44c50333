"""Agreement metrics (numpy only): accuracy, quadratic weighted kappa, macro-F1."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _confusion(y_true, y_pred, labels: Sequence[int]) -> np.ndarray:
    index = {v: i for i, v in enumerate(labels)}
    k = len(labels)
    m = np.zeros((k, k), dtype=np.float64)
    for a, b in zip(y_true, y_pred, strict=True):
        m[index[int(a)], index[int(b)]] += 1
    return m


def qwk(y_true, y_pred, labels: Sequence[int]) -> float:
    """Cohen's kappa with quadratic weights over the ordered ``labels`` (1.0 = perfect agreement)."""
    labels = list(labels)
    if len(y_true) == 0:
        return float("nan")
    m = _confusion(y_true, y_pred, labels)
    k = len(labels)
    values = np.asarray(labels, dtype=np.float64)
    w = (values[:, None] - values[None, :]) ** 2
    w = w / max(w.max(), 1e-12)
    expected = np.outer(m.sum(1), m.sum(0)) / m.sum()
    denom = (w * expected).sum()
    if denom == 0:
        return 1.0 if (w * m).sum() == 0 else 0.0
    return float(1.0 - (w * m).sum() / denom) if k > 1 else 1.0


def accuracy(y_true, y_pred) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float((y_true == y_pred).mean()) if len(y_true) else float("nan")


def macro_f1(y_true, y_pred, labels: Sequence[int]) -> float:
    """Mean F1 over the labels present in y_true or y_pred."""
    m = _confusion(y_true, y_pred, labels)
    f1s = []
    for i in range(len(labels)):
        tp = m[i, i]
        support, predicted = m[i].sum(), m[:, i].sum()
        if support == 0 and predicted == 0:
            continue
        f1s.append(0.0 if tp == 0 else 2 * tp / (support + predicted))
    return float(np.mean(f1s)) if f1s else float("nan")


def scores(y_true, y_pred, labels: Sequence[int]) -> dict:
    return {
        "accuracy": round(accuracy(y_true, y_pred), 6),
        "qwk": round(qwk(y_true, y_pred, labels), 6),
        "macro_f1": round(macro_f1(y_true, y_pred, labels), 6),
    }
