"""Uploads of scored answers: every problem named by row and column, a preview, all or nothing."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from scoring.demo_data import load_demo
from scoring.models import Item, RubricLevel
from tests.training_support import HEADER, csv_bytes, demo_upload
from training import importing
from training.models import ImportBatch, TrainingAnswer

Q, REF = "Why does the metal spoon feel colder?", "Metal conducts heat away from the hand."


def row(rid="r1", response="Metal conducts heat away from my hand.", score="2", item="heat-spoon"):
    return [item, Q, REF, rid, response, score]


GOOD = [row("r1"), row("r2", "Wood is an insulator.", "1"), row("r3", "It is cold.", "0")]

CASES = {
    "missing column": (csv_bytes([r[:5] for r in GOOD], HEADER[:5]), [(None, "score", "missing column")]),
    "unknown item": (csv_bytes([*GOOD, row("r4", item="no-such-item")]),
                     [(4, "item_id", "unknown item 'no-such-item'")]),
    "score outside the rubric": (csv_bytes([*GOOD, row("r4", score="3")]), [(4, "score", "3 is outside item")]),
    "score not a number": (csv_bytes([*GOOD, row("r4", score="two")]), [(4, "score", "not an integer")]),
    "duplicate id": (csv_bytes([*GOOD, row("r2", "Another answer.")]), [(4, "response_id", "duplicate id 'r2'")]),
    "empty answer": (csv_bytes([*GOOD, row("r4", "   ")]), [(4, "response", "empty answer")]),
    "bad encoding": (csv_bytes(GOOD)[:-30] + "é".encode("latin-1") + b"\n", [(3, None, "not UTF-8")]),
    "wrong number of fields": (csv_bytes(GOOD) + b"heat-spoon,q,ref,r9\n", [(4, None, "has 4 fields")]),
    "score2 outside the rubric": (csv_bytes([[*r, "7"] for r in GOOD], [*HEADER, "score2"]),
                                  [(1, "score2", "7 is outside"), (2, "score2", "7 is outside"),
                                   (3, "score2", "7 is outside")]),
    "several problems at once": (csv_bytes([row("r1", score="9"), row("r1", ""), row("r3", item="x y")]),
                                 [(1, "score", "outside"), (2, "response_id", "duplicate"), (2, "response", "empty"),
                                  (3, "item_id", "not a valid item id")]),
}


@pytest.mark.django_db
@pytest.mark.parametrize("case", list(CASES))
def test_each_problem_is_named_by_row_and_column_and_nothing_is_written(case):
    load_demo()
    data, expected = CASES[case]
    before = TrainingAnswer.objects.count()
    with pytest.raises(importing.ImportRefused) as info:
        importing.import_items(data, "answers.csv")
    problems = info.value.preview.problems
    for want_row, want_col, want_text in expected:
        assert any(p.row == want_row and p.column == want_col and want_text in p.message for p in problems), (
            f"no problem at row {want_row} column {want_col} saying {want_text!r}: {[str(p) for p in problems]}")
    assert len(problems) == len(expected), [str(p) for p in problems]
    assert TrainingAnswer.objects.count() == before
    assert not ImportBatch.objects.exists()


@pytest.mark.django_db
def test_a_file_over_the_size_limit_is_refused(settings):
    load_demo()
    settings.KDGRADE_MAX_UPLOAD_BYTES = 200
    with pytest.raises(importing.ImportRefused) as info:
        importing.import_items(csv_bytes(GOOD * 3), "big.csv")
    assert "the limit is" in str(info.value)
    assert not TrainingAnswer.objects.exists()


@pytest.mark.django_db
def test_already_imported_ids_are_duplicates_too():
    load_demo()
    importing.import_items(csv_bytes(GOOD), "a.csv")
    with pytest.raises(importing.ImportRefused) as info:
        importing.import_items(csv_bytes([row("r9"), row("r2")]), "b.csv")
    assert [(p.row, p.column) for p in info.value.preview.problems] == [(2, "response_id")]
    assert TrainingAnswer.objects.count() == 3


@pytest.mark.django_db
def test_all_or_nothing_one_bad_row_among_many_writes_nothing_then_the_fixed_file_writes_all():
    load_demo()
    good = demo_upload("batch")
    bad = good.replace(b",batch-017,", b",batch-016,")  # one duplicate id in 36 rows
    with pytest.raises(importing.ImportRefused) as info:
        importing.import_items(bad, "answers.csv")
    assert [(p.row, p.column) for p in info.value.preview.problems] == [(18, "response_id")]
    assert TrainingAnswer.objects.count() == 0 and ImportBatch.objects.count() == 0
    pv, batch = importing.import_items(good, "answers.csv")
    assert batch.n_rows == 36 == TrainingAnswer.objects.count()
    assert pv.items[0].levels == {0: 15, 1: 11, 2: 10}


@pytest.mark.django_db
def test_a_failure_while_writing_rolls_everything_back(monkeypatch):
    load_demo()
    pv = importing.preview_import(demo_upload("tx"), "answers.csv")
    assert pv.ok
    pv.rows[-1]["response_id"] = pv.rows[0]["response_id"]  # the database's unique constraint will refuse it
    with pytest.raises(Exception):  # noqa: B017 - IntegrityError (type differs per database)
        importing.commit_import(pv)
    assert TrainingAnswer.objects.count() == 0 and ImportBatch.objects.count() == 0


@pytest.mark.django_db
def test_preview_counts_levels_human_human_agreement_and_keeps_group_columns():
    load_demo()
    data = demo_upload("pv", extra={"score2": ["0", "1", "2"], "school": ["north", "south"]})
    pv = importing.preview_import(data, "answers.csv")
    assert pv.ok, pv.problems_text()
    [it] = pv.items
    assert it.n == 36 and it.levels == {0: 15, 1: 11, 2: 10}
    assert it.n_score2 == 36 and it.human_human_qwk is not None and -1 <= it.human_human_qwk <= 1
    assert pv.group_columns == ["school"]
    _, batch = importing.import_items(data, "answers.csv")
    a = TrainingAnswer.objects.filter(batch=batch).order_by("id").first()
    assert a.extra == {"school": "north"} and a.score2 == 0


@pytest.mark.django_db
def test_xlsx_upload_reads_like_csv_and_problems_name_rows():
    from openpyxl import Workbook

    load_demo()
    book = Workbook()
    sheet = book.active
    sheet.append(HEADER)
    sheet.append(["heat-spoon", Q, REF, "x1", "Metal conducts heat.", 2])
    sheet.append(["heat-spoon", Q, REF, "x2", "Wood insulates.", 1.0])
    sheet.append(["heat-spoon", Q, REF, "x3", None, 0])
    buf = io.BytesIO()
    book.save(buf)
    with pytest.raises(importing.ImportRefused) as info:
        importing.import_items(buf.getvalue(), "answers.xlsx")
    assert [(p.row, p.column) for p in info.value.preview.problems] == [(3, "response")]
    sheet.delete_rows(4)
    buf = io.BytesIO()
    book.save(buf)
    _, batch = importing.import_items(buf.getvalue(), "answers.xlsx")
    assert sorted(TrainingAnswer.objects.filter(batch=batch).values_list("score", flat=True)) == [1, 2]


CANVAS = ("Rubric Name,Criteria Name,Criteria Description,Criteria Enable Range,Rating Name,Rating Description,"
          "Rating Points,Rating Name,Rating Description,Rating Points,Rating Name,Rating Description,Rating Points,"
          "Rating Name,Rating Description,Rating Points\n"
          "Plant light,plant-light,Explains photosynthesis,false,Full,Light gives energy for sugar,3,"
          "Most,Names light and sugar,2,Some,Names light,1,None,No idea,0\n")


@pytest.mark.django_db
def test_a_canvas_rubric_export_creates_a_new_item_with_its_levels():
    rows = [["plant-light", "Why do plants need light?", "Energy for photosynthesis.", f"p{i}", f"answer {i}", i % 4]
            for i in range(8)]
    pv, _batch = importing.import_items(csv_bytes(rows), "plants.csv", CANVAS.encode(), "rubric.csv")
    item = Item.objects.get(external_id="plant-light")
    assert (item.score_min, item.score_max) == (0, 3)
    assert list(RubricLevel.objects.filter(item=item).values_list("score", "label")) == [
        (0, "None"), (1, "Some"), (2, "Most"), (3, "Full")]
    assert item.question == "Why do plants need light?" and pv.items[0].new


@pytest.mark.django_db
def test_a_canvas_rubric_with_fractional_points_or_no_matching_item_is_refused():
    rows = [["plant-light", "Q", "R", f"p{i}", f"answer {i}", i % 2] for i in range(4)]
    bad_points = CANVAS.replace(",2,Some", ",1.5,Some")
    with pytest.raises(importing.ImportRefused) as info:
        importing.import_items(csv_bytes(rows), "plants.csv", bad_points.encode(), "rubric.csv")
    assert any(p.file == "rubric.csv" and p.row == 1 and "1.5" in p.message for p in info.value.preview.problems)
    two = CANVAS + CANVAS.splitlines()[1].replace("plant-light", "other") + "\n"
    with pytest.raises(importing.ImportRefused) as info:
        importing.import_items(csv_bytes(rows), "plants.csv", two.encode(), "rubric.csv")
    assert any(p.row == 2 and p.column == "Criteria Name" for p in info.value.preview.problems)
    assert not Item.objects.filter(external_id="plant-light").exists()


@pytest.mark.django_db
def test_command_lists_problems_exits_non_zero_and_writes_nothing(tmp_path):
    load_demo()
    bad = tmp_path / "bad.csv"
    bad.write_bytes(csv_bytes([*GOOD, row("r4", score="5"), row("r1")]))
    with pytest.raises(CommandError) as info:
        call_command("import_items", "--csv", str(bad))
    text = str(info.value)
    assert "nothing written" in text and "row 4, column 'score'" in text and "row 5, column 'response_id'" in text
    assert not TrainingAnswer.objects.exists()


@pytest.mark.django_db
def test_command_dry_run_previews_and_writes_nothing_then_imports(tmp_path):
    load_demo()
    good = tmp_path / "good.csv"
    good.write_bytes(demo_upload("cmd"))
    out = io.StringIO()
    call_command("import_items", "--csv", str(good), "--dry-run", stdout=out)
    assert "heat-spoon: 36 answers" in out.getvalue() and "nothing written" in out.getvalue()
    assert not TrainingAnswer.objects.exists()
    call_command("import_items", "--csv", str(good), stdout=io.StringIO())
    assert TrainingAnswer.objects.count() == 36


@pytest.mark.django_db
def test_admin_upload_previews_then_imports_on_confirm(admin_client):
    load_demo()
    from django.core.files.uploadedfile import SimpleUploadedFile

    url = "/admin/training/importbatch/upload/"
    bad = admin_client.post(url, {"answers": SimpleUploadedFile("a.csv", csv_bytes([*GOOD, row("r4", score="9")]))})
    assert bad.status_code == 200 and b"was not imported" in bad.content and b"outside item" in bad.content
    page = admin_client.post(url, {"answers": SimpleUploadedFile("a.csv", demo_upload("adm"))})
    assert b"Import 36 answers" in page.content and not TrainingAnswer.objects.exists()
    token = page.context["token"]
    done = admin_client.post(url, {"token": token})
    assert done.status_code == 302 and TrainingAnswer.objects.count() == 36
    again = admin_client.post(url, {"token": token}, follow=True)
    assert b"expired" in again.content and TrainingAnswer.objects.count() == 36
