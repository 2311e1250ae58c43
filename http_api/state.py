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
from http_api.errors import invalid_request
from http_api.limits import InFlightLimit, RateLimiter
from http_api.schemas import CompletionRequest, completion_request_model

CLIENT_HEADER = "X-Helios-Client"
SUPERSEDED_HEADER = "X-Helios-Superseded"
_CLIENT_ID = re.compile(r"[\x21-\x7e]{1,128}")


@dataclass(eq=False)
class Runtime:
    settings: Settings
    started: float = field(default_factory=time.monotonic)
    port: int = 0  # the bound port (settings.port may be 0)
    draining: bool = False  # stopping: new requests get 503, running ones finish
    active: int = 0  # admitted requests still being handled
    restart: asyncio.Task[None] | None = None  # the reload POST /restart started
    rate: RateLimiter = field(init=False)
    in_flight: InFlightLimit = field(init=False)
    request_model: type[CompletionRequest] = field(init=False)
    _idle: asyncio.Event = field(init=False, default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.port = self.port or self.settings.port
        self.rate = RateLimiter(self.settings.rate_limit, self.settings.rate_burst)
        self.in_flight = InFlightLimit(self.settings.max_in_flight)
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


def client_key(request: web.Request) -> str:
    """Whose rate bucket a request spends: the client id when sent, else the address."""
    client = client_id(request)
    return f"id:{client}" if client is not None else f"addr:{request.remote}"
