"""`helios lsp` on an engine server that puts hostile strings in what it says
(tests/hostile_engine.py): the editor's messages (window/logMessage, window/showMessage),
the load's $/progress, completion items, helios.status and the server's stderr log carry
them only as clean single-line text."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from lsprotocol import types
from pytest_lsp import LanguageClient

from tests.hostile_engine import (
    FORGED,
    HOSTILE,
    HostileEngine,
    assert_clean_json,
    assert_clean_log,
    assert_clean_text,
)
from tests.lsp.conftest import (
    StartLsp,
    capabilities,
    complete,
    env_for_embedded,
    open_doc,
    status,
    wait_for_state,
)

URI = "file:///work/total.py"
CODE = "total = count +"  # ends without whitespace: the stand-in writes no healing grammar


def logged_to(path: Path) -> list[str]:
    """`helios lsp` with its stderr (Helios's log) written to `path`."""
    return ["sh", "-c", 'exec "$@" 2>>"$0"', str(path), sys.executable, "-m", "helios_lsp",
            "lsp"]


async def wait_message(client: LanguageClient, words: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not any(words in m.message for m in client.log_messages):
        assert time.monotonic() < deadline, [m.message for m in client.log_messages]
        await asyncio.sleep(0.05)


def assert_client_saw_clean(client: LanguageClient) -> None:
    for message in [*client.log_messages, *client.messages]:
        assert_clean_text(message.message, "an LSP message")
    for reports in client.progress_reports.values():
        for report in reports:
            for field in ("title", "message"):
                assert_clean_text(getattr(report, field, None) or "", f"progress {field}")


async def restart(client: LanguageClient) -> dict:
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="helios.restart"))
    assert isinstance(result, dict)
    return result


async def test_messages_progress_and_items_are_clean(lsp: StartLsp, isolated_env,
                                                     tmp_path: Path):
    log = tmp_path / "helios-lsp.log"
    # /props answers after a second: the first load is still running at `initialized`, so
    # its progress is reported (restarts report theirs anyway).
    with HostileEngine(alias=FORGED, props_delay=1.0) as srv:
        env = env_for_embedded(isolated_env, HELIOS_ENGINE="llama-server",
                               HELIOS_ENGINE_URL=srv.url, HELIOS_TYPEAHEAD="false")
        client = await lsp(env, caps=capabilities(inline=False, progress=True),
                           command=logged_to(log))
        snap = await wait_for_state(client, "ready")
        assert_clean_json(snap, "helios.status")
        assert snap["engine"]["model_name"].startswith("evil\ufffd2099-01-01")
        await wait_message(client, "ready")
        # The load's progress ends with the model's name: clean.
        ends = [r.message for reports in client.progress_reports.values() for r in reports
                if isinstance(r, types.WorkDoneProgressEnd)]
        assert any("INJECTED-NAME" in (m or "") for m in ends), client.progress_reports

        # A completion item names the model in its detail.
        open_doc(client, URI, CODE)
        result = await complete(client, URI, 0, len(CODE))
        (item,) = result.items
        assert_clean_text(item.detail or "", "the item's detail")
        assert (item.detail or "").startswith("Helios · evil\ufffd2099")

        # The engine server's status is hostile: the failed load is shown (a popup too),
        # quoting it clean.
        srv.health = HOSTILE
        assert_clean_json(await restart(client), "helios.restart's answer")
        deadline = time.monotonic() + 30
        while not any("its status is" in m.message for m in client.messages):
            assert time.monotonic() < deadline, client.messages
            await asyncio.sleep(0.05)
        assert_clean_json(await status(client), "helios.status")
        # Asked meanwhile, the server says why there is no completion, quoting it too.
        assert not (await complete(client, URI, 0, len(CODE))).items
        await wait_message(client, "no completion")

        # Back, with every unsafe character in its name this time.
        srv.health, srv.alias = "ok", HOSTILE
        await restart(client)
        snap = await wait_for_state(client, "ready")
        assert_clean_json(snap, "helios.status")
        assert snap["engine"]["model_name"].endswith(" end")
        assert (await complete(client, URI, 0, len(CODE))).items

        assert_client_saw_clean(client)
        assert len(client.progress_reports) >= 3  # the first load and both restarts
        assert "INJECTED-NAME" in log.read_text(errors="replace")
        assert_clean_log(log.read_text(errors="replace"))
