"""HELIOS_MAX_IN_FLIGHT bounds completion jobs where every caller meets: in the engine.

Before, only the HTTP handler counted; language-server jobs entered an unbounded queue."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from helios_lsp.engine import (
    CompletionInput,
    Engine,
    EngineOverloadedError,
    JobCancelledError,
)
from helios_lsp.settings import Settings
from tests.gguf_factory import write_tiny_model

LONG = "def f(x):\n    "  # greedy generation runs to max_tokens on a random model


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("models") / "slow.gguf", fim="codellama",
                            n_layer=6, n_embd=384, n_head=8)


@pytest.fixture
async def engine(slow_model: Path):
    eng = Engine(Settings(model=str(slow_model), n_threads=1, max_in_flight=2, typeahead=False,
                          time_budget=60))
    await eng.load()
    yield eng
    await eng.close()


def long_job(name: str) -> CompletionInput:
    return CompletionInput(prefix=LONG, filename=name, max_tokens=1024, temperature=0.0)


async def wait_until(predicate, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_the_bound_refuses_at_once_whoever_asks(engine: Engine):
    first = asyncio.create_task(engine.complete(long_job("a.py"), client_id="lsp-1",
                                                document="file:///a.py"))
    second = asyncio.create_task(engine.complete(long_job("b.py")))  # no client: an HTTP script
    await wait_until(lambda: engine.in_flight == 2 and engine.snapshot()["busy"])
    with pytest.raises(EngineOverloadedError) as refused:
        await engine.complete(long_job("c.py"), client_id="lsp-2", document="file:///c.py")
    assert refused.value.limit == 2
    assert engine.in_flight == 2
    for task in (first, second):
        task.cancel()
    await asyncio.gather(first, second, return_exceptions=True)
    await wait_until(lambda: engine.in_flight == 0)
    assert engine.snapshot()["in_flight"] == 0


async def test_a_fast_typist_is_never_refused_by_its_own_older_keystrokes(engine: Engine):
    """Each keystroke supersedes the one before: the superseded job leaves the count at once."""
    running = asyncio.create_task(engine.complete(long_job("x.py")))
    await wait_until(lambda: engine.snapshot()["busy"])
    keystrokes = []
    for i in range(10):
        keystrokes.append(asyncio.create_task(engine.complete(
            CompletionInput(prefix=LONG + "x" * i, filename="a.py", max_tokens=1024,
                            temperature=0.0),
            client_id="nvim", document="file:///a.py")))
        await asyncio.sleep(0)
        assert engine.in_flight <= 2
    results = await asyncio.gather(*keystrokes[:-1], return_exceptions=True)
    assert all(isinstance(r, JobCancelledError) and r.reason == "superseded" for r in results)
    assert engine.stats.dropped >= 9  # dropped before any of their tokens was evaluated
    for task in (running, keystrokes[-1]):
        task.cancel()
    await asyncio.gather(running, keystrokes[-1], return_exceptions=True)
