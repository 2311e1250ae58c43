"""The HTTP sidecar inside `helios lsp`: same process, same loop, same engine; moved or
turned off by settings; a second window whose port is taken keeps its LSP working."""

from __future__ import annotations

import asyncio
import socket
import time

import aiohttp
import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from tests.conftest import free_port
from tests.lsp.conftest import (
    StartLsp,
    env_for_model,
    inline,
    open_doc,
    status,
    wait_for_state,
)
from tests.lsp.test_cancellation import LONG, LONG_SETTINGS, send_inline, wait_until
from tests.lsp.test_settings import change_configuration


async def get(url: str) -> tuple[int, dict]:
    async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
                session.get(url) as resp):
        return resp.status, await resp.json()


async def refused(url: str) -> bool:
    try:
        await get(url)
    except aiohttp.ClientConnectionError:
        return True
    return False


async def wait_for_log(client: LanguageClient, text: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        for message in client.log_messages:
            if text in message.message:
                return message.message
        assert time.monotonic() < deadline, [m.message for m in client.log_messages]
        await asyncio.sleep(0.02)


async def test_http_answers_during_an_lsp_session(lsp: StartLsp, isolated_env, slow_model):
    env = env_for_model(isolated_env, slow_model, HELIOS_TIME_BUDGET="60")
    port = int(env["HELIOS_PORT"])
    client = await lsp(env, init_options=LONG_SETTINGS)
    url = f"http://127.0.0.1:{port}"
    assert (await status(client))["http"]["url"] == url  # bound before `initialize` answered
    await wait_for_state(client, "ready")

    # An LSP completion runs in the engine; HTTP answers meanwhile, from the same engine.
    uri = "file:///work/long.py"
    open_doc(client, uri, LONG)
    msg_id, running = send_inline(client, uri, 1, 4)
    await wait_until(client, lambda s: s["busy"])
    started = time.monotonic()
    code, health = await get(f"{url}/health")
    assert time.monotonic() - started < 1.0
    assert code == 200 and health["model_loaded"] is True
    code, http_status = await get(f"{url}/status")
    assert code == 200 and http_status["engine"]["busy"] is True
    assert http_status["engine"]["stats"]["requests"] == 1  # the LSP request, seen over HTTP
    client.cancel_request(types.CancelParams(id=msg_id))
    with pytest.raises(Exception, match="cancel"):
        await running


async def test_settings_move_and_stop_the_sidecar(lsp: StartLsp, isolated_env, tiny_model):
    env = env_for_model(isolated_env, tiny_model)
    first = int(env["HELIOS_PORT"])
    client = await lsp(env, init_options={"http": False})
    assert (await status(client))["http"]["url"] is None
    assert await refused(f"http://127.0.0.1:{first}/health")

    second = free_port()
    change_configuration(client, {"http": {"enabled": True, "port": second}})
    await wait_for_log(client, f"HTTP API at http://127.0.0.1:{second}")
    await wait_for_state(client, "ready")
    assert (await get(f"http://127.0.0.1:{second}/health"))[0] == 200

    change_configuration(client, {"http": {"enabled": False}})
    deadline = time.monotonic() + 10
    while (await status(client))["http"]["status"] != "off (client settings)":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    assert await refused(f"http://127.0.0.1:{second}/health")


async def test_no_http_flag(lsp: StartLsp, isolated_env, tiny_model):
    env = env_for_model(isolated_env, tiny_model)
    client = await lsp(env, args=["--no-http"], init_options={"http": {"enabled": True}})
    assert (await status(client))["http"] == {"status": "off (--no-http)", "url": None}
    assert await refused(f"http://127.0.0.1:{env['HELIOS_PORT']}/health")


async def test_second_window_with_the_port_taken(lsp: StartLsp, isolated_env, tiny_model):
    env = env_for_model(isolated_env, tiny_model)
    first = await lsp(env)
    await wait_for_state(first, "ready")
    second = await lsp(env)  # same HELIOS_PORT: a second editor window

    said = await wait_for_log(second, "served by the other process")
    assert env["HELIOS_PORT"] in said
    await wait_for_state(second, "ready")
    assert (await status(second))["http"]["url"] is None
    # The second window's language server works as usual.
    uri = "file:///work/w2.py"
    open_doc(second, uri, "x = [\n")
    assert isinstance(await inline(second, uri, 1, 0), types.InlineCompletionList)
    assert (await status(second))["engine"]["stats"]["requests"] == 1
    assert (await status(first))["engine"]["stats"]["requests"] == 0


async def test_port_taken_by_another_program(lsp: StartLsp, isolated_env, tiny_model):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        env = env_for_model(isolated_env, tiny_model, HELIOS_PORT=str(port))
        client = await lsp(env)
        said = await wait_for_log(client, "used by another program")
        assert str(port) in said
        await wait_for_state(client, "ready")
        open_doc(client, "file:///work/a.py", "x = [\n")
        assert isinstance(await inline(client, "file:///work/a.py", 1, 0),
                          types.InlineCompletionList)
