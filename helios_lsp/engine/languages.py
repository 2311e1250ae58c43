"""The documented languages, found by language id or by file extension.

Only the few rules that differ per language live here (what opens a block, how a
comment starts). Any other language is still completed, with the generic rules.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Language:
    id: str
    name: str
    extensions: tuple[str, ...]
    # Line endings after which the next lines form an indented block.
    block_openers: tuple[str, ...] = ("{", "(", "[")
    line_comment: str = "//"


_BRACES = ("{", "(", "[")

LANGUAGES: tuple[Language, ...] = (
    Language("python", "Python", (".py",), (":", "(", "[", "{"), "#"),
    Language("javascript", "JavaScript", (".js",), (*_BRACES, "=>")),
    Language("typescript", "TypeScript", (".ts",), (*_BRACES, "=>")),
    Language("java", "Java", (".java",)),
    Language("cpp", "C++", (".cpp", ".cc", ".cxx")),
    Language("c", "C", (".c",)),
    Language("go", "Go", (".go",)),
    Language("rust", "Rust", (".rs",)),
    Language("html", "HTML", (".html",), (">",), ""),
    Language("css", "CSS", (".css",), ("{",), ""),
    Language("json", "JSON", (".json",), ("{", "["), ""),
)

# Generic rules for languages not in the list: brackets open blocks, no comments.
GENERIC = Language("", "text", (), _BRACES, "")

_BY_ID = {lang.id: lang for lang in LANGUAGES}
# Common aliases editors send as language ids.
_BY_ID.update(
    {
        "py": _BY_ID["python"],
        "js": _BY_ID["javascript"],
        "javascriptreact": _BY_ID["javascript"],
        "ts": _BY_ID["typescript"],
        "typescriptreact": _BY_ID["typescript"],
        "c++": _BY_ID["cpp"],
        "golang": _BY_ID["go"],
        "rs": _BY_ID["rust"],
    }
)
_BY_EXT = {ext: lang for lang in LANGUAGES for ext in lang.extensions}

SUPPORTED_IDS: tuple[str, ...] = tuple(lang.id for lang in LANGUAGES)


def detect(language_id: str = "", filename: str = "") -> Language:
    """The language for an id (preferred) or a file name; GENERIC when neither is known."""
    lang = _BY_ID.get(language_id.strip().lower())
    if lang is not None:
        return lang
    ext = os.path.splitext(filename)[1].lower()
    return _BY_EXT.get(ext, GENERIC)
