"""Ordinal decoding and calibrated confidence for a continuous score (numpy only).

Every model here (teacher, student, baselines) predicts one number per answer on the rubric's scale
(an expected score or a regression output).  It becomes a rubric level through cut-points fitted to
maximise quadratic weighted kappa on out-of-fold predictions, not through rounding: QWK rewards a model
whose errors are small, and rounding wastes what a regression knows about where the level boundaries are.

Probabilities per level come from a cumulative-logit link around the same cut-points,
``P(level <= k) = sigmoid((c_k - f) / s)``, with the one scale ``s`` fitted on the same held-out
predictions by likelihood: so the decoded level is the interval ``f`` falls in, and the level's
probability says how close ``f`` lies to a boundary, measured on answers the model did not train on.

The link's one scale is the same near every cut-point and every level, and real errors are not: on
ASAP-SAS prompts 1 and 2 the answers placed deep inside the top level were right less often than their
link probability said, those near a boundary more often.  ``fit_calibration`` therefore fits a
matrix scaling on top of the link, on the same held-out predictions: ``p' = softmax(W log p + b)``
(``k x k + k`` numbers, shrunk towards the identity), which ``calibrated_probabilities`` applies.  It
changes the probabilities, never the decoded level.

``choose_threshold`` then picks the confidence above which the model may score alone: the largest share
of answers whose exact agreement with the human is at least the target (human-human exact agreement).

``Decoding`` holds one model's cut-points, scale and calibration fitted on its held-out scores, and gives
their levels, probabilities, confidences and threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

N_GRID = 64
ROUNDS = 3


def _qwk_idx(y: np.ndarray, pred: np.ndarray, k: int, w: np.ndarray, hist_y: np.ndarray) -> float:
    m = np.bincount(y * k + pred, minlength=k * k).reshape(k, k).astype(np.float64)
    expected = np.outer(hist_y, m.sum(0)) / len(y)
    denom = (w * expected).sum()
    if denom == 0:
        return 1.0 if (w * m).sum() == 0 else 0.0
    return 1.0 - (w * m).sum() / denom


def decode(f: np.ndarray, cuts: Sequence[float]) -> np.ndarray:
    """Level index of each continuous prediction: the number of cut-points it exceeds."""
    return np.searchsorted(np.asarray(cuts, dtype=np.float64), np.asarray(f, dtype=np.float64), side="left")


def fit_cutpoints(f: np.ndarray, y: np.ndarray, n_levels: int) -> np.ndarray:
    """Cut-points (``n_levels - 1``, increasing) maximising QWK of ``decode(f)`` against level indices ``y``.

    Starts from the midpoints between levels (rounding) and improves one cut-point at a time over a
    grid of candidate values between its neighbours; deterministic."""
    f = np.asarray(f, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    k = n_levels
    cuts = np.arange(k - 1, dtype=np.float64) + 0.5
    if k < 2 or len(f) == 0:
        return cuts
    w = (np.arange(k)[:, None] - np.arange(k)[None, :]) ** 2 / max((k - 1) ** 2, 1)
    hist_y = np.bincount(y, minlength=k).astype(np.float64)
    best = _qwk_idx(y, decode(f, cuts), k, w, hist_y)
    lo_all, hi_all = float(f.min()) - 1e-6, float(f.max()) + 1e-6
    for _ in range(ROUNDS):
        improved = False
        for j in range(k - 1):
            lo = cuts[j - 1] if j > 0 else min(lo_all, cuts[j] - 1.0)
            hi = cuts[j + 1] if j < k - 2 else max(hi_all, cuts[j] + 1.0)
            inside = f[(f > lo) & (f < hi)]
            cands = np.unique(np.concatenate([np.linspace(lo, hi, N_GRID + 2)[1:-1],
                                              np.quantile(inside, np.linspace(0, 1, N_GRID)) if len(inside) else []]))
            for c in cands:
                if not (lo < c < hi):
                    continue
                trial = cuts.copy()
                trial[j] = c
                q = _qwk_idx(y, decode(f, trial), k, w, hist_y)
                if q > best + 1e-12:
                    best, cuts, improved = q, trial, True
        if not improved:
            break
    return cuts


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def level_probabilities(f: np.ndarray, cuts: Sequence[float], scale: float) -> np.ndarray:
    """``[n, len(cuts) + 1]`` probabilities of each level under the cumulative-logit link."""
    f = np.asarray(f, dtype=np.float64)
    c = np.asarray(cuts, dtype=np.float64)
    cum = _sigmoid((c[None, :] - f[:, None]) / scale)
    cum = np.concatenate([np.zeros((len(f), 1)), cum, np.ones((len(f), 1))], axis=1)
    return np.clip(np.diff(cum, axis=1), 0.0, 1.0)


def fit_scale(f: np.ndarray, y: np.ndarray, cuts: Sequence[float]) -> float:
    """The link's scale ``s`` minimising the negative log-likelihood of the held-out levels ``y``."""
    f = np.asarray(f, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if len(f) == 0:
        return 0.25

    def nll(log_s: float) -> float:
        p = level_probabilities(f, cuts, float(np.exp(log_s)))[np.arange(len(y)), y]
        return float(-np.log(np.maximum(p, 1e-12)).mean())

    a, b = np.log(0.01), np.log(5.0)  # golden-section search on log s
    g = (np.sqrt(5) - 1) / 2
    x1, x2 = b - g * (b - a), a + g * (b - a)
    f1, f2 = nll(x1), nll(x2)
    for _ in range(60):
        if f1 < f2:
            b, x2, f2 = x2, x1, f1
            x1 = b - g * (b - a)
            f1 = nll(x1)
        else:
            a, x1, f1 = x1, x2, f2
            x2 = a + g * (b - a)
            f2 = nll(x2)
    return float(np.exp((a + b) / 2))


CALIBRATION_SHRINK = 10.0  # penalty on (W - I, b), divided by the number of held-out answers
_LOG_FLOOR = 1e-6  # probabilities are floored before the log (the ONNX twin does the same)


def _log_probabilities(p: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(p, _LOG_FLOOR))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_calibration(f: np.ndarray, y: np.ndarray, cuts: Sequence[float], scale: float,
                    shrink: float = CALIBRATION_SHRINK) -> np.ndarray:
    """Matrix scaling of the link's probabilities, fitted on held-out predictions ``f`` and their levels
    ``y`` by likelihood with a penalty ``shrink / n`` on the distance from the identity: ``[k, k + 1]``,
    ``W`` then ``b`` in the last column (``calibrated_probabilities``).  Deterministic (L-BFGS from the
    identity)."""
    from scipy.optimize import minimize

    f = np.asarray(f, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    k = len(cuts) + 1
    identity = np.hstack([np.eye(k), np.zeros((k, 1))])
    if len(f) == 0 or k < 2:
        return identity
    logp = _log_probabilities(level_probabilities(f, cuts, scale))
    onehot = np.eye(k)[y]
    penalty = shrink / len(f)

    def loss(x: np.ndarray) -> tuple[float, np.ndarray]:
        wb = x.reshape(k, k + 1)
        p = _softmax(logp @ wb[:, :k].T + wb[:, k])
        nll = -np.log(np.maximum(p[np.arange(len(y)), y], 1e-300)).mean()
        d = wb - identity
        grad_z = (p - onehot) / len(y)  # d mean-NLL / d logits
        grad = np.hstack([grad_z.T @ logp, grad_z.sum(axis=0)[:, None]]) + 2 * penalty * d
        return float(nll + penalty * (d**2).sum()), grad.ravel()

    res = minimize(loss, identity.ravel(), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return res.x.reshape(k, k + 1)


def calibrated_probabilities(f: np.ndarray, cuts: Sequence[float], scale: float,
                             calibration: np.ndarray | None) -> np.ndarray:
    """``level_probabilities`` through the matrix scaling ``calibration`` (None: the link alone)."""
    p = level_probabilities(f, cuts, scale)
    if calibration is None:
        return p
    c = np.asarray(calibration, dtype=np.float64)
    k = p.shape[1]
    return _softmax(_log_probabilities(p) @ c[:, :k].T + c[:, k])


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """ECE: the mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if len(confidence) == 0:
        return float("nan")
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            total += sel.sum() * abs(correct[sel].mean() - confidence[sel].mean())
    return float(total / len(confidence))


@dataclass(frozen=True)
class Selective:
    """Where the model may score alone: confidence >= threshold."""

    threshold: float
    target_agreement: float
    target_source: str  # "human-human exact agreement" or "default"
    coverage: float  # share of the fitted answers at or above the threshold
    agreement: float | None  # their exact agreement with the human

    def to_dict(self) -> dict:
        return asdict(self)


MIN_AUTO = 10  # fewer confident answers than this are too few to trust a measured agreement


def choose_threshold(confidence: np.ndarray, correct: np.ndarray, target: float,
                     target_source: str = "default") -> Selective:
    """The lowest confidence threshold (largest share scored alone) whose answers, fitted held-out,
    agree exactly with the human at least ``target`` of the time.  Nothing qualifies: threshold 1.01
    (every answer goes to the teacher)."""
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=np.float64)
    order = np.argsort(-conf, kind="stable")
    c_sorted, ok_sorted = conf[order], ok[order]
    agree = np.cumsum(ok_sorted) / np.arange(1, len(ok_sorted) + 1)
    # a threshold can only sit at a distinct confidence value: the last index of each run of ties
    last_of_tie = np.ones(len(c_sorted), dtype=bool)
    last_of_tie[:-1] = c_sorted[1:] < c_sorted[:-1]
    good = np.flatnonzero((agree >= target) & last_of_tie & (np.arange(len(c_sorted)) + 1 >= MIN_AUTO))
    if len(good) == 0:
        return Selective(1.01, round(target, 6), target_source, 0.0, None)
    i = int(good[-1])
    return Selective(round(float(c_sorted[i]), 6), round(target, 6), target_source,
                     round((i + 1) / len(c_sorted), 6), round(float(agree[i]), 6))


def selective_metrics(confidence: np.ndarray, correct: np.ndarray, threshold: float) -> dict:
    """Coverage and exact agreement of the answers at or above ``threshold`` (e.g. on the test split)."""
    conf = np.asarray(confidence, dtype=np.float64)
    sel = conf >= threshold
    ok = np.asarray(correct, dtype=np.float64)
    return {"coverage": round(float(sel.mean()), 6) if len(sel) else 0.0,
            "agreement": round(float(ok[sel].mean()), 6) if sel.any() else None}


@dataclass
class Decoding:
    """Cut-points and link scale fitted on held-out predictions, and what they give there."""

    cuts: np.ndarray
    scale: float
    heldout_f: np.ndarray
    heldout_y: np.ndarray
    calibration: np.ndarray | None = None  # matrix scaling of the link's probabilities (fit_calibration)

    @classmethod
    def fit(cls, f: np.ndarray, y: np.ndarray, n_levels: int, calibrate: bool = True) -> Decoding:
        """Cut-points, scale and (``calibrate``) the matrix scaling.  A search that compares candidates by
        their decoded levels alone passes ``calibrate=False`` and calibrates the winner
        (``with_calibration``): the scaling never changes a level, and it is most of the fitting time."""
        cuts = fit_cutpoints(f, y, n_levels)
        scale = fit_scale(f, y, cuts)
        dec = cls(cuts, scale, np.asarray(f), np.asarray(y))
        return dec.with_calibration() if calibrate else dec

    def with_calibration(self) -> Decoding:
        """This decoding with its matrix scaling fitted on its held-out predictions."""
        if self.calibration is not None:
            return self
        cal = fit_calibration(self.heldout_f, self.heldout_y, self.cuts, self.scale)
        return Decoding(self.cuts, self.scale, self.heldout_f, self.heldout_y, cal)

    def levels(self, f: np.ndarray) -> np.ndarray:
        return decode(f, self.cuts)

    def probabilities(self, f: np.ndarray) -> np.ndarray:
        return calibrated_probabilities(f, self.cuts, self.scale, self.calibration)

    def confidence(self, f: np.ndarray) -> np.ndarray:
        return self.probabilities(f)[np.arange(len(f)), self.levels(f)]

    def threshold(self, target: float, source: str) -> Selective:
        f, y = self.heldout_f, self.heldout_y
        return choose_threshold(self.confidence(f), self.levels(f) == y, target, source)

    def to_dict(self) -> dict:
        out = {"cut_points": [round(float(c), 6) for c in self.cuts], "scale": round(self.scale, 6)}
        if self.calibration is not None:
            out["calibration"] = [[round(float(x), 6) for x in row] for row in self.calibration]
        return out
