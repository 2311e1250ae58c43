"""The words for engine states: one home (engine/types.py), used by the engine, HTTP and LSP."""

from __future__ import annotations

from pathlib import Path

import pytest

from helios_lsp.engine import (
    CompletionInput,
    Engine,
    EngineState,
    ModelError,
    ModelNotLoadedError,
    describe_state,
)
from helios_lsp.settings import Settings


@pytest.mark.parametrize(("state", "words"), [
    (EngineState.NOT_LOADED, "the model is not loaded yet"),
    (EngineState.LOADING, "the model is loading"),
    (EngineState.READY, "the model is ready"),
    (EngineState.FAILED, "the model failed to load"),
    (EngineState.CLOSED, "the server is shutting down"),
])
def test_every_state_has_words(state: EngineState, words: str):
    assert describe_state(state) == words
    # Only a failure has a reason worth adding.
    expected = f"{words}: no such file" if state is EngineState.FAILED else words
    assert describe_state(state, "no such file") == expected


async def test_a_completion_before_and_after_a_failed_load_says_why(tmp_path: Path):
    engine = Engine(Settings(model=str(tmp_path / "missing.gguf"), n_threads=1))
    with pytest.raises(ModelNotLoadedError) as before:
        await engine.complete(CompletionInput(prefix="x = "))
    assert str(before.value) == "the model is not loaded yet"
    with pytest.raises(ModelError):
        await engine.load()
    with pytest.raises(ModelNotLoadedError) as after:
        await engine.complete(CompletionInput(prefix="x = "))
    # The public reason: no path (it goes to HTTP clients too).
    assert str(after.value) == describe_state(EngineState.FAILED, engine.load_error_public)
    assert str(after.value).startswith("the model failed to load: the configured model")
    assert str(tmp_path) not in str(after.value)
    await engine.close()
