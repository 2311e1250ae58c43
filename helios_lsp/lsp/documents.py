"""Open documents as the client sees them: LSP lines, position encodings, incremental edits.

Why not pygls' `TextDocument`: it splits lines with `str.splitlines`, which also breaks at
form feed, `\\x1c`-`\\x1e`, NEL, U+2028 and U+2029 (LSP breaks only at CR LF, CR and LF), so an
edit below such a character lands on the wrong line; and it clamps a column past the end of
the last line one character short, writing the clamped value back into the request. Both
corrupt the document the model sees. This module is small and follows the specification:

- lines end at "\\r\\n", "\\r" or "\\n";
- a column counts code units of the negotiated encoding (UTF-16 unless the client offered
  UTF-8 or UTF-32); a column inside a character rounds down to its start;
- a column past the end of its line means the end of the line; a line past the end of the
  document means the end of the document (the specification's "defaults back").
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

from lsprotocol import types

LINE_BREAK = re.compile(r"\r\n|\r|\n")

UTF8 = types.PositionEncodingKind.Utf8.value
UTF16 = types.PositionEncodingKind.Utf16.value
UTF32 = types.PositionEncodingKind.Utf32.value


def code_units(text: str, encoding: str) -> int:
    """Length of `text` in the client's code units."""
    if encoding == UTF32 or text.isascii():
        return len(text)
    if encoding == UTF8:
        return len(text.encode("utf-8", "surrogatepass"))
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _char_units(char: str, encoding: str) -> int:
    cp = ord(char)
    if encoding == UTF8:
        return 1 if cp < 0x80 else 2 if cp < 0x800 else 3 if cp < 0x10000 else 4
    return 2 if cp > 0xFFFF else 1  # UTF-16 (UTF-32 never gets here)


def column_to_index(line: str, column: int, encoding: str) -> int:
    """Index into `line` (code points) of a client column, clamped to the line."""
    if column <= 0:
        return 0
    if encoding == UTF32 or line.isascii():
        return min(column, len(line))
    units = 0
    for index, char in enumerate(line):
        units += _char_units(char, encoding)
        if units > column:  # the column falls inside this character: its start
            return index
        if units == column:
            return index + 1
    return len(line)


@dataclass
class TextDocument:
    uri: str
    text: str
    language_id: str = ""
    version: int | None = None
    _starts: list[int] | None = field(default=None, repr=False)

    # --- lines -----------------------------------------------------------------

    @property
    def line_starts(self) -> list[int]:
        """Offset at which each line begins (the last line may be empty)."""
        if self._starts is None:
            self._starts = [0, *(m.end() for m in LINE_BREAK.finditer(self.text))]
        return self._starts

    def _line_bounds(self, line: int) -> tuple[int, int]:
        """(start, end) of a line's content, without its line break."""
        starts = self.line_starts
        start = starts[line]
        if line + 1 < len(starts):
            end = starts[line + 1] - 1
            if end > start and self.text[end - 1 : end + 1] == "\r\n":
                end -= 1
        else:
            end = len(self.text)
        return start, end

    def line(self, line: int) -> str:
        start, end = self._line_bounds(line)
        return self.text[start:end]

    @property
    def eol(self) -> str:
        """The document's line break (its first one; "\\n" when it has none)."""
        match = LINE_BREAK.search(self.text)
        return match.group() if match else "\n"

    # --- positions -------------------------------------------------------------

    def offset_at(self, position: types.Position, encoding: str = UTF16) -> int:
        """Offset (code points) of a client position, clamped into the document."""
        starts = self.line_starts
        if position.line >= len(starts):
            return len(self.text)
        start, end = self._line_bounds(position.line)
        return start + column_to_index(self.text[start:end], position.character, encoding)

    def position_at(self, offset: int, encoding: str = UTF16) -> types.Position:
        """Client position of an offset (code points) into the document."""
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self.line_starts, offset) - 1
        start, end = self._line_bounds(line)
        offset = min(offset, end)  # never between "\r" and "\n"
        return types.Position(line=line, character=code_units(self.text[start:offset], encoding))

    # --- edits -----------------------------------------------------------------

    def apply(self, change: types.TextDocumentContentChangeEvent, encoding: str) -> None:
        if isinstance(change, types.TextDocumentContentChangePartial):
            start = self.offset_at(change.range.start, encoding)
            end = max(start, self.offset_at(change.range.end, encoding))
            self.text = self.text[:start] + change.text + self.text[end:]
        else:
            self.text = change.text
        self._starts = None


class DocumentStore:
    """The documents the client has opened, by URI."""

    def __init__(self) -> None:
        self._docs: dict[str, TextDocument] = {}

    def open(self, item: types.TextDocumentItem) -> TextDocument:
        doc = TextDocument(item.uri, item.text, item.language_id or "", item.version)
        self._docs[item.uri] = doc
        return doc

    def change(self, params: types.DidChangeTextDocumentParams, encoding: str) -> None:
        doc = self._docs.get(params.text_document.uri)
        if doc is None:  # a change for a document never opened: nothing to apply it to
            return
        for change in params.content_changes:
            doc.apply(change, encoding)
        doc.version = params.text_document.version

    def close(self, uri: str) -> None:
        self._docs.pop(uri, None)

    def get(self, uri: str) -> TextDocument | None:
        return self._docs.get(uri)

    def __len__(self) -> int:
        return len(self._docs)
