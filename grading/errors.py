"""The two ways a grading request fails: the caller may not do it (AccessDenied, 403/404), or the
input is wrong (Invalid, 400: nothing changed, the page says why)."""

from __future__ import annotations


class AccessDenied(Exception):
    """The launch session may not see or do this; `status` is 403 or 404."""

    def __init__(self, reason: str, status: int = 403) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


# What a teacher or student reads after a refused action; views carry only the code across a redirect.
INVALID_MESSAGES: dict[str, str] = {
    "empty_answer": "Please write an answer first.",
    "too_long": "Your answer is longer than the limit. Please shorten it; your text is still in the box.",
    "no_attempts_left": "You have used all your attempts for this question.",
    "resubmission_closed": "Your teacher allows one answer to this question, and you have already answered.",
    "too_many_recent": "You have sent the most answers to this question allowed in one hour. Please try again "
    "later; your text is still in the box.",
    "score_range": "Choose one of the rubric levels.",
    "number": "A number was expected.",
    "nothing_to_accept": "The scorer gave no score to accept: choose a level instead.",
    "none_selected": "Select at least one answer first.",
    "comment_empty": "Write a comment first.",
    "comment_too_long": "Please keep the comment under 2,000 characters.",
    "no_gradebook": "This placement has no gradebook column to send grades to.",
    "no_score": "There is no score to release yet: review the answer first.",
    "needs_review": "Review this answer before releasing its score.",
    "release_mode": "Unknown release mode.",
    "counts": "Unknown choice of the attempt that counts.",
    "max_attempts": "The number of attempts must be a whole number from 1 to 20, or empty for no limit.",
    "not_failed": "This grade is not waiting for a retry.",
    "roster": "The roster could not be fetched from the LMS. Try again later.",
    "item": "This item has no active model and cannot be assigned yet.",
    "deep_linking": "Assignments are added from the course's content selection (Deep Linking) dialog.",
}


class Invalid(Exception):
    """Bad input: nothing was changed.  `code` names the message in INVALID_MESSAGES."""

    def __init__(self, code: str) -> None:
        super().__init__(INVALID_MESSAGES[code])
        self.code = code
        self.reason = INVALID_MESSAGES[code]
