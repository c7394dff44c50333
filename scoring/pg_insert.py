"""PostgreSQL fast path of the scoring API's store=true: a submission and its score in one statement
(infrastructure below `scoring.services`)."""

from __future__ import annotations

from django.db import connection
from django.utils import timezone

from scoring.models import Score, Submission


def _insert_sql() -> tuple[str, list[str], list[str]]:
    """One PostgreSQL statement inserting a submission and its score (a data-modifying CTE): atomic on
    its own, and one round trip instead of BEGIN, two INSERTs and COMMIT (the API's store=true path)."""
    sub_cols = ["item", "assignment", "learner_ref", "response", "source", "created_at"]
    score_cols = ["model_version", "model_score", "probabilities", "confidence", "flags", "override_score",
                  "overridden_by", "overridden_at", "final_score", "passback_state", "created_at", "updated_at"]
    sub_meta, score_meta = Submission._meta, Score._meta
    sub_db = [sub_meta.get_field(c).column for c in sub_cols]
    score_db = [score_meta.get_field(c).column for c in score_cols]
    fk = score_meta.get_field("submission").column
    # identifiers come from the models' metadata, values are parameters
    sql = (
        f'WITH s AS (INSERT INTO "{sub_meta.db_table}" ({", ".join(sub_db)}) '  # noqa: S608
        f'VALUES ({", ".join(["%s"] * len(sub_db))}) RETURNING id) '
        f'INSERT INTO "{score_meta.db_table}" ({fk}, {", ".join(score_db)}) '
        f'SELECT s.id, {", ".join(["%s"] * len(score_db))} FROM s RETURNING {fk}, id'
    )
    return sql, sub_cols, score_cols


_INSERT_ONE: tuple[str, list[str], list[str]] | None = None


def insert_one(sub: Submission, score: Score) -> Score:
    """Save one submission and its score in one statement; fills in both primary keys."""
    global _INSERT_ONE
    if _INSERT_ONE is None:
        _INSERT_ONE = _insert_sql()
    sql, sub_cols, score_cols = _INSERT_ONE
    now = timezone.now()
    sub.created_at = now
    score.submission = sub
    score.refresh_final_score()
    score.created_at = score.updated_at = now
    params = [
        *(f.get_db_prep_save(getattr(sub, f.attname), connection) for f in map(Submission._meta.get_field, sub_cols)),
        *(f.get_db_prep_save(getattr(score, f.attname), connection) for f in map(Score._meta.get_field, score_cols)),
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        sub.pk, score.pk = cursor.fetchone()
    for obj in (sub, score):
        obj._state.adding = False
        obj._state.db = connection.alias
    score.submission_id = sub.pk
    return score
