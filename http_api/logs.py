"""Logs that a client cannot flood or forge.

- `RepeatFilter`: the same error a thousand times a second (a socket flood, a peer that
  keeps failing) would bury everything else and fill the disk. The first `burst` identical
  records per `interval` pass; the rest are counted, and once the interval is over one
  line says how many were suppressed.
- `SafeAccessLogger`: aiohttp's access log writes the request line and User-Agent raw (the
  path is URL-decoded, so `%0A` becomes a newline that forges a log line). Every
  client-supplied field goes through `safe` here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from helios_lsp.logsafe import safe
from http_api.state import CLIENT_HEADER

_KEY_CHARS = 200
_MAX_KEYS = 1000


@dataclass
class _Window:
    started: float
    seen: int  # records with this key since `started`
    example: str  # the first line of the message, for the summary
    level: int
    name: str
    suppressed: int = 0


def _first_line(record: logging.LogRecord) -> str:
    try:
        text = record.getMessage()
    except Exception:  # bad arguments: the handler reports those itself
        text = str(record.msg)
    return text.split("\n", 1)[0][:_KEY_CHARS]


class RepeatFilter(logging.Filter):
    """Let the first `burst` identical records through per `interval` seconds.

    "Identical" means the same logger, level, first line of the message (asyncio's socket
    errors, say, differ only in the socket named on their second line) and exception type.
    `emit` writes the summary ("N similar messages suppressed"): once installed, it is the
    handler's own `handle`."""

    def __init__(self, burst: int = 5, interval: float = 60.0,
                 emit: Callable[[logging.LogRecord], object] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.burst = burst
        self.interval = interval
        self.emit = emit
        self._clock = clock
        self._windows: dict[tuple[object, ...], _Window] = {}
        self._lock = threading.Lock()  # the engine thread logs too
        self._next_sweep = 0.0

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "helios_summary", False):
            return True
        exc_type = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else ""
        key = (record.name, record.levelno, _first_line(record), exc_type)
        now = self._clock()
        with self._lock:
            expired = self._sweep(now) if now >= self._next_sweep else []
            window = self._windows.get(key)
            if window is None:
                if len(self._windows) >= _MAX_KEYS:  # many different messages: start over
                    expired += self._drain_all()
                self._windows[key] = _Window(now, 1, _first_line(record), record.levelno,
                                             record.name)
                passed = True
            else:
                window.seen += 1
                passed = window.seen <= self.burst
                if not passed:
                    window.suppressed += 1
        for summary in expired:
            self._emit(summary)
        return passed

    def _sweep(self, now: float) -> list[logging.LogRecord]:
        """Summaries of the windows that are over (and forget them)."""
        self._next_sweep = now + min(1.0, self.interval)
        over = [k for k, w in self._windows.items() if now - w.started >= self.interval]
        return [s for k in over if (s := self._summary(self._windows.pop(k))) is not None]

    def _drain_all(self) -> list[logging.LogRecord]:
        windows, self._windows = self._windows, {}
        return [s for w in windows.values() if (s := self._summary(w)) is not None]

    def _summary(self, window: _Window) -> logging.LogRecord | None:
        if window.suppressed == 0:
            return None
        record = logging.LogRecord(
            window.name, window.level, __file__, 0,
            "%d similar messages suppressed in %g s: %s",
            (window.suppressed, self.interval, safe(window.example)), None)
        record.helios_summary = True
        return record

    def flush(self) -> None:
        """Write the summaries of every window now (at shutdown)."""
        with self._lock:
            pending = self._drain_all()
        for summary in pending:
            self._emit(summary)

    def _emit(self, record: logging.LogRecord) -> None:
        if self.emit is not None:
            self.emit(record)


def install_repeat_filter(burst: int = 5, interval: float = 60.0) -> None:
    """Rate-limit what the process writes to stderr (the handler `helios` sets up).

    Only plain StreamHandlers of the root logger are filtered: handlers others add (a test
    runner's log capture) see every record. Installing twice does nothing."""
    for handler in logging.getLogger().handlers:
        if type(handler) is not logging.StreamHandler:
            continue
        if any(isinstance(f, RepeatFilter) for f in handler.filters):
            continue
        handler.addFilter(RepeatFilter(burst, interval, emit=handler.handle))


class SafeAccessLogger(AbstractAccessLogger):
    """One line per request (at INFO on `aiohttp.access`, shown with HELIOS_DEBUG), every
    field a client chose escaped and cut short."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        headers = request.headers
        self.logger.info(
            '%s "%s %s" %d %.3fs client=%s agent=%s',
            safe(request.remote or "-", 64), safe(request.method, 16), safe(request.path_qs),
            response.status, time, safe(headers.get(CLIENT_HEADER, "-"), 128),
            safe(headers.get("User-Agent", "-"), 100),
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
