"""The process around the API: loading, failing to load, reloading, disconnects, shutdown."""

from __future__ import annotations

import os
import pty
import select
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.gguf_factory import write_corrupt, write_tiny_model
from tests.http.conftest import (
    STARTUP_SECONDS,
    Reply,
    Server,
    completion,
    health,
    launch,
    long_code,
    read_reply,
    server_env,
    start,
    wait_for,
    write_nan_model,
)


def test_prints_one_line_with_the_url_when_ready(embedded_server: Server):
    assert embedded_server.stdout_lines == [f"Helios listening on {embedded_server.url}\n"]


def test_a_disconnecting_client_stops_its_generation(embedded_server: Server):
    before = embedded_server.stats()
    sock = embedded_server.send_json(
        "/complete", completion(long_code(uuid.uuid4().hex[:8], 60), max_tokens=1000))
    embedded_server.wait_status(
        lambda s: s["engine"]["busy"] and s["engine"]["stats"]["requests"] > before["requests"],
        "the completion to run")
    sock.close()

    def stopped(stats: dict[str, int]) -> int:
        # "cancelled" once it evaluated something; "dropped" if it had not reached the model
        return stats["cancelled"] + stats["dropped"] - before["cancelled"] - before["dropped"]

    status = embedded_server.wait_status(lambda s: stopped(s["engine"]["stats"]) > 0,
                                         "the cancellation")
    after = status["engine"]["stats"]
    assert stopped(after) == 1
    assert after["completed"] == before["completed"]
    assert after["generated_tokens"] - before["generated_tokens"] < 1000
    embedded_server.wait_status(lambda s: not s["engine"]["busy"] and s["in_flight"] == 0,
                                "the engine to be free")


def test_restart_while_requests_run(embedded_server: Server):
    """Requests admitted before the restart finish on the old model; requests during the
    reload get 503; restarts during the reload join it (one load)."""
    before = embedded_server.stats()
    tag = uuid.uuid4().hex[:8]
    running = embedded_server.send_json("/complete", completion(long_code(tag, 6), max_tokens=8))
    queued = embedded_server.send_json("/complete", completion(f"q_{tag} = ", max_tokens=4))
    embedded_server.wait_status(lambda s: s["in_flight"] == 2 and s["engine"]["busy"],
                                "two completions in flight")

    restart = embedded_server.post("/restart", {})
    assert restart.status == 200 and restart.json() == {"message": "Server restart initiated"}
    health = embedded_server.get("/health")
    assert health.status == 503
    assert health.json()["status"] == "loading" and health.json()["model_loaded"] is False
    during = embedded_server.post("/complete", completion(f"during_{tag} = "))
    assert during.status == 503
    assert during.json()["error_code"] == "MODEL_NOT_LOADED"
    assert "loading" in during.json()["detail"]
    assert embedded_server.post("/restart", {}).status == 200  # joins the reload

    with running, queued:
        for sock in (running, queued):
            reply = read_reply(sock)
            assert reply.status == 200, reply
            assert isinstance(reply.json()["suggestion"], str)
    status = embedded_server.wait_status(lambda s: s["model_loaded"], "the reload")
    assert status["engine"]["stats"]["loads"] == before["loads"] + 1
    assert embedded_server.get("/health").status == 200
    assert embedded_server.post("/complete", completion(f"after_{tag} = ",
                                                        max_tokens=3)).status == 200


@pytest.mark.parametrize("model", ["missing", "truncated"])
def test_without_a_usable_model_the_server_answers_503(tmp_path: Path, model: str):
    path = tmp_path / "models" / f"{model}.gguf"
    if model != "missing":
        write_corrupt(path, model)
    server = start(tmp_path, expect="unhealthy", model=str(path))
    try:
        health = server.get("/health")
        assert health.status == 503
        assert health.json()["status"] == "unhealthy"
        assert health.json()["model_loaded"] is False
        assert server.stdout_lines == [f"Helios listening on {server.url}\n"]

        reply = server.post("/complete", completion("x = "))
        assert reply.status == 503
        body = reply.json()
        assert body["error_code"] == "MODEL_NOT_LOADED"
        assert "POST /restart" in body["detail"]
        assert str(tmp_path) not in body["detail"] and ".gguf" not in body["detail"]

        status = server.status()
        assert status["model_loaded"] is False and status["model_name"] is None
        assert status["model_status"] == "failed"
        assert status["load_error"] and str(tmp_path) not in status["load_error"]
        assert str(tmp_path) not in server.get("/status").body.decode()

        assert server.post("/restart", {}).status == 200  # tries again, fails again
        server.wait_status(lambda s: s["model_status"] == "failed", "the second failure")
        assert server.alive()
        assert "model load failed" in server.log()  # the log has the full reason
    finally:
        assert server.stop() == 0


def test_a_failing_generation_is_a_500_and_the_server_goes_on(tmp_path: Path):
    server = start(tmp_path, model=str(write_nan_model(tmp_path / "nan.gguf")))
    try:
        before = server.stats()
        reply = server.post("/complete", completion("def f():\n    ", temperature=0.5))
        assert reply.status == 500, reply
        body = reply.json()
        assert set(body) == {"detail", "error_code", "timestamp"}
        assert body["error_code"] == "COMPLETION_FAILED"
        assert "Traceback" not in body["detail"] and str(tmp_path) not in body["detail"]
        assert server.stats()["failed"] == before["failed"] + 1
        assert server.get("/health").status == 200
        assert server.alive()
    finally:
        assert server.stop() == 0


def test_restart_re_resolves_helios_model(tmp_path: Path):
    """HELIOS_MODEL names a file that appears later: POST /restart loads it."""
    path = tmp_path / "later" / "model.gguf"
    server = start(tmp_path, expect="unhealthy", model=str(path))
    try:
        write_tiny_model(path, fim="codellama")
        assert server.post("/restart", {}).status == 200
        status = server.wait_status(lambda s: s["model_loaded"], "the model to load")
        assert status["model_name"] == "model.gguf"
        assert server.get("/health").status == 200
        assert server.post("/complete", completion("x = ", max_tokens=2)).status == 200
    finally:
        assert server.stop() == 0


def test_health_says_loading_while_the_model_loads(tmp_path: Path):
    """HTTP is up before the load starts: /health answers 503 "loading", then 200."""
    server = launch(tmp_path)

    def health() -> Reply | None:
        try:
            return server.get("/health")
        except OSError:
            return None

    try:
        first = wait_for(health, "the first /health answer", STARTUP_SECONDS, interval=0.02)
        assert first.status == 503
        assert first.json() == {"status": "loading", "model_loaded": False,
                                "server_version": "0.1.0", "uptime": first.json()["uptime"],
                                "detail": "the model is loading"}
        assert server.stdout_lines == []  # "listening" is printed when ready
        wait_for(lambda: (r := health()) is not None and r.status == 200, "healthy",
                 STARTUP_SECONDS, interval=0.1)
    finally:
        assert server.stop() == 0


def test_sigterm_lets_running_requests_finish_and_refuses_new_ones(tmp_path: Path):
    server = start(tmp_path)
    tag = uuid.uuid4().hex[:8]
    running = server.send_json("/complete", completion(long_code(tag, 6), max_tokens=8))
    server.wait_status(lambda s: s["in_flight"] == 1 and s["engine"]["busy"],
                       "the completion to run")
    server.proc.send_signal(signal.SIGTERM)

    def refused() -> object:
        reply = server.post("/complete", completion(f"new_{tag} = "))
        return reply if reply.status == 503 else None

    new = wait_for(refused, "new requests to be refused", 30)
    assert new.json()["error_code"] == "SHUTTING_DOWN"
    health = server.get("/health")
    assert health.status == 503 and health.json()["status"] == "stopping"
    with running:
        reply = read_reply(running)
    assert reply.status == 200, reply
    assert server.proc.wait(60) == 0
    assert "stopped" in server.log()


def test_sigint_stops_cleanly(tmp_path: Path, tiny_model: Path):
    server = start(tmp_path, model=str(tiny_model))
    assert server.stop(signal.SIGINT) == 0
    assert "Traceback" not in server.log()


def test_a_taken_port_is_an_error_not_a_hang(tmp_path: Path, tiny_model: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "helios_lsp", "serve", "--port", str(port)],
            env=server_env(tmp_path, model=str(tiny_model)), capture_output=True, text=True,
            timeout=STARTUP_SECONDS)
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert proc.stdout == ""


def test_binding_beyond_loopback_needs_allow_remote(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "helios_lsp", "serve", "--host", "0.0.0.0", "--port",
         str(free_port())],
        env=server_env(tmp_path), capture_output=True, text=True, timeout=STARTUP_SECONDS)
    assert proc.returncode == 2
    assert "HELIOS_ALLOW_REMOTE" in proc.stderr


def test_allow_remote_binds_with_a_warning(tmp_path: Path, tiny_model: Path):
    # Beyond loopback an API key is required too (tests/http/test_auth.py).
    server = launch(tmp_path, args=["--host", "0.0.0.0", "--allow-remote"],
                    model=str(tiny_model), api_key="k" * 32)
    try:
        wait_for(lambda: server.stdout_lines, "the listening line", STARTUP_SECONDS)
        assert server.stdout_lines == [f"Helios listening on http://0.0.0.0:{server.port}\n"]
        assert "reachable from other machines" in server.log()
        # Names other than localhost are still refused (DNS rebinding).
        reply = server.get("/health", headers={"Host": f"rebind.example:{server.port}"})
        assert reply.status == 403
    finally:
        assert server.stop() == 0


def test_load_progress_on_a_terminal(tmp_path: Path):
    """On a terminal, stderr shows the load going on; in a pipe, nothing of the kind."""
    controller, terminal = pty.openpty()
    try:
        server = launch(tmp_path, stderr=terminal)
    finally:
        os.close(terminal)
    seen = b""
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while b"Loading the model" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 1.0)
            if ready:
                seen += os.read(controller, 4096)
        assert b"Loading the model..." in seen
        wait_for(lambda: server.stdout_lines, "the listening line", STARTUP_SECONDS)
    finally:
        assert server.stop() == 0
        os.close(controller)


def test_stops_when_its_parent_process_exits(tmp_path: Path, tiny_model: Path):
    """An editor that starts `helios serve --parent-pid <its pid>` and crashes does not
    leave the model in memory."""
    editor = subprocess.Popen(["sleep", "300"])
    server = launch(tmp_path, args=["--parent-pid", str(editor.pid)], model=str(tiny_model))
    try:
        wait_for(lambda: (r := health(server)) is not None and r.status == 200,
                 "/health 200", STARTUP_SECONDS)
        time.sleep(1.5)  # a few checks of a living parent change nothing
        assert server.alive()
        editor.kill()
        editor.wait()  # reaped: the pid is gone, as when an editor dies
        assert server.proc.wait(30) == 0
        assert f"parent process {editor.pid} exited: stopping" in server.log()
        assert "Traceback" not in server.log()
    finally:
        editor.kill()
        server.stop(signal.SIGKILL)


def test_a_parent_pid_that_is_not_running_stops_it_at_once(tmp_path: Path, tiny_model: Path):
    gone = subprocess.Popen(["true"])
    gone.wait()
    proc = subprocess.run(
        [sys.executable, "-m", "helios_lsp", "serve", "--port", str(free_port())],
        env=server_env(tmp_path, model=str(tiny_model), parent_pid=str(gone.pid)),
        capture_output=True, text=True, timeout=STARTUP_SECONDS)
    assert proc.returncode == 0, proc.stderr
    assert f"parent process {gone.pid} is not running: stopping" in proc.stderr


def test_an_invalid_parent_pid_is_a_clear_error(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "helios_lsp", "serve", "--parent-pid", "0"],
        env=server_env(tmp_path), capture_output=True, text=True, timeout=STARTUP_SECONDS)
    assert proc.returncode == 2
    assert "invalid setting: HELIOS_PARENT_PID: Input should be greater than or equal to 1" in (
        proc.stderr)
    assert "Traceback" not in proc.stderr
