"""Where a suggestion stops and what is cut from it.

The same rules run twice: on every generated token (`Cleaner.cut`, so generation
stops as soon as the answer is known) and once at the end (`Cleaner.finish`).

- cursor inside a line (text after it) -> one line;
- cursor after a line that opens a block -> several lines, until a line is indented
  below the block, the code after the cursor repeats, or lines start repeating;
- otherwise -> the rest of the current line;
- text that repeats what follows the cursor is dropped; whitespace becomes "".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from helios_lsp.engine.languages import Language
from helios_lsp.engine.types import StopReason

LINE, BLOCK = "line", "block"
_PAIRS = {")": "(", "]": "[", "}": "{"}
_OPENERS = "([{"
_QUOTES = "\"'`"


# Every pass over user text here is linear: the text comes from the editor (a 10k-char
# run of `_` must not cost more than twice a 5k one), and this runs under the GIL.
_EDGE = re.compile(r"[\W_]*")  # one greedy class: never backtracks
_WORD = re.compile(r"\w*")
# Lines longer than this are not compared as repeats: a repeated 4k-char line is not
# what the repeat rules are for, and skipping them bounds the work per generated token.
_MAX_COMPARED_LINE = 4096
# A suggestion's end is compared with at most this many overlaps with the rest of the
# line (longest first), and brackets are balanced over this many characters on each side
# of the cursor: a pathological periodic line is not worth more work.
_MAX_OVERLAPS = 16
_BALANCE_WINDOW = 1024
# Never part of code an editor should insert: control characters but tab and newline (a
# model, or a hostile engine server, can produce ESC), and bidirectional overrides, which
# make code read differently from how it runs ("Trojan Source").
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def is_trivial_line(line: str) -> bool:
    r"""At most one word between non-word characters (`}`, `end`, `pass`, `break;`).

    Same as fullmatching `[\W_]*\w*[\W_]*`, in one pass: that regex backtracks
    cubically on a run of `_`, which is both `\w` and `[\W_]`."""
    start = _EDGE.match(line).end()  # type: ignore[union-attr]
    end = len(line) - _EDGE.match(line[::-1]).end()  # type: ignore[union-attr]
    return start >= end or _WORD.fullmatch(line, start, end) is not None


def indent_width(line: str) -> int:
    stripped = line.lstrip(" \t")
    return len(line[: len(line) - len(stripped)].expandtabs(4))


@dataclass(frozen=True)
class CursorContext:
    mode: str  # LINE or BLOCK
    line_prefix: str  # current line up to the cursor
    line_suffix: str  # current line after the cursor
    prev_line: str  # nearest non-blank line above the current one
    next_lines: tuple[str, ...] = field(default=())  # non-blank lines after the current one
    block_indent: int = 0  # BLOCK: every new non-blank line must be indented at least this much


def analyse(prefix: str, suffix: str, lang: Language, max_next_lines: int = 8) -> CursorContext:
    """Decide single- or multi-line from the text around the cursor."""
    above, _, line_prefix = prefix.rpartition("\n")
    line_suffix, _, below = suffix.partition("\n")
    prev_line = next((ln for ln in reversed(above.split("\n")) if ln.strip()), "")
    next_lines = tuple(ln for ln in below.split("\n")[: max_next_lines * 4] if ln.strip())
    next_lines = next_lines[:max_next_lines]

    def opens_block(line: str) -> bool:
        code = strip_comment(line, lang.line_comment).rstrip()
        return bool(code) and code.endswith(lang.block_openers)

    mode, block_indent = LINE, 0
    if not line_suffix.strip():
        if not line_prefix.strip() and opens_block(prev_line):
            # On a blank line below `def f():` / `{`: a block body.
            mode = BLOCK
            block_indent = max(indent_width(line_prefix), indent_width(prev_line) + 1)
        elif opens_block(line_prefix):
            # At the end of the line that opens the block: the body comes after a newline.
            mode = BLOCK
            block_indent = indent_width(line_prefix) + 1
    return CursorContext(mode, line_prefix, line_suffix, prev_line, next_lines, block_indent)


def strip_comment(line: str, marker: str) -> str:
    """`line` without its trailing line comment (`# References:` opens no block).

    Quotes are tracked so that `"http://x"` is not a comment; good enough for one line."""
    if not marker:
        return line
    quote = ""
    i = 0
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in _QUOTES:
            quote = ch
        elif line.startswith(marker, i):
            return line[:i]
        i += 1
    return line


def repeats_line(line: str, other: str) -> bool:
    """Whether `line` is a copy of `other`, beyond a lone bracket or keyword."""
    if len(line) > _MAX_COMPARED_LINE or len(other) > _MAX_COMPARED_LINE:
        return False
    line = line.strip()
    return bool(line) and line == other.strip() and not is_trivial_line(line)


def _imbalance(text: str) -> int:
    """How far brackets and quotes in `text` are from balanced (a rough count)."""
    stack: list[str] = []
    unmatched = 0
    for ch in text:
        if ch in _OPENERS:
            stack.append(ch)
        elif ch in _PAIRS:
            if stack and stack[-1] == _PAIRS[ch]:
                stack.pop()
            else:
                unmatched += 1
    return unmatched + len(stack) + sum(text.count(q) % 2 for q in _QUOTES)


class Cleaner:
    def __init__(self, ctx: CursorContext):
        self.ctx = ctx
        # `cut` runs on every generated token: the cursor's line is joined with the
        # suggestion only when it is short enough to be compared at all.
        self._line_prefix = ctx.line_prefix if len(ctx.line_prefix) <= _MAX_COMPARED_LINE else None

    def cut(self, text: str, final: bool = False) -> tuple[int, StopReason] | None:
        """Where generation must end in `text`, and why; None to keep going."""
        ctx = self.ctx
        if ctx.mode == LINE:
            nl = text.find("\n")
            return (nl, StopReason.LINE) if nl >= 0 else None

        lines = text.split("\n")
        # lines[0] continues the cursor's line; judge the lines that follow it.
        first = None if self._line_prefix is None else self._line_prefix + lines[0]
        if (final or len(lines) > 1) and lines[0].strip() and first is not None and repeats_line(
            first, ctx.prev_line
        ):
            return 0, StopReason.REPEATS_PREVIOUS_LINE
        offset = len(lines[0]) + 1
        blank_run = 0
        previous = (first or "").strip()
        next_line = ctx.next_lines[0].strip() if ctx.next_lines else ""
        for i, line in enumerate(lines[1:], start=1):
            complete = final or i < len(lines) - 1
            start = offset - 1  # cut before the newline that opens this line
            offset += len(line) + 1
            if not line.strip():
                blank_run += 1
                if complete and blank_run >= 2:
                    return start, StopReason.BLANK_LINES
                continue
            blank_run = 0
            if indent_width(line) < ctx.block_indent:
                return start, StopReason.BLOCK
            if not complete:
                return None
            if next_line and line.strip() == next_line:
                return start, StopReason.REPEATS_SUFFIX
            if line.strip() == previous:  # the model looping, even on `}`
                return start, StopReason.REPEATED_LINE
            previous = line.strip()
        return None

    def finish(self, raw: str) -> tuple[str, StopReason | None]:
        """The clean suggestion from everything generated, and why it ended where it does
        (None: no rule cut it, so generation's own reason stands)."""
        ctx = self.ctx
        reason: StopReason | None = None
        raw = _UNPRINTABLE.sub("", raw)
        stop = self.cut(raw, final=True)
        text = raw
        if stop is not None:
            text, reason = raw[: stop[0]], stop[1]
        text = text.rstrip()
        if ctx.mode == BLOCK:
            text = text.rstrip("\n")

        line_suffix = ctx.line_suffix.strip()
        if ctx.mode == LINE and line_suffix:
            if line_suffix.startswith(text.strip()):
                return "", StopReason.REPEATS_SUFFIX
            text = self._drop_suffix_overlap(text)

        if ctx.mode == LINE and text.strip():
            # The line as it would read, with or without what is already after the cursor.
            if repeats_line(ctx.line_prefix + text, ctx.prev_line) or repeats_line(
                ctx.line_prefix + text + ctx.line_suffix, ctx.prev_line
            ):
                return "", StopReason.REPEATS_PREVIOUS_LINE
        elif ctx.next_lines and text.strip():
            # The whole block is already there below the cursor.
            following = "\n".join(ln.strip() for ln in ctx.next_lines)
            if following.startswith("\n".join(ln.strip() for ln in text.strip().split("\n"))):
                return "", StopReason.REPEATS_SUFFIX

        if not text.strip():
            return "", reason or StopReason.EMPTY
        return text, reason

    def _drop_suffix_overlap(self, text: str) -> str:
        """Remove an ending of `text` that the rest of the line already has, e.g. `x)` + `)`.

        A repeat of the whole rest of the line goes unless it unbalances the line; a
        partial one only when it balances it: `foo()` before `)` keeps its `)`."""
        ctx = self.ctx
        suffix = ctx.line_suffix.strip()
        before = ctx.line_prefix[-_BALANCE_WINDOW:]
        after_cursor = ctx.line_suffix[:_BALANCE_WINDOW]
        whole = _imbalance(before + text + after_cursor)
        tried = 0
        for k in range(min(len(suffix), len(text), _BALANCE_WINDOW), 0, -1):
            if text.endswith(suffix[:k]):
                candidate = text[:-k]
                after = _imbalance(before + candidate + after_cursor)
                if after < whole or (k == len(suffix) and after == whole):
                    return candidate.rstrip()
                tried += 1
                if tried >= _MAX_OVERLAPS:
                    break
        return text
