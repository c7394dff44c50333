"""What real unscored answers add to the student: ASAP-SAS, each test half's answers as unscored rows.

    .venv/bin/python bench/unscored_bench.py [--items 1 2 5 6] [--threads 2] [--seed 0]

kdgrade retrains with the item's unscored live answers by default (the teacher scores them and the
student learns those scores beside the human-scored rows).  ASAP-SAS has no answers beyond its scored
train and test files, so this bench stands in for "the other students' answers" with the test split,
without leaking: the test answers are cut into two halves (every other answer by response id); the
student that scores half A saw half B's answers (unscored: their scores are never read) and not A's,
and the other way round.  One teacher per prompt, trained on the training file only, as in
``bench/distill_bench.py``; the students are fitted exactly as ``distill`` fits them (teacher weight
and ridge strength chosen out of fold on the labelled rows).  Prints, per prompt, the student's QWK
and exact agreement on the whole test split without and with the unscored half, and the teacher's.
About 8-15 minutes per prompt on the 2-core machine (mostly the teacher).

``--ceiling`` adds a bound, not a result: a student that saw every test answer unscored (the teacher's
scores of the very answers it is then judged on).  How close this student can come to its teacher at
all: where even that stays below a target, more unscored answers will not reach it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("KDGRADE_DATASETS", ROOT.parent / "shared" / "datasets"))


def run_item(item: str, train, test, levels, config, seed: int, with_ceiling: bool = False) -> dict:
    from distillation.features import Featurizer
    from distillation.metrics import qwk
    from distillation.splits import make_splits
    from distillation.student import Features
    from distillation.student_fit import fit_student, soft_targets
    from distillation.teacher_fit import fit_teacher

    def say(*_a, **kw):
        if kw.get("force"):
            print(f"  [{item}] {kw.get('message', '')}", flush=True)

    t0 = time.monotonic()
    sp_ = make_splits(train, test, None, levels, config, seed)
    scfg = config.student
    teacher = fit_teacher(sp_, config, seed, say)
    fz = Featurizer(n_buckets=scfg.n_buckets, word_ngrams=scfg.word_ngrams, char_ngrams=scfg.char_ngrams,
                    use_reference=True, cross_question=False)
    y = sp_.y(test)
    ks = list(range(len(levels)))

    def predict(fitted, rows: np.ndarray) -> np.ndarray:
        sub = test.select(rows)
        f = fitted.model.decision_function(Features.compute(fz, sub.response, sub.question, sub.reference_answer))
        return fitted.decoding.levels(f)

    def student(sp_x, name: str):
        data = soft_targets(sp_x, teacher, fz, say)
        return fit_student(data, levels, scfg, seed + 3, distil=True, stagewise=False, say=say, name=name)

    ids = np.argsort(np.array(test.response_id), kind="stable")
    halves = [ids[0::2], ids[1::2]]
    base = student(sp_, "labelled rows only")
    pred_base = predict(base, np.arange(len(test)))
    pred_un = np.empty(len(test), np.int64)
    chosen = []
    for h, rows in enumerate(halves):
        other = halves[1 - h]
        fitted = student(replace(sp_, unlabelled=test.select(np.sort(other))), f"with unscored half {1 - h}")
        pred_un[rows] = predict(fitted, rows)
        chosen.append({"teacher_weight": fitted.teacher_weight, "alpha": fitted.alpha})
    t_pred = teacher.decoding.levels(teacher.predict(test))
    ceiling = None
    if with_ceiling:  # every test answer unscored, scored by the same student: not a result, a bound
        fitted = student(replace(sp_, unlabelled=test), "with every test answer unscored (a bound)")
        pred_c = predict(fitted, np.arange(len(test)))
        ceiling = {"qwk": round(float(qwk(y, pred_c, ks)), 3), "exact": round(float((pred_c == y).mean()), 3),
                   "teacher_weight": fitted.teacher_weight, "alpha": fitted.alpha,
                   "agreement_with_teacher": round(float((pred_c == t_pred).mean()), 3)}
    return {
        "item": item, "n_train": len(train), "n_test": len(test),
        "teacher_qwk": round(float(qwk(y, t_pred, ks)), 3),
        "student_qwk": round(float(qwk(y, pred_base, ks)), 3),
        "student_exact": round(float((pred_base == y).mean()), 3),
        "student_choice": {"teacher_weight": base.teacher_weight, "alpha": base.alpha},
        "unscored_qwk": round(float(qwk(y, pred_un, ks)), 3),
        "unscored_exact": round(float((pred_un == y).mean()), 3),
        "unscored_choice": chosen,
        "n_unscored": [len(halves[1]), len(halves[0])],
        "ceiling": ceiling,
        "student_agreement_with_teacher": round(float((pred_base == t_pred).mean()), 3),
        "minutes": round((time.monotonic() - t0) / 60, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", nargs="*", default=["1", "2", "5", "6"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ceiling", action="store_true",
                    help="also fit a student with every test answer unscored and score those same answers: "
                         "how close this student can come to its teacher at all (an upper bound, not a result)")
    ap.add_argument("--tiny", action="store_true", help="the tests' tiny teacher (a smoke run of this script)")
    ap.add_argument("--json", default=str(ROOT / "var" / "bench-logs" / "unscored.json"))
    args = ap.parse_args()

    from distillation.config import DistillConfig
    from distillation.splits import load_inputs
    from distillation.teacher import set_threads

    config = replace(DistillConfig.tiny() if args.tiny else DistillConfig(), threads=args.threads)
    set_threads(config.threads)
    train, test, _, labels = load_inputs(DATA / "asap_sas" / "train.csv", DATA / "asap_sas" / "test.csv")
    rows = []
    for item in args.items:
        rows.append(run_item(item, train.for_item(item), test.for_item(item), labels[item], config, args.seed,
                             with_ceiling=args.ceiling))
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    print("\n| ASAP-SAS prompt | teacher QWK | student QWK / exact | with the other test half unscored: QWK / exact "
          "| change | unscored rows | minutes |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['item']} | {r['teacher_qwk']:.3f} | {r['student_qwk']:.3f} / {r['student_exact']:.3f} "
              f"| {r['unscored_qwk']:.3f} / {r['unscored_exact']:.3f} | {r['unscored_qwk'] - r['student_qwk']:+.3f} "
              f"| {r['n_unscored'][0]} + {r['n_unscored'][1]} | {r['minutes']} |")
    bound = [r for r in rows if r.get("ceiling")]
    if bound:
        print("\n| ASAP-SAS prompt | teacher QWK | student QWK (agreement with the teacher) | bound: every test answer "
              "unscored, QWK / exact (agreement with the teacher) |")
        print("|---|---|---|---|")
        for r in bound:
            c = r["ceiling"]
            print(f"| {r['item']} | {r['teacher_qwk']:.3f} | {r['student_qwk']:.3f} "
                  f"({r['student_agreement_with_teacher']:.3f}) "
                  f"| {c['qwk']:.3f} / {c['exact']:.3f} ({c['agreement_with_teacher']:.3f}) |")


if __name__ == "__main__":
    main()
