"""Business logic of the scoring app: scoring answers with the item's active model version.

`score_submission(submission)` is what the LTI pages call; the REST API and the Celery tasks call
`score_answers(item, answers)` / `score_submission`.  Views and tasks stay thin.
"""

from __future__ import annotations

import logging
import multiprocessing
import socket
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from scoring import flags as flagging
from scoring.models import Item, ModelVersion, RubricLevel, Score, Submission, WorkerHeartbeat
from scoring.scorer import LoadedModel, ModelLoadError, load_model
from scoring.versions import active_version

log = logging.getLogger(__name__)


def record_heartbeat(*, queue: str, marker: str = "") -> WorkerHeartbeat:
    """Note that a worker on `queue` is alive (called from a Celery task)."""
    return WorkerHeartbeat.objects.create(hostname=socket.gethostname(), queue=queue, marker=marker)


class ScoringUnavailable(Exception):
    """The item has no active model version that can be served (the API answers 409)."""


@dataclass
class AnswerScore:
    """One answer's score.  `score` is None when the model declined (see `flags`)."""

    score: int | None
    probabilities: dict[int, float]
    confidence: float | None
    flags: list[str]
    version_id: int | None
    version_number: int | None
    label: str = ""
    descriptor: str = ""

    @property
    def needs_review(self) -> bool:
        return bool(self.flags)

    def probabilities_json(self) -> dict[str, float]:
        return {str(k): v for k, v in self.probabilities.items()}


@dataclass
class BatchScore:
    """Answers scored by ONE model version (resolved once for the whole batch)."""

    version: ModelVersion | None
    results: list[AnswerScore] = field(default_factory=list)


def reference_text(item: Item) -> str:
    """The reference answer(s) fed to the featuriser, as in training (one CSV `reference_answer`)."""
    refs = item.reference_answers or []
    if isinstance(refs, str):
        return refs
    return " \n ".join(str(r) for r in refs)


_levels_cache: dict[int, tuple[float, object, dict[int, RubricLevel]]] = {}
LEVELS_TTL_S = 30.0


def rubric_levels(item: Item) -> dict[int, RubricLevel]:
    """The item's rubric levels by score.  Cached per process while the item is unchanged (saving the
    item in the admin, rubric inline included, bumps `updated_at`), and for LEVELS_TTL_S at most."""
    hit = _levels_cache.get(item.pk)
    now = time.monotonic()
    if hit is not None and hit[1] == item.updated_at and now - hit[0] < LEVELS_TTL_S:
        return hit[2]
    levels = {level.score: level for level in item.rubric_levels.all()}
    _levels_cache[item.pk] = (now, item.updated_at, levels)
    return levels


_ITEM_WITH_ACTIVE_SQL = (
    "SELECT i.*, v.id AS active_id, v.version AS active_number, v.artifact_path AS active_path, "
    "v.checksum AS active_checksum FROM scoring_item i LEFT JOIN scoring_modelversion v "
    "ON v.item_id = i.id AND v.status = %s WHERE i.external_id = %s"
)


def item_with_active_version(external_id: str) -> tuple[Item, ModelVersion | None] | None:
    """The item and its active version in ONE query (the API's hot path), or None for no such item."""
    rows = list(Item.objects.raw(_ITEM_WITH_ACTIVE_SQL, [ModelVersion.Status.ACTIVE, external_id]))
    if not rows:
        return None
    item = rows[0]
    if item.active_id is None:
        return item, None
    version = ModelVersion(id=item.active_id, item_id=item.pk, version=item.active_number,
                           artifact_path=item.active_path, checksum=item.active_checksum,
                           status=ModelVersion.Status.ACTIVE)
    return item, version


def rubric_level(item: Item, score: int | None) -> RubricLevel | None:
    """The rubric level of a score (label and descriptor), or None."""
    if score is None:
        return None
    return item.rubric_levels.filter(score=score).first()


_RESOLVE = object()


def resolve_model(
    item: Item, version: ModelVersion | object | None = _RESOLVE
) -> tuple[ModelVersion | None, LoadedModel | None]:
    """The item's active version and its loaded model, resolved ONCE (one query, unless the caller
    looked the version up already; the session is cached per process).  (None, None) when no version
    is active; raises ScoringUnavailable when the active version's files cannot be served."""
    if version is _RESOLVE:
        version = active_version(item)
    if version is None:
        return None, None
    try:
        return version, load_model(version.artifact_path, version.checksum)
    except ModelLoadError as exc:
        log.error("active model version %s of %s cannot be served: %s", version.pk, item.external_id, exc)
        raise ScoringUnavailable(f"the active model version {version.version} cannot be served: {exc}") from exc


OVERLAP_MIN_BATCH = 64
_helper_pool: ThreadPoolExecutor | None = None
_helper_lock = threading.Lock()

# The featuriser holds the GIL for most of its work, so flags computed on another *thread* do not run in
# parallel with it (measured: a 1,000-answer batch took featuriser + flags, 40 + 20 ms, even on idle
# cores).  Batches of PROCESS_MIN_BATCH answers or more have their flags computed in one helper
# *process* per web/worker process (spawned, started in the background at the first large batch, which
# still uses this process), while this process featurises: about 40 ms per 1,000 answers instead of 60.
# Where a child process cannot be had (a daemonic process such as a Celery prefork child, or a broken
# pool), the flags are computed here as before.  Same function, same results.
PROCESS_MIN_BATCH = 256
_flag_pool: ProcessPoolExecutor | None = None
_flag_pool_ready: Future | None = None
_flag_pool_failed = False


def _flags_process() -> ProcessPoolExecutor | None:
    """The helper process for flags, once it has started; None until then or where none can be had."""
    global _flag_pool, _flag_pool_ready, _flag_pool_failed
    if _flag_pool_ready is not None and _flag_pool_ready.done() and not _flag_pool_failed:
        return _flag_pool
    with _helper_lock:
        if _flag_pool is None and not _flag_pool_failed:
            try:
                if multiprocessing.current_process().daemon:
                    raise RuntimeError("a daemonic process cannot have children")
                _flag_pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
                _flag_pool_ready = _flag_pool.submit(flagging.check_batch, ["warm up"], "question", "en")
            except Exception as exc:  # any failure: flags stay in this process
                log.info("flags stay in process: %s", exc)
                _flag_pool_failed = True
    return None


def _flags_here_or_there(responses: Sequence[str], question, language: str) -> Future | None:
    pool = _flags_process() if len(responses) >= PROCESS_MIN_BATCH else None
    if pool is None:
        return None
    try:
        return pool.submit(flagging.check_batch, list(responses),
                           question if isinstance(question, str) else list(question), language)
    except Exception as exc:  # a broken pool: give up on it
        _give_up_flags_process(exc)
        return None


def _give_up_flags_process(exc: BaseException) -> None:
    global _flag_pool_failed
    log.warning("flags helper process unusable, computing flags in process: %r", exc)
    _flag_pool_failed = True


def _helper() -> ThreadPoolExecutor:
    global _helper_pool
    if _helper_pool is None:
        with _helper_lock:
            if _helper_pool is None:
                _helper_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kdgrade-score")
    return _helper_pool


def score_with_model(
    model: LoadedModel | None,
    responses: Sequence[str],
    *,
    question: str | Sequence[str],
    reference: str | Sequence[str],
    language: str = "en",
    confidence_threshold: float | None = None,
    version: ModelVersion | None = None,
    levels: dict[int, RubricLevel] | None = None,
) -> list[AnswerScore]:
    """Flags and (when there is a model) scores for a batch of answers: to one question (strings), or
    one question and reference per answer (sequences)."""
    # A large batch has its flags computed in a helper process while this one featurises (see
    # PROCESS_MIN_BATCH); failing that, a batch of OVERLAP_MIN_BATCH or more is featurised on a helper
    # thread while this thread computes the flags (which overlaps only the GIL-free parts).
    remote = _flags_here_or_there(responses, question, language) if model is not None else None
    future = None
    if remote is None and model is not None and len(responses) >= OVERLAP_MIN_BATCH:
        future = _helper().submit(model.predict, responses, question, reference)
    probs = None
    pre = None
    if remote is not None:
        probs = model.predict(responses, question, reference)
        try:
            pre = remote.result()
        except Exception as exc:  # the helper process died: compute the flags here
            _give_up_flags_process(exc)
    if pre is None:
        pre = flagging.check_batch(responses, question, language)
    vid = version.pk if version else None
    vnum = version.version if version else None
    if model is None:
        return [
            AnswerScore(None, {}, None, [*f, flagging.NO_ACTIVE_MODEL], vid, vnum) for f in pre
        ]
    if probs is None:
        probs = future.result() if future else model.predict(responses, question, reference)
    labels = model.labels
    threshold = effective_threshold(confidence_threshold, model)
    top = probs.level.tolist()
    rows = probs.probabilities.astype(np.float64).tolist()  # one conversion for the batch, then plain floats
    confidences = [row[t] for row, t in zip(rows, top, strict=True)]
    out = []
    for f, row, t, confidence in zip(pre, rows, top, confidences, strict=True):
        flags = f if f or confidence >= threshold else [flagging.LOW_CONFIDENCE]
        score = None if flagging.declines(flags) else labels[t]
        result = AnswerScore(score, dict(zip(labels, row, strict=True)), confidence, flags, vid, vnum)
        if levels and score is not None and score in levels:
            result.label, result.descriptor = levels[score].label, levels[score].descriptor
        out.append(result)
    return out


def effective_threshold(item_threshold: float | None, model: LoadedModel) -> float:
    """The item's override when an admin set one, else the threshold fitted with the version."""
    if item_threshold is not None:
        return float(item_threshold)
    if model.confidence_threshold is not None:
        return model.confidence_threshold
    return settings.KDGRADE_DEFAULT_CONFIDENCE_THRESHOLD  # a version without a fitted threshold


def score_answers(
    item: Item, responses: Sequence[str], *, require_model: bool = False, version: object = _RESOLVE
) -> BatchScore:
    """Score answers to an item with its active version (the same version for all of them).

    Without an active version the answers are flagged `no_active_model` (or, with `require_model`,
    ScoringUnavailable is raised: the API's choice).  `version`: the active version when the caller
    has just looked it up (see item_with_active_version), to save a query."""
    try:
        version, model = resolve_model(item, version)
    except ScoringUnavailable:
        if require_model:
            raise
        version, model = None, None
    if model is None and require_model:
        raise ScoringUnavailable(f"item {item.external_id} has no active model version")
    results = score_with_model(
        model,
        responses,
        question=item.question,
        reference=reference_text(item),
        language=item.language,
        confidence_threshold=item.confidence_threshold,
        version=version,
        levels=rubric_levels(item) if model is not None else None,
    )
    return BatchScore(version=version, results=results)


def _score_row(submission: Submission, result: AnswerScore) -> Score:
    return Score(
        submission=submission,
        model_version_id=result.version_id,
        model_score=result.score,
        probabilities=result.probabilities_json(),
        confidence=result.confidence,
        flags=result.flags,
    )


def score_submission(submission: Submission) -> Score:
    """Score a saved submission with its item's active model and save a new Score.  Never raises for
    the model's sake: with no servable active version the Score says so in its flags."""
    item = submission.item
    batch = score_answers(item, [submission.response])
    score = _score_row(submission, batch.results[0])
    score.save()
    return score


def create_scored_submissions(
    item: Item,
    answers: Sequence[tuple[str, str]],
    *,
    source: str = Submission.Source.API,
    require_model: bool = True,
    version: object = _RESOLVE,
) -> tuple[BatchScore, list[Submission]]:
    """Save (response, learner_ref) answers as submissions with their scores, all by one version.
    Scored first, then written in one short transaction that starts with a write (no read in it)."""
    batch = score_answers(item, [a[0] for a in answers], require_model=require_model, version=version)
    subs = [Submission(item=item, response=resp, learner_ref=ref, source=source) for resp, ref in answers]
    if len(subs) == 1 and connection.vendor == "postgresql":
        _insert_one_postgresql(subs[0], batch.results[0])
        return batch, subs
    with transaction.atomic():
        if len(subs) == 1:
            subs[0].save()
        else:
            subs = Submission.objects.bulk_create(subs)
        scores = [_score_row(s, r) for s, r in zip(subs, batch.results, strict=True)]
        for s in scores:  # Score.save() computes final_score; bulk_create bypasses save()
            s.final_score = s.override_score if s.override_score is not None else s.model_score
        if len(scores) == 1:
            scores[0].save()
        else:
            Score.objects.bulk_create(scores)
    return batch, subs


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


def _insert_one_postgresql(sub: Submission, result: AnswerScore) -> Score:
    """Save one submission and its score in one statement; fills in both primary keys."""
    global _INSERT_ONE
    if _INSERT_ONE is None:
        _INSERT_ONE = _insert_sql()
    sql, sub_cols, score_cols = _INSERT_ONE
    now = timezone.now()
    sub.created_at = now
    score = _score_row(sub, result)
    score.final_score = score.model_score
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
