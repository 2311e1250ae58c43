"""One model per user and engine settings: every `helios lsp` / `helios serve` forwards to
one shared engine process (helios_lsp/shared). Real processes throughout: language servers
driven by pytest-lsp, `helios serve` over TCP, the engine over its unix socket."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys

from lsprotocol import types

from tests.conftest import free_port
from tests.lsp.conftest import inline, open_doc, wait_for_state
from tests.shared.conftest import (
    HELIOS,
    alive,
    engine_pids,
    helios_status,
    mapping,
    shared_env,
    wait_until,
    with_signal,
)

URI = "file:///tmp/shared/a.py"
CODE = "def add(a, b):\n    "


async def _ready_window(lsp, env, uri: str = URI, **kw):
    client = await lsp(env, **kw)
    await wait_for_state(client, "ready")
    open_doc(client, uri, CODE)
    return client


async def _served(client) -> int:
    """Completions this window's engine backend has answered (not from type-ahead)."""
    snap = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="helios.status"))
    stats = snap["engine"]["this_window"]  # `stats` are the shared engine's, for all windows
    return stats["completed"] - stats["typeahead_hits"]


def _pid(client) -> int:
    return client._server.pid


def _serve(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*HELIOS, "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _post(port: int, path: str, obj: object) -> tuple[int, dict]:
    body = json.dumps(obj).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, payload = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload or b"{}")


def _get(port: int, path: str) -> tuple[int, dict]:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                  .encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, payload = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload or b"{}")


def _healthy(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            return b'"model_loaded": true' in data
    except OSError:
        return False


async def test_three_windows_and_a_serve_hold_the_model_once(runtime, lsp, isolated_env,
                                                            model):
    env = shared_env(isolated_env, runtime, model)
    # Three windows opening at the same moment: the lock lets exactly one engine start.
    windows = await asyncio.gather(*(_ready_window(lsp, {**env, "HELIOS_PORT": str(free_port())})
                                     for _ in range(3)))
    port = free_port()
    serve = _serve(env, port)
    try:
        wait_until(lambda: _healthy(port), "helios serve to be healthy")
        for client in windows:
            result = await inline(client, URI, 1, 4)
            assert isinstance(result, types.InlineCompletionList)
        status, answer = _post(port, "/complete", {
            "code": CODE, "language": "python", "filename": "b.py",
            "position": {"line": 1, "character": 4}})
        assert status == 200 and "suggestion" in answer

        [engine] = engine_pids(runtime)
        assert mapping(model) == [engine], "only the shared engine maps the model file"
        for pid in (*map(_pid, windows), serve.pid):
            assert pid not in mapping(model)

        [shown] = helios_status(env)
        assert shown["running"] and shown["pid"] == engine and shown["state"] == "ready"
        clients = {c["pid"]: c for c in shown["clients"]}
        assert set(clients) == {*map(_pid, windows), serve.pid}
        assert "serve" in clients[serve.pid]["command"]
        assert all(c["requests"] >= 1 for c in clients.values()), clients
        assert shown["rss_bytes"] > 0
        text = subprocess.run([*HELIOS, "status"], env=env, capture_output=True, text=True,
                              timeout=60).stdout
        assert f"pid {engine}" in text and "clients: 4" in text

        # Each window's status describes the chain: the shared engine (pid), and the engine
        # it runs on (the in-process llama.cpp here), with the engine's own counts.
        snap = (await windows[0].workspace_execute_command_async(
            types.ExecuteCommandParams(command="helios.status")))["engine"]
        assert snap["backend"] == "local" and snap["shared"]["pid"] == engine
        assert snap["model_name"] and snap["n_ctx"] > 0
        assert snap["stats"]["completed"] >= 4, "the engine's count: every window's answers"
    finally:
        serve.terminate()
        serve.wait(30)


async def test_engine_killed_mid_typing_is_replaced_and_nobody_sees_an_error(
        runtime, lsp, isolated_env, model):
    env = shared_env(isolated_env, runtime, model)
    a = await _ready_window(lsp, {**env, "HELIOS_PORT": str(free_port())})
    b = await _ready_window(lsp, {**env, "HELIOS_PORT": str(free_port())})
    await inline(a, URI, 1, 4)
    [first] = engine_pids(runtime)

    for round_, sig in enumerate((signal.SIGKILL, signal.SIGTERM)):  # a crash, a clean exit
        old = engine_pids(runtime)
        before = [await _served(client) for client in (a, b)]
        with_signal(old[0], sig)
        wait_until(lambda old=old: not alive(old[0]), "the engine to go")
        # The very next keystrokes in both windows (new text: no type-ahead can answer
        # them): answered by the new engine, not failed.
        uri = f"file:///tmp/shared/round{round_}.py"
        for client in (a, b):
            open_doc(client, uri, f"def mul{round_}(a, b):\n    ")
        results = await asyncio.gather(inline(a, uri, 1, 4), inline(b, uri, 1, 4))
        assert all(isinstance(r, types.InlineCompletionList) for r in results)
        assert [await _served(client) for client in (a, b)] == [n + 1 for n in before]
        [new] = wait_until(lambda: engine_pids(runtime), "a new engine")
        assert new not in old and new != first
        assert mapping(model) == [new]
    shown = [m for client in (a, b) for m in client.messages]  # window/showMessage
    assert not [m for m in shown if m.type == types.MessageType.Error], shown
    for client in (a, b):
        snap = (await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="helios.status")))["engine"]
        assert snap["state"] == "ready"


async def test_first_window_closing_leaves_the_engine_to_the_others(runtime, lsp, isolated_env,
                                                                   model):
    env = shared_env(isolated_env, runtime, model)
    first = await _ready_window(lsp, {**env, "HELIOS_PORT": str(free_port())})
    [engine] = engine_pids(runtime)  # started by the first window
    second = await _ready_window(lsp, {**env, "HELIOS_PORT": str(free_port())})

    await first.shutdown_session()
    wait_until(lambda: not alive(_pid(first)), "the first window's server to exit")
    result = await inline(second, URI, 1, 4)
    assert isinstance(result, types.InlineCompletionList)
    assert engine_pids(runtime) == [engine], "the same engine, not a reload"
    [shown] = helios_status(env)
    assert [c["pid"] for c in shown["clients"]] == [_pid(second)]


def test_engine_exits_when_its_last_client_has_gone(isolated_env, runtime, model):
    env = shared_env(isolated_env, runtime, model, share_idle="1")
    port = free_port()
    serve = _serve(env, port)
    wait_until(lambda: _healthy(port), "helios serve to be healthy")
    [engine] = engine_pids(runtime)
    serve.terminate()
    assert serve.wait(30) == 0
    wait_until(lambda: not alive(engine), "the idle engine to exit", timeout=30)
    assert not list((runtime / "helios").glob("*.sock")), "its socket is removed"
    out = subprocess.run([*HELIOS, "status"], env=env, capture_output=True, text=True,
                         timeout=60).stdout
    assert "no shared engine is running" in out


def test_other_engine_settings_get_another_engine(isolated_env, runtime, model):
    env = shared_env(isolated_env, runtime, model)
    ports = free_port(), free_port()
    servers = [_serve({**env, "HELIOS_N_CTX": "1024"}, ports[0]),
               _serve({**env, "HELIOS_N_CTX": "512"}, ports[1])]
    try:
        for port in ports:
            wait_until(lambda port=port: _healthy(port), "helios serve to be healthy")
        shown = helios_status(env)
        assert len(shown) == 2 and all(e["running"] for e in shown)
        assert sorted(e["engine"]["n_ctx"] for e in shown) == [512, 1024]
        assert len(engine_pids(runtime)) == 2
    finally:
        for server in servers:
            server.terminate()
            server.wait(30)


async def test_no_share_holds_the_model_in_process(runtime, lsp, isolated_env, model):
    env = shared_env(isolated_env, runtime, model)
    by_flag = await _ready_window(lsp, {**env, "HELIOS_PORT": str(free_port())},
                                  args=["--no-share"])
    by_setting = await _ready_window(lsp, {**env, "HELIOS_PORT": str(free_port())},
                                     init_options={"share": False})
    assert not engine_pids(runtime)
    assert sorted(mapping(model)) == sorted([_pid(by_flag), _pid(by_setting)])
    for client in (by_flag, by_setting):
        assert isinstance(await inline(client, URI, 1, 4), types.InlineCompletionList)
    assert not (runtime / "helios").exists() or not list((runtime / "helios").glob("*.sock"))


def _as_nobody(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run Python `code` as another user (uid 65534): tests run as root here."""
    def drop() -> None:
        os.setgid(65534)
        os.setgroups([])
        os.setuid(65534)
    # The system Python: this venv lives where another user may not enter.
    python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    return subprocess.run([python, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60, preexec_fn=drop)


CONNECT = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1] if len(sys.argv) > 1 else {path!r})
except OSError as e:
    print("refused:", e.errno); sys.exit(0)
s.sendall(b"GET /health HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
print(s.recv(4096).decode().split("\\r\\n")[0])
"""


def test_another_user_can_neither_reach_nor_impersonate_the_engine(isolated_env, runtime,
                                                                    model, tmp_path):
    if os.getuid() != 0:
        import pytest

        pytest.skip("needs root to run a process as another user")
    env = shared_env(isolated_env, runtime, model)
    port = free_port()
    serve = _serve(env, port)
    try:
        wait_until(lambda: _healthy(port), "helios serve to be healthy")
        [sock] = (runtime / "helios").glob("*.sock")
        assert (runtime / "helios").stat().st_mode & 0o777 == 0o700
        # Another user cannot even reach the socket (the directory is private) ...
        out = _as_nobody(CONNECT.format(path=str(sock)), {"PATH": "/usr/bin"})
        assert out.stdout.startswith("refused: 13"), out  # EACCES
        # ... and if the directory were opened up, the engine itself refuses them.
        (runtime / "helios").chmod(0o755)
        (runtime).chmod(0o755)
        sock.chmod(0o777)
        out = _as_nobody(CONNECT.format(path=str(sock)), {"PATH": "/usr/bin"})
        assert out.stdout.startswith("HTTP/1.1 403"), out
    finally:
        serve.terminate()
        serve.wait(30)
    # A directory others may enter (someone may be waiting to impersonate the engine) is
    # not used: this process holds its own model instead.
    port = free_port()
    loose = _serve(env, port)
    try:
        wait_until(lambda: _healthy(port), "helios serve (not shared) to be healthy")
        assert loose.pid in mapping(model)
    finally:
        loose.terminate()
        loose.wait(30)
    assert b"not sharing the engine" in loose.stderr.read()


def test_restart_reloads_the_shared_model(isolated_env, runtime, model):
    """POST /restart (or the language server's restart command) in any window reloads the
    shared engine's model: the file may have been replaced."""
    env = shared_env(isolated_env, runtime, model)
    port = free_port()
    serve = _serve(env, port)
    try:
        wait_until(lambda: _healthy(port), "helios serve to be healthy")
        [before] = helios_status(env)
        assert before["engine"]["stats"]["loads"] == 1
        status, _ = _post(port, "/restart", {})
        assert status == 200
        wait_until(lambda: helios_status(env)[0]["engine"]["stats"]["loads"] == 2,
                   "the shared engine to load again")
        wait_until(lambda: _healthy(port), "helios serve to be healthy again")
        [after] = helios_status(env)
        assert after["pid"] == before["pid"] and after["state"] == "ready"
    finally:
        serve.terminate()
        serve.wait(30)


def test_status_shows_the_shared_engines_own_work_and_what_it_runs_on(isolated_env, runtime,
                                                                     model):
    """Issue 18: /status of a `helios serve` on the shared engine reported 0 quick answers,
    0 prefetches, 0 prefetch tokens while the engine behind it had done 15, 15 and 21,727.
    The user-facing /status shows the engine's own counts, what it runs on, and the share."""
    env = shared_env(isolated_env, runtime, model)
    port = free_port()
    serve = _serve(env, port)
    try:
        wait_until(lambda: _healthy(port), "helios serve to be healthy")
        # A long file at a cold place: answered from the quick window, then widened there.
        code = "".join(f"def function_number_{i}(argument):\n    return argument * {i}\n\n"
                       for i in range(150))
        status, _ = _post(port, "/complete", {
            "code": code, "language": "python", "filename": "long.py", "max_tokens": 4,
            "position": {"line": code.count("\n"), "character": 0}})
        assert status == 200

        def engine_stats() -> dict:
            _, body = _get(port, "/status")
            return body["engine"]

        done = wait_until(lambda: (e := engine_stats())["stats"]["prefetch_tokens"] > 0 and e,
                          "the shared engine to widen the quick window")
        [shared] = helios_status(env)
        assert done["stats"]["quick_answers"] == 1
        assert done["stats"]["prefetches"] >= 1
        assert done["stats"]["background_cpu_seconds"] > 0
        assert done["stats"]["answer_cpu_seconds"] > 0
        # What it runs on (the engine the user chose), and the share in between.
        assert done["backend"] == "local" and done["model_name"] == "shared-tiny.gguf"
        assert done["shared"]["key"] == shared["key"] and done["shared"]["pid"] == shared["pid"]
        assert done["n_ctx"] and done["prompt_mode"]
        # This window's own counts stay apart.
        assert done["this_window"]["requests"] == 1
    finally:
        serve.terminate()
        serve.wait(30)
