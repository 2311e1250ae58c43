"""Prompts as text, for engines that run on a server Helios cannot tokenize for.

The same layout and the same window of lines as `prompt.PromptBuilder` (anchored to the
file's lines, so the server's prompt cache stays warm while the user types), but budgets
are estimated from characters: a server tokenizes the text itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from helios_lsp.engine.languages import Language
from helios_lsp.engine.prompt import PromptBuilder, header_text

# Code averages nearer 4 characters a token; 3 errs towards a prompt that fits.
_CHARS_PER_TOKEN = 3
_LINE_CHARS = 2048  # of the cursor's line, the part next to the cursor


def approx_tokens(text: str) -> list[int]:
    """A stand-in token list as long as `text` is likely to be in tokens."""
    return [0] * (len(text) // _CHARS_PER_TOKEN + 1)


@dataclass(frozen=True, slots=True)
class TextPrompt:
    header: str  # a comment naming the file (prompts without FIM only)
    above: str  # whole lines above the cursor
    line: str  # the cursor's line up to the cursor
    suffix: str  # the rest of the line and the lines below (FIM prompts only)

    def plain(self) -> str:
        """The prompt for a model without fill-in-the-middle."""
        return self.header + self.above + self.line


class TextPromptBuilder:
    def __init__(self, n_ctx: int, prefix_lines: int, suffix_lines: int):
        self._window = PromptBuilder(approx_tokens, n_ctx=n_ctx, bos=None, fim=None,
                                     prefix_lines=prefix_lines, suffix_lines=suffix_lines)
        self.suffix_lines = suffix_lines

    def build(self, prefix: str, suffix: str, lang: Language, filename: str, max_tokens: int,
              *, fim: bool, first_line: int = 0) -> TextPrompt:
        budget = self._window.budget(max_tokens)
        if budget < 16:
            raise ValueError(f"max_tokens {max_tokens} leaves no room for a prompt")
        above, nl, line = prefix.rpartition("\n")
        above += nl
        line = line[-_LINE_CHARS:]
        header = "" if fim else header_text(lang, filename)
        kept_suffix = ""
        if fim and self.suffix_lines:
            kept_suffix = "\n".join(suffix.split("\n")[: self.suffix_lines + 1])
            kept_suffix = kept_suffix[: budget // 4 * _CHARS_PER_TOKEN]
        room = budget - sum(len(approx_tokens(t)) for t in (header, line, kept_suffix))
        window, _ = self._window.window_above(above, room, first_line)
        return TextPrompt(header, window, line, kept_suffix)
