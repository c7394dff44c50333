"""``manage.py import_items --csv FILE [--rubric FILE] [--dry-run]``: the admin upload, from a shell."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from training import importing


class Command(BaseCommand):
    help = ("Import human-scored answers (CSV or XLSX; item_id, response_id, response, score; optional question, "
            "reference_answer, score2 and group columns) and optionally a rubric (kdgrade JSON, CSV, or a Canvas "
            "rubric CSV export). All or nothing: any problem is listed by row and column, and nothing is written.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--csv", required=True, type=Path, help="the scored answers (.csv or .xlsx)")
        parser.add_argument("--rubric", type=Path, help="a rubric file for new items or new rubric levels")
        parser.add_argument("--dry-run", action="store_true", help="check and preview only; write nothing")

    def handle(self, *args: object, **opts: object) -> None:
        path: Path = opts["csv"]
        rubric: Path | None = opts["rubric"]
        for p in (path, rubric):
            if p is not None and not p.is_file():
                raise CommandError(f"{p}: no such file")
        try:
            pv, batch = importing.import_items(path.read_bytes(), path.name,
                                               rubric.read_bytes() if rubric else None,
                                               rubric.name if rubric else "", dry_run=opts["dry_run"])
        except importing.ImportRefused as exc:
            n = len(exc.preview.problems)
            raise CommandError(f"refused, nothing written ({n} problem{'s' if n != 1 else ''}):\n"
                               f"{exc.preview.problems_text()}") from None
        for it in pv.items:
            levels = ", ".join(f"{k}: {v}" for k, v in sorted(it.levels.items()))
            hh = "" if it.human_human_qwk is None else f"; human-human QWK {it.human_human_qwk:.3f} on {it.n_score2}"
            self.stdout.write(f"{it.item_id}{' (new item)' if it.new else ''}: {it.n} answers ({levels}){hh}")
        if pv.group_columns:
            self.stdout.write(f"group columns: {', '.join(pv.group_columns)}")
        if batch is None:
            self.stdout.write(f"dry run: {len(pv.rows)} answers would be imported; nothing written")
        else:
            self.stdout.write(f"imported {batch.n_rows} answers (import batch {batch.pk})")
