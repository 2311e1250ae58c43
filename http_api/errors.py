"""The one error format of the REST API: `{detail, error_code, timestamp}`.

Handlers and middlewares raise `ApiError`; `middlewares.error_middleware` turns it, aiohttp's
own HTTP exceptions and anything unexpected into this JSON. `detail` is written for the
user: it says what to change and never carries paths, tracebacks or environment values.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from datetime import UTC, datetime

from aiohttp import web


class ErrorCode(enum.StrEnum):
    # The four codes the API document lists.
    INVALID_REQUEST = "INVALID_REQUEST"  # 400
    MODEL_NOT_LOADED = "MODEL_NOT_LOADED"  # 503
    COMPLETION_FAILED = "COMPLETION_FAILED"  # 500
    SERVER_OVERLOADED = "SERVER_OVERLOADED"  # 429
    # HTTP-level refusals, in the same format.
    UNAUTHORIZED = "UNAUTHORIZED"  # 401: an API key is set and the request lacks it
    FORBIDDEN = "FORBIDDEN"  # 403: Host or Origin not allowed
    NOT_FOUND = "NOT_FOUND"  # 404
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"  # 405
    REQUEST_TIMEOUT = "REQUEST_TIMEOUT"  # 408: the body did not arrive in time
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"  # 413
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"  # 415
    SHUTTING_DOWN = "SHUTTING_DOWN"  # 503: the server is stopping


class ApiError(Exception):
    """An error answer: HTTP status, error code, a detail for the user, extra headers;
    with `close`, the connection is closed after it (the request was not read to its end)."""

    def __init__(self, status: int, code: ErrorCode, detail: str,
                 headers: Mapping[str, str] | None = None, *, close: bool = False):
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})
        self.close = close


def invalid_request(detail: str) -> ApiError:
    return ApiError(400, ErrorCode.INVALID_REQUEST, detail)


def internal_error() -> ApiError:
    """For what nobody anticipated: the traceback goes to the log, never to the client."""
    return ApiError(500, ErrorCode.COMPLETION_FAILED,
                    "internal server error (details are in the server log)")


def overloaded(detail: str, retry_after: float) -> ApiError:
    """429 with `Retry-After` in whole seconds, rounded up (at least 1)."""
    seconds = max(1, math.ceil(retry_after))
    return ApiError(429, ErrorCode.SERVER_OVERLOADED, f"{detail}; retry in {seconds} s",
                    {"Retry-After": str(seconds)})


def timestamp() -> str:
    """ISO 8601 UTC, as in the API document: 2023-10-07T12:00:00Z."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def error_body(error: ApiError) -> dict[str, str]:
    return {"detail": error.detail, "error_code": error.code.value, "timestamp": timestamp()}


def error_response(error: ApiError) -> web.Response:
    response = web.json_response(error_body(error), status=error.status, headers=error.headers)
    if error.close:
        response.force_close()
    return response


def from_http_exception(exc: web.HTTPException, max_body_bytes: int) -> ApiError:
    """aiohttp's own refusals (routing, body size) in our terms."""
    status = exc.status
    if status == 404:
        return ApiError(404, ErrorCode.NOT_FOUND,
                        "no such endpoint; the endpoints are listed at GET /openapi.json")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return ApiError(405, ErrorCode.METHOD_NOT_ALLOWED,
                        f"method {exc.method} is not allowed here; use {allowed}",
                        {"Allow": allowed})
    if status == 413:
        return ApiError(413, ErrorCode.PAYLOAD_TOO_LARGE,
                        f"the request body is larger than {max_body_bytes} bytes")
    if status == 415:
        return ApiError(415, ErrorCode.UNSUPPORTED_MEDIA_TYPE,
                        "the request body must be JSON (Content-Type: application/json)")
    if 400 <= status < 500:
        return invalid_request(exc.reason or "the request was not understood")
    return internal_error()


class BindRefusedError(ValueError):
    """The server refuses to start with these settings: a non-loopback host without
    HELIOS_ALLOW_REMOTE or without an API key, or an API key that cannot be used."""
