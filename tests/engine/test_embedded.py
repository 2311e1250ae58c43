"""The engine on the embedded model (SmolLM2-135M): real suggestions, real KV reuse."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from helios_lsp.engine import CompletionInput, Engine, JobCancelledError
from helios_lsp.settings import Settings

pytestmark = pytest.mark.slow

FIB = "def fibonacci(n):\n    if n <= 1:\n        return n\n    "


@pytest.fixture
async def engine(embedded_model):
    # A generous time budget: on a busy machine the default 3 s could cut suggestions short.
    eng = Engine(Settings(model=str(embedded_model), typeahead=False, time_budget=120))
    await eng.load()
    yield eng
    await eng.close()


@pytest.fixture
def cli_env(isolated_env):
    return {**isolated_env, "HELIOS_TIME_BUDGET": "120"}


def test_helios_complete_prints_a_real_suggestion(tmp_path: Path, cli_env):
    source = tmp_path / "shapes.py"
    source.write_text(
        "import math\n\n\ndef circle_area(radius):\n    return math.pi * radius ** 2\n\n\n"
        "def square_area(side):\n    \n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "helios_lsp", "complete", f"{source}:9:5", "--json"],
        capture_output=True, text=True, timeout=300, env=cli_env,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["text"].strip()
    assert 0.0 < result["confidence"] < 1.0
    assert "embedded" in proc.stderr  # says which model it used


def test_helios_complete_plain_output(tmp_path: Path, cli_env):
    source = tmp_path / "fib.py"
    source.write_text(FIB + "\n")
    proc = subprocess.run(
        [sys.executable, "-m", "helios_lsp", "complete", f"{source}:4:5"],
        capture_output=True, text=True, timeout=300, env=cli_env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "fibonacci(" in proc.stdout  # the recursion, as any reader would expect


def test_helios_complete_bad_location(tmp_path: Path, isolated_env):
    proc = subprocess.run(
        [sys.executable, "-m", "helios_lsp", "complete", f"{tmp_path}/none.py:1:1"],
        capture_output=True, text=True, timeout=60, env=isolated_env,
    )
    assert proc.returncode == 2
    assert "cannot read" in proc.stderr and "Traceback" not in proc.stderr


async def test_one_more_character_reevaluates_a_few_tokens(engine: Engine):
    above = Path(__file__).read_text()[:3000]  # a realistic amount of code above the cursor
    cold = await engine.complete(CompletionInput(above + "\nvalue = compute", "",
                                                 language="python", filename="a.py"))
    warm = await engine.complete(CompletionInput(above + "\nvalue = compute_", "",
                                                 language="python", filename="a.py"))
    assert cold.prompt_tokens > 500
    assert warm.evaluated_tokens <= 4, warm
    assert warm.reused_tokens >= warm.prompt_tokens - 5


async def test_suggestions_are_clean(engine: Engine):
    cases = [
        (FIB, ""),
        ("def factorial(n):\n    if n == 0:\n        return 1\n    else:\n        ", ""),
        ("function calculateSum(arr) {\n    let total = 0;\n    for (let i = 0; i < arr.length;"
         " i++) {\n        ", "\n    }\n    return total;\n}\n"),
        ("items = [1, 2, 3]\nfor item in ", ":\n    print(item)\n"),
    ]
    for prefix, suffix in cases:
        lang = "javascript" if "function" in prefix else "python"
        out = await engine.complete(CompletionInput(prefix, suffix, language=lang,
                                                    filename="x." + lang[:2]))
        assert out.text == out.text.rstrip() and out.text.strip(), (prefix, out)
        assert 0.0 < out.confidence < 1.0
        if suffix.split("\n")[0]:  # mid-line: one line, not repeating what follows
            assert "\n" not in out.text
            assert not out.text.endswith(suffix.split("\n")[0])


async def test_cancel_cold_prompt_stops_evaluation(embedded_model):
    eng = Engine(Settings(model=str(embedded_model), typeahead=False, eval_chunk=32))
    await eng.load()
    long_prompt = "".join(f"def handler_{i}(request):\n    return respond(request, {i})\n\n"
                          for i in range(120))
    task = asyncio.ensure_future(eng.complete(CompletionInput(long_prompt, "",
                                                              language="python")))
    while eng.snapshot()["busy"] is False:
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises((asyncio.CancelledError, JobCancelledError)):
        await task
    for _ in range(3000):  # the worker settles the job at its next chunk boundary
        stats = eng.snapshot()["stats"]
        if stats["cancelled"] + stats["dropped"] + stats["completed"]:
            break
        await asyncio.sleep(0.02)
    assert stats["cancelled"] == 1 and stats["completed"] == 0, stats
    assert 0 < stats["prompt_tokens_evaluated"] < 2000  # it stopped inside the ~2800-token prompt
    await eng.close()
