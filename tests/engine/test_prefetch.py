"""Warming the cache before a request (issue 12, "work before being asked"): the prompt of
a place the user is about to type at is evaluated while the engine is idle, and any real
request preempts that work."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from helios_lsp.engine import CompletionInput, Engine
from helios_lsp.settings import Settings
from tests.gguf_factory import write_tiny_model

ABOVE = "".join(f"def helper_{i}(value):\n    return value * {i} + {i * 7}\n\n" for i in range(50))


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("m") / "wide.gguf", n_ctx_train=16384)


@pytest.fixture
async def engine(model: Path):
    # One window (no quick answers first, test_quick_window.py): warming is measured alone.
    eng = Engine(Settings(model=str(model), n_threads=2, n_ctx=16384, typeahead=False,
                          quick_window_lines=0))
    await eng.load()
    yield eng
    await eng.close()


def at(prefix: str, name: str = "m.py") -> CompletionInput:
    return CompletionInput(prefix=prefix, language="python", filename=name, max_tokens=2,
                           temperature=0.0)


async def settled(engine: Engine) -> None:
    async with asyncio.timeout(60):
        while not engine.backend.jobs.idle or engine.stats.prefetch_tokens == 0:
            await asyncio.sleep(0.01)


async def test_a_warmed_place_answers_without_evaluating_its_prompt(engine: Engine):
    cold = await engine.complete(at(ABOVE + "x = "))
    assert cold.evaluated_tokens > 1000
    place = ABOVE.replace("value", "item") + "y = "  # a new place: nothing in common
    assert engine.prefetch(at(place)) is True
    await settled(engine)
    assert engine.stats.prefetch_tokens > 1000
    warm = await engine.complete(at(place))
    assert warm.evaluated_tokens <= 3, warm


async def test_a_request_preempts_the_warming(engine: Engine):
    assert engine.prefetch(at(ABOVE * 6 + "z = ")) is True
    await asyncio.sleep(0.05)  # warming has started
    out = await engine.complete(at("a = ", "other.py"))  # real work: it goes first
    assert out.prompt_tokens > 0
    async with asyncio.timeout(30):
        while not engine.backend.jobs.idle:
            await asyncio.sleep(0.01)
    # The warming stopped at a chunk boundary: far less than the whole prompt.
    assert engine.stats.prefetch_tokens < len(ABOVE * 6) // 2


async def test_no_warming_while_busy(engine: Engine):
    running = asyncio.ensure_future(engine.complete(at(ABOVE + "q = ")))
    async with asyncio.timeout(30):
        while not engine.in_flight:  # the completion is queued or running
            await asyncio.sleep(0.001)
    assert engine.prefetch(at("w = ")) is False
    await running
