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
from http_api.guard import is_loopback
from http_api.state import RUNTIME

log = logging.getLogger(__name__)

# How long stop() lets admitted requests finish; then aiohttp cancels what is left (which
# cancels their engine jobs) within _CANCEL_SECONDS.
DRAIN_SECONDS = 30.0
_CANCEL_SECONDS = 0.5


class BindRefusedError(ValueError):
    """The host is not a loopback address and remote binding was not allowed."""


def check_bind(settings: Settings) -> None:
    if is_loopback(settings.host):
        return
    if not settings.allow_remote:
        raise BindRefusedError(
            f"refusing to listen on {settings.host or 'all interfaces'}: the API has no "
            "authentication; use 127.0.0.1, or set HELIOS_ALLOW_REMOTE=1 (--allow-remote) "
            "to expose it")
    log.warning("listening on %s: the API has no authentication and is reachable from other "
                "machines (HELIOS_ALLOW_REMOTE is set)", settings.host or "all interfaces")


@dataclass
class HttpServer:
    app: web.Application
    runner: web.AppRunner
    url: str

    async def stop(self, drain_timeout: float = DRAIN_SECONDS) -> None:
        """Refuse new requests (503), let admitted ones finish, then close the socket.
        The engine is left alone: its owner closes it."""
        runtime = self.app[RUNTIME]
        runtime.draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_timeout
        if not await runtime.wait_idle(drain_timeout):
            log.warning("stopping with %d request(s) still running: they are cancelled",
                        runtime.active)
        restart = runtime.restart
        if restart is not None and not restart.done():
            await asyncio.wait({restart}, timeout=max(0.0, deadline - loop.time()))
        await self.runner.cleanup()


def _url(host: str, port: int) -> str:
    host = host or "0.0.0.0"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def start_http(engine: Engine, settings: Settings) -> HttpServer:
    """Serve the API on settings.host:settings.port. Does not load the model.

    Raises BindRefusedError for a non-loopback host without allow_remote, and OSError when
    the address is taken (another Helios may be serving it)."""
    check_bind(settings)
    app = create_app(engine, settings)
    # handler_cancellation: a client that disconnects cancels its handler, and with it the
    # engine job (aiohttp's default is to let the handler run on for nobody).
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=_CANCEL_SECONDS)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host or None, settings.port).start()
    except BaseException:
        await runner.cleanup()
        raise
    port = runner.addresses[0][1]
    app[RUNTIME].port = port
    return HttpServer(app, runner, _url(settings.host, port))
