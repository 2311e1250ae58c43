"""Make client-supplied text safe to put in a log line.

A client name, a header or a settings key comes from a peer we do not trust: written raw, a
newline forges a log line and an ANSI escape repaints the terminal. `safe` escapes every
control character (C0, DEL, C1, the Unicode line separators, bidirectional overrides and
lone surrogates) the way `repr` does, and truncates, so one log call stays one short line.
Shared by the language server and the HTTP adapter.
"""

from __future__ import annotations

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
