"""Many scored answers written with two multi-row INSERT statements per chunk (infrastructure below
`scoring.services`).

The ORM's `bulk_create` prepares every field of every row through its field class: measured, 60% of a
1,000-answer batch API request.  Here the values that are the same for the whole batch (item, source,
model version, timestamps, defaults) are prepared once, from model instances as the ORM would, and only
the per-answer values (response, learner, score, probabilities, flags) per row; the rows are the ones
`bulk_create` writes (tests/test_scoring_service.py compares them).  Both tables are written inside the
caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection
from django.utils import timezone

from scoring.models import Score, Submission

CHUNK = 400  # rows per statement: 13 parameters a score row, far below SQLite's limit of 32,766


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


def _rows(names: list[str], constants: list, fields: list, varying: Sequence[str], per_row) -> list[list]:
    slots = [names.index(f.column) for f in fields]
    prep = [f.get_db_prep_save for f in fields]
    out = []
    for values in per_row:
        row = list(constants)
        for slot, p, v in zip(slots, prep, values, strict=True):
            row[slot] = p(v, connection)
        out.append(row)
    return out


def insert_scored(submissions: list[Submission], scores: list[Score]) -> None:
    """Insert unsaved submissions (all of one item and source) and their unsaved scores (all by one model
    version), filling in primary keys and timestamps as ``save`` would.  Call inside a transaction."""
    now = timezone.now()
    first_sub, first_score = submissions[0], scores[0]
    sub_template = Submission(item_id=first_sub.item_id, source=first_sub.source, created_at=now)
    sub_varying = ("response", "learner_ref")
    names, constants, fields = _columns(Submission, sub_template, sub_varying)
    ids = _insert(Submission, names, _rows(names, constants, fields, sub_varying,
                                           ((s.response, s.learner_ref) for s in submissions)))
    for sub, pk in zip(submissions, ids, strict=True):
        sub.pk, sub.created_at = pk, now
        sub._state.adding, sub._state.db = False, connection.alias
    score_template = Score(model_version_id=first_score.model_version_id, created_at=now, updated_at=now)
    score_varying = ("submission_id", "model_score", "probabilities", "confidence", "flags", "final_score")
    for score, sub in zip(scores, submissions, strict=True):
        score.submission = sub
        score.refresh_final_score()
    names, constants, fields = _columns(Score, score_template, score_varying)
    ids = _insert(Score, names, _rows(names, constants, fields, score_varying, (
        (s.submission_id, s.model_score, s.probabilities, s.confidence, s.flags, s.final_score) for s in scores)))
    for score, pk in zip(scores, ids, strict=True):
        score.pk, score.created_at, score.updated_at = pk, now, now
        score._state.adding, score._state.db = False, connection.alias
