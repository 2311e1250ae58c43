"""textDocument/inlineCompletion and textDocument/completion end to end: `helios lsp` as a
subprocess on the embedded model (SmolLM2-135M)."""

from __future__ import annotations

import pytest
from lsprotocol import types

from tests.lsp.conftest import (
    StartLsp,
    capabilities,
    complete,
    edit,
    env_for_embedded,
    inline,
    open_doc,
    status,
    wait_for_state,
)

pytestmark = pytest.mark.slow

FIB = "file:///work/fib.py"
FIB_TEXT = "def fibonacci(n):\n    "
SHORT = {"maxTokens": 16}  # where positions matter, not the suggestion


async def test_inline_completion_from_the_real_model(lsp: StartLsp, isolated_env):
    client = await lsp(env_for_embedded(isolated_env), caps=capabilities(inline=True))
    caps = client.init_result.capabilities
    assert caps.inline_completion_provider is not None
    assert caps.completion_provider is not None
    assert caps.position_encoding == types.PositionEncodingKind.Utf16
    await wait_for_state(client, "ready")

    open_doc(client, FIB, FIB_TEXT + "\n\nprint(fibonacci(10))\n")
    result = await inline(client, FIB, 1, 4)
    (item,) = result.items
    assert isinstance(item.insert_text, str) and item.insert_text.strip()
    assert item.range == types.Range(start=types.Position(1, 4), end=types.Position(1, 4))
    snap = await status(client)
    assert snap["engine"]["stats"]["completed"] == 1 and snap["engine"]["last_job"]

    # The user is told when the model is ready, and saw its loading as progress.
    assert any("ready" in m.message for m in client.log_messages)
    (reports,) = client.progress_reports.values()
    assert [r.kind for r in reports] == ["begin", "end"]


async def test_typing_one_more_character_keeps_the_document_in_step(lsp: StartLsp,
                                                                   isolated_env):
    """Incremental edits, then completion: typing the first character of the suggestion
    answers with the rest of it from type-ahead, which the engine only does when the
    server's document is exactly the old text plus that character."""
    client = await lsp(env_for_embedded(isolated_env))
    await wait_for_state(client, "ready")
    open_doc(client, FIB, "")
    # Type the function in pieces, the way an editor reports keystrokes.
    edit(client, FIB, 2, (0, 0), (0, 0), "def fibonacci(n):\n")
    edit(client, FIB, 3, (1, 0), (1, 0), "    \n\nprint(fibonacci(10))\n")
    edit(client, FIB, 4, (0, 4), (0, 13), "fib")  # rename: def fib(n):
    (item,) = (await inline(client, FIB, 1, 4)).items
    first = item.insert_text
    assert isinstance(first, str) and first.strip()

    edit(client, FIB, 5, (1, 4), (1, 4), first[0])
    (after,) = (await inline(client, FIB, 1, 5)).items
    assert after.insert_text == first[1:]
    assert after.range == types.Range(start=types.Position(1, 5), end=types.Position(1, 5))
    snap = await status(client)
    assert snap["engine"]["stats"]["typeahead_hits"] == 1


async def test_completion_item_for_a_client_without_inline_completion(lsp: StartLsp,
                                                                       isolated_env):
    client = await lsp(env_for_embedded(isolated_env), caps=capabilities(inline=False))
    await wait_for_state(client, "ready")
    open_doc(client, FIB, "def fibonacci(n):\n    if n < 2:\n        return n\n    return fib")
    result = await complete(client, FIB, 3, 14)
    assert result.is_incomplete  # typing asks again
    (item,) = result.items
    assert item.label.startswith("✦ Helios: fib")
    assert item.text_edit is not None and isinstance(item.text_edit, types.TextEdit)
    # The edit replaces the typed word "fib" and puts it back in front of the suggestion.
    assert item.text_edit.range == types.Range(start=types.Position(3, 11),
                                               end=types.Position(3, 14))
    assert item.text_edit.new_text.startswith("fib") and len(item.text_edit.new_text) > 3
    assert item.filter_text == item.text_edit.new_text
    assert item.insert_text_format == types.InsertTextFormat.PlainText


@pytest.mark.parametrize(
    ("offered", "chosen", "column"),
    [
        # Line: s = "😀é" + fib   -- the cursor after "fib" and the word start at "f".
        (None, "utf-16", (12, 15)),
        (["utf-16"], "utf-16", (12, 15)),
        (["utf-8", "utf-16"], "utf-8", (15, 18)),
        (["utf-32"], "utf-32", (11, 14)),
    ],
)
async def test_position_encodings_with_astral_characters(
    lsp: StartLsp, isolated_env, offered, chosen, column,
):
    client = await lsp(env_for_embedded(isolated_env), init_options=SHORT,
                       caps=capabilities(inline=True, encodings=offered))
    assert client.init_result.capabilities.position_encoding == chosen
    await wait_for_state(client, "ready")
    uri = "file:///work/emoji.py"
    open_doc(client, uri, 'def fibonacci(n): ...\ns = "😀é" + fib\n')
    start, cursor = column
    result = await complete(client, uri, 1, cursor)
    for item in result.items:  # the model may have nothing to add; the range is what matters
        assert item.text_edit is not None
        assert item.text_edit.range == types.Range(start=types.Position(1, start),
                                                   end=types.Position(1, cursor))
    # A position inside the emoji's code units, or far past the line end: no error.
    await inline(client, uri, 1, 6)
    (clamped,) = (await inline(client, uri, 1, 500)).items or (None,)
    if clamped is not None:
        assert clamped.range.start == types.Position(1, cursor)
    # An edit after the emoji, in the negotiated units, lands after the emoji.
    edit(client, uri, 2, (1, cursor), (1, cursor), "o")
    result = await complete(client, uri, 1, cursor + 1)
    for item in result.items:
        assert item.text_edit.new_text.startswith("fibo")


async def test_crlf_document(lsp: StartLsp, isolated_env):
    client = await lsp(env_for_embedded(isolated_env), init_options=SHORT)
    await wait_for_state(client, "ready")
    uri = "file:///work/crlf.py"
    open_doc(client, uri, "import os\r\n\r\ndef read(path):\r\n    return \r\n")
    result = await inline(client, uri, 3, 11)
    for item in result.items:
        assert "\n" not in item.insert_text.replace("\r\n", "")  # only CRLF breaks
        assert item.range.start == types.Position(3, 11)


async def test_nothing_to_complete(lsp: StartLsp, isolated_env):
    client = await lsp(env_for_embedded(isolated_env),
                       init_options={"disabledLanguages": ["json"]})
    await wait_for_state(client, "ready")
    # a document the client never opened, and a disabled language: empty, no error
    assert not (await inline(client, "file:///work/never-opened.py", 0, 0)).items
    open_doc(client, "file:///work/data.json", '{"a": ', language="json")
    assert not (await inline(client, "file:///work/data.json", 0, 6)).items
    assert not (await complete(client, "file:///work/data.json", 0, 6)).items
    snap = await status(client)
    assert snap["engine"]["stats"]["requests"] == 0  # the engine was never asked
