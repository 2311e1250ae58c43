"""Client settings and suggestion placement, without a server."""

from __future__ import annotations

import pytest
from lsprotocol import types

from helios_lsp.engine.text import normalize_input
from helios_lsp.lsp import suggestions
from helios_lsp.lsp.config import ClientConfig, parse_config
from helios_lsp.lsp.documents import UTF8, UTF16, TextDocument
from helios_lsp.settings import Settings

SETTINGS = Settings(port=8123, max_tokens=100, max_tokens_limit=512, temperature=0.1)
P = types.Position

# --- settings ------------------------------------------------------------------------------


def test_defaults_come_from_the_process_settings():
    config, problems = parse_config(None, SETTINGS)
    assert problems == []
    assert (config.max_tokens, config.temperature, config.http.port) == (100, 0.1, 8123)
    assert config.http.enabled and config.enabled_languages is None


@pytest.mark.parametrize("raw", [
    {"maxTokens": 64, "temperature": 0.3, "disabledLanguages": ["JSON"],
     "http": {"port": 9001}},
    {"helios": {"maxTokens": 64, "temperature": 0.3, "disabledLanguages": ["json"],
                "http": {"enabled": True, "port": 9001}}},
    {"max_tokens": "64", "temperature": "0.3", "disabled_languages": ["json"],
     "http": {"port": "9001"}},
])
def test_valid_settings(raw):
    config, problems = parse_config(raw, SETTINGS)
    assert problems == []
    assert (config.max_tokens, config.temperature) == (64, 0.3)
    assert config.disabled_languages == ("json",) and config.http.port == 9001


@pytest.mark.parametrize(("raw", "field"), [
    ({"maxTokens": 0}, "maxTokens"),
    ({"maxTokens": 100000}, "maxTokens"),  # above HELIOS_MAX_TOKENS_LIMIT
    ({"maxTokens": True}, "maxTokens"),
    ({"temperature": 7}, "temperature"),
    ({"temperature": float("nan")}, "temperature"),
    ({"enabledLanguages": "python"}, "enabledLanguages"),
    ({"http": {"port": 70000}}, "http.port"),
    ({"http": "yes please"}, "http"),
    ({"maxToken": 5}, "maxToken"),  # a typo is reported, not silently ignored
])
def test_invalid_setting_is_reported_and_keeps_its_default(raw, field):
    config, problems = parse_config({**raw, "temperature": 0.5} if "temperature" not in raw
                                    else raw, SETTINGS)
    assert len(problems) == 1 and field in problems[0]
    defaults = ClientConfig.defaults(SETTINGS)
    assert config.max_tokens == defaults.max_tokens
    assert config.http == defaults.http
    if "temperature" not in raw:
        assert config.temperature == 0.5  # the valid keys still apply


def test_settings_that_are_not_an_object():
    config, problems = parse_config(["maxTokens", 5], SETTINGS)
    assert config == ClientConfig.defaults(SETTINGS) and problems


def test_http_false_turns_the_sidecar_off():
    config, problems = parse_config({"http": False}, SETTINGS)
    assert problems == [] and not config.http.enabled and config.http.port == 8123


@pytest.mark.parametrize(("config", "language_id", "filename", "enabled"), [
    ({}, "python", "a.py", True),
    ({"disabledLanguages": ["python"]}, "python", "a.py", False),
    ({"disabledLanguages": ["python"]}, "", "a.py", False),  # found by extension
    ({"disabledLanguages": ["typescript"]}, "typescriptreact", "a.tsx", False),  # alias
    ({"enabledLanguages": ["rust"]}, "python", "a.py", False),
    ({"enabledLanguages": ["rust", "markdown"]}, "markdown", "a.md", True),
    ({"enabledLanguages": ["python"], "disabledLanguages": ["python"]}, "python", "a.py", False),
])
def test_languages(config, language_id, filename, enabled):
    parsed, problems = parse_config(config, SETTINGS)
    assert not problems
    assert parsed.language_enabled(language_id, filename) is enabled


# --- placement -----------------------------------------------------------------------------

CONFIG = ClientConfig.defaults(SETTINGS)


def test_inline_placement_uses_real_prefix_and_suffix():
    doc = TextDocument("file:///w/dir%20x/fib.py", "def fib(n):\n    return \n\nprint(1)\n",
                       "python")
    placement = suggestions.inline_placement(doc, P(1, 11), UTF16, CONFIG)
    assert placement.inp.prefix == "def fib(n):\n    return "
    assert placement.inp.suffix == "\n\nprint(1)\n"
    assert (placement.inp.language, placement.inp.filename) == ("python", "fib.py")
    assert placement.range == types.Range(start=P(1, 11), end=P(1, 11))
    items = suggestions.inline_items(placement, "fib(n - 1)")
    assert [(i.insert_text, i.range) for i in items.items] == [("fib(n - 1)", placement.range)]
    assert suggestions.inline_items(placement, "").items == []


def test_crlf_document_is_cut_at_the_cursor_and_editor_gets_crlf():
    """The cursor's offset counts the CR LF; the engine (not the LSP) makes them "\\n"."""
    doc = TextDocument("file:///a.py", "if x:\r\n    \r\nelse:\r\n", "python")
    placement = suggestions.inline_placement(doc, P(1, 4), UTF16, CONFIG)
    assert placement.inp.prefix == "if x:\r\n    " and placement.inp.suffix == "\r\nelse:\r\n"
    engine_input = normalize_input(placement.inp)
    assert (engine_input.prefix, engine_input.suffix) == ("if x:\n    ", "\nelse:\n")
    item = suggestions.inline_items(placement, "a()\n    b()").items[0]
    assert item.insert_text == "a()\r\n    b()"


def test_position_past_line_end_is_clamped():
    doc = TextDocument("file:///a.py", "x = 1\ny = ", "python")
    placement = suggestions.inline_placement(doc, P(1, 40), UTF16, CONFIG)
    assert placement.inp.prefix == "x = 1\ny = " and placement.inp.suffix == ""
    assert placement.range.start == P(1, 4)


def test_astral_characters_utf8_placement():
    doc = TextDocument("file:///a.py", "s = '😀' + ", "python")
    placement = suggestions.inline_placement(doc, P(0, 13), UTF8, CONFIG)
    assert placement.inp.prefix == "s = '😀' + "
    assert placement.range.start == P(0, 13)


def test_selected_completion_item_is_extended():
    doc = TextDocument("file:///a.py", "import os\nos.pa\n", "python")
    selected = types.SelectedCompletionInfo(
        range=types.Range(start=P(1, 3), end=P(1, 5)), text="path")
    placement = suggestions.inline_placement(doc, P(1, 5), UTF16, CONFIG, selected)
    assert placement.inp.prefix == "import os\nos.path" and placement.inp.suffix == "\n"
    item = suggestions.inline_items(placement, ".join(a, b)").items[0]
    assert item.insert_text == "path.join(a, b)" and item.range == selected.range


def test_completion_item_replaces_and_keeps_the_typed_word():
    doc = TextDocument("file:///a.py", "def fibonacci(n):\n    return fib", "python")
    placement = suggestions.completion_placement(doc, P(1, 14), UTF16, CONFIG)
    assert placement.lead == "fib"
    result = suggestions.completion_items(placement, "onacci(n - 1)", model_name="M")
    assert result.is_incomplete
    (item,) = result.items
    assert item.label.startswith("✦ Helios: fibonacci(n - 1)")
    assert item.filter_text == "fibonacci(n - 1)" and item.filter_text.startswith("fib")
    assert item.text_edit is not None
    assert item.text_edit.new_text == "fibonacci(n - 1)"
    assert item.text_edit.range == types.Range(start=P(1, 11), end=P(1, 14))
    assert item.insert_text_format == types.InsertTextFormat.PlainText
    empty = suggestions.completion_items(placement, "")
    assert empty.is_incomplete and empty.items == []


def test_completion_label_of_a_multiline_suggestion():
    doc = TextDocument("file:///a.py", "def f():\n    ", "python")
    placement = suggestions.completion_placement(doc, P(1, 4), UTF16, CONFIG)
    (item,) = suggestions.completion_items(placement, "x = 1\n    return x" + "y" * 80).items
    assert item.label == "✦ Helios: x = 1 …"
    assert item.kind == types.CompletionItemKind.Snippet
    (long,) = suggestions.completion_items(placement, "y" * 200).items
    assert len(long.label) == len("✦ Helios: ") + suggestions.LABEL_WIDTH
