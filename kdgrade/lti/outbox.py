"""The grade outbox: scores written with the score's own transaction, posted by Celery, in order.

Guarantees:
- a score's post is a row written in the same transaction as the score: no commit, no post; commit,
  and the post is made sooner or later (a beat sweep finds rows whose task was lost);
- the posts of one gradebook cell (line item x user) are serialised by a lease on its GradeSlot row
  and only the newest pending post of a cell is sent: an older one is marked superseded, so an older
  score never overwrites a newer one; a platform's refusal of an older score than it holds (Moodle's
  409, Canvas's 400 "before last updated timestamp") counts as done;
- a worker killed mid-post leaves the lease to expire and the row pending: the post is made again
  with the same AGS timestamp, which platforms treat as the same score (idempotent), so the gradebook
  gets it once;
- a released grade never leaves the gradebook for "no grade": a newer attempt awaiting review is not
  posted as PendingManual over it (see `enqueue`);
- timeouts, network errors, 5xx and 429 (honouring Retry-After) are retried with exponential backoff;
  other 4xx fail the row with its reason, for a teacher or admin to retry by hand (until a newer post
  of the same cell is sent, which makes the failure moot: it is then marked superseded).
"""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from kdgrade.lti import ags
from kdgrade.lti.models import GradeOutbox, GradeSlot, ResourceLink
from scoring.models import Score

log = logging.getLogger(__name__)


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def link_posts_grades(link: ResourceLink | None) -> bool:
    return bool(link and (ags.SCOPE_SCORE in link.ags_scopes) and (link.lineitem_url or link.lineitems_url))


def holds_released_grade(slot: GradeSlot) -> bool:
    """Whether a released grade (FullyGraded) of this gradebook cell is in the gradebook or on its way
    there (sent, waiting to be sent, or failed and waiting for a retry by hand)."""
    return slot.posts.filter(
        payload__gradingProgress="FullyGraded",
        state__in=[GradeOutbox.State.SENT, GradeOutbox.State.PENDING, GradeOutbox.State.FAILED],
    ).exists()


def enqueue(score: Score, link: ResourceLink, user_sub: str, *, fully_graded: bool,
            comment: str = "") -> GradeOutbox | None:
    """Write the post of `score` to the outbox.  Call inside the transaction that saves the score;
    the delivery task is sent when that transaction commits.

    A released grade stays in the gradebook until the teacher has reviewed the newer attempt: a
    PendingManual post (no score) is not written to a cell that holds a released grade (Moodle would
    store it as "no grade"), and returns None; the score is held for review as usual, and its release
    replaces the grade.  Without a released grade, PendingManual tells the LMS an answer awaits review."""
    item = score.submission.item
    slot, _ = GradeSlot.objects.get_or_create(resource_link=link, user_sub=user_sub)
    if not fully_graded and holds_released_grade(slot):
        Score.objects.filter(pk=score.pk).update(passback_state=Score.Passback.HELD)
        log.info("lti: score %s awaits review; the released grade of cell %s stays in the gradebook",
                 score.pk, slot.pk)
        return None
    ts = timezone.now()
    payload: dict = {
        "userId": user_sub,
        "scoreMaximum": float(item.score_max - item.score_min),
        "activityProgress": "Completed" if fully_graded else "Submitted",
        "gradingProgress": "FullyGraded" if fully_graded else "PendingManual",
        "timestamp": _iso(ts),
    }
    if fully_graded:
        if score.final_score is None:
            raise ValueError("a score without a value cannot be released")
        payload["scoreGiven"] = float(score.final_score - item.score_min)
    if comment:
        payload["comment"] = comment
    row = GradeOutbox.objects.create(slot=slot, score=score, payload=payload, timestamp=ts, next_attempt_at=ts)
    Score.objects.filter(pk=score.pk).update(
        passback_state=Score.Passback.PENDING if fully_graded else Score.Passback.HELD
    )
    transaction.on_commit(lambda: schedule(slot.pk))
    return row


def schedule(slot_id: int, countdown: float = 0) -> None:
    from kdgrade.lti.tasks import deliver_grades

    try:
        deliver_grades.apply_async((slot_id,), countdown=countdown if countdown > 0 else None)
    except Exception:  # the broker is down: the beat sweep sends it later
        log.warning("lti: could not queue delivery of grade slot %s; the sweep will", slot_id, exc_info=True)


def backoff_seconds(attempts: int) -> float:
    base = float(settings.KDGRADE_LTI_RETRY_BASE)
    cap = float(settings.KDGRADE_LTI_RETRY_MAX)
    delay = min(cap, base * (2 ** max(0, attempts - 1)))
    return delay * random.uniform(0.8, 1.0)  # jitter, not a secret


@dataclass
class DeliveryResult:
    outcome: str  # "idle", "busy", "waiting"
    retry_in: float | None = None


def _lineitem_spec(row: GradeOutbox) -> ags.LineItemSpec:
    sub = row.score.submission
    assignment = sub.assignment
    return ags.LineItemSpec(
        label=assignment.title if assignment else sub.item.title,
        score_maximum=float(sub.item.score_max - sub.item.score_min),
        resource_id=f"kdgrade-assignment-{assignment.pk}" if assignment else f"kdgrade-item-{sub.item_id}",
    )


def deliver_slot(slot_id: int) -> DeliveryResult:
    """Post the newest pending score of one gradebook cell, if it is due.  Safe to call any number of
    times, from any number of workers at once."""
    owner = uuid.uuid4().hex
    now = timezone.now()
    lease = timedelta(seconds=float(settings.KDGRADE_LTI_LEASE_SECONDS))
    got = GradeSlot.objects.filter(pk=slot_id).filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now)).update(
        lease_owner=owner, lease_until=now + lease
    )
    if not got:
        return DeliveryResult("busy", retry_in=float(settings.KDGRADE_LTI_LEASE_SECONDS))
    try:
        while True:
            slot = GradeSlot.objects.select_related("resource_link__context__platform").get(pk=slot_id)
            pending = list(slot.posts.filter(state=GradeOutbox.State.PENDING).order_by("-timestamp", "-id"))
            if not pending:
                return DeliveryResult("idle")
            newest, older = pending[0], pending[1:]
            if older:
                GradeOutbox.objects.filter(pk__in=[r.pk for r in older], state=GradeOutbox.State.PENDING).update(
                    state=GradeOutbox.State.SUPERSEDED, last_error="replaced by a newer score before it was sent"
                )
            if slot.last_sent_timestamp and newest.timestamp <= slot.last_sent_timestamp:
                GradeOutbox.objects.filter(pk=newest.pk).update(
                    state=GradeOutbox.State.SUPERSEDED, last_error="a newer score was sent already"
                )
                continue
            wait = (newest.next_attempt_at - timezone.now()).total_seconds()
            if wait > 0:
                return DeliveryResult("waiting", retry_in=wait)
            if not _post_one(slot, newest, owner):
                row = GradeOutbox.objects.get(pk=newest.pk)
                if row.state == GradeOutbox.State.PENDING:
                    return DeliveryResult("waiting", retry_in=(row.next_attempt_at - timezone.now()).total_seconds())
                return DeliveryResult("idle")
    finally:
        GradeSlot.objects.filter(pk=slot_id, lease_owner=owner).update(lease_owner="", lease_until=None)


def _post_one(slot: GradeSlot, row: GradeOutbox, owner: str) -> bool:
    """One attempt at one row.  Returns True when the row is done (sent, or the platform holds newer)."""
    link = slot.resource_link
    GradeOutbox.objects.filter(pk=row.pk).update(attempts=row.attempts + 1)
    try:
        lineitem_url = ags.ensure_lineitem(link, _lineitem_spec(row))
        posted = ags.post_score(link, lineitem_url, row.payload)
    except ags.ServiceError as exc:
        attempts = row.attempts + 1
        if exc.retryable:
            delay = exc.retry_after if exc.retry_after is not None else backoff_seconds(attempts)
            GradeOutbox.objects.filter(pk=row.pk, state=GradeOutbox.State.PENDING).update(
                last_status=exc.status, last_error=exc.reason[:1000],
                next_attempt_at=timezone.now() + timedelta(seconds=delay),
            )
            log.info("lti: grade post %s attempt %d failed (%s); retry in %.1fs", row.pk, attempts, exc.reason, delay)
        else:
            with transaction.atomic():
                GradeOutbox.objects.filter(pk=row.pk, state=GradeOutbox.State.PENDING).update(
                    state=GradeOutbox.State.FAILED, last_status=exc.status, last_error=exc.reason[:1000]
                )
                Score.objects.filter(pk=row.score_id).update(passback_state=Score.Passback.FAILED)
            log.warning("lti: grade post %s failed for good: %s", row.pk, exc.reason)
        return False
    now = timezone.now()
    with transaction.atomic():
        GradeOutbox.objects.filter(pk=row.pk).update(
            state=GradeOutbox.State.SENT, sent_at=now, last_status=posted.status,
            last_error=f"the platform holds a newer score (HTTP {posted.status}): nothing to do"
            if posted.platform_holds_newer else "",
        )
        lease_until = now + timedelta(seconds=float(settings.KDGRADE_LTI_LEASE_SECONDS))
        GradeSlot.objects.filter(pk=slot.pk, lease_owner=owner).update(
            last_sent_timestamp=row.timestamp, lease_until=lease_until
        )
        # A failure of an older post of this cell is moot now: the gradebook holds a newer grade.
        GradeOutbox.objects.filter(slot_id=slot.pk, state=GradeOutbox.State.FAILED, timestamp__lt=row.timestamp).update(
            state=GradeOutbox.State.SUPERSEDED
        )
        if row.payload.get("gradingProgress") == "FullyGraded":
            Score.objects.filter(pk=row.score_id).update(passback_state=Score.Passback.SENT)
    log.info("lti: grade post %s delivered (HTTP %s)", row.pk, posted.status)
    return True


def retry_by_hand(row: GradeOutbox) -> GradeOutbox:
    """Put a failed post back in the queue (a teacher's or admin's retry button)."""
    with transaction.atomic():
        n = GradeOutbox.objects.filter(pk=row.pk, state=GradeOutbox.State.FAILED).update(
            state=GradeOutbox.State.PENDING, next_attempt_at=timezone.now(), attempts=0
        )
        if n:
            Score.objects.filter(pk=row.score_id, passback_state=Score.Passback.FAILED).update(
                passback_state=Score.Passback.PENDING
                if row.payload.get("gradingProgress") == "FullyGraded" else Score.Passback.HELD
            )
            slot_id = row.slot_id
            transaction.on_commit(lambda: schedule(slot_id))
    row.refresh_from_db()
    return row


def sweep(limit: int = 500) -> int:
    """Queue delivery for every cell with a due post and no live lease (lost tasks, killed workers)."""
    now = timezone.now()
    slot_ids = list(
        GradeOutbox.objects.filter(state=GradeOutbox.State.PENDING, next_attempt_at__lte=now)
        .filter(Q(slot__lease_until__isnull=True) | Q(slot__lease_until__lt=now))
        .values_list("slot_id", flat=True)
        .distinct()[:limit]
    )
    for slot_id in slot_ids:
        schedule(slot_id)
    return len(slot_ids)
