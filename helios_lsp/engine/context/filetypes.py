"""Which files the library reads, as which language, with which tree-sitter grammar."""

from __future__ import annotations

import posixpath

from helios_lsp.engine.languages import detect

# File extension -> Helios language id (helios_lsp/engine/languages.py), plus the
# extensions that language table leaves out (headers, JSX/TSX, ES modules).
LANGUAGE_BY_EXTENSION: dict[str, str] = {
    ".py": "python",
    ".js": "javascript",
    ".jsx": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".ts": "typescript",
    ".tsx": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".java": "java",
    ".cpp": "cpp",
    ".cc": "cpp",
    ".cxx": "cpp",
    ".hpp": "cpp",
    ".hh": "cpp",
    ".hxx": "cpp",
    ".c": "c",
    ".h": "c",
    ".go": "go",
    ".rs": "rust",
    ".html": "html",
    ".htm": "html",
    ".css": "css",
    ".json": "json",
}

# Files of a known language that are generated, not written: never worth indexing.
GENERATED_SUFFIXES = (".min.js", ".min.css", ".bundle.js", "-lock.json", ".lock.json")


def language_of(name: str) -> str | None:
    """The language id of a file name, None when Helios does not index it."""
    base = posixpath.basename(name.replace("\\", "/")).lower()
    if base.endswith(GENERATED_SUFFIXES):
        return None
    return LANGUAGE_BY_EXTENSION.get(posixpath.splitext(base)[1])


def grammar_for(language: str, name: str = "") -> str | None:
    """The tree-sitter grammar for a language id (or, failing that, a file name)."""
    ext = posixpath.splitext(name.lower())[1]
    lang_id = language.strip().lower()
    if ext == ".tsx" or lang_id == "typescriptreact":
        return "tsx"
    known = detect(lang_id, name).id or language_of(name) or ""
    return known or None
