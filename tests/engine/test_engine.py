"""The engine on a real llama.cpp model (tiny, random weights): loading, FIM, prompt layout,
KV reuse, cancellation, supersession, errors."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from helios_lsp.engine import (
    CompletionInput,
    Engine,
    EngineState,
    InvalidModelFileError,
    JobCancelledError,
    ModelNotFoundError,
    ModelNotLoadedError,
)
from helios_lsp.engine.errors import ModelError
from helios_lsp.engine.jobs import JobRunner
from helios_lsp.engine.languages import detect
from helios_lsp.engine.model import LoadedModel
from helios_lsp.engine.model_source import resolve_model
from helios_lsp.engine.prompt import PromptBuilder
from helios_lsp.engine.text import joins_word
from helios_lsp.engine.types import StopReason
from helios_lsp.settings import Settings
from tests.gguf_factory import fim_token_ids, write_corrupt, write_tiny_model

PY = detect("python")
CODE_ABOVE = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(12))


def settings_for(model: Path, **kw) -> Settings:
    return Settings(model=str(model), n_threads=2, **kw)


@pytest.fixture
async def engine(tiny_model: Path):
    eng = Engine(settings_for(tiny_model, typeahead=False))
    await eng.load()
    yield eng
    await eng.close()


@pytest.fixture
def local(tiny_model: Path):
    """The tiny model and a prompt builder set up as the engine sets them up (through the
    public parts, not the engine's private attributes)."""
    settings = settings_for(tiny_model)
    model = LoadedModel(resolve_model(str(tiny_model)), settings)
    builder = PromptBuilder(
        model.encode, n_ctx=model.n_ctx, bos=model.bos, fim=model.fim,
        prefix_lines=settings.prefix_lines, suffix_lines=settings.suffix_lines,
        encode_continuation=model.encode_continuation,
    )
    yield model, builder
    model.close()


def inp(prefix: str, suffix: str = "", **kw) -> CompletionInput:
    kw.setdefault("max_tokens", 8)
    kw.setdefault("temperature", 0.0)
    return CompletionInput(prefix=prefix, suffix=suffix, language="python", filename="m.py", **kw)


# --- FIM detection -------------------------------------------------------------------------

@pytest.mark.parametrize("family", ["codellama", "starcoder", "qwen", "deepseek"])
@pytest.mark.parametrize("metadata", [True, False])
def test_fim_detected(tmp_path: Path, family: str, metadata: bool):
    path = write_tiny_model(tmp_path / "m.gguf", fim=family, fim_metadata=metadata)
    model = LoadedModel(resolve_model(str(path)), settings_for(path))
    ids = fim_token_ids(family)
    assert model.fim is not None
    assert (model.fim.prefix, model.fim.suffix, model.fim.middle) == (
        ids["pre"], ids["suf"], ids["mid"])
    assert model.fim.family == family
    model.close()


def test_no_fim(tiny_model_nofim: Path):
    model = LoadedModel(resolve_model(str(tiny_model_nofim)), settings_for(tiny_model_nofim))
    assert model.fim is None
    model.close()


def test_starcoder_file_separator_stops_generation(tmp_path: Path):
    # llama.cpp does not treat <file_sep> as end of generation: the engine must.
    path = write_tiny_model(tmp_path / "sc.gguf", fim="starcoder")
    model = LoadedModel(resolve_model(str(path)), settings_for(path))
    assert model.is_end(fim_token_ids("starcoder")["sep"])
    model.close()


# --- prompt layout and budgets ----------------------------------------------------------

def test_fim_prompt_layout(local: tuple[LoadedModel, PromptBuilder]):
    model, builder = local
    prompt = builder.build(CODE_ABOVE + "    y = ", "\nprint(1)\n", PY, "m.py", 8)
    fim = model.fim
    toks = prompt.tokens
    assert prompt.fim
    assert toks[0] == model.bos and toks[1] == fim.prefix
    pre, suf, mid = toks.index(fim.prefix), toks.index(fim.suffix), toks.index(fim.middle)
    assert pre < suf < mid
    text = lambda ts: b"".join(model.piece(t) for t in ts).decode()  # noqa: E731
    assert text(toks[pre + 1 : suf]).strip() == CODE_ABOVE.strip()
    assert "print(1)" in text(toks[suf + 1 : mid])
    # The cursor's line comes last, after the middle token, with no tokenizer-added space.
    assert text(toks[mid + 1 :]) == "    y = "


@pytest.mark.parametrize("max_tokens", [8, 200, 1500])
def test_prompt_fits_budget(local: tuple[LoadedModel, PromptBuilder], max_tokens: int):
    model, builder = local
    long_above = CODE_ABOVE * 40  # far more than the 2048-token context
    prompt = builder.build(long_above + "x", "rest\n" * 500, PY, "m.py", max_tokens)
    assert len(prompt.tokens) + max_tokens <= model.n_ctx
    # The nearest lines are the ones kept.
    assert prompt.prefix_lines < long_above.count("\n")


def test_prompt_window_moves_in_steps(local: tuple[LoadedModel, PromptBuilder]):
    """Pressing Enter in a long file must not shift the prompt's start every time."""
    lines = [f"v{i} = {i}" for i in range(400)]
    _, builder = local
    starts = set()
    for cursor in range(300, 316):
        prompt = builder.build("\n".join(lines[:cursor]) + "\n", "", PY, "m.py", 8)
        starts.add(tuple(prompt.tokens[:12]))
    assert len(starts) <= 2


def test_no_fim_prompt_has_header(tiny_model_nofim: Path):
    model = LoadedModel(resolve_model(str(tiny_model_nofim)), settings_for(tiny_model_nofim))
    builder = PromptBuilder(model.encode, n_ctx=model.n_ctx, bos=model.bos, fim=None)
    prompt = builder.build("x = 1\ny = ", "", PY, "calc.py", 8)
    text = b"".join(model.piece(t) for t in prompt.tokens[1:]).decode()
    assert text.lstrip().startswith("# calc.py (Python)\n")
    assert text.endswith("x = 1\ny = ")
    model.close()


# --- KV reuse -----------------------------------------------------------------------------

async def test_typing_reuses_the_kv_cache(engine: Engine):
    first = await engine.complete(inp(CODE_ABOVE + "    total = ", "\nprint(total)\n"))
    assert first.reused_tokens == 0
    assert first.evaluated_tokens == first.prompt_tokens - 1  # last token healed
    counts = []
    typed = "    total = "
    for ch in "sum(x":
        typed += ch
        out = await engine.complete(inp(CODE_ABOVE + typed, "\nprint(total)\n"))
        counts.append(out.evaluated_tokens)
        assert out.reused_tokens >= out.prompt_tokens - 6
    assert max(counts) <= 4, counts
    stats = engine.snapshot()["stats"]
    assert stats["prompt_tokens_reused"] > 5 * stats["prompt_tokens_evaluated"] / 2


async def test_identical_request_reevaluates_one_token(engine: Engine):
    request = inp(CODE_ABOVE + "    z = ", "")
    await engine.complete(request)
    again = await engine.complete(request)
    assert again.evaluated_tokens <= 2


# --- results --------------------------------------------------------------------------------

async def test_result_shape(engine: Engine):
    out = await engine.complete(inp("def f(x):\n    return ", "\n", max_tokens=6))
    assert 0 <= out.generated_tokens <= 7
    if out.text:
        assert 0.0 < out.confidence <= 1.0
    else:
        assert out.confidence == 0.0
    assert out.text == out.text.rstrip()


async def test_max_tokens_is_respected(engine: Engine):
    out = await engine.complete(inp("x = [", "", max_tokens=3))
    assert out.generated_tokens <= 4  # + one token re-creating the healed prompt end


# --- cancellation and supersession ---------------------------------------------------------

async def wait_until(predicate, timeout: float = 30.0) -> None:
    """Poll `predicate` on the loop: the worker settles jobs asynchronously."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def _blocker(engine: Engine) -> tuple[threading.Event, asyncio.Task]:
    """Occupy the engine's worker until the returned event is set."""
    release, started = threading.Event(), threading.Event()

    def hold(job) -> None:
        started.set()
        release.wait(10)

    task = asyncio.ensure_future(engine.backend.jobs.run(hold))
    return release, task, started


async def test_cancelled_queued_job_never_runs(engine: Engine):
    release, blocker, started = _blocker(engine)
    await asyncio.to_thread(started.wait, 5)
    queued = asyncio.ensure_future(engine.complete(inp("def g():\n    ")))
    await asyncio.sleep(0.05)
    queued.cancel()
    await asyncio.wait([queued])  # the cancellation has reached the engine's job
    release.set()
    await blocker
    with pytest.raises(asyncio.CancelledError):
        await queued
    await wait_until(lambda: engine.snapshot()["stats"]["dropped"] == 1)
    stats = engine.snapshot()["stats"]
    assert stats["dropped"] == 1
    assert stats["prompt_tokens_evaluated"] == 0 and stats["generated_tokens"] == 0


async def test_newer_job_supersedes_older(engine: Engine):
    release, blocker, started = _blocker(engine)
    await asyncio.to_thread(started.wait, 5)
    old = asyncio.ensure_future(engine.complete(inp("a = "), client_id="c", document="m.py"))
    await asyncio.sleep(0.02)
    new = asyncio.ensure_future(engine.complete(inp("a = 1"), client_id="c", document="m.py"))
    other = asyncio.ensure_future(engine.complete(inp("b = "), client_id="c", document="n.py"))
    await asyncio.sleep(0.02)
    release.set()
    await blocker
    with pytest.raises(JobCancelledError) as err:
        await old
    assert err.value.reason == "superseded"
    assert (await new).prompt_tokens > 0
    assert (await other).prompt_tokens > 0  # another document is not superseded
    stats = engine.snapshot()["stats"]
    assert (stats["superseded"], stats["dropped"], stats["completed"]) == (1, 1, 2)


async def test_running_generation_stops_at_next_token(tiny_model: Path):
    model = LoadedModel(resolve_model(str(tiny_model)), settings_for(tiny_model))
    prompt = [model.bos, *model.encode(CODE_ABOVE)]
    calls, cancelled = 0, False

    def should_stop(text: str) -> bool:
        nonlocal calls, cancelled
        calls += 1
        cancelled = calls >= 5  # the caller cancels while token 5 is being produced
        return False

    with pytest.raises(JobCancelledError) as err:
        model.decode(prompt, max_tokens=500, temperature=0.0, time_budget=60,
                     cancelled=lambda: cancelled, should_stop=should_stop)
    assert calls == 5 and err.value.generated == 5
    model.close()


async def test_prompt_evaluation_stops_between_chunks(tiny_model: Path):
    model = LoadedModel(resolve_model(str(tiny_model)), settings_for(tiny_model, eval_chunk=16))
    prompt = [model.bos, *model.encode(CODE_ABOVE * 3)]
    checks = 0

    def cancelled() -> bool:
        nonlocal checks
        checks += 1
        return checks > 3

    with pytest.raises(JobCancelledError) as err:
        model.decode(prompt, max_tokens=5, temperature=0.0, time_budget=60,
                     cancelled=cancelled, should_stop=lambda t: False)
    assert err.value.evaluated == 48 < len(prompt)
    assert err.value.generated == 0
    model.close()


async def test_cancelling_the_caller_reaches_the_running_job():
    """Cancelling the awaiting task sets the flag the running job checks at each token."""
    runner = JobRunner()  # the engine's job runner, on its own
    started, seen = threading.Event(), threading.Event()

    def job_fn(job) -> None:
        started.set()
        for _ in range(1000):
            if job.is_cancelled():
                seen.set()
                raise JobCancelledError("cancelled")
            threading.Event().wait(0.01)

    task = asyncio.ensure_future(runner.run(job_fn))
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(seen.wait, 5)
    await runner.close()


# --- errors and state -----------------------------------------------------------------------

async def test_complete_before_load_is_refused(tiny_model: Path):
    eng = Engine(settings_for(tiny_model))
    with pytest.raises(ModelNotLoadedError):
        await eng.complete(inp("x"))
    assert eng.state is EngineState.NOT_LOADED


async def test_missing_model_fails_clearly(tmp_path: Path):
    eng = Engine(Settings(model=str(tmp_path / "absent.gguf")))
    with pytest.raises(ModelNotFoundError):
        await eng.load()
    assert eng.state is EngineState.FAILED
    assert "absent.gguf" in eng.load_error
    assert str(tmp_path) not in eng.snapshot()["load_error"]
    with pytest.raises(ModelNotLoadedError):
        await eng.complete(inp("x"))
    await eng.close()


async def test_corrupt_model_fails_clearly(tmp_path: Path):
    bad = write_corrupt(tmp_path / "bad.gguf", "random_tail")
    eng = Engine(Settings(model=str(bad)))
    with pytest.raises(InvalidModelFileError):
        await eng.load()
    assert eng.state is EngineState.FAILED
    await eng.close()


async def test_concurrent_loads_join_and_reload_works(engine: Engine):
    states = []
    engine.add_listener(states.append)
    await asyncio.gather(engine.load(), engine.load(), engine.load())
    assert engine.snapshot()["stats"]["loads"] == 2  # the fixture's load + one joined reload
    assert states == [EngineState.LOADING, EngineState.READY]
    assert (await engine.complete(inp("y = "))).prompt_tokens > 0


async def test_reload_failure_is_reported_to_joiners(tmp_path: Path, tiny_model: Path):
    model = tmp_path / "m.gguf"
    model.write_bytes(tiny_model.read_bytes())
    eng = Engine(Settings(model=str(model)))
    await eng.load()
    model.unlink()
    results = await asyncio.gather(eng.load(), eng.load(), return_exceptions=True)
    assert all(isinstance(r, ModelError) for r in results)
    assert eng.state is EngineState.FAILED
    await eng.close()


async def test_close_during_load_leaves_engine_closed(tiny_model: Path):
    eng = Engine(settings_for(tiny_model))
    # Hold the load inside the worker until close() has begun: a tiny model loads in a few
    # milliseconds, faster than any sleep could count on.
    in_load, release = threading.Event(), threading.Event()
    load_in_worker = eng.backend._load_in_worker

    def held_load(job):
        in_load.set()
        release.wait(10)
        return load_in_worker(job)

    eng.backend._load_in_worker = held_load
    loading = asyncio.ensure_future(eng.load())
    await asyncio.to_thread(in_load.wait, 5)
    closing = asyncio.ensure_future(eng.close())
    await wait_until(lambda: eng.state is EngineState.CLOSED)
    release.set()
    await closing
    await asyncio.wait({loading})
    assert isinstance(loading.exception(), ModelError)
    assert eng.state is EngineState.CLOSED and not eng.ready
    assert eng.snapshot()["n_ctx"] is None  # the weights were freed
    with pytest.raises(ModelNotLoadedError, match="shutting down"):
        await eng.complete(inp("x"))


async def test_a_caller_that_stops_waiting_does_not_stop_the_load(tiny_model: Path):
    eng = Engine(settings_for(tiny_model))
    caller = asyncio.ensure_future(eng.load())
    await asyncio.sleep(0)
    caller.cancel()
    await wait_until(lambda: eng.state in (EngineState.READY, EngineState.FAILED))
    assert eng.state is EngineState.READY and eng.load_error is None
    await eng.close()


def test_healing_mask_is_every_token_agreeing_with_the_healed_bytes(tiny_model: Path):
    """The mask comes from binary searches over the sorted vocabulary; it must equal the
    plain definition: pieces that start with the pending bytes, or are a prefix of them."""
    model = LoadedModel(resolve_model(str(tiny_model)), settings_for(tiny_model))
    pieces = [model.piece(t) for t in range(model.n_vocab)]
    pendings = {b"(", b"\n", b"\n    ", b" fo", b"re", b"\xe2\x82", b"\xff", b"zz~"}
    pendings |= {p[:n] for p in pieces[::7] for n in (1, 2, 3) if p[:n]}
    try:
        for pending in sorted(pendings):
            expected = [t for t, p in enumerate(pieces) if p and (
                p.startswith(pending) or (pending.startswith(p) and len(p) < len(pending)))]
            got = [int(t) for t in model._healing_mask(pending).nonzero()[0]]
            assert got == expected, pending
    finally:
        model.close()


def test_a_suggestion_stops_before_a_token_the_model_is_unsure_of(tiny_model: Path):
    model = LoadedModel(resolve_model(str(tiny_model)), settings_for(tiny_model))
    prompt = [model.bos, *model.encode(CODE_ABOVE)]
    run = dict(max_tokens=8, temperature=0.0, time_budget=60, cancelled=lambda: False,
               should_stop=lambda text: False)
    try:
        free = model.decode(prompt, **run)
        assert len(free.tokens) >= 3 and max(free.probs) < 0.5  # a random model is unsure
        unsure = model.decode(prompt, min_prob=0.5, **run)
        assert unsure.stop_reason is StopReason.UNSURE
        # the same greedy path, cut right after the first token that shows text
        assert unsure.tokens == free.tokens[: len(unsure.tokens)]
        assert unsure.text() != ""
        assert b"".join(unsure.pieces[:-1]) == unsure.healed[: len(b"".join(unsure.pieces[:-1]))]
        # never inside a word: where it stops, the greedy path does not go on with the word
        assert not joins_word(unsure.text(), free.text()[len(unsure.text()):])
    finally:
        model.close()
