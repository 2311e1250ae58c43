"""What the application keeps between requests, under typed AppKeys (no globals), and who
is asking."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field

from aiohttp import web

from helios_lsp.engine import Engine
from helios_lsp.settings import Settings
from http_api.auth import load_api_key
from http_api.connections import ConnectionGuard, connection_cap
from http_api.errors import invalid_request
from http_api.limits import ClientLimits
from http_api.schemas import CompletionRequest, completion_request_model

CLIENT_HEADER = "X-Helios-Client"
SUPERSEDED_HEADER = "X-Helios-Superseded"
_CLIENT_ID = re.compile(r"[\x21-\x7e]{1,128}")


@dataclass(eq=False)
class Runtime:
    settings: Settings
    started: float = field(default_factory=time.monotonic)
    port: int = 0  # the bound port (settings.port may be 0)
    draining: bool = False  # stopping: new requests get 503, running completions finish
    # Completions this API has handed to the engine and not yet answered: what a stop
    # drains. (A request still sending its body does not count: it is not worth waiting for.)
    active: int = 0
    restart: asyncio.Task[None] | None = None  # the reload POST /restart started
    api_key: str | None = field(init=False, repr=False)  # a secret: never in repr or logs
    limits: ClientLimits = field(init=False)
    connections: ConnectionGuard = field(init=False)
    request_model: type[CompletionRequest] = field(init=False)
    _idle: asyncio.Event = field(init=False, default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.port = self.port or self.settings.port
        self.api_key = load_api_key(self.settings)  # raises BindRefusedError if unusable
        self.limits = ClientLimits(self.settings.rate_limit, self.settings.rate_burst)
        self.connections = ConnectionGuard(self.settings, connection_cap(self.settings))
        self.request_model = completion_request_model(self.settings)
        self._idle.set()

    @property
    def uptime(self) -> float:
        return round(time.monotonic() - self.started, 3)

    def enter(self) -> None:
        self.active += 1
        self._idle.clear()

    def leave(self) -> None:
        self.active -= 1
        if self.active == 0:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no admitted request is left; False on timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True


ENGINE = web.AppKey("engine", Engine)
RUNTIME = web.AppKey("runtime", Runtime)
OPENAPI = web.AppKey("openapi", dict)  # the document served at /openapi.json


def client_id(request: web.Request) -> str | None:
    """The X-Helios-Client header, checked; None when the client sent none."""
    value = request.headers.get(CLIENT_HEADER)
    if value is not None and not _CLIENT_ID.fullmatch(value):
        raise invalid_request(f"{CLIENT_HEADER} must be 1 to 128 visible ASCII characters")
    return value


def client_address(request: web.Request) -> str:
    """The peer's address, whose budget every request spends whatever id it declares."""
    return request.remote or "unknown"
