"""What the non-scorable flags catch: on the real human-scored answers in ../shared/datasets/ and on
crafted non-answers (bench/scoring_crafted_non_answers.json).  Prints markdown tables.

    .venv/bin/python bench/scoring_flags.py [--datasets ../shared/datasets] [--examples 3]

Real data: every answer is a genuine student answer, so each flag firing is either a true catch (e.g. a
keyword list that scored 0) or a false alarm costing a teacher's look; the table gives the count, the
share, and the human scores of the flagged answers.  Crafted: the share of each kind of non-answer that
the intended flag catches, and that any flag catches, plus scorable controls that should stay unflagged.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scoring.flags import ALL_FLAGS, check_response  # noqa: E402

FILES = [
    "scientsbank/train.csv", "scientsbank/test_unseen_answers.csv", "scientsbank/test_unseen_questions.csv",
    "scientsbank/test_unseen_domains.csv", "asap_sas/train.csv", "asap_sas/test.csv",
]
PRE_MODEL_FLAGS = [f for f in ALL_FLAGS if f not in ("low_confidence", "no_active_model")]


def real_data(datasets: Path, examples: int) -> list[str]:
    lines = ["## Real answers (every row is a genuine student answer)", "",
             "| file | answers | " + " | ".join(PRE_MODEL_FLAGS) + " | any flag | µs/answer |",
             "|---|---:|" + "---:|" * (len(PRE_MODEL_FLAGS) + 2)]
    shown: dict[str, list[str]] = defaultdict(list)
    score_of_flagged: dict[str, Counter] = defaultdict(Counter)
    total = Counter()
    n_total = 0
    for name in FILES:
        path = datasets / name
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        counts: Counter = Counter()
        anyflag = 0
        t0 = time.perf_counter()
        results = [check_response(r["response"], question=r["question"]) for r in rows]
        us = (time.perf_counter() - t0) / len(rows) * 1e6
        for r, flags in zip(rows, results, strict=True):
            counts.update(flags)
            anyflag += bool(flags)
            for f in flags:
                score_of_flagged[f][r["score"]] += 1
                if len(shown[f]) < examples:
                    shown[f].append(f"`{r['response'][:90]}` (score {r['score']}, {name})")
        total.update(counts)
        n_total += len(rows)
        cells = " | ".join(f"{counts[f]}" for f in PRE_MODEL_FLAGS)
        lines.append(f"| {name} | {len(rows):,} | {cells} | {anyflag} ({anyflag / len(rows):.2%}) | {us:.0f} |")
    cells = " | ".join(f"{total[f]}" for f in PRE_MODEL_FLAGS)
    lines.append(f"| **all** | {n_total:,} | {cells} | {sum(total.values())} ({sum(total.values()) / n_total:.2%}) | |")
    lines += ["", "Human scores of the flagged real answers, and examples:", ""]
    for f in PRE_MODEL_FLAGS:
        if total[f]:
            dist = ", ".join(f"score {k}: {v}" for k, v in sorted(score_of_flagged[f].items()))
            lines.append(f"- `{f}` ({dist}): " + "; ".join(shown[f]))
    return lines


def crafted() -> list[str]:
    data = json.loads((ROOT / "bench" / "scoring_crafted_non_answers.json").read_text(encoding="utf-8"))
    with (ROOT / "scoring" / "demo" / "heat_spoon.csv").open(encoding="utf-8", newline="") as handle:
        question = next(csv.DictReader(handle))["question"]
    lines = ["## Crafted non-answers (demo item heat-spoon)", "",
             "| kind | answers | caught by its flag | caught by any flag | flags raised |", "|---|---:|---:|---:|---|"]
    for kind, texts in data.items():
        if kind.startswith("_"):
            continue
        results = [check_response(t, question=question) for t in texts]
        raised = Counter(f for flags in results for f in flags)
        own = sum(kind.removeprefix("hard_") in flags for flags in results)
        anyf = sum(bool(flags) for flags in results)
        if kind == "scorable_controls":
            lines.append(f"| scorable controls (should stay unflagged) | {len(texts)} | - | {anyf} | "
                         f"{dict(raised) or '-'} |")
        else:
            lines.append(f"| {kind} | {len(texts)} | {own}/{len(texts)} | {anyf}/{len(texts)} | {dict(raised)} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--examples", type=int, default=3)
    args = parser.parse_args()
    print("\n".join([*crafted(), "", *real_data(args.datasets, args.examples)]))


if __name__ == "__main__":
    main()
