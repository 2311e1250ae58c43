"""Identifier tokens for similarity: what a chunk of code talks about."""

from __future__ import annotations

import re
import zlib

_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")

# Keywords of the indexed languages and names too common to tell code apart.
_STOP_WORDS = """
    and as assert async await break case catch class const continue def default del do elif
    else enum except export extends false final finally for from func function go if impl
    import in instanceof interface is lambda let match mod module mut new nil none None not
    null or package pass private protected pub public raise return self Self static struct
    super switch this throw throws true True False try type typeof undefined use var void
    while with yield int char float double long short unsigned signed bool boolean string
    str byte auto sizeof typedef union extern include define ifdef ifndef endif namespace
    template typename virtual override const_cast static_cast nullptr std where trait crate
    fn loop ref move dyn defer chan range select fallthrough goto
"""
STOP_WORDS = frozenset(_STOP_WORDS.split())


def identifiers(text: str) -> list[str]:
    """The identifiers of a text, in order, keywords and one-letter names left out."""
    return [t for t in _IDENTIFIER.findall(text) if len(t) > 1 and t not in STOP_WORDS]


_SUBWORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def words(text: str) -> set[str]:
    """The words identifiers are made of, lowercased (`CONTENT_ENCODING`, `contentEncoding`
    -> content, encoding), shorter than three letters and keywords left out: what ties a
    definition's name to code that talks about the same thing."""
    out: set[str] = set()
    for name in identifiers(text):
        out.update(w.lower() for w in _SUBWORD.findall(name) if len(w) > 2)
    return out - STOP_WORDS


def token_ids(text: str) -> set[int]:
    """The distinct identifiers of a text as stable 32-bit ids (CRC-32 of the name): the
    index keeps numbers, not strings, and the same text always gives the same ids."""
    return {zlib.crc32(t.encode()) for t in set(identifiers(text))}
