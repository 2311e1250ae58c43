"""Context from other files, through a real language server session (issue 17).

`helios lsp` runs on an engine server (HELIOS_ENGINE=llama-server) that records every prompt
it is sent: tests/hostile_engine.py's server, answering plainly. So what reaches a prompt is
seen exactly, from outside, and no model has to load. The files are real files the tests
write; the workspace folders come with `initialize` and workspace/didChangeWorkspaceFolders.

The block of context is chosen in the background and put in use once it is warm, so each
test asks, waits until a block is in use (`stats.context_blocks`), and asks again.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from tests.hostile_engine import HostileEngine
from tests.lsp.conftest import (
    StartLsp,
    capabilities,
    edit,
    env_for_embedded,
    inline,
    open_doc,
    status,
    wait_for_state,
)

MAIN = "from . import util\n\n\ndef run(items):\n    return util."


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def env(isolated_env: dict[str, str], engine: HostileEngine, **extra: str) -> dict[str, str]:
    return env_for_embedded(isolated_env, HELIOS_ENGINE="llama-server",
                            HELIOS_ENGINE_URL=engine.url, HELIOS_TYPEAHEAD="false", **extra)


def prompts(engine: HostileEngine) -> list[str]:
    return [body["prompt"] for body in engine.posted("/completion")
            if body.get("stream") is not False]


async def until(probe: Any, what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def indexed(client, files: int) -> dict[str, Any]:
    async def probe():
        work = (await status(client))["engine"]["context"]["workspace"]
        return work if work["state"] == "ready" and work["files"] >= files else None
    return await until(probe, f"{files} files indexed")


async def blocks(client) -> int:
    return (await status(client))["engine"]["stats"]["context_blocks"]


async def ask_with_block(client, uri: str, line: int, character: int,
                         engine: HostileEngine) -> str:
    """Ask once (the block for this place is chosen meanwhile), wait until a new block is
    in use, ask again; the prompt of that second request."""
    before = await blocks(client)
    await inline(client, uri, line, character)

    async def new_block():
        return await blocks(client) > before
    await until(new_block, "a context block in use")
    await inline(client, uri, line, character)
    return prompts(engine)[-1]


async def test_workspace_folders_added_and_removed(lsp: StartLsp, isolated_env, tmp_path):
    first = write(tmp_path / "first", {"pkg/__init__.py": "", "pkg/main.py": MAIN,
                                       "pkg/util.py": "def alpha_marker_function(items):\n"
                                                      "    return len(items)\n"})
    second = write(tmp_path / "second", {"lib/__init__.py": "", "lib/main.py": MAIN,
                                         "lib/util.py": "def beta_marker_function(items):\n"
                                                        "    return list(items)\n"})
    with HostileEngine() as engine:
        client = await lsp(env(isolated_env, engine), folders=[first])
        await wait_for_state(client, "ready")
        await indexed(client, 3)
        main = (first / "pkg/main.py").as_uri()
        open_doc(client, main, MAIN)
        prompt = await ask_with_block(client, main, 4, 16, engine)
        assert "def alpha_marker_function(items):" in prompt
        assert "# pkg/util.py" in prompt  # named by its path in the folder
        snap = await status(client)
        assert snap["engine"]["context"]["last_prompt"]["files"] == ["pkg/util.py"]

        # The folder goes: its files leave every later prompt. Another one comes.
        client.workspace_did_change_workspace_folders(types.DidChangeWorkspaceFoldersParams(
            event=types.WorkspaceFoldersChangeEvent(
                added=[types.WorkspaceFolder(uri=second.as_uri(), name="second")],
                removed=[types.WorkspaceFolder(uri=first.as_uri(), name="first")])))
        await until(lambda: _folder_indexed(client, 3), "the new folder indexed")
        sent = len(prompts(engine))
        await inline(client, main, 4, 16)
        await asyncio.sleep(1.0)  # a block chosen now would hold nothing of the first folder
        await inline(client, main, 4, 15)
        assert all("alpha_marker_function" not in p for p in prompts(engine)[sent:])

        other = (second / "lib/main.py").as_uri()
        open_doc(client, other, MAIN)
        prompt = await ask_with_block(client, other, 4, 16, engine)
        assert "def beta_marker_function(items):" in prompt
        assert "alpha_marker_function" not in prompt


async def _folder_indexed(client, files: int) -> bool:
    work = (await status(client))["engine"]["context"]["workspace"]
    return work["state"] == "ready" and work["folders"] == 1 and work["files"] == files


async def test_an_open_buffer_wins_over_the_file_on_disk(lsp: StartLsp, isolated_env, tmp_path):
    root = write(tmp_path / "ws", {"pkg/__init__.py": "", "pkg/main.py": MAIN,
                                   "pkg/util.py": "def disk_only_name(items):\n    pass\n"})
    with HostileEngine() as engine:
        client = await lsp(env(isolated_env, engine), folders=[root])
        await wait_for_state(client, "ready")
        await indexed(client, 3)
        # The user edits util.py and has not saved it.
        open_doc(client, (root / "pkg/util.py").as_uri(),
                 "def buffer_only_name(items):\n    pass\n")
        main = (root / "pkg/main.py").as_uri()
        open_doc(client, main, MAIN)
        prompt = await ask_with_block(client, main, 4, 16, engine)
        assert "def buffer_only_name(items):" in prompt
        assert "disk_only_name" not in prompt
        # After `util.` the suggestion is kept on util's names (the buffer's): llama-server
        # gets them as a grammar.
        body = [b for b in engine.posted("/completion") if b.get("stream") is not False][-1]
        assert body["grammar"].startswith('root ::= ("buffer_only_name") ')


MARKERS = ("ENV_SECRET_MARKER_7F3", "IGNORED_MARKER_51C", "OUTSIDE_MARKER_9D2",
           "KEY_MARKER_44B")


async def test_secrets_ignored_files_and_symlinks_out_never_reach_a_prompt(
        lsp: StartLsp, isolated_env, tmp_path):
    outside = write(tmp_path / "outside", {
        "outside_mod.py": "def outside_helper(items):\n    return 'OUTSIDE_MARKER_9D2'\n"})
    # The lines above the cursor name what each planted file holds, so that similarity
    # alone would pick them if they were read.
    main = ("import ignored_mod\nfrom linked import outside_mod\nfrom . import util\n\n\n"
            "def run(items):\n    # ignored_helper outside_helper API_TOKEN legit_helper\n"
            "    return util.")
    root = write(tmp_path / "ws", {
        "pkg/__init__.py": "", "pkg/main.py": main,
        "pkg/util.py": "def legit_helper(items):\n    return items\n",
        ".env": "API_TOKEN=ENV_SECRET_MARKER_7F3\n",
        "pkg/.env.local": "API_TOKEN=ENV_SECRET_MARKER_7F3\n",
        "deploy.key": "KEY_MARKER_44B\n",
        ".gitignore": "ignored_mod.py\n",
        "pkg/ignored_mod.py": "def ignored_helper(items):\n    return 'IGNORED_MARKER_51C'\n",
    })
    os.symlink(outside, root / "pkg" / "linked")
    with HostileEngine() as engine:
        client = await lsp(env(isolated_env, engine), folders=[root])
        await wait_for_state(client, "ready")
        work = await indexed(client, 3)
        assert work["files"] == 3  # __init__, main, util: nothing else was read
        # The editor has the secret open too: still never in a prompt.
        open_doc(client, (root / ".env").as_uri(), "API_TOKEN=ENV_SECRET_MARKER_7F3\n",
                 language="dotenv")
        uri = (root / "pkg/main.py").as_uri()
        open_doc(client, uri, main)
        prompt = await ask_with_block(client, uri, 7, 16, engine)
        assert "def legit_helper(items):" in prompt  # context works here
        for sent in prompts(engine):
            for marker in MARKERS:
                assert marker not in sent


async def test_a_huge_tree_is_indexed_within_the_cap_while_completions_answer(
        lsp: StartLsp, isolated_env, tmp_path):
    root = tmp_path / "huge"
    for i in range(50_000):
        folder = root / f"d{i // 500:03d}"
        if i % 500 == 0:
            folder.mkdir(parents=True)
        (folder / f"m{i:05d}.py").write_text(f"def function_{i}(value):\n    return value\n")
    write(root, {"main.py": "def run(items):\n    return "})
    with HostileEngine() as engine:
        client = await lsp(env(isolated_env, engine, HELIOS_CONTEXT_MAX_FILES="3000"),
                           folders=[root])
        await wait_for_state(client, "ready")
        uri = (root / "main.py").as_uri()
        open_doc(client, uri, "def run(items):\n    return ")
        answered_while_indexing = 0
        deadline = time.monotonic() + 300
        while True:
            work = (await status(client))["engine"]["context"]["workspace"]
            started = time.monotonic()
            result = await inline(client, uri, 1, 11)
            assert result.items and time.monotonic() - started < 5.0
            if work["state"] != "ready":
                answered_while_indexing += 1
            elif work["files"]:
                break
            assert time.monotonic() < deadline, work
        assert answered_while_indexing > 0
        assert work["files"] == 3000 and work["skipped_cap"] > 0, work


async def test_watched_file_changes_are_picked_up(lsp: StartLsp, isolated_env, tmp_path):
    root = write(tmp_path / "ws", {"pkg/__init__.py": "", "pkg/main.py": MAIN,
                                   "pkg/util.py": "def before_change_name(items):\n    pass\n"})
    registrations: list[types.Registration] = []
    with HostileEngine() as engine:
        client = await lsp(env(isolated_env, engine), initialize=False)

        @client.feature(types.CLIENT_REGISTER_CAPABILITY)
        def register(params: types.RegistrationParams) -> None:
            registrations.extend(params.registrations)

        await client.initialize_session(types.InitializeParams(
            capabilities=capabilities(watched_files=True), initialization_options=None,
            workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name="ws")]))
        await wait_for_state(client, "ready")
        await indexed(client, 3)
        main = (root / "pkg/main.py").as_uri()
        open_doc(client, main, MAIN)
        prompt = await ask_with_block(client, main, 4, 16, engine)
        assert "before_change_name" in prompt
        assert [r.method for r in registrations] == [types.WORKSPACE_DID_CHANGE_WATCHED_FILES]

        # util.py changes on disk (a git checkout); the editor reports it.
        (root / "pkg/util.py").write_text("def after_change_name(items):\n    pass\n")
        client.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(changes=[
            types.FileEvent(uri=(root / "pkg/util.py").as_uri(),
                            type=types.FileChangeType.Changed)]))
        before = await blocks(client)
        # The user types and pauses: the block is chosen again, with the new outline.
        edit(client, main, 2, (4, 16), (4, 16), "a")

        async def new_block():
            return await blocks(client) > before
        await until(new_block, "a new block after the change")
        await inline(client, main, 4, 17)
        assert "after_change_name" in prompts(engine)[-1]
        assert "before_change_name" not in prompts(engine)[-1]


@pytest.mark.parametrize("setting", [False, {"enabled": False}])
async def test_context_off_sends_no_other_file(lsp: StartLsp, isolated_env, tmp_path, setting):
    root = write(tmp_path / "ws", {"pkg/__init__.py": "", "pkg/main.py": MAIN,
                                   "pkg/util.py": "def never_sent_name(items):\n    pass\n"})
    with HostileEngine() as engine:
        client = await lsp(env(isolated_env, engine), folders=[root],
                           init_options={"context": setting})
        await wait_for_state(client, "ready")
        main = (root / "pkg/main.py").as_uri()
        open_doc(client, main, MAIN)
        await inline(client, main, 4, 16)
        await asyncio.sleep(1.5)
        await inline(client, main, 4, 15)
        snap = await status(client)
        assert snap["engine"]["context"] == {"enabled": False}
        assert all("never_sent_name" not in p for p in prompts(engine))
