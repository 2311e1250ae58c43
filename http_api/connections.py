"""Connection hygiene below aiohttp: an idle timeout, a header timeout and a cap.

Each open connection is an open file. aiohttp arms no timer on a fresh connection, keeps an
idle keep-alive one for an hour and waits forever for headers sent a byte at a time, so a
few hundred idle or slow sockets from any local process used to exhaust the open-files
limit. Every connection here goes through `_Guarded`, which wraps aiohttp's own protocol:

- idle: a connection with no request under way (fresh, or between keep-alive requests) is
  closed after `keepalive_timeout`;
- headers: from a request's first byte, its headers must be complete (its handler
  started) within `request_timeout`, however the bytes trickle in (slowloris). The body
  then has its own `request_timeout` (body.read_model);
- cap: at most `max_connections` open. A newcomer beyond it closes the connection that has
  waited longest outside a handler (idle, or stalled in its headers) for over a second, so
  a flood of idle connections cannot lock out `/health`; when there is none (every
  connection is inside a handler, each bounded by the body timeout and the engine's
  in-flight limit), the newcomer gets `429` and is closed at once.

`connection_middleware` tells the guard when a request's handler starts and ends.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from helios_lsp.settings import Settings
from http_api.errors import ApiError, ErrorCode, error_body

log = logging.getLogger(__name__)

# Files the process needs besides connections (model, logs, pipes, libraries, threads).
RESERVED_FILES = 100
# A connection must have waited this long outside a handler before a newcomer may close it:
# a response can still be on its way out just after its handler returned.
EVICT_AFTER = 1.0


class Phase(enum.Enum):
    IDLE = "idle"  # no request under way
    HEADERS = "headers"  # a request's first bytes came; its handler has not started
    HANDLER = "handler"  # inside a handler (reading the body, completing, answering)


@dataclass
class ConnectionStats:
    refused: int = 0  # newcomers closed at the cap
    evicted: int = 0  # waiting connections closed to make room for a newcomer
    idle_closed: int = 0  # idle longer than keepalive_timeout
    slow_closed: int = 0  # headers not complete within request_timeout


def soft_nofile() -> int | None:
    """The soft open-files limit (None where there is none to read)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def connection_cap(settings: Settings, nofile: int | None = None) -> int:
    """max_connections, lowered to leave RESERVED_FILES free under the open-files limit
    (`nofile`, by default the soft limit now in force)."""
    nofile = soft_nofile() if nofile is None else nofile
    if nofile is None or nofile - RESERVED_FILES >= settings.max_connections:
        return settings.max_connections
    cap = max(2, nofile - RESERVED_FILES)
    log.warning("at most %d connections (not HELIOS_MAX_CONNECTIONS=%d): the open-files "
                "limit is %d", cap, settings.max_connections, nofile)
    return cap


class ConnectionGuard:
    def __init__(self, settings: Settings, cap: int):
        self.cap = cap
        self.idle_timeout = settings.keepalive_timeout
        self.header_timeout = settings.request_timeout
        self.stats = ConnectionStats()
        self._open: set[_Guarded] = set()
        # Connections outside a handler, longest waiting first (dicts keep insertion order).
        self._waiting: dict[_Guarded, None] = {}
        self._by_transport: dict[Any, _Guarded] = {}

    @property
    def open(self) -> int:
        return len(self._open)

    def protocol_factory(self, make: Callable[[], asyncio.Protocol]) -> Callable[[], Any]:
        """For loop.create_server: aiohttp's protocol factory, guarded."""
        return lambda: _Guarded(self, make())

    def find(self, transport: Any) -> _Guarded | None:
        return self._by_transport.get(transport)

    # --- called by _Guarded ---------------------------------------------------------------

    def _admit(self, conn: _Guarded) -> bool:
        if len(self._open) >= self.cap and not self._evict_one(conn.loop.time()):
            self.stats.refused += 1
            log.warning("refused a connection: %d open (HELIOS_MAX_CONNECTIONS), none idle",
                        len(self._open))
            return False
        self._open.add(conn)
        self._by_transport[conn.transport] = conn
        return True

    def _evict_one(self, now: float) -> bool:
        oldest = next(iter(self._waiting), None)
        if oldest is None or now - oldest.since < EVICT_AFTER:
            return False
        self.stats.evicted += 1
        oldest.close()
        return True

    def _moved(self, conn: _Guarded) -> None:
        self._waiting.pop(conn, None)
        if conn.phase is not Phase.HANDLER:
            self._waiting[conn] = None

    def _forget(self, conn: _Guarded) -> None:
        self._open.discard(conn)
        self._waiting.pop(conn, None)
        if self._by_transport.get(conn.transport) is conn:
            del self._by_transport[conn.transport]


def refusal(cap: int) -> bytes:
    """A complete HTTP answer for a connection refused at the cap (no request read)."""
    error = ApiError(429, ErrorCode.SERVER_OVERLOADED,
                     f"too many open connections (at most {cap}); retry in 1 s")
    body = json.dumps(error_body(error)).encode()
    head = ("HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n")
    return head.encode("ascii") + body


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol for one connection, behind timers. Everything is forwarded."""

    def __init__(self, guard: ConnectionGuard, inner: Any):
        self._guard = guard
        self._inner = inner
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.phase = Phase.IDLE
        self.since = self.loop.time()
        self._timer: asyncio.TimerHandle | None = None
        self._admitted = False
        self._closed = False  # closed by us, or lost

    # --- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if not self._guard._admit(self):
            transport.write(refusal(self._guard.cap))  # type: ignore[attr-defined]
            transport.close()
            return
        self._admitted = True
        self._enter(Phase.IDLE)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            return
        if self.phase is Phase.IDLE and data:
            self._enter(Phase.HEADERS)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._admitted else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._cancel_timer()
        self._guard._forget(self)
        if self._admitted:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._admitted:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._admitted:
            self._inner.resume_writing()

    # --- told by connection_middleware ----------------------------------------------------

    def handler_started(self) -> None:
        self._enter(Phase.HANDLER)

    def handler_finished(self) -> None:
        self._enter(Phase.IDLE)

    # --- timers ---------------------------------------------------------------------------

    def close(self) -> None:
        self._closed = True
        self._cancel_timer()
        self._guard._forget(self)  # it no longer counts: its file is released right after
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _enter(self, phase: Phase) -> None:
        if self._closed:
            return
        self.phase = phase
        self.since = self.loop.time()
        self._cancel_timer()
        if phase is Phase.IDLE:
            self._timer = self.loop.call_later(self._guard.idle_timeout, self._expire)
        elif phase is Phase.HEADERS:
            self._timer = self.loop.call_later(self._guard.header_timeout, self._expire)
        self._guard._moved(self)

    def _expire(self) -> None:
        self._timer = None
        if self.phase is Phase.IDLE:
            self._guard.stats.idle_closed += 1
        else:
            self._guard.stats.slow_closed += 1
            log.info("closed a connection whose request headers did not arrive within %g s",
                     self._guard.header_timeout)
        self.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
