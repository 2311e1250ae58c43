"""Prompts as token lists, laid out so the KV cache stays warm while the user types.

FIM:      [BOS] PRE <lines above> SUF <rest of line + lines below> MID <line up to cursor>
no FIM:   [BOS] <header naming file and language> <lines above + line up to cursor>

Everything before the cursor's line is stable while typing on that line, so a
keystroke only re-evaluates the last few tokens. The window of lines above starts on a
multiple of `_LINE_STEP` counted from the top of the FILE (the caller says where the text
it received starts), so pressing Enter rarely shifts the prompt's start, and neither does
a client that sends only the last N characters: as its cut moves with each keystroke, the
window's start stays put until the cut passes a whole step of lines. A first line that may
have been cut (by the client, or by the character bound below) is never used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from helios_lsp.engine.fim import FimTokens
from helios_lsp.engine.languages import Language

_LINE_STEP = 16
_CURRENT_LINE_RESERVE = 256  # tokens kept for the cursor's line, whatever its length
_GENERATION_MARGIN = 8
# No tokenizer packs more characters than this into a token on average: text beyond
# budget * this is cut before tokenizing, so a huge minified line costs nothing.
_MAX_CHARS_PER_TOKEN = 8


@dataclass(frozen=True, slots=True)
class Prompt:
    tokens: list[int]
    fim: bool
    prefix_lines: int  # lines above the cursor included


def header_text(lang: Language, filename: str) -> str:
    """A one-line comment naming the file and its language (no-FIM prompts only)."""
    name = filename.replace("\n", " ").strip()[:200]
    label = f"{name} ({lang.name})" if name and lang.id else name or lang.name
    if not label or label == "text":
        return ""
    if lang.line_comment:
        return f"{lang.line_comment} {label}\n"
    if lang.id == "html":
        return f"<!-- {label} -->\n"
    if lang.id == "css":
        return f"/* {label} */\n"
    return ""  # JSON has no comments: a header would teach the model invalid JSON


class PromptBuilder:
    """Builds prompts for one loaded model."""

    def __init__(
        self,
        encode: Callable[[str], list[int]],
        *,
        n_ctx: int,
        bos: int | None,
        fim: FimTokens | None,
        prefix_lines: int = 256,
        suffix_lines: int = 64,
        encode_continuation: Callable[[str], list[int]] | None = None,
    ):
        self.encode = encode
        # The cursor's line after FIM-middle continues text: no tokenizer-added space.
        self.encode_continuation = encode_continuation or encode
        self.n_ctx = n_ctx
        self.bos = bos
        self.fim = fim
        self.prefix_lines = prefix_lines
        self.suffix_lines = suffix_lines
        # The lines above the cursor do not change while the user types on a line:
        # remember the last window instead of re-tokenizing it per keystroke.
        # (key, window text, lines in it, its tokens once computed)
        self._window: tuple[tuple[str, int, int], str, int, list[int] | None] | None = None

    def budget(self, max_tokens: int) -> int:
        """Prompt tokens available when `max_tokens` must still fit in the context."""
        return self.n_ctx - max_tokens - _GENERATION_MARGIN

    def build(self, prefix: str, suffix: str, lang: Language, filename: str,
              max_tokens: int, first_line: int = 0) -> Prompt:
        """`first_line`: the line of the file where `prefix` starts (0: the file's start)."""
        budget = self.budget(max_tokens)
        if budget < 16:
            raise ValueError(f"max_tokens {max_tokens} leaves no room for a prompt in the "
                             f"{self.n_ctx}-token context")
        above, nl, line = prefix.rpartition("\n")
        above += nl
        fixed = [self.bos] if self.bos is not None else []

        line_tokens_reserve = min(_CURRENT_LINE_RESERVE, budget // 4)
        # A minified line: keep the part next to the cursor.
        line = line[-_MAX_CHARS_PER_TOKEN * line_tokens_reserve:]
        if self.fim is not None:
            fixed += [self.fim.prefix]
            suffix_tokens = self._suffix_tokens(suffix, budget // 4)
            line_tokens = (self._tail(self.encode_continuation(line), line_tokens_reserve)
                           if line else [])
            room = budget - len(fixed) - 2 - len(suffix_tokens) - line_tokens_reserve
            above_tokens, n_lines = self._above(above, room, first_line)
            tokens = (fixed + above_tokens + [self.fim.suffix] + suffix_tokens
                      + [self.fim.middle] + line_tokens)
            return Prompt(tokens, True, n_lines)

        header = header_text(lang, filename)
        fixed += self.encode(header) if header else []
        room = budget - len(fixed) - line_tokens_reserve
        above_text, n_lines = self.window_above(above, room, first_line)
        body = self.encode(above_text + line)
        # Only a pathological line can overflow: keep its end (the part next to the cursor).
        body = self._tail(body, budget - len(fixed))
        return Prompt(fixed + body, False, n_lines)

    # --- pieces -----------------------------------------------------------------

    @staticmethod
    def _tail(tokens: list[int], n: int) -> list[int]:
        return tokens[-n:] if n > 0 and len(tokens) > n else (tokens if n > 0 else [])

    def _suffix_tokens(self, suffix: str, limit: int) -> list[int]:
        if not suffix or self.suffix_lines == 0:
            return []
        kept = "\n".join(suffix.split("\n")[: self.suffix_lines + 1])
        kept = kept[: limit * _MAX_CHARS_PER_TOKEN]
        tokens = self.encode(kept)
        return tokens[:limit]

    def _window_start(self, lines: list[str], room: int, first: int) -> int:
        """Index in `lines` (whose first is line `first` of the file) where the window above
        the cursor starts: on a file line that is a multiple of _LINE_STEP, within `room`."""
        n = len(lines)
        wanted = first + n - self.prefix_lines
        wanted -= wanted % _LINE_STEP
        # Rounded up from the first line received: a moving cut does not move the window.
        earliest = first + (-first % _LINE_STEP)
        start = min(max(wanted, earliest), first + n) - first
        counts = [len(self.encode(ln + "\n")) for ln in lines[start:]]
        total = sum(counts)
        while total > room and start < n:
            step = min(_LINE_STEP - (first + start) % _LINE_STEP, n - start)
            total -= sum(counts[:step])
            counts = counts[step:]
            start += step
        return start

    def window_above(self, above: str, room: int, first_line: int = 0) -> tuple[str, int]:
        """The lines above the cursor that fit in `room` tokens, as text, and how many."""
        if not above or room <= 0:
            return "", 0
        key = (above, room, first_line)
        if self._window is None or self._window[0] != key:
            limit = room * _MAX_CHARS_PER_TOKEN
            lines = above[-limit:].split("\n")[:-1]  # `above` ends with "\n"
            first = first_line + above.count("\n") - len(lines)
            whole = first == 0 if len(above) <= limit else above[-limit - 1] == "\n"
            if lines and not whole:  # it may be the end of a longer line
                lines, first = lines[1:], first + 1
            kept = lines[self._window_start(lines, room, first):]
            self._window = (key, "".join(ln + "\n" for ln in kept), len(kept), None)
        return self._window[1], self._window[2]

    def _above(self, above: str, room: int, first_line: int = 0) -> tuple[list[int], int]:
        text, n_lines = self.window_above(above, room, first_line)
        if not text:
            return [], 0
        assert self._window is not None
        key, _, _, tokens = self._window
        if tokens is None:
            tokens = self.encode(text)
            # Per-line counts are close to, not exactly, the joint count: trim what is over.
            tokens = tokens[len(tokens) - room:] if len(tokens) > room else tokens
            self._window = (key, text, n_lines, tokens)
        return list(tokens), n_lines
