"""Prompts as text, for engines that run on a server Helios cannot tokenize for.

The same layout and the same window of lines as `prompt.PromptBuilder` (anchored to the
file's lines, so the server's prompt cache stays warm while the user types), but budgets
are estimated from characters: a server tokenizes the text itself. The context block from
other files is cut to its budget here; each server kind lays it out (llama_server.py,
openai.py and templates.py; context_layout.py says how).
"""

from __future__ import annotations

from dataclasses import dataclass

from helios_lsp.engine.context_layout import commented, first_lines, fit, repo_piece
from helios_lsp.engine.languages import Language
from helios_lsp.engine.prompt import PromptBuilder, header_text
from helios_lsp.engine.types import ContextBlock, Snippet

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
    context: tuple[Snippet, ...] = ()  # other files' snippets within the budget
    context_text: str = ""  # those as comment-headed blocks (unless laid out by the server)
    repo: str = ""  # the workspace folder's name
    path: str = ""  # the file's path (relative to its workspace folder)

    def plain(self) -> str:
        """The prompt for a model without fill-in-the-middle."""
        return self.context_text + self.header + self.above + self.line


class TextPromptBuilder:
    def __init__(self, n_ctx: int, prefix_lines: int, suffix_lines: int,
                 context_tokens: int = 0, context_prefix_lines: int | None = None):
        self._window = PromptBuilder(approx_tokens, n_ctx=n_ctx, bos=None, fim=None,
                                     prefix_lines=prefix_lines, suffix_lines=suffix_lines,
                                     context_prefix_lines=context_prefix_lines)
        self.suffix_lines = suffix_lines
        self.context_tokens = context_tokens

    def build(self, prefix: str, suffix: str, lang: Language, filename: str, max_tokens: int,
              *, fim: bool, first_line: int = 0, cut: bool = False,
              context: ContextBlock | None = None, repo_layout: bool = False) -> TextPrompt:
        """`repo_layout`: the server lays the context out itself (repository-level tokens,
        llama-server's input_extra): it is not written as comments into the prompt."""
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
        snippets, context_text = self._context(context, lang, budget, repo_layout)
        room = budget - sum(len(approx_tokens(t)) for t in (header, line, kept_suffix))
        room -= sum(len(approx_tokens(repo_piece(s))) for s in snippets) if repo_layout else (
            len(approx_tokens(context_text)) if context_text else 0)
        window, _ = self._window.window_above(above, room, first_line, cut,
                                              self._window.window_lines(bool(snippets)))
        return TextPrompt(header, window, line, kept_suffix, snippets, context_text,
                          context.repo if context is not None else "", filename)

    def _context(self, block: ContextBlock | None, lang: Language, budget: int,
                 repo_layout: bool) -> tuple[tuple[Snippet, ...], str]:
        limit = min(self.context_tokens, budget // 2)
        if block is None or not block.snippets or limit < 16:
            return (), ""
        render = repo_piece if repo_layout else (lambda s: commented(s, lang))

        def cut_lines(snippet: Snippet, room: int) -> list[int]:
            part = first_lines(snippet, lambda s: len(approx_tokens(render(s))) <= room)
            return approx_tokens(render(part)) if part is not None else []

        pieces = [(s, approx_tokens(text)) for s in block.snippets if (text := render(s))]
        kept = fit(pieces, limit, cut_lines)
        # A snippet cut to its first lines: keep the lines that fitted.
        snippets = tuple(_shortened(s, len(tokens), render) for s, tokens in kept)
        return snippets, "" if repo_layout else "".join(render(s) for s in snippets)


def _shortened(snippet: Snippet, tokens: int, render) -> Snippet:
    if len(approx_tokens(render(snippet))) <= tokens:
        return snippet
    part = first_lines(snippet, lambda s: len(approx_tokens(render(s))) <= tokens)
    return part if part is not None else snippet
