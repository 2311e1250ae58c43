"""Line breaks: every caller's text reaches the prompt with "\\n" only (engine/text.py)."""

from __future__ import annotations

import pytest

from helios_lsp.engine import CompletionInput, normalize_newlines
from helios_lsp.engine.text import normalize_input


@pytest.mark.parametrize(("text", "expected"), [
    ("a\r\nb\r\n", "a\nb\n"),
    ("a\rb\r", "a\nb\n"),  # a lone CR (classic Mac) is a line break too
    ("a\r\r\nb", "a\n\nb"),  # a CR, then a CR LF: two breaks
    ("a\n\rb", "a\n\nb"),  # LF then CR: two breaks, as the LSP counts them
    ("no breaks", "no breaks"),
    ("", ""),
])
def test_normalize_newlines(text: str, expected: str):
    assert normalize_newlines(text) == expected


def test_normalize_input_changes_only_prefix_and_suffix():
    inp = CompletionInput(prefix="x = 1\r\ny = ", suffix="\r\nz\r", language="python",
                          filename="m.py", max_tokens=7, temperature=0.0, first_line=3)
    out = normalize_input(inp)
    assert (out.prefix, out.suffix) == ("x = 1\ny = ", "\nz\n")
    assert (out.language, out.filename, out.max_tokens, out.temperature, out.first_line) == (
        "python", "m.py", 7, 0.0, 3)
    lf = CompletionInput(prefix="x\n")
    assert normalize_input(lf) is lf  # nothing to do: no copy
