"""How other files' snippets are written into a prompt, for each kind of model.

- Models with repository-level tokens (Qwen2.5-Coder `<|repo_name|>` / `<|file_sep|>`,
  StarCoder2 `<repo_name>` / `<file_sep>`) get the layout they were trained on:
  `<repo>name\\n`, then `<sep>path\\ncontent` per file, then `<sep>current path\\n`, then the
  file's own FIM prompt (prompt.py, remote/templates.py).
- llama-server's `/infill` takes them as `input_extra` and lays them out itself.
- Any other model: each snippet under a comment line naming its file, before the file's
  window (and inside the FIM prefix for FIM models): what Copilot and Tabby send.

The block is cut to its budget here, least important snippets first (they come first in
the block); the same block and budget always give the same text, so the model's cache of
it stays warm while the user types.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from helios_lsp.engine.languages import Language
from helios_lsp.engine.types import ContextBlock, Snippet


def _clean_path(path: str) -> str:
    return path.replace("\n", " ").strip()[:200]


def comment_line(lang: Language, text: str) -> str:
    """`text` as a one-line comment in `lang` ("" where it has no comments: JSON)."""
    if lang.line_comment:
        return f"{lang.line_comment} {text}\n"
    if lang.id == "html":
        return f"<!-- {text} -->\n"
    if lang.id == "css":
        return f"/* {text} */\n"
    return ""


def commented(snippet: Snippet, lang: Language) -> str:
    """A snippet headed by a comment naming its file ("" when `lang` has no comments)."""
    header = comment_line(lang, _clean_path(snippet.path))
    if not header:
        return ""
    text = snippet.text if snippet.text.endswith("\n") else snippet.text + "\n"
    return header + text + "\n"


def repo_piece(snippet: Snippet) -> str:
    """What follows a file-separator token for one snippet: its path, then its lines."""
    text = snippet.text if snippet.text.endswith("\n") else snippet.text + "\n"
    return f"{_clean_path(snippet.path)}\n{text}"


def fit(pieces: Sequence[tuple[Snippet, list[int]]], limit: int,
        cut_lines: Callable[[Snippet, int], list[int]]) -> list[tuple[Snippet, list[int]]]:
    """The snippets (with their tokens) that fit in `limit` tokens: from the most important
    (last) back; the most important one alone too big is cut to its first lines
    (`cut_lines(snippet, limit)`). The order is kept."""
    kept: list[tuple[Snippet, list[int]]] = []
    room = limit
    for snippet, tokens in reversed(pieces):
        if len(tokens) <= room:
            kept.append((snippet, tokens))
            room -= len(tokens)
        elif not kept:
            tokens = cut_lines(snippet, room)
            if tokens:
                kept.append((snippet, tokens))
                room -= len(tokens)
    kept.reverse()
    return kept


def first_lines(snippet: Snippet, fits: Callable[[Snippet], bool]) -> Snippet | None:
    """The longest run of `snippet`'s first lines that `fits` (None when not even one)."""
    lines = snippet.text.splitlines(keepends=True)
    lo, hi = 0, len(lines)
    while lo < hi:  # the most lines that fit: a binary search over the line count
        mid = (lo + hi + 1) // 2
        if fits(Snippet(snippet.path, "".join(lines[:mid]), snippet.kind)):
            lo = mid
        else:
            hi = mid - 1
    return Snippet(snippet.path, "".join(lines[:lo]), snippet.kind) if lo else None


def repo_name(block: ContextBlock) -> str:
    return _clean_path(block.repo) or "project"
