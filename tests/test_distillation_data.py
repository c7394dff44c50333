"""Input validation: each bad file is refused with the row and column named, and nothing is written."""

from pathlib import Path

import pytest

from distillation.data import DataError, read_csv, stratified_split
from distillation.pipeline import distill_csv

pytestmark = pytest.mark.ml

HEADER = "item_id,question,reference_answer,response_id,response,score\n"
GOOD = 'a,Q?,Ref,r1,"metal conducts heat",1\na,Q?,Ref,r2,no idea,0\n'


def write(tmp_path: Path, text: str | bytes, name: str = "in.csv") -> Path:
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("item_id,question,response_id,response,score\na,Q,r1,x,1\n", "column 'reference_answer': missing column"),
        (HEADER + GOOD + "a,Q?,Ref,r3,   ,1\n", "row 3, column 'response': empty response"),
        (HEADER + GOOD + "a,Q?,Ref,r3,fine,two\n", "row 3, column 'score': not an integer: 'two'"),
        (HEADER + GOOD + "a,Q?,Ref,r3,fine,1.5\n", "row 3, column 'score': not an integer: '1.5'"),
        (HEADER + GOOD + "a,Q?,Ref,r1,again,1\n", "row 3, column 'response_id': duplicate id 'r1' (first at row 1)"),
        (HEADER + GOOD + "a,Q?,Ref,r3,too,1,many\n", "row 3: has 7 fields, the header has 6"),
        (HEADER + GOOD + ",Q?,Ref,r3,fine,1\n", "row 3, column 'item_id': empty"),
        (HEADER + GOOD + "../x,Q?,Ref,r3,fine,1\n", "row 3, column 'item_id': '../x' is not a safe id"),
        (HEADER, "no data rows"),
        ("", "empty file"),
    ],
)
def test_bad_files_are_refused_naming_row_and_column(tmp_path, content, expected):
    path = write(tmp_path, content)
    with pytest.raises(DataError) as err:
        read_csv(path)
    assert expected in str(err.value)
    assert str(path) in str(err.value)


def test_bad_encoding_names_the_row(tmp_path):
    path = write(tmp_path, (HEADER + GOOD).encode() + b"a,Q?,Ref,r3,caf\xe9 au lait,1\n")
    with pytest.raises(DataError) as err:
        read_csv(path)
    assert "row 3" in str(err.value) and "not UTF-8" in str(err.value) and "line 4" in str(err.value)


def test_score_out_of_range(tmp_path):
    path = write(tmp_path, HEADER + GOOD + "a,Q?,Ref,r3,fine,7\n")
    with pytest.raises(DataError, match=r"row 3, column 'score': 7 is out of range 0\.\.3"):
        read_csv(path, score_range=(0, 3))


def test_good_file_keeps_extra_columns(tmp_path):
    path = write(tmp_path, HEADER.strip() + ",score2,note\n" + 'a,Q?,Ref,r1,"x, y",1,1,hi\na,Q?,Ref,r2,z,0,,\n')
    ds = read_csv(path)
    assert ds.response == ["x, y", "z"] and ds.score == [1, 0]
    assert ds.extra["note"] == ["hi", ""] and ds.score2() == [1, None]
    assert len(ds.sha256) == 64


def _train_csv(tmp_path, n=20):
    rows = [f"a,Q?,Ref,r{i},answer {i} metal heat,{i % 2}\n" for i in range(n)]
    return write(tmp_path, HEADER + "".join(rows), "train.csv")


@pytest.mark.parametrize(
    ("which", "content", "expected"),
    [
        ("train", HEADER + GOOD + "a,Q?,Ref,r3,,1\n", "row 3, column 'response'"),
        ("test", HEADER + "a,Q?,Ref,t1,ok,5\n", "row 1, column 'score': 5 is out of the training range 0..1"),
        ("test", HEADER + "zz,Q?,Ref,t1,ok,1\n", "row 1, column 'item_id': item 'zz' is not in the training file"),
        ("unlabelled", "item_id,response\na,\n", "row 1, column 'response': empty response"),
        ("train", HEADER + "".join(f"a,Q?,Ref,r{i},x{i},1\n" for i in range(4)), "single score level"),
    ],
)
def test_distill_writes_nothing_for_a_refused_file(tmp_path, which, content, expected):
    out = tmp_path / "out"
    files = {"train": _train_csv(tmp_path)}
    files[which] = write(tmp_path, content, f"{which}.csv")
    with pytest.raises(DataError) as err:
        distill_csv(files["train"], out, test_csv=files.get("test"), unlabelled_csv=files.get("unlabelled"))
    assert expected in str(err.value)
    assert not out.exists()


def test_stratified_split_is_deterministic_and_stratified():
    y = [0] * 30 + [1] * 10 + [2] * 3
    keep, held = stratified_split(y, 0.2, seed=5)
    keep2, held2 = stratified_split(y, 0.2, seed=5)
    assert keep.tolist() == keep2.tolist() and held.tolist() == held2.tolist()
    assert sorted(keep.tolist() + held.tolist()) == list(range(len(y)))
    held_labels = [y[i] for i in held]
    assert held_labels.count(0) == 6 and held_labels.count(1) == 2 and held_labels.count(2) == 1
    assert stratified_split(y, 0.2, seed=6)[1].tolist() != held.tolist()
