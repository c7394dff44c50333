"""Many scored answers written with two multi-row INSERT statements per chunk (infrastructure below
`scoring.services`).

The ORM's `bulk_create` builds a model instance per row and prepares every field of every row through
its field class: measured, 60% of a 1,000-answer batch API request, and model instances alone another
30% once the statements were hand-written.  Here no instance is built per row: the values that are the
same for the whole batch (item, source, model version, timestamps, defaults) are prepared once, from
one template instance per table as the ORM would, and only the per-answer values (response, learner,
score, probabilities, flags, final score) per row, each by its field's own ``get_db_prep_save``.  The
rows are the ones `bulk_create` writes (tests/test_scoring_service.py compares them).  Both tables are
written inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db import connection, connections
from django.utils import timezone

from scoring.models import Score, Submission

CHUNK = 400  # rows per statement: 13 parameters a score row, far below SQLite's limit of 32,766
SUBMISSION_VARYING = ("response", "learner_ref")
SCORE_VARYING = ("submission_id", "model_score", "probabilities", "confidence", "flags", "final_score")


def supported() -> bool:
    """The database returns the ids of a multi-row INSERT (PostgreSQL; SQLite 3.35+)."""
    return bool(connection.features.can_return_rows_from_bulk_insert)


def _columns(model, template, varying: Sequence[str]) -> tuple[list[str], list, list]:
    """Every concrete column but the primary key: its name, its prepared constant value (from the
    template instance), and the field objects of the per-row columns, in ``varying`` order."""
    names, constants = [], []
    for f in model._meta.concrete_fields:
        if f.primary_key:
            continue
        names.append(f.column)
        constants.append(None if f.attname in varying else f.get_db_prep_save(getattr(template, f.attname), connection))
    fields = [model._meta.get_field(a) for a in varying]
    return names, constants, fields


def _insert(model, names: list[str], rows: list[list]) -> list[int]:
    qn = connection.ops.quote_name
    ids: list[int] = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), CHUNK):
            part = rows[start : start + CHUNK]
            values = ", ".join(["(" + ", ".join(["%s"] * len(names)) + ")"] * len(part))
            sql = (f"INSERT INTO {qn(model._meta.db_table)} ({', '.join(map(qn, names))}) "  # noqa: S608
                   f"VALUES {values} RETURNING {qn(model._meta.pk.column)}")
            cursor.execute(sql, [v for row in part for v in row])
            ids += [r[0] for r in cursor.fetchall()]
    return ids


def _rows(names: list[str], constants: list, fields: list, per_row: Iterable[Sequence]) -> list[list]:
    slots = [names.index(f.column) for f in fields]
    prep = [f.get_db_prep_save for f in fields]
    db = connections[connection.alias]  # this thread's connection, not the proxy (a lookup per use)
    out = []
    for values in per_row:
        row = list(constants)
        for slot, p, v in zip(slots, prep, values, strict=True):
            row[slot] = p(v, db)
        out.append(row)
    return out


def insert_scored(
    item_id: int, source: str, model_version_id: int | None, answers: Sequence[tuple[str, str]],
    scores: Sequence[tuple[int | None, dict, float | None, list[str]]],
) -> list[int]:
    """Insert one submission per (response, learner_ref) answer, all of one item and source, and its score
    (model score, probabilities, confidence, flags), all by one model version, as ``save`` would store
    them; returns the submissions' ids in the answers' order.  Call inside a transaction."""
    now = timezone.now()
    names, constants, fields = _columns(Submission, Submission(item_id=item_id, source=source, created_at=now),
                                        SUBMISSION_VARYING)
    sub_ids = _insert(Submission, names, _rows(names, constants, fields, answers))
    template = Score(model_version_id=model_version_id, created_at=now, updated_at=now)
    names, constants, fields = _columns(Score, template, SCORE_VARYING)
    override = template.override_score  # None: a new score has no teacher override yet
    _insert(Score, names, _rows(names, constants, fields, (
        (sub_id, score, probabilities, confidence, flags, Score.final_of(score, override))
        for sub_id, (score, probabilities, confidence, flags) in zip(sub_ids, scores, strict=True))))
    return sub_ids
