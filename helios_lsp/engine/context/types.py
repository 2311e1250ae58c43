"""Plain data the context library takes and gives."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from helios_lsp.engine.types import Snippet

SNIPPET_KINDS = ("outline", "chunk", "edit")


# One piece of another file for the prompt: the engine's own type.
__all__ = ["SNIPPET_KINDS", "ContextLimits", "ContextQuery", "Snippet"]


@dataclass(frozen=True)
class ContextLimits:
    """Bounds on the workspace index; the engine fills these from Settings."""

    max_files: int = 10_000  # workspace files indexed at most
    max_bytes: int = 64 << 20  # total size of the files indexed at most
    max_file_bytes: int = 256 << 10  # larger files are skipped unread
    secret_globs: tuple[str, ...] = ()  # extra names never read (a setting)
    # The stat sweep that notices changes no watcher reported runs at most this often.
    sweep_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class ContextQuery:
    """The document being completed, as the engine sees it."""

    key: str  # an LSP URI, or "client/filename" for HTTP
    path: Path | None  # its absolute path when it is a file
    name: str  # its relative path or file name
    language: str  # a language id ("python", "typescriptreact", ...)
    text: str  # the whole document: prefix + suffix
    cursor: int  # offset of the cursor into `text`
