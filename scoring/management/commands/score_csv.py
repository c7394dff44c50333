"""Score a canonical CSV: `manage.py score_csv --csv IN.csv --out OUT.csv [--model DIR]`.

Each row is scored with the active model version of its item (`item_id` column), or with the model-version
directory given by --model.  The output has the input's columns followed by `predicted_score`,
`confidence`, `flags` (codes joined by ';') and one `p_<level>` column per score level.  A row whose item
is unknown or has no active version gets an empty score and the flag `no_active_model`.  Imports no torch.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from scoring import services
from scoring.models import Item
from scoring.scorer import LoadedModel, ModelLoadError, open_model

CHUNK = 2000
RESULT_COLUMNS = ("predicted_score", "confidence", "flags")
# Columns that repeat one long text on every row of an item: escaped for CSV once per run of equal values.
REPEATED_COLUMNS = ("question", "reference_answer")


def read_rows(handle: TextIO) -> tuple[list[str], list[list[str]]]:
    """Header and rows, each row as long as the header (missing cells "", extra cells dropped); blank
    lines skipped, as csv.DictReader does."""
    reader = csv.reader(handle)
    header = next(reader, [])
    n = len(header)
    rows = [row if len(row) == n else (row + [""] * n)[:n] for row in reader if row]
    return header, rows


def result_cells(result: services.AnswerScore, levels: list[int]) -> list[object]:
    """predicted_score, confidence, flags and one probability per level, as written to the CSV."""
    probabilities = result.probabilities
    return [
        "" if result.score is None else result.score,
        "" if result.confidence is None else f"{result.confidence:.6f}",
        ";".join(result.flags),
        *["" if (p := probabilities.get(lv)) is None else f"{p:.6f}" for lv in levels],
    ]


def _cells(rows: list[list[str]], index: int | None, default: str) -> list[str]:
    """Each row's cell in column `index`, or `default` where it is empty or there is no such column."""
    if index is None:
        return [default] * len(rows)
    return [row[index] or default for row in rows]


def write_scored(
    path: Path, fieldnames: list[str], rows: list[list[str]], results: list[services.AnswerScore], levels: set[int]
) -> None:
    """The input's columns, then predicted_score, confidence, flags (unless the input has them: then they
    are overwritten) and p_<level> per level, as csv.DictWriter wrote the rows' dicts updated with them."""
    order = sorted(levels)
    columns = [c for c in RESULT_COLUMNS if c not in fieldnames] + [f"p_{lv}" for lv in order]
    header = [*fieldnames, *columns]
    # Where each output cell comes from, in [*input cells, *result_cells]: a result column's name takes
    # the result, any other name the input's last cell of that name.
    computed = {name: len(fieldnames) + k for k, name in enumerate([*RESULT_COLUMNS, *(f"p_{lv}" for lv in order)])}
    last = {name: i for i, name in enumerate(fieldnames)}
    source = [computed[name] if name in computed else last[name] for name in header]
    plain = source == list(range(len(header)))
    repeated = [j for j, name in enumerate(header) if name in REPEATED_COLUMNS and source[j] < len(fieldnames)]

    def cells() -> Iterable[list[object]]:
        for row, r in zip(rows, results, strict=True):
            out = row + result_cells(r, order)
            yield out if plain else [out[s] for s in source]

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        write_rows(handle, header, cells(), repeated)


class _Sink:
    """A file-like target whose write returns the text: csv.writer.writerow then returns its line."""

    @staticmethod
    def write(text: str) -> str:
        return text


def write_rows(handle: TextIO, header: list[str], rows: Iterable[list[object]], repeated: Iterable[int] = ()) -> None:
    """Write like csv.writer (excel dialect), byte for byte; the cells at the `repeated` positions are
    escaped once per run of equal values instead of once per row (the writer's cost is per character).

    csv.writer escapes each cell on its own, so a line is the escaped cells joined by commas.  Each
    stretch of other cells is escaped by a csv.writer with an empty cell added (so that a lone empty
    cell is not quoted as a record of its own) and the added comma and line end cut off."""
    csv.writer(handle).writerow(header)
    repeated = set(repeated)
    if not repeated:
        csv.writer(handle).writerows(rows)
        return
    escape = csv.writer(_Sink()).writerow
    # in column order: (start, stop) of a stretch of cells, or (column, -1) for a repeated cell
    plan: list[tuple[int, int]] = []
    for j in range(len(header)):
        if j in repeated:
            plan.append((j, -1))
        elif plan and plan[-1][1] == j:
            plan[-1] = (plan[-1][0], j + 1)
        else:
            plan.append((j, j + 1))
    last: dict[int, tuple[object, str]] = {}
    lines: list[str] = []
    for row in rows:
        parts: list[str] = []
        for start, stop in plan:
            if stop >= 0:
                parts.append(escape([*row[start:stop], ""])[:-3])
                continue
            value = row[start]
            seen = last.get(start)
            if seen is None or (value is not seen[0] and value != seen[0]):
                seen = last[start] = (value, escape([value, ""])[:-3])
            parts.append(seen[1])
        lines.append(",".join(parts))
        if len(lines) >= 1000:
            lines.append("")
            handle.write("\r\n".join(lines))
            lines.clear()
    if lines:
        lines.append("")
        handle.write("\r\n".join(lines))


class _ItemLookup:
    """The item of an ``item_id`` (None where there is none).  A database without kdgrade's tables (a
    fresh checkout that never ran ``migrate``): with --model, said once and every row scored by the model
    directory alone; without it, a clear error instead of a traceback."""

    def __init__(self, have_model: bool, warn) -> None:
        self.have_model, self.warn, self.database = have_model, warn, True

    def __call__(self, item_id: str) -> Item | None:
        if not item_id or not self.database:
            return None
        try:
            return Item.objects.filter(external_id=item_id).first()
        except DatabaseError as exc:
            if not self.have_model:
                raise CommandError(f"the database has no kdgrade items ({exc}): run `manage.py migrate` "
                                   "(and register a model version), or pass --model DIR") from None
            self.database = False
            self.warn(f"no kdgrade database ({exc}): every row scored by --model alone, with the CSV's own "
                      "question and reference_answer, language en and the version's fitted threshold")
            return None


class Command(BaseCommand):
    help = "Score the responses of a canonical CSV with the active model (or --model DIR); write OUT.csv."
    # Django's system checks (URLs, admin, templates, deployment) cover nothing this command uses and
    # took a third of its start (0.75 s of 2.2 s on one core); `manage.py check` runs them.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--csv", required=True, type=Path, help="Input CSV (item_id, response, ...).")
        parser.add_argument("--out", required=True, type=Path, help="Output CSV.")
        parser.add_argument("--model", type=Path, help="A model-version directory to use for every row.")

    def handle(self, *args: object, **options: object) -> None:
        src = Path(options["csv"])
        out = Path(options["out"])
        try:
            with src.open(encoding="utf-8-sig", newline="") as handle:
                fieldnames, rows = read_rows(handle)
        except FileNotFoundError:
            raise CommandError(f"{src}: no such file") from None
        except UnicodeDecodeError as exc:
            raise CommandError(f"{src}: not UTF-8 ({exc})") from None
        need = ["response"] if options["model"] else ["item_id", "response"]
        missing = [c for c in need if c not in fieldnames]
        if missing:
            raise CommandError(f"{src}: missing column(s) {', '.join(missing)} (header: {', '.join(fieldnames)})")
        # a column name that occurs twice reads as its last cell (as csv.DictReader reads it)
        col = {name: i for i, name in enumerate(fieldnames)}

        fixed: LoadedModel | None = None
        if options["model"]:
            try:
                fixed = open_model(Path(options["model"]))
            except ModelLoadError as exc:
                raise CommandError(f"--model: {exc}") from None

        groups: dict[str, list[int]] = defaultdict(list)
        item_col = col.get("item_id")
        for i, row in enumerate(rows):
            groups[row[item_col] if item_col is not None else ""].append(i)
        by_row: dict[int, services.AnswerScore] = {}
        levels: set[int] = set()
        response_col, question_col, reference_col = col["response"], col.get("question"), col.get("reference_answer")
        lookup = _ItemLookup(fixed is not None, self.stderr.write)
        for item_id, idx in groups.items():
            item = lookup(item_id)
            version = None
            model = fixed
            if model is None and item is not None:
                try:
                    version, model = services.resolve_model(item)
                except services.ScoringUnavailable as exc:
                    self.stderr.write(f"item {item_id}: {exc}")
            if model is None:
                why = "unknown item" if item is None else "no active model version"
                self.stderr.write(f"item {item_id or '(none)'}: {why}; {len(idx)} row(s) flagged no_active_model")
            else:
                levels.update(model.labels)
            item_q = item.question if item else ""
            item_ref = services.reference_text(item) if item else ""
            for start in range(0, len(idx), CHUNK):
                part = [rows[i] for i in idx[start : start + CHUNK]]
                scored = services.score_with_model(
                    model,
                    [row[response_col] for row in part],
                    question=_cells(part, question_col, item_q),
                    reference=_cells(part, reference_col, item_ref),
                    language=item.language if item else "en",
                    confidence_threshold=item.confidence_threshold if item else None,
                    version=version,
                )
                by_row.update(zip(idx[start : start + CHUNK], scored, strict=True))

        results = [by_row[i] for i in range(len(rows))]
        write_scored(out, fieldnames, rows, results, levels)
        n_flagged = sum(bool(r.flags) for r in results)
        self.stdout.write(f"scored {len(rows)} row(s) into {out} ({n_flagged} flagged for review)")
