"""Running the app on a socket: `start_http` for `helios serve` and for the language server,
which runs this sidecar in its own event loop next to pygls."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiohttp import web

from helios_lsp.engine import Engine
from helios_lsp.settings import Settings
from http_api.app import create_app
from http_api.errors import BindRefusedError
from http_api.guard import is_loopback
from http_api.logs import SafeAccessLogger, install_repeat_filter
from http_api.state import RUNTIME

log = logging.getLogger(__name__)

# How long stop() lets running completions finish; then aiohttp cancels what is left (which
# cancels their engine jobs) within _CANCEL_SECONDS.
DRAIN_SECONDS = 30.0
_CANCEL_SECONDS = 0.5
# Where the hard limit is "unlimited" (macOS), the soft one cannot go above this.
_NOFILE_FALLBACK = 10_240

__all__ = ["BindRefusedError", "HttpServer", "check_bind", "raise_nofile_limit", "start_http"]


def raise_nofile_limit() -> tuple[int, int] | None:
    """Raise the soft open-files limit to the hard one; returns (soft, hard) now in force.

    Every connection is an open file, and the usual soft default (1,024) is far below what
    the system allows a process that asks (the hard limit). Called at start by
    `helios serve` and by the language server's HTTP sidecar."""
    try:
        import resource
    except ImportError:  # Windows: no such limit
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for target in (hard, _NOFILE_FALLBACK):
        if target == resource.RLIM_INFINITY or (soft != resource.RLIM_INFINITY
                                                and target <= soft):
            continue
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            continue
        log.debug("open-files limit raised from %d to %d", soft, target)
        return target, hard
    return soft, hard


def check_bind(settings: Settings, api_key: str | None) -> None:
    """Listening beyond loopback needs HELIOS_ALLOW_REMOTE and an API key."""
    if is_loopback(settings.host):
        return
    where = settings.host or "all interfaces"
    if not settings.allow_remote:
        raise BindRefusedError(
            f"refusing to listen on {where}: the API is local-only; use 127.0.0.1, or set "
            "HELIOS_ALLOW_REMOTE=1 (--allow-remote) and an API key (HELIOS_API_KEY or "
            "HELIOS_API_KEY_FILE) to expose it")
    if api_key is None:
        raise BindRefusedError(
            f"refusing to listen on {where}: other machines could reach it, so an API key is "
            "required: set HELIOS_API_KEY or HELIOS_API_KEY_FILE (clients then send "
            "Authorization: Bearer <key>)")
    log.warning("listening on %s: the API is reachable from other machines "
                "(HELIOS_ALLOW_REMOTE is set); every request but /health needs the API key",
                where)


@dataclass
class HttpServer:
    app: web.Application
    runner: web.AppRunner
    listener: asyncio.AbstractServer
    url: str

    async def stop(self, drain_timeout: float = DRAIN_SECONDS) -> None:
        """Refuse new requests (503), let running completions finish, then close the
        sockets. Requests still arriving (a body still uploading) are not waited for.
        The engine is left alone: its owner closes it."""
        runtime = self.app[RUNTIME]
        runtime.draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_timeout
        if not await runtime.wait_idle(drain_timeout):
            log.warning("stopping with %d completion(s) still running: they are cancelled",
                        runtime.active)
        restart = runtime.restart
        if restart is not None and not restart.done():
            await asyncio.wait({restart}, timeout=max(0.0, deadline - loop.time()))
        self.listener.close()
        await self.runner.cleanup()  # closes every connection, cancelling their handlers


def _url(host: str, port: int) -> str:
    host = host or "0.0.0.0"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def start_http(engine: Engine, settings: Settings) -> HttpServer:
    """Serve the API on settings.host:settings.port. Does not load the model.

    Raises BindRefusedError for a non-loopback host without allow_remote or an API key, or
    an unusable key; OSError when the address is taken (another Helios may be serving it)."""
    raise_nofile_limit()  # before the app sizes its connection cap on it
    install_repeat_filter()
    app = create_app(engine, settings)
    runtime = app[RUNTIME]
    check_bind(settings, runtime.api_key)
    # handler_cancellation: a client that disconnects cancels its handler, and with it the
    # engine job (aiohttp's default is to let the handler run on for nobody).
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=_CANCEL_SECONDS,
                           keepalive_timeout=settings.keepalive_timeout,
                           access_log_class=SafeAccessLogger)
    await runner.setup()
    assert runner.server is not None
    try:
        # Our own listener rather than a TCPSite: each connection is wrapped by the guard.
        listener = await asyncio.get_running_loop().create_server(
            runtime.connections.protocol_factory(runner.server), settings.host or None,
            settings.port)
    except BaseException:
        await runner.cleanup()
        raise
    port = listener.sockets[0].getsockname()[1]
    runtime.port = port
    return HttpServer(app, runner, listener, _url(settings.host, port))
