"""$/cancelRequest and supersession, proven with the engine's counters.

A tiny random-weight model (greedy, 1024 tokens, a 60 s time budget) generates for a few
seconds on `def f(x):\\n    `: long enough to cancel it while it runs."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled
from pytest_lsp import LanguageClient

from tests.lsp.conftest import (
    StartLsp,
    edit,
    env_for_model,
    inline,
    inline_params,
    open_doc,
    status,
    wait_for_state,
)

LONG = "def f(x):\n    "  # greedy generation runs to max_tokens on the tiny model
LONG_SETTINGS = {"maxTokens": 1024, "temperature": 0.0}


async def long_running_server(lsp: StartLsp, isolated_env, slow_model: Path) -> LanguageClient:
    client = await lsp(env_for_model(isolated_env, slow_model, HELIOS_TIME_BUDGET="60",
                                     HELIOS_TYPEAHEAD="false"),
                       init_options=LONG_SETTINGS)
    await wait_for_state(client, "ready")
    return client


def send_inline(client: LanguageClient, uri: str, line: int, character: int
                ) -> tuple[str, asyncio.Future[Any]]:
    msg_id = str(uuid.uuid4())
    future = client.protocol.send_request(
        types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, line, character),
        msg_id=msg_id)
    return msg_id, asyncio.wrap_future(future)


async def wait_until(client: LanguageClient, check, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        snap = (await status(client))["engine"]
        if check(snap):
            return snap
        assert time.monotonic() < deadline, f"timed out; engine: {snap}"
        await asyncio.sleep(0.02)


def settled(jobs: int):
    """The worker is idle and `jobs` jobs have been counted: the request's answer (here,
    its cancellation) can reach the client a moment before its job is accounted."""
    outcomes = ("completed", "cancelled", "dropped", "failed")
    return lambda snap: (not snap["busy"] and snap["queued"] == 0
                         and sum(snap["stats"][k] for k in outcomes) >= jobs)


def short_answers(client: LanguageClient) -> None:
    """From the next request on, answers of a few tokens (the running job keeps its own)."""
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(
        settings={"maxTokens": 8, "temperature": 0.0}))


def running(requests: int):
    return lambda snap: snap["busy"] and snap["stats"]["requests"] == requests


async def test_cancel_request_stops_the_running_job(lsp: StartLsp, isolated_env, slow_model):
    client = await long_running_server(lsp, isolated_env, slow_model)
    uri = "file:///work/long.py"
    open_doc(client, uri, LONG)
    msg_id, answer = send_inline(client, uri, 1, 4)
    await wait_until(client, running(1))
    await asyncio.sleep(0.2)  # let it produce a few tokens
    client.cancel_request(types.CancelParams(id=msg_id))
    with pytest.raises(JsonRpcRequestCancelled):
        await answer
    snap = await wait_until(client, settled(1))
    stats = snap["stats"]
    # Stopped while running (not dropped, not completed), long before its 1024 tokens.
    assert (stats["cancelled"], stats["completed"], stats["dropped"]) == (1, 0, 0)
    assert 0 < stats["generated_tokens"] < 1024

    # The server is still good for the next request.
    short_answers(client)
    edit(client, uri, 2, (0, 0), (1, 4), "x = [\n")
    await inline(client, uri, 1, 0)
    assert (await status(client))["engine"]["stats"]["completed"] == 1


async def test_cancelled_queued_request_never_runs(lsp: StartLsp, isolated_env, slow_model):
    client = await long_running_server(lsp, isolated_env, slow_model)
    open_doc(client, "file:///work/a.py", LONG)
    open_doc(client, "file:///work/b.py", LONG)
    first_id, first = send_inline(client, "file:///work/a.py", 1, 4)
    await wait_until(client, running(1))
    queued_id, queued = send_inline(client, "file:///work/b.py", 1, 4)
    await wait_until(client, lambda s: s["queued"] == 1)
    client.cancel_request(types.CancelParams(id=queued_id))
    with pytest.raises(JsonRpcRequestCancelled):
        await queued
    client.cancel_request(types.CancelParams(id=first_id))
    with pytest.raises(JsonRpcRequestCancelled):
        await first
    stats = (await wait_until(client, settled(2)))["stats"]
    assert (stats["dropped"], stats["cancelled"], stats["completed"]) == (1, 1, 0)


async def test_newer_request_for_the_same_document_supersedes(lsp: StartLsp, isolated_env,
                                                              slow_model):
    client = await long_running_server(lsp, isolated_env, slow_model)
    uri = "file:///work/typing.py"
    open_doc(client, uri, LONG)
    _, older = send_inline(client, uri, 1, 4)
    await wait_until(client, running(1))
    # The user typed on: the document changes and the editor asks again.
    short_answers(client)
    edit(client, uri, 2, (0, 0), (1, 4), "x = [\n")
    newer = await inline(client, uri, 1, 0)
    superseded = await older
    # The older request answers with nothing (not an error the editor would show).
    assert isinstance(superseded, types.InlineCompletionList) and not superseded.items
    assert isinstance(newer, types.InlineCompletionList)
    stats = (await wait_until(client, settled(2)))["stats"]
    assert stats["superseded"] == 1 and stats["cancelled"] == 1 and stats["completed"] == 1
    assert stats["generated_tokens"] < 1024 + 8
