"""KV states of earlier prompts are kept in host memory and restored (engine/kv_states.py).

Before, the engine kept one KV cache: coming back to a file visited a moment ago (prompt A,
then an unrelated B, then A again) evaluated all of A again. The texts are standard-library
files nobody here wrote."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest

from helios_lsp.engine import CompletionInput, Engine
from helios_lsp.engine.kv_states import KvStates
from helios_lsp.settings import Settings
from tests.gguf_factory import write_tiny_model

N_CTX = 8192


def stdlib_head(name: str, lines: int) -> str:
    text = (Path(sysconfig.get_paths()["stdlib"]) / name).read_text()
    return "\n".join(text.split("\n")[:lines]) + "\n"


def place(name: str, lines: int, typed: str = "", max_tokens: int = 4) -> CompletionInput:
    """The cursor on a new line after the first `lines` lines of a file."""
    return CompletionInput(prefix=stdlib_head(name, lines) + typed, suffix="\n",
                           language="python", filename=name, temperature=0.0,
                           max_tokens=max_tokens)


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A wider model than the default tiny one: its states weigh 2 KiB a token, so a few
    # prompts fill a budget of a few MiB.
    return write_tiny_model(tmp_path_factory.mktemp("kv") / "wide.gguf", n_ctx_train=N_CTX,
                            n_layer=4, n_embd=128, n_head=4)


async def run(model: Path, inputs: list[CompletionInput], **settings) -> tuple[list, KvStates]:
    """The outputs, and the engine's saved states (its counters) once done."""
    # No time budget cut: outputs must not depend on the machine's load.
    # One window: the quick window (test_quick_window.py) would answer cold places first.
    settings = {"n_ctx": N_CTX, "time_budget": 120, "quick_window_lines": 0, **settings}
    engine = Engine(Settings(model=str(model), n_threads=2, typeahead=False,
                             min_token_prob=0.0, **settings))
    await engine.load()
    try:
        return [await engine.complete(inp) for inp in inputs], engine.backend.model.kv_states
    finally:
        await engine.close()


A = place("argparse.py", 25)
B = place("textwrap.py", 15)
A_TYPED = place("argparse.py", 25, "i")


async def test_coming_back_restores_the_saved_state(wide_model):
    (a, b, back), states = await run(wide_model, [A, B, A_TYPED])
    assert a.evaluated_tokens > 500 and b.evaluated_tokens > 256, (a, b)
    assert back.evaluated_tokens <= 8, back
    assert back.reused_tokens >= a.prompt_tokens - 8
    assert states.restores == 1


async def test_zero_disables_it(wide_model):
    (a, _, back), states = await run(wide_model, [A, B, A_TYPED], kv_cache_ram=0)
    assert back.evaluated_tokens >= a.evaluated_tokens - 8  # all of A again, as before
    assert len(states) == 0 and states.saves == 0


async def test_outputs_are_the_same_with_and_without_restoring(wide_model):
    # Same work on the cache of A either way: kept live (no B in between) or restored.
    typed = place("argparse.py", 25, "i", max_tokens=12)
    (_, _, restored), _ = await run(wide_model, [A, B, typed])
    (_, live), _ = await run(wide_model, [A, typed])
    assert restored.evaluated_tokens == live.evaluated_tokens
    assert restored.generated_tokens == live.generated_tokens > 0
    assert (restored.text, restored.confidence) == (live.text, live.confidence)


FILES = ["argparse.py", "textwrap.py", "shutil.py", "tempfile.py", "pathlib.py",
         "inspect.py", "typing.py"]


async def test_the_budget_holds_and_the_oldest_go_first(wide_model):
    budget_mib = 4
    engine = Engine(Settings(model=str(wide_model), n_threads=2, typeahead=False, n_ctx=N_CTX,
                             kv_cache_ram=budget_mib))
    await engine.load()
    try:
        states = engine.backend.model.kv_states
        for name in FILES:  # each 300-1,200 tokens, 2 KiB each: a few fit
            await engine.complete(place(name, 30))
            assert states.nbytes <= budget_mib * 2**20
        # Every file but the last was saved when left; only the newest stayed.
        assert states.saves == len(FILES) - 1 > len(states) >= 2, (states.saves, len(states))
        saved = len(states)
        # The newest saved (the one before last) comes back from memory, the oldest does not.
        newest = await engine.complete(place(FILES[-2], 30, "x"))
        oldest = await engine.complete(place(FILES[0], 30, "x"))
        assert newest.evaluated_tokens <= 8
        assert oldest.evaluated_tokens > 500
        assert states.nbytes <= budget_mib * 2**20 and len(states) <= saved
    finally:
        await engine.close()


@pytest.mark.slow
async def test_embedded_model_comes_back_to_a_file(embedded_model):
    # ~1,500 tokens of argparse.py, then another file, then back with one more character.
    a, b, back = place("argparse.py", 175), place("textwrap.py", 30), \
        place("argparse.py", 175, "i")
    (a_out, b_out, back_out), states = await run(embedded_model, [a, b, back],
                                                 n_ctx=4096)
    assert 1300 <= a_out.prompt_tokens <= 2000, a_out
    assert b_out.reused_tokens < 50  # unrelated: A's cache was about to be lost
    assert back_out.evaluated_tokens <= 8, back_out
    assert back_out.reused_tokens >= a_out.prompt_tokens - 8
    assert states.restores == 1
