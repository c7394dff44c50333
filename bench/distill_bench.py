"""Distillation benchmark on the real data in ../shared/datasets/ (see bench/README.md).

    .venv/bin/python bench/distill_bench.py asap            # ASAP-SAS prompts 1, 2, 5, 6: train -> test, per item
    .venv/bin/python bench/distill_bench.py scientsbank     # SciEntsBank pooled: train -> unseen answers / questions
    .venv/bin/python bench/distill_bench.py --tables var/bench-logs/asap.json   # print tables of a saved report

Prints one table per item: teacher, int8 ONNX teacher, student, student without KD, TF-IDF + logistic
regression side by side, with human-human agreement, sizes and speeds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("KDGRADE_DATASETS", ROOT.parent / "shared" / "datasets"))

MODELS = [
    ("teacher", "teacher (MiniLM-L6, torch)"),
    ("teacher_onnx_int8", "teacher int8 ONNX"),
    ("student", "student KD (ONNX)"),
    ("student_no_kd", "student, no KD"),
    ("tfidf_logreg", "TF-IDF + logreg"),
]


def _f(x, nd=3):
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def _speed_source(models: dict, key: str) -> dict:
    return models.get(key) or {}


def table(name: str, entry: dict, speed_models: dict | None = None) -> str:
    """Markdown table of one item (``speed_models``: where timings come from for an extra test set)."""
    models = entry["models"]
    speed_models = speed_models or models
    hh = entry.get("human_human_qwk")
    hh_train = entry.get("human_human_qwk_train")
    lines = [
        f"### {name}",
        "",
        f"n_train {entry.get('n_train', '-')}, n_test {entry['n_test']} ({entry.get('test_source', '')}); "
        f"human-human QWK: test {_f(hh)}, training rows {_f(hh_train)}"
        + (f"; distilled end to end in {entry['seconds']:.0f} s" if "seconds" in entry else ""),
        "",
        "| model | params | accuracy | QWK | macro-F1 | ms/response | responses/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, label in MODELS:
        m = models.get(key)
        if not m:
            lines.append(f"| {label} | - | - | - | - | - | - |")
            continue
        sp = _speed_source(speed_models, key)
        rps = sp.get("responses_per_s")
        lines.append(
            f"| {label} | {m['params']:,} | {_f(m['accuracy'])} | {_f(m['qwk'])} | {_f(m['macro_f1'])} | "
            f"{_f(sp.get('ms_per_response'), 3)} | {f'{rps:,.0f}' if rps else '-'} |"
        )
    s, t, t8 = models.get("student") or {}, models.get("teacher") or {}, models.get("teacher_onnx_int8") or {}
    ss, ts, t8s = (_speed_source(speed_models, k) for k in ("student", "teacher", "teacher_onnx_int8"))
    notes = []
    if s and t:
        notes.append(f"student QWK - teacher QWK = {s['qwk'] - t['qwk']:+.3f}")
        notes.append(f"teacher/student params = {t['params'] / s['params']:,.0f}x")
        if ss.get("responses_per_s") and ts.get("responses_per_s"):
            notes.append(f"student/teacher responses/s = {ss['responses_per_s'] / ts['responses_per_s']:,.0f}x")
        if ss.get("responses_per_s") and t8s.get("responses_per_s"):
            notes.append(f"student/int8 teacher responses/s = {ss['responses_per_s'] / t8s['responses_per_s']:,.0f}x")
        if "agreement_with_teacher" in s:
            notes.append(f"student-teacher agreement {s['agreement_with_teacher']:.3f}")
        if s.get("onnx_bytes"):
            notes.append(f"student ONNX {s['onnx_bytes'] / 1024:.0f} KiB")
        if t8.get("onnx_bytes"):
            notes.append(f"int8 teacher ONNX {t8['onnx_bytes'] / 1024 / 1024:.1f} MiB")
    lines += ["", "; ".join(notes), ""]
    return "\n".join(lines)


def tables(report: dict) -> str:
    out = []
    for item, entry in report["items"].items():
        main_name = entry.get("bench_name", f"item {item}")
        out.append(table(main_name, entry))
        for ext_name, ext in (entry.get("extra_tests") or {}).items():
            ext = dict(ext, n_train=entry.get("n_train"), human_human_qwk_train=None)
            out.append(table(f"{main_name} -> {ext_name}", ext, speed_models=entry["models"]))
    return "\n".join(out)


def run(args) -> dict:
    from distillation.config import DistillConfig
    from distillation.pipeline import distill

    config = DistillConfig()
    if args.teacher_epochs:
        config = config.with_teacher(epochs=args.teacher_epochs)
    if args.augment is not None:
        config = config.with_student(augment_copies=args.augment)
    out = Path(args.out)
    logs = ROOT / "var" / "bench-logs"
    logs.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    if args.dataset == "asap":
        report = distill(
            DATA / "asap_sas" / "train.csv", out / "asap", test_csv=DATA / "asap_sas" / "test.csv",
            config=config, seed=args.seed, items=args.items, report_json=logs / "asap.json",
        )
        for item, entry in report["items"].items():
            entry["bench_name"] = f"ASAP-SAS prompt {item} (train -> test)"
    else:
        sb = DATA / "scientsbank"
        report = distill(
            sb / "train.csv", out / "scientsbank", test_csv=sb / "test_unseen_answers.csv",
            extra_tests={"test_unseen_questions": str(sb / "test_unseen_questions.csv")},
            config=config, seed=args.seed, pooled=True, report_json=logs / "scientsbank.json",
        )
        for entry in report["items"].values():
            entry["bench_name"] = "SciEntsBank pooled (train -> test_unseen_answers)"
    report["command"] = " ".join(sys.argv)
    report["wall_s"] = round(time.monotonic() - t0, 1)
    (logs / f"{args.dataset}.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", nargs="?", choices=["asap", "scientsbank"])
    ap.add_argument("--items", nargs="*", help="ASAP prompts to run (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--teacher-epochs", type=int, help="maximum teacher epochs (default: the config's)")
    ap.add_argument("--augment", type=int, help="augmented copies per training response")
    ap.add_argument("--out", default=str(ROOT / "var" / "bench-out"))
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
