"""The HTTP API inside `helios lsp`: started, moved or stopped as the client's settings say.

Every editor window runs its own `helios lsp`; only the first can bind the port. The others
keep serving their editor over LSP and say where the HTTP API is: in the other Helios
process when /health there answers like Helios, or nowhere when another program holds
the port.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
from lsprotocol import types

from helios_lsp.engine import Engine
from helios_lsp.lsp.config import HttpConfig
from helios_lsp.settings import Settings

log = logging.getLogger(__name__)

# An editor closing must not wait long for HTTP clients: they are cancelled after this.
STOP_DRAIN_SECONDS = 2.0

Tell = Callable[[str, types.MessageType], None]


async def is_helios(host: str, port: int, timeout: float = 2.0) -> bool:
    """Whether the server on host:port answers GET /health like the Helios HTTP API."""
    host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    try:
        async with (aiohttp.ClientSession(timeout=client_timeout) as session,
                    session.get(f"http://{authority}/health") as resp):
            body = await resp.json(content_type=None)
    except (TimeoutError, aiohttp.ClientError, ValueError):
        return False
    return isinstance(body, dict) and "model_loaded" in body and "server_version" in body


class Sidecar:
    def __init__(self, engine: Engine, settings: Settings, *, allowed: bool, tell: Tell):
        self._engine = engine
        self._settings = settings
        self._allowed = allowed
        self._tell = tell
        self._server: Any = None
        self._wanted: HttpConfig | None = None  # what the client asked for last
        self._lock = asyncio.Lock()
        self._probe: asyncio.Task[None] | None = None
        self.status = "off (--no-http)" if not allowed else "not started"

    @property
    def url(self) -> str | None:
        return getattr(self._server, "url", None) if self._server is not None else None

    async def configure(self, http: HttpConfig) -> None:
        """Make the sidecar match `http`: start, move to another port, or stop it."""
        async with self._lock:
            if not self._allowed:
                return
            if http == self._wanted and (self._server is not None or not http.enabled):
                return  # as asked already (a busy port is tried again on the next change)
            self._wanted = http
            await self._stop()
            if not http.enabled:
                self.status = "off (client settings)"
                self._tell("HTTP API off (client settings)", types.MessageType.Info)
                return
            await self._start(http.port)

    async def _start(self, port: int) -> None:
        try:
            from http_api import start_http
        except ImportError as exc:
            log.warning("HTTP sidecar unavailable: %s", exc)
            self.status = "unavailable (this installation has no HTTP API)"
            self._tell("HTTP API unavailable in this installation", types.MessageType.Warning)
            return
        settings = self._settings.replace(port=port)
        try:
            self._server = await start_http(self._engine, settings)
        except OSError as exc:
            self.status = f"port {port} busy"
            self._probe = asyncio.create_task(self._explain_busy_port(settings.host, port, exc))
            return
        except ValueError as exc:  # refused by policy (a non-loopback host without allow_remote)
            self.status = "off (refused to bind)"
            self._tell(f"HTTP API off: {exc}", types.MessageType.Warning)
            return
        except Exception:  # whatever goes wrong with HTTP, the language server keeps working
            log.exception("the HTTP sidecar did not start")
            self.status = "failed to start (see the server log)"
            self._tell("HTTP API failed to start (see the server log)", types.MessageType.Warning)
            return
        self.status = f"serving at {self.url}"
        self._tell(f"HTTP API at {self.url}", types.MessageType.Info)

    async def _explain_busy_port(self, host: str, port: int, exc: OSError) -> None:
        if await is_helios(host, port):
            self.status = f"served by another Helios process on port {port}"
            self._tell(
                f"HTTP port {port} is taken by another Helios process: the HTTP API is served "
                "by the other process; this window's completions work as usual.",
                types.MessageType.Info,
            )
        else:
            self.status = f"off: port {port} is used by another program"
            self._tell(
                f"HTTP API off: port {port} is used by another program ({exc.strerror or exc}); "
                "completions in this window work as usual. Set http.port to another port.",
                types.MessageType.Warning,
            )

    async def _stop(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None
        server, self._server = self._server, None
        if server is not None:
            try:
                await server.stop(drain_timeout=STOP_DRAIN_SECONDS)
            except Exception:  # stopping must not prevent the rest of the shutdown
                log.exception("stopping the HTTP sidecar failed")
            self.status = "stopped"

    async def close(self) -> None:
        async with self._lock:
            self._allowed = False  # no restart from a late configuration change
            await self._stop()
