"""`ContextSources`: the sources of cross-file context and the choice among them.

What `select` gives, in priority order (the tuple it returns is this order reversed:
least important first, most important last, nearest the cursor):

1. outlines of the modules the current file imports whose bound name is used near the
   cursor, the nearest use first;
2. the most recent edits in other open documents (the lines around them);
3. outlines of the other imported modules, in import order;
4. the chunks most similar (BM25 over identifier tokens) to the lines above the cursor,
   best first, at most one per file, from open documents and the workspace.

Each part has a share of the budget it may not exceed; what one leaves unused goes to
the chunks. A snippet costs len(path) + len(text) characters. The same inputs (documents,
edits, workspace on disk and in the index) always give the same tuple. `choose` also
gives the names each module bound near the cursor offers (`hdrs` -> CONTENT_LENGTH, ...),
for the engine to keep a `hdrs.` suggestion on them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helios_lsp.engine.context import exports, syntax
from helios_lsp.engine.context.chunk_index import idf, length_factor
from helios_lsp.engine.context.doc_syntax import ParsedDocuments
from helios_lsp.engine.context.documents import Document, Documents, RecentEdits, normalise
from helios_lsp.engine.context.filetypes import grammar_for
from helios_lsp.engine.context.resolve import Files, resolve
from helios_lsp.engine.context.secret_names import is_secret
from helios_lsp.engine.context.tokens import identifiers, token_ids, words
from helios_lsp.engine.context.types import ContextLimits, ContextQuery, Snippet
from helios_lsp.engine.context.workspace import IndexedFile, WorkspaceIndex

log = logging.getLogger(__name__)

QUERY_LINES = 50  # lines above the cursor that chunks are compared with
NEAR_LINES = 12  # lines above the cursor where an imported name counts as used
OUTLINES = 6  # imported modules outlined at most
OUTLINE_SHARE = 0.5  # of the budget, for all outlines
OUTLINE_FILE_SHARE = 0.25  # of the budget, for one outline
EDITS = 3  # recent edits shown at most
EDIT_SHARE = 0.2  # of the budget, for all edits
EDIT_ABOVE, EDIT_BELOW = 3, 3  # lines shown around an edit
CHUNK_FILES = 8  # files chunks are taken from at most
CHUNK_SHARE = 0.35  # of the budget, for one chunk
CHUNK_MIN_RATIO = 0.3  # chunks scoring below this fraction of the best are left out
OPEN_DOCUMENTS = 20  # open documents compared at most (most recently used)
NAMED_MODULES = 3  # modules bound near the cursor whose names are given at most
_NAMES_CACHE = 32  # modules' names kept (by path and text) between selections

ModuleNames = tuple[str, tuple[str, ...]]  # a name bound to a module, and the names it offers


@dataclass(frozen=True, slots=True)
class _Candidate:
    score: float
    rank: int  # 0.. for open documents by recency, larger for the workspace
    path: str  # shown path
    first: int
    last: int
    abs_path: str | None
    doc: Document | None
    entry: IndexedFile | None


class ContextSources:
    """Open documents, recent edits and the workspace index, and `select` among them.

    The document and workspace methods are cheap and may be called from the asyncio
    loop; `select` and `stats` from any thread (select() is meant for a worker thread).
    """

    def __init__(self, limits: ContextLimits | None = None) -> None:
        self.limits = limits or ContextLimits()
        self._lock = threading.Lock()
        self._docs = Documents()
        self._edits = RecentEdits()
        self._parsed = ParsedDocuments(capacity=OPEN_DOCUMENTS + 4)
        self._workspace = WorkspaceIndex(self.limits)
        self._selects = 0
        self._last_select_ms: float | None = None
        self._names: OrderedDict[tuple[str, int, int], frozenset[str] | None] = OrderedDict()

    # --- workspace -----------------------------------------------------------------------

    def set_folders(self, folders: Sequence[Path]) -> None:
        """The workspace folders (replacing the previous ones); indexed in the background."""
        self._workspace.set_folders(folders)

    def files_changed(self, paths: Sequence[Path]) -> None:
        """Files created or changed (LSP workspace/didChangeWatchedFiles)."""
        self._workspace.files_changed(paths)

    def files_deleted(self, paths: Sequence[Path]) -> None:
        self._workspace.files_deleted(paths)

    @property
    def workspace_enabled(self) -> bool:
        return self._workspace.enabled

    @workspace_enabled.setter
    def workspace_enabled(self, enabled: bool) -> None:
        """False: no walk, no indexing, the index emptied. True: index the folders."""
        self._workspace.set_enabled(enabled)

    def indexed_paths(self) -> list[str]:
        """The absolute paths of the workspace files in the index, sorted."""
        return self._workspace.paths()

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """Wait until the workspace index has no work queued (tests, benchmarks)."""
        return self._workspace.wait_ready(timeout)

    # --- open documents --------------------------------------------------------------------

    def document_opened(
        self, key: str, path: Path | None, name: str, language: str, text: str
    ) -> None:
        secret = self._is_secret(name) or (path is not None and self._is_secret(str(path)))
        with self._lock:
            if secret:  # never kept, never shown
                self._docs.close(key)
                return
            self._docs.open(Document(key, normalise(path), name, language, text))

    def document_changed(self, key: str, text: str, edit_line: int | None = None) -> None:
        """A document's new text; `edit_line` (0-based) records where the user typed."""
        with self._lock:
            if self._docs.change(key, text) and edit_line is not None:
                self._edits.record(key, edit_line)

    def document_closed(self, key: str) -> None:
        with self._lock:
            self._docs.close(key)
            self._edits.forget(key)
        self._parsed.forget(key)

    # --- choosing ----------------------------------------------------------------------------

    def select(self, query: ContextQuery, budget_chars: int) -> tuple[Snippet, ...]:
        """The snippets for a completion in `query`'s document, least important first."""
        return self.choose(query, budget_chars)[0]

    def choose(self, query: ContextQuery, budget_chars: int
               ) -> tuple[tuple[Snippet, ...], tuple[ModuleNames, ...]]:
        """The snippets (as `select`), and the names offered by the modules whose bound
        name is used near the cursor (nearest first; only modules whose names can all be
        known, see exports.py)."""
        started = time.perf_counter()
        try:
            if budget_chars <= 0:
                return (), ()
            selection = _Selection(self, query, budget_chars)
            return selection.run(), selection.module_names()
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            with self._lock:
                self._selects += 1
                self._last_select_ms = round(elapsed, 2)

    def repo_name(self, query: ContextQuery) -> str:
        """The name of the workspace folder holding the query's file (else of the first
        folder; "" without one): models trained with repository names get it."""
        folders = self._workspace.folders
        path = str(query.path) if query.path is not None else ""
        holding = [f for f in folders if path.startswith(f.rstrip("/") + "/")]
        chosen = max(holding, key=len) if holding else (folders[0] if folders else "")
        return Path(chosen).name if chosen else ""

    def stats(self) -> dict[str, Any]:
        """Counts and state, never file contents."""
        out = self._workspace.stats()
        with self._lock:
            out["documents"] = len(self._docs)
            out["edits"] = len(self._edits)
            out["selects"] = self._selects
            out["last_select_ms"] = self._last_select_ms
        return out

    def close(self) -> None:
        """Stop the indexing thread."""
        self._workspace.close()

    # --- helpers for the selection ---------------------------------------------------------

    def _is_secret(self, name: str) -> bool:
        return is_secret(name, self.limits.secret_globs)

    def _module_names(self, key: tuple[str, int, int], language: str,
                      read: Callable[[], str | None]) -> frozenset[str] | None:
        """exports.module_names of the file key[0], kept while `key` (its path and length
        and hash, or size and mtime) is the same: `read` is called only on a miss."""
        with self._lock:
            if key in self._names:
                self._names.move_to_end(key)
                return self._names[key]
        path = key[0]
        grammar = grammar_for(language, path)
        text = read() if grammar is not None else None
        found = exports.module_names(text, grammar, path) if text is not None else None
        with self._lock:
            self._names[key] = found
            while len(self._names) > _NAMES_CACHE:
                self._names.popitem(last=False)
        return found

    def _snapshot(self) -> tuple[list[Document], list[tuple[str, int]]]:
        with self._lock:
            docs = self._docs.most_recent_first()
            edits = [(e.key, e.line) for e in self._edits.most_recent_first()]
        return docs, edits


class _Selection:
    """One run of `select`: a snapshot of the sources and the choice."""

    def __init__(self, sources: ContextSources, query: ContextQuery, budget: int) -> None:
        self.sources = sources
        self.workspace = sources._workspace
        self.parsed = sources._parsed
        self.query = query
        self.budget = budget
        docs, self.edits = sources._snapshot()
        self.current_path = normalise(query.path) if query.path is not None else None
        if self.current_path is None:
            self.current_path = self._path_from_name(query.name)
        self.docs = [
            d
            for d in docs
            if d.key != query.key
            and (d.path is None or d.path != self.current_path)
            and not sources._is_secret(d.name)
            and not (d.path is not None and sources._is_secret(d.path))
        ]
        self.doc_by_path = {}
        for doc in reversed(self.docs):  # the most recent document wins a shared path
            if doc.path is not None:
                self.doc_by_path[doc.path] = doc
        self.picked: list[Snippet] = []
        self.used = 0
        self.texts: set[str] = set()
        self.edit_lines: dict[str, list[tuple[int, int]]] = {}
        self.at_cursor: set[str] = set()
        self.modules: list[tuple[str, str]] = []  # (bound name, file) used near the cursor
        # The words of the lines just above the cursor: a cut outline keeps the
        # definitions that share them.
        cursor = max(0, min(query.cursor, len(query.text)))
        self.near_words = words(query.text[_lines_back(query.text, cursor, NEAR_LINES):cursor])

    def _path_from_name(self, name: str) -> str | None:
        """An HTTP client's relative file name, found in a workspace folder."""
        if not name or os.path.isabs(name):
            return normalise(name) if name else None
        for root in self.workspace.folders:
            candidate = os.path.normpath(os.path.join(root, name))
            if self.workspace.lookup(candidate) is not None:
                return candidate
        return None

    # The order of the parts is their priority; the result is reversed at the end.
    def run(self) -> tuple[Snippet, ...]:
        text, cursor = self.query.text, max(0, min(self.query.cursor, len(self.query.text)))
        window_start = _lines_back(text, cursor, QUERY_LINES)
        self.window = text[window_start:cursor]
        used_imports, other_imports = self._imports(text, cursor)
        outline_budget = int(self.budget * OUTLINE_SHARE)
        outline_used = self._outlines(used_imports, outline_budget)
        self._edits(int(self.budget * EDIT_SHARE))
        self._outlines(other_imports, outline_budget - outline_used)
        self._chunks()
        return tuple(reversed(self.picked))

    # --- bookkeeping ---

    def _add(self, path: str, text: str, kind: str, limit: int) -> bool:
        """Add a snippet if it fits in `limit` and the budget (cut to whole lines)."""
        if not text.strip() or text.strip() in self.texts:
            return False
        room = min(limit, self.budget - self.used) - len(path)
        if room <= 0:
            return False
        if len(text) > room:
            cut = text.rfind("\n", 0, room)
            if cut <= 0:
                return False
            text = text[: cut + 1]
        self.picked.append(Snippet(path, text, kind))
        self.texts.add(text.strip())
        self.used += len(path) + len(text)
        return True

    def _shown_path(self, abs_path: str | None, doc: Document | None = None) -> str:
        if abs_path is not None:
            root = self.workspace.folder_of(abs_path)
            if root is not None:
                return os.path.relpath(abs_path, root).replace(os.sep, "/")
        if doc is not None:
            return doc.name.replace("\\", "/")
        return os.path.basename(abs_path or "")

    def _parsed(self, doc: Document) -> syntax.FileSyntax:
        grammar = grammar_for(doc.language, doc.name)
        return self.parsed.get(doc.key, doc.text, grammar).syntax

    # --- 1 and 3: imported modules ---

    def _imports(self, text: str, cursor: int) -> tuple[list[str], list[str]]:
        """Files the current document imports: those whose bound name is used near the
        cursor (nearest use first), and the others (in import order)."""
        query = self.query
        grammar = grammar_for(query.language, query.name)
        if grammar is None or self.current_path is None:
            return [], []
        found = self.parsed.get(query.key, text, grammar).imports
        if not found:
            return [], []
        import_lines = {imp.line for imp in found}
        cursor_line = text.count("\n", 0, cursor)
        near_start = _lines_back(text, cursor, NEAR_LINES)
        distance: dict[str, int] = {}
        for offset, line in enumerate(reversed(text[near_start:cursor].split("\n"))):
            if cursor_line - offset in import_lines:
                continue
            for name in identifiers(line):
                distance.setdefault(name, offset)
        root = self.workspace.folder_of(self.current_path)
        files = Files(self._exists, self._in_dir, self.workspace.go_module)
        used: list[tuple[int, int, str]] = []
        others: list[str] = []
        seen: set[str] = set()
        modules: list[tuple[int, str, str]] = []
        for imp in found:
            targets = resolve(imp, grammar, self.current_path, root, files)
            near = [distance[n] for n in imp.names if n in distance]
            if (near and targets and not self.sources._is_secret(targets[0])
                    and self._binds_module(imp, grammar, root, files, targets[0])):
                modules.append((near[0], imp.names[0], targets[0]))
            for target in targets:
                if target in seen or self.sources._is_secret(target):
                    continue
                seen.add(target)
                if near:
                    used.append((min(near), imp.line, target))
                else:
                    others.append(target)
        used.sort()
        # The module the cursor's own line names (`hdrs.` being typed) may take the whole
        # outlines' share: the name the user wants is one of its definitions.
        self.at_cursor = {t for d, _, t in used if d == 0}
        self.modules = [(name, target) for _, name, target in sorted(modules)]
        return [t for _, _, t in used], others

    def _binds_module(self, imp: syntax.Import, grammar: str, root: str | None, files: Files,
                      target: str) -> bool:
        """Whether the import's one bound name is the module `target` itself (`hdrs` in
        `from . import hdrs`, not `helper` in `from .helpers import helper`)."""
        if len(imp.names) != 1 or imp.binds == "names":
            return False
        if imp.binds == "module":
            return True
        first = dataclasses.replace(imp, modules=imp.modules[:1])  # "either": p.x is a file
        return resolve(first, grammar, self.current_path, root, files)[:1] == (target,)

    def module_names(self) -> tuple[ModuleNames, ...]:
        """(bound name, the names its module offers) for the modules bound near the
        cursor, nearest first; modules whose names cannot all be known are left out."""
        out: list[ModuleNames] = []
        for name, target in self.modules[:NAMED_MODULES]:
            doc = self.doc_by_path.get(target)
            entry = self.workspace.lookup(target) if doc is None else None
            if doc is not None:
                text = doc.text
                names = self.sources._module_names((target, len(text), hash(text)),
                                                   doc.language, lambda text=text: text)
            elif entry is not None:
                names = self.sources._module_names(
                    (target, entry.mtime_ns, entry.size), entry.language,
                    lambda entry=entry: self.workspace.read_text(entry))
            else:
                names = None
            if names:
                out.append((name, tuple(sorted(names))))
        return tuple(out)

    def _exists(self, path: str) -> bool:
        return path in self.doc_by_path or self.workspace.lookup(path) is not None

    def _in_dir(self, directory: str) -> list[str]:
        found = set(self.workspace.files_in_dir(directory))
        found.update(p for p in self.doc_by_path if os.path.dirname(p) == directory)
        return sorted(found)

    def _outlines(self, targets: list[str], budget: int) -> int:
        used = 0
        per_file = int(self.budget * OUTLINE_FILE_SHARE)
        near = self.near_words
        for target in targets:
            if len([s for s in self.picked if s.kind == "outline"]) >= OUTLINES:
                break
            doc = self.doc_by_path.get(target)
            path = self._shown_path(target, doc)
            limit = budget - used if target in self.at_cursor else min(per_file, budget - used)
            room = max(limit - len(path), 0)
            if doc is not None:
                text: str | None = self._parsed(doc).outline(room, near)
            else:
                entry = self.workspace.lookup(target)
                text = (self.workspace.file_outline(entry, room, near) if entry is not None
                        else None)
            if not text:
                continue
            before = self.used
            if self._add(path, text, "outline", limit):
                used += self.used - before
        return used

    # --- 2: recent edits ---

    def _edits(self, budget: int) -> None:
        docs = {d.key: d for d in self.docs}
        used = shown = 0
        for key, line in self.edits:
            doc = docs.get(key)
            if doc is None or shown >= EDITS:
                continue
            lines = syntax.split_lines(doc.text)
            if not lines:
                continue
            line = min(max(line, 0), len(lines) - 1)
            first, last = max(0, line - EDIT_ABOVE), min(len(lines) - 1, line + EDIT_BELOW)
            spans = self.edit_lines.setdefault(doc.path or doc.key, [])
            if any(a <= last and first <= b for a, b in spans):
                continue  # overlaps an edit already shown
            path = self._shown_path(doc.path, doc)
            before = self.used
            if self._add(path, "".join(lines[first : last + 1]), "edit", budget - used):
                used += self.used - before
                shown += 1
                spans.append((first, last))

    # --- 4: similar chunks ---

    def _chunks(self) -> None:
        tokens = token_ids(self.window)
        if not tokens:
            return
        candidates = self._document_candidates(tokens)
        exclude = [d.path for d in self.docs if d.path is not None]
        if self.current_path is not None:
            exclude.append(self.current_path)
        for score, entry, first, last in self.workspace.top_chunks(tokens, CHUNK_FILES, exclude):
            if self.sources._is_secret(entry.path):
                continue
            path = self._shown_path(entry.path)
            candidates.append(
                _Candidate(score, 1 << 20, path, first, last, entry.path, None, entry)
            )
        if not candidates:
            return
        candidates.sort(key=lambda c: (-c.score, c.rank, c.path, c.first))
        floor = candidates[0].score * CHUNK_MIN_RATIO
        per_chunk = int(self.budget * CHUNK_SHARE)
        files_done: set[str] = set()
        for c in candidates:
            if c.score < floor or len(files_done) >= CHUNK_FILES:
                break
            if c.path in files_done:
                continue
            spans = self.edit_lines.get(c.abs_path or (c.doc.key if c.doc else ""), [])
            if any(a <= c.last and c.first <= b for a, b in spans):
                continue  # that part of the file is shown as an edit
            if c.doc is not None:
                grammar = grammar_for(c.doc.language, c.doc.name)
                lines = self.parsed.get(c.doc.key, c.doc.text, grammar).lines
                text: str | None = "".join(lines[c.first : c.last + 1])
            else:
                assert c.entry is not None
                text = self.workspace.read_span(c.entry, c.first, c.last)
            if text is None:
                continue  # changed on disk since indexed: re-indexed in the background
            if self._add(c.path, text, "chunk", per_chunk):
                files_done.add(c.path)

    def _document_candidates(self, tokens: set[int]) -> list[_Candidate]:
        """The best chunk of each open document (scored like the workspace's chunks)."""
        n, avg, max_df, df = self.workspace.token_stats(tokens)
        weights = {t: idf(n, d) for t, d in df.items() if d <= max_df}
        out = []
        for rank, doc in enumerate(self.docs[:OPEN_DOCUMENTS]):
            grammar = grammar_for(doc.language, doc.name)
            parsed = self.parsed.get(doc.key, doc.text, grammar)
            best: tuple[float, int] | None = None
            for index, chunk_tokens in enumerate(parsed.chunk_tokens()):
                shared = tokens & chunk_tokens
                if not shared:
                    continue
                score = sum(weights.get(t, 0.0) for t in sorted(shared)) * length_factor(
                    len(chunk_tokens), avg
                )
                if score > 0 and (best is None or score > best[0]):
                    best = (score, index)
            if best is not None:
                first, last = parsed.syntax.chunks[best[1]]
                path = self._shown_path(doc.path, doc)
                out.append(_Candidate(best[0], rank, path, first, last, doc.path, doc, None))
        return out


def _lines_back(text: str, cursor: int, count: int) -> int:
    """The offset where the `count`-th line above the cursor's line starts."""
    start = text.rfind("\n", 0, cursor) + 1
    for _ in range(count):
        if start <= 0:
            return 0
        start = text.rfind("\n", 0, start - 1) + 1
    return start
