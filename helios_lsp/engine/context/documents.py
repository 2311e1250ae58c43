"""Open documents (the editor's buffers, texts given to us) and where the user typed.

Neither class locks: `ContextSources` calls them under its lock and hands snapshots (the
texts are immutable strings) to the selection.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Document:
    key: str
    path: str | None  # absolute and normalised, when the document is a file
    name: str
    language: str
    text: str


def normalise(path: Path | str | None) -> str | None:
    if path is None:
        return None
    return os.path.normpath(os.path.abspath(os.fspath(path)))


class Documents:
    """Open documents, most recently used last (a dict keeps insertion order)."""

    def __init__(self) -> None:
        self._docs: dict[str, Document] = {}

    def __len__(self) -> int:
        return len(self._docs)

    def open(self, doc: Document) -> None:
        self._docs.pop(doc.key, None)
        self._docs[doc.key] = doc

    def change(self, key: str, text: str) -> bool:
        doc = self._docs.pop(key, None)
        if doc is None:
            return False
        self._docs[key] = replace(doc, text=text)
        return True

    def close(self, key: str) -> None:
        self._docs.pop(key, None)

    def get(self, key: str) -> Document | None:
        return self._docs.get(key)

    def most_recent_first(self) -> list[Document]:
        return list(reversed(self._docs.values()))


@dataclass(frozen=True, slots=True)
class Edit:
    key: str
    line: int


class RecentEdits:
    """The last few places the user typed, most recent last; an edit near an earlier one
    in the same document replaces it."""

    def __init__(self, size: int = 8, merge_lines: int = 6) -> None:
        self._edits: deque[Edit] = deque(maxlen=size)
        self._merge = merge_lines

    def __len__(self) -> int:
        return len(self._edits)

    def record(self, key: str, line: int) -> None:
        for edit in list(self._edits):
            if edit.key == key and abs(edit.line - line) <= self._merge:
                self._edits.remove(edit)
        self._edits.append(Edit(key, line))

    def forget(self, key: str) -> None:
        for edit in [e for e in self._edits if e.key == key]:
            self._edits.remove(edit)

    def most_recent_first(self) -> list[Edit]:
        return list(reversed(self._edits))
