"""The block of other files' snippets before the file's window, and when it may change.

What goes in is chosen by the sources (engine/context/: open documents, the workspace
index, recent edits). This module decides WHEN: a keystroke never changes the block, so
typing on a line keeps evaluating a handful of tokens.
- Each document has a block in use. A request uses it as it is.
- A new block is chosen (in a thread, off the event loop) when the cursor is at a new place
  (a document seen for the first time, or more than PLACE_LINES lines from where the block
  was chosen), and after a pause (the adapters call Engine.pause / Engine.prefetch) when
  the modules the file imports changed.
- A new block is only *pending* until the engine has evaluated it in the background (a
  keystroke preempts that); then it is put in use, and the next keystroke finds it warm.
The same holds for every backend: the block travels in CompletionInput.context, and the
shared engine uses the block it is given.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helios_lsp.engine.types import CompletionInput, ContextBlock, Snippet
from helios_lsp.settings import Settings

if TYPE_CHECKING:
    from helios_lsp.engine.context import ContextSources

log = logging.getLogger(__name__)

DocKey = tuple[str, str]  # (client id, document)

# The cursor this many lines or more from where the block was chosen is at another place.
PLACE_LINES = 32
# Blocks kept for documents the user may come back to.
MAX_DOCUMENTS = 32
# Characters the sources may choose per token of budget (code averages 3-4 characters a
# token; the backend cuts the block to its token budget exactly).
CHARS_PER_TOKEN = 4
# Files HTTP clients sent as `context`, kept as open documents (least recently sent go).
MAX_OFFERED = 64
_EMPTY = ContextBlock()


@dataclass
class _Document:
    in_use: ContextBlock = _EMPTY
    pending: ContextBlock | None = None
    anchor: int | None = None  # the cursor's line when the last block was chosen
    choosing: asyncio.Future[ContextBlock | None] | None = None
    chosen_at: float = field(default_factory=time.monotonic)


def cursor_line(inp: CompletionInput) -> int:
    return inp.first_line + inp.prefix.count("\n")


class CrossFile:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.allowed = True  # the client's setting (the LSP's `context`)
        self._sources: ContextSources | None = None
        self._docs: OrderedDict[DocKey, _Document] = OrderedDict()
        self._offered: OrderedDict[str, str] = OrderedDict()  # source key -> text

    @property
    def enabled(self) -> bool:
        """Whether prompts get context: a budget for it (HELIOS_CONTEXT_TOKENS) and the
        client did not turn it off."""
        return self.allowed and self.settings.context_tokens > 0

    # --- sources ----------------------------------------------------------------------

    @property
    def sources(self) -> ContextSources:
        """Where snippets come from; adapters tell it about documents and folders."""
        if self._sources is None:
            from helios_lsp.engine.context import ContextLimits, ContextSources

            settings = self.settings
            secrets = tuple(p.strip() for p in (settings.context_secrets or "").split(",")
                            if p.strip())
            self._sources = ContextSources(ContextLimits(
                max_files=settings.context_max_files, max_bytes=settings.context_max_bytes,
                secret_globs=secrets))
            self._sources.workspace_enabled = settings.context_workspace
        return self._sources

    def close(self) -> None:
        if self._sources is not None:
            self._sources.close()

    def offer(self, client: str, files: list[tuple[str, str]]) -> None:
        """Files an HTTP client has open or edited (its request's `context`), as open
        documents. Cheap when they did not change: requests repeat them."""
        if not self.enabled:
            return
        from helios_lsp.engine.context import is_secret
        from helios_lsp.engine.languages import detect

        secrets = self.sources.limits.secret_globs
        for name, text in files:
            if is_secret(name.rsplit("/", 1)[-1], secrets):
                continue
            key = source_key((client, name))
            known = self._offered.get(key)
            if known is None:
                self.sources.document_opened(key, http_path(client, name), name,
                                             detect("", name).id, text)
            elif known != text:
                self.sources.document_changed(key, text)
            self._offered[key] = text
            self._offered.move_to_end(key)
        while len(self._offered) > MAX_OFFERED:
            key, _ = self._offered.popitem(last=False)
            self.sources.document_closed(key)

    # --- blocks -----------------------------------------------------------------------

    def _doc(self, doc: DocKey) -> _Document:
        state = self._docs.get(doc)
        if state is None:
            state = self._docs[doc] = _Document()
            while len(self._docs) > MAX_DOCUMENTS:
                self._docs.popitem(last=False)
        self._docs.move_to_end(doc)
        return state

    def in_use(self, doc: DocKey | None) -> ContextBlock:
        """The block requests in `doc` use now (empty when none)."""
        state = self._docs.get(doc) if doc is not None and self.enabled else None
        return state.in_use if state is not None else _EMPTY

    def next_block(self, doc: DocKey) -> ContextBlock | None:
        """The block chosen for `doc` and not yet warm, if any."""
        state = self._docs.get(doc) if self.enabled else None
        return state.pending if state is not None else None

    def choosing(self, doc: DocKey | None) -> bool:
        state = self._docs.get(doc) if doc is not None else None
        return bool(state and state.choosing is not None and not state.choosing.done())

    def choose(self, doc: DocKey, inp: CompletionInput, *,
               pause: bool) -> asyncio.Future[ContextBlock | None] | None:
        """Start choosing a block for `inp`'s place when it is due (see the module's
        docstring); the task's result is the new pending block, or None if nothing
        changes. None when nothing was started."""
        if not self.enabled or self._sources is None:  # no adapter has told of any source
            return None
        state = self._doc(doc)
        if state.choosing is not None and not state.choosing.done():
            return None
        line = cursor_line(inp)
        moved = state.anchor is None or abs(line - state.anchor) >= PLACE_LINES
        if not moved and not pause:
            return None
        state.anchor = line
        task = asyncio.ensure_future(asyncio.to_thread(self._select, doc, inp))
        state.choosing = task = asyncio.ensure_future(self._adopt(task, state, moved))
        return task

    async def _adopt(self, selecting: asyncio.Future[ContextBlock], state: _Document,
                     moved: bool) -> ContextBlock | None:
        try:
            block = await selecting
        except Exception:  # a source that fails must not fail completions
            log.exception("choosing the context block failed")
            return None
        current = state.pending or state.in_use
        same_prompt = dataclasses.replace(block, names=current.names) == current
        # At the same place, a pause changes the block only when the imported modules (or
        # their outlines) did:
        # re-ranked chunks alone are not worth evaluating the whole prompt again.
        if same_prompt or (not moved and _outlines(block) == _outlines(current)
                           and current.snippets):
            # The names are not in the prompt: they change at once, with nothing to warm.
            if state.pending is not None:
                state.pending = dataclasses.replace(state.pending, names=block.names)
            else:
                state.in_use = dataclasses.replace(state.in_use, names=block.names)
            return None
        state.pending = block
        state.chosen_at = time.monotonic()
        return block

    def forget(self) -> None:
        """Drop every block (the workspace folders changed: what they held may be gone)."""
        self._docs.clear()

    def put_in_use(self, doc: DocKey, block: ContextBlock | None) -> bool:
        """`block` is warm now: requests in `doc` use it if it is the one pending."""
        state = self._docs.get(doc)
        pending = state.pending if state is not None else None
        # Its names may have changed meanwhile (_adopt): they are not in the prompt.
        if pending is None or block is None or (
                dataclasses.replace(pending, names=block.names) != block):
            return False
        state.in_use, state.pending = pending, None
        return True

    # --- choosing (in a worker thread) --------------------------------------------------

    def _select(self, doc: DocKey, inp: CompletionInput) -> ContextBlock:
        from helios_lsp.engine.context import ContextQuery

        sources = self.sources
        started = time.perf_counter()
        path = _path_of(doc[1]) if source_key(doc) == doc[1] else http_path(doc[0], doc[1])
        query = ContextQuery(key=source_key(doc), path=path, name=inp.filename,
                             language=inp.language, text=inp.prefix + inp.suffix,
                             cursor=len(inp.prefix))
        snippets, names = sources.choose(query,
                                         self.settings.context_tokens * CHARS_PER_TOKEN)
        log.debug("context for a document: %d snippets from %d files in %.1f ms",
                  len(snippets), len({s.path for s in snippets}),
                  (time.perf_counter() - started) * 1000)
        return ContextBlock(tuple(snippets), repo=sources.repo_name(query), names=names)

    # --- reporting ----------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """What is indexed and used (never file contents)."""
        if not self.enabled:
            return {"enabled": False}
        sources = self._sources
        return {"enabled": True, "tokens": self.settings.context_tokens,
                "workspace": sources.stats() if sources is not None else None,
                "blocks_in_use": sum(1 for d in self._docs.values() if d.in_use.snippets)}


def source_key(doc: DocKey) -> str:
    """The sources' key of a document: an editor's URI as it is, an HTTP client's file
    as "http:<client>:<filename>" (clients do not see each other's files)."""
    client, document = doc
    if ":" in document.split("/", 1)[0]:  # a URI (file:, untitled:, ...)
        return document
    return f"http:{client}:{document}"


# HTTP clients' files have no place on disk; under this made-up root, one folder per client,
# their relative names still resolve each other's imports (never read: no such directory).
HTTP_ROOT = Path("/nonexistent-helios-http")


def http_path(client: str, name: str) -> Path | None:
    """Where an HTTP client's file `name` sits for resolving imports (None: not relative)."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts or name.startswith("/"):
        return None
    return HTTP_ROOT.joinpath(client.replace("/", "_") or "_", *parts)


def _outlines(block: ContextBlock) -> tuple[Snippet, ...]:
    return tuple(s for s in block.snippets if s.kind == "outline")


def _path_of(document: str) -> Path | None:
    """The file a document key names, when it is a file: URI."""
    if not document.startswith("file:"):
        return None
    from urllib.parse import unquote, urlparse

    return Path(unquote(urlparse(document).path))
