"""Student settings sweep on a saved teacher labelling (no teacher re-training).

    KDGRADE_DISTILL_DUMP=var/bench-dump .venv/bin/python bench/distill_bench.py asap --items 2
    .venv/bin/python bench/distill_student_sweep.py var/bench-dump/2

Prints validation and test QWK of the KD student for a few settings (temperature, alpha, learning rate, augmented
copies used, size), beside the teacher's.  For choosing defaults; the reported figures come from
bench/distill_bench.py.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    import torch

    from distillation.config import StudentConfig
    from distillation.features import Featurizer
    from distillation.metrics import scores
    from distillation.student import Features, predict_proba, train_student
    from distillation.teacher import soft_labels

    torch.set_num_threads(1)
    base = Path(sys.argv[1])
    arr = np.load(base.with_suffix(".npz"))
    meta = json.loads(base.with_suffix(".json").read_text())
    levels = meta["levels"]
    lv = np.asarray(levels)
    n_classes = len(levels)
    y_test = arr["y_test"]
    print("teacher", scores(lv[y_test], lv[arr["logits_test"].argmax(1)], levels))
    feats_cache: dict = {}

    def features(nb):
        if nb not in feats_cache:
            fz = Featurizer(n_buckets=nb, cross_question=meta["cross_question"])
            feats_cache[nb] = {k: Features.compute(fz, *meta[k]) for k in ("fit", "extra", "val", "test")}
        return feats_cache[nb]

    base_cfg = StudentConfig()
    variants = {
        "default": {},
        "lr3e-3": {"lr": 3e-3},
        "T2": {"temperature": 2.0},
        "T4": {"temperature": 4.0},
        "alpha0.9": {"alpha": 0.9},
        "alpha0.5": {"alpha": 0.5},
        "wd1e-3": {"weight_decay": 1e-3},
        "epochs20": {"epochs": 20},
        "8192x4": {"n_buckets": 8192, "embed_dim": 4},
        "h48": {"embed_dim": 10, "hidden": 48},
        "lr3e-3-T2": {"lr": 3e-3, "temperature": 2.0},
        "lr3e-3-a0.9": {"lr": 3e-3, "alpha": 0.9},
    }
    only = sys.argv[2:] or list(variants)
    n_extra_all = len(arr["logits_extra"])
    for name in only:
        cfg = replace(base_cfg, **variants[name])
        f = features(cfg.n_buckets)
        logits = np.concatenate([arr["logits_fit"], arr["logits_extra"][:n_extra_all]])
        soft = soft_labels(logits, cfg.temperature)
        hard = np.concatenate([arr["y_fit"], -np.ones(n_extra_all, dtype=np.int64)])
        t = time.time()
        net, log = train_student(f["fit"].concat(f["extra"]), hard, soft, f["val"], arr["y_val"], n_classes, cfg, 3)
        pred = predict_proba(net, f["test"]).argmax(1)
        print(f"{name:10s} params {net.n_params():6d} val QWK {log['best_val_qwk']:.4f} test",
              scores(lv[y_test], lv[pred], levels), f"best epoch {log['best_epoch']}", f"{time.time() - t:.0f}s",
              flush=True)


if __name__ == "__main__":
    main()
