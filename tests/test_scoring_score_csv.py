"""manage.py score_csv: the active model per item, or --model DIR; scores written beside the rows."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from scoring import versions
from scoring.scorer import open_model
from tests.scoring_support import DEMO_CSV

pytestmark = pytest.mark.django_db


def _read(path: Path) -> tuple[list[str], list[dict]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def test_score_csv_with_the_active_version(demo_versions, tmp_path, model_dirs):
    _, v1, _ = demo_versions
    versions.activate_version(v1)
    src = tmp_path / "in.csv"
    header, rows = _read(DEMO_CSV)
    extra = dict(rows[0], item_id="unknown-item", response_id="x-1")
    empty = dict(rows[0], response_id="x-2", response="   ")
    with src.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows([*rows, extra, empty])
    out = tmp_path / "out.csv"
    call_command("score_csv", csv=str(src), out=str(out))
    columns, scored = _read(out)
    assert columns == [*header, "predicted_score", "confidence", "flags", "p_0", "p_1", "p_2"]
    assert len(scored) == len(rows) + 2
    assert [r["response_id"] for r in scored] == [r["response_id"] for r in [*rows, extra, empty]]
    model = open_model(model_dirs["v1"])
    pred = model.predict([r["response"] for r in rows], rows[0]["question"], rows[0]["reference_answer"])
    expected = pred.probabilities
    got = np.array([[float(r[f"p_{k}"]) for k in (0, 1, 2)] for r in scored[: len(rows)]])
    assert np.abs(got - expected).max() <= 1e-6
    for r, p, level, conf in zip(scored[: len(rows)], expected, pred.level, pred.confidence, strict=True):
        # confidence is the probability of the level the version's cut-points decode
        assert float(r["confidence"]) == pytest.approx(float(conf), abs=1e-6) == pytest.approx(float(p[level]))
        if not r["flags"] or r["flags"] == "low_confidence":
            assert int(r["predicted_score"]) == model.labels[int(level)]
    assert scored[-2]["flags"] == "no_active_model" and scored[-2]["predicted_score"] == ""
    assert scored[-1]["flags"] == "empty" and scored[-1]["predicted_score"] == ""


def test_score_csv_with_a_model_directory_needs_no_database_row(model_dirs, tmp_path):
    out = tmp_path / "out.csv"
    call_command("score_csv", csv=str(DEMO_CSV), out=str(out), model=str(model_dirs["v2"]))
    _, scored = _read(out)
    assert len(scored) == 36 and all(r["p_2"] and r["confidence"] for r in scored)


def test_score_csv_refuses_bad_input(tmp_path, model_dirs):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,text\n1,hello\n", encoding="utf-8")
    with pytest.raises(CommandError, match="missing column"):
        call_command("score_csv", csv=str(bad), out=str(tmp_path / "o.csv"))
    with pytest.raises(CommandError, match="no such file"):
        call_command("score_csv", csv=str(tmp_path / "none.csv"), out=str(tmp_path / "o.csv"))
    with pytest.raises(CommandError, match="--model"):
        call_command("score_csv", csv=str(DEMO_CSV), out=str(tmp_path / "o.csv"), model=str(tmp_path))
