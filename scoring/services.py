"""Business logic of the scoring app: scoring answers with the item's active model version.

`score_submission(submission)` is what the LTI pages call; the REST API and the Celery tasks call
`score_answers(item, answers)` / `score_submission`.  Views and tasks stay thin.  Queries live in
`scoring.selectors`; the PostgreSQL one-statement insert (`scoring.pg_insert`) below this layer.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import connection, transaction

from scoring import batch_insert, pg_insert
from scoring import flags as flagging
from scoring.models import Item, ModelVersion, RubricLevel, Score, Submission, WorkerHeartbeat
from scoring.scorer import LoadedModel
from scoring.selectors import (  # noqa: F401  (selectors kept importable from here for callers)
    _RESOLVE,
    ScoringUnavailable,
    item_with_active_version,
    reference_text,
    resolve_model,
    rubric_level,
    rubric_levels,
)

log = logging.getLogger(__name__)


def record_heartbeat(*, queue: str, marker: str = "") -> WorkerHeartbeat:
    """Note that a worker on `queue` is alive (called from a Celery task), and forget the queue's
    heartbeats older than KDGRADE_HEARTBEAT_KEEP_HOURS."""
    beat = WorkerHeartbeat.objects.create(hostname=socket.gethostname(), queue=queue, marker=marker)
    keep = float(settings.KDGRADE_HEARTBEAT_KEEP_HOURS)
    if keep > 0:
        WorkerHeartbeat.objects.filter(queue=queue, seen_at__lt=beat.seen_at - timedelta(hours=keep)).delete()
    return beat


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
    pre = flagging.check_batch(responses, question, language)
    vid = version.pk if version else None
    vnum = version.version if version else None
    if model is None:
        return [AnswerScore(None, {}, None, [*f, flagging.NO_ACTIVE_MODEL], vid, vnum) for f in pre]
    probs = model.predict(responses, question, reference)
    labels = model.labels
    threshold = effective_threshold(confidence_threshold, model)
    top = probs.level.tolist()
    rows = probs.probabilities.astype(np.float64).tolist()  # one conversion for the batch, then plain floats
    texts = {s: (levels[s].label, levels[s].descriptor) for s in labels if s in levels} if levels else {}
    out = []
    for f, row, t in zip(pre, rows, top, strict=True):
        confidence = row[t]
        if f:
            score = None if flagging.declines(f) else labels[t]
        else:  # most answers: no flag, or only low_confidence, and a score
            score = labels[t]
            if confidence < threshold:
                f = [flagging.LOW_CONFIDENCE]
        result = AnswerScore(score, dict(zip(labels, row, strict=True)), confidence, f, vid, vnum)
        if score in texts:
            result.label, result.descriptor = texts[score]
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
) -> tuple[BatchScore, list[int]]:
    """Save (response, learner_ref) answers as submissions with their scores, all by one version; returns
    the batch's scores and the new submissions' ids, in the answers' order.  Scored first, then written
    in one short transaction that starts with a write (no read in it)."""
    batch = score_answers(item, [a[0] for a in answers], require_model=require_model, version=version)
    if len(answers) == 1 and connection.vendor == "postgresql":
        sub = Submission(item=item, response=answers[0][0], learner_ref=answers[0][1], source=source)
        pg_insert.insert_one(sub, _score_row(sub, batch.results[0]))
        return batch, [sub.pk]
    with transaction.atomic():
        if len(answers) > 1 and batch_insert.supported():
            vid = batch.version.pk if batch.version is not None else None
            ids = batch_insert.insert_scored(item.pk, source, vid, answers, [
                (r.score, r.probabilities_json(), r.confidence, r.flags) for r in batch.results])
            return batch, ids
        subs = [Submission(item=item, response=resp, learner_ref=ref, source=source) for resp, ref in answers]
        if len(subs) == 1:
            subs[0].save()
        else:
            subs = Submission.objects.bulk_create(subs)
        scores = [_score_row(s, r) for s, r in zip(subs, batch.results, strict=True)]
        for s in scores:  # bulk_create bypasses save()
            s.refresh_final_score()
        if len(scores) == 1:
            scores[0].save()
        else:
            Score.objects.bulk_create(scores)
    return batch, [s.pk for s in subs]
