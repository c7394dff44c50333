"""A score's way to the LMS gradebook, in a teacher's words."""

from __future__ import annotations

from dataclasses import dataclass

from kdgrade.lti.models import GradeOutbox
from scoring.models import Score


@dataclass(frozen=True)
class PassbackWords:
    label: str  # short, for a table cell
    detail: str = ""  # what it means and what to do
    tone: str = "neutral"  # neutral | ok | wait | bad (a CSS class, never the only signal)
    retry_id: int | None = None  # the outbox row a Retry button re-sends


def _failure_detail(row: GradeOutbox) -> str:
    status = row.last_status
    if status in (404, 410):
        return "The LMS no longer has this grade column (it may have been deleted in the gradebook)."
    if status in (401, 403):
        return "The LMS refused kdgrade's access to grades (its tool permissions may have changed)."
    if status in (400, 409, 422):
        return "The LMS refused this grade as it was sent."
    if status is None or status >= 500 or status == 429:
        return "The LMS could not be reached."
    return f"The LMS answered with an error (HTTP {status})."


def describe(score: Score | None, last_post: GradeOutbox | None, posts_grades: bool) -> PassbackWords:
    """The passback state of `score`, given its newest outbox row."""
    if score is None:
        return PassbackWords("No answer")
    if not posts_grades:
        return PassbackWords("Kept in kdgrade", "This placement has no gradebook column.")
    state = score.passback_state
    if state == Score.Passback.FAILED and last_post is not None:
        return PassbackWords("Not sent", _failure_detail(last_post) + " Retry when it is fixed.", "bad",
                             last_post.pk if last_post.state == GradeOutbox.State.FAILED else None)
    if state == Score.Passback.PENDING:
        if last_post is not None and last_post.attempts > 0 and last_post.state == GradeOutbox.State.PENDING:
            return PassbackWords("Retrying", "The LMS is not reachable; kdgrade will keep trying.", "wait")
        return PassbackWords("Sending", "On its way to the gradebook.", "wait")
    if state == Score.Passback.SENT:
        return PassbackWords("In the gradebook", "", "ok")
    if state == Score.Passback.HELD:
        return PassbackWords("Not released", "The gradebook shows the answer as waiting for grading.")
    return PassbackWords("Not released", "Not in the gradebook yet.")
