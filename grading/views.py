"""The grading pages: parse, call a selector or a service, render.  Every teacher action is its own
POST view that redirects (post/redirect/get), so a reload never repeats it; the outcome travels as a
message code in the redirect's query string (the tool's cookies may be dropped in the LMS iframe)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from grading import selectors, services
from grading.errors import INVALID_MESSAGES, AccessDenied, Invalid
from grading.models import AttemptPolicy
from kdgrade.lti import roster
from kdgrade.lti.ags import ServiceError
from kdgrade.lti.models import LaunchSession
from kdgrade.lti.sessions import session_for
from kdgrade.lti.views import refuse
from scoring.models import Assignment

DONE_MESSAGES: dict[str, str] = {
    "answered": "Your answer was received.",
    "accepted": "Score accepted.",
    "accepted_many": "Accepted the scorer's score of {n} answer(s).",
    "saved": "Score saved.",
    "commented": "Comment saved.",
    "released": "The score is on its way to the gradebook.",
    "released_all": "{n} grade(s) are on their way to the gradebook.",
    "retried": "The grade will be sent again.",
    "settings": "Settings saved.",
    "roster": "Roster updated: {n} members.",
    "chosen": "This attempt now counts for the student.",
}
PAGES = {"queue": "grading:queue", "table": "grading:table", "groups": "grading:groups",
         "overview": "grading:overview"}
TABLE_PARAMS = ("show", "score", "q", "sort")


def with_launch(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Resolve the caller's launch session from the launch token (`ls`) the request carries, or refuse.
    Every request must carry it: a session cookie alone never stands for a launch (a page of another
    site could otherwise get a logged-in page of kdgrade into a frame)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        token = request.POST.get("ls") if request.method == "POST" else request.GET.get("ls")
        session = session_for(token or "")
        if session is None:
            return refuse(request, "Your kdgrade session has ended or this page was not opened from your course. "
                                   "Open the activity again from the LMS.", 401)
        try:
            return view(request, session, *args, **kwargs)
        except AccessDenied as exc:
            return refuse(request, exc.reason, exc.status)

    return csrf_exempt(wrapper)


def _notice(request: HttpRequest) -> tuple[str, str]:
    """The (status, error) messages a redirect asked the page to show."""
    n = request.GET.get("n", "")
    done = DONE_MESSAGES.get(request.GET.get("done", ""), "")
    return done.replace("{n}", n if n.isdigit() else "some"), INVALID_MESSAGES.get(request.GET.get("error", ""), "")


def _to(name: str, session: LaunchSession, *args: object, **query: object) -> HttpResponseRedirect:
    q = {"ls": session.token, **{k: v for k, v in query.items() if v not in (None, "")}}
    return HttpResponseRedirect(f"{reverse(name, args=args)}?{urlencode(q)}")


def _int(value: str | None) -> int:
    try:
        return int(value or "")
    except ValueError as exc:
        raise Invalid("number") from exc


def _back(request: HttpRequest, session: LaunchSession, assignment_id: int, **query: object) -> HttpResponseRedirect:
    """Where a teacher action returns: the page it came from (a known page only; never a posted URL)."""
    page = request.POST.get("back", "queue")
    sid = request.POST.get("s", "")
    if page == "submission" and sid.isdigit():
        return _to("grading:submission", session, int(sid), **{k: v for k, v in query.items() if k != "s"})
    name = PAGES.get(page, "grading:queue")
    if page == "table":
        query = {**{k: request.POST.get(k, "") for k in TABLE_PARAMS}, **query}
    elif page == "queue" and "s" not in query:
        query["s"] = sid
    query = {k: v for k, v in query.items() if v is not None}
    return _to(name, session, assignment_id, **query)


def teacher_action(view: Callable[..., tuple[str, dict]]) -> Callable[..., HttpResponse]:
    """A teacher's POST: checks, runs `view` (which returns a message code and extra query), redirects."""

    @require_POST
    @with_launch
    @wraps(view)
    def wrapper(request: HttpRequest, session: LaunchSession, assignment_id: int) -> HttpResponse:
        assignment = selectors.assignment_for(session, assignment_id)
        selectors.require_instructor(session)
        try:
            done, query = view(request, session, assignment)
        except Invalid as exc:
            return _back(request, session, assignment.pk, error=exc.code)
        return _back(request, session, assignment.pk, done=done, **query)

    return wrapper


# --- student -------------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@with_launch
def answer(request: HttpRequest, session: LaunchSession, assignment_id: int) -> HttpResponse:
    assignment = selectors.assignment_for(session, assignment_id)
    if session.is_instructor:
        return _to("grading:queue", session, assignment.pk)
    error, draft = "", ""
    if request.method == "POST":
        draft = request.POST.get("response", "")
        try:
            services.submit_answer(session, assignment, draft)
        except Invalid as exc:
            error = exc.reason
            if exc.code == "too_long":
                error = (f"Your answer has {len(draft.strip()):,} characters; the limit is "
                         f"{selectors.answer_limit():,}. Please shorten it: your text is still in the box.")
        else:
            return _to("grading:answer", session, assignment.pk, done="answered")
    done, _ = _notice(request)
    view = selectors.student_view(session, assignment)
    return render(request, "grading/answer.html", {
        "session": session, "assignment": assignment, "item": assignment.item, "view": view,
        "error": error, "draft": draft, "done": done, "limit": selectors.answer_limit(),
        "limit_text": f"{selectors.answer_limit():,}",
        "can_answer": view.attempts_left is None or view.attempts_left > 0,
    }, status=400 if error else 200)


# --- teacher pages -----------------------------------------------------------------------------------


def _teacher(session: LaunchSession, assignment_id: int) -> Assignment:
    assignment = selectors.assignment_for(session, assignment_id)
    selectors.require_instructor(session)
    return assignment


def _page(request: HttpRequest, template: str, session: LaunchSession, assignment: Any, tab: str,
          **context: Any) -> HttpResponse:
    done, error = _notice(request)
    return render(request, template, {"session": session, "assignment": assignment, "tab": tab, "done": done,
                                      "error": error, "levels": selectors.levels(assignment), **context})


@require_GET
@with_launch
def queue(request: HttpRequest, session: LaunchSession, assignment_id: int) -> HttpResponse:
    assignment = _teacher(session, assignment_id)
    s, after = request.GET.get("s", ""), request.GET.get("after", "")
    view = selectors.queue(session, assignment, int(s) if s.isdigit() else None,
                           int(after) if after.isdigit() else None)
    return _page(request, "grading/queue.html", session, assignment, "queue", q=view)


@require_GET
@with_launch
def table(request: HttpRequest, session: LaunchSession, assignment_id: int) -> HttpResponse:
    assignment = _teacher(session, assignment_id)
    rows = selectors.answer_rows(session, assignment)
    params = {k: request.GET.get(k, "") for k in TABLE_PARAMS}
    shown = selectors.filter_rows(rows, params["show"] or "all", params["score"], params["q"],
                                  params["sort"] or "queue")
    return _page(request, "grading/table.html", session, assignment, "table", rows=shown, total=len(rows),
                 params=params, filters=[(k, v[0]) for k, v in selectors.FILTERS.items()],
                 sorts=list(selectors.SORTS.items()), confident=[r for r in shown if r.confident])


@require_GET
@with_launch
def groups(request: HttpRequest, session: LaunchSession, assignment_id: int) -> HttpResponse:
    assignment = _teacher(session, assignment_id)
    rows = selectors.answer_rows(session, assignment)
    return _page(request, "grading/groups.html", session, assignment, "groups", groups=selectors.groups(rows))


@require_GET
@with_launch
def overview(request: HttpRequest, session: LaunchSession, assignment_id: int) -> HttpResponse:
    assignment = _teacher(session, assignment_id)
    rows = selectors.answer_rows(session, assignment)
    ov = selectors.overview(session, assignment, rows)
    top = max([n for _, n in ov.distribution] + [1])
    bars = []
    for i, (lvl, n) in enumerate(ov.distribution):
        height = round(160 * n / top)
        bars.append({"level": lvl, "n": n, "height": height, "x": 60 + i * 70, "y": 190 - height,
                     "label_y": 184 - height})
    agreement = [{"level": lvl, "n": n, "same": same, "changed": n - same, "pct": round(100 * same / n) if n else 0}
                 for lvl, n, same in ov.agreement]
    return _page(request, "grading/overview.html", session, assignment, "overview", ov=ov, bars=bars,
                 agreement=agreement,
                 chart_width=80 + 70 * len(bars), policy=selectors.policy_for(assignment),
                 failures=[r for r in rows if r.passback.tone == "bad"], releases=assignment.Release.choices,
                 counts_choices=AttemptPolicy.Counts.choices)


@require_GET
@with_launch
def export(request: HttpRequest, session: LaunchSession, assignment_id: int) -> HttpResponse:
    assignment = _teacher(session, assignment_id)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (f'attachment; filename="kdgrade-{slugify(assignment.title) or "answers"}'
                                       f'-{assignment.pk}.csv"')
    response["Cache-Control"] = "no-store"
    writer = csv.writer(response)
    writer.writerow(selectors.EXPORT_COLUMNS)
    writer.writerows(selectors.export_rows(session, assignment))
    return response


@require_GET
@with_launch
def submission(request: HttpRequest, session: LaunchSession, submission_id: int) -> HttpResponse:
    sub = selectors.submission_for(session, submission_id)
    done, error = _notice(request)
    history = selectors.answer_history(session, sub)
    return render(request, "grading/submission.html", {
        "session": session, "submission": sub, "assignment": sub.assignment, "done": done, "error": error,
        "tab": "", **history})


# --- teacher actions (POST, then redirect) -----------------------------------------------------------


@teacher_action
def accept(request: HttpRequest, session: LaunchSession, assignment: Any) -> tuple[str, dict]:
    score = services.accept(session, assignment, _int(request.POST.get("score_id")))
    return _and_next(request, session, assignment, "accepted", score.submission_id)


def _and_next(request: HttpRequest, session: LaunchSession, assignment: Any, done: str,
              submission_id: int) -> tuple[str, dict]:
    """From the queue, on to the next answer to review: the page it redirects to finds it (one pass
    over the answers, not two)."""
    if request.POST.get("back", "queue") != "queue" or request.POST.get("stay"):
        return done, {"s": submission_id}
    return done, {"after": submission_id, "s": None}


@teacher_action
def set_score(request: HttpRequest, session: LaunchSession, assignment: Any) -> tuple[str, dict]:
    score = services.set_score(session, assignment, _int(request.POST.get("score_id")),
                               _int(request.POST.get("value")), comment=request.POST.get("comment", ""),
                               release=request.POST.get("release") == "on")
    return _and_next(request, session, assignment, "saved", score.submission_id)


@teacher_action
def comment(request: HttpRequest, session: LaunchSession, assignment: Any) -> tuple[str, dict]:
    sid = _int(request.POST.get("submission_id"))
    services.add_comment(session, assignment, sid, request.POST.get("comment", ""))
    return "commented", {"s": sid}


@teacher_action
def release(request: HttpRequest, session: LaunchSession, assignment: Any) -> tuple[str, dict]:
    score = services.release(session, assignment, _int(request.POST.get("score_id")))
    return "released", {"s": score.submission_id}


@teacher_action
def accept_many(request: HttpRequest, session: LaunchSession, assignment: Any) -> tuple[str, dict]:
    ids = [int(v) for v in request.POST.getlist("score_id") if v.isdigit()]
    n = services.accept_many(session, assignment, ids, confident_only=request.POST.get("confident_only") == "1")
    return "accepted_many", {"n": n}


@teacher_action
def release_all(request: HttpRequest, session: LaunchSession, assignment: Any) -> tuple[str, dict]:
    return "released_all", {"n": services.release_all(session, assignment)}


@teacher_action
def retry(request: HttpRequest, session: LaunchSession, assignment: Any) -> tuple[str, dict]:
    row = services.retry_failed(session, assignment, _int(request.POST.get("outbox_id")))
    return "retried", {"s": row.score.submission_id}


@teacher_action
def choose_attempt(request: HttpRequest, session: LaunchSession, assignment: Any) -> tuple[str, dict]:
    sub = services.choose_attempt(session, assignment, _int(request.POST.get("submission_id")))
    return "chosen", {"s": sub.pk}


@teacher_action
def save_settings(request: HttpRequest, session: LaunchSession, assignment: Any) -> tuple[str, dict]:
    services.save_settings(session, assignment, release=request.POST.get("release", ""),
                           show_feedback=request.POST.get("show_feedback") == "on",
                           resubmission_allowed=request.POST.get("resubmission_allowed") == "on",
                           max_attempts=request.POST.get("max_attempts", ""),
                           counts=request.POST.get("counts", ""))
    return "settings", {}


@teacher_action
def sync_roster(request: HttpRequest, session: LaunchSession, assignment: Any) -> tuple[str, dict]:
    try:
        n = roster.sync_roster(session.context_id)
    except ServiceError as exc:
        raise Invalid("roster") from exc
    return "roster", {"n": n}
