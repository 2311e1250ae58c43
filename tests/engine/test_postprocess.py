"""Where suggestions stop and what is cut: the cleaning rules, case by case."""

from __future__ import annotations

import pytest

from helios_lsp.engine.languages import detect
from helios_lsp.engine.postprocess import BLOCK, LINE, Cleaner, analyse
from helios_lsp.engine.types import StopReason

PY = detect("python")
JS = detect("javascript")
TXT = detect("", "notes.unknownext")


def clean(prefix: str, suffix: str, generated: str, lang=PY) -> str:
    return Cleaner(analyse(prefix, suffix, lang)).finish(generated)[0]


@pytest.mark.parametrize(
    ("prefix", "suffix", "lang", "mode"),
    [
        ("x = foo(", ")\n", PY, LINE),  # text after the cursor on the line
        ("def f(n):\n    if n <= 1:\n        return n\n    ", "", PY, LINE),  # blank, no opener
        ("def f(n):\n    if n == 0:\n        return 1\n    else:\n        ", "", PY, BLOCK),
        ("def f(n):", "\n", PY, BLOCK),  # end of the line that opens the block
        ("for (let i = 0; i < n; i++) {\n    ", "\n}\n", JS, BLOCK),
        ("value = compute", "", PY, LINE),
        ("items = [", "", TXT, BLOCK),  # generic rules still know brackets
    ],
)
def test_mode(prefix, suffix, lang, mode):
    assert analyse(prefix, suffix, lang).mode == mode


CASES = [
    # mid-line: one line only
    ("x = foo(", ")", "a, b)\nprint(x)", "a, b"),
    # a closing bracket the suggestion itself needs is kept
    ("x = print(", ")", "foo())", "foo()"),
    ("x = print(", ")", "foo()", "foo()"),
    # the rest of the line repeated, brackets or not
    ("for item in ", ":", "items:", "items"),
    ("call(a, ", "):", "b):", "b"),
    # the model repeats exactly what is after the cursor -> nothing
    ("total = ", "compute(a)", "compute(a)", ""),
    # blank line after a statement: one line
    ("def f(n):\n    if n <= 1:\n        return n\n    ", "",
     "return f(n - 1) + f(n - 2)\n\nprint(f(3))", "return f(n - 1) + f(n - 2)"),
    # block body: stops when indentation falls below the block
    ("def f(n):\n    if n == 0:\n        return 1\n    else:\n        ", "",
     "return n * f(n - 1)\n\n\ndef g():\n    pass", "return n * f(n - 1)"),
    ("def f(n):\n    if n == 0:\n        return 1\n    else:\n        ", "",
     "y = n - 1\n        return n * f(y)\n    print(1)", "y = n - 1\n        return n * f(y)"),
    # JS block ends before the closing brace line
    ("for (let i = 0; i < n; i++) {\n        ", "\n    }\n",
     "total += arr[i];\n    }\n    return total;", "total += arr[i];"),
    # block at the end of the opener line
    ("def add(a, b):", "", "\n    return a + b\n\nclass X:", "\n    return a + b"),
    # multi-line repeating the code already below the cursor is cut there
    ("def f(a):\n    ", "\n    return a\n", "a += 1\n    return a", "a += 1"),
    # whitespace only -> ""
    ("x = 1\n", "", "   \n  ", ""),
    # repeating the previous line is garbage
    ("x = compute(1)\n", "", "x = compute(1)", ""),
    # repeated lines in a block are cut at the repetition
    ("def f():", "", "\n    x += 1\n    x += 1\n    x += 1", "\n    x += 1"),
    # the line would read as the one above it: garbage, in any mode
    ("# http://en.wikipedia.org/wiki/YIQ\n# http:", "\n# more\n",
     "//en.wikipedia.org/wiki/YIQ", ""),
    ("# http://en.wikipedia.org/wiki/YIQ\n# http:", "",
     "//en.wikipedia.org/wiki/YIQ\n# http://x", ""),
    # ... also counting what is already after the cursor on the line
    ("total = add(a, b)\ntotal = add(", ")\n", "a, b", ""),
    ("def f():", "", "\n    return 1", "\n    return 1"),
    # a lone bracket or keyword may follow an equal line
    ("        }\n    ", "\n", "}", "}"),
    ("            pass\n        ", "\n", "pass", "pass"),
    # a different line that starts like the one above is kept
    ("# http://en.wikipedia.org/wiki/YIQ\n# http:", "\n",
     "//en.wikipedia.org/wiki/HLS", "//en.wikipedia.org/wiki/HLS"),
]


@pytest.mark.parametrize(("prefix", "suffix", "generated", "expected"), CASES)
def test_finish(prefix, suffix, generated, expected):
    lang = JS if "let " in prefix else PY
    assert clean(prefix, suffix, generated, lang) == expected


def test_cut_stops_generation_early():
    cleaner = Cleaner(analyse("x = foo(", ")", PY))
    assert cleaner.cut("a, b") is None
    assert cleaner.cut("a, b)\n") == (5, "line")
    block = Cleaner(analyse("def f():", "", PY))
    assert block.cut("\n    return 1\n") is None
    # the dedented line is judged as soon as it has a visible character
    assert block.cut("\n    return 1\nd") == (13, "block")


def test_a_comment_ending_in_a_colon_opens_no_block():
    # `# http:` ends in ":" but is a comment: one line, not a Python block.
    ctx = analyse("# References:\n# http:", "\n", PY)
    assert ctx.mode == LINE
    # the code before a trailing comment still decides
    assert analyse("if ready:  # go on", "\n", PY).mode == BLOCK
    assert analyse("total = 1  # why:", "\n", PY).mode == LINE
    assert analyse('url = "http://x.org/a:"', "\n", PY).mode == LINE
    assert analyse("call(a, // later\n", "", JS).mode == LINE  # blank line below `call(a, //`


def test_block_mode_stops_generating_once_the_first_line_repeats_the_one_above():
    cleaner = Cleaner(analyse("x = compute(1)\nx = compute(", "", PY))
    assert cleaner.ctx.mode == BLOCK  # after an open bracket
    assert cleaner.cut("1)") is None  # the line is not complete yet
    assert cleaner.cut("1)\n") == (0, "repeats_previous_line")
    assert cleaner.finish("1)\nprint(x)") == ("", "repeats_previous_line")
    fresh = Cleaner(analyse("x = compute(1)\ny = compute(", "", PY))
    assert fresh.cut("2)\n") is None


@pytest.mark.parametrize(("prefix", "suffix", "generated", "reason"), [
    ("x = foo(", ")", "a, b)\nmore", StopReason.LINE),
    ("def f():", "", "\n    return 1\nx = 2", StopReason.BLOCK),
    ("def f():", "", "\n    a = 1\n\n\n    b = 2", StopReason.BLANK_LINES),
    ("def f():", "\n    return x\n", "\n    y = 1\n    return x\n", StopReason.REPEATS_SUFFIX),
    ("x = foo(", "1)", "1)", StopReason.REPEATS_SUFFIX),
    ("def f():", "", "\n    a()\n    a()\n", StopReason.REPEATED_LINE),
    ("x = compute(1)\nx = compute(", "", "1)\nprint(x)", StopReason.REPEATS_PREVIOUS_LINE),
    ("x = ", "", "   ", StopReason.EMPTY),
    ("x = ", "", "1", None),  # no rule cut it: the model's own reason stands
])
def test_every_cut_names_a_stop_reason(prefix, suffix, generated, reason):
    """The reasons are StopReason members (they were free strings, some undocumented)."""
    _, got = Cleaner(analyse(prefix, suffix, PY)).finish(generated)
    assert got is reason
    if reason is not None:
        assert got == reason.value and f"{got}" == reason.value  # JSON and logs see the word


def test_control_characters_and_bidi_overrides_never_reach_the_editor():
    """A model (or a hostile engine server) may produce ESC or a bidi override: an editor
    must never insert them (they repaint terminals, or make code read unlike it runs)."""
    cleaner = Cleaner(analyse("x = ", "", detect("python", "a.py")))
    text, _ = cleaner.finish("compute(\x1b[31mred\u202e, \x00b)\tok")
    assert text == "compute([31mred, b)\tok"
