"""LTI views: parse the request, call a service, render.  Refusals are 4xx pages, logged, never a session.

Pages carry the launch token (`ls`) in their links and forms, so they work inside a cross-site iframe
whose browser drops the tool's cookies; a POST must carry it (it also stands in for the CSRF token,
which lives in a cookie the browser may drop).
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from kdgrade.lti import config, deeplink, keys
from kdgrade.lti import launch as launch_service
from kdgrade.lti import login as login_service
from kdgrade.lti.errors import LaunchRefused
from kdgrade.lti.models import LaunchSession, Platform
from scoring.models import Assignment

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
    name = "grading:queue" if session.is_instructor else "grading:answer"
    return HttpResponseRedirect(_url(name, session, link.assignment_id))


def _url(name: str, session: LaunchSession, *args: object) -> str:
    return f"{reverse(name, args=args)}?ls={session.token}"


@csrf_exempt  # the launch token (`ls`, checked by with_launch) stands in for the CSRF cookie
@require_http_methods(["GET", "POST"])
def deep_link(request: HttpRequest) -> HttpResponse:
    from grading.views import with_launch  # the grading app owns the session-resolving decorator

    return with_launch(_deep_link)(request)


def _deep_link(request: HttpRequest, session: LaunchSession) -> HttpResponse:
    from grading import selectors, services
    from grading.errors import Invalid

    selectors.require_instructor(session)
    if session.message_type != "LtiDeepLinkingRequest":
        return refuse(request, "Open this from the course's content selection dialog.", 400)
    if request.method == "POST":
        try:
            assignment = services.create_assignment(
                session, int(item) if (item := request.POST.get("item", "")).isdigit() else 0,
                request.POST.get("title", ""), request.POST.get("release", "after_review"),
                request.POST.get("show_feedback") == "on")
        except Invalid as exc:
            return refuse(request, exc.reason, 400)
        return_url, jwt_value = deeplink.response_form(session, assignment, request.build_absolute_uri("/lti/launch/"))
        return render(request, "lti/deep_link_return.html", {"return_url": return_url, "jwt": jwt_value})
    return render(request, "lti/deep_link.html", {"session": session, "items": services.selectable_items(),
                                                  "releases": Assignment.Release.choices})


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
