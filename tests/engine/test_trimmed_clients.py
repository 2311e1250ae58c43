"""Clients that send only the end of the text before the cursor still get KV reuse.

The window of lines above the cursor is anchored to the file's lines (`first_line`), so a
cut that moves with every keystroke does not move the prompt. Before, a client sending the
last 6,000 characters had its whole prompt (~1,400 tokens) evaluated on every keystroke,
and one cutting at a line start (the VS Code extension) every time the cut passed a line.
The text is argparse.py from the standard library, the cursor on a new line near line 1500."""

from __future__ import annotations

import asyncio
import sysconfig
from pathlib import Path

import pytest

from helios_lsp.engine import CompletionInput, Engine
from helios_lsp.settings import Settings
from tests.gguf_factory import write_tiny_model

TYPED = "parser.add_arg"  # 14 keystrokes on a new line
N_CTX = 32768
CUT = 6000


def argparse_text(cursor_line: int) -> tuple[str, str]:
    text = (Path(sysconfig.get_paths()["stdlib"]) / "argparse.py").read_text()
    lines = text.split("\n")
    before = "\n".join(lines[:cursor_line]) + "\n"
    return before, "\n" + "\n".join(lines[cursor_line:])


def cursor_line_where_the_cut_passes_a_line() -> int:
    """From line 1500 on, the first cursor line where, while TYPED is typed, a client cutting
    at a line start drops a line at the top (the moment that used to re-evaluate it all)."""
    for line in range(1500, 2500):
        before, _ = argparse_text(line)
        firsts = {last_lines_within(before + TYPED[:k], CUT).count("\n")
                  for k in range(1, len(TYPED) + 1)}
        if len(firsts) > 1:
            return line
    raise AssertionError("no such line in argparse.py")


def last_chars(prefix: str, n: int) -> str:
    """What a script following the API doc sends: the last n characters."""
    return prefix[-n:]


def last_lines_within(prefix: str, n: int) -> str:
    """What the VS Code extension sends: at most n characters, cut at a line start."""
    tail = prefix[-n:]
    return tail[tail.index("\n") + 1:] if len(prefix) > n else tail


CLIENTS = {
    "last 6000 chars": lambda prefix: last_chars(prefix, CUT),
    "line start within 6000 chars": lambda prefix: last_lines_within(prefix, CUT),
}


@pytest.fixture(scope="module")
def wide_models(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, Path]:
    """Tiny models whose context holds all the text a client sends (their vocabulary is
    small, so text takes many tokens): the window is then bounded by lines, not by room."""
    folder = tmp_path_factory.mktemp("wide")
    return {fim: write_tiny_model(folder / f"wide-{fim}.gguf", fim="codellama" if fim else None,
                                  n_ctx_train=N_CTX) for fim in (True, False)}


async def type_line(model: Path, client, cursor_line: int) -> list[int]:
    """Evaluated prompt tokens per keystroke, the first one (a cold prompt) included."""
    engine = Engine(Settings(model=str(model), n_threads=2, typeahead=False, n_ctx=N_CTX))
    await engine.load()
    before, after = argparse_text(cursor_line)
    evaluated = []
    try:
        for k in range(1, len(TYPED) + 1):
            prefix = client(before + TYPED[:k])
            inp = CompletionInput(
                prefix=prefix, suffix=after[:2000], language="python", filename="argparse.py",
                max_tokens=1, temperature=0.0,
                first_line=cursor_line - prefix.count("\n"))
            out = await engine.complete(inp)
            assert out.prompt_tokens > 200  # a real window, not an empty one
            evaluated.append(out.evaluated_tokens)
    finally:
        await engine.close()
    return evaluated


@pytest.mark.parametrize("client", sorted(CLIENTS))
@pytest.mark.parametrize("fim", [True, False], ids=["fim", "no-fim"])
async def test_a_moving_cut_does_not_move_the_prompt(client, fim, wide_models):
    line = 1500 if client == "last 6000 chars" else cursor_line_where_the_cut_passes_a_line()
    evaluated = await type_line(wide_models[fim], CLIENTS[client], line)
    assert evaluated[0] > 200
    assert max(evaluated[1:]) <= 5, evaluated



# --- the same clients through the HTTP adapter, for both readings of `position.line` -----

READINGS = {
    # position.line is the cursor's line in the file (the API document's reading).
    "file": lambda before_lines, sent: before_lines,
    # position.line is counted in the text the client sends (a script that cuts and counts).
    "text": lambda before_lines, sent: sent.count("\n"),
}


async def settle(engine: Engine) -> None:
    """Until the engine's background work (widening, warming) is done."""
    async with asyncio.timeout(300):
        while engine.prefetching is not None and not engine.prefetching.done():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0)


@pytest.mark.parametrize("reading", sorted(READINGS))
@pytest.mark.parametrize("client", sorted(CLIENTS))
async def test_each_reading_of_position_line_evaluates_a_handful_per_keystroke(
        client, reading, wide_models):
    """Background included: a cut moving by a character must not make the engine widen its
    window again (issue 18: 11x the answers' work, every keystroke). Lines counted from the
    cut have no grid to keep: there the window moves by a line when a line break leaves the
    text sent, and only then."""
    from http_api.schemas import CompletionRequest
    from http_api.views import completion_input

    line = 1500 if client == "last 6000 chars" else cursor_line_where_the_cut_passes_a_line()
    engine = Engine(Settings(model=str(wide_models[False]), n_threads=2, typeahead=False,
                             n_ctx=N_CTX, quick_window_lines=16))
    await engine.load()
    before, after = argparse_text(line)
    work, crossings, lines_sent = [], 0, None
    try:
        for k in range(1, len(TYPED) + 1):
            code = CLIENTS[client](before + TYPED[:k])
            crossings += lines_sent is not None and code.count("\n") != lines_sent
            lines_sent = code.count("\n")
            body = CompletionRequest(
                code=code, suffix=after[:2000], language="python", filename="argparse.py",
                max_tokens=1, temperature=0.0,
                position={"line": READINGS[reading](line, code),
                          "character": len(code) - code.rfind("\n") - 1})
            spent = engine.stats.prompt_tokens_evaluated + engine.stats.prefetch_tokens
            await engine.complete(completion_input(engine, body, None))
            await settle(engine)
            work.append(engine.stats.prompt_tokens_evaluated + engine.stats.prefetch_tokens
                        - spent)
    finally:
        await engine.close()
    assert work[0] > 200  # the first keystroke at the place: a cold prompt
    moved = [w for w in work[1:] if w > 8]
    assert len(moved) <= (crossings if reading == "text" else 0), (work, crossings)


def test_a_cut_counted_from_itself_moves_the_window_only_when_its_first_line_is_cut_off():
    """Lines counted from the client's cut have no file grid: the window starts at a line
    its content marks, and a cut passing one line after another moves it seldom (each move
    re-evaluates the whole window)."""
    from helios_lsp.engine.prompt import PromptBuilder

    builder = PromptBuilder(lambda s: list(s.encode()), n_ctx=1 << 20, bos=None, fim=None)
    before, _ = argparse_text(1500)
    lines = before.split("\n")[:-1]
    starts = []
    for dropped in range(80):  # the cut passes 80 line breaks, one after another
        sent = "partial line\n" + "\n".join(lines[-230 + dropped:]) + "\n"
        text, _ = builder.window_above(sent, 1 << 16, cut=True)
        starts.append(text.split("\n", 1)[0])
    moves = [i for i in range(1, len(starts)) if starts[i] != starts[i - 1]]
    assert 0 < len(moves) <= 20, len(moves)
