"""The teacher's CPU training steps in float32 and in bf16 autocast, the same minute, on ASAP-SAS.

    .venv/bin/python bench/teacher_precision.py [--items 6] [--order fp32 bf16] [--threads 2] [--seed 0]

Fits the cross-fitted teacher (``distillation.teacher_fit.fit_teacher``: 4 MiniLM copies + the TF-IDF
ridge ensemble, exactly as ``distill`` does) once per precision, in the order given (run ``--order bf16
fp32`` too: on a 2-core machine the first of two long runs is often a little slower), and prints the
seconds (the whole teacher stage, and its training alone), the out-of-fold QWKs and the test QWK of each.
``bf16`` is ``TeacherConfig.cpu_bf16="on"`` (on a CPU without hardware bf16 it would be emulated).
About 4-6 minutes per prompt and precision on the 2-core machine.
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


def run(item: str, precision: str, train, test, levels, seed: int, threads: int) -> dict:
    from distillation.config import DistillConfig
    from distillation.metrics import qwk
    from distillation.splits import make_splits
    from distillation.teacher import cpu_has_native_bf16, set_threads
    from distillation.teacher_fit import fit_teacher

    config = DistillConfig(threads=threads).with_teacher(cpu_bf16={"fp32": "off", "bf16": "on"}[precision])
    set_threads(threads)
    sp_ = make_splits(train, test, None, levels, config, seed)
    t0 = time.monotonic()
    teacher = fit_teacher(sp_, config, seed, lambda *a, **k: None)
    seconds = time.monotonic() - t0
    y = sp_.y(sp_.test)
    test_qwk = qwk(y, teacher.decoding.levels(teacher.predict(sp_.test)), list(range(len(levels))))
    log = teacher.log
    started = time.strftime("%H:%M:%S", time.gmtime(time.time() - seconds))
    return {"item": item, "precision": precision, "native_bf16": cpu_has_native_bf16(),
            "seconds": round(seconds, 1), "training_s": log["seconds"], "oof_transformer": log["oof_qwk_rounded"],
            "oof_ensemble": log.get("lexical_weight_oof_qwk", log["oof_qwk_rounded"]),
            "test_qwk": round(float(test_qwk), 6), "started": started}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", nargs="*", default=["6"])
    ap.add_argument("--order", nargs="*", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from distillation.splits import load_inputs

    asap = DATA / "asap_sas"
    train, test, _, labels = load_inputs(asap / "train.csv", asap / "test.csv")
    rows = []
    for item in args.items:
        for precision in args.order:
            rows.append(run(item, precision, train.for_item(item), test.for_item(item), labels[item], args.seed,
                            args.threads))
            print(rows[-1], flush=True)
    print("\n| prompt | precision | started (UTC) | teacher stage s | training s "
          "| OOF QWK transformer / ensemble | test QWK |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['item']} | {r['precision']} | {r['started']} | {r['seconds']:.1f} | {r['training_s']:.1f} | "
              f"{r['oof_transformer']:.6f} / {r['oof_ensemble']:.6f} | {r['test_qwk']:.6f} |")


if __name__ == "__main__":
    main()
