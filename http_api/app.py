"""The application factory: one aiohttp app on one engine it does not own."""

from __future__ import annotations

from aiohttp import web

from helios_lsp.engine import Engine
from helios_lsp.settings import Settings
from http_api.middlewares import (
    add_cors_headers,
    admission_middleware,
    auth_middleware,
    connection_middleware,
    error_middleware,
    guard_middleware,
)
from http_api.openapi import build_openapi
from http_api.routes import setup_routes
from http_api.state import ENGINE, OPENAPI, RUNTIME, Runtime


def create_app(engine: Engine, settings: Settings) -> web.Application:
    """The REST API on `engine`. It never loads or closes the model: its owner does.

    Raises BindRefusedError when the API key setting cannot be used."""
    app = web.Application(
        middlewares=[connection_middleware, error_middleware, guard_middleware,
                     auth_middleware, admission_middleware],
        client_max_size=settings.max_body_bytes,
    )
    runtime = Runtime(settings)
    app[ENGINE] = engine
    app[RUNTIME] = runtime
    app[OPENAPI] = build_openapi(settings, runtime.request_model)
    app.on_response_prepare.append(add_cors_headers)
    setup_routes(app)
    return app
