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


def test_score_csv_without_kdgrade_tables(model_dirs, tmp_path, monkeypatch):
    """A database that never ran migrate: --model scores from the directory alone; without it, a clear
    error, no traceback and no output file."""
    from django.db import OperationalError

    from scoring.models import Item

    def no_table(**_kw):
        raise OperationalError("no such table: scoring_item")

    monkeypatch.setattr(Item.objects, "filter", no_table)
    out = tmp_path / "out.csv"
    with pytest.raises(CommandError, match=r"no kdgrade items .*no such table.*manage\.py migrate"):
        call_command("score_csv", csv=str(DEMO_CSV), out=str(out))
    assert not out.exists()
    call_command("score_csv", csv=str(DEMO_CSV), out=str(out), model=str(model_dirs["v2"]))
    _, scored = _read(out)
    assert len(scored) == 36 and all(r["p_2"] and r["confidence"] for r in scored)
    assert sum(r["flags"] != "no_active_model" for r in scored) == 36


def test_score_csv_refuses_bad_input(tmp_path, model_dirs):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,text\n1,hello\n", encoding="utf-8")
    with pytest.raises(CommandError, match="missing column"):
        call_command("score_csv", csv=str(bad), out=str(tmp_path / "o.csv"))
    with pytest.raises(CommandError, match="no such file"):
        call_command("score_csv", csv=str(tmp_path / "none.csv"), out=str(tmp_path / "o.csv"))
    with pytest.raises(CommandError, match="--model"):
        call_command("score_csv", csv=str(DEMO_CSV), out=str(tmp_path / "o.csv"), model=str(tmp_path))


_CELLS = ["", " ", "plain", "a,b", 'say "hi"', "two\nlines", "cr\r", "\r\n", " lead", "é 中文 \u2019", 7, "x" * 300]


@pytest.mark.parametrize("repeated", [[], [0], [1, 2], [0, 3], [3], [0, 1, 2, 3]])
def test_write_rows_writes_what_csv_writer_writes(repeated):
    """Escaping repeated cells once per run of equal values changes no byte, whatever the cells."""
    import io
    import random

    from scoring.management.commands.score_csv import write_rows

    rng = random.Random(len(repeated))
    header = ["a", "b,c", 'q"', "d"]
    rows = [[rng.choice(_CELLS) for _ in header] for _ in range(400)]
    rows += [[""] * 4, ["", "", "", "x"], [str(v) for v in _CELLS[:4]]]
    for i in range(1, len(rows), 3):  # runs of equal (but not identical) repeated cells
        for j in repeated:
            rows[i][j] = "".join(str(rows[i - 1][j]))
    got, want = io.StringIO(newline=""), io.StringIO(newline="")
    write_rows(got, header, rows, repeated)
    writer = csv.writer(want)
    writer.writerow(header)
    writer.writerows(rows)
    assert got.getvalue() == want.getvalue()


def test_score_csv_writes_what_dictwriter_wrote(model_dirs, tmp_path):
    """Odd input (duplicate and result-named columns, short and long rows, blank lines, quotes and line
    breaks in cells): the output is byte for byte what the command wrote with csv.DictReader/DictWriter."""
    from scoring import services

    header, rows = _read(DEMO_CSV)
    src = tmp_path / "odd.csv"
    odd_header = [*header, "flags", "p_1", "response_id"]
    cells = [[r[c] for c in header] + ["old", "p", f"dup-{i}"] for i, r in enumerate(rows)]
    cells[0][header.index("response")] = 'Metal "conducts", then\r\nwood does not.'
    cells[1] = cells[1][:3]
    cells[2] = [*cells[2], "extra", "cells"]
    with src.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(odd_header)
        writer.writerows(cells[:5])
        handle.write("\r\n")
        writer.writerows(cells[5:])
    out = tmp_path / "out.csv"
    call_command("score_csv", csv=str(src), out=str(out), model=str(model_dirs["v2"]))

    # the command as it was (commit 3e46efb), for one model directory
    model = open_model(model_dirs["v2"])
    with src.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        fields, dict_rows = list(reader.fieldnames), list(reader)
    results = services.score_with_model(
        model, [r["response"] or "" for r in dict_rows], question=[r.get("question") or "" for r in dict_rows],
        reference=[r.get("reference_answer") or "" for r in dict_rows])
    columns = [c for c in ("predicted_score", "confidence", "flags") if c not in fields]
    columns += [f"p_{lv}" for lv in sorted(model.labels)]
    expected = tmp_path / "expected.csv"
    with expected.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*fields, *columns], extrasaction="ignore")
        writer.writeheader()
        for row, r in zip(dict_rows, results, strict=True):
            row = dict(row)
            row["predicted_score"] = "" if r.score is None else r.score
            row["confidence"] = "" if r.confidence is None else f"{r.confidence:.6f}"
            row["flags"] = ";".join(r.flags)
            for lv in model.labels:
                row[f"p_{lv}"] = f"{r.probabilities[lv]:.6f}"
            writer.writerow(row)
    assert len(dict_rows) == len(rows)  # the blank line is skipped
    assert out.read_bytes() == expected.read_bytes()
