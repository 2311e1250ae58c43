"""Text as the engine sees it, whoever sent it: every line break is "\\n".

Editors send CR LF (Windows) or a lone CR; the prompt, the typeahead cache and the
cleaning rules (which split on "\\n") must see the same text for the same code, so
`Engine.complete` normalises its input here, once, for every adapter. Adapters that
give text back to an editor restore its line breaks themselves (the LSP does).
"""

from __future__ import annotations

import dataclasses
import enum
import re

from helios_lsp.engine.types import CompletionInput

_LINE_BREAK = re.compile(r"\r\n?")  # CR LF, then a CR alone; "\n" is already right


def normalize_newlines(text: str) -> str:
    r"""`text` with "\r\n" and "\r" line breaks turned into "\n"."""
    return _LINE_BREAK.sub("\n", text) if "\r" in text else text


def normalize_input(inp: CompletionInput) -> CompletionInput:
    """`inp` with its prefix and suffix normalised (itself when there was nothing to do)."""
    prefix, suffix = normalize_newlines(inp.prefix), normalize_newlines(inp.suffix)
    if prefix is inp.prefix and suffix is inp.suffix:
        return inp
    return dataclasses.replace(inp, prefix=prefix, suffix=suffix)


# Tokens a suggestion may take, once unsure, to finish a word; a longer word is taken back.
WORD_TOKENS_WHEN_UNSURE = 4


def _word_char(c: str) -> bool:
    return c.isalnum() or c in "_$"


def joins_word(before: str, after: str) -> bool:
    """Whether `after` goes on with the word `before` ends with."""
    return bool(before and after) and _word_char(before[-1]) and _word_char(after[0])


def without_last_word(text: str) -> str:
    """`text` without the word it ends with."""
    end = len(text)
    while end and _word_char(text[end - 1]):
        end -= 1
    return text[:end]


class Unsure(enum.Enum):
    GO_ON = "go_on"  # take the piece
    STOP = "stop"  # stop before it
    TAKE_BACK = "take_back"  # stop, and drop the word the text ends with


class WordGuard:
    """When a token the model is unsure of (HELIOS_MIN_TOKEN_PROB) ends a suggestion: never
    inside a word, as half an identifier ("ENC_") is worth nothing to the user. The word is
    finished within WORD_TOKENS_WHEN_UNSURE pieces, else taken back. One per generation,
    fed every piece in order (the local engine and the remote ones alike)."""

    def __init__(self) -> None:
        self._finishing: int | None = None  # pieces taken, since an unsure one, in a word

    def step(self, before: str, piece: str, unsure: bool) -> Unsure:
        """What to do with `piece`, after the text `before` (its end suffices)."""
        if not joins_word(before, piece):
            self._finishing = None
            return Unsure.STOP if unsure else Unsure.GO_ON
        if self._finishing is None and not unsure:
            return Unsure.GO_ON
        self._finishing = 0 if self._finishing is None else self._finishing + 1
        return Unsure.TAKE_BACK if self._finishing >= WORD_TOKENS_WHEN_UNSURE else Unsure.GO_ON
