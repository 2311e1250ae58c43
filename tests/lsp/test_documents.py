"""Documents as the client sees them: LSP line breaks, the three position encodings,
clamping, incremental edits (including the cases pygls' own TextDocument gets wrong)."""

from __future__ import annotations

import pytest
from lsprotocol import types

from helios_lsp.lsp.documents import UTF8, UTF16, UTF32, DocumentStore, TextDocument

P = types.Position

# "x = '😀é'" : 😀 is 1 code point, 2 UTF-16 units, 4 UTF-8 bytes; é is 1, 1, 2.
ASTRAL = "x = '😀é'\nnext"


@pytest.mark.parametrize(
    ("text", "encoding", "position", "offset"),
    [
        # the closing quote of x = '😀é' in each encoding
        (ASTRAL, UTF16, P(0, 8), 7),
        (ASTRAL, UTF8, P(0, 11), 7),
        (ASTRAL, UTF32, P(0, 7), 7),
        # a column inside 😀 rounds down to its start
        (ASTRAL, UTF16, P(0, 6), 5),
        (ASTRAL, UTF8, P(0, 7), 5),
        # past the end of a line: the end of that line (before its break)
        (ASTRAL, UTF16, P(0, 99), 8),
        ("abc", UTF16, P(0, 99), 3),
        ("ab\r\ncd", UTF16, P(0, 99), 2),
        ("ab\r\ncd", UTF16, P(0, 3), 2),  # never between \r and \n
        # past the last line: the end of the document
        ("abc\n", UTF16, P(5, 0), 4),
        ("é😀", UTF16, P(5, 0), 2),
        # the empty last line after a final break
        ("abc\n", UTF16, P(1, 0), 4),
        # CR LF, lone CR, and characters that are NOT line breaks in LSP
        ("a\r\nb\r\nc", UTF16, P(2, 1), 7),
        ("a\rb\rc", UTF16, P(2, 0), 4),
        ("a\x0cb\nc = 2", UTF16, P(1, 2), 6),
        ("a\u2028b\nc", UTF16, P(1, 1), 5),
        ("a\x85b\x1cc\nd", UTF16, P(1, 0), 6),
    ],
)
def test_offset_at(text: str, encoding: str, position: types.Position, offset: int):
    doc = TextDocument("file:///t.py", text)
    assert doc.offset_at(position, encoding) == offset
    assert position == P(position.line, position.character)  # the request is not modified


@pytest.mark.parametrize(
    ("text", "encoding", "offset", "position"),
    [
        (ASTRAL, UTF16, 7, P(0, 8)),
        (ASTRAL, UTF8, 7, P(0, 11)),
        (ASTRAL, UTF32, 7, P(0, 7)),
        (ASTRAL, UTF16, 9, P(1, 0)),
        ("ab\r\ncd", UTF16, 3, P(0, 2)),  # inside the CRLF: the end of the line
        ("ab\r\ncd", UTF16, 99, P(1, 2)),
        ("abc\n", UTF16, 4, P(1, 0)),
    ],
)
def test_position_at(text: str, encoding: str, offset: int, position: types.Position):
    assert TextDocument("file:///t.py", text).position_at(offset, encoding) == position


def change(start: tuple[int, int], end: tuple[int, int], text: str):
    return types.TextDocumentContentChangePartial(
        range=types.Range(start=P(*start), end=P(*end)), text=text)


@pytest.mark.parametrize(
    ("text", "encoding", "edit", "expected"),
    [
        ("abc", UTF16, change((0, 1), (0, 99), "Z"), "aZ"),  # end past the line's end
        ("a = 1\x0cb\nc = 2\n", UTF16, change((1, 0), (1, 1), "X"), "a = 1\x0cb\nX = 2\n"),
        ("s = '😀'\n", UTF16, change((0, 8), (0, 8), "!"), "s = '😀'!\n"),
        ("s = '😀'\n", UTF8, change((0, 10), (0, 10), "!"), "s = '😀'!\n"),
        ("s = '😀'\n", UTF32, change((0, 7), (0, 7), "!"), "s = '😀'!\n"),
        ("s = '😀'\n", UTF16, change((0, 5), (0, 7), ""), "s = ''\n"),  # delete the pair
        ("a\r\nb\r\n", UTF16, change((1, 1), (1, 1), "c"), "a\r\nbc\r\n"),
        ("a\r\nb\r\n", UTF16, change((0, 1), (1, 0), ""), "ab\r\n"),  # join lines
        ("abc\n", UTF16, change((1, 0), (1, 0), "def"), "abc\ndef"),  # at the very end
        ("abc", UTF16, change((7, 0), (9, 0), "!"), "abc!"),  # past the end
        ("", UTF16, change((0, 0), (0, 0), "x\ny"), "x\ny"),
    ],
)
def test_incremental_edit(text: str, encoding: str, edit, expected: str):
    doc = TextDocument("file:///t.py", text)
    doc.apply(edit, encoding)
    assert doc.text == expected


def test_full_edit_and_store():
    store = DocumentStore()
    store.open(types.TextDocumentItem(uri="file:///a.py", language_id="python", version=1,
                                      text="one\n"))
    store.change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri="file:///a.py", version=2),
        content_changes=[change((0, 3), (0, 3), "!"),
                         types.TextDocumentContentChangeWholeDocument(text="two\n"),
                         change((1, 0), (1, 0), "three")],
    ), UTF16)
    doc = store.get("file:///a.py")
    assert doc is not None and (doc.text, doc.version) == ("two\nthree", 2)
    # a change for a document that was never opened is ignored, not an error
    store.change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri="file:///b.py", version=1),
        content_changes=[change((0, 0), (0, 0), "x")]), UTF16)
    store.close("file:///a.py")
    assert store.get("file:///a.py") is None and len(store) == 0


def test_many_typed_characters_keep_positions():
    """Typing character by character (the common case) lands every character in place."""
    doc = TextDocument("file:///t.py", "def f():\r\n    \r\n")
    for i, char in enumerate("return '😀'"):
        column = 4 + len("return '😀'"[:i].encode("utf-16-le")) // 2
        doc.apply(change((1, column), (1, column), char), UTF16)
    assert doc.text == "def f():\r\n    return '😀'\r\n"
    assert doc.eol == "\r\n"
