"""scoring.flags against an earlier version of it: identical flags on every shared answer, and the time
of check_batch on a bulk CSV (one question string per row, as score_csv passes them).

    git show 3e46efb:scoring/flags.py > /tmp/flags_old.py
    taskset -c 1 .venv/bin/python bench/flags_speed.py --old /tmp/flags_old.py [--time BULK.csv]

Compared: every response of every CSV under --datasets and of the demo CSV with its row's question, every
crafted non-answer (bench/scoring_crafted_non_answers.json) with the demo question, and mutations of
real answers (upper-, title- and mixed-cased, shuffled, repeated, cut short, run together, question
copies cut at random, question and answer spliced); each in the items' languages en, es, de, zh and
an unknown code, through check_response and check_batch.  Exits 1 on any difference.
Timing: median of 3 runs of check_batch over the --time CSV, word caches cleared first.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import random
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scoring import flags as new  # noqa: E402

LANGUAGES = ["en", "es", "de", "zh", "xx"]


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("flags_old", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read(path: Path) -> tuple[list[str], list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [r["response"] or "" for r in rows], [r.get("question") or "" for r in rows]


def cases(datasets: Path) -> list[tuple[str, list[str], list[str]]]:
    out = [(str(p.relative_to(datasets)), *read(p)) for p in sorted(datasets.glob("*/*.csv"))]
    demo = ROOT / "scoring" / "demo" / "heat_spoon.csv"
    out.append(("scoring/demo/heat_spoon.csv", *read(demo)))
    question = out[-1][2][0]
    crafted = json.loads((ROOT / "bench" / "scoring_crafted_non_answers.json").read_text(encoding="utf-8"))
    texts = [t for kind, values in crafted.items() if kind != "_about" for t in values]
    out.append(("scoring_crafted_non_answers.json", texts, [question] * len(texts)))
    out.append(("mutations", *mutations(out)))
    return out


def mutations(sources: list[tuple[str, list[str], list[str]]], per_file: int = 2000) -> tuple[list[str], list[str]]:
    """Variants of real answers and of their questions that reach the rules' edges."""
    rng = random.Random(0)
    texts: list[str] = []
    questions: list[str] = []
    for _, responses, qs in sources:
        for i in rng.sample(range(len(responses)), min(per_file, len(responses))):
            answer, question = responses[i], qs[i]
            words = answer.split()
            q_words = question.split()
            cut = rng.randrange(1, max(2, len(q_words)))
            start = rng.randrange(0, max(1, len(q_words) - cut))
            variants = [
                answer.upper(),
                answer.title(),
                "".join(c.upper() if rng.random() < 0.3 else c for c in answer),
                " ".join(rng.sample(words, len(words))),
                " ".join([answer] * 3),
                " ".join(words[: rng.randrange(1, 8)]),
                "".join(words[:6]),
                " ".join(q_words[start : start + cut]),
                " ".join(q_words[start : start + cut] + words[: rng.randrange(0, 6)]),
                " ".join(w for w in words if len(w) > 3),
            ]
            texts += variants
            questions += [question] * len(variants)
    return texts, questions


def compare(old: ModuleType, datasets: Path) -> int:
    compared = differences = 0
    for name, responses, questions in cases(datasets):
        for language in LANGUAGES:
            batch = new.check_batch(responses, questions, language)
            for response, question, got in zip(responses, questions, batch, strict=True):
                want = old.check_response(response, question=question, language=language)
                one = new.check_response(response, question=question, language=language)
                compared += 1
                if not want == one == got:
                    differences += 1
                    if differences <= 20:
                        print(f"DIFF {name} [{language}] {response[:80]!r}: old {want} new {one} batch {got}")
        print(f"{name}: {len(responses)} answers x {len(LANGUAGES)} languages compared")
    print(f"compared {compared} (answer, language) pairs: {differences} difference(s)")
    return differences


def timing(module: ModuleType, responses: list[str], questions: list[str]) -> list[float]:
    runs = []
    for _ in range(3):
        module._implausible_cache.clear()
        module._plausible.clear()
        module._question_cache.clear()
        start = time.perf_counter()
        module.check_batch(responses, questions, "en")
        runs.append(time.perf_counter() - start)
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old", type=Path, required=True, help="the earlier scoring/flags.py")
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--time", type=Path, help="a bulk CSV (question, response) to time check_batch on")
    args = parser.parse_args()
    old = load(args.old)
    differences = compare(old, args.datasets)
    if args.time:
        responses, questions = read(args.time)
        for label, module in (("old", old), ("new", new)):
            runs = timing(module, responses, questions)
            print(f"{label}: check_batch on {len(responses)} answers: median {statistics.median(runs):.3f} s "
                  f"(runs {', '.join(f'{r:.3f}' for r in runs)})")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
