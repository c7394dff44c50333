"""Sizes of the word-CNN form within the 50,000-parameter budget, compared out of fold (how the default
of ``StudentConfig.word_cnn_*`` was chosen on 2026-12-04; results in bench/results/cnn_student.md).

    .venv/bin/python bench/cnn_sizes_bench.py [--items 2 1 5 6] [--beyond-budget]

For each ASAP-SAS prompt: the teacher is cross-fitted as ``distill`` fits it (``fit_teacher``, seed 0),
then the linear student and each size of the word-CNN form are fitted by ``fit_student`` exactly as
``distill`` fits them (the teacher's folds, the CNN's share chosen out of fold; seed 3, as ``distill``
with seed 0).  Prints parameters, the CNN's share, out-of-fold QWK (what a choice may use) and test QWK.
``distill`` serves the word-CNN form where its out-of-fold QWK beats the linear student's by more than
``word_cnn_margin``.  Needs the training requirements (torch); about 6 minutes a prompt on 2 cores.

``--beyond-budget`` fits larger students instead (not the product's: what lifting the 50,000-parameter
budget would buy): a linear bag of 196,608 buckets, and the word-CNN form at two larger sizes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("KDGRADE_DATASETS", ROOT.parent / "shared" / "datasets"))

SIZES = {  # name: StudentConfig overrides (None: the configuration's own)
    "bag 12,288, 2,000 words x 16, 32 channels (before 2026-12-04)": dict(
        word_cnn_buckets=12288, word_cnn_vocabulary=2000, word_cnn_dim=16, word_cnn_channels=32),
    "bag 8,192, 1,500 words x 24, 48 channels": dict(
        word_cnn_buckets=8192, word_cnn_vocabulary=1500, word_cnn_dim=24, word_cnn_channels=48),
    "bag 4,096, 1,200 words x 32, 64 channels": dict(
        word_cnn_buckets=4096, word_cnn_vocabulary=1200, word_cnn_dim=32, word_cnn_channels=64),
    "bag 12,288, 900 words x 32, 64 channels": dict(
        word_cnn_buckets=12288, word_cnn_vocabulary=900, word_cnn_dim=32, word_cnn_channels=64),
}

BEYOND = {  # larger than the budget: the question "would more parameters reach the targets?"
    "bag 49,152, 4,000 words x 32, 64 channels": dict(
        word_cnn_buckets=49152, word_cnn_vocabulary=4000, word_cnn_dim=32, word_cnn_channels=64),
    "bag 196,608, 4,000 words x 64, 128 channels": dict(
        word_cnn_buckets=196608, word_cnn_vocabulary=4000, word_cnn_dim=64, word_cnn_channels=128),
}
BEYOND_LINEAR = 196608  # buckets of a linear bag alone, beside the default's


def run(prompt: str, train, test, labels, beyond: bool = False) -> list[str]:
    from distillation.config import DistillConfig
    from distillation.features import Featurizer
    from distillation.metrics import qwk
    from distillation.splits import make_splits
    from distillation.student import Features
    from distillation.student_fit import fit_student, soft_targets, word_student_inputs
    from distillation.teacher import set_threads
    from distillation.teacher_fit import fit_teacher

    def quiet(*_a, **_k):
        return None

    config = DistillConfig()
    set_threads(config.threads)
    t0 = time.monotonic()
    levels = labels[prompt]
    sp_ = make_splits(train.for_item(prompt), test.for_item(prompt), None, levels, config, 0)
    teacher = fit_teacher(sp_, config, 0, quiet)
    te, lv = sp_.test, list(range(len(levels)))
    yt = sp_.y(te)
    lines = [f"| {prompt} | teacher | | | {teacher.log.get('lexical_weight_oof_qwk', 0):.4f} | "
             f"{qwk(yt, teacher.decoding.levels(teacher.predict(te)), lv):.4f} |"]

    def row(name, st, fz) -> str:
        pred = st.model.predict_levels(Features.compute(fz, te.response, te.question, te.reference_answer))
        return (f"| {prompt} | {name} | {st.model.n_params():,} | {st.words_share:g} | {st.oof_qwk:.4f} | "
                f"{qwk(yt, pred, lv):.4f} |")

    s = config.student
    fz = Featurizer(n_buckets=s.n_buckets, word_ngrams=s.word_ngrams, char_ngrams=s.char_ngrams, use_reference=True)
    data = soft_targets(sp_, teacher, fz, quiet)
    lines.append(row(f"linear, {s.n_buckets:,} buckets", fit_student(data, levels, s, 3, distil=True,
                                                                     stagewise=False, say=quiet, name="x"), fz))
    print(lines[0], lines[1], sep="\n", flush=True)
    if beyond:
        fz_big = Featurizer(n_buckets=BEYOND_LINEAR, word_ngrams=s.word_ngrams, char_ngrams=s.char_ngrams,
                            use_reference=True)
        data_big = soft_targets(sp_, teacher, fz_big, quiet)
        lines.append(row(f"linear, {BEYOND_LINEAR:,} buckets", fit_student(
            data_big, levels, s, 3, distil=True, stagewise=False, say=quiet, name="x"), fz_big))
        print(lines[-1], flush=True)
    for name, kw in (BEYOND if beyond else SIZES).items():
        cfg = config.with_student(**kw)
        fz_w, data_w, init = word_student_inputs(sp_, teacher, data, cfg, False)
        st = fit_student(data_w, levels, cfg.student, 3, distil=True, stagewise=False, say=quiet, name="x",
                         words_init=init)
        lines.append(row(name, st, fz_w))
        print(lines[-1], flush=True)
    lines.append(f"| {prompt} | ({(time.monotonic() - t0) / 60:.1f} min) | | | | |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", nargs="*", default=["2", "1", "5", "6"])
    ap.add_argument("--beyond-budget", action="store_true", help="larger students than the budget allows")
    args = ap.parse_args()
    from distillation.splits import load_inputs

    a = DATA / "asap_sas"
    train, test, _, labels = load_inputs(a / "train.csv", a / "test.csv")
    header = ["| prompt | student | params | CNN share | out-of-fold QWK | test QWK |", "|---|---|---|---|---|---|"]
    print(*header, sep="\n", flush=True)
    lines = [line for p in args.items for line in run(p, train, test, labels, args.beyond_budget)]
    print("", *header, *lines, sep="\n")


if __name__ == "__main__":
    main()
