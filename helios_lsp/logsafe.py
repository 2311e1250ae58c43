"""Make text from peers we do not trust safe to log and to show.

A client name, a header or a settings key, and whatever an engine server says (its model's
name, its errors) come from peers we do not trust: written raw, a newline forges a log line
and an ANSI escape repaints the terminal. Unsafe characters are the control characters (C0,
DEL, C1), the Unicode line separators, bidirectional marks and overrides and lone surrogates.

- `safe`, at a log site: escapes them the way `repr` does, and truncates, so one log call
  stays one short line.
- `sanitize`, where a peer's string enters Helios to be kept and shown (in logs, /status,
  `helios models`, LSP messages): replaces them, and truncates, so the string reads the same
  everywhere and stays unchanged by a later `safe` (but for its backslashes).
- `OneLineFormatter`: the log format, with any unsafe character that still reaches a
  message escaped, so no record can write a second line or an escape sequence.
"""

from __future__ import annotations

import logging
import re

_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f"       # C0 controls (newline, ESC…), DEL, C1 controls (incl. U+0085)
    "\u2028\u2029"              # line / paragraph separators: str.splitlines() breaks on them
    "\u200e\u200f\u202a-\u202e\u2066-\u2069"  # bidi marks and overrides: reorder what is shown
    "\ud800-\udfff]"            # lone surrogates: cannot be encoded, would break the handler
)
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _SHORT.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def has_unsafe(s: str) -> bool:
    """Whether `s` holds a character `safe` would escape."""
    return _UNSAFE.search(s) is not None


def sanitize(s: object, limit: int = 200) -> str:
    """`s` (non-strings go through `str`) with every unsafe character replaced by U+FFFD and
    at most `limit` characters long (a longer one is cut and ends in "…"). The result holds
    no control character, line break or bidi override, and no escape is added: sanitizing it
    again changes nothing."""
    text = s if isinstance(s, str) else str(s)
    if len(text) > limit:
        text = text[: max(limit - 1, 0)] + "…"
    return _UNSAFE.sub("\ufffd", text)


def safe(s: object, limit: int = 200) -> str:
    """`s` (non-strings go through `str`) with control characters escaped as `\\n`, `\\x1b`,
    `\\u2028`… and cut to `limit` characters of input (then `…(N chars)` follows).
    The result never contains a control character or a line break."""
    text = s if isinstance(s, str) else str(s)
    size = len(text)
    if size > limit:
        text = text[: max(limit, 0)]
    # Backslashes are doubled first, so a client cannot fake an escape sequence.
    text = _UNSAFE.sub(_escape, text.replace("\\", "\\\\"))
    return f"{text}…({size} chars)" if size > limit else text


class OneLineFormatter(logging.Formatter):
    """A formatter whose messages are one line each: an unsafe character that reaches a
    message raw (a log site that forgot `safe`) is escaped there. Backslashes are left as
    they are, so what `safe` escaped already is not escaped twice. A traceback, added after
    the message, keeps its lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return _UNSAFE.sub(_escape, super().formatMessage(record))
