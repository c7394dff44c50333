"""Pack what the GPU run needs into ``.gpu/`` (ignored by git), small enough to travel to a GPU machine
that has no network and takes at most 64 MiB of files (see bench/README.md, "A GPU teacher"):

- ``.gpu/minilm/``: the teacher's MiniLM checkpoint, its weights as float16 (43 MiB instead of 87 MiB;
  ``bench/gpu/run.sh`` widens them back to float32 there: at most 4.6e-4 of each tensor's largest value
  is lost, below the bf16 rounding of the GPU's training steps);
- ``.gpu/data.tgz``: ASAP-SAS prompts 1, 2, 5, 6 and SciEntsBank's train / unseen answers / unseen
  questions from ../shared/datasets.

    .venv/bin/python bench/gpu/prepare.py
"""

from __future__ import annotations

import csv
import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("KDGRADE_DATASETS", ROOT.parent / "shared" / "datasets"))
OUT = ROOT / ".gpu"
ASAP_ITEMS = {"1", "2", "5", "6"}
SCIENTSBANK = ("train.csv", "test_unseen_answers.csv", "test_unseen_questions.csv")


def pack_checkpoint(src: Path, dst: Path) -> float:
    """Copy the checkpoint with float16 weights; returns the largest rounding error relative to each
    tensor's largest value."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and f.name != "model.safetensors":
            shutil.copy(f, dst / f.name)
    weights = load_file(str(src / "model.safetensors"))
    save_file({k: v.astype(np.float16) for k, v in weights.items()}, str(dst / "model.fp16.safetensors"))
    return max(float(np.abs(v.astype(np.float16).astype(np.float32) - v).max() / (np.abs(v).max() or 1.0))
               for v in weights.values())


def pack_data(dst: Path) -> None:
    csv.field_size_limit(sys.maxsize)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "data"
        (base / "asap_sas").mkdir(parents=True)
        (base / "scientsbank").mkdir()
        for name in ("train.csv", "test.csv"):
            with (open(DATA / "asap_sas" / name, newline="", encoding="utf-8") as f,
                  open(base / "asap_sas" / name, "w", newline="", encoding="utf-8") as g):
                rows = csv.reader(f)
                out = csv.writer(g)
                header = next(rows)
                out.writerow(header)
                out.writerows(r for r in rows if r[header.index("item_id")] in ASAP_ITEMS)
        for name in SCIENTSBANK:
            shutil.copy(DATA / "scientsbank" / name, base / "scientsbank" / name)
        with tarfile.open(dst, "w:gz") as tar:
            tar.add(base, arcname="data")


def main() -> None:
    from distillation.teacher import default_checkpoint

    if OUT.exists():
        shutil.rmtree(OUT)
    err = pack_checkpoint(Path(default_checkpoint()), OUT / "minilm")
    pack_data(OUT / "data.tgz")
    size = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"{OUT}: {size / 2**20:.1f} MiB (float16 rounding: at most {err:.1e} of a tensor's largest value)")


if __name__ == "__main__":
    main()
