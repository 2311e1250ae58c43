"""The engine: one model, one worker thread that owns it, jobs that callers await.

Every caller (HTTP, LSP, CLI) goes through `Engine.complete`, which never blocks the
event loop. Jobs run one at a time in submission order:
- a cancelled job that is still queued never runs; a running one stops at its next
  prompt chunk or token;
- a newer job for the same (client, document) supersedes the older one;
- loading and reloading are jobs too, so they never overlap a generation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from helios_lsp.engine.errors import (
    CompletionFailedError,
    EngineError,
    EngineOverloadedError,
    EngineUnreachableError,
    InvalidModelFileError,
    JobCancelledError,
    ModelError,
    ModelNotFoundError,
    ModelNotLoadedError,
)
from helios_lsp.engine.jobs import Job, JobRunner
from helios_lsp.engine.languages import Language, detect
from helios_lsp.engine.model import LoadedModel
from helios_lsp.engine.model_probe import ModelRefusedError, check_model_file, default_cache_dir
from helios_lsp.engine.model_source import ResolvedModel, resolve_model
from helios_lsp.engine.postprocess import Cleaner, analyse
from helios_lsp.engine.prompt import Prompt, PromptBuilder
from helios_lsp.engine.remote import Generated, make_remote
from helios_lsp.engine.text import normalize_input
from helios_lsp.engine.typeahead import TypeAhead
from helios_lsp.engine.types import (
    CompletionInput,
    CompletionOutput,
    EngineState,
    StopReason,
    describe_state,
)
from helios_lsp.settings import Settings

log = logging.getLogger(__name__)

# A place whose prompt needs more tokens evaluated than this is "cold": its first request is
# answered from the quick window (settings.quick_window_lines). ~1 s of prompt evaluation
# for the embedded model on 2 cores; a bigger model is slower per token, so gains more.
QUICK_WHEN_COLD_ABOVE = 384


@dataclass
class EngineStats:
    requests: int = 0
    completed: int = 0
    cancelled: int = 0  # stopped while running (cancelled by their caller or superseded)
    dropped: int = 0  # cancelled or superseded before any of their tokens was evaluated
    superseded: int = 0  # replaced by a newer job for the same document (queued or running)
    failed: int = 0
    typeahead_hits: int = 0
    prompt_tokens_evaluated: int = 0
    prompt_tokens_reused: int = 0
    generated_tokens: int = 0
    loads: int = 0
    # Cache warming before a request (prefetch): started, and prompt tokens it evaluated.
    prefetches: int = 0
    prefetch_tokens: int = 0
    # First requests at a cold place answered from the quick window.
    quick_answers: int = 0


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


def geometric_mean(probs: list[float]) -> float:
    if not probs:
        return 0.0
    return math.exp(sum(math.log(max(p, 1e-12)) for p in probs) / len(probs))


def confidence_of(text: str, probs: list[float]) -> float:
    """The suggestion's confidence: the geometric mean of its tokens' probabilities."""
    return round(min(1.0, max(0.0, geometric_mean(probs))), 4) if text else 0.0

class Engine:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.state = EngineState.NOT_LOADED
        self.resolved: ResolvedModel | None = None
        self.load_error: str | None = None  # full reason, for logs and the local user
        self.load_error_public: str | None = None  # without paths, for HTTP clients
        self.stats = EngineStats()
        self.last_job: dict[str, Any] = {}
        self._model: LoadedModel | None = None
        self._builder: PromptBuilder | None = None
        self._quick_builder: PromptBuilder | None = None
        self._jobs = JobRunner()
        self._loading: asyncio.Task[None] | None = None
        self._typeahead = TypeAhead()
        self._listeners: list[Callable[[EngineState], None]] = []
        self._completions: set[Job] = set()  # completion jobs awaited by a caller
        # An engine server instead of llama.cpp here: no worker, as many requests at once
        # as the server takes (the in-flight bound still applies).
        self._remote = make_remote(settings)
        self._remote_jobs: set[asyncio.Task[Generated]] = set()
        self._remote_latest: dict[tuple[str, str], asyncio.Task[Generated]] = {}
        self._superseded: set[asyncio.Task[Generated]] = set()
        self._recovery: asyncio.Task[None] | None = None
        self.prefetching: asyncio.Future[Any] | None = None  # the latest cache warming
        # A place answered from the quick window whose full window is not warm yet: warmed
        # whenever the worker is idle (a keystroke preempts it; the next idle moment goes on).
        self._widen: CompletionInput | None = None

    # --- state ----------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.state is EngineState.READY

    @property
    def in_flight(self) -> int:
        """Completion jobs queued or running, whoever asked (a superseded one stops
        counting the moment it is dropped)."""
        return (sum(1 for job in self._completions if not job.future.done())
                + sum(1 for task in self._remote_jobs if not task.done()))

    @property
    def model_name(self) -> str | None:
        if self._remote is not None:
            return self._remote.info.model if self._remote.info else None
        return self.resolved.name if self.resolved is not None else None

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

    def snapshot(self) -> dict[str, Any]:
        """Counters and facts for /status and helios.status."""
        model = self._model
        return {
            "state": self.state.value,
            "model_name": self.model_name,
            "model_source": self.resolved.source if self.resolved else None,
            "fim": model.fim.family if model is not None and model.fim else None,
            "n_ctx": model.n_ctx if model is not None else None,
            **self._remote_snapshot(),
            "n_threads": self.settings.n_threads,
            "queued": self._jobs.queued,
            "in_flight": self.in_flight,
            "max_in_flight": self.settings.max_in_flight,
            "busy": self._jobs.busy,
            "load_error": self.load_error_public,
            "stats": asdict(self.stats),
            "last_job": dict(self.last_job),
        }

    def _remote_snapshot(self) -> dict[str, Any]:
        remote = self._remote
        if remote is None:
            return {"backend": "local"}
        info = remote.info
        return {"backend": remote.kind, "engine_url": remote.public_url,
                "model_source": remote.kind, "fim": info.fim if info else None,
                "n_ctx": info.n_ctx if info else None, "slots": info.slots if info else None,
                "prompt_mode": info.reason if info else None}

    def set_share(self, share: bool) -> None:
        """Before the first load: use the user's shared engine, or hold the model here (the
        language server's `share` setting arrives with `initialize`)."""
        if self.state is not EngineState.NOT_LOADED or share == self.settings.share:
            return
        self.settings = self.settings.replace(share=share)
        self._remote = make_remote(self.settings)

    # --- loading --------------------------------------------------------------

    async def load(self, *, restart: bool = False) -> None:
        """Resolve and load the model (or reload it). Concurrent calls join one load.
        `restart`: the user asked for it, so a shared engine reloads too (its model file
        may have been replaced).

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
            if self._remote is not None:
                info = await self._remote.connect(restart=restart)
                reason = f"{self._remote.kind} at {self._remote.public_url}; {info.reason}"
            else:
                resolved = await self._jobs.run(self._load_in_worker)
                reason = resolved.reason
        except BaseException as exc:
            if self.state is EngineState.CLOSED:
                raise ModelError("the engine was shut down during the load") from None
            self.load_error = str(exc) if isinstance(exc, EngineError) else "unexpected error"
            self.load_error_public = _public_reason(exc)
            log.error("model load failed: %s", self.load_error)
            self._set_state(EngineState.FAILED)
            if isinstance(exc, EngineUnreachableError):
                self._recover()
            if isinstance(exc, ModelError):
                raise
            raise ModelError(self.load_error) from exc
        if self.state is EngineState.CLOSED:  # close() ran meanwhile and freed the model
            raise ModelError("the engine was shut down during the load")
        if self._remote is None:
            self.resolved = resolved
        self.load_error = self.load_error_public = None
        self.stats.loads += 1
        self._set_state(EngineState.READY)
        log.info("model %s ready in %.1f s (%s)", self.model_name, time.monotonic() - started,
                 reason)

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
            assert self._remote is not None
            try:  # a quiet probe: the state stays FAILED until the server answers
                await self._remote.connect(restart=False)
            except EngineError:
                continue
            log.info("the engine server at %s is back", self._remote.public_url)
            with contextlib.suppress(ModelError):
                await self.load()
            return

    def _load_in_worker(self, job: Job) -> ResolvedModel:
        if self._model is not None:  # free the old weights before mapping new ones
            self._model.close()
            self._model = self._builder = self._quick_builder = None
        resolved = resolve_model(self.settings.model)
        cache_dir = self.settings.cache_dir
        check_model_file(resolved.path, n_threads=self.settings.n_threads,
                         cache_dir=Path(cache_dir) if cache_dir else default_cache_dir())
        model = LoadedModel(resolved, self.settings)
        self._model = model
        self._builder = PromptBuilder(
            model.encode, n_ctx=model.n_ctx, bos=model.bos, fim=model.fim,
            prefix_lines=self.settings.prefix_lines, suffix_lines=self.settings.suffix_lines,
            encode_continuation=model.encode_continuation,
        )
        quick_lines = min(self.settings.quick_window_lines, self.settings.prefix_lines)
        if 0 < quick_lines < self.settings.prefix_lines:
            self._quick_builder = PromptBuilder(
                model.encode, n_ctx=model.n_ctx, bos=model.bos, fim=model.fim,
                prefix_lines=quick_lines,
                suffix_lines=min(self.settings.suffix_lines, quick_lines // 2),
                encode_continuation=model.encode_continuation,
            )
        return resolved

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
        cache_key = (client_id or "", document or inp.filename)
        if self.settings.typeahead:
            hit = self._typeahead.lookup(cache_key, inp)
            if hit is not None:
                self.stats.typeahead_hits += 1
                self.stats.completed += 1
                self._resume_widening()  # the worker is free while type-ahead answers
                return CompletionOutput(hit[0], hit[1], stop_reason=StopReason.TYPEAHEAD,
                                        from_typeahead=True,
                                        seconds=time.perf_counter() - started)
        key = (client_id, document) if client_id is not None and document is not None else None
        # A newer keystroke frees its older job's place first (run() would find none left).
        if key is not None and self._supersede(key):
            self.stats.superseded += 1
        if self.in_flight >= self.settings.max_in_flight:
            raise EngineOverloadedError(self.settings.max_in_flight)
        if self._remote is not None:
            out = await self._complete_remote(inp, key)
        else:
            out = await self._jobs.run(
                lambda job: self._complete_in_worker(job, inp), key, on_done=self._account,
                track=self._completions,
            )
            if out.quick:  # widen: the full window, for the keystrokes that follow
                self._widen = inp
            self._resume_widening()
        self._typeahead.remember(cache_key, inp, out.text, out.confidence)
        return out

    def _supersede(self, key: tuple[str, str]) -> bool:
        """Cancel the job in flight for `key` as superseded; whether there was one."""
        if self._remote is None:
            return self._jobs.supersede(key)
        older = self._remote_latest.get(key)
        if older is None or older.done():
            return False
        self._superseded.add(older)
        older.cancel()  # closes its connection: the server stops generating
        return True

    # --- warming the cache before a request ----------------------------------------------

    def prefetch(self, inp: CompletionInput) -> bool:
        """Evaluate the prompt for `inp` in the background, so that a request at that place
        finds it in the KV cache (the editor opened a file or moved the cursor, the user has
        not typed yet). Only when the engine is idle; any real request preempts it. Returns
        whether it was started."""
        self._widen = None  # the editor says where the user is now: that place is warmed
        return self._warm(inp)

    def _resume_widening(self) -> None:
        if self._widen is not None:
            self._warm(self._widen)

    def _warm(self, inp: CompletionInput) -> bool:
        if not self.ready or self.in_flight or not self._jobs.idle:
            return False
        inp = normalize_input(inp)
        self.stats.prefetches += 1
        if self._remote is not None:
            task = asyncio.ensure_future(self._remote.warm(inp))
        else:
            task = asyncio.ensure_future(self._jobs.run(
                lambda job: self._prefetch_in_worker(job, inp), background=True))
        task.add_done_callback(lambda done: self._count_prefetch(done, inp))
        self.prefetching = task
        return True

    def _count_prefetch(self, task: asyncio.Future[Any], inp: CompletionInput) -> None:
        if task.cancelled() or task.exception() is not None:
            return
        result = task.result()  # (evaluated, finished) here; tokens from an engine server
        evaluated, finished = result if isinstance(result, tuple) else (result or 0, True)
        self.stats.prefetch_tokens += evaluated
        if finished and self._widen is inp:
            self._widen = None

    def _prefetch_in_worker(self, job: Job, inp: CompletionInput) -> tuple[int, bool]:
        """Tokens evaluated, and whether all of it was done (not preempted)."""
        model, builder = self._model, self._builder
        if model is None or builder is None:
            return 0, True
        lang, max_tokens, prompt = self._prompt(model, builder, inp)
        evaluated = 0
        quick = self._quick_prompt(model, inp, lang, max_tokens, prompt)
        if quick is not None:  # the window the first keystroke here will be answered from
            evaluated += model.warm(quick.tokens, job.is_cancelled)
        if not job.is_cancelled():
            evaluated += model.warm(prompt.tokens, job.is_cancelled)
        return evaluated, not job.is_cancelled()

    @staticmethod
    def _prompt(model: LoadedModel, builder: PromptBuilder,
                inp: CompletionInput) -> tuple[Language, int, Prompt]:
        """The language, the tokens to generate at most, and the prompt for `inp`: the same
        for a completion and for warming the cache ahead of it."""
        lang = detect(inp.language, inp.filename)
        max_tokens = min(inp.max_tokens, max(1, model.n_ctx // 2))
        return lang, max_tokens, builder.build(inp.prefix, inp.suffix, lang, inp.filename,
                                               max_tokens, first_line=inp.first_line)

    def _quick_prompt(self, model: LoadedModel, inp: CompletionInput, lang: Language,
                      max_tokens: int, full: Prompt) -> Prompt | None:
        """The quick window's prompt when `full` is cold (no KV cache holds most of it: a
        new file, a far jump) and the quick one costs at most half as much; else None.

        "Answer fast, then widen": the first request at a new place is answered from the
        last few lines, and the full window is evaluated next, in the background, for the
        keystrokes that follow (most of which type-ahead answers meanwhile). Both states
        are kept (kv_states), so neither evicts the other."""
        quick = self._quick_builder
        if quick is None:
            return None
        cold = model.cold_tokens(full.tokens)
        if cold <= QUICK_WHEN_COLD_ABOVE:
            return None
        short = quick.build(inp.prefix, inp.suffix, lang, inp.filename, max_tokens,
                            first_line=inp.first_line)
        return short if 2 * model.cold_tokens(short.tokens) <= cold else None

    def _account(self, future: asyncio.Future[Any]) -> None:
        """Count a finished completion job (on the loop, never from the worker)."""
        exc = future.exception() if not future.cancelled() else None
        if isinstance(exc, JobCancelledError):
            if exc.evaluated == 0 and exc.generated == 0:
                self.stats.dropped += 1  # no token of it was evaluated
            else:
                self.stats.cancelled += 1
            self.stats.prompt_tokens_evaluated += exc.evaluated
            self.stats.generated_tokens += exc.generated
            return
        if exc is not None or future.cancelled():
            self.stats.failed += 1
            return
        self._record(future.result())

    def _record(self, out: CompletionOutput) -> None:
        """Count a completion the model (or the engine server) produced."""
        self.stats.completed += 1
        self.stats.quick_answers += out.quick
        self.stats.prompt_tokens_evaluated += out.evaluated_tokens
        self.stats.prompt_tokens_reused += out.reused_tokens
        self.stats.generated_tokens += out.generated_tokens
        self.last_job = {
            "prompt_tokens": out.prompt_tokens, "evaluated_tokens": out.evaluated_tokens,
            "reused_tokens": out.reused_tokens, "generated_tokens": out.generated_tokens,
            "stop_reason": out.stop_reason, "seconds": round(out.seconds, 4),
            "quick": out.quick,
        }

    def _complete_in_worker(self, job: Job, inp: CompletionInput) -> CompletionOutput:
        model, builder = self._model, self._builder
        if model is None or builder is None:
            raise ModelNotLoadedError("the model is not loaded")
        started = time.perf_counter()
        lang, max_tokens, prompt = self._prompt(model, builder, inp)
        quick = self._quick_prompt(model, inp, lang, max_tokens, prompt)
        if quick is not None:
            prompt = quick
        cleaner = Cleaner(analyse(inp.prefix, inp.suffix, lang))
        decoded = model.decode(
            prompt.tokens, max_tokens=max_tokens, temperature=inp.temperature,
            time_budget=self.settings.time_budget, cancelled=job.is_cancelled,
            should_stop=lambda text: cleaner.cut(text) is not None,
            min_prob=self.settings.min_token_prob,
        )
        text, cut_reason = cleaner.finish(decoded.text())
        out = CompletionOutput(
            text=text,
            confidence=confidence_of(text, decoded.probs_for(len(text))),
            prompt_tokens=len(prompt.tokens),
            evaluated_tokens=decoded.evaluated,
            reused_tokens=decoded.reused,
            generated_tokens=len(decoded.tokens),
            stop_reason=cut_reason or decoded.stop_reason,
            seconds=time.perf_counter() - started,
            quick=quick is not None,
        )
        return out

    async def _complete_remote(self, inp: CompletionInput,
                               key: tuple[str, str] | None) -> CompletionOutput:
        remote = self._remote
        assert remote is not None
        started = time.perf_counter()
        lang = detect(inp.language, inp.filename)
        cleaner = Cleaner(analyse(inp.prefix, inp.suffix, lang))
        task = asyncio.ensure_future(remote.generate(
            inp, lang, cleaner, max_tokens=inp.max_tokens, min_prob=self.settings.min_token_prob,
            time_budget=self.settings.time_budget))
        self._remote_jobs.add(task)
        if key is not None:
            self._remote_latest[key] = task
        try:
            generated = await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task in self._superseded and not (current and current.cancelling()):
                self.stats.dropped += 1
                raise JobCancelledError("superseded") from None
            task.cancel()
            self.stats.cancelled += 1
            raise
        except EngineUnreachableError as exc:
            self.stats.failed += 1
            if self.state is EngineState.READY:  # it went away: say so, and watch for it
                self.load_error = self.load_error_public = str(exc)
                log.warning("%s", exc)
                self._set_state(EngineState.FAILED)
                self._recover()
            raise
        except EngineError:
            self.stats.failed += 1
            raise
        finally:
            self._remote_jobs.discard(task)
            self._superseded.discard(task)
            if key is not None and self._remote_latest.get(key) is task:
                del self._remote_latest[key]
        text, cut_reason = ((generated.text, None) if generated.final
                            else cleaner.finish(generated.text))
        out = CompletionOutput(
            text=text, confidence=confidence_of(text, generated.probs_for(len(text))),
            prompt_tokens=generated.evaluated + generated.reused,
            evaluated_tokens=generated.evaluated, reused_tokens=generated.reused,
            generated_tokens=len(generated.pieces),
            stop_reason=cut_reason or generated.stop_reason,
            seconds=time.perf_counter() - started)
        self._record(out)
        return out

    # --- shutdown -------------------------------------------------------------

    async def close(self) -> None:
        """Let the running job end, drop queued ones, free the model."""
        self._set_state(EngineState.CLOSED)
        if self._recovery is not None:
            self._recovery.cancel()
        for task in list(self._remote_jobs):
            task.cancel()
        if self._remote is not None:
            await self._remote.close()
        await self._jobs.close()
        if self._model is not None:
            self._model.close()
            self._model = self._builder = None
