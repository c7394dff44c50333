"""HTTP headers for a tool that the LMS frames."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


class FrameAncestorsMiddleware:
    """CSP frame-ancestors in place of X-Frame-Options: the LMS may frame the tool,
    nobody may frame the admin."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response.headers:
            if request.path.startswith("/admin/"):
                response.headers["Content-Security-Policy"] = "frame-ancestors 'none'"
                response.headers["X-Frame-Options"] = "DENY"
            elif request.path.startswith("/api/"):
                response.headers["Content-Security-Policy"] = "frame-ancestors 'none'"
            else:
                from kdgrade.lti.framing import frame_ancestors

                response.headers["Content-Security-Policy"] = f"frame-ancestors {frame_ancestors()}"
        return response


class ProbeMiddleware:
    """/livez, /readyz and /healthz answer whatever the Host header and scheme: a supervisor or a
    container health check probes http://127.0.0.1:8000/, which is neither an allowed host nor HTTPS
    in production.  First in MIDDLEWARE; the probes read no request data and show no personal data."""

    PROBES = frozenset({"/livez", "/readyz", "/healthz"})

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path in self.PROBES and request.method in ("GET", "HEAD"):
            from kdgrade import views

            return {"/livez": views.livez, "/readyz": views.readyz, "/healthz": views.healthz}[request.path](request)
        return self.get_response(request)
