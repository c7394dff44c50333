"""What reaches the gradebook when a student answers again: a grade the teacher released stays in
the platform's gradebook (lti1p3platform's AGS over HTTP) until the teacher has reviewed the newer
attempt; the newer attempt's release replaces it."""

from __future__ import annotations

from django.db import transaction

from kdgrade.lti import outbox
from kdgrade.lti.models import GradeOutbox, GradeSlot, ResourceLink
from scoring.models import Score
from tests.test_lti_outbox import answer, course, lms, release  # noqa: F401 - fixtures


def _deliver(platform, user: str) -> dict | None:
    link = ResourceLink.objects.get(resource_link_id="link-1")
    slot = GradeSlot.objects.get(resource_link=link, user_sub=user)
    outbox.deliver_slot(slot.pk)
    link.refresh_from_db()
    return platform.gradebook.result(link.lineitem_url, user) if link.lineitem_url else None



def _second_attempt_awaiting_review(assignment, learner: str) -> tuple[Score, GradeOutbox | None]:
    s2 = answer(assignment, learner, 0, confidence=0.1)
    Score.objects.filter(pk=s2.pk).update(flags=["low_confidence"])  # the model is unsure: a teacher reviews it
    s2.refresh_from_db()
    assert s2.needs_review
    link = ResourceLink.objects.get(resource_link_id="link-1")
    with transaction.atomic():
        row = outbox.enqueue(s2, link, learner, fully_graded=False)
    return s2, row


def test_released_grade_stays_until_the_newer_attempt_is_reviewed(lms, course, settings):  # noqa: F811
    assignment, _, _ = course
    s1 = answer(assignment, "student-1", 1)
    release(s1, 2)
    assert _deliver(lms, "student-1")["scoreGiven"] == 2

    s2, row = _second_attempt_awaiting_review(assignment, "student-1")
    assert row is None, "no PendingManual post over a released grade"
    s2.refresh_from_db()
    assert s2.passback_state == Score.Passback.HELD
    held = _deliver(lms, "student-1")
    assert held["scoreGiven"] == 2 and held["gradingProgress"] == "FullyGraded"

    release(s2, 1)  # the teacher reviewed the new attempt
    now = _deliver(lms, "student-1")
    assert now["scoreGiven"] == 1 and now["gradingProgress"] == "FullyGraded"
    s2.refresh_from_db()
    assert s2.passback_state == Score.Passback.SENT


def test_a_release_not_yet_sent_is_not_superseded_by_a_newer_attempt(lms, course, settings):  # noqa: F811
    """The release is still in the outbox when the student answers again: the release is what gets sent."""
    assignment, _, _ = course
    s1 = answer(assignment, "student-1", 1)
    release(s1, 2)
    _, row = _second_attempt_awaiting_review(assignment, "student-1")
    assert row is None
    sent = _deliver(lms, "student-1")
    assert sent["scoreGiven"] == 2
    assert GradeOutbox.objects.get(score=s1).state == GradeOutbox.State.SENT


def test_a_first_answer_awaiting_review_is_posted_as_pending_manual(lms, course, settings):  # noqa: F811
    """Nothing released yet: the LMS is told an answer awaits grading (no score)."""
    assignment, _, _ = course
    _, row = _second_attempt_awaiting_review(assignment, "student-2")
    assert row is not None and row.payload["gradingProgress"] == "PendingManual"
    posted = _deliver(lms, "student-2")
    assert posted["gradingProgress"] == "PendingManual" and "scoreGiven" not in posted
