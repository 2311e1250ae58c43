"""Every request passes, in order: connection bookkeeping, error mapping, the local-only
guard, the API key, admission.

- `connection_middleware` tells the connection guard a handler runs (no header or idle
  timer then; see connections.py).
- `error_middleware` is the one place that turns errors into `{detail, error_code,
  timestamp}`: our ApiError, aiohttp's 404/405/413, and anything unexpected (a generic 500;
  the traceback goes to the log only).
- `guard_middleware` refuses foreign Hosts and browser Origins (see guard.py).
- `auth_middleware` asks for the API key when one is set (see auth.py).
- `admission_middleware` refuses new work while stopping and spends the client's and the
  address's rate tokens. `/health` passes freely: it must answer during load and
  shutdown, and polling it must never be throttled.
"""

from __future__ import annotations

import logging

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from helios_lsp.logsafe import safe
from http_api.auth import OPEN_PATHS, authorized, unauthorized
from http_api.errors import (
    ApiError,
    ErrorCode,
    error_response,
    from_http_exception,
    internal_error,
    overloaded,
)
from http_api.guard import PREFLIGHT_HEADERS, cors_headers, host_allowed, origin_allowed
from http_api.limits import ADDRESS_MULTIPLE
from http_api.state import RUNTIME, client_address, client_id

log = logging.getLogger(__name__)

UNGATED_PATHS = frozenset({"/health"})


@web.middleware
async def connection_middleware(request: web.Request,
                                handler: Handler) -> web.StreamResponse:
    conn = request.app[RUNTIME].connections.find(request.transport)
    if conn is None:  # served some other way (aiohttp's test server)
        return await handler(request)
    conn.handler_started()
    try:
        return await handler(request)
    finally:
        conn.handler_finished()


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as err:
        return error_response(err)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        max_body = request.app[RUNTIME].settings.max_body_bytes
        return error_response(from_http_exception(exc, max_body))
    except Exception:
        log.exception("unexpected error answering %s %s", safe(request.method, 16),
                      safe(request.path))
        return error_response(internal_error())


@web.middleware
async def guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    # (aiohttp's parser already refuses HTTP/1.1 without Host, and a repeated Host.)
    host = request.headers.get(hdrs.HOST)
    if not host_allowed(host, allow_remote=request.app[RUNTIME].settings.allow_remote):
        raise ApiError(403, ErrorCode.FORBIDDEN,
                       "this API is local-only: the Host header must be localhost, "
                       "127.0.0.1 or [::1]")
    origin = request.headers.get(hdrs.ORIGIN)
    if not origin_allowed(origin):
        raise ApiError(403, ErrorCode.FORBIDDEN,
                       "requests from web pages are not allowed (only the editor's own "
                       "webviews may send an Origin)")
    if (origin is not None and request.method == hdrs.METH_OPTIONS
            and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers):
        return web.Response(status=204, headers=PREFLIGHT_HEADERS)
    return await handler(request)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    key = request.app[RUNTIME].api_key
    if key is not None and request.path not in OPEN_PATHS:
        header = request.headers.get(hdrs.AUTHORIZATION)
        if not authorized(header, key):
            raise unauthorized(sent=header is not None)
    return await handler(request)


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: editor webviews may read every answer, errors included."""
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is not None and origin_allowed(origin):
        response.headers.update(cors_headers(origin))


@web.middleware
async def admission_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.match_info.http_exception is not None or request.path in UNGATED_PATHS:
        return await handler(request)
    runtime = request.app[RUNTIME]
    if runtime.draining:
        raise ApiError(503, ErrorCode.SHUTTING_DOWN, "the server is shutting down")
    wait, whose = runtime.limits.take(client_address(request), client_id(request))
    if wait > 0:
        settings = runtime.settings
        if whose == "client":
            detail = (f"too many requests from this client (at most {settings.rate_limit:g} "
                      f"per second, bursts of {settings.rate_burst})")
        else:
            detail = (f"too many requests from this address, all clients together (at most "
                      f"{settings.rate_limit * ADDRESS_MULTIPLE:g} per second, bursts of "
                      f"{settings.rate_burst * ADDRESS_MULTIPLE})")
        raise overloaded(detail, wait)
    return await handler(request)
