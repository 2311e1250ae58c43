"""The OpenAPI 3.1 document, generated from the pydantic models that validate requests."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from helios_lsp import __version__
from helios_lsp.settings import Settings
from http_api.limits import ADDRESS_MULTIPLE
from http_api.schemas import (
    CompletionRequest,
    CompletionResponse,
    Empty,
    ErrorResponse,
    HealthResponse,
    RestartResponse,
    StatusResponse,
)
from http_api.state import CLIENT_HEADER, SUPERSEDED_HEADER

_REF = "#/components/schemas/{model}"

_ERRORS = {
    "400": "Invalid request body (INVALID_REQUEST)",
    "401": "API key missing or wrong (UNAUTHORIZED); only on a server started with a key",
    "403": "Host or Origin not allowed: the API is local-only (FORBIDDEN)",
    "404": "No such endpoint (NOT_FOUND)",
    "405": "Method not allowed (METHOD_NOT_ALLOWED)",
    "408": "The body did not arrive within HELIOS_REQUEST_TIMEOUT (REQUEST_TIMEOUT)",
    "413": "Request body too large (PAYLOAD_TOO_LARGE)",
    "415": "Body is not application/json (UNSUPPORTED_MEDIA_TYPE)",
    "429": "Rate, concurrency or connection limit reached (SERVER_OVERLOADED); "
           "see Retry-After",
    "500": "Error during code generation (COMPLETION_FAILED)",
    "503": "Model not loaded (MODEL_NOT_LOADED) or server stopping (SHUTTING_DOWN)",
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _content(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(model)}}


def _errors(*codes: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for code in codes:
        out[code] = {"description": _ERRORS[code], "content": _content(ErrorResponse)}
    if "429" in codes:
        out["429"]["headers"] = {"Retry-After": {
            "description": "Seconds to wait before retrying (whole seconds, rounded up)",
            "schema": {"type": "integer", "minimum": 1}}}
    return out


_GUARDED = ("401", "403", "404", "405", "429", "503")


def build_openapi(settings: Settings, request_model: type[CompletionRequest]) -> dict[str, Any]:
    """`request_model` is this server's CompletionRequest (its defaults and bounds)."""
    requests: list[type[BaseModel]] = [request_model, Empty]
    responses: list[type[BaseModel]] = [CompletionResponse, HealthResponse, StatusResponse,
                                        RestartResponse, ErrorResponse]
    _, top = models_json_schema([(m, "validation") for m in requests]
                                + [(m, "serialization") for m in responses], ref_template=_REF)
    client_header = {
        "name": CLIENT_HEADER, "in": "header", "required": False,
        "description": "A stable id for this client: its own rate bucket, and a newer "
                       "completion for the same filename supersedes the older one.",
        "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,128}$"},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Helios",
            "version": __version__,
            "description": (
                "Local code completion from one llama.cpp model. Local-only: Host must be a "
                "loopback name, browser Origins are refused, POST bodies must be "
                f"application/json. Limits: {settings.rate_limit:g} requests per second per "
                f"client in bursts of {settings.rate_burst}, {ADDRESS_MULTIPLE} times that per "
                "address whatever X-Helios-Client says (/health is not limited), "
                f"{settings.max_in_flight} completions in flight, request bodies up to "
                f"{settings.max_body_bytes} bytes. With an API key set (required to listen "
                "beyond loopback), every endpoint but /health needs Authorization: Bearer."
            ),
        },
        "paths": {
            "/complete": {"post": {
                "summary": "Generate a code completion at the cursor",
                "operationId": "complete",
                "parameters": [client_header],
                "requestBody": {"required": True, "content": _content(request_model)},
                "responses": {
                    "200": {
                        "description": "Completion generated",
                        "content": _content(CompletionResponse),
                        "headers": {SUPERSEDED_HEADER: {
                            "description": "1 when a newer request from the same client for "
                                           "the same filename replaced this one (the "
                                           "suggestion is then empty)",
                            "schema": {"type": "string", "enum": ["1"]}}},
                    },
                    **_errors("400", "408", "413", "415", "500", *_GUARDED),
                },
            }},
            "/prefetch": {"post": {
                "summary": "Warm the cache for a place the user is about to type at",
                "description": "The /complete body. Answered 202 at once; while the engine is "
                               "idle it evaluates that place's prompt, and any completion "
                               "preempts it. `accepted` is false when it was busy.",
                "operationId": "prefetch",
                "parameters": [client_header],
                "requestBody": {"required": True, "content": _content(request_model)},
                "responses": {
                    "202": {"description": "Taken (or skipped: `accepted` says which)",
                            "content": {"application/json": {"schema": {
                                "type": "object", "required": ["accepted"],
                                "properties": {"accepted": {"type": "boolean"}}}}}},
                    **_errors("400", "408", "413", "415", *_GUARDED),
                },
            }},
            "/health": {"get": {
                "summary": "Whether the server is ready (never rate-limited, no API key)",
                "operationId": "health",
                "security": [],
                "responses": {
                    "200": {"description": "Healthy", "content": _content(HealthResponse)},
                    "503": {"description": "Loading, unhealthy (the model failed to load) "
                                           "or stopping", "content": _content(HealthResponse)},
                    **_errors("403"),
                },
            }},
            "/status": {"get": {
                "summary": "Server, model, limits and engine counters",
                "operationId": "status",
                "parameters": [client_header],
                "responses": {"200": {"description": "Status", "content": _content(StatusResponse)},
                              **_errors("400", *_GUARDED)},
            }},
            "/restart": {"post": {
                "summary": "Reload the model in the background (re-resolving HELIOS_MODEL)",
                "operationId": "restart",
                "parameters": [client_header],
                "requestBody": {"required": False, "content": _content(Empty)},
                "responses": {"200": {"description": "Restart initiated",
                                      "content": _content(RestartResponse)},
                              **_errors("400", "408", "413", "415", *_GUARDED)},
            }},
            "/openapi.json": {"get": {
                "summary": "This document",
                "operationId": "openapi",
                "parameters": [client_header],
                "responses": {"200": {"description": "OpenAPI 3.1 document",
                                      "content": {"application/json": {
                                          "schema": {"type": "object"}}}},
                              **_errors("400", *_GUARDED)},
            }},
        },
        # Needed only when the server has an API key (always beyond loopback); /health never.
        "security": [{"bearer": []}, {}],
        "components": {"schemas": top["$defs"],
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
