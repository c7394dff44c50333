"""What the LTI pages do: answer, review, override, release, retry.  Plain functions; the views only
parse, call these and render.  Every function takes the caller's LaunchSession and checks access."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from kdgrade.lti import outbox
from kdgrade.lti.models import Context, GradeOutbox, LaunchSession, LtiAssignment, Membership, ResourceLink
from scoring.flags import FLAG_MESSAGES
from scoring.models import Assignment, Item, ModelVersion, RubricLevel, Score, Submission

log = logging.getLogger(__name__)


class AccessDenied(Exception):
    """The launch session may not do this; `status` is 403 or 404."""

    def __init__(self, reason: str, status: int = 403) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def assignment_for(session: LaunchSession, assignment_id: int) -> Assignment:
    """The assignment, if it belongs to the session's course; for a learner, only the one of the link
    they launched (the LMS decides which activities a learner may open, and when)."""
    lti = LtiAssignment.objects.select_related("assignment__item").filter(assignment_id=assignment_id).first()
    if lti is None or lti.context_id != session.context_id:
        raise AccessDenied("This assignment is not part of the course you opened kdgrade from.", 404)
    if not session.is_instructor and (session.resource_link is None
                                      or session.resource_link.assignment_id != lti.assignment_id):
        raise AccessDenied("This is not the activity you opened from your course. Open it from the LMS.", 403)
    return lti.assignment


def require_instructor(session: LaunchSession) -> None:
    if not session.is_instructor:
        raise AccessDenied("This page is for instructors of the course.", 403)


def _link(session: LaunchSession, assignment: Assignment) -> ResourceLink | None:
    if session.resource_link and session.resource_link.assignment_id == assignment.pk:
        return session.resource_link
    return assignment.resource_links.filter(context=session.context).order_by("pk").first()


def feedback_level(score: Score | None, assignment: Assignment) -> RubricLevel | None:
    """The rubric level a learner is shown as feedback for `score` (None when the teacher hides it)."""
    if score is None or not assignment.show_feedback or score.final_score is None:
        return None
    return assignment.item.rubric_levels.filter(score=score.final_score).first()


def _feedback(score: Score, assignment: Assignment) -> str:
    level = feedback_level(score, assignment)
    return f"{level.label}: {level.descriptor}" if level else ""


def _queue_post(score: Score, assignment: Assignment, link: ResourceLink | None, user_sub: str,
                *, release: bool) -> GradeOutbox | None:
    if not outbox.link_posts_grades(link):
        return None
    fully = release and score.final_score is not None
    comment = _feedback(score, assignment) if fully else ""
    return outbox.enqueue(score, link, user_sub, fully_graded=fully, comment=comment)


def submit_answer(session: LaunchSession, assignment: Assignment, response: str) -> Score:
    """A learner's answer: scored, and in the same transaction its gradebook post written to the outbox
    (FullyGraded at once when the teacher chose so and the model is sure; PendingManual otherwise)."""
    from scoring.services import score_submission

    if session.is_instructor:
        raise AccessDenied("Instructors review answers; they do not submit them.", 403)
    response = response.strip()
    if not response:
        raise AccessDenied("Please write an answer first.", 400)
    check_submission_rate(session, assignment)
    with transaction.atomic():
        submission = Submission.objects.create(item=assignment.item, assignment=assignment,
                                               learner_ref=session.user.sub, lti_user=session.user,
                                               response=response, source=Submission.Source.LTI)
        score = score_submission(submission)
        release = (assignment.release == Assignment.Release.IMMEDIATE and score.model_score is not None
                   and not score.needs_review)
        _queue_post(score, assignment, _link(session, assignment), session.user.sub, release=release)
        score.refresh_from_db()
    log.info("lti: submission %s scored (assignment %s)", submission.pk, assignment.pk)
    return score


def check_submission_rate(session: LaunchSession, assignment: Assignment) -> None:
    """In immediate mode a learner sees the model's score at once: at most
    KDGRADE_LTI_MAX_SUBMISSIONS_PER_HOUR answers an hour, so the model cannot be probed answer by answer."""
    limit = settings.KDGRADE_LTI_MAX_SUBMISSIONS_PER_HOUR
    if assignment.release != Assignment.Release.IMMEDIATE or limit <= 0:
        return
    recent = Submission.objects.filter(assignment=assignment, lti_user=session.user,
                                       created_at__gte=timezone.now() - timedelta(hours=1)).count()
    if recent >= limit:
        raise AccessDenied(f"You have sent {recent} answers to this question in the last hour, the most "
                           "allowed. Please try again later.", 400)


def own_latest(session: LaunchSession, assignment: Assignment) -> Score | None:
    return (Score.objects.select_related("submission").filter(
        submission__assignment=assignment, submission__learner_ref=session.user.sub).order_by("-created_at", "-id")
        .first())


def score_visible(score: Score | None, assignment: Assignment) -> bool:
    """Whether a learner sees the score: at once in immediate mode (unless it awaits review); in
    after-review mode once the teacher released it (or set it, where there is no gradebook)."""
    if score is None or score.final_score is None:
        return False
    if score.passback_state in (Score.Passback.SENT, Score.Passback.PENDING):
        return True
    if assignment.release == Assignment.Release.IMMEDIATE:
        return not score.needs_review
    return score.passback_state == Score.Passback.NOT_APPLICABLE and score.override_score is not None


def submission_for(session: LaunchSession, submission_id: int) -> Submission:
    """A submission the session may see: its own, or any in its course for an instructor."""
    sub = Submission.objects.select_related("assignment__lti", "item").filter(pk=submission_id).first()
    lti = getattr(sub.assignment, "lti", None) if sub and sub.assignment else None
    if sub is None or lti is None or lti.context_id != session.context_id:
        raise AccessDenied("No such answer in this course.", 404)
    if not session.is_instructor and sub.learner_ref != session.user.sub:
        raise AccessDenied("You can only see your own answers.", 403)
    return sub


@dataclass
class ReviewRow:
    score: Score
    name: str
    needs_review: bool
    flags: list[str]
    failure: GradeOutbox | None = None


@dataclass
class ReviewPage:
    assignment: Assignment
    rows: list[ReviewRow]
    not_answered: list[str]
    roster_synced: bool
    failures: list[GradeOutbox] = field(default_factory=list)
    posts_grades: bool = False


def review(session: LaunchSession, assignment: Assignment) -> ReviewPage:
    """Every submission with its latest score: flagged/uncertain first, then lowest confidence."""
    require_instructor(session)
    scores = list(
        Score.objects.select_related("submission").filter(submission__assignment=assignment)
        .order_by("submission_id", "-created_at", "-id")
    )
    latest: dict[int, Score] = {}
    for s in scores:
        latest.setdefault(s.submission_id, s)
    names = dict(Membership.objects.filter(context=session.context).values_list("user__sub", "user__name"))
    failures = list(GradeOutbox.objects.filter(state=GradeOutbox.State.FAILED, score__submission__assignment=assignment)
                    .select_related("score__submission").order_by("-created_at"))
    failed_by_score = {f.score_id: f for f in failures}
    rows = [
        ReviewRow(score=s, name=names.get(s.submission.learner_ref) or "", needs_review=s.needs_review,
                  flags=[FLAG_MESSAGES.get(f, f) for f in (s.flags or [])], failure=failed_by_score.get(s.pk))
        for s in latest.values()
    ]
    rows.sort(key=lambda r: (not r.needs_review, r.score.confidence if r.score.confidence is not None else -1,
                             -r.score.submission_id))
    answered = {s.submission.learner_ref for s in latest.values()}
    learners = Membership.objects.filter(context=session.context, is_learner=True, active=True).select_related("user")
    not_answered = sorted((m.user.name or m.user.sub) for m in learners if m.user.sub not in answered)
    return ReviewPage(assignment=assignment, rows=rows, not_answered=not_answered,
                      roster_synced=Context.objects.filter(pk=session.context_id,
                                                           roster_synced_at__isnull=False).exists(), failures=failures,
                      posts_grades=outbox.link_posts_grades(_link(session, assignment)))


def _score_in_course(session: LaunchSession, assignment: Assignment, score_id: int) -> Score:
    score = Score.objects.select_related("submission__item").filter(pk=score_id,
                                                                     submission__assignment=assignment).first()
    if score is None:
        raise AccessDenied("No such score in this assignment.", 404)
    return score


def override(session: LaunchSession, assignment: Assignment, score_id: int, value: int, *, release: bool) -> Score:
    """A teacher's score replaces the model's; with `release` (or in immediate mode) it goes to the gradebook."""
    require_instructor(session)
    score = _score_in_course(session, assignment, score_id)
    item = score.submission.item
    if not item.score_min <= value <= item.score_max:
        raise AccessDenied(f"The score must be between {item.score_min} and {item.score_max}.", 400)
    with transaction.atomic():
        score.override_score = value
        score.overridden_by = f"lti-user-{session.user.pk}"
        score.overridden_at = timezone.now()
        score.save()
        if release or assignment.release == Assignment.Release.IMMEDIATE:
            _queue_post(score, assignment, _link(session, assignment), score.submission.learner_ref, release=True)
    return score


def release_all(session: LaunchSession, assignment: Assignment) -> int:
    """Send every learner's latest releasable score (reviewed or not flagged) to the gradebook."""
    require_instructor(session)
    link = _link(session, assignment)
    if not outbox.link_posts_grades(link):
        raise AccessDenied("This placement has no gradebook column to send grades to.", 400)
    n = 0
    with transaction.atomic():
        seen: set[str] = set()
        for score in (Score.objects.select_related("submission__item").filter(submission__assignment=assignment)
                      .order_by("-submission__created_at", "-submission_id", "-created_at", "-id")):
            learner = score.submission.learner_ref
            if learner in seen:
                continue
            seen.add(learner)
            if score.final_score is None or score.needs_review or score.passback_state in (
                    Score.Passback.SENT, Score.Passback.PENDING):
                continue
            _queue_post(score, assignment, link, learner, release=True)
            n += 1
    return n


def set_release_mode(session: LaunchSession, assignment: Assignment, release: str, show_feedback: bool) -> None:
    require_instructor(session)
    if release not in Assignment.Release.values:
        raise AccessDenied("Unknown release mode.", 400)
    Assignment.objects.filter(pk=assignment.pk).update(release=release, show_feedback=show_feedback)


def retry_failed(session: LaunchSession, assignment: Assignment, outbox_id: int) -> GradeOutbox:
    require_instructor(session)
    row = GradeOutbox.objects.filter(pk=outbox_id, score__submission__assignment=assignment).first()
    if row is None:
        raise AccessDenied("No such grade post in this assignment.", 404)
    return outbox.retry_by_hand(row)


# --- Deep Linking ------------------------------------------------------------------------------


def selectable_items() -> list[Item]:
    """Items an instructor can add: those with an active model version."""
    return list(Item.objects.filter(model_versions__status=ModelVersion.Status.ACTIVE).distinct().order_by("title"))


def create_assignment(session: LaunchSession, item_id: int, title: str, release: str,
                      show_feedback: bool) -> Assignment:
    """The assignment a Deep Linking selection creates, owned by the session's course."""
    require_instructor(session)
    if session.message_type != "LtiDeepLinkingRequest":
        raise AccessDenied("Assignments are added from the course's Deep Linking (content selection) dialog.", 400)
    item = Item.objects.filter(Q(pk=item_id), model_versions__status=ModelVersion.Status.ACTIVE).first()
    if item is None:
        raise AccessDenied("This item has no active model and cannot be assigned yet.", 400)
    if release not in Assignment.Release.values:
        raise AccessDenied("Unknown release mode.", 400)
    with transaction.atomic():
        assignment = Assignment.objects.create(item=item, title=(title.strip() or item.title)[:200], release=release,
                                               show_feedback=show_feedback)
        LtiAssignment.objects.create(assignment=assignment, context=session.context)
    return assignment
