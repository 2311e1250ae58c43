"""Settings from initializationOptions and workspace/didChangeConfiguration (pushed or
pulled); invalid ones are shown to the user and their defaults kept."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from tests.lsp.conftest import (
    StartLsp,
    env_for_model,
    inline,
    open_doc,
    status,
    wait_for_state,
)


async def wait_for_settings(client: LanguageClient, **expected: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        snap = await status(client)
        settings = snap["settings"]
        if all(settings[k] == v for k, v in expected.items()):
            return snap
        assert time.monotonic() < deadline, f"settings are {settings}"
        await asyncio.sleep(0.02)


def change_configuration(client: LanguageClient, settings: Any) -> None:
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings=settings))


async def wait_for_shown(client: LanguageClient, count: int = 1) -> list[str]:
    deadline = time.monotonic() + 10
    while len(client.messages) < count:
        assert time.monotonic() < deadline, "no window/showMessage"
        await asyncio.sleep(0.02)
    return [m.message for m in client.messages]


async def test_invalid_initialization_options_are_shown_and_defaults_kept(
    lsp: StartLsp, isolated_env, tiny_model,
):
    client = await lsp(env_for_model(isolated_env, tiny_model, HELIOS_MAX_TOKENS="40"),
                       init_options={"maxTokens": -3, "temperature": 0.4, "colour": "blue"})
    (shown,) = await wait_for_shown(client)
    assert "maxTokens" in shown and "colour" in shown
    assert client.messages[0].type == types.MessageType.Warning
    snap = await status(client)
    assert snap["settings"]["maxTokens"] == 40  # the default (HELIOS_MAX_TOKENS)
    assert snap["settings"]["temperature"] == 0.4  # the valid key applies


async def test_settings_pushed_by_the_client(lsp: StartLsp, isolated_env, tiny_model):
    client = await lsp(env_for_model(isolated_env, tiny_model, HELIOS_TYPEAHEAD="false"))
    await wait_for_state(client, "ready")
    uri = "file:///work/s.py"
    open_doc(client, uri, "def f(x):\n    ")

    change_configuration(client, {"helios": {"maxTokens": 3, "temperature": 0.0}})
    await wait_for_settings(client, maxTokens=3, temperature=0.0)
    await inline(client, uri, 1, 4)
    last_job = (await status(client))["engine"]["last_job"]
    assert last_job["generated_tokens"] <= 3 + 1  # +1: a re-created (healed) last token

    # Languages: python off -> nothing is asked of the engine.
    change_configuration(client, {"disabledLanguages": ["python"]})
    snap = await wait_for_settings(client, disabledLanguages=["python"])
    assert snap["settings"]["maxTokens"] != 3  # a new configuration replaces the old one
    requests = snap["engine"]["stats"]["requests"]
    assert not (await inline(client, uri, 1, 4)).items
    assert (await status(client))["engine"]["stats"]["requests"] == requests

    # Invalid values: shown, and the defaults kept.
    change_configuration(client, {"temperature": "hot", "enabledLanguages": ["rust"]})
    (shown,) = await wait_for_shown(client)
    assert "temperature" in shown
    snap = await wait_for_settings(client, enabledLanguages=["rust"])
    assert snap["settings"]["temperature"] == 0.1


@pytest.mark.parametrize("settings", [None, {}])
async def test_settings_pulled_with_workspace_configuration(lsp: StartLsp, isolated_env,
                                                            tiny_model, settings):
    client = await lsp(env_for_model(isolated_env, tiny_model))
    client.set_configuration({"maxTokens": 7, "disabledLanguages": ["go"]}, section="helios")
    change_configuration(client, settings)  # "something changed": the server asks
    await wait_for_settings(client, maxTokens=7, disabledLanguages=["go"])
    assert not client.messages
