"""Project-level pages: the landing page, health, readiness and liveness."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from kdgrade import health


def home(request: HttpRequest) -> HttpResponse:
    held = []
    if request.user.is_staff:  # model quality is for the school's admins, not the public
        from training.selectors import held_items

        held = held_items()
    return render(request, "home.html", {"held": held})


def healthz(request: HttpRequest) -> JsonResponse:
    """The whole service: database, cache, broker and recent heartbeats of a worker per queue.
    200 with "status": "ok", else 503 with "status": "unhealthy" and the problems in words."""
    report = health.health()
    return JsonResponse(report.as_dict(), status=200 if report.ok else 503)


def readyz(request: HttpRequest) -> JsonResponse:
    """This web process can serve pages (database and cache answer): 200, else 503."""
    report = health.readiness()
    return JsonResponse(report.as_dict(), status=200 if report.ok else 503)


def livez(request: HttpRequest) -> HttpResponse:
    """The process answers (no dependency checked): for a supervisor's restart decision."""
    return HttpResponse("ok", content_type="text/plain")
