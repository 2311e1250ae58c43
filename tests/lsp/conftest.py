"""`helios lsp` as a subprocess, driven by pytest-lsp's client.

`lsp` is a factory: `client = await lsp(env, capabilities=..., init_options=...)` starts a
server, initializes it and returns the client; every server started is shut down (or
killed) at the end of the test. Each server gets its own HTTP port (never 8000).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.conftest import free_port

SERVER = [sys.executable, "-m", "helios_lsp", "lsp"]
READY_TIMEOUT = 90.0


def capabilities(
    *, inline: bool = True, encodings: Sequence[str] | None = None, progress: bool = True,
    configuration: bool = True, watched_files: bool = False,
) -> types.ClientCapabilities:
    """Client capabilities written out (pytest-lsp's editor profiles declare neither inline
    completion nor position encodings)."""
    return types.ClientCapabilities(
        general=types.GeneralClientCapabilities(
            position_encodings=[types.PositionEncodingKind(e) for e in encodings]
        ) if encodings is not None else None,
        text_document=types.TextDocumentClientCapabilities(
            synchronization=types.TextDocumentSyncClientCapabilities(dynamic_registration=False),
            completion=types.CompletionClientCapabilities(
                completion_item=types.ClientCompletionItemOptions(snippet_support=False),
                context_support=True,
            ),
            inline_completion=types.InlineCompletionClientCapabilities() if inline else None,
        ),
        window=types.WindowClientCapabilities(work_done_progress=progress),
        workspace=types.WorkspaceClientCapabilities(
            configuration=configuration, workspace_folders=True,
            did_change_watched_files=types.DidChangeWatchedFilesClientCapabilities(
                dynamic_registration=True) if watched_files else None),
    )


def env_for_embedded(isolated_env: dict[str, str], **extra: str) -> dict[str, str]:
    """The embedded SmolLM2 model (HELIOS_MODEL unset, empty Ollama store), own port."""
    return {**isolated_env, "HELIOS_PORT": str(free_port()), **extra}


def env_for_model(isolated_env: dict[str, str], model: Path | str, **extra: str) -> dict[str, str]:
    return {**isolated_env, "HELIOS_MODEL": str(model), "HELIOS_PORT": str(free_port()), **extra}


StartLsp = Callable[..., Awaitable[LanguageClient]]


@pytest.fixture(scope="session")
def slow_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight model big enough (6 layers, 384 wide, 37 MB) that its greedy
    1024-token answer to `def f(x):\n    ` takes seconds (3-5 ms a token on 2 cores):
    time to cancel, supersede or reload while it runs. `tiny_model` does it in 0.4 s."""
    from tests.gguf_factory import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("models") / "slow-fim.gguf",
                            fim="codellama", n_layer=6, n_embd=384, n_head=8)


@pytest.fixture
async def lsp() -> AsyncIterator[StartLsp]:
    started: list[LanguageClient] = []

    async def start(
        env: dict[str, str], *, args: Sequence[str] = (),
        caps: types.ClientCapabilities | None = None, init_options: Any = None,
        initialize: bool = True, command: Sequence[str] = SERVER,
        folders: Sequence[Path] = (),
    ) -> LanguageClient:
        config = ClientServerConfig(server_command=[*command, *args], server_env=env)
        client = await config.start()
        started.append(client)
        if initialize:
            client.init_result = await client.initialize_session(types.InitializeParams(
                capabilities=caps or capabilities(),
                client_info=types.ClientInfo(name="pytest-lsp", version="1"),
                initialization_options=init_options,
                root_uri=None,
                workspace_folders=[types.WorkspaceFolder(uri=f.as_uri(), name=f.name)
                                   for f in folders] or None,
            ))
        return client

    yield start

    for client in started:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.shutdown_session(), 20)
        server = client._server
        if server is not None and server.returncode is None:
            server.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.stop(), 10)


async def status(client: LanguageClient) -> dict[str, Any]:
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="helios.status"))
    assert isinstance(result, dict)
    return result


async def wait_for_state(client: LanguageClient, *states: str,
                         timeout: float = READY_TIMEOUT) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        snap = await status(client)
        if snap["engine"]["state"] in states:
            return snap
        assert time.monotonic() < deadline, f"engine still {snap['engine']['state']}"
        await asyncio.sleep(0.05)


def open_doc(client: LanguageClient, uri: str, text: str, language: str = "python",
             version: int = 1) -> None:
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id=language, version=version,
                                             text=text)))


def edit(client: LanguageClient, uri: str, version: int, start: tuple[int, int],
         end: tuple[int, int], text: str) -> None:
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[types.TextDocumentContentChangePartial(
            range=types.Range(start=types.Position(*start), end=types.Position(*end)),
            text=text)],
    ))


INVOKED = types.InlineCompletionTriggerKind.Invoked


def inline_params(uri: str, line: int, character: int, *,
                  kind: types.InlineCompletionTriggerKind = INVOKED,
                  ) -> types.InlineCompletionParams:
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(trigger_kind=kind),
    )


async def inline(client: LanguageClient, uri: str, line: int, character: int,
                 **kw: Any) -> types.InlineCompletionList:
    result = await client.text_document_inline_completion_async(
        inline_params(uri, line, character, **kw))
    assert isinstance(result, types.InlineCompletionList), result
    return result


async def complete(client: LanguageClient, uri: str, line: int,
                   character: int) -> types.CompletionList:
    result = await client.text_document_completion_async(types.CompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=character),
        context=types.CompletionContext(trigger_kind=types.CompletionTriggerKind.Invoked),
    ))
    assert isinstance(result, types.CompletionList), result
    return result
