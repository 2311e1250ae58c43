"""Answer fast, then widen: the first request at a place no KV cache holds is answered from
the quick window (the last few lines), and the full window is evaluated right after, in the
background, for the keystrokes that follow (Engine._quick_prompt)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from helios_lsp.engine import Engine
from helios_lsp.settings import Settings
from tests.engine.test_kv_states import N_CTX, place
from tests.gguf_factory import write_tiny_model


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("quick") / "wide.gguf", n_ctx_train=N_CTX,
                            n_layer=4, n_embd=128, n_head=4)

LINES = 100  # a new file: ~2,000 prompt tokens (this tokenizer's), none of them cached
FAR = place("argparse.py", LINES)
FAR_TYPED = place("argparse.py", LINES, "i")
FAR_TYPED_MORE = place("argparse.py", LINES, "if")


def engine_for(model, **settings) -> Engine:
    return Engine(Settings(model=str(model), n_threads=2, typeahead=False, min_token_prob=0.0,
                           n_ctx=N_CTX, time_budget=120, **settings))


async def idle(engine: Engine) -> None:
    """Until the background widening (or warming) is over."""
    assert engine.prefetching is not None
    await asyncio.wait({engine.prefetching}, timeout=300)
    assert engine.prefetching.done()


async def test_first_request_at_a_cold_place_is_answered_from_the_quick_window(wide_model):
    engine = engine_for(wide_model, quick_window_lines=16)
    await engine.load()
    try:
        first = await engine.complete(FAR)
        assert first.quick
        assert first.evaluated_tokens == first.prompt_tokens, "all cold, but few"
        await idle(engine)  # the full window was evaluated meanwhile
        assert engine.stats.prefetches == 1
        typed = await engine.complete(FAR_TYPED)
        assert not typed.quick, "the widened window answers from now on"
        assert typed.prompt_tokens > 3 * first.prompt_tokens, (first, typed)
        assert engine.stats.prefetch_tokens >= typed.prompt_tokens - 8
        assert typed.evaluated_tokens <= 8, typed
        assert engine.stats.quick_answers == 1
    finally:
        await engine.close()


async def test_a_keystroke_before_the_widening_is_done_stays_cheap(wide_model):
    engine = engine_for(wide_model, quick_window_lines=16)
    await engine.load()
    try:
        await engine.complete(FAR)
        # At once: it preempts the widening, and finds the quick window's state kept
        # (or the full one, if the widening won the race): either way a few tokens.
        typed = await engine.complete(FAR_TYPED)
        assert typed.evaluated_tokens <= 8, typed
        await idle(engine)
        more = await engine.complete(FAR_TYPED_MORE)
        assert not more.quick and more.evaluated_tokens <= 8, more
    finally:
        await engine.close()


async def test_zero_lines_keeps_one_window(wide_model):
    engine = engine_for(wide_model, quick_window_lines=0)
    await engine.load()
    try:
        first = await engine.complete(FAR)
        assert not first.quick and first.evaluated_tokens == first.prompt_tokens > 1000, first
        assert engine.stats.prefetches == 0
    finally:
        await engine.close()


async def test_a_warm_place_uses_the_full_window(wide_model):
    # Warmed ahead (the editor said where the cursor landed): no quick answer is needed.
    engine = engine_for(wide_model, quick_window_lines=16)
    await engine.load()
    try:
        assert engine.prefetch(FAR)
        await idle(engine)
        out = await engine.complete(FAR_TYPED)
        assert not out.quick and out.evaluated_tokens <= 8, out
    finally:
        await engine.close()


async def test_the_widening_goes_on_after_a_request_elsewhere(wide_model):
    engine = engine_for(wide_model, quick_window_lines=16)
    await engine.load()
    try:
        assert (await engine.complete(FAR)).quick
        widening = engine.prefetching
        async with asyncio.timeout(60):
            while not engine.backend.jobs.warming:  # the widening is running
                await asyncio.sleep(0.001)
        # Real work elsewhere preempts the widening ...
        await engine.complete(place("textwrap.py", 3))
        await asyncio.wait({widening}, timeout=300)
        assert widening.result().finished is False, "preempted"
        # ... which starts again as soon as the worker is free, and finishes.
        assert engine.prefetching is not widening
        await idle(engine)
        typed = await engine.complete(FAR_TYPED)
        assert not typed.quick and typed.evaluated_tokens <= 8, typed
    finally:
        await engine.close()
