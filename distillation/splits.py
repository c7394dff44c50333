"""The input files and one item's rows: reading and validating the files, the labelled / test split,
the agreement a model must reach to score alone (from ``score2`` where the data has it) and human-human
QWK."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from distillation.config import DistillConfig
from distillation.data import DataError, Dataset, check_labels, check_test, read_csv, stratified_split
from distillation.metrics import qwk

POOLED = "pooled"


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


def agreement_target(ds: Dataset, default: float) -> tuple[float, str]:
    """Exact agreement of the two human ratings where ``score2`` exists, else the configured default."""
    s2 = ds.score2()
    pairs = [(a, b) for a, b in zip(ds.score, s2 or [], strict=False) if b is not None] if s2 else []
    if len(pairs) >= 20:
        return float(np.mean([a == b for a, b in pairs])), "human-human exact agreement"
    return default, "default"


def human_human(ds: Dataset, levels: list[int]) -> float | None:
    """QWK between ``score`` and ``score2`` on the rows that have both; None without a second rating."""
    s2 = ds.score2()
    if s2 is None:
        return None
    pairs = [(a, b) for a, b in zip(ds.score, s2, strict=True) if b is not None]
    if not pairs:
        return None
    labs = sorted(set(levels) | {a for a, _ in pairs} | {b for _, b in pairs})
    return round(qwk([a for a, _ in pairs], [b for _, b in pairs], labs), 6)
