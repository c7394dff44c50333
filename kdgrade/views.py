"""Project-level pages: the landing page and a health check."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from scoring.models import WorkerHeartbeat


def home(request: HttpRequest) -> HttpResponse:
    held = []
    if request.user.is_staff:  # model quality is for the school's admins, not the public
        from training.selectors import held_items

        held = held_items()
    return render(request, "home.html", {"held": held})


def healthz(request: HttpRequest) -> JsonResponse:
    """Database reachability and the last Celery worker heartbeat."""
    try:
        connection.ensure_connection()
        database = "ok"
    except Exception as exc:  # any driver error means "not healthy"
        return JsonResponse({"database": f"error: {type(exc).__name__}"}, status=503)
    last = WorkerHeartbeat.objects.order_by("-seen_at").values_list("seen_at", flat=True).first()
    return JsonResponse({"database": database, "last_worker_heartbeat": last.isoformat() if last else None})
