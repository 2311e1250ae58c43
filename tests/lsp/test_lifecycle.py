"""Loading and reloading (with $/progress), commands, a missing model, and every way the
process ends: shutdown + exit, exit alone, stdin EOF, SIGTERM. Plus: stdout carries only
JSON-RPC whatever is printed."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from tests.lsp.conftest import (
    StartLsp,
    capabilities,
    complete,
    edit,
    env_for_model,
    inline,
    open_doc,
    status,
    wait_for_state,
)
from tests.lsp.test_cancellation import LONG, LONG_SETTINGS, send_inline, wait_until

ROOT = Path(__file__).resolve().parents[2]


async def run_command(client: LanguageClient, command: str):
    return await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=command))


async def wait_for_exit(client: LanguageClient, timeout: float = 20.0) -> int:
    server = client._server
    assert server is not None
    return await asyncio.wait_for(server.wait(), timeout)


async def wait_for_progress(client: LanguageClient, tokens: int, timeout: float = 10.0) -> None:
    """Wait until `tokens` progress tokens have been used, each begun and ended."""
    deadline = time.monotonic() + timeout
    while True:
        kinds = [[r.kind for r in reports] for reports in client.progress_reports.values()]
        if len(kinds) == tokens and all(k == ["begin", "end"] for k in kinds):
            return
        assert time.monotonic() < deadline, client.progress_reports
        await asyncio.sleep(0.02)


async def test_status_and_restart_commands(lsp: StartLsp, isolated_env, tiny_model):
    client = await lsp(env_for_model(isolated_env, tiny_model))
    assert set(client.init_result.capabilities.execute_command_provider.commands) == {
        "helios.status", "helios.restart"}
    snap = await wait_for_state(client, "ready")
    assert snap["engine"]["model_name"] == "tiny-fim.gguf"
    assert snap["position_encoding"] == "utf-16" and snap["client"] == "pytest-lsp 1"
    assert snap["http"]["url"].startswith("http://127.0.0.1:")

    # (the first load may end before the client says `initialized`: no progress then)
    await asyncio.sleep(0.2)
    before = len(client.progress_reports)
    restarted = await run_command(client, "helios.restart")
    assert restarted["engine"]["state"] == "ready"
    assert restarted["engine"]["stats"]["loads"] == 2
    # the reload is shown as progress: a new token, begun and ended
    await wait_for_progress(client, tokens=before + 1)


async def test_no_progress_for_a_client_without_work_done_progress(lsp: StartLsp,
                                                                   isolated_env, tiny_model):
    client = await lsp(env_for_model(isolated_env, tiny_model),
                       caps=capabilities(progress=False))
    await wait_for_state(client, "ready")
    assert (await run_command(client, "helios.restart"))["engine"]["state"] == "ready"
    await asyncio.sleep(0.2)
    assert client.progress_reports == {}


async def test_completions_while_loading_are_empty(lsp: StartLsp, isolated_env, slow_model):
    """A reload waits for the running job; meanwhile the engine is loading and every
    completion answers at once, empty, without an error."""
    client = await lsp(env_for_model(isolated_env, slow_model, HELIOS_TIME_BUDGET="60"),
                       init_options=LONG_SETTINGS)
    await wait_for_state(client, "ready")
    open_doc(client, "file:///work/long.py", LONG)
    open_doc(client, "file:///work/other.py", "x = ")
    long_id, long = send_inline(client, "file:///work/long.py", 1, 4)
    await wait_until(client, lambda s: s["busy"])
    restart = asyncio.ensure_future(run_command(client, "helios.restart"))
    await wait_for_state(client, "loading")

    started = time.monotonic()
    assert not (await inline(client, "file:///work/other.py", 0, 4)).items
    assert not (await complete(client, "file:///work/other.py", 0, 4)).items
    assert time.monotonic() - started < 2.0
    tokens = list(client.progress_reports)
    assert client.progress_reports[tokens[-1]][-1].kind == "begin"  # loading is shown

    client.cancel_request(types.CancelParams(id=long_id))
    with pytest.raises(Exception, match="cancel"):
        await long
    assert (await restart)["engine"]["state"] == "ready"
    await wait_for_progress(client, tokens=len(tokens))


async def test_missing_model(lsp: StartLsp, isolated_env):
    """Empty results and a message saying why; the process stays up."""
    client = await lsp(env_for_model(isolated_env, "/nonexistent/model.gguf"),
                       caps=capabilities(inline=True))
    snap = await wait_for_state(client, "failed")
    assert snap["engine"]["load_error"]
    deadline = time.monotonic() + 10
    while not any(m.type == types.MessageType.Error for m in client.log_messages):
        assert time.monotonic() < deadline, client.log_messages
        await asyncio.sleep(0.02)
    (error,) = [m for m in client.log_messages if m.type == types.MessageType.Error]
    assert "/nonexistent/model.gguf" in error.message  # the local user sees the full reason
    assert any("could not be loaded" in m.message for m in client.messages)

    uri = "file:///work/a.py"
    open_doc(client, uri, "def f():\n    ")
    assert not (await inline(client, uri, 1, 4)).items
    assert not (await complete(client, uri, 1, 4)).items
    assert (await run_command(client, "helios.restart"))["engine"]["state"] == "failed"
    assert (await status(client))["engine"]["state"] == "failed"  # still answering


async def test_shutdown_then_exit_releases_the_model(lsp: StartLsp, isolated_env, tiny_model,
                                                     capfd):
    client = await lsp(env_for_model(isolated_env, tiny_model))
    await wait_for_state(client, "ready")
    await client.shutdown_async(None)
    client.exit(None)
    assert await wait_for_exit(client) == 0
    await asyncio.sleep(0.2)  # the stderr forwarder catches up
    assert "model released" in capfd.readouterr().err


async def test_exit_without_shutdown(lsp: StartLsp, isolated_env, tiny_model):
    client = await lsp(env_for_model(isolated_env, tiny_model))
    client.exit(None)
    assert await wait_for_exit(client) == 1


async def test_stdin_eof_ends_the_process(lsp: StartLsp, isolated_env, slow_model):
    client = await lsp(env_for_model(isolated_env, slow_model, HELIOS_TIME_BUDGET="60"),
                       init_options=LONG_SETTINGS)
    await wait_for_state(client, "ready")
    open_doc(client, "file:///work/long.py", LONG)
    send_inline(client, "file:///work/long.py", 1, 4)  # still running when the editor dies
    await wait_until(client, lambda s: s["busy"])
    client._server.stdin.close()
    started = time.monotonic()
    assert await wait_for_exit(client) == 0
    assert time.monotonic() - started < 5.0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_signal_ends_the_process_cleanly(lsp: StartLsp, isolated_env, tiny_model, capfd,
                                               signum):
    client = await lsp(env_for_model(isolated_env, tiny_model))
    await wait_for_state(client, "ready")
    client._server.send_signal(signum)
    assert await wait_for_exit(client) == 0
    await asyncio.sleep(0.2)
    assert "model released" in capfd.readouterr().err


async def test_stdout_carries_only_json_rpc(lsp: StartLsp, isolated_env, tiny_model, capfd):
    env = env_for_model(isolated_env, tiny_model, PYTHONPATH=str(ROOT))  # for tests.lsp
    client = await lsp(env, command=[sys.executable, "-m", "tests.lsp.noisy_server"])
    await wait_for_state(client, "ready")
    uri = "file:///work/noise.py"
    open_doc(client, uri, "x = 1\n")  # the handler prints here
    edit(client, uri, 2, (1, 0), (1, 0), "y = ")
    assert isinstance(await inline(client, uri, 1, 4), types.InlineCompletionList)
    assert (await status(client))["documents"] == 1
    await client.shutdown_session()
    assert client.error is None
    assert await wait_for_exit(client) == 0
    await asyncio.sleep(0.2)
    err = capfd.readouterr().err
    assert "print() to stdout" in err and "a native write to fd 1" in err


async def test_a_model_that_aborts_llama_cpp_leaves_the_language_server_up(
        lsp: StartLsp, isolated_env, tmp_path: Path):
    """Before the probe, llama.cpp's GGML_ASSERT killed the language server (SIGABRT)."""
    from tests.gguf_factory import write_aborting_model

    bad = write_aborting_model(tmp_path / "bad.gguf")
    client = await lsp(env_for_model(isolated_env, bad, HELIOS_CACHE_DIR=str(tmp_path / "c")),
                       caps=capabilities(inline=True))
    snap = await wait_for_state(client, "failed")
    assert "SIGABRT" in snap["engine"]["load_error"]
    uri = "file:///work/a.py"
    open_doc(client, uri, "def f():\n    ")
    assert not (await inline(client, uri, 1, 4)).items
    assert (await status(client))["engine"]["state"] == "failed"  # still answering
