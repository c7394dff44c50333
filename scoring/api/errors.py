"""API errors: every error is JSON `{"error": CODE, "message": TEXT}` (+ `fields` for invalid input).

Status codes (also in the OpenAPI schema and README):
400 malformed_body / invalid_request, 401 not_authenticated, 403 permission_denied,
404 item_not_found / submission_not_found / not_found, 405 method_not_allowed, 406 not_acceptable,
409 no_active_model (the item exists but no model version is active: retry after activating one),
413 batch_too_large / answer_too_long / body_too_large, 415 unsupported_media_type,
503 model_unavailable (the active version's files cannot be served: an operator must act).
"""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response


class ApiError(exceptions.APIException):
    code = "error"

    def __init__(self, message: str):
        super().__init__(detail=message, code=self.code)


class ItemNotFound(ApiError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "item_not_found"


class SubmissionNotFound(ApiError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "submission_not_found"


class NoActiveModel(ApiError):
    status_code = status.HTTP_409_CONFLICT
    code = "no_active_model"


class BatchTooLarge(ApiError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    code = "batch_too_large"


class AnswerTooLong(ApiError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    code = "answer_too_long"


class ModelUnavailable(ApiError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    code = "model_unavailable"


_CODES = {
    exceptions.ParseError: "malformed_body",
    exceptions.ValidationError: "invalid_request",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "not_authenticated",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
}


def _message(detail: object) -> str:
    if isinstance(detail, list | tuple):
        return "; ".join(_message(d) for d in detail)
    if isinstance(detail, dict):
        return "; ".join(f"{k}: {_message(v)}" for k, v in detail.items())
    return str(detail)


def _plain(detail: object) -> object:
    if isinstance(detail, dict):
        return {str(k): _plain(v) for k, v in detail.items()}
    if isinstance(detail, list | tuple):
        return [_plain(d) for d in detail]
    return str(detail)


def error_response(status_code: int, code: str, message: str, **extra: object) -> Response:
    return Response({"error": code, "message": message, **extra}, status=status_code)


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF exception handler: JSON errors with a code and a readable message."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    if isinstance(exc, RequestDataTooBig):
        return error_response(413, "body_too_large", "The request body is too large.")
    if not isinstance(exc, exceptions.APIException):
        return None  # a bug: let Django log it and answer 500
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))
    code = getattr(exc, "code", None) if isinstance(exc, ApiError) else None
    code = code or next((c for cls, c in _CODES.items() if isinstance(exc, cls)), "error")
    if isinstance(exc, exceptions.ValidationError):
        message = "Invalid request: " + _message(exc.detail)
        fields = _plain(exc.detail)
        if not isinstance(fields, dict):
            fields = {"non_field_errors": fields if isinstance(fields, list) else [fields]}
        response = error_response(exc.status_code, code, message, fields=fields)
    else:
        response = error_response(exc.status_code, code, _message(exc.detail))
    for k, v in headers.items():
        response[k] = v
    return response
