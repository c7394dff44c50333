"""Failed admin logins are counted per client address and per user name; after
KDGRADE_ADMIN_LOGIN_FAILURES of them within KDGRADE_ADMIN_LOGIN_WINDOW_SECONDS the login page answers
429 for the rest of the window, so passwords cannot be guessed at speed."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse


def _keys(request: HttpRequest) -> list[str]:
    address = request.META.get("REMOTE_ADDR", "")
    username = request.POST.get("username", "").strip().lower()[:150]
    keys = [f"admin-login:addr:{address}"]
    if username:
        keys.append("admin-login:user:" + hashlib.sha256(username.encode()).hexdigest())
    return keys


def blocked(request: HttpRequest) -> bool:
    limit = settings.KDGRADE_ADMIN_LOGIN_FAILURES
    return limit > 0 and any((cache.get(k) or 0) >= limit for k in _keys(request))


def record_failure(request: HttpRequest) -> None:
    window = settings.KDGRADE_ADMIN_LOGIN_WINDOW_SECONDS
    for key in _keys(request):
        if not cache.add(key, 1, timeout=window):
            try:
                cache.incr(key)
            except ValueError:  # expired in between
                cache.add(key, 1, timeout=window)


def throttled(login_view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Wrap the admin's login view with the failure counter."""

    @wraps(login_view)
    def view(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if request.method == "POST" and blocked(request):
            minutes = max(1, settings.KDGRADE_ADMIN_LOGIN_WINDOW_SECONDS // 60)
            return HttpResponse(f"Too many failed logins. Try again in {minutes} minutes.",
                                status=429, content_type="text/plain; charset=utf-8")
        response = login_view(request, *args, **kwargs)
        if request.method == "POST" and response.status_code == 200 and not request.user.is_authenticated:
            record_failure(request)  # the form came back with an error: a failed attempt
        return response

    return view
