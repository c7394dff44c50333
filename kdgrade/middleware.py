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
