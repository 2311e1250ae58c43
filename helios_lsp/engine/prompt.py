"""Prompts as token lists, laid out so the KV cache stays warm while the user types.

FIM:      [BOS] PRE <lines above> SUF <rest of line + lines below> MID <line up to cursor>
no FIM:   [BOS] <header naming file and language> <lines above + line up to cursor>

Other files' snippets (the context block, engine/crossfile.py) go before the lines above:
in the repository-level layout for models trained with it (before PRE), else as
comment-headed blocks (after PRE for FIM models); see context_layout.py. The block stays
the same while the user types at a place, so it is evaluated once.

Everything before the cursor's line is stable while typing on that line, so a
keystroke only re-evaluates the last few tokens. The window of lines above starts on a
multiple of `_LINE_STEP` counted from the top of the FILE (the caller says where the text
it received starts), so pressing Enter rarely shifts the prompt's start, and neither does
a client that sends only the last N characters: as its cut moves with each keystroke, the
window's start stays put until the cut passes a whole step of lines. A first line that may
have been cut (by the client, or by the character bound below) is never used: the text of
a client that counts `first_line` from its own cut (`cut`) starts at its first whole line,
so a cut moving by a character moves nothing.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

from helios_lsp.engine.context_layout import (
    commented,
    first_lines,
    fit,
    repo_name,
    repo_piece,
)
from helios_lsp.engine.fim import FimTokens
from helios_lsp.engine.languages import Language
from helios_lsp.engine.types import ContextBlock, Snippet

_LINE_STEP = 16
# A client's own cut has no line numbers to keep a grid on: the window starts at a line its
# content marks (about one in _CUT_ANCHOR_EVERY), so it stays put until that line is cut off.
_CUT_ANCHOR_EVERY = 8
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
    context_tokens: int = 0  # of the context block from other files
    context_files: tuple[str, ...] = ()  # the files whose snippets it holds


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
        context_tokens: int = 0,
        context_prefix_lines: int | None = None,
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
        self._window: tuple[tuple[str, int, int, bool, int], str, int,
                            list[int] | None] | None = None
        # The context block's tokens: the same block is rendered once, not per keystroke.
        self.context_tokens = context_tokens
        # With a block in the prompt the window above the cursor is this much shorter, so
        # the block sits near enough for a small model to copy from it.
        self.context_prefix_lines = min(context_prefix_lines or prefix_lines, prefix_lines)
        self._block: tuple[tuple[object, ...], list[int], tuple[str, ...]] | None = None

    def budget(self, max_tokens: int) -> int:
        """Prompt tokens available when `max_tokens` must still fit in the context."""
        return self.n_ctx - max_tokens - _GENERATION_MARGIN

    def build(self, prefix: str, suffix: str, lang: Language, filename: str,
              max_tokens: int, first_line: int = 0, *, cut: bool = False,
              context: ContextBlock | None = None) -> Prompt:
        """`first_line`: the line of the file where `prefix` starts (0: the file's start);
        `cut`: its first line may be a part of a line; `context`: other files' snippets."""
        budget = self.budget(max_tokens)
        if budget < 16:
            raise ValueError(f"max_tokens {max_tokens} leaves no room for a prompt in the "
                             f"{self.n_ctx}-token context")
        above, nl, line = prefix.rpartition("\n")
        above += nl
        fixed = [self.bos] if self.bos is not None else []
        block, files = self._context(context, lang, filename, budget)

        line_tokens_reserve = min(_CURRENT_LINE_RESERVE, budget // 4)
        # A minified line: keep the part next to the cursor.
        line = line[-_MAX_CHARS_PER_TOKEN * line_tokens_reserve:]
        if self.fim is not None:
            # The repository layout names the current file before PRE; comment blocks go
            # inside the prefix.
            fixed += ([*block, self.fim.prefix] if self._repo_layout
                      else [self.fim.prefix, *block])
            suffix_tokens = self._suffix_tokens(suffix, budget // 4)
            line_tokens = (self._tail(self.encode_continuation(line), line_tokens_reserve)
                           if line else [])
            room = budget - len(fixed) - 2 - len(suffix_tokens) - line_tokens_reserve
            above_tokens, n_lines = self._above(above, room, first_line, cut,
                                                self.window_lines(bool(block)))
            tokens = (fixed + above_tokens + [self.fim.suffix] + suffix_tokens
                      + [self.fim.middle] + line_tokens)
            return Prompt(tokens, True, n_lines, len(block), files)

        header = header_text(lang, filename)
        fixed += block + (self.encode(header) if header else [])
        room = budget - len(fixed) - line_tokens_reserve
        above_text, n_lines = self.window_above(above, room, first_line, cut,
                                                self.window_lines(bool(block)))
        body = self.encode(above_text + line)
        # Only a pathological line can overflow: keep its end (the part next to the cursor).
        body = self._tail(body, budget - len(fixed))
        return Prompt(fixed + body, False, n_lines, len(block), files)

    # --- the context block ----------------------------------------------------------

    def window_lines(self, with_block: bool) -> int:
        """Lines of the window above the cursor: fewer when a context block precedes it."""
        return self.context_prefix_lines if with_block else self.prefix_lines

    @property
    def _repo_layout(self) -> bool:
        return (self.fim is not None and self.fim.repo is not None
                and self.fim.file_sep is not None)

    def _context(self, block: ContextBlock | None, lang: Language, filename: str,
                 budget: int) -> tuple[list[int], tuple[str, ...]]:
        """The block's tokens within its budget (at most half the prompt's), and its files."""
        limit = min(self.context_tokens, budget // 2)
        if block is None or not block.snippets or limit < 16:
            return [], ()
        key = (block, lang.id, filename, limit)
        if self._block is not None and self._block[0] == key:
            return self._block[1], self._block[2]
        head: list[int] = []
        tail: list[int] = []
        fim = self.fim
        if self._repo_layout:
            assert fim is not None and fim.repo is not None and fim.file_sep is not None
            sep = fim.file_sep
            head = [fim.repo, *self.encode_continuation(repo_name(block) + "\n")]
            tail = [sep, *self.encode_continuation(filename.replace("\n", " ")[:200] + "\n")]

            def piece(snippet: Snippet) -> list[int]:
                return [sep, *self.encode_continuation(repo_piece(snippet))]
        else:
            def piece(snippet: Snippet) -> list[int]:
                text = commented(snippet, lang)
                return self.encode_continuation(text) if text else []

        def cut_lines(snippet: Snippet, room: int) -> list[int]:
            part = first_lines(snippet, lambda s: len(piece(s)) <= room)
            return piece(part) if part is not None else []

        pieces = [(s, t) for s in block.snippets if len(t := piece(s)) > 1]
        kept = fit(pieces, limit - len(head) - len(tail), cut_lines)
        tokens = head + [t for _, ts in kept for t in ts] + tail if kept else []
        files = tuple(dict.fromkeys(s.path for s, _ in kept))
        self._block = (key, tokens, files)
        return tokens, files

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

    def _window_start(self, lines: list[str], room: int, first: int, cut: bool,
                      window: int) -> int:
        """Index in `lines` (whose first is line `first` of the file) where the window of
        `window` lines above the cursor starts: on a file line that is a multiple of
        _LINE_STEP, within `room`."""
        n = len(lines)
        wanted = first + n - window
        wanted -= wanted % _LINE_STEP
        # Rounded up from the first line received: a moving cut does not move the window.
        # (Lines counted from a client's own cut have no grid: a line its content marks.)
        earliest = first + (_cut_anchor(lines) if cut else -first % _LINE_STEP)
        start = min(max(wanted, earliest), first + n) - first
        counts = [len(self.encode(ln + "\n")) for ln in lines[start:]]
        total = sum(counts)
        while total > room and start < n:
            step = min(_LINE_STEP - (first + start) % _LINE_STEP, n - start)
            total -= sum(counts[:step])
            counts = counts[step:]
            start += step
        return start

    def window_above(self, above: str, room: int, first_line: int = 0,
                     cut: bool = False, window: int | None = None) -> tuple[str, int]:
        """The lines above the cursor that fit in `room` tokens, as text, and how many
        (`window` lines at most, `prefix_lines` by default). `cut`: the first line of
        `above` may be the end of a longer line."""
        if not above or room <= 0:
            return "", 0
        window = window or self.prefix_lines
        key = (above, room, first_line, cut, window)
        if self._window is None or self._window[0] != key:
            limit = room * _MAX_CHARS_PER_TOKEN
            lines = above[-limit:].split("\n")[:-1]  # `above` ends with "\n"
            first = first_line + above.count("\n") - len(lines)
            whole = (first == 0 and not cut) if len(above) <= limit else (
                above[-limit - 1] == "\n")
            if lines and not whole:  # it may be the end of a longer line
                lines, first = lines[1:], first + 1
            kept = lines[self._window_start(lines, room, first, cut, window):]
            self._window = (key, "".join(ln + "\n" for ln in kept), len(kept), None)
        return self._window[1], self._window[2]

    def _above(self, above: str, room: int, first_line: int = 0,
               cut: bool = False, window: int | None = None) -> tuple[list[int], int]:
        text, n_lines = self.window_above(above, room, first_line, cut, window)
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


def _cut_anchor(lines: list[str]) -> int:
    """The first of `lines` whose content marks it as a window start (0 if none near): the
    same line whatever the cut's position, until the cut passes it, and then the next mark,
    so a cut moving a line at a time moves the window (and re-evaluates it) seldom."""
    for i, line in enumerate(lines[: 4 * _CUT_ANCHOR_EVERY]):
        mark = zlib.crc32(line.encode("utf-8", "surrogatepass")) % _CUT_ANCHOR_EVERY
        if mark == 0 and line.strip():
            return i
    return 0
