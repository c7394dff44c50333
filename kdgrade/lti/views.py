"""LTI views: parse the request, call a service, render.  Refusals are 4xx pages, logged, never a session.

Pages carry the launch token (`ls`) in their links and forms, so they work inside a cross-site iframe
whose browser drops the tool's cookies; a POST must carry it (it also stands in for the CSRF token,
which lives in a cookie the browser may drop).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from kdgrade.lti import config, deeplink, grading, keys, roster
from kdgrade.lti import launch as launch_service
from kdgrade.lti import login as login_service
from kdgrade.lti.ags import ServiceError
from kdgrade.lti.errors import LaunchRefused
from kdgrade.lti.models import LaunchSession, Platform
from kdgrade.lti.sessions import session_for

log = logging.getLogger(__name__)


def refuse(request: HttpRequest, reason: str, status: int) -> HttpResponse:
    log.warning("lti: refused %s %s with %s: %s", request.method, request.path, status, reason)
    return render(request, "lti/error.html", {"reason": reason, "status": status}, status=status)


def _cookie_kwargs(request: HttpRequest) -> dict[str, Any]:
    if request.is_secure():
        return {"secure": True, "samesite": "None", "httponly": True}
    return {"samesite": "Lax", "httponly": True}


@csrf_exempt
@require_http_methods(["GET", "POST"])
def login(request: HttpRequest) -> HttpResponse:
    params = request.POST.dict() if request.method == "POST" else request.GET.dict()
    try:
        result = login_service.login(request, params)
    except LaunchRefused as exc:
        return refuse(request, exc.reason, exc.status)
    response = HttpResponseRedirect(result.url)
    response.set_cookie(result.cookie_name, result.state, max_age=login_service.STATE_TTL, **_cookie_kwargs(request))
    return response


@csrf_exempt
@require_http_methods(["GET", "POST"])
def launch(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        response = refuse(request, "This is kdgrade's LTI launch address: your learning platform (Canvas, Moodle...) "
                                   "sends you here when you open a kdgrade activity in a course. Opened directly, "
                                   "it has nothing to show. Open the activity from your course instead.", 405)
        response["Allow"] = "POST"
        return response
    try:
        session = launch_service.launch(request)
    except LaunchRefused as exc:
        return refuse(request, exc.reason, exc.status)
    if session.message_type == "LtiDeepLinkingRequest":
        return HttpResponseRedirect(_url("lti:deep_link", session))
    link = session.resource_link
    if link is None or link.assignment_id is None:
        return refuse(request, "This link is not connected to a kdgrade assignment. An instructor can add one "
                               "with the course's content selection (Deep Linking) dialog.", 404)
    name = "lti:review" if session.is_instructor else "lti:answer"
    return HttpResponseRedirect(_url(name, session, link.assignment_id))


def _url(name: str, session: LaunchSession, *args: object) -> str:
    return f"{reverse(name, args=args)}?ls={session.token}"


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
        except grading.AccessDenied as exc:
            return refuse(request, exc.reason, exc.status)

    return csrf_exempt(wrapper)


@require_http_methods(["GET", "POST"])
@with_launch
def answer(request: HttpRequest, session: LaunchSession, assignment_id: int) -> HttpResponse:
    assignment = grading.assignment_for(session, assignment_id)
    if session.is_instructor:
        return HttpResponseRedirect(_url("lti:review", session, assignment.pk))
    error = ""
    if request.method == "POST":
        text = request.POST.get("response", "")
        if len(text) > settings.KDGRADE_MAX_ANSWER_CHARS:
            error = f"Please keep your answer under {settings.KDGRADE_MAX_ANSWER_CHARS} characters."
        else:
            try:
                grading.submit_answer(session, assignment, text)
            except grading.AccessDenied as exc:
                if exc.status != 400:
                    raise
                error = exc.reason
            else:
                return HttpResponseRedirect(_url("lti:answer", session, assignment.pk))
    score = grading.own_latest(session, assignment)
    level = grading.feedback_level(score, assignment)
    show_score = grading.score_visible(score, assignment)
    return render(request, "lti/answer.html", {
        "session": session, "assignment": assignment, "item": assignment.item, "score": score,
        "show_score": show_score, "level": level, "error": error,
    }, status=400 if error else 200)


@require_http_methods(["GET", "POST"])
@with_launch
def review(request: HttpRequest, session: LaunchSession, assignment_id: int) -> HttpResponse:
    assignment = grading.assignment_for(session, assignment_id)
    grading.require_instructor(session)
    message = ""
    if request.method == "POST":
        action = request.POST.get("action", "")
        try:
            if action in ("override", "override_release"):
                grading.override(session, assignment, _int(request.POST.get("score_id")),
                                 _int(request.POST.get("value")), release=action == "override_release")
                message = "Score saved."
            elif action == "release_all":
                message = f"{grading.release_all(session, assignment)} grade(s) sent to the gradebook."
            elif action == "retry":
                grading.retry_failed(session, assignment, _int(request.POST.get("outbox_id")))
                message = "The grade will be sent again."
            elif action == "settings":
                grading.set_release_mode(session, assignment, request.POST.get("release", ""),
                                         request.POST.get("show_feedback") == "on")
                message = "Settings saved."
            elif action == "sync_roster":
                try:
                    message = f"Roster updated: {roster.sync_roster(session.context_id)} members."
                except ServiceError as exc:
                    message = f"The roster could not be fetched: {exc.reason}"
            else:
                raise grading.AccessDenied("Unknown action.", 400)
        except grading.AccessDenied as exc:
            if exc.status != 400:
                raise
            message = exc.reason
        assignment = grading.assignment_for(session, assignment_id)
    page = grading.review(session, assignment)
    return render(request, "lti/review.html", {"session": session, "page": page, "message": message,
                                               "levels": assignment.item.score_levels})


def _int(value: str | None) -> int:
    try:
        return int(value or "")
    except ValueError as exc:
        raise grading.AccessDenied("A number was expected.", 400) from exc


@require_GET
@with_launch
def submission(request: HttpRequest, session: LaunchSession, submission_id: int) -> HttpResponse:
    sub = grading.submission_for(session, submission_id)
    return render(request, "lti/submission.html", {"session": session, "submission": sub,
                                                   "scores": list(sub.scores.all())})


@require_http_methods(["GET", "POST"])
@with_launch
def deep_link(request: HttpRequest, session: LaunchSession) -> HttpResponse:
    grading.require_instructor(session)
    if session.message_type != "LtiDeepLinkingRequest":
        return refuse(request, "Open this from the course's content selection dialog.", 400)
    if request.method == "POST":
        assignment = grading.create_assignment(
            session, _int(request.POST.get("item")), request.POST.get("title", ""),
            request.POST.get("release", "after_review"), request.POST.get("show_feedback") == "on")
        return_url, jwt_value = deeplink.response_form(session, assignment, request.build_absolute_uri("/lti/launch/"))
        return render(request, "lti/deep_link_return.html", {"return_url": return_url, "jwt": jwt_value})
    return render(request, "lti/deep_link.html", {"session": session, "items": grading.selectable_items(),
                                                  "releases": grading.Assignment.Release.choices})


@require_GET
def jwks(request: HttpRequest) -> JsonResponse:
    """The shared key set (platforms registered before per-platform keys)."""
    return JsonResponse(keys.jwks())


@require_GET
def platform_jwks(request: HttpRequest, jwks_id: str) -> HttpResponse:
    """One platform's own key set."""
    platform = Platform.objects.filter(jwks_id=jwks_id, own_key=True).first()
    if platform is None:
        return JsonResponse({"error": "no such keyset"}, status=404)
    return JsonResponse(keys.jwks(platform))


@require_GET
def canvas_config(request: HttpRequest) -> JsonResponse:
    base = config.base_url(request)
    platform = Platform.objects.filter(jwks_id=request.GET.get("platform", ""), own_key=True).first()
    return JsonResponse(config.canvas_configuration(base, keys.jwks_url(base, platform) if platform else None))


@csrf_exempt
@require_http_methods(["GET", "POST"])
def register(request: HttpRequest) -> HttpResponse:
    openid_configuration = request.GET.get("openid_configuration", "")
    if not openid_configuration:
        return refuse(request, "Dynamic Registration starts from the LMS: paste this URL into its tool "
                               "registration page.", 400)
    try:
        config.use_registration_key(request.GET.get("key", ""))
    except config.RegistrationFailed as exc:
        return refuse(request, exc.reason, 403)
    try:
        platform = config.dynamic_register(openid_configuration, request.GET.get("registration_token", ""),
                                           config.base_url(request))
    except config.RegistrationFailed as exc:
        return refuse(request, exc.reason, 400)
    return render(request, "lti/registered.html", {"platform": platform})
