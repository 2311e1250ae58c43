"""Every pass over user text is linear: long runs of any character class cost ~4x when quadrupled.

Regex backtracking once made one request freeze the server (a run of 1,600 `_` took 8 s
with the GIL held). These tests quadruple the size of a run and compare the CPU time of the
two runs in the same test: linear work gives ~4x, quadratic 16x. A ratio, not a time limit,
so a busy machine does not make them fail; the wide gap between the two keeps noise out.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from helios_lsp.engine.languages import detect
from helios_lsp.engine.postprocess import Cleaner, analyse, is_trivial_line, repeats_line
from helios_lsp.engine.prompt import PromptBuilder

PY = detect("python")

# One run of each character class an editor can send.
RUNS = {
    "underscore": "_",
    "letter": "a",
    "digit": "7",
    "space": " ",
    "tab": "\t",
    "open_paren": "(",
    "close_paren": ")",
    "brace": "{",
    "quote": '"',
    "apostrophe": "'",
    "hash": "#",
    "backslash": "\\",
    "colon": ":",
    "newline": "\n",
    "accented": "é",
    "astral": "\U0001F600",
    "mixed": "_a(",
}
SIZE = 5_000
GROWTH = 4
MAX_RATIO = 8.0  # linear: 4; quadratic: 16


def cpu_cost(fn: Callable[[], object], repeats: int = 5) -> float:
    """The least CPU time of `repeats` calls, long enough to be measured."""
    best = float("inf")
    for _ in range(repeats):
        started = time.thread_time()
        calls = 0
        while True:
            fn()
            calls += 1
            elapsed = time.thread_time() - started
            if elapsed >= 0.02:
                break
        best = min(best, elapsed / calls)
    return best


def assert_linear(make: Callable[[int], Callable[[], object]]) -> None:
    small, large = cpu_cost(make(SIZE)), cpu_cost(make(GROWTH * SIZE))
    ratio = large / small
    assert ratio < MAX_RATIO, f"{GROWTH}x the input multiplied the work by {ratio:.1f}"


def issue_case(run: str, n: int) -> tuple[str, str]:
    """The reported freeze: lines that differ only after a long run, cursor after the last."""
    line = run * (n // len(run))
    return "\n".join([line + "a = foo"] * 6 + [line + "a = "]), ""


def test_the_reported_underscore_case_is_still_dropped():
    prefix, suffix = issue_case("_", 1000)
    text, reason = Cleaner(analyse(prefix, suffix, PY)).finish("foo")
    assert (text, reason) == ("", "repeats_previous_line")


@pytest.mark.parametrize("line", ["}", "end", "pass", "break;", "__init__", "_", "", "});",
                                  "  ) ", "a b", "x = 1", "__a__b", "((a))", "a_b_c"])
def test_trivial_line_means_what_the_old_regex_meant(line):
    import re

    assert is_trivial_line(line) == bool(re.fullmatch(r"[\W_]*\w*[\W_]*", line))


@pytest.mark.parametrize("name", sorted(RUNS))
def test_repeats_line_is_linear(name):
    run = RUNS[name]

    def make(n):
        line = run * (n // len(run)) + "a = foo"
        return lambda: repeats_line(line, line)

    assert_linear(make)


@pytest.mark.parametrize("name", sorted(RUNS))
def test_cleaning_is_linear_in_the_prefix(name):
    run = RUNS[name]

    def make(n):
        prefix, suffix = issue_case(run, n)

        def work():
            cleaner = Cleaner(analyse(prefix, suffix, PY))
            cleaner.cut("foo\n    bar")
            return cleaner.finish("foo")
        return work

    assert_linear(make)


@pytest.mark.parametrize("name", sorted(RUNS))
def test_cleaning_is_linear_in_the_suffix_and_the_suggestion(name):
    run = RUNS[name]

    def make(n):
        body = run * (n // len(run))
        prefix = "x = call(" + body
        suffix = body + ")\n" + body

        def work():
            cleaner = Cleaner(analyse(prefix, suffix, PY))
            # A suggestion that overlaps the rest of the line in many ways.
            return cleaner.finish(body + body[: n // 2] + ")")
        return work

    assert_linear(make)


@pytest.mark.parametrize("name", sorted(RUNS))
def test_block_cleaning_is_linear(name):
    run = RUNS[name]

    def make(n):
        body = run * (n // len(run))
        prefix = "def f(" + body + "):\n    "
        generated = "\n".join(["    x = " + body] * 4)

        def work():
            cleaner = Cleaner(analyse(prefix, "\n" + body, PY))
            cleaner.cut(generated)
            return cleaner.finish(generated)
        return work

    assert_linear(make)


@pytest.fixture(scope="module")
def tokenizer(embedded_model):
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(embedded_model), vocab_only=True, verbose=False)
    yield lambda text: llm.tokenize(text.encode(), add_bos=False, special=False)
    llm.close()


@pytest.mark.parametrize("name", sorted(RUNS))
def test_prompt_building_is_linear(name, tokenizer):
    run = RUNS[name]

    def make(n):
        body = run * (n // len(run))
        prefix = ("\n".join([body + "a = foo"] * 6)) + "\n" + body + "a = "
        suffix = body + ")\n" + body

        def work():
            # A new builder each time: its cache of the window above must not hide the work.
            builder = PromptBuilder(tokenizer, n_ctx=4096, bos=1, fim=None)
            return builder.build(prefix, suffix, PY, "file.py", 64)
        return work

    assert_linear(make)
