"""What the grading pages change: answers, reviews, comments, releases, attempts, settings.  Plain
functions; each takes the caller's LaunchSession, checks access, validates (raising Invalid before
anything changes) and writes its audit rows in the same transaction as the change."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from grading import selectors
from grading.errors import AccessDenied, Invalid
from grading.models import AttemptPolicy, CountingAttempt, ReviewEvent, TeacherComment
from grading.selectors import answer_limit, link_for, require_instructor
from kdgrade.lti import outbox
from kdgrade.lti.models import GradeOutbox, LaunchSession, LtiAssignment, LtiUser, ResourceLink
from scoring.models import Assignment, Item, ModelVersion, RubricLevel, Score, Submission

log = logging.getLogger(__name__)
COMMENT_MAX = 2000


def _feedback(score: Score, assignment: Assignment) -> str:
    """The comment a released grade carries to the gradebook: rubric feedback and the teacher's comment."""
    parts = []
    if assignment.show_feedback and score.final_score is not None:
        level = RubricLevel.objects.filter(item=assignment.item, score=score.final_score).first()
        if level:
            parts.append(f"{level.label}: {level.descriptor}")
    comment = TeacherComment.objects.filter(submission_id=score.submission_id).first()
    if comment:
        parts.append(f"Teacher: {comment.text}")
    return "\n\n".join(parts)


def _queue_post(score: Score, assignment: Assignment, link: ResourceLink | None, user_sub: str,
                *, release: bool) -> GradeOutbox | None:
    if not outbox.link_posts_grades(link):
        return None
    fully = release and score.final_score is not None
    return outbox.enqueue(score, link, user_sub, fully_graded=fully,
                          comment=_feedback(score, assignment) if fully else "")


def _audit(session: LaunchSession, score: Score | None, submission_id: int, action: str, *,
           old: int | None = None, new: int | None = None, note: str = "") -> ReviewEvent:
    return ReviewEvent.objects.create(submission_id=submission_id, score=score, actor=session.user,
                                      actor_name=session.user.name or session.user.sub, action=action,
                                      old_score=old, new_score=new, note=note)


# --- the student ------------------------------------------------------------------------------------


def submit_answer(session: LaunchSession, assignment: Assignment, response: str) -> Score:
    """A learner's answer: scored, and in the same transaction its gradebook post written to the outbox
    (FullyGraded at once when the teacher chose so and the model is sure; PendingManual otherwise)."""
    from scoring.services import score_submission

    if session.is_instructor:
        raise AccessDenied("Instructors review answers; they do not submit them.", 403)
    response = response.strip()
    if not response:
        raise Invalid("empty_answer")
    if len(response) > answer_limit():
        raise Invalid("too_long")
    policy = selectors.policy_for(assignment)
    with transaction.atomic():
        # One learner's answers are counted under a lock on that learner, so two quick submits cannot
        # both take the last attempt.
        LtiUser.objects.select_for_update().filter(pk=session.user.pk).first()
        done = Submission.objects.filter(assignment=assignment, learner_ref=session.user.sub).count()
        if policy.limit is not None and done >= policy.limit:
            raise Invalid("resubmission_closed" if policy.limit == 1 else "no_attempts_left")
        check_submission_rate(session, assignment)
        submission = Submission.objects.create(item=assignment.item, assignment=assignment,
                                               learner_ref=session.user.sub, lti_user=session.user,
                                               response=response, source=Submission.Source.LTI)
        score = score_submission(submission)
        release = (assignment.release == Assignment.Release.IMMEDIATE and score.model_score is not None
                   and not score.needs_review)
        _queue_post(score, assignment, link_for(session, assignment), session.user.sub, release=release)
        score.refresh_from_db()
    log.info("grading: submission %s scored (assignment %s)", submission.pk, assignment.pk)
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
        raise Invalid("too_many_recent")


# --- the teacher: one answer ------------------------------------------------------------------------


def _score_in(assignment: Assignment, score_id: int, *, lock: bool = False) -> Score:
    qs = Score.objects.select_related("submission__item").filter(pk=score_id, submission__assignment=assignment)
    score = (qs.select_for_update(of=("self",)) if lock else qs).first()
    if score is None:
        raise AccessDenied("No such score in this assignment.", 404)
    return score


def _set_score(session: LaunchSession, assignment: Assignment, score: Score, value: int, *,
               release: bool) -> Score:
    old = score.final_score
    accepted = score.override_score is None and value == score.model_score
    score.override_score = value
    score.overridden_by = session.user.name or f"lti-user-{session.user.pk}"
    score.overridden_at = timezone.now()
    score.save()
    _audit(session, score, score.submission_id,
           ReviewEvent.Action.ACCEPTED if accepted else ReviewEvent.Action.CHANGED,
           old=None if accepted else old, new=value)
    wanted = release or assignment.release == Assignment.Release.IMMEDIATE
    if wanted and _queue_post(score, assignment, link_for(session, assignment), score.submission.learner_ref,
                              release=True):
        _audit(session, score, score.submission_id, ReviewEvent.Action.RELEASED, new=value)
    return score


def accept(session: LaunchSession, assignment: Assignment, score_id: int, *, release: bool = False) -> Score:
    """The teacher confirms the scorer's score (it becomes a teacher-confirmed score)."""
    require_instructor(session)
    with transaction.atomic():
        score = _score_in(assignment, score_id, lock=True)
        if score.model_score is None:
            raise Invalid("nothing_to_accept")
        return _set_score(session, assignment, score, score.model_score, release=release)


def set_score(session: LaunchSession, assignment: Assignment, score_id: int, value: int, *, comment: str = "",
              release: bool = False) -> Score:
    """The teacher's score (and optional comment) replaces the scorer's; with `release` (or in immediate
    mode) it goes to the gradebook."""
    require_instructor(session)
    item = assignment.item
    if not item.score_min <= value <= item.score_max:
        raise Invalid("score_range")
    comment = comment.strip()
    if len(comment) > COMMENT_MAX:
        raise Invalid("comment_too_long")
    with transaction.atomic():
        score = _score_in(assignment, score_id, lock=True)
        if comment:
            _comment(session, score.submission_id, comment, score)
        if score.override_score != value:
            _set_score(session, assignment, score, value, release=release)
        elif release:
            _release(session, assignment, score)
    return score


def _comment(session: LaunchSession, submission_id: int, text: str, score: Score | None) -> TeacherComment:
    c = TeacherComment.objects.create(submission_id=submission_id, author=session.user, text=text)
    _audit(session, score, submission_id, ReviewEvent.Action.COMMENTED, note=text)
    return c


def add_comment(session: LaunchSession, assignment: Assignment, submission_id: int, text: str) -> TeacherComment:
    require_instructor(session)
    text = text.strip()
    if not text:
        raise Invalid("comment_empty")
    if len(text) > COMMENT_MAX:
        raise Invalid("comment_too_long")
    if not Submission.objects.filter(pk=submission_id, assignment=assignment).exists():
        raise AccessDenied("No such answer in this assignment.", 404)
    with transaction.atomic():
        score = Score.objects.filter(submission_id=submission_id).order_by("-created_at", "-id").first()
        return _comment(session, submission_id, text, score)


def _release(session: LaunchSession, assignment: Assignment, score: Score) -> None:
    link = link_for(session, assignment)
    if not outbox.link_posts_grades(link):
        raise Invalid("no_gradebook")
    if score.final_score is None:
        raise Invalid("no_score")
    if score.needs_review:
        raise Invalid("needs_review")
    _queue_post(score, assignment, link, score.submission.learner_ref, release=True)
    _audit(session, score, score.submission_id, ReviewEvent.Action.RELEASED, new=score.final_score)


def release(session: LaunchSession, assignment: Assignment, score_id: int) -> Score:
    """Send one answer's score to the gradebook."""
    require_instructor(session)
    with transaction.atomic():
        score = _score_in(assignment, score_id, lock=True)
        _release(session, assignment, score)
    return score


# --- the teacher: many answers ------------------------------------------------------------------------


def accept_many(session: LaunchSession, assignment: Assignment, score_ids: list[int], *,
                confident_only: bool) -> int:
    """Accept the scorer's score of each listed answer that counts and is not reviewed yet (with
    `confident_only`, only those neither flagged nor unsure); returns how many were accepted."""
    require_instructor(session)
    if not score_ids:
        raise Invalid("none_selected")
    wanted = set(score_ids)
    rows = [r for r in selectors.answer_rows(session, assignment) if r.score is not None and r.score.pk in wanted]
    n = 0
    with transaction.atomic():
        for r in rows:
            if r.reviewed or r.declined or (confident_only and not r.confident):
                continue
            score = _score_in(assignment, r.score.pk, lock=True)
            if score.override_score is None and score.model_score is not None:
                _set_score(session, assignment, score, score.model_score, release=False)
                n += 1
    return n


def release_all(session: LaunchSession, assignment: Assignment) -> int:
    """Send the score of every student's counting attempt that is ready (reviewed, or not flagged) and
    not already sent."""
    require_instructor(session)
    link = link_for(session, assignment)
    if not outbox.link_posts_grades(link):
        raise Invalid("no_gradebook")
    n = 0
    with transaction.atomic():
        for r in selectors.answer_rows(session, assignment):
            s = r.score
            if s is None or s.final_score is None or s.needs_review or s.passback_state in (
                    Score.Passback.SENT, Score.Passback.PENDING):
                continue
            _queue_post(s, assignment, link, r.learner_ref, release=True)
            _audit(session, s, s.submission_id, ReviewEvent.Action.RELEASED, new=s.final_score)
            n += 1
    return n


def retry_failed(session: LaunchSession, assignment: Assignment, outbox_id: int) -> GradeOutbox:
    require_instructor(session)
    row = GradeOutbox.objects.select_related("score").filter(pk=outbox_id,
                                                             score__submission__assignment=assignment).first()
    if row is None:
        raise AccessDenied("No such grade post in this assignment.", 404)
    if row.state != GradeOutbox.State.FAILED:
        raise Invalid("not_failed")
    with transaction.atomic():
        row = outbox.retry_by_hand(row)
        _audit(session, row.score, row.score.submission_id, ReviewEvent.Action.RETRIED)
    return row


def choose_attempt(session: LaunchSession, assignment: Assignment, submission_id: int) -> Submission:
    """The teacher makes this attempt the one that counts for its student.  A score already in the
    gradebook stays there until the chosen attempt's score is released (never silently replaced)."""
    require_instructor(session)
    sub = Submission.objects.filter(pk=submission_id, assignment=assignment).first()
    if sub is None:
        raise AccessDenied("No such answer in this assignment.", 404)
    with transaction.atomic():
        CountingAttempt.objects.update_or_create(assignment=assignment, learner_ref=sub.learner_ref,
                                                 defaults={"submission": sub, "chosen_by": session.user})
        score = Score.objects.filter(submission=sub).order_by("-created_at", "-id").first()
        _audit(session, score, sub.pk, ReviewEvent.Action.CHOSEN, new=score.final_score if score else None)
    return sub


def save_settings(session: LaunchSession, assignment: Assignment, *, release: str, show_feedback: bool,
                  resubmission_allowed: bool, max_attempts: str, counts: str) -> None:
    """Release mode, feedback and the attempts policy of an assignment."""
    require_instructor(session)
    if release not in Assignment.Release.values:
        raise Invalid("release_mode")
    if counts not in AttemptPolicy.Counts.values:
        raise Invalid("counts")
    limit: int | None = None
    if max_attempts.strip():
        if not max_attempts.strip().isdigit() or not 1 <= int(max_attempts) <= 20:
            raise Invalid("max_attempts")
        limit = int(max_attempts)
    with transaction.atomic():
        Assignment.objects.filter(pk=assignment.pk).update(release=release, show_feedback=show_feedback)
        AttemptPolicy.objects.update_or_create(assignment=assignment, defaults={
            "resubmission_allowed": resubmission_allowed, "max_attempts": limit, "counts": counts})


# --- Deep Linking ---------------------------------------------------------------------------------


def selectable_items() -> list[Item]:
    """Items an instructor can add: those with an active model version."""
    return list(Item.objects.filter(model_versions__status=ModelVersion.Status.ACTIVE).distinct().order_by("title"))


def create_assignment(session: LaunchSession, item_id: int, title: str, release: str,
                      show_feedback: bool) -> Assignment:
    """The assignment a Deep Linking selection creates, owned by the session's course."""
    require_instructor(session)
    if session.message_type != "LtiDeepLinkingRequest":
        raise Invalid("deep_linking")
    item = Item.objects.filter(Q(pk=item_id), model_versions__status=ModelVersion.Status.ACTIVE).first()
    if item is None:
        raise Invalid("item")
    if release not in Assignment.Release.values:
        raise Invalid("release_mode")
    with transaction.atomic():
        assignment = Assignment.objects.create(item=item, title=(title.strip() or item.title)[:200], release=release,
                                               show_feedback=show_feedback)
        LtiAssignment.objects.create(assignment=assignment, context=session.context)
    return assignment
