"""The engine: what Helios adds on top of whichever backend runs the model.

Every caller (HTTP, LSP, CLI) goes through `Engine.complete`, which never blocks the event
loop. The backend (backend.py: llama.cpp here, an engine server, or the shared engine)
builds the prompt and runs it; the Engine holds:
- type-ahead: a keystroke that types what the last suggestion predicted is answered at once;
- supersession: a newer request for the same (client, document) stops the older one;
- the in-flight bound, shared by every caller;
- the context from other files (crossfile.py): a block chosen per document and place,
  evaluated in the background and only then put in use, so no keystroke pays for it;
- background warming (prefetch, widening the quick window, new context blocks), which runs
  only while the backend is idle and which any request preempts;
- state, loading and recovery, and the counters /status shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from helios_lsp.engine.backend import Backend, Key, Warmed
from helios_lsp.engine.backends import make_backend
from helios_lsp.engine.crossfile import CrossFile, DocKey
from helios_lsp.engine.errors import (
    CompletionFailedError,
    EngineError,
    EngineOverloadedError,
    EngineUnreachableError,
    InvalidModelFileError,
    ModelError,
    ModelNotFoundError,
    ModelNotLoadedError,
)
from helios_lsp.engine.model_probe import ModelRefusedError
from helios_lsp.engine.stats import EngineStats
from helios_lsp.engine.text import normalize_input
from helios_lsp.engine.typeahead import TypeAhead
from helios_lsp.engine.types import (
    CompletionInput,
    CompletionOutput,
    EngineState,
    StopReason,
    describe_state,
)
from helios_lsp.logsafe import safe
from helios_lsp.settings import Settings

log = logging.getLogger(__name__)


def _public_reason(exc: BaseException) -> str:
    """Why a load failed, in words that carry no path or environment value."""
    public = getattr(exc, "public", None)  # said by whoever loaded it (the shared engine)
    if isinstance(public, str):
        return public
    if isinstance(exc, EngineUnreachableError | CompletionFailedError):
        return str(exc)  # an engine server's URL without credentials, never its key
    if isinstance(exc, ModelNotFoundError):
        return "the configured model was not found (see the server log)"
    if isinstance(exc, ModelRefusedError):
        return str(exc)  # says what llama.cpp did, never where the file is
    if isinstance(exc, InvalidModelFileError):
        return "the model file is not a valid GGUF model (see the server log)"
    if isinstance(exc, ModelError):
        return "llama.cpp could not load the model (see the server log)"
    return "the model could not be loaded (see the server log)"


@dataclasses.dataclass
class _Warming:
    """Background work waiting for an idle moment: the prompt for `inp`, for the document
    `doc` (whose pending context block is put in use once it is warm)."""

    inp: CompletionInput
    doc: DocKey | None = None


class Engine:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.state = EngineState.NOT_LOADED
        self.load_error: str | None = None  # full reason, for logs and the local user
        self.load_error_public: str | None = None  # without paths, for HTTP clients
        self.stats = EngineStats()
        self.backend: Backend = make_backend(settings, self.stats)
        self.crossfile = CrossFile(settings)
        self._loading: asyncio.Task[None] | None = None
        self._typeahead = TypeAhead()
        self._listeners: list[Callable[[EngineState], None]] = []
        self._recovery: asyncio.Task[None] | None = None
        self.prefetching: asyncio.Future[Any] | None = None  # the latest background warming
        # What to warm at the next idle moment: the full window of a place answered from
        # the quick window, or a place with a new context block.
        self._next_warm: _Warming | None = None

    # --- state ----------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.state is EngineState.READY

    @property
    def in_flight(self) -> int:
        """Completion jobs queued or running, whoever asked (a superseded one stops
        counting the moment it is dropped)."""
        return self.backend.in_flight

    @property
    def model_name(self) -> str | None:
        return self.backend.model_name

    @property
    def last_job(self) -> dict[str, Any]:
        return self.backend.last_job

    @property
    def retrying(self) -> bool:
        """An engine server that went away is being probed: it needs no restart."""
        return self._recovery is not None and not self._recovery.done()

    @property
    def settings_to_fix(self) -> str:
        """What the user sets to choose the model, for advice after a failed load."""
        return ("HELIOS_MODEL" if self.settings.engine == "local"
                else "HELIOS_ENGINE_URL / HELIOS_ENGINE_MODEL")

    def add_listener(self, callback: Callable[[EngineState], None]) -> None:
        """`callback(state)` runs on the event loop after every state change."""
        self._listeners.append(callback)

    def _set_state(self, state: EngineState) -> None:
        self.state = state
        for callback in list(self._listeners):
            try:
                callback(state)
            except Exception:  # a listener must not break the engine
                log.exception("engine state listener failed")

    async def refresh(self) -> None:
        """Bring what `snapshot` reports up to date (the shared engine's own counts)."""
        with contextlib.suppress(Exception):  # a status must answer whatever happens
            await self.backend.refresh()

    def snapshot(self) -> dict[str, Any]:
        """Counters and facts for /status and helios.status: this engine, and the whole
        chain it runs on (see Backend.report)."""
        report = {
            "state": self.state.value,
            "n_threads": self.settings.n_threads,
            "queued": 0,
            "busy": False,
            "stats": asdict(self.stats),
            "last_job": dict(self.last_job),
            **self.backend.report(),
            "in_flight": self.in_flight,
            "max_in_flight": self.settings.max_in_flight,
            "load_error": self.load_error_public,
            "context": self.crossfile.describe(),
        }
        if report["context"]["enabled"]:
            last = report["last_job"]
            report["context"]["last_prompt"] = {"files": list(last.get("context_files") or ()),
                                                "tokens": last.get("context_tokens", 0)}
        return report

    def set_share(self, share: bool) -> None:
        """Before the first load: use the user's shared engine, or hold the model here (the
        language server's `share` setting arrives with `initialize`)."""
        if self.state is not EngineState.NOT_LOADED or share == self.settings.share:
            return
        self.settings = self.settings.replace(share=share)
        self.backend = make_backend(self.settings, self.stats)

    # --- loading --------------------------------------------------------------

    async def load(self, *, restart: bool = False) -> None:
        """Load the model or reach the engine server (or reload). Concurrent calls join one
        load. `restart`: the user asked for it, so a shared engine reloads too (its model
        file may have been replaced).

        The load runs as its own task: a caller that stops waiting does not stop it.
        Raises ModelError when it fails; the engine then stays in FAILED."""
        if self._loading is None or self._loading.done():
            if self.state is EngineState.CLOSED:
                raise ModelError("the engine is shut down")
            self._loading = asyncio.ensure_future(self._load(restart))
        await asyncio.shield(self._loading)

    async def _load(self, restart: bool = False) -> None:
        self._typeahead.clear()
        self._set_state(EngineState.LOADING)
        started = time.monotonic()
        try:
            reason = await self.backend.connect(restart=restart)
        except BaseException as exc:
            if self.state is EngineState.CLOSED:
                raise ModelError("the engine was shut down during the load") from None
            self.load_error = str(exc) if isinstance(exc, EngineError) else "unexpected error"
            self.load_error_public = _public_reason(exc)
            log.error("model load failed: %s", safe(self.load_error, 1000))
            self._set_state(EngineState.FAILED)
            if isinstance(exc, EngineUnreachableError):
                self._recover()
            if isinstance(exc, ModelError):
                raise
            raise ModelError(self.load_error) from exc
        if self.state is EngineState.CLOSED:  # close() ran meanwhile and freed the model
            raise ModelError("the engine was shut down during the load")
        self.load_error = self.load_error_public = None
        self.stats.loads += 1
        self._set_state(EngineState.READY)
        log.info("model %s ready in %.1f s (%s)", safe(self.model_name), time.monotonic() - started,
                 safe(reason, 1000))

    def _recover(self) -> None:
        """Probe an unreachable engine server with back-off; load again when it answers."""
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.ensure_future(self._probe_until_back())

    async def _probe_until_back(self) -> None:
        delay = 0.5
        while self.state is EngineState.FAILED:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 15.0)
            if self.state is not EngineState.FAILED:
                return
            try:  # a quiet probe: the state stays FAILED until the server answers
                await self.backend.connect(restart=False)
            except EngineError:
                continue
            log.info("the engine server is back")
            with contextlib.suppress(ModelError):
                await self.load()
            return

    # --- completion -----------------------------------------------------------

    async def complete(self, inp: CompletionInput, *, client_id: str | None = None,
                       document: str | None = None) -> CompletionOutput:
        """Complete at the cursor. `client_id` + `document` enable supersession.

        Raises ModelNotLoadedError, EngineOverloadedError (at `max_in_flight` jobs queued
        or running, from every caller together), JobCancelledError, CompletionFailedError."""
        inp = normalize_input(inp)  # every caller's line breaks become "\n", here only
        if not self.ready:
            raise ModelNotLoadedError(describe_state(self.state, self.load_error_public))
        self.stats.requests += 1
        started = time.perf_counter()
        doc: DocKey = (client_id or "", document or inp.filename)
        if self.settings.typeahead:
            hit = self._typeahead.lookup(doc, inp)
            if hit is not None:
                self.stats.typeahead_hits += 1
                self.stats.completed += 1
                self._resume_background()  # the worker is free while type-ahead answers
                return CompletionOutput(hit[0], hit[1], stop_reason=StopReason.TYPEAHEAD,
                                        from_typeahead=True,
                                        seconds=time.perf_counter() - started)
        key: Key | None = ((client_id, document) if client_id is not None
                           and document is not None else None)
        # A newer keystroke frees its older job's place first (run() would find none left).
        if key is not None and self.backend.supersede(key):
            self.stats.superseded += 1
        if self.in_flight >= self.settings.max_in_flight:
            raise EngineOverloadedError(self.settings.max_in_flight)
        if inp.context is None:  # the block in use for this document, never a new one
            inp = dataclasses.replace(inp, context=self.crossfile.in_use(doc))
            self._choose_context(doc, inp)
        try:
            out = await self.backend.complete(inp, key)
        except EngineUnreachableError as exc:
            if self.state is EngineState.READY:  # it went away: say so, and watch for it
                self.load_error = self.load_error_public = str(exc)
                log.warning("%s", safe(exc, 1000))
                self._set_state(EngineState.FAILED)
                self._recover()
            raise
        if out.quick and not getattr(self.backend, "widens_itself", False):
            # Widen: the full window (with the document's next block, if one is chosen),
            # for the keystrokes that follow.
            self._next_warm = _Warming(inp, doc)
        self._resume_background()
        self._typeahead.remember(doc, inp, out.text, out.confidence)
        return out

    # --- the context from other files -------------------------------------------------------

    def _choose_context(self, doc: DocKey, inp: CompletionInput, *, pause: bool = False) -> None:
        """Choose a block for where the user is, in the background, when the place is new
        (or after a pause); a new block is warmed before it is used."""
        task = self.crossfile.choose(doc, inp, pause=pause)
        if task is not None:
            task.add_done_callback(lambda done: self._chosen(done, doc, inp))

    def _chosen(self, task: asyncio.Future[Any], doc: DocKey, inp: CompletionInput) -> None:
        new = not task.cancelled() and task.exception() is None and task.result() is not None
        if new and (self._next_warm is None or self._next_warm.doc != doc):
            self._next_warm = _Warming(inp, doc)  # warm the new block where the user is
        self._resume_background()

    def pause(self, inp: CompletionInput, *, client_id: str | None = None,
              document: str | None = None) -> None:
        """The user paused at `inp`'s place (adapters call this when edits stop): the block
        for it may be chosen again."""
        if self.ready and self.crossfile.enabled:
            doc: DocKey = (client_id or "", document or inp.filename)
            self._choose_context(doc, normalize_input(inp), pause=True)

    # --- warming the cache before a request ----------------------------------------------

    def prefetch(self, inp: CompletionInput, *, client_id: str | None = None,
                 document: str | None = None) -> bool:
        """Evaluate the prompt for `inp` in the background, so that a request at that place
        finds it in the KV cache (the editor opened a file or moved the cursor, the user has
        not typed yet). Only when the engine is idle; any real request preempts it. Returns
        whether it was started (or will be, once the place's context block is chosen)."""
        doc: DocKey = (client_id or "", document or inp.filename)
        inp = normalize_input(inp)
        # The editor says where the user is now: that place is warmed, nothing older.
        self._next_warm = warming = _Warming(inp, doc)
        if inp.context is None:
            self._choose_context(doc, inp, pause=True)
        if self._warm(warming):
            return True
        return self.ready and self.backend.idle and self.crossfile.choosing(doc)

    async def warm_now(self, inp: CompletionInput) -> Warmed:
        """Warm `inp`'s place now and wait for it (the shared engine, for a forwarder that
        puts a new context block in use once it is warm). Not finished when busy."""
        if not self.ready or not self.backend.idle:
            return Warmed(0, False)
        self._warm(_Warming(inp))
        assert self.prefetching is not None
        try:
            return await asyncio.shield(self.prefetching)
        except (asyncio.CancelledError, EngineError):
            return Warmed(0, False)

    def _resume_background(self) -> None:
        if self._next_warm is not None:
            self._warm(self._next_warm)

    def _warm(self, warming: _Warming) -> bool:
        if not self.ready or not self.backend.idle:
            return False
        if self.crossfile.choosing(warming.doc):  # its block is a moment away: wait for it
            return False
        inp = normalize_input(warming.inp)
        if warming.doc is not None and (block := self.crossfile.next_block(warming.doc)):
            inp = dataclasses.replace(inp, context=block)
        elif inp.context is None:
            inp = dataclasses.replace(inp, context=self.crossfile.in_use(warming.doc))
        self.stats.prefetches += 1
        task = asyncio.ensure_future(self.backend.warm(inp))
        task.add_done_callback(lambda done: self._warmed(done, warming, inp))
        self.prefetching = task
        return True

    def _warmed(self, task: asyncio.Future[Warmed], warming: _Warming,
                inp: CompletionInput) -> None:
        if task.cancelled():
            return
        if task.exception() is not None:  # it would fail again: not retried
            log.debug("warming failed: %r", task.exception())
            if self._next_warm is warming:
                self._next_warm = None
            return
        result = task.result()
        self.stats.prefetch_tokens += result.evaluated
        if not result.finished:
            return  # preempted: the next idle moment goes on
        if warming.doc is not None and self.crossfile.put_in_use(warming.doc, inp.context):
            self.stats.context_blocks += 1
        if self._next_warm is warming:
            self._next_warm = None

    # --- shutdown -------------------------------------------------------------

    async def close(self) -> None:
        """Let the running job end, drop queued ones, free the model."""
        self._set_state(EngineState.CLOSED)
        if self._recovery is not None:
            self._recovery.cancel()
        self.crossfile.close()
        await self.backend.close()
