"""Work-done progress while the model loads (at start and on `helios.restart`).

The engine calls `on_state` at every state change; a single task turns the changes into
`window/workDoneProgress/create` + `$/progress` begin/end, in order, for clients that
declared `window.workDoneProgress`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from helios_lsp.engine import Engine, EngineState

log = logging.getLogger(__name__)

CREATE_TIMEOUT = 5.0
T = TypeVar("T")


async def client_request(request: Awaitable[T], timeout: float) -> T:
    """Await a request to the client, giving up after `timeout` without cancelling it.

    pygls fails with InvalidStateError when the answer to a request it has cancelled comes
    in, so a request to the client is left to complete on its own."""
    task = asyncio.ensure_future(request)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        raise TimeoutError(f"no answer from the client in {timeout:.0f} s")
    return task.result()


class LoadProgress:
    def __init__(self, ls: LanguageServer, engine: Engine,
                 describe_end: Callable[[EngineState], str]):
        self._ls = ls
        self._engine = engine
        self._describe_end = describe_end
        self._states: asyncio.Queue[EngineState] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self.tokens: list[str] = []  # every token used, for status and tests

    def start(self) -> None:
        """Begin reporting (after `initialized`), from the engine's current state."""
        if self._task is None:
            self._task = asyncio.create_task(self._report())
            self._states.put_nowait(self._engine.state)

    def on_state(self, state: EngineState) -> None:
        if self._task is not None:
            self._states.put_nowait(state)

    async def _report(self) -> None:
        progress = self._ls.work_done_progress
        token: str | None = None
        while True:
            state = await self._states.get()
            if state is EngineState.LOADING and token is None:
                candidate = f"helios/load/{next(self._ids)}"
                try:
                    await client_request(progress.create_async(candidate), CREATE_TIMEOUT)
                except Exception as exc:  # the client refused or did not answer: no progress
                    log.info("work-done progress not created: %r", exc)
                    continue
                token = candidate
                self.tokens.append(token)
                progress.begin(token, types.WorkDoneProgressBegin(
                    title="Helios", message="loading the model…", cancellable=False))
            elif state is not EngineState.LOADING and token is not None:
                progress.end(token, types.WorkDoneProgressEnd(message=self._describe_end(state)))
                token = None

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
