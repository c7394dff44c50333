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


class Command(BaseCommand):
    help = "Score the responses of a canonical CSV with the active model (or --model DIR); write OUT.csv."

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
        results: list[services.AnswerScore | None] = [None] * len(rows)
        levels: set[int] = set()
        response_col, question_col, reference_col = col["response"], col.get("question"), col.get("reference_answer")
        for item_id, idx in groups.items():
            item = Item.objects.filter(external_id=item_id).first() if item_id else None
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
                    question=[row[question_col] or item_q for row in part] if question_col is not None
                    else [item_q] * len(part),
                    reference=[row[reference_col] or item_ref for row in part] if reference_col is not None
                    else [item_ref] * len(part),
                    language=item.language if item else "en",
                    confidence_threshold=item.confidence_threshold if item else None,
                    version=version,
                )
                for i, r in zip(idx[start : start + CHUNK], scored, strict=True):
                    results[i] = r

        order = sorted(levels)
        columns = [c for c in RESULT_COLUMNS if c not in fieldnames] + [f"p_{lv}" for lv in order]
        header = [*fieldnames, *columns]
        # Where each output cell comes from, in [*input cells, *result_cells]: a result column replaces an
        # input column of the same name; other names take the input's (last) cell of that name.
        computed = {name: len(fieldnames) + k for k, name in enumerate([*RESULT_COLUMNS, *(f"p_{lv}" for lv in order)])}
        source = [computed.get(name, col.get(name, -1)) for name in header]
        plain = source == list(range(len(header)))
        repeated = [j for j, name in enumerate(header) if name in REPEATED_COLUMNS and source[j] < len(fieldnames)]
        n_flagged = sum(bool(r.flags) for r in results)

        def out_rows() -> Iterable[list[object]]:
            for row, r in zip(rows, results, strict=True):
                cells = row + result_cells(r, order)
                yield cells if plain else [cells[s] for s in source]

        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8", newline="") as handle:
            write_rows(handle, header, out_rows(), repeated)
        self.stdout.write(f"scored {len(rows)} row(s) into {out} ({n_flagged} flagged for review)")
