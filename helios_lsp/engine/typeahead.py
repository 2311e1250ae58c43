"""Type-ahead: when the user types what the last suggestion predicted, answer with the rest.

Runs on the event loop before a job is queued; a hit costs a dict lookup and a string
comparison, never the model.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from helios_lsp.engine.types import CompletionInput

_MAX_ENTRIES = 128


@dataclass(frozen=True, slots=True)
class _Entry:
    prefix: str
    suffix: str
    suggestion: str
    confidence: float


class TypeAhead:
    def __init__(self, max_entries: int = _MAX_ENTRIES):
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._max = max_entries

    def remember(self, key: tuple[str, str], inp: CompletionInput, suggestion: str,
                 confidence: float) -> None:
        if not suggestion:
            return
        self._entries[key] = _Entry(inp.prefix, inp.suffix, suggestion, confidence)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def lookup(self, key: tuple[str, str], inp: CompletionInput) -> tuple[str, float] | None:
        """The rest of the remembered suggestion if `inp` typed into it, else None."""
        entry = self._entries.get(key)
        if entry is None or inp.suffix != entry.suffix or not inp.prefix.startswith(entry.prefix):
            return None
        typed = inp.prefix[len(entry.prefix):]
        if not entry.suggestion.startswith(typed):
            return None
        rest = entry.suggestion[len(typed):]
        if not rest.strip():
            return None
        self._entries.move_to_end(key)
        return rest, entry.confidence

    def clear(self) -> None:
        self._entries.clear()
