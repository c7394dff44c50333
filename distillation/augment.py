"""Augmented copies of training responses, for the teacher to label (numpy RNG, deterministic)."""

from __future__ import annotations

import re

import numpy as np

_CLAUSE = re.compile(r"(?<=[.;,!?])\s+|\s+(?=\b(?:and|but|because|so|then)\b)")


def augment(text: str, rng: np.random.RandomState, word_dropout: float = 0.15) -> str:
    """One perturbed copy: word dropout, clause shuffle, or truncation (chosen at random)."""
    words = text.split()
    if len(words) < 3:
        return text
    kind = rng.randint(3)
    if kind == 0:
        keep = rng.rand(len(words)) >= word_dropout
        if keep.sum() == 0:
            keep[rng.randint(len(words))] = True
        return " ".join(w for w, k in zip(words, keep, strict=True) if k)
    if kind == 1:
        clauses = [c for c in _CLAUSE.split(text) if c and c.strip()]
        if len(clauses) >= 2:
            return " ".join(clauses[i] for i in rng.permutation(len(clauses)))
        keep = rng.rand(len(words)) >= word_dropout
        return " ".join(w for w, k in zip(words, keep, strict=True) if k) or text
    cut = max(1, round(len(words) * rng.uniform(0.5, 0.9)))
    return " ".join(words[:cut])


def augment_many(texts: list[str], copies: int, seed: int, word_dropout: float = 0.15) -> tuple[list[str], np.ndarray]:
    """``copies`` perturbed copies of each text; returns (texts, index of the source text)."""
    rng = np.random.RandomState(seed)
    out, src = [], []
    for _ in range(copies):
        for i, t in enumerate(texts):
            out.append(augment(t, rng, word_dropout))
            src.append(i)
    return out, np.asarray(src, dtype=np.int64)
