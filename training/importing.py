"""Uploads of human-scored answers and rubrics: read (CSV, XLSX, Canvas rubric CSV), validate, preview,
then write all of it or nothing.

The admin upload form and ``manage.py import_items`` both call :func:`preview_import` and
:func:`commit_import`.  Problems name the file, the row (1 = the first row after the header) and the
column; the import is refused while any is left.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction

from distillation.data import COLUMNS
from distillation.metrics import qwk
from scoring.models import Item, RubricLevel
from training.models import ImportBatch, TrainingAnswer

SAFE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")
CANVAS_HEADER = ("Rubric Name", "Criteria Name", "Criteria Description", "Criteria Enable Range")
KNOWN_COLUMNS = set(COLUMNS) | {"score2"}


class ImportRefused(Exception):
    """The upload has problems; ``preview.problems`` lists them.  Nothing was written."""

    def __init__(self, preview: Preview):
        self.preview = preview
        super().__init__(preview.problems_text())


@dataclass(frozen=True)
class Problem:
    file: str
    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = [self.file]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        return f"{', '.join(where)}: {self.message}"


@dataclass
class RubricSpec:
    """Rubric levels for one item, from an uploaded rubric file."""

    item_id: str
    levels: list[tuple[int, str, str]]  # (score, label, descriptor)
    title: str = ""
    question: str = ""
    reference_answers: list[str] = field(default_factory=list)
    source_row: int | None = None


@dataclass
class ItemPreview:
    item_id: str
    title: str
    new: bool
    n: int = 0
    levels: dict[int, int] = field(default_factory=dict)
    scale: list[int] = field(default_factory=list)
    n_score2: int = 0
    human_human_qwk: float | None = None
    rubric_from_upload: bool = False


@dataclass
class Preview:
    """What an upload would write, and every problem that stops it."""

    filename: str
    sha256: str = ""
    rubric_filename: str = ""
    n_rows: int = 0
    columns: list[str] = field(default_factory=list)
    group_columns: list[str] = field(default_factory=list)
    items: list[ItemPreview] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list, repr=False)
    rubrics: dict[str, RubricSpec] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problems_text(self, limit: int = 200) -> str:
        lines = [str(p) for p in self.problems[:limit]]
        if len(self.problems) > limit:
            lines.append(f"... and {len(self.problems) - limit} more problems")
        return "\n".join(lines)

    def summary(self) -> dict:
        return {
            "n_rows": self.n_rows,
            "group_columns": self.group_columns,
            "items": [
                {"item_id": p.item_id, "title": p.title, "new": p.new, "n": p.n,
                 "levels": {str(k): v for k, v in sorted(p.levels.items())}, "n_score2": p.n_score2,
                 "human_human_qwk": p.human_human_qwk, "rubric_from_upload": p.rubric_from_upload}
                for p in self.items
            ],
        }


def max_upload_bytes() -> int:
    return int(getattr(settings, "KDGRADE_MAX_UPLOAD_BYTES", 20 * 1024 * 1024))


# --- reading tables ---------------------------------------------------------------------------

def _decode(name: str, data: bytes, problems: list[Problem]) -> str | None:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        problems.append(Problem(name, line - 1 if line > 1 else None, None,
                                f"bad encoding: not UTF-8 (byte 0x{data[exc.start]:02x} on line {line}); "
                                "save the file as 'CSV UTF-8'"))
        return None


def _read_csv(name: str, data: bytes, problems: list[Problem]) -> tuple[list[str], list[list[str]]] | None:
    text = _decode(name, data, problems)
    if text is None:
        return None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records: list[list[str]] = []
    try:
        for record in reader:
            records.append(record)
    except csv.Error as exc:
        problems.append(Problem(name, max(len(records), 1), None, f"bad CSV (line {reader.line_num}): {exc}"))
        return None
    if not records:
        problems.append(Problem(name, None, None, "empty file (no header row)"))
        return None
    return [h.strip() for h in records[0]], records[1:]


def _read_xlsx(name: str, data: bytes, problems: list[Problem]) -> tuple[list[str], list[list[str]]] | None:
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a damaged file
        problems.append(Problem(name, None, None, f"not a readable XLSX workbook ({type(exc).__name__})"))
        return None
    sheet = book.worksheets[0]
    rows = [["" if v is None else (str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
             for v in r] for r in sheet.iter_rows(values_only=True)]
    book.close()
    while rows and not any(c.strip() for c in rows[-1]):
        rows.pop()
    if not rows:
        problems.append(Problem(name, None, None, "empty workbook (no header row)"))
        return None
    header = [h.strip() for h in rows[0]]
    while header and not header[-1]:
        header.pop()
    return header, [r[: len(header)] + [""] * (len(header) - len(r)) for r in rows[1:]]


def read_table(name: str, data: bytes, problems: list[Problem]) -> tuple[list[str], list[list[str]]] | None:
    """Header and rows of a CSV (UTF-8) or XLSX file; problems are appended, None when unreadable."""
    if len(data) > max_upload_bytes():
        problems.append(Problem(name, None, None, f"file is {len(data) / 1e6:.1f} MB; the limit is "
                                                  f"{max_upload_bytes() / 1e6:.0f} MB"))
        return None
    if name.lower().endswith(".xlsx") or data[:4] == b"PK\x03\x04":
        return _read_xlsx(name, data, problems)
    return _read_csv(name, data, problems)


def _int(text: str) -> int | None:
    text = (text or "").strip()
    try:
        f = float(text)
    except ValueError:
        return None
    return int(f) if f.is_integer() else None


# --- rubrics ------------------------------------------------------------------------------------

def read_rubric(name: str, data: bytes, problems: list[Problem], data_items: list[str]) -> dict[str, RubricSpec]:
    """Rubric levels per item from a kdgrade rubric JSON, a CSV ``item_id,score,label,descriptor`` or a
    Canvas rubric CSV export (one criterion per row; a criterion maps onto the item whose id is its
    name or its rubric's name, or onto the upload's only item)."""
    if len(data) > max_upload_bytes():
        problems.append(Problem(name, None, None, f"file is over the {max_upload_bytes() / 1e6:.0f} MB limit"))
        return {}
    if name.lower().endswith(".json"):
        return _rubric_json(name, data, problems)
    table = read_table(name, data, problems)
    if table is None:
        return {}
    header, rows = table
    if tuple(header[:4]) == CANVAS_HEADER:
        return _rubric_canvas(name, header, rows, problems, data_items)
    needed = ("item_id", "score", "label")
    missing = [c for c in needed if c not in header]
    if missing:
        for c in missing:
            problems.append(Problem(name, None, c, "missing column (a rubric CSV needs item_id, score, label, "
                                                   "descriptor; or upload Canvas's rubric CSV export as is)"))
        return {}
    col = {h: i for i, h in enumerate(header)}
    specs: dict[str, RubricSpec] = {}
    for n, r in enumerate(rows, start=1):
        if not any(c.strip() for c in r):
            continue
        get = lambda c, r=r: r[col[c]].strip() if c in col and col[c] < len(r) else ""  # noqa: E731
        item_id, score = get("item_id"), _int(get("score"))
        if not SAFE_ID.fullmatch(item_id):
            problems.append(Problem(name, n, "item_id", f"{item_id!r} is not a valid item id"))
            continue
        if score is None:
            problems.append(Problem(name, n, "score", f"not an integer: {get('score')!r}"))
            continue
        spec = specs.setdefault(item_id, RubricSpec(item_id, [], source_row=n))
        spec.levels.append((score, get("label") or str(score), get("descriptor")))
    return _check_specs(name, specs, problems)


def _rubric_json(name: str, data: bytes, problems: list[Problem]) -> dict[str, RubricSpec]:
    text = _decode(name, data, problems)
    if text is None:
        return {}
    try:
        doc = json.loads(text)
    except ValueError as exc:
        problems.append(Problem(name, None, None, f"not valid JSON: {exc}"))
        return {}
    specs = {}
    for n, d in enumerate(doc if isinstance(doc, list) else [doc], start=1):
        try:
            spec = RubricSpec(
                item_id=str(d["item_id"]), title=str(d.get("title", "")), question=str(d.get("question", "")),
                reference_answers=[str(x) for x in d.get("reference_answers", [])],
                levels=[(int(v["score"]), str(v.get("label", v["score"])), str(v.get("descriptor", "")))
                        for v in d["levels"]], source_row=n)
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(Problem(name, n, None, f"rubric {n}: needs item_id and levels [{{score, label, "
                                                   f"descriptor}}] ({type(exc).__name__}: {exc})"))
            continue
        specs[spec.item_id] = spec
    return _check_specs(name, specs, problems)


def _rubric_canvas(name, header, rows, problems, data_items) -> dict[str, RubricSpec]:
    triples = [i for i in range(4, len(header) - 2, 3) if header[i].startswith("Rating Name")]
    specs: dict[str, RubricSpec] = {}
    criteria = [(n, r) for n, r in enumerate(rows, start=1) if any(c.strip() for c in r)]
    for n, r in criteria:
        cell = lambda i, r=r: r[i].strip() if i < len(r) else ""  # noqa: E731
        rubric_name, criterion = cell(0), cell(1)
        target = next((x for x in (criterion, rubric_name) if x in data_items or Item.objects.filter(
            external_id=x).exists()), None)
        if target is None and len(data_items) == 1 and len(criteria) == 1:
            target = data_items[0]
        if target is None:
            problems.append(Problem(name, n, "Criteria Name",
                                    f"criterion {criterion!r} of rubric {rubric_name!r} matches no item: name the "
                                    "criterion (or the rubric) after the item_id"))
            continue
        spec = RubricSpec(target, [], title=rubric_name, source_row=n)
        for i in triples:
            label, desc, pts = cell(i), cell(i + 1), cell(i + 2)
            if not (label or desc or pts):
                continue
            score = _int(pts)
            if score is None:
                problems.append(Problem(name, n, f"Rating Points ({label or i})",
                                        f"{pts!r} is not a whole number of points; kdgrade scores are integers"))
                continue
            spec.levels.append((score, label or str(score), desc))
        specs[target] = spec
    return _check_specs(name, specs, problems)


def _check_specs(name: str, specs: dict[str, RubricSpec], problems: list[Problem]) -> dict[str, RubricSpec]:
    for spec in specs.values():
        scores = [s for s, _, _ in spec.levels]
        dupes = sorted(s for s, c in Counter(scores).items() if c > 1)
        if dupes:
            problems.append(Problem(name, spec.source_row, "score", f"item {spec.item_id!r}: level(s) {dupes} "
                                                                    "appear twice"))
        if len(set(scores)) < 2:
            problems.append(Problem(name, spec.source_row, "score",
                                    f"item {spec.item_id!r}: a rubric needs at least two levels"))
        elif sorted(set(scores)) != list(range(min(scores), max(scores) + 1)):
            problems.append(Problem(name, spec.source_row, "score",
                                    f"item {spec.item_id!r}: levels {sorted(set(scores))} are not consecutive "
                                    "whole numbers"))
        spec.levels.sort()
    return specs


# --- preview and commit ---------------------------------------------------------------------------

def preview_import(data: bytes, filename: str, rubric: bytes | None = None, rubric_filename: str = "") -> Preview:
    """Read and validate an upload (and its rubric file); writes nothing."""
    pv = Preview(filename=filename, sha256=hashlib.sha256(data).hexdigest(), rubric_filename=rubric_filename)
    table = read_table(filename, data, pv.problems)
    if table is None:
        return pv
    header, records = table
    pv.columns = header
    missing = [c for c in COLUMNS if c not in header and c not in ("question", "reference_answer")]
    for c in missing:
        pv.problems.append(Problem(filename, None, c, f"missing column (the header has: {', '.join(header)})"))
    dupes = sorted({h for h in header if h and header.count(h) > 1})
    for c in dupes:
        pv.problems.append(Problem(filename, None, c, "column appears twice in the header"))
    if missing or dupes:
        return pv
    col = {h: i for i, h in enumerate(header)}
    pv.group_columns = [h for h in header if h and h not in KNOWN_COLUMNS]
    data_items = list(dict.fromkeys(r[col["item_id"]].strip() for r in records if len(r) > col["item_id"]))
    if rubric is not None:
        pv.rubrics = read_rubric(rubric_filename or "rubric", rubric, pv.problems, data_items)
    known = {i.external_id: i for i in Item.objects.filter(external_id__in=data_items).prefetch_related(
        "rubric_levels")}
    existing_ids = defaultdict(set)
    for item_id, rid in TrainingAnswer.objects.filter(item__external_id__in=data_items).values_list(
            "item__external_id", "response_id"):
        existing_ids[item_id].add(rid)

    scales: dict[str, list[int] | None] = {}
    for item_id in data_items:
        spec = pv.rubrics.get(item_id)
        if spec is not None:
            scales[item_id] = [s for s, _, _ in spec.levels]
            item = known.get(item_id)
            if item is not None and item.model_versions.exists() and scales[item_id] != item.score_levels:
                pv.problems.append(Problem(rubric_filename, spec.source_row, "score",
                                           f"item {item_id!r}: the rubric's levels {scales[item_id]} differ from "
                                           f"the scale {item.score_levels} its model versions were trained on"))
        elif item_id in known:
            item = known[item_id]
            levels = sorted(lv.score for lv in item.rubric_levels.all())
            scales[item_id] = levels or item.score_levels
        else:
            scales[item_id] = None

    seen: dict[tuple[str, str], int] = {}
    unknown_rows: dict[str, list[int]] = defaultdict(list)
    for n, r in enumerate(records, start=1):
        if not any(c.strip() for c in r):
            pv.problems.append(Problem(filename, n, None, "empty row"))
            continue
        if len(r) != len(header):
            pv.problems.append(Problem(filename, n, None, f"has {len(r)} fields, the header has {len(header)}"))
            continue
        get = lambda c, r=r: r[col[c]] if c in col else ""  # noqa: E731
        item_id, rid, response = get("item_id").strip(), get("response_id").strip(), get("response")
        before = len(pv.problems)
        if not item_id:
            pv.problems.append(Problem(filename, n, "item_id", "empty"))
        elif not SAFE_ID.fullmatch(item_id):
            pv.problems.append(Problem(filename, n, "item_id", f"{item_id!r} is not a valid item id "
                                                               "(letters, digits, '.', '_', '-')"))
        elif scales.get(item_id) is None:
            unknown_rows[item_id].append(n)
        if not rid:
            pv.problems.append(Problem(filename, n, "response_id", "empty"))
        elif (item_id, rid) in seen:
            pv.problems.append(Problem(filename, n, "response_id",
                                       f"duplicate id {rid!r} (first at row {seen[(item_id, rid)]})"))
        elif rid in existing_ids.get(item_id, ()):
            pv.problems.append(Problem(filename, n, "response_id",
                                       f"id {rid!r} was already imported for item {item_id!r}"))
        else:
            seen[(item_id, rid)] = n
        if not response.strip():
            pv.problems.append(Problem(filename, n, "response", "empty answer"))
        scale = scales.get(item_id) or []
        score = _int(get("score"))
        if score is None:
            pv.problems.append(Problem(filename, n, "score", f"not an integer: {get('score')!r}"))
        elif scale and score not in scale:
            pv.problems.append(Problem(filename, n, "score", f"{score} is outside item {item_id!r}'s rubric "
                                                             f"({scale[0]}..{scale[-1]})"))
        score2 = None
        if "score2" in col and get("score2").strip():
            score2 = _int(get("score2"))
            if score2 is None:
                pv.problems.append(Problem(filename, n, "score2", f"not an integer: {get('score2')!r}"))
            elif scale and score2 not in scale:
                pv.problems.append(Problem(filename, n, "score2", f"{score2} is outside item {item_id!r}'s rubric "
                                                                  f"({scale[0]}..{scale[-1]})"))
                score2 = None
        if len(pv.problems) == before:
            pv.rows.append({
                "row": n, "item_id": item_id, "response_id": rid, "response": response, "score": score,
                "score2": score2, "question": get("question"), "reference_answer": get("reference_answer"),
                "extra": {c: get(c) for c in pv.group_columns},
            })
    pv.n_rows = len(records)
    for item_id, rows_of in unknown_rows.items():  # one problem per unknown item, not one per row
        shown = ", ".join(str(r) for r in rows_of[:5]) + (", ..." if len(rows_of) > 5 else "")
        pv.problems.append(Problem(filename, rows_of[0], "item_id",
                                   f"unknown item {item_id!r} (rows {shown}: {len(rows_of)} in all): create it in "
                                   "the admin, or upload a rubric for it with this file"))
    pv.problems.sort(key=lambda p: (p.file != filename, p.row or 0))
    for item_id in data_items:
        if item_id in unknown_rows or not item_id:
            continue
        rows = [r for r in pv.rows if r["item_id"] == item_id]
        item = known.get(item_id)
        spec = pv.rubrics.get(item_id)
        ip = ItemPreview(item_id=item_id, title=(item.title if item else (spec.title if spec else "")) or item_id,
                         new=item is None, n=len(rows), scale=scales.get(item_id) or [],
                         rubric_from_upload=spec is not None)
        ip.levels = {s: 0 for s in ip.scale} | dict(Counter(r["score"] for r in rows))
        pairs = [(r["score"], r["score2"]) for r in rows if r["score2"] is not None]
        ip.n_score2 = len(pairs)
        if pairs:
            ip.human_human_qwk = round(qwk([a for a, _ in pairs], [b for _, b in pairs], ip.scale), 3)
        pv.items.append(ip)
    for item_id, spec in pv.rubrics.items():
        if item_id not in data_items and item_id not in known and not Item.objects.filter(
                external_id=item_id).exists():
            pv.problems.append(Problem(rubric_filename, spec.source_row, "item_id",
                                       f"rubric for {item_id!r}: no such item and no answers to it in the upload"))
    return pv


@transaction.atomic
def commit_import(pv: Preview, user=None) -> ImportBatch:
    """Write a clean preview: new items, uploaded rubric levels, and the answers; all or nothing."""
    if not pv.ok:
        raise ImportRefused(pv)
    batch = ImportBatch.objects.create(created_by=user, filename=pv.filename[:255], sha256=pv.sha256,
                                       rubric_filename=pv.rubric_filename[:255], n_rows=len(pv.rows),
                                       summary=pv.summary())
    items: dict[str, Item] = {}
    for ip in pv.items:
        item = Item.objects.filter(external_id=ip.item_id).first()
        spec = pv.rubrics.get(ip.item_id)
        first = next(r for r in pv.rows if r["item_id"] == ip.item_id)
        if item is None:
            refs = [spec.reference_answers] if spec and spec.reference_answers else []
            refs = refs[0] if refs else list(dict.fromkeys(
                r["reference_answer"] for r in pv.rows if r["item_id"] == ip.item_id and r["reference_answer"]))
            item = Item.objects.create(
                external_id=ip.item_id, title=(ip.title or ip.item_id)[:200],
                question=(spec.question if spec and spec.question else first["question"]) or ip.item_id,
                reference_answers=refs, score_min=min(ip.scale), score_max=max(ip.scale),
                language=getattr(settings, "LANGUAGE_CODE", "en")[:2])
        if spec is not None:
            item.rubric_levels.all().delete()
            RubricLevel.objects.bulk_create([RubricLevel(item=item, score=s, label=lab[:100], descriptor=d)
                                             for s, lab, d in spec.levels])
            if (item.score_min, item.score_max) != (min(ip.scale), max(ip.scale)):
                item.score_min, item.score_max = min(ip.scale), max(ip.scale)
                item.save(update_fields=["score_min", "score_max", "updated_at"])
        items[ip.item_id] = item
    TrainingAnswer.objects.bulk_create([
        TrainingAnswer(batch=batch, item=items[r["item_id"]], response_id=r["response_id"][:200],
                       response=r["response"], score=r["score"], score2=r["score2"], extra=r["extra"])
        for r in pv.rows
    ], batch_size=1000)
    return batch


def import_items(data: bytes, filename: str, rubric: bytes | None = None, rubric_filename: str = "",
                 *, user=None, dry_run: bool = False) -> tuple[Preview, ImportBatch | None]:
    """Preview, then (unless ``dry_run`` or refused) write.  Raises ImportRefused on any problem."""
    pv = preview_import(data, filename, rubric, rubric_filename)
    if not pv.ok:
        raise ImportRefused(pv)
    return pv, (None if dry_run else commit_import(pv, user))
