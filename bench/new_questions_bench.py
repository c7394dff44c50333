"""How a pooled student scores questions it was not trained on: SciEntsBank, no teacher (see bench/README.md).

    .venv/bin/python bench/new_questions_bench.py

Fits the pooled student on SciEntsBank's training answers with the human levels alone (the student
without the teacher of ``bench/distill_bench.py``: no transformer, a few minutes), in the ways below, and
scores the three test splits: unseen answers (questions it was trained on), unseen questions, and unseen
domains (questions of science modules it never saw; a split none of the choices here was made on).

- ``whole student, alpha A``: the bag and the overlap features for every answer (stagewise), one
  decoding fitted on held-out answers. Alpha 3 is what the pipeline chose before 2026-12-03 (afternoon).
- ``new-question branch``: what ``distillation.pipeline`` builds now: the whole student (alpha chosen on
  held-out answers) for known questions, the overlap features alone for the others, decoded on whole
  questions held out.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("KDGRADE_DATASETS", ROOT.parent / "shared" / "datasets")) / "scientsbank"
SPLITS = ("test_unseen_answers", "test_unseen_questions", "test_unseen_domains")


class _Redecoded:
    """A whole student whose rows of unknown questions take another decoding (cut-points and scale)."""

    def __init__(self, fitted, decoding, seen_column: int):
        self.fitted, self.new_decoding, self.seen_column = fitted, decoding, seen_column
        self.decoding = fitted.decoding
        self.model = self

    def _parts(self, X):
        return self.fitted.model.decision_function(X), X.dense[:, self.seen_column] < 0.5

    def predict_levels(self, X):
        f, new = self._parts(X)
        levels = self.decoding.levels(f)
        levels[new] = self.new_decoding.levels(f[new])
        return levels

    def predict_proba(self, X):
        f, new = self._parts(X)
        p = self.decoding.probabilities(f)  # the link and its matrix scaling, as the product computes them
        p[new] = self.new_decoding.probabilities(f[new])
        return p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--alphas", type=float, nargs="*", default=[1.0, 3.0, 10.0, 30.0])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import numpy as np

    from distillation.config import DistillConfig
    from distillation.data import read_csv
    from distillation.features import Featurizer, question_key
    from distillation.metrics import accuracy, macro_f1, qwk
    from distillation.student import Features
    from distillation.student_fit import StudentData, fit_new_question_branch, fit_student

    cfg = DistillConfig().student
    train = read_csv(DATA / "train.csv")
    levels = sorted(set(train.score))
    index = {v: i for i, v in enumerate(levels)}
    known = sorted({question_key(q) for q in train.question})
    fz = Featurizer(n_buckets=cfg.n_buckets, word_ngrams=cfg.word_ngrams, char_ngrams=cfg.char_ngrams,
                    use_reference=True, cross_question=True, known_questions=known)

    def features(ds):
        return Features.compute(fz, ds.response, ds.question, ds.reference_answer)

    human = np.array([index[s] for s in train.score])
    ids: dict = {}
    questions = np.array([ids.setdefault(question_key(q), len(ids)) for q in train.question])
    data = StudentData(features(train), human, human.astype(np.float64), len(human), questions=questions)
    tests = {}
    for name in SPLITS:
        ds = read_csv(DATA / f"{name}.csv")
        tests[name] = (features(ds), np.array([index[s] for s in ds.score]))

    quiet = lambda *a, **k: None  # noqa: E731
    t0 = time.monotonic()
    branch = fit_new_question_branch(data, levels, cfg, fz.seen_column, quiet)
    rows = []
    for alpha in args.alphas:
        st = fit_student(data, levels, replace(cfg, alphas=(alpha,)), args.seed, distil=False, stagewise=True,
                         say=quiet, name="bench")
        rows.append((f"whole student, alpha {alpha:g}", st))
    st = fit_student(data, levels, cfg, args.seed, distil=False, stagewise=True, say=quiet, name="bench",
                     new_questions=branch)
    rows.append((f"new-question branch (known questions: alpha {st.alpha:g})", st))
    # the alternative: new questions scored by the whole student, decoded on whole questions held out
    whole = dict(zip(args.alphas, (r[1] for r in rows), strict=False)).get(st.alpha)
    if whole is not None:
        from distillation.lexical import out_of_fold
        from distillation.ordinal import Decoding
        from distillation.student import LinearStudent
        from distillation.student_fit import question_folds

        groups = question_folds(questions, cfg.folds)

        def fit_predict(tr, held):
            m = LinearStudent(st.alpha, cfg.dense_weight, True).fit(data.features[tr], human[tr].astype(np.float64))
            return m.decision_function(data.features[held])

        oof = out_of_fold(fit_predict, len(human), groups)
        redecoded = _Redecoded(whole, Decoding.fit(oof, human, len(levels)), fz.seen_column)
        rows.append((f"whole student, alpha {st.alpha:g}, new questions decoded on held-out questions", redecoded))

    from distillation.ordinal import expected_calibration_error, selective_metrics

    ks = list(range(len(levels)))
    thresholds = {name: st_.decoding.threshold(cfg.default_agreement, "default").threshold for name, st_ in rows}
    print(f"SciEntsBank, {len(human)} training answers, human levels only; fitted in {time.monotonic() - t0:.0f} s\n")
    print("Each cell: accuracy / macro-F1 / QWK; the share scored alone at the model's confidence threshold "
          f"(fitted held out for {cfg.default_agreement:.0%} agreement) and its agreement; ECE.\n")
    print("| model | " + " | ".join(s.removeprefix("test_").replace("_", " ") for s in SPLITS) + " |")
    print("|---|" + "---|" * len(SPLITS))
    for name, st_ in rows:
        cells = []
        for X, y in tests.values():
            pred = st_.model.predict_levels(X)
            conf = st_.model.predict_proba(X)[np.arange(len(y)), pred]
            sel = selective_metrics(conf, pred == y, thresholds[name])
            agree = "-" if sel["agreement"] is None else f"{sel['agreement']:.3f}"
            cells.append(f"{accuracy(y, pred):.3f} / {macro_f1(y, pred, ks):.3f} / {qwk(y, pred, ks):.3f}; "
                         f"{sel['coverage']:.0%} ({agree}); ECE {expected_calibration_error(conf, pred == y):.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\nheld-out-question QWK of the branch: {branch.heldout_qwk:.3f}; n = "
          + ", ".join(f"{s}: {len(y)}" for s, (_, y) in tests.items()))


if __name__ == "__main__":
    main()
