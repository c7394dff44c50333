"""Score a canonical CSV: `manage.py score_csv --csv IN.csv --out OUT.csv [--model DIR]`.

Each row is scored with the active model version of its item (`item_id` column), or with the model-version
directory given by --model.  The output has the input's columns followed by `predicted_score`,
`confidence`, `flags` (codes joined by ';') and one `p_<level>` column per score level.  A row whose item
is unknown or has no active version gets an empty score and the flag `no_active_model`.  Imports no torch.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from scoring import services
from scoring.models import Item
from scoring.scorer import LoadedModel, ModelLoadError, open_model

CHUNK = 2000


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
                reader = csv.DictReader(handle)
                fieldnames = list(reader.fieldnames or [])
                rows = list(reader)
        except FileNotFoundError:
            raise CommandError(f"{src}: no such file") from None
        except UnicodeDecodeError as exc:
            raise CommandError(f"{src}: not UTF-8 ({exc})") from None
        need = ["response"] if options["model"] else ["item_id", "response"]
        missing = [c for c in need if c not in fieldnames]
        if missing:
            raise CommandError(f"{src}: missing column(s) {', '.join(missing)} (header: {', '.join(fieldnames)})")

        fixed: LoadedModel | None = None
        if options["model"]:
            try:
                fixed = open_model(Path(options["model"]))
            except ModelLoadError as exc:
                raise CommandError(f"--model: {exc}") from None

        groups: dict[str, list[int]] = defaultdict(list)
        for i, row in enumerate(rows):
            groups[row.get("item_id") or ""].append(i)
        results: list[services.AnswerScore | None] = [None] * len(rows)
        levels: set[int] = set()
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
                part = idx[start : start + CHUNK]
                questions = [rows[i].get("question") or item_q for i in part]
                references = [rows[i].get("reference_answer") or item_ref for i in part]
                scored = services.score_with_model(
                    model,
                    [rows[i]["response"] or "" for i in part],
                    question=questions,
                    reference=references,
                    language=item.language if item else "en",
                    confidence_threshold=item.confidence_threshold if item else None,
                    version=version,
                )
                for i, r in zip(part, scored, strict=True):
                    results[i] = r

        columns = [c for c in ("predicted_score", "confidence", "flags") if c not in fieldnames]
        columns += [f"p_{lv}" for lv in sorted(levels)]
        out.parent.mkdir(parents=True, exist_ok=True)
        n_flagged = 0
        with out.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=[*fieldnames, *columns], extrasaction="ignore")
            writer.writeheader()
            for row, r in zip(rows, results, strict=True):
                assert r is not None
                n_flagged += bool(r.flags)
                row = dict(row)
                row["predicted_score"] = "" if r.score is None else r.score
                row["confidence"] = "" if r.confidence is None else f"{r.confidence:.6f}"
                row["flags"] = ";".join(r.flags)
                for lv in levels:
                    p = r.probabilities.get(lv)
                    row[f"p_{lv}"] = "" if p is None else f"{p:.6f}"
                writer.writerow(row)
        self.stdout.write(f"scored {len(rows)} row(s) into {out} ({n_flagged} flagged for review)")
