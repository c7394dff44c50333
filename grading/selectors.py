"""Read-only queries of the grading pages.  Each takes the caller's LaunchSession and checks access;
none writes."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from types import SimpleNamespace

from django.conf import settings

from grading.errors import AccessDenied
from grading.models import AttemptPolicy, CountingAttempt, ReviewEvent, TeacherComment
from grading.passback import PassbackWords, describe
from kdgrade.lti import outbox
from kdgrade.lti.models import Context, GradeOutbox, LaunchSession, LtiAssignment, Membership, ResourceLink
from scoring.flags import FLAG_MESSAGES, MAX_CHARS, REVIEW_ONLY_FLAGS
from scoring.models import Assignment, RubricLevel, Score, Submission


def answer_limit() -> int:
    """The longest answer the pages accept: what the model scores (longer is flagged too long and
    declined), and never above the deployment's KDGRADE_MAX_ANSWER_CHARS."""
    return min(MAX_CHARS, settings.KDGRADE_MAX_ANSWER_CHARS)


# --- access --------------------------------------------------------------------------------------


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


def submission_for(session: LaunchSession, submission_id: int) -> Submission:
    """A submission the session may see: its own, or any in its course for an instructor."""
    sub = Submission.objects.select_related("assignment__lti", "assignment__item", "item").filter(
        pk=submission_id).first()
    lti = getattr(sub.assignment, "lti", None) if sub and sub.assignment else None
    if sub is None or lti is None or lti.context_id != session.context_id:
        raise AccessDenied("No such answer in this course.", 404)
    if not session.is_instructor and sub.learner_ref != session.user.sub:
        raise AccessDenied("You can only see your own answers.", 403)
    return sub


def link_for(session: LaunchSession, assignment: Assignment) -> ResourceLink | None:
    """The placement (resource link) whose gradebook column the assignment's grades go to."""
    if session.resource_link and session.resource_link.assignment_id == assignment.pk:
        return session.resource_link
    return assignment.resource_links.filter(context=session.context).order_by("pk").first()


def policy_for(assignment: Assignment) -> AttemptPolicy:
    """The assignment's attempts policy (defaults, unsaved, when the teacher never set one)."""
    return AttemptPolicy.objects.filter(assignment=assignment).first() or AttemptPolicy(assignment=assignment)


def levels(assignment: Assignment) -> list[RubricLevel]:
    """The rubric levels of the assignment's item, every score of its range (descriptor '' where missing)."""
    item = assignment.item
    known = {lv.score: lv for lv in item.rubric_levels.all()}
    return [known.get(s) or RubricLevel(item=item, score=s, label=f"Level {s}", descriptor="")
            for s in range(item.score_min, item.score_max + 1)]


# --- one row per student -----------------------------------------------------------------------


@dataclass
class Attempt:
    number: int
    submission: Submission
    score: Score | None


@dataclass
class AnswerRow:
    """A student's answer that counts, with its state in words."""

    learner_ref: str
    name: str
    attempts: list[Attempt]
    counting: Attempt
    chosen: bool  # a teacher chose this attempt (else the policy did)
    passback: PassbackWords = field(default_factory=lambda: PassbackWords(""))
    position: int = 0

    @property
    def score(self) -> Score | None:
        return self.counting.score

    @property
    def submission(self) -> Submission:
        return self.counting.submission

    @property
    def reviewed(self) -> bool:
        return self.score is not None and self.score.override_score is not None

    @property
    def declined(self) -> bool:
        return self.score is None or self.score.model_score is None

    @property
    def flagged(self) -> bool:
        return bool(self.score and set(self.score.flags or []) - REVIEW_ONLY_FLAGS)

    @property
    def needs_review(self) -> bool:
        """Nobody should rely on this score until a teacher looked: declined, flagged or unsure."""
        return not self.reviewed and (self.declined or bool(self.score and self.score.flags))

    @property
    def confident(self) -> bool:
        """Unreviewed, scored and not flagged at all: what bulk accept takes."""
        return not self.reviewed and not self.declined and not (self.score and self.score.flags)

    @property
    def state(self) -> str:
        if self.reviewed:
            return "reviewed"
        return "needs_review" if self.needs_review else "unreviewed"

    @property
    def state_label(self) -> str:
        """A short state for a table cell."""
        if self.reviewed:
            s = self.score
            if s.model_score is None:
                return "Scored by a teacher"
            return "Confirmed" if s.override_score == s.model_score else f"Changed {s.model_score} → {s.override_score}"
        if self.declined:
            return "Needs your score"
        return "Needs review" if self.needs_review else "Not reviewed"

    @property
    def state_words(self) -> str:
        if self.reviewed:
            s = self.score
            if s.model_score is None:
                return f"Reviewed: a teacher gave {s.override_score} (the scorer declined)"
            if s.override_score != s.model_score:
                return f"Reviewed: changed from {s.model_score} to {s.override_score}"
            return "Reviewed: the scorer's score confirmed"
        if self.declined:
            return "Needs your score: the scorer declined"
        if self.needs_review:
            return "Needs review"
        return "Scored by the scorer, not reviewed"

    @property
    def flag_words(self) -> list[str]:
        return [FLAG_MESSAGES.get(f, f) for f in (self.score.flags if self.score else [])]

    def queue_key(self) -> tuple:
        """Review order: what needs a look first, then least confident first, oldest first."""
        s = self.score
        conf = s.confidence if s and s.confidence is not None else -1.0
        return (self.reviewed, not self.needs_review, conf, self.submission.created_at, self.submission.pk)


# What ordering and states need; the queue loads the rest (answer text, probabilities) for one row only.
_LEAN_SCORE = ("id", "submission_id", "model_score", "override_score", "overridden_by", "confidence", "flags",
               "final_score", "passback_state", "created_at")
_LEAN_SUBMISSION = ("id", "learner_ref", "created_at", "assignment_id", "item_id")


def _lean(values: dict) -> SimpleNamespace:
    """A read-only stand-in for a model row (building 400 model instances is most of a queue request)."""
    return SimpleNamespace(pk=values["id"], **values)


def _latest_scores(assignment: Assignment, lean: bool = False,
                   submission_ids: list[int] | None = None) -> dict[int, Score]:
    latest: dict[int, Score] = {}
    qs = (Score.objects.filter(submission__assignment=assignment) if submission_ids is None
          else Score.objects.filter(submission_id__in=submission_ids))
    qs = qs.order_by("submission_id", "-created_at", "-id")
    for s in (map(_lean, qs.values(*_LEAN_SCORE)) if lean else qs):
        latest.setdefault(s.submission_id, s)
    return latest


def _counting(attempts: list[Attempt], policy: AttemptPolicy, chosen_id: int | None) -> tuple[Attempt, bool]:
    if chosen_id is not None:
        for a in attempts:
            if a.submission.pk == chosen_id:
                return a, True
    if policy.counts == AttemptPolicy.Counts.HIGHEST:
        scored = [a for a in attempts if a.score is not None and a.score.final_score is not None]
        if scored:
            return max(scored, key=lambda a: (a.score.final_score, a.number)), False
    return attempts[-1], False


def names_in(context: Context | int) -> dict[str, str]:
    return dict(Membership.objects.filter(context=context).values_list("user__sub", "user__name"))


def answer_rows(session: LaunchSession, assignment: Assignment, *, lean: bool = False,
                passback: bool = True) -> list[AnswerRow]:
    """One row per student who answered, with the attempt that counts, in review order.  `lean` loads
    only what the order and the states need (answer texts and probabilities load on use);
    without `passback`, rows say nothing of the gradebook."""
    require_instructor(session)
    policy = policy_for(assignment)
    scores = _latest_scores(assignment, lean)
    chosen = dict(CountingAttempt.objects.filter(assignment=assignment).values_list("learner_ref", "submission_id"))
    names = names_in(session.context_id)
    by_learner: dict[str, list[Attempt]] = defaultdict(list)
    subs = Submission.objects.filter(assignment=assignment).order_by("created_at", "id")
    for sub in map(_lean, subs.values(*_LEAN_SUBMISSION)) if lean else subs:
        attempts = by_learner[sub.learner_ref]
        attempts.append(Attempt(len(attempts) + 1, sub, scores.get(sub.pk)))
    rows = []
    for ref, attempts in by_learner.items():
        counting, was_chosen = _counting(attempts, policy, chosen.get(ref))
        rows.append(AnswerRow(ref, names.get(ref) or "", attempts, counting, was_chosen))
    anonymous = 0
    rows.sort(key=AnswerRow.queue_key)
    for i, row in enumerate(rows):
        row.position = i
        if not row.name:
            anonymous += 1
            row.name = f"Student {anonymous} (name not shared)"
    if passback:
        _attach_passback(session, assignment, rows)
    return rows


def _attach_passback(session: LaunchSession, assignment: Assignment, rows: list[AnswerRow]) -> None:
    posts_grades = outbox.link_posts_grades(link_for(session, assignment))
    ids = [r.score.pk for r in rows if r.score is not None]
    last: dict[int, GradeOutbox] = {}
    if posts_grades and ids:
        for post in GradeOutbox.objects.filter(score_id__in=ids).order_by("score_id", "-created_at", "-id"):
            last.setdefault(post.score_id, post)
    for r in rows:
        r.passback = describe(r.score, last.get(r.score.pk) if r.score else None, posts_grades)


FILTERS = {
    "all": ("All answers", lambda r: True),
    "needs_review": ("Needs review", lambda r: r.needs_review),
    "flagged": ("Flagged", lambda r: bool(r.flag_words)),
    "unreviewed": ("Not reviewed", lambda r: not r.reviewed),
    "reviewed": ("Reviewed", lambda r: r.reviewed),
    "not_sent": ("Grade not sent", lambda r: r.passback.tone == "bad"),
}
SORTS = {
    "queue": "Review order",
    "student": "Student",
    "score": "Score",
    "confidence": "Confidence",
    "newest": "Newest first",
}


def filter_rows(rows: list[AnswerRow], show: str = "all", score: str = "", query: str = "",
                sort: str = "queue") -> list[AnswerRow]:
    """The table's filter (state, score level, words in the answer or the name) and sort."""
    keep = FILTERS.get(show, FILTERS["all"])[1]
    out = [r for r in rows if keep(r)]
    if score.lstrip("-").isdigit():
        out = [r for r in out if r.score is not None and r.score.final_score == int(score)]
    words = query.casefold().split()
    if words:
        out = [r for r in out if all(w in (r.submission.response + " " + r.name).casefold() for w in words)]
    if sort == "student":
        out.sort(key=lambda r: r.name.casefold())
    elif sort == "score":
        out.sort(key=lambda r: (r.score is None or r.score.final_score is None,
                                -(r.score.final_score or 0) if r.score else 0))
    elif sort == "confidence":
        out.sort(key=lambda r: r.score.confidence if r.score and r.score.confidence is not None else -1)
    elif sort == "newest":
        out.sort(key=lambda r: (r.submission.created_at, r.submission.pk), reverse=True)
    return out


# --- the queue ------------------------------------------------------------------------------------


@dataclass
class QueueView:
    row: AnswerRow | None
    index: int
    total: int
    waiting: int
    previous: AnswerRow | None
    next: AnswerRow | None
    probabilities: list[tuple[int, float]]
    events: list[ReviewEvent]
    comments: list[TeacherComment]


def next_to_review(rows: list[AnswerRow], after: int | None) -> AnswerRow | None:
    """The first unreviewed row after the one with submission id `after` (wrapping round), or None."""
    start = 0
    if after is not None:
        start = next((i + 1 for i, r in enumerate(rows) if r.submission.pk == after), 0)
    for r in rows[start:] + rows[:start]:
        if not r.reviewed and r.submission.pk != after:
            return r
    return None


def queue(session: LaunchSession, assignment: Assignment, submission_id: int | None,
          after: int | None = None) -> QueueView:
    """The answer the queue shows (the one asked for; with `after`, the next one to review after that
    answer, or that answer itself when none is left; else the first that needs a look) and its neighbours."""
    rows = answer_rows(session, assignment, lean=True, passback=False)
    waiting = sum(1 for r in rows if not r.reviewed)
    row = None
    if after is not None:
        row = next_to_review(rows, after)
        submission_id = None if row else after
    if submission_id is not None:
        row = next((r for r in rows if any(a.submission.pk == submission_id for a in r.attempts)), None)
    if row is None:
        row = next_to_review(rows, None) or (rows[0] if rows else None)
    if row is None:
        return QueueView(None, 0, 0, 0, None, None, [], [], [])
    # The shown student's attempts as full rows (answer texts, probabilities); the others stay lean.
    ids = [a.submission.pk for a in row.attempts]
    full = {sub.pk: sub for sub in Submission.objects.filter(pk__in=ids)}
    scores = _latest_scores(assignment, submission_ids=ids)
    for a in row.attempts:
        a.submission, a.score = full[a.submission.pk], scores.get(a.submission.pk)
    _attach_passback(session, assignment, [row])
    i = row.position
    probs = []
    if row.score is not None and row.score.model_score is not None:  # a declined score's guesses mislead
        raw = row.score.probabilities or {}
        probs = [(lv, float(raw.get(str(lv), raw.get(lv, 0.0)) or 0.0)) for lv in assignment.item.score_levels]
    return QueueView(row, i, len(rows), waiting, rows[i - 1] if i > 0 else None,
                     rows[i + 1] if i + 1 < len(rows) else None, probs,
                     list(ReviewEvent.objects.filter(submission__learner_ref=row.learner_ref,
                                                     submission__assignment=assignment)[:20]),
                     list(TeacherComment.objects.filter(submission=row.submission)))


# --- groups ------------------------------------------------------------------------------------------


_TOKEN = re.compile(r"[^\W_]+")


def _words(text: str) -> frozenset[str]:
    return frozenset(_TOKEN.findall(text.casefold()))


@dataclass
class AnswerGroup:
    model_score: int | None
    rows: list[AnswerRow]
    similar: bool  # near-duplicate answers (else: the rest of the answers with this score)

    @property
    def key(self) -> str:
        return f"{self.model_score}-{self.rows[0].submission.pk}"


def groups(rows: list[AnswerRow], threshold: float = 0.6) -> list[AnswerGroup]:
    """Unreviewed answers grouped by the scorer's score, and within a score by near-duplicate wording
    (word-set Jaccard similarity >= threshold to the group's first answer), largest groups first."""
    by_score: dict[int | None, list[AnswerRow]] = defaultdict(list)
    for r in rows:
        if not r.reviewed:
            by_score[r.score.model_score if r.score else None].append(r)
    out: list[AnswerGroup] = []
    for model_score, members in by_score.items():
        clusters: list[tuple[frozenset[str], list[AnswerRow]]] = []
        for r in members:
            words = _words(r.submission.response)
            for seed, cluster in clusters:
                union = len(seed | words)
                if union and len(seed & words) / union >= threshold:
                    cluster.append(r)
                    break
            else:
                clusters.append((words, [r]))
        rest = [r for _, c in clusters if len(c) == 1 for r in c]
        out += [AnswerGroup(model_score, c, True) for _, c in clusters if len(c) > 1]
        if rest:
            out.append(AnswerGroup(model_score, rest, False))
    out.sort(key=lambda g: (g.model_score is None, not g.similar, -len(g.rows)))
    return out


# --- the class overview ------------------------------------------------------------------------------


@dataclass
class Overview:
    distribution: list[tuple[int, int]]  # (level, students)
    unscored: int
    counts: dict[str, int]
    agreement: list[tuple[int, int, int]]  # (model level, reviewed, unchanged)
    not_answered: list[str]
    roster_synced: bool
    posts_grades: bool


def overview(session: LaunchSession, assignment: Assignment, rows: list[AnswerRow] | None = None) -> Overview:
    rows = answer_rows(session, assignment) if rows is None else rows
    lv = assignment.item.score_levels
    dist = Counter(r.score.final_score for r in rows if r.score is not None and r.score.final_score is not None)
    tones = Counter(r.passback.tone for r in rows)
    counts = {
        "answered": len(rows), "needs_review": sum(r.needs_review for r in rows),
        "unreviewed": sum(not r.reviewed for r in rows), "reviewed": sum(r.reviewed for r in rows),
        "sent": tones["ok"], "sending": tones["wait"], "failed": tones["bad"],
    }
    agree: dict[int, list[int]] = {lvl: [0, 0] for lvl in lv}
    scores = Score.objects.filter(submission__assignment=assignment, override_score__isnull=False,
                                  model_score__isnull=False).values_list("model_score", "override_score")
    for model_score, teacher_score in scores:
        if model_score in agree:
            agree[model_score][0] += 1
            agree[model_score][1] += model_score == teacher_score
    answered = {r.learner_ref for r in rows}
    learners = Membership.objects.filter(context_id=session.context_id, is_learner=True,
                                         active=True).select_related("user")
    return Overview(
        distribution=[(lvl, dist.get(lvl, 0)) for lvl in lv],
        unscored=sum(1 for r in rows if r.score is None or r.score.final_score is None),
        counts=counts,
        agreement=[(lvl, n, same) for lvl, (n, same) in agree.items()],
        not_answered=sorted((m.user.name or m.user.sub) for m in learners if m.user.sub not in answered),
        roster_synced=Context.objects.filter(pk=session.context_id, roster_synced_at__isnull=False).exists(),
        posts_grades=outbox.link_posts_grades(link_for(session, assignment)),
    )


def failures(session: LaunchSession, assignment: Assignment) -> list[GradeOutbox]:
    """Grade posts of the assignment that failed and wait for a teacher's retry."""
    require_instructor(session)
    return list(GradeOutbox.objects.filter(state=GradeOutbox.State.FAILED, score__submission__assignment=assignment)
                .select_related("score__submission").order_by("-created_at"))


# --- one answer, all its history ---------------------------------------------------------------------


def answer_history(session: LaunchSession, submission: Submission) -> dict:
    """A submission's scores, comments, audit rows and the student's other attempts (for its page)."""
    attempts = list(Submission.objects.filter(assignment=submission.assignment_id,
                                              learner_ref=submission.learner_ref).order_by("created_at", "id"))
    counts = True
    if session.is_instructor:
        row = next((r for r in answer_rows(session, submission.assignment)
                    if r.learner_ref == submission.learner_ref), None)
        counts = row is not None and row.submission.pk == submission.pk
    return {
        "counts": counts,
        "scores": list(submission.scores.all()),
        "comments": list(TeacherComment.objects.filter(submission=submission)),
        "events": list(ReviewEvent.objects.filter(submission=submission)) if session.is_instructor else [],
        "attempts": attempts,
        "number": next((i + 1 for i, a in enumerate(attempts) if a.pk == submission.pk), 1),
        "name": names_in(session.context_id).get(submission.learner_ref, "") if session.is_instructor else "",
    }


# --- the student's page ------------------------------------------------------------------------------


@dataclass
class StudentView:
    attempts: list[Attempt]
    counting: Attempt | None
    score: Score | None
    show_score: bool
    from_teacher: bool
    status: str
    level: RubricLevel | None
    comment: TeacherComment | None
    policy: AttemptPolicy
    attempts_left: int | None  # None: no limit
    counts_words: str


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


def student_view(session: LaunchSession, assignment: Assignment) -> StudentView:
    """What the learner sees of their own attempts: the one that counts, its score (only when visible),
    who gave it, whether it is final, the feedback and the attempts left."""
    policy = policy_for(assignment)
    subs = list(Submission.objects.filter(assignment=assignment, learner_ref=session.user.sub)
                .order_by("created_at", "id"))
    latest: dict[int, Score] = {}
    for s in Score.objects.filter(submission__in=subs).order_by("submission_id", "-created_at", "-id"):
        latest.setdefault(s.submission_id, s)
    attempts = [Attempt(i + 1, sub, latest.get(sub.pk)) for i, sub in enumerate(subs)]
    chosen = CountingAttempt.objects.filter(assignment=assignment, learner_ref=session.user.sub).values_list(
        "submission_id", flat=True).first()
    counting, was_chosen = _counting(attempts, policy, chosen) if attempts else (None, False)
    score = counting.score if counting else None
    show = score_visible(score, assignment)
    from_teacher = bool(score and score.override_score is not None)
    if not show:
        status = "Your teacher will review your answer before the score is released."
    elif score.passback_state == Score.Passback.SENT and from_teacher:
        status = "Final: your teacher reviewed this score and it is in your course gradebook."
    elif score.passback_state in (Score.Passback.SENT, Score.Passback.PENDING):
        status = ("Given by the automatic scorer and sent to your course gradebook. "
                  "Your teacher may still review it and change it.")
    elif from_teacher:
        status = "Set by your teacher."
    else:
        status = "Given by the automatic scorer; your teacher may still change it."
    level = None
    if show and assignment.show_feedback:
        level = RubricLevel.objects.filter(item=assignment.item, score=score.final_score).first()
    comment = TeacherComment.objects.filter(submission=counting.submission).first() if counting else None
    limit = policy.limit
    left = None if limit is None else max(0, limit - len(attempts))
    if len(attempts) <= 1 and (limit == 1):
        counts_words = "You can answer once."
    elif was_chosen:
        counts_words = f"Your teacher chose attempt {counting.number} to count."
    elif policy.counts == AttemptPolicy.Counts.HIGHEST:
        counts_words = "Your highest-scored attempt counts."
    else:
        counts_words = "Your latest attempt counts."
    return StudentView(attempts, counting, score, show, from_teacher, status, level, comment, policy, left,
                       counts_words)


# --- export --------------------------------------------------------------------------------------------


EXPORT_COLUMNS = ["student", "learner_ref", "attempt", "counts", "submitted_at", "answer", "model_score",
                  "model_confidence", "flags", "teacher_score", "final_score", "label_source", "reviewed_by",
                  "reviewed_at", "gradebook"]


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    # A spreadsheet runs a cell that starts with these as a formula (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def export_rows(session: LaunchSession, assignment: Assignment) -> list[list[str]]:
    """Every attempt with its scores; label_source 'teacher' marks scores a teacher confirmed or set
    (usable as training labels), 'model' the scorer's alone."""
    rows = answer_rows(session, assignment)
    out = []
    for r in sorted(rows, key=lambda r: r.name.casefold()):
        for a in r.attempts:
            s = a.score
            teacher = s.override_score if s else None
            out.append([_cell(v) for v in (
                r.name, r.learner_ref, a.number, "yes" if a is r.counting else "no",
                a.submission.created_at.isoformat(timespec="seconds"), a.submission.response,
                s.model_score if s else None, f"{s.confidence:.3f}" if s and s.confidence is not None else None,
                " ".join(s.flags or []) if s else None, teacher, s.final_score if s else None,
                "teacher" if teacher is not None else ("model" if s and s.model_score is not None else ""),
                s.overridden_by if s else None,
                s.overridden_at.isoformat(timespec="seconds") if s and s.overridden_at else None,
                r.passback.label if a is r.counting else "")])
    return out
