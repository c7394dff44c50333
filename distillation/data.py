"""Canonical labelled-response CSV: read, validate, split.  No torch, no Django.

Layout (UTF-8, header row): ``item_id,question,reference_answer,response_id,response,score``; extra
columns are kept (``score2`` is a second human rater).  Errors name the file, the data row (1 = first row
after the header), the line in the file and the column.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

COLUMNS = ("item_id", "question", "reference_answer", "response_id", "response", "score")
UNLABELLED_COLUMNS = ("item_id", "response")
MAX_ERRORS = 10
_SAFE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")


class DataError(ValueError):
    """A refused input file.  ``problems`` lists (row, column, message); str() names file, row, column."""

    def __init__(self, path: os.PathLike | str, problems: list[tuple[int | None, str | None, str]]):
        self.path = str(path)
        self.problems = problems
        lines = []
        for row, column, message in problems[:MAX_ERRORS]:
            where = []
            if row is not None:
                where.append(f"row {row}")
            if column is not None:
                where.append(f"column '{column}'")
            lines.append(f"{', '.join(where)}: {message}" if where else message)
        more = f"\n  ... and {len(problems) - MAX_ERRORS} more problems" if len(problems) > MAX_ERRORS else ""
        super().__init__(f"{self.path}: refused:\n  " + "\n  ".join(lines) + more)


@dataclass
class Dataset:
    """Rows of one CSV file, as parallel lists (one entry per response)."""

    path: str
    sha256: str
    item_id: list[str]
    question: list[str]
    reference_answer: list[str]
    response_id: list[str]
    response: list[str]
    score: list[int | None]
    extra: dict[str, list[str]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.response)

    @property
    def items(self) -> list[str]:
        """Item ids in order of first appearance."""
        return list(dict.fromkeys(self.item_id))

    def select(self, indices) -> Dataset:
        idx = [int(i) for i in indices]
        pick = lambda values: [values[i] for i in idx]  # noqa: E731
        return Dataset(
            path=self.path,
            sha256=self.sha256,
            item_id=pick(self.item_id),
            question=pick(self.question),
            reference_answer=pick(self.reference_answer),
            response_id=pick(self.response_id),
            response=pick(self.response),
            score=pick(self.score),
            extra={k: pick(v) for k, v in self.extra.items()},
        )

    def for_item(self, item_id: str) -> Dataset:
        return self.select([i for i, x in enumerate(self.item_id) if x == item_id])

    def score2(self) -> list[int | None] | None:
        """The second rater's scores when the file has a ``score2`` column (None where blank)."""
        if "score2" not in self.extra:
            return None
        out: list[int | None] = []
        for v in self.extra["score2"]:
            v = v.strip()
            try:
                out.append(int(v) if v else None)
            except ValueError:
                out.append(None)
        return out


def _parse_int(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        f = float(text)
    except ValueError:
        return None
    if f.is_integer():
        return int(f)
    return None


def read_csv(
    path: os.PathLike | str,
    *,
    labelled: bool = True,
    score_range: tuple[int, int] | None = None,
) -> Dataset:
    """Read and validate a canonical CSV.  ``labelled=False`` reads an unscored-responses file (only
    ``item_id`` and ``response`` required; any ``score`` is ignored).  Raises :class:`DataError`."""
    p = Path(path)
    if not p.is_file():
        raise DataError(p, [(None, None, "no such file")])
    raw = p.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        row = line - 1 if line > 1 else None
        raise DataError(
            p,
            [(row, None, f"bad encoding: not UTF-8 (byte 0x{raw[exc.start]:02x} at line {line}, offset {exc.start})")],
        ) from exc
    if not text.strip():
        raise DataError(p, [(None, None, "empty file (no header row)")])

    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except csv.Error as exc:
        raise DataError(p, [(None, None, f"bad CSV header: {exc}")]) from exc
    header = [h.strip() for h in header]
    required = COLUMNS if labelled else UNLABELLED_COLUMNS
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(
            p, [(None, c, f"missing column (header has: {', '.join(header)})") for c in missing]
        )
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise DataError(p, [(None, c, "column appears twice in the header") for c in dupes])
    col = {name: i for i, name in enumerate(header)}
    extra_cols = [h for h in header if h not in COLUMNS and h]

    problems: list[tuple[int | None, str | None, str]] = []
    out = {c: [] for c in COLUMNS}
    extra: dict[str, list[str]] = {c: [] for c in extra_cols}
    seen_ids: dict[str, int] = {}
    row = 0
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append((row + 1, None, f"bad CSV (line {reader.line_num}): {exc}"))
            break
        row += 1
        if not record or (len(record) == 1 and not record[0].strip()):
            problems.append((row, None, f"empty row (line {reader.line_num})"))
            continue
        if len(record) != len(header):
            problems.append(
                (row, None, f"has {len(record)} fields, the header has {len(header)} (line {reader.line_num})")
            )
            continue

        def get(name: str, record=record) -> str:
            return record[col[name]] if name in col else ""

        item_id = get("item_id").strip()
        if not item_id:
            problems.append((row, "item_id", "empty"))
        elif not _SAFE_ID.fullmatch(item_id):
            problems.append((row, "item_id", f"{item_id!r} is not a safe id (letters, digits, '.', '_', '-')"))
        response = get("response")
        if not response.strip():
            problems.append((row, "response", "empty response"))
        rid = get("response_id").strip() if "response_id" in col else f"row-{row}"
        if "response_id" in col:
            if not rid:
                problems.append((row, "response_id", "empty"))
            elif rid in seen_ids:
                problems.append((row, "response_id", f"duplicate id {rid!r} (first at row {seen_ids[rid]})"))
            else:
                seen_ids[rid] = row
        score: int | None = None
        if labelled:
            s = get("score")
            score = _parse_int(s)
            if score is None:
                problems.append((row, "score", f"not an integer: {s!r}"))
            elif score_range is not None and not (score_range[0] <= score <= score_range[1]):
                problems.append((row, "score", f"{score} is out of range {score_range[0]}..{score_range[1]}"))
        out["item_id"].append(item_id)
        out["question"].append(get("question"))
        out["reference_answer"].append(get("reference_answer"))
        out["response_id"].append(rid)
        out["response"].append(response)
        out["score"].append(score)
        for c in extra_cols:
            extra[c].append(record[col[c]])
        if len(problems) > 100:
            break
    if row == 0 and not problems:
        problems.append((None, None, "no data rows"))
    if problems:
        raise DataError(p, problems)
    return Dataset(path=str(p), sha256=digest, extra=extra, **out)


def check_labels(train: Dataset, min_per_item: int = 4) -> dict[str, list[int]]:
    """Label set per item (sorted distinct training scores); refuses items with fewer than two
    levels or too few rows.  Returns ``{item_id: labels}``."""
    problems = []
    labels: dict[str, list[int]] = {}
    for item in train.items:
        scores = [s for s, i in zip(train.score, train.item_id, strict=True) if i == item]
        levels = sorted(set(scores))
        if len(scores) < min_per_item:
            problems.append((None, "item_id", f"item {item!r} has {len(scores)} rows; at least {min_per_item} needed"))
        elif len(levels) < 2:
            problems.append((None, "score", f"item {item!r} has a single score level ({levels[0]}): nothing to learn"))
        labels[item] = levels
    if problems:
        raise DataError(train.path, problems)
    return labels


def check_test(test: Dataset, labels: dict[str, list[int]], pooled: bool) -> None:
    """Refuse test rows whose score is outside the item's training score range (per item, or pooled)."""
    problems = []
    all_levels = sorted({x for v in labels.values() for x in v})
    for row, (item, score) in enumerate(zip(test.item_id, test.score, strict=True), start=1):
        levels = all_levels if pooled else labels.get(item)
        if levels is None:
            problems.append((row, "item_id", f"item {item!r} is not in the training file"))
        elif score is not None and not (levels[0] <= score <= levels[-1]):
            problems.append((row, "score", f"{score} is out of the training range {levels[0]}..{levels[-1]}"))
    if problems:
        raise DataError(test.path, problems)


def stratified_split(labels: list[int], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified split: returns (keep, held_out) index arrays; at least one held-out
    row per class that has two or more rows."""
    y = np.asarray(labels)
    rng = np.random.RandomState(seed)
    keep, held = [], []
    for c in sorted(set(y.tolist())):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        k = round(len(idx) * fraction)
        k = min(max(k, 1), len(idx) - 1) if len(idx) >= 2 else 0
        held.extend(idx[:k].tolist())
        keep.extend(idx[k:].tolist())
    return np.array(sorted(keep), dtype=np.int64), np.array(sorted(held), dtype=np.int64)
