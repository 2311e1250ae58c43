"""LSP base-protocol framing on a blocking byte stream, robust to whatever the peer sends.

A frame is header lines (`Content-Length: N` is the one that matters), an empty line and N
bytes of body. pygls' reader stops at the first frame it cannot read, and the server then
takes that for the end of input; this reader never does, it skips and resynchronises:

- a body above MAX_FRAME_BYTES is not kept: its bytes are read and thrown away in chunks;
- a missing, negative, non-numeric or absurd Content-Length, an over-long header line,
  or bytes that are no header at all: everything up to the next `Content-Length: <digits>`
  header line is thrown away.

Either way the reader looks for the next header while it discards, so a Content-Length
that lies (`1000000000000` followed by a small body) costs one frame, not the session.
That search cannot cut a genuine body short: a header line ends in a raw line break, which
valid JSON only allows between tokens, never after a `Content-Length: 12` of its own.

Memory stays bounded by MAX_FRAME_BYTES plus one chunk whatever the input.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import BinaryIO

# The largest frame body kept (documented in the README). A frame carries one message: a
# whole document in didOpen is the largest an editor sends, far below this.
MAX_FRAME_BYTES = 64 * 1024 * 1024
# A header line: `Content-Length: N` and `Content-Type: ...` need well under 100 bytes.
MAX_HEADER_LINE = 8 * 1024
CHUNK = 64 * 1024

# `Content-Length:` anywhere in a header line: when the previous body was longer than it
# said, its tail and the next header share a line. The last occurrence is the header.
_LENGTH_FIELD = re.compile(rb"content-length[ \t]*:", re.IGNORECASE)
# A header line to resynchronise on (the digits and the line break make it unambiguous).
_RESYNC = re.compile(rb"content-length[ \t]{0,8}:[ \t]{0,8}[0-9]{1,20}[ \t]{0,8}\r?\n",
                     re.IGNORECASE)
_RESYNC_MAX = 80  # the longest match of _RESYNC: kept across chunks while searching

log = logging.getLogger(__name__)


class FrameReader:
    """`next_frame()`: the next frame body that could be read, or None at end of input.

    Frames that cannot be taken are reported through `report(reason)` and skipped."""

    def __init__(self, stream: BinaryIO, report: Callable[[str], None] | None = None, *,
                 max_frame: int = MAX_FRAME_BYTES):
        self._stream = stream
        self._buf = bytearray()
        self._eof = False
        self._report = report or (lambda reason: log.warning("%s", reason))
        self.max_frame = max_frame
        self.skipped_frames = 0

    # --- buffer -----------------------------------------------------------------

    def _fill(self) -> bool:
        """Append what the stream has (blocking for at least one byte); False at EOF."""
        if self._eof:
            return False
        read1 = getattr(self._stream, "read1", None)
        data = read1(CHUNK) if read1 is not None else self._stream.read(CHUNK)
        if not data:
            self._eof = True
            return False
        self._buf += data
        return True

    def _readline(self) -> bytes | None:
        """One line with its line break; None at EOF. A line longer than MAX_HEADER_LINE
        raises _Junk (its start is dropped, the rest is left to the resync search)."""
        start = 0
        while True:
            end = self._buf.find(b"\n", start)
            if end >= 0:
                if end >= MAX_HEADER_LINE:
                    break
                line = bytes(self._buf[: end + 1])
                del self._buf[: end + 1]
                return line
            if len(self._buf) >= MAX_HEADER_LINE:
                break
            start = len(self._buf)
            if not self._fill():
                return None  # a partial line at EOF is no frame
        del self._buf[:MAX_HEADER_LINE]
        raise _Junk(f"a header line longer than {MAX_HEADER_LINE} bytes")

    def _read_body(self, size: int) -> bytes | None:
        while len(self._buf) < size:
            if not self._fill():
                return None  # the peer went away mid-frame
        with memoryview(self._buf) as view:  # one copy of a body that may be 64 MiB
            body = bytes(view[:size])
        del self._buf[:size]
        return body

    def _discard(self, limit: float) -> tuple[int, bool]:
        """Throw bytes away until `limit` of them are gone or a Content-Length header line
        starts the buffer. (bytes thrown away, whether a header was found)."""
        dropped = 0
        while True:
            window = self._buf[: max(0, int(min(limit - dropped, len(self._buf))))]
            found = _RESYNC.search(window) if window else None
            if found is not None:
                del self._buf[: found.start()]
                return dropped + found.start(), True
            # Keep a tail that may be the start of a header split across two reads.
            keep = min(len(window), _RESYNC_MAX)
            cut = len(window) - keep
            if dropped + len(window) >= limit:
                cut = len(window)  # the whole announced body is gone
            del self._buf[:cut]
            dropped += cut
            if dropped >= limit:
                return dropped, False
            if not self._fill():
                dropped += len(self._buf)  # a tail too short to hold a header
                self._buf.clear()
                return dropped, False

    # --- frames -----------------------------------------------------------------

    def next_frame(self) -> bytes | None:
        while True:
            try:
                length = self._read_headers()
            except _Junk as junk:
                self._skip(str(junk), float("inf"))
                continue
            if length is None:
                return None
            if length > self.max_frame:
                self._skip(f"a frame of {length} bytes (the maximum is {self.max_frame})",
                           length)
                continue
            return self._read_body(length)

    def _read_headers(self) -> int | None:
        """The Content-Length of the next frame (its header read up to the empty line);
        None at EOF. Raises _Junk when the header gives no usable length."""
        value: bytes | None = None
        seen = False
        while True:
            line = self._readline()
            if line is None:
                return None
            if not line.strip():
                if not seen:
                    continue  # stray line breaks between frames are harmless
                break
            seen = True
            fields = list(_LENGTH_FIELD.finditer(line))
            if fields:
                value = line[fields[-1].end():].strip()
        if value is None:
            raise _Junk("a frame without a Content-Length header")
        if not value.isdigit():  # bytes: ASCII digits only; no sign, no spaces inside
            raise _Junk(f"a frame with an invalid Content-Length ({value[:40]!r})")
        # More digits than any stream could carry: read as "discard until resynchronised".
        return int(value) if len(value) <= 30 else 10**30

    def _skip(self, reason: str, limit: float) -> None:
        dropped, resynced = self._discard(limit)
        self.skipped_frames += 1
        if resynced:
            how = "resynchronised on the next Content-Length header"
        elif self._eof:
            how = "input ended"
        else:
            how = "the announced body was discarded"
        self._report(f"skipped {reason}: {dropped} bytes discarded, {how}")


class _Junk(Exception):
    """The header in front of us gives no frame to read."""
