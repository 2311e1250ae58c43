"""The endpoint handlers: validate, ask the engine, answer with a documented model."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict

from aiohttp import web
from pydantic import BaseModel

from helios_lsp import __version__
from helios_lsp.engine import (
    CompletionFailedError,
    CompletionInput,
    Engine,
    EngineError,
    EngineOverloadedError,
    EngineState,
    JobCancelledError,
    ModelError,
    ModelNotLoadedError,
    describe_state,
)
from helios_lsp.logsafe import safe
from http_api.body import read_model
from http_api.errors import ApiError, ErrorCode, overloaded
from http_api.schemas import (
    CompletionRequest,
    CompletionResponse,
    Empty,
    HealthResponse,
    HealthStatus,
    RestartResponse,
    StatusConfig,
    StatusConnections,
    StatusLimits,
    StatusResponse,
)
from http_api.state import ENGINE, OPENAPI, RUNTIME, SUPERSEDED_HEADER, Runtime, client_id

log = logging.getLogger(__name__)


def _json(model: BaseModel, status: int = 200,
          headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(model.model_dump(mode="json"), status=status, headers=headers)


def _completion(suggestion: str, confidence: float, started: float,
                headers: dict[str, str] | None = None) -> web.Response:
    elapsed = round(time.perf_counter() - started, 4)
    return _json(CompletionResponse(suggestion=suggestion, confidence=confidence,
                                    processing_time=elapsed), headers=headers)


# What an HTTP client can do about each state (the engine's words say what the state is).
_ADVICE = {
    EngineState.NOT_LOADED: "; try again in a few seconds",
    EngineState.LOADING: "; try again in a few seconds",
}


def _advice(engine: Engine) -> str:
    if engine.state is not EngineState.FAILED:
        return _ADVICE.get(engine.state, "")
    if engine.retrying:  # an engine server that went away: probed until it is back
        return "; Helios retries by itself"
    return f"; fix {engine.settings_to_fix}, then POST /restart"


def _state_detail(engine: Engine) -> str:
    return describe_state(engine.state, engine.load_error_public)  # never a path


def model_not_loaded(engine: Engine) -> ApiError:
    return ApiError(503, ErrorCode.MODEL_NOT_LOADED,
                    _state_detail(engine) + _advice(engine))


# A `code` this long whose line breaks are as many as `position.line` may have been cut at a
# character count by a client that counts `position.line` in the text it sends: its first
# line may then be part of a line, which moves with every keystroke (docs/api.md).
MAYBE_CUT_CHARS = 4096


def completion_input(engine: Engine, body: CompletionRequest,
                     client: str | None) -> CompletionInput:
    """What the engine is asked, for /complete and /prefetch alike. `code` may be only the
    end of the text before the cursor (clients bound what they send): `position.line`
    says where it ends, so where it starts is known (line breaks counted as the engine
    will see them: CR LF once, a lone CR too). Either reading of `position.line` works:
    counted in the file, or in the text sent. The request's `context` files go to the
    engine's sources of context."""
    code = body.code
    breaks = code.count("\n") + code.count("\r") - code.count("\r\n")
    first_line = max(0, body.position.line - breaks)
    if body.context:
        engine.crossfile.offer(client or "", [(f.filename, f.text) for f in body.context])
    return CompletionInput(prefix=code, suffix=body.suffix, language=body.language,
                           filename=body.filename, max_tokens=body.max_tokens,
                           temperature=body.temperature, first_line=first_line,
                           cut=first_line == 0 and len(code) >= MAYBE_CUT_CHARS)


async def complete(request: web.Request) -> web.Response:
    engine, runtime = request.app[ENGINE], request.app[RUNTIME]
    body = await read_model(request, runtime.request_model, runtime.settings.request_timeout)
    client = client_id(request)
    if runtime.draining:  # its body arrived after the stop began
        raise ApiError(503, ErrorCode.SHUTTING_DOWN, "the server is shutting down")
    started = time.perf_counter()
    runtime.enter()  # from here on, a stop waits for this request
    try:
        out = await engine.complete(
            completion_input(engine, body, client),
            # Supersession is per (client, document): only for clients that name themselves.
            client_id=client, document=body.filename if client is not None else None,
        )
    except EngineOverloadedError as exc:  # the engine's bound, shared with the LSP
        raise overloaded(str(exc), 1.0) from None
    except JobCancelledError as exc:
        if exc.reason == "superseded":  # a newer request for this document replaced it
            return _completion("", 0.0, started, headers={SUPERSEDED_HEADER: "1"})
        if not engine.ready:
            raise model_not_loaded(engine) from None
        raise ApiError(500, ErrorCode.COMPLETION_FAILED,
                       "the completion was cancelled on the server; try again") from None
    except ModelNotLoadedError:
        raise model_not_loaded(engine) from None
    except CompletionFailedError as exc:  # its message is written for users
        log.warning("completion failed: %s", safe(exc))
        raise ApiError(500, ErrorCode.COMPLETION_FAILED, f"{exc}; try again") from None
    except EngineError:
        log.exception("completion failed")
        raise ApiError(500, ErrorCode.COMPLETION_FAILED,
                       "the completion failed (details are in the server log)") from None
    finally:
        runtime.leave()
    return _completion(out.text, out.confidence, started)


async def prefetch(request: web.Request) -> web.Response:
    """The /complete body, answered 202 at once: the engine evaluates that place's prompt
    while it is idle, so the first keystroke there finds it in the cache."""
    engine, runtime = request.app[ENGINE], request.app[RUNTIME]
    body = await read_model(request, runtime.request_model, runtime.settings.request_timeout)
    client = client_id(request)
    started = engine.prefetch(completion_input(engine, body, client), client_id=client,
                              document=body.filename if client is not None else None)
    return web.json_response({"accepted": started}, status=202)


def _health_status(engine: Engine, runtime: Runtime) -> HealthStatus:
    if runtime.draining or engine.state is EngineState.CLOSED:
        return "stopping"
    if engine.state is EngineState.READY:
        return "healthy"
    if engine.state is EngineState.FAILED:
        return "unhealthy"
    return "loading"


async def health(request: web.Request) -> web.Response:
    engine, runtime = request.app[ENGINE], request.app[RUNTIME]
    status = _health_status(engine, runtime)
    body = HealthResponse(status=status, model_loaded=engine.ready,
                          server_version=__version__, uptime=runtime.uptime,
                          detail=None if status == "healthy" else _health_detail(engine, status))
    # Healthy: exactly the contract's four fields; otherwise also why (`detail`).
    return web.json_response(body.model_dump(mode="json", exclude_none=True),
                             status=200 if status == "healthy" else 503)


def _health_detail(engine: Engine, status: HealthStatus) -> str:
    if status == "stopping":  # draining, the model still loaded: say why it is refusing
        return describe_state(EngineState.CLOSED)
    return _state_detail(engine)


async def status(request: web.Request) -> web.Response:
    engine, runtime = request.app[ENGINE], request.app[RUNTIME]
    await engine.refresh()  # the shared engine's own counts
    settings, guard = runtime.settings, runtime.connections
    body = StatusResponse(
        server_status="stopping" if runtime.draining else "running",
        model_loaded=engine.ready,
        model_name=engine.model_name if engine.ready else None,
        uptime=runtime.uptime,
        config=StatusConfig(max_tokens=settings.max_tokens, temperature=settings.temperature,
                            host=settings.host, port=runtime.port),
        model_status=engine.state.value,
        load_error=engine.load_error_public,
        in_flight=engine.in_flight,
        limits=StatusLimits(max_tokens_limit=settings.max_tokens_limit,
                            rate_limit_per_second=settings.rate_limit,
                            rate_burst=settings.rate_burst,
                            max_in_flight=settings.max_in_flight,
                            max_body_bytes=settings.max_body_bytes),
        engine=engine.snapshot(),
        connections=StatusConnections(open=guard.open, max=guard.cap,
                                      **asdict(guard.stats)),
        auth_required=runtime.api_key is not None,
    )
    return _json(body)


async def _reload(engine: Engine) -> None:
    try:
        await engine.load(restart=True)
    except ModelError:
        pass  # the engine logged why; /health now says "unhealthy"
    except Exception:
        log.exception("reload failed")


async def restart(request: web.Request) -> web.Response:
    await read_model(request, Empty, request.app[RUNTIME].settings.request_timeout,
                     optional=True)
    engine, runtime = request.app[ENGINE], request.app[RUNTIME]
    if engine.state is EngineState.CLOSED:  # its owner is shutting down: do not reopen it
        raise ApiError(503, ErrorCode.SHUTTING_DOWN, describe_state(engine.state))
    if runtime.restart is None or runtime.restart.done():
        # engine.load() joins a load already running, so restarts during a reload join it.
        runtime.restart = asyncio.create_task(_reload(engine))
        # Let the reload start: from the moment we answer, /health says "loading".
        await asyncio.sleep(0)
    return _json(RestartResponse(message="Server restart initiated"))


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])
