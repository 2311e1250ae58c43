"""Parsed open documents, kept per document and reparsed incrementally as they change.

The current document changes at every keystroke: its previous tree is edited with the
difference between the old and the new text (one changed span, found by comparing
both ends) and tree-sitter reparses only that part.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import tree_sitter

from helios_lsp.engine.context import syntax
from helios_lsp.engine.context.tokens import token_ids

MAX_DOCUMENT_BYTES = 512 << 10  # larger documents are chunked by lines, not parsed
TREES = 3  # documents (most recently used) whose tree is kept for incremental reparsing


class ParsedDocument:
    """A document's tree, and what is derived from it on demand: the current document
    needs only its imports at each keystroke; other documents their chunks."""

    def __init__(self, text: str, grammar: str | None, tree: tree_sitter.Tree | None) -> None:
        self.text = text
        self.grammar = grammar
        self.tree = tree  # dropped for documents not used lately (trees take megabytes)
        self._lock = threading.Lock()  # trees are not read from two threads at once
        self._src: bytes | None = None
        self._lines: list[str] | None = None
        self._imports: tuple[syntax.Import, ...] | None = None
        self._syntax: syntax.FileSyntax | None = None
        self._tokens: list[set[int]] | None = None

    @property
    def src(self) -> bytes:
        if self._src is None:
            self._src = self.text.encode("utf-8", "surrogatepass")
        return self._src

    @property
    def lines(self) -> list[str]:
        if self._lines is None:
            self._lines = syntax.split_lines(self.text)
        return self._lines

    def _parsed_tree(self) -> tree_sitter.Tree | None:
        # Called with the lock held: the tree, parsed again if it was dropped.
        if self.tree is None and self.grammar is not None and len(self.src) <= MAX_DOCUMENT_BYTES:
            self.tree = syntax.parse(self.src, self.grammar)
        return self.tree

    def drop_tree(self) -> None:
        with self._lock:
            self.tree = None

    @property
    def imports(self) -> tuple[syntax.Import, ...]:
        with self._lock:
            if self._imports is None:
                tree = self._parsed_tree()
                if tree is None or self.grammar is None:
                    self._imports = ()
                else:
                    self._imports = tuple(syntax.imports(tree, self.grammar, self.src))
            return self._imports

    @property
    def syntax(self) -> syntax.FileSyntax:
        """Definitions and chunks (and imports)."""
        imports = self.imports
        with self._lock:
            if self._syntax is None:
                lines = self.lines
                tree = self._parsed_tree()
                if tree is None or self.grammar is None:
                    chunks = tuple(syntax.chunk_ranges((), len(lines), lines))
                    self._syntax = syntax.FileSyntax(self.grammar or "", len(lines), (), (), chunks)
                else:
                    defs = syntax.definitions(tree, self.grammar, lines, self.src)
                    chunks = tuple(syntax.file_chunks(tree, self.grammar, lines, self.src, defs))
                    self._syntax = syntax.FileSyntax(
                        self.grammar,
                        len(lines),
                        tuple(defs),
                        imports,
                        chunks,
                        tree.root_node.has_error,
                    )
            return self._syntax

    def chunk_tokens(self) -> list[set[int]]:
        """The token ids of each chunk (computed once per text)."""
        parsed = self.syntax
        with self._lock:
            if self._tokens is None:
                lines = self.lines
                self._tokens = [token_ids("".join(lines[a : b + 1])) for a, b in parsed.chunks]
            return self._tokens


class ParsedDocuments:
    """An LRU of parsed documents by key; safe to call from several threads."""

    def __init__(self, capacity: int = 12) -> None:
        self._items: OrderedDict[str, ParsedDocument] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def get(self, key: str, text: str, grammar: str | None) -> ParsedDocument:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
                if item.grammar == grammar and (item.text is text or item.text == text):
                    return item
        previous = item if item is not None and item.grammar == grammar else None
        parsed = _parse(text, grammar, previous)
        with self._lock:
            self._items[key] = parsed
            self._items.move_to_end(key)
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)
            older = list(self._items.values())[:-TREES]
        for item in older:
            item.drop_tree()
        return parsed

    def forget(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)


def _parse(text: str, grammar: str | None, previous: ParsedDocument | None) -> ParsedDocument:
    if grammar is None or len(text) > MAX_DOCUMENT_BYTES:
        return ParsedDocument(text, grammar, None)
    src = text.encode("utf-8", "surrogatepass")
    if len(src) > MAX_DOCUMENT_BYTES:
        return ParsedDocument(text, grammar, None)
    old_tree = None
    if previous is not None:
        with previous._lock:
            old_tree = previous.tree.copy() if previous.tree is not None else None
        if old_tree is not None:
            old_tree.edit(**text_edit(previous.text, text))
    parsed = ParsedDocument(text, grammar, syntax.parse(src, grammar, old_tree))
    parsed._src = src
    return parsed


def _common_prefix(a: str, b: str) -> int:
    # Binary search on slice equality: C-speed comparisons, O(n log n) at worst.
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix(a: str, b: str, limit: int) -> int:
    lo, hi = 0, limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[len(a) - mid :] == b[len(b) - mid :]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _point(text: str, offset: int) -> tuple[int, tuple[int, int]]:
    """(byte offset, (row, byte column)) of a character offset."""
    row = text.count("\n", 0, offset)
    line_start = text.rfind("\n", 0, offset) + 1
    head = len(text[:line_start].encode("utf-8", "surrogatepass"))
    column = len(text[line_start:offset].encode("utf-8", "surrogatepass"))
    return head + column, (row, column)


def text_edit(old: str, new: str) -> dict[str, object]:
    """The arguments of `Tree.edit` that turn `old` into `new`."""
    prefix = _common_prefix(old, new)
    suffix = _common_suffix(old, new, min(len(old), len(new)) - prefix)
    start_byte, start_point = _point(new, prefix)
    old_end_byte, old_end_point = _point(old, len(old) - suffix)
    new_end_byte, new_end_point = _point(new, len(new) - suffix)
    return {
        "start_byte": start_byte,
        "old_end_byte": old_end_byte,
        "new_end_byte": new_end_byte,
        "start_point": start_point,
        "old_end_point": old_end_point,
        "new_end_point": new_end_point,
    }
