"""Does the student learn more from the teacher when the teacher also scores altered copies of the
training answers?  (An experiment, not the product's recipe.)

For each ASAP-SAS item: the teacher is cross-fitted exactly as ``distill`` fits it; then three kinds of
variants of every training answer are made and scored by every teacher copy:

* ``sentence-drop``: the answer without one of its sentences (up to 4 variants an answer);
* ``span-drop``: the answer without a random run of 25-40% of its words (2 variants, answers of 8+ words);
* ``splice``: the first half of the answer's sentences (or words) joined to the second half of another
  training answer's (1 variant).

The variants join the student's rows with the teacher's score as their only target (the way unscored
answers do).  The teacher weight and ridge strength are chosen on out-of-fold predictions, as
``distill`` chooses them, except that a fold's fit never sees a variant made from one of the fold's
answers, and a variant's target comes from the copy that never saw the held-out fold.  Printed per item:
out-of-fold QWK (what ``distill`` would choose by), test QWK and exact agreement (cut-points fitted out of
fold, as served), and test QWK with cut-points fitted on the test answers themselves (the ranking alone,
a diagnostic, not a result).

    .venv/bin/python bench/augment_bench.py --items 2 6
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from distillation.config import DistillConfig  # noqa: E402
from distillation.features import Featurizer  # noqa: E402
from distillation.metrics import qwk  # noqa: E402
from distillation.ordinal import Decoding  # noqa: E402
from distillation.splits import load_inputs, make_splits  # noqa: E402
from distillation.student import Features, LinearStudent  # noqa: E402
from distillation.teacher import set_threads  # noqa: E402
from distillation.teacher_fit import fit_teacher  # noqa: E402

DATA = Path(os.environ.get("KDGRADE_DATASETS", ROOT.parent / "shared" / "datasets")) / "asap_sas"
KINDS = ("sentence-drop", "span-drop", "splice")
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n+")


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def variants(texts: list[str], seed: int) -> dict[str, tuple[np.ndarray, list[str]]]:
    """Per kind: the source rows of each variant (``[n, 2]``: the answer, and the other answer of a
    splice or the same one again) and the variants' texts."""
    rng = np.random.RandomState(seed)
    out: dict[str, tuple[list, list]] = {k: ([], []) for k in KINDS}

    def add(kind, src, text):
        out[kind][0].append(src)
        out[kind][1].append(text)

    for i, text in enumerate(texts):
        parts = sentences(text)
        if len(parts) >= 2:
            for j in rng.permutation(len(parts))[:4]:
                add("sentence-drop", (i, i), " ".join(parts[:j] + parts[j + 1:]))
        words = text.split()
        if len(words) >= 8:
            for _ in range(2):
                span = max(2, int(len(words) * rng.uniform(0.25, 0.4)))
                s = rng.randint(0, len(words) - span + 1)
                add("span-drop", (i, i), " ".join(words[:s] + words[s + span:]))
        other = rng.randint(len(texts))
        a, b = parts, sentences(texts[other])
        if len(a) < 2 or len(b) < 2:
            a, b = text.split(), texts[other].split()
        add("splice", (i, other), " ".join(a[: len(a) // 2] + b[len(b) // 2:]))
    return {k: (np.array(src, dtype=np.int64).reshape(-1, 2), txt) for k, (src, txt) in out.items()}


def fit_and_score(X, y, by_copy, folds, Xa, src, by_copy_a, Xt, yt, n_levels, cfg) -> dict:
    """Choose (teacher weight, alpha) out of fold, fit the final student, score the test answers."""
    ks, levels = np.unique(folds), list(range(n_levels))
    best = None
    for w, alpha in itertools.product(cfg.teacher_weights, cfg.alphas):
        oof = np.zeros(len(y))
        for c, k in enumerate(ks):
            held, train = np.flatnonzero(folds == k), np.flatnonzero(folds != k)
            keep = np.flatnonzero((folds[src[:, 0]] != k) & (folds[src[:, 1]] != k))
            target = w * by_copy[c] + (1 - w) * y
            rows = X[train] if Xa is None else X[train].concat(Xa[keep])
            t = np.concatenate([target[train], by_copy_a[c][keep]])
            oof[held] = LinearStudent(alpha, cfg.dense_weight).fit(rows, t).decision_function(X[held])
        dec = Decoding.fit(oof, y, n_levels)
        q = qwk(y, dec.levels(oof), levels)
        if best is None or q > best[0] + 1e-9:
            best = (q, w, alpha, dec)
    q, w, alpha, dec = best
    rows = X if Xa is None else X.concat(Xa)
    t = np.concatenate([w * by_copy.mean(axis=0) + (1 - w) * y, by_copy_a.mean(axis=0)])
    f = LinearStudent(alpha, cfg.dense_weight).fit(rows, t).decision_function(Xt)
    pred = dec.levels(f)
    ranking = qwk(yt, Decoding.fit(f, yt, n_levels).levels(f), levels)
    return {"n_variants": len(src), "oof_qwk": round(q, 4), "teacher_weight": w, "alpha": alpha,
            "test_qwk": round(qwk(yt, pred, levels), 4), "test_exact": round(float((pred == yt).mean()), 4),
            "test_qwk_test_cuts": round(ranking, 4)}


def run_item(item: str, threads: int, seed: int) -> dict:
    train, test, _, labels = load_inputs(DATA / "train.csv", DATA / "test.csv")
    config = DistillConfig(threads=threads)
    cfg = config.student
    set_threads(threads)
    sp_ = make_splits(train.for_item(item), test.for_item(item), None, labels[item], config, seed)
    t0 = time.monotonic()
    teacher = fit_teacher(sp_, config, seed, lambda *a, **k: None)
    teacher_s = time.monotonic() - t0
    lab, tst = sp_.labelled, sp_.test
    y, yt, k = sp_.y(lab), sp_.y(tst), len(labels[item])
    fz = Featurizer(n_buckets=cfg.n_buckets, word_ngrams=cfg.word_ngrams, char_ngrams=cfg.char_ngrams,
                    use_reference=True)
    X = Features.compute(fz, lab.response, lab.question, lab.reference_answer)
    Xt = Features.compute(fz, tst.response, tst.question, tst.reference_answer)
    made = variants(lab.response, seed + 7)
    scored = {}
    t1 = time.monotonic()
    for kind, (src, texts) in made.items():
        ds = lab.select(src[:, 0])
        ds.response = texts
        scored[kind] = (src, Features.compute(fz, texts, ds.question, ds.reference_answer), teacher.per_copy(ds))
    variants_s = time.monotonic() - t1
    rows = {}
    empty = (np.zeros((0, 2), np.int64), None, np.zeros((len(teacher.fitted), 0)))
    for combo in [(), *[(kind,) for kind in KINDS], KINDS]:
        parts = [scored[kind] for kind in combo] or [empty]
        src = np.concatenate([p[0] for p in parts])
        Xa = None if not combo else parts[0][1]
        for p in parts[1:]:
            Xa = Xa.concat(p[1])
        by_copy_a = np.concatenate([p[2] for p in parts], axis=1)
        rows["+".join(combo) or "none"] = fit_and_score(X, y, teacher.by_copy, teacher.folds, Xa, src, by_copy_a,
                                                         Xt, yt, k, cfg)
    return {"n_train": len(lab), "n_test": len(tst), "teacher_seconds": round(teacher_s, 1),
            "variant_scoring_seconds": round(variants_s, 1), "students": rows}


def table(item: str, entry: dict) -> str:
    lines = [f"### ASAP-SAS prompt {item} ({entry['n_train']} training / {entry['n_test']} test answers; "
             f"teacher {entry['teacher_seconds'] / 60:.1f} min, scoring the variants "
             f"{entry['variant_scoring_seconds'] / 60:.1f} min)", "",
             "| variants | rows | out-of-fold QWK (teacher weight, alpha) | test QWK | test exact | "
             "test QWK, cut-points fitted on test |", "|---|---|---|---|---|---|"]
    for name, r in entry["students"].items():
        lines.append(f"| {name} | {r['n_variants']} | {r['oof_qwk']:.4f} ({r['teacher_weight']:g}, {r['alpha']:g}) "
                     f"| {r['test_qwk']:.4f} | {r['test_exact']:.3f} | {r['test_qwk_test_cuts']:.4f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", nargs="+", default=["1", "2", "5", "6"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    results = {}
    for item in args.items:
        results[item] = run_item(item, args.threads, args.seed)
        print(table(item, results[item]) + "\n", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
