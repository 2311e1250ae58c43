"""llama.cpp in this process: the model, the worker thread that owns it, and its prompts.

Jobs run one at a time on the worker (jobs.py) in submission order, so the event loop never
blocks: a cancelled job that is still queued never runs, a running one stops at its next
prompt chunk or token, a newer job for the same (client, document) supersedes the older
one, and loading is a job too, so it never overlaps a generation.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from helios_lsp.engine.backend import Backend, BackendInfo, Key, Warmed, confidence_of
from helios_lsp.engine.errors import JobCancelledError, ModelError, ModelNotLoadedError
from helios_lsp.engine.jobs import Job, JobRunner
from helios_lsp.engine.languages import Language, detect
from helios_lsp.engine.model import LoadedModel
from helios_lsp.engine.model_probe import check_model_file, default_cache_dir
from helios_lsp.engine.model_source import ResolvedModel, resolve_model
from helios_lsp.engine.names import steer_for
from helios_lsp.engine.postprocess import Cleaner, analyse
from helios_lsp.engine.prompt import Prompt, PromptBuilder
from helios_lsp.engine.stats import EngineStats
from helios_lsp.engine.types import CompletionInput, CompletionOutput
from helios_lsp.settings import Settings

# A place whose prompt needs more tokens evaluated than this is "cold": its first request is
# answered from the quick window (settings.quick_window_lines). ~1 s of prompt evaluation
# for the embedded model on 2 cores; a bigger model is slower per token, so gains more.
QUICK_WHEN_COLD_ABOVE = 384


class LocalBackend(Backend):
    kind = "local"

    def __init__(self, settings: Settings, stats: EngineStats):
        super().__init__(settings, stats)
        self.resolved: ResolvedModel | None = None
        self._model: LoadedModel | None = None
        self._builder: PromptBuilder | None = None
        self._quick_builder: PromptBuilder | None = None
        self._jobs = JobRunner()
        self._completions: set[Job] = set()  # completion jobs awaited by a caller

    # --- lifecycle ----------------------------------------------------------------------

    async def connect(self, *, restart: bool = False) -> str:
        self.resolved = await self._jobs.run(lambda job: self._load_in_worker(job))
        model = self._model
        if model is None:  # closed while it loaded
            raise ModelError("the engine was shut down during the load")
        fim = model.fim
        mode = ("FIM" + (" with repository-level context" if fim.repo is not None else "")
                if fim else "the code before the cursor, headed by the file's name")
        self.info = BackendInfo(model=self.resolved.name, n_ctx=model.n_ctx,
                                fim=fim.family if fim else None, slots=1, prompt_mode=mode,
                                source=self.resolved.source)
        return self.resolved.reason

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
        settings = self.settings
        self._builder = PromptBuilder(
            model.encode, n_ctx=model.n_ctx, bos=model.bos, fim=model.fim,
            prefix_lines=settings.prefix_lines, suffix_lines=settings.suffix_lines,
            encode_continuation=model.encode_continuation,
            context_tokens=settings.context_tokens,
            context_prefix_lines=settings.context_prefix_lines,
        )
        quick_lines = min(settings.quick_window_lines, settings.prefix_lines)
        if 0 < quick_lines < settings.prefix_lines:
            self._quick_builder = PromptBuilder(
                model.encode, n_ctx=model.n_ctx, bos=model.bos, fim=model.fim,
                prefix_lines=quick_lines,
                suffix_lines=min(settings.suffix_lines, quick_lines // 2),
                encode_continuation=model.encode_continuation,
            )
        return resolved

    async def close(self) -> None:
        await self._jobs.close()
        if self._model is not None:
            self._model.close()
            self._model = self._builder = self._quick_builder = None
        self.info = None  # a load that ended during close() may have described its model

    # --- state --------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return sum(1 for job in self._completions if not job.future.done())

    @property
    def idle(self) -> bool:
        return self.in_flight == 0 and self._jobs.idle

    def report(self) -> dict[str, Any]:
        return {**super().report(), "queued": self._jobs.queued, "busy": self._jobs.busy}

    # --- completion -----------------------------------------------------------------------

    def supersede(self, key: Key) -> bool:
        return self._jobs.supersede(key)

    async def complete(self, inp: CompletionInput, key: Key | None) -> CompletionOutput:
        return await self._jobs.run(lambda job: self._complete_in_worker(job, inp), key,
                                    on_done=self._account, track=self._completions)

    def _complete_in_worker(self, job: Job, inp: CompletionInput) -> CompletionOutput:
        model, builder = self._model, self._builder
        if model is None or builder is None:
            raise ModelNotLoadedError("the model is not loaded")
        started, cpu = time.perf_counter(), time.process_time()
        try:
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
                steer=steer_for(inp.prefix, inp.context),
            )
        finally:
            self.stats.answer_cpu_seconds += time.process_time() - cpu
        text, cut_reason = cleaner.finish(decoded.text())
        return CompletionOutput(
            text=text,
            confidence=confidence_of(text, decoded.probs_for(len(text))),
            prompt_tokens=len(prompt.tokens),
            evaluated_tokens=decoded.evaluated,
            reused_tokens=decoded.reused,
            generated_tokens=len(decoded.tokens),
            stop_reason=cut_reason or decoded.stop_reason,
            seconds=time.perf_counter() - started,
            quick=quick is not None,
            context_files=prompt.context_files,
            context_tokens=prompt.context_tokens,
        )

    def _account(self, future: asyncio.Future[Any]) -> None:
        """Count a finished completion job (on the loop, never from the worker), whether
        or not its caller still waits."""
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
        self.record(future.result())

    # --- prompts ----------------------------------------------------------------------------

    @staticmethod
    def _prompt(model: LoadedModel, builder: PromptBuilder,
                inp: CompletionInput) -> tuple[Language, int, Prompt]:
        """The language, the tokens to generate at most, and the prompt for `inp`: the same
        for a completion and for warming the cache ahead of it."""
        lang = detect(inp.language, inp.filename)
        max_tokens = min(inp.max_tokens, max(1, model.n_ctx // 2))
        return lang, max_tokens, builder.build(inp.prefix, inp.suffix, lang, inp.filename,
                                               max_tokens, first_line=inp.first_line,
                                               cut=inp.cut, context=inp.context)

    def _quick_prompt(self, model: LoadedModel, inp: CompletionInput, lang: Language,
                      max_tokens: int, full: Prompt) -> Prompt | None:
        """The quick window's prompt when `full` is cold (no KV cache holds most of it: a
        new file, a far jump) and the quick one costs at most half as much; else None.

        "Answer fast, then widen": the first request at a new place is answered from the
        last few lines (no context block), and the full window is evaluated next, in the
        background, for the keystrokes that follow (most of which type-ahead answers
        meanwhile). Both states are kept (kv_states), so neither evicts the other."""
        quick = self._quick_builder
        if quick is None:
            return None
        cold = model.cold_tokens(full.tokens)
        if cold <= QUICK_WHEN_COLD_ABOVE:
            return None
        short = quick.build(inp.prefix, inp.suffix, lang, inp.filename, max_tokens,
                            first_line=inp.first_line, cut=inp.cut)
        return short if 2 * model.cold_tokens(short.tokens) <= cold else None

    # --- warming the cache before a request ---------------------------------------------------

    async def warm(self, inp: CompletionInput) -> Warmed:
        return await self._jobs.run(lambda job: self._warm_in_worker(job, inp), background=True)

    def _warm_in_worker(self, job: Job, inp: CompletionInput) -> Warmed:
        model, builder = self._model, self._builder
        if model is None or builder is None:
            return Warmed()
        cpu = time.process_time()
        try:
            lang, max_tokens, prompt = self._prompt(model, builder, inp)
            evaluated = 0
            quick = self._quick_prompt(model, inp, lang, max_tokens, prompt)
            if quick is not None:  # the window the first keystroke here will be answered from
                evaluated += model.warm(quick.tokens, job.is_cancelled)
            if not job.is_cancelled():
                evaluated += model.warm(prompt.tokens, job.is_cancelled)
        finally:
            self.stats.background_cpu_seconds += time.process_time() - cpu
        return Warmed(evaluated, not job.is_cancelled())

    # --- for tests and benchmarks ---------------------------------------------------------

    @property
    def model(self) -> LoadedModel | None:
        return self._model

    @property
    def jobs(self) -> JobRunner:
        return self._jobs
