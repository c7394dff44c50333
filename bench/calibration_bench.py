"""What the link's matrix scaling does to the probabilities, on every shared data set, in minutes: the
student without the teacher and the TF-IDF ridge (fitted by `distill`'s own functions; no transformer is
trained, so the student's folds are the stratified ones `distill` uses without a cross-fitted teacher,
not the teacher's, and its figures differ a little from the report's), each with the cumulative-logit
link alone and with the scaling.  The levels, and so QWK, are the same both ways: only probabilities,
and what is chosen from them, move.

    .venv/bin/python bench/calibration_bench.py [--datasets asap-1 asap-2 ... scientsbank]

Prints one table: test ECE (the decoded level's probability), test negative log-likelihood of the human
level, and coverage (exact agreement) at the agreement target, the threshold fitted out of fold as
`distill` fits it.  The full recipe's figures, teacher and distilled student included, come from
`distill_bench.py` (its report keeps the link alone's coverage and ECE beside the scaled ones).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("KDGRADE_DATASETS", ROOT.parent / "shared" / "datasets"))
DATASETS = ("asap-1", "asap-2", "asap-5", "asap-6", "scientsbank")


def _nll(p: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(np.maximum(p[np.arange(len(y)), y], 1e-12)).mean())


def _row(dec, f: np.ndarray, y: np.ndarray, target: float) -> tuple[float, float, float, float | None]:
    """ECE, NLL, test coverage and agreement at the threshold fitted on ``dec``'s held-out predictions."""
    from distillation import ordinal

    p = dec.probabilities(f)
    level = dec.levels(f)
    conf, correct = p[np.arange(len(f)), level], level == y
    sel = dec.threshold(target, "bench")
    m = ordinal.selective_metrics(conf, correct, sel.threshold)
    return ordinal.expected_calibration_error(conf, correct), _nll(p, y), m["coverage"], m["agreement"]


def run(name: str, seed: int = 0) -> list[str]:
    from distillation import splits
    from distillation.config import DistillConfig
    from distillation.data import read_csv
    from distillation.features import Featurizer, question_key
    from distillation.splits import make_splits
    from distillation.student import Features
    from distillation.student_fit import StudentData, fit_new_question_branch, fit_student, fit_tfidf

    config = DistillConfig()
    scfg = config.student
    if name == "scientsbank":
        sb = DATA / "scientsbank"
        train, test, _, labels = splits.load_inputs(sb / "train.csv", sb / "test_unseen_answers.csv", pooled=True)
        extra = {"unseen questions": read_csv(sb / "test_unseen_questions.csv")}
        item = splits.POOLED
    else:
        prompt = name.split("-")[1]
        a = DATA / "asap_sas"
        train, test, _, labels = splits.load_inputs(a / "train.csv", a / "test.csv")
        pick = lambda ds: ds.select([i for i, x in enumerate(ds.item_id) if x == prompt])  # noqa: E731
        train, test, extra, item = pick(train), pick(test), {}, prompt
    levels = labels[item]
    sp_ = make_splits(train, test, None, levels, config, seed)
    pooled = sp_.pooled_context
    known = sorted({question_key(q) for q in sp_.labelled.question}) if pooled else None
    fz = Featurizer(n_buckets=scfg.n_buckets, word_ngrams=scfg.word_ngrams, char_ngrams=scfg.char_ngrams,
                    use_reference=True, cross_question=pooled, known_questions=known)
    lab = sp_.labelled
    feats = Features.compute(fz, lab.response, lab.question, lab.reference_answer)
    questions = None
    if pooled:
        index: dict = {}
        questions = np.array([index.setdefault(question_key(q), len(index)) for q in lab.question])
    y_lab = sp_.y(lab)
    data = StudentData(feats, y_lab, np.zeros(len(lab)), len(lab), questions=questions)
    quiet = lambda *a, **k: None  # noqa: E731
    new_q = fit_new_question_branch(data, levels, scfg, fz.seen_column, quiet) if known else None
    no_kd = fit_student(data, levels, scfg, seed + 3, distil=False, stagewise=pooled, say=quiet, name="no KD",
                        new_questions=new_q)
    tfidf, tfidf_dec = fit_tfidf(sp_, scfg, seed + 4)
    target, _ = splits.agreement_target(lab, scfg.default_agreement)
    lines = []
    for test_name, ds in {"test": sp_.test, **extra}.items():
        y = sp_.y(ds)
        tf = Features.compute(fz, ds.response, ds.question, ds.reference_answer)
        f = no_kd.model.decision_function(tf)
        # a pooled student scores a question it was not trained on by its own branch and decoding
        new = tf.dense[:, fz.seen_column] < 0.5 if known else np.zeros(len(ds), dtype=bool)
        f_tf = tfidf.predict(ds.response)
        for model, dec, ff, yy in (("student, no KD", no_kd.decoding, f[~new], y[~new]),
                                   ("student, no KD: new questions", new_q.decoding if new_q else None, f[new], y[new]),
                                   ("TF-IDF ridge", tfidf_dec, f_tf, y)):
            if dec is None or len(ff) == 0:
                continue
            before = _row(replace(dec, calibration=None), ff, yy, target)
            after = _row(dec, ff, yy, target)
            cov = lambda r: f"{r[2]:.0%} ({'-' if r[3] is None else f'{r[3]:.3f}'})"  # noqa: E731
            lines.append(f"| {name} {test_name} | {model} | {len(ff)} | {before[0]:.3f} -> **{after[0]:.3f}** | "
                         f"{before[1]:.3f} -> {after[1]:.3f} | {cov(before)} -> {cov(after)} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="*", default=list(DATASETS), choices=DATASETS)
    args = ap.parse_args()
    print("| data set | model | test answers | ECE: link -> scaled | NLL: link -> scaled "
          "| coverage (agreement) at target: link -> scaled |")
    print("|---|---|---|---|---|---|")
    for name in args.datasets:
        for line in run(name):
            print(line, flush=True)


if __name__ == "__main__":
    main()
