"""Where the model runs, behind one interface.

- `local.LocalBackend`: llama.cpp in this process (one worker thread owns the model);
- `remote.LlamaServerEngine`, `remote.OpenAIEngine`: an engine server that holds the model;
- `shared.client.SharedEngine`: this user's shared Helios engine, which runs one of those.

`Engine` (core.py) holds only what Helios adds on top of any of them: type-ahead,
supersession, the in-flight bound, the context from other files, state and statistics. A
backend builds the prompt for its model (each gets the same `CompletionInput`, context
block included), runs it, and counts the work it did in the `EngineStats` it is given.
"""

from __future__ import annotations

import asyncio
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from helios_lsp.engine.errors import EngineError, JobCancelledError
from helios_lsp.engine.languages import Language, detect
from helios_lsp.engine.postprocess import Cleaner, analyse
from helios_lsp.engine.stats import EngineStats
from helios_lsp.engine.types import CompletionInput, CompletionOutput
from helios_lsp.settings import Settings

Key = tuple[str, str]


@dataclass(frozen=True)
class BackendInfo:
    """What a backend runs, once connected (shown in /status and helios.status)."""

    model: str  # the name to show
    n_ctx: int
    fim: str | None  # FIM family in use, or None for plain prompts
    slots: int  # requests it runs at once
    prompt_mode: str  # how prompts are laid out, and why
    source: str | None = None  # where the model came from (local models)


@dataclass(frozen=True)
class Warmed:
    """What warming the cache for a place did: prompt tokens evaluated, and whether all of
    it was done (a keystroke may preempt it; the engine then warms again later)."""

    evaluated: int = 0
    finished: bool = True


class Backend(ABC):
    kind = "backend"

    def __init__(self, settings: Settings, stats: EngineStats):
        self.settings = settings
        self.stats = stats
        self.info: BackendInfo | None = None
        self.last_job: dict[str, Any] = {}

    # --- lifecycle ----------------------------------------------------------------------

    @abstractmethod
    async def connect(self, *, restart: bool = False) -> str:
        """Load the model or reach the server; sets `info`, returns why (for the log).
        `restart`: the user asked for a reload. Raises ModelError (or its subclasses)."""

    async def close(self) -> None:  # noqa: B027 - most backends hold nothing to free
        """Stop what runs and free the model."""

    async def refresh(self) -> None:  # noqa: B027 - only the shared engine reports from afar
        """Update what `report` says from elsewhere (the shared engine's own counts)."""

    # --- work ---------------------------------------------------------------------------

    @abstractmethod
    async def complete(self, inp: CompletionInput, key: Key | None) -> CompletionOutput:
        """The cleaned suggestion for `inp`. A job superseded for the same `key` raises
        JobCancelledError("superseded"); a cancelled caller stops the job."""

    @abstractmethod
    def supersede(self, key: Key) -> bool:
        """Stop the job in flight for `key`, if any; whether there was one."""

    @property
    @abstractmethod
    def in_flight(self) -> int:
        """Completion jobs queued or running."""

    @property
    def idle(self) -> bool:
        """Nothing queued or running: background work (warming) may start."""
        return self.in_flight == 0

    async def warm(self, inp: CompletionInput) -> Warmed:
        """Evaluate the prompt for `inp` ahead of a request there (nothing where the
        backend offers no way: then `finished`, as there is nothing left to do)."""
        return Warmed()

    # --- reporting ----------------------------------------------------------------------

    @property
    def model_name(self) -> str | None:
        return self.info.model if self.info is not None else None

    def report(self) -> dict[str, Any]:
        """What this backend runs on, for /status: kind, URL, model, slots, prompt mode."""
        info = self.info
        return {"backend": self.kind, "model_name": self.model_name,
                "model_source": info.source if info else None,
                "fim": info.fim if info else None, "n_ctx": info.n_ctx if info else None,
                "slots": info.slots if info else None,
                "prompt_mode": info.prompt_mode if info else None}

    def record(self, out: CompletionOutput) -> None:
        """Count a completion the model produced."""
        stats = self.stats
        stats.completed += 1
        stats.quick_answers += out.quick
        stats.prompt_tokens_evaluated += out.evaluated_tokens
        stats.prompt_tokens_reused += out.reused_tokens
        stats.generated_tokens += out.generated_tokens
        self.last_job = {
            "prompt_tokens": out.prompt_tokens, "evaluated_tokens": out.evaluated_tokens,
            "reused_tokens": out.reused_tokens, "generated_tokens": out.generated_tokens,
            "stop_reason": out.stop_reason, "seconds": round(out.seconds, 4),
            "quick": out.quick, "context_files": list(out.context_files),
            "context_tokens": out.context_tokens,
        }


class TaskBackend(Backend):
    """A backend whose jobs run elsewhere (a server): each completion is an asyncio task
    here, as many at once as the in-flight bound lets through; superseding or cancelling
    one closes its connection, and the server stops generating."""

    def __init__(self, settings: Settings, stats: EngineStats):
        super().__init__(settings, stats)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._latest: dict[Key, asyncio.Task[Any]] = {}
        self._superseded: set[asyncio.Task[Any]] = set()

    @property
    def in_flight(self) -> int:
        return sum(1 for task in self._tasks if not task.done())

    def supersede(self, key: Key) -> bool:
        older = self._latest.get(key)
        if older is None or older.done():
            return False
        self._superseded.add(older)
        older.cancel()  # closes its connection: the server stops generating
        return True

    @abstractmethod
    async def run(self, inp: CompletionInput, lang: Language,
                  cleaner: Cleaner) -> CompletionOutput:
        """Run `inp` on the server: the cleaned suggestion, timed."""

    async def complete(self, inp: CompletionInput, key: Key | None) -> CompletionOutput:
        lang = detect(inp.language, inp.filename)
        cleaner = Cleaner(analyse(inp.prefix, inp.suffix, lang))
        task = asyncio.ensure_future(self.run(inp, lang, cleaner))
        self._tasks.add(task)
        if key is not None:
            self._latest[key] = task
        try:
            out = await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task in self._superseded and not (current and current.cancelling()):
                self.stats.dropped += 1
                raise JobCancelledError("superseded") from None
            task.cancel()
            self.stats.cancelled += 1
            raise
        except EngineError:
            self.stats.failed += 1
            raise
        finally:
            self._tasks.discard(task)
            self._superseded.discard(task)
            if key is not None and self._latest.get(key) is task:
                del self._latest[key]
        self.record(out)
        return out

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()


def geometric_mean(probs: list[float]) -> float:
    if not probs:
        return 0.0
    return math.exp(sum(math.log(max(p, 1e-12)) for p in probs) / len(probs))


def confidence_of(text: str, probs: list[float]) -> float:
    """The suggestion's confidence: the geometric mean of its tokens' probabilities."""
    return round(min(1.0, max(0.0, geometric_mean(probs))), 4) if text else 0.0
