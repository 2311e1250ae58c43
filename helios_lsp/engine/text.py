"""Text as the engine sees it, whoever sent it: every line break is "\\n".

Editors send CR LF (Windows) or a lone CR; the prompt, the typeahead cache and the
cleaning rules (which split on "\\n") must see the same text for the same code, so
`Engine.complete` normalises its input here, once, for every adapter. Adapters that
give text back to an editor restore its line breaks themselves (the LSP does).
"""

from __future__ import annotations

import dataclasses
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
    """Whether `after` goes on with the word `before` ends with (a model unsure of such a
    token still goes on: half an identifier is worth nothing to the user)."""
    return bool(before and after) and _word_char(before[-1]) and _word_char(after[0])


def without_last_word(text: str) -> str:
    """`text` without the word it ends with."""
    end = len(text)
    while end and _word_char(text[end - 1]):
        end -= 1
    return text[:end]
