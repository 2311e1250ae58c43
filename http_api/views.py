"""The endpoint handlers: validate, ask the engine, answer with a documented model."""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web
from pydantic import BaseModel

from helios_lsp import __version__
from helios_lsp.engine import (
    CompletionFailedError,
    CompletionInput,
    Engine,
    EngineError,
    EngineState,
    JobCancelledError,
    ModelError,
    ModelNotLoadedError,
)
from http_api.body import read_model
from http_api.errors import ApiError, ErrorCode, overloaded
from http_api.schemas import (
    CompletionResponse,
    Empty,
    HealthResponse,
    HealthStatus,
    RestartResponse,
    StatusConfig,
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


def model_not_loaded(engine: Engine) -> ApiError:
    if engine.state is EngineState.FAILED:
        detail = (f"the model is not loaded: {engine.load_error_public}; fix HELIOS_MODEL, "
                  "then POST /restart")
    elif engine.state is EngineState.CLOSED:
        detail = "the model is not loaded: the server is shutting down"
    else:
        detail = "the model is loading; try again in a few seconds"
    return ApiError(503, ErrorCode.MODEL_NOT_LOADED, detail)


async def complete(request: web.Request) -> web.Response:
    engine, runtime = request.app[ENGINE], request.app[RUNTIME]
    body = await read_model(request, runtime.request_model)
    client = client_id(request)
    if not runtime.in_flight.acquire():
        raise overloaded(f"too many completions in flight (at most {runtime.in_flight.limit})",
                         1.0)
    started = time.perf_counter()
    try:
        out = await engine.complete(
            CompletionInput(prefix=body.code, suffix=body.suffix, language=body.language,
                            filename=body.filename, max_tokens=body.max_tokens,
                            temperature=body.temperature),
            # Supersession is per (client, document): only for clients that name themselves.
            client_id=client, document=body.filename if client is not None else None,
        )
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
        log.warning("completion failed: %s", exc)
        raise ApiError(500, ErrorCode.COMPLETION_FAILED, f"{exc}; try again") from None
    except EngineError:
        log.exception("completion failed")
        raise ApiError(500, ErrorCode.COMPLETION_FAILED,
                       "the completion failed (details are in the server log)") from None
    finally:
        runtime.in_flight.release()
    return _completion(out.text, out.confidence, started)


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
                          server_version=__version__, uptime=runtime.uptime)
    return _json(body, status=200 if status == "healthy" else 503)


async def status(request: web.Request) -> web.Response:
    engine, runtime = request.app[ENGINE], request.app[RUNTIME]
    settings = runtime.settings
    body = StatusResponse(
        server_status="stopping" if runtime.draining else "running",
        model_loaded=engine.ready,
        model_name=engine.model_name if engine.ready else None,
        uptime=runtime.uptime,
        config=StatusConfig(max_tokens=settings.max_tokens, temperature=settings.temperature,
                            host=settings.host, port=runtime.port),
        model_status=engine.state.value,
        load_error=engine.load_error_public,
        in_flight=runtime.in_flight.count,
        limits=StatusLimits(max_tokens_limit=settings.max_tokens_limit,
                            rate_limit_per_second=settings.rate_limit,
                            rate_burst=settings.rate_burst,
                            max_in_flight=settings.max_in_flight,
                            max_body_bytes=settings.max_body_bytes),
        engine=engine.snapshot(),
    )
    return _json(body)


async def _reload(engine: Engine) -> None:
    try:
        await engine.load()
    except ModelError:
        pass  # the engine logged why; /health now says "unhealthy"
    except Exception:
        log.exception("reload failed")


async def restart(request: web.Request) -> web.Response:
    await read_model(request, Empty, optional=True)
    engine, runtime = request.app[ENGINE], request.app[RUNTIME]
    if engine.state is EngineState.CLOSED:  # its owner is shutting down: do not reopen it
        raise ApiError(503, ErrorCode.SHUTTING_DOWN, "the server is shutting down")
    if runtime.restart is None or runtime.restart.done():
        # engine.load() joins a load already running, so restarts during a reload join it.
        runtime.restart = asyncio.create_task(_reload(engine))
        # Let the reload start: from the moment we answer, /health says "loading".
        await asyncio.sleep(0)
    return _json(RestartResponse(message="Server restart initiated"))


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI])
