"""Logging what a client sends without letting it write the log.

- `Throttle`: a peer that sends the same bad message in a loop gets a few log lines, then
  one line saying how many were left out, never a flooded log.
- `EscapeClientText`: pygls logs message ids, params and bodies raw (`"%s"`); this filter
  escapes control characters in every record of the `pygls` loggers, so a newline or an ANSI
  escape from the client cannot forge or repaint a line. Helios' own log calls escape client
  strings themselves with `helios_lsp.logsafe.safe`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from helios_lsp.logsafe import safe


class Throttle:
    """At most `burst` lines per `period` seconds through `logger`; the lines over that are
    counted and reported once the period is over (with the next line that gets through)."""

    def __init__(self, logger: logging.Logger, *, burst: int = 10, period: float = 60.0,
                 clock: Callable[[], float] = time.monotonic):
        self._logger = logger
        self._burst = burst
        self._period = period
        self._clock = clock
        self._start = clock()
        self._count = 0
        self.suppressed = 0

    def log(self, level: int, msg: str, *args: Any) -> None:
        now = self._clock()
        if now - self._start >= self._period:
            if self.suppressed:
                self._logger.log(level, "%d similar messages were not logged in the last "
                                 "%.0f s", self.suppressed, now - self._start)
            self._start, self._count, self.suppressed = now, 0, 0
        if self._count < self._burst:
            self._count += 1
            self._logger.log(level, msg, *args)
        else:
            self.suppressed += 1


class EscapeClientText(logging.Filter):
    """On a handler: records of `prefix` loggers get their message escaped and shortened."""

    def __init__(self, prefix: str = "pygls", limit: int = 2000):
        super().__init__()
        self._prefix = prefix
        self._limit = limit

    def filter(self, record: logging.LogRecord) -> bool:
        mine = record.name == self._prefix or record.name.startswith(self._prefix + ".")
        if mine and not getattr(record, "helios_escaped", False):  # once, however many handlers
            record.helios_escaped = True
            try:
                message = record.getMessage()
            except Exception:  # a bad format string is not ours to crash on
                message = f"{record.msg!r} {record.args!r}"
            record.msg, record.args = safe(message, self._limit), None
            if record.exc_info and not record.exc_text:
                # Indented, so a line break inside an exception's message (client text)
                # cannot start what looks like a log line of its own.
                text = logging.Formatter().formatException(record.exc_info)
                record.exc_text = "\n".join("  | " + safe(line, self._limit)
                                             for line in text.split("\n"))
        return True


def escape_pygls_logs() -> None:
    """Install EscapeClientText on every root handler (the stderr one `helios` sets up)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, EscapeClientText) for f in handler.filters):
            handler.addFilter(EscapeClientText())
