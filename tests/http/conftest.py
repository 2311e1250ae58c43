"""Real `helios serve` processes on free ports, and a small HTTP client that controls every
header and can leave a request hanging (to disconnect it, or to read its answer later)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.conftest import free_port

STARTUP_SECONDS = 180  # importing llama.cpp and loading on a busy 2-core machine
T = TypeVar("T")
Headers = Mapping[str, str | None] | Sequence[tuple[str, str]]


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.body[:300]!r})"


def encode_request(method: str, path: str, body: bytes | None, headers: Headers,
                    port: int) -> bytes:
    """The request's bytes. Host defaults to 127.0.0.1:port; a header given as None is left
    out; a list of pairs is sent as is (e.g. a duplicate Host)."""
    if isinstance(headers, Mapping):
        merged: dict[str, str | None] = {"Host": f"127.0.0.1:{port}", **headers}
        pairs = [(k, v) for k, v in merged.items() if v is not None]
    else:
        pairs = list(headers)
    if body is not None:
        pairs.append(("Content-Length", str(len(body))))
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in pairs)
    return head.encode("latin-1") + b"\r\n" + (body or b"")


def read_reply(sock: socket.socket) -> Reply:
    resp = http.client.HTTPResponse(sock, method="GET")
    resp.begin()
    try:
        return Reply(resp.status, resp.headers, resp.read())
    finally:
        resp.close()


@dataclass
class Server:
    proc: subprocess.Popen[str]
    port: int
    log_path: Path
    stdout_lines: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- requests ---------------------------------------------------------------------

    def send(self, method: str, path: str, body: bytes | None = None,
             headers: Headers | None = None, timeout: float = 120) -> socket.socket:
        """Send a request and return the socket without reading the answer."""
        headers = {"Connection": "close"} if headers is None else headers
        if isinstance(headers, Mapping):
            headers = {"Connection": "close", **headers}
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        sock.sendall(encode_request(method, path, body, headers, self.port))
        return sock

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: Headers | None = None, timeout: float = 120) -> Reply:
        with self.send(method, path, body, headers, timeout) as sock:
            return read_reply(sock)

    def get(self, path: str, headers: Headers | None = None) -> Reply:
        return self.request("GET", path, headers=headers)

    def post(self, path: str, obj: Any = None, headers: Mapping[str, str | None] | None = None,
             client: str | None = None) -> Reply:
        """POST JSON. `client` sets X-Helios-Client (a fresh one by default, so tests do not
        spend each other's rate tokens)."""
        return self.request("POST", path, json_body(obj), json_headers(client, headers))

    def send_json(self, path: str, obj: Any, client: str | None = None) -> socket.socket:
        return self.send("POST", path, json_body(obj), json_headers(client))

    def status(self) -> dict[str, Any]:
        # A client id of its own each time: looking must not spend any test's rate tokens.
        reply = self.get("/status", headers={"X-Helios-Client": f"monitor-{uuid.uuid4().hex}"})
        assert reply.status == 200, reply
        return reply.json()

    def stats(self) -> dict[str, int]:
        return self.status()["engine"]["stats"]

    def wait_status(self, predicate: Callable[[dict[str, Any]], bool], what: str,
                    timeout: float = 120) -> dict[str, Any]:
        """Poll /status until `predicate` holds; returns that status."""
        last: dict[str, Any] = {}

        def probe() -> dict[str, Any] | None:
            last.update(self.status())
            return dict(last) if predicate(last) else None

        try:
            return wait_for(probe, what, timeout, interval=0.2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nlast /status: {json.dumps(last)}\n"
                                 f"server log:\n{self.log()[-3000:]}") from None

    # --- process ----------------------------------------------------------------------

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"server did not stop on {sig!r}; log:\n{self.log()}") from None


def json_body(obj: Any) -> bytes:
    return obj if isinstance(obj, bytes) else json.dumps(obj).encode()


def json_headers(client: str | None = None,
                 extra: Mapping[str, str | None] | None = None) -> dict[str, str | None]:
    return {"Content-Type": "application/json",
            "X-Helios-Client": client or f"test-{uuid.uuid4().hex[:12]}", **(extra or {})}


def wait_for(probe: Callable[[], T | None], what: str, timeout: float,
             interval: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def server_env(tmp: Path, **helios: str) -> dict[str, str]:
    """os.environ without HELIOS_*, an empty Ollama store, then `HELIOS_<KEY>=value`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELIOS_")}
    env["OLLAMA_MODELS"] = str(tmp / "ollama-empty")
    env["PYTHONUNBUFFERED"] = "1"
    env["HELIOS_SHARE"] = "false"  # each server holds its own model (tests/shared: sharing)
    env.update({f"HELIOS_{k.upper()}": v for k, v in helios.items()})
    return env


def launch(tmp: Path, args: Sequence[str] = (), stderr: Any = None, **helios: str) -> Server:
    """Start `helios serve --port N` (not waiting for anything).

    One llama.cpp thread unless a test says otherwise: with as many threads as cores, any
    other load on the machine (a parallel build, another test run) makes each token wait for
    a descheduled thread, and a 1 s completion takes 10-20 s. These tests are about HTTP."""
    helios.setdefault("n_threads", "1")
    port = free_port()
    log_path = tmp / f"serve-{port}.log"
    log_file = open(log_path, "w")  # noqa: SIM115 - the process writes it until it exits
    proc = subprocess.Popen(
        [sys.executable, "-m", "helios_lsp", "serve", "--port", str(port), *args],
        env=server_env(tmp, **helios), stdout=subprocess.PIPE,
        stderr=log_file if stderr is None else stderr, text=True,
    )
    log_file.close()
    server = Server(proc, port, log_path)

    def collect() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            server.stdout_lines.append(line)

    threading.Thread(target=collect, daemon=True).start()
    return server


def health(server: Server) -> Reply | None:
    try:
        return server.get("/health")
    except OSError:
        assert server.alive(), f"server exited with {server.proc.returncode}:\n{server.log()}"
        return None


def start(tmp: Path, expect: str = "healthy", **helios: str) -> Server:
    """Launch and wait until /health says `expect` and the listening line is printed."""
    server = launch(tmp, **helios)

    def ready() -> bool:
        reply = health(server)
        return (reply is not None and reply.json()["status"] == expect
                and bool(server.stdout_lines))

    try:
        wait_for(ready, f"/health to say {expect}", STARTUP_SECONDS, interval=0.1)
    except BaseException:
        server.stop(signal.SIGKILL)
        raise
    return server


@pytest.fixture(scope="session")
def embedded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The embedded model, as `make serve` runs it. Prompt evaluation in small chunks, so a
    cancelled job stops within a few milliseconds of prompt work."""
    server = start(tmp_path_factory.mktemp("embedded"), eval_chunk="32")
    yield server
    assert server.stop() == 0, server.log()


@pytest.fixture(scope="module")
def tiny_server(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[Server]:
    """A tiny random model: instant, meaningless completions (for validation and the guard).
    Its rate limit is out of the way: these tests send many requests at once, and on a fast
    machine they would meet the per-address budget (test_limits.py has its own servers)."""
    server = start(tmp_path_factory.mktemp("tiny"), model=str(tiny_model),
                   rate_limit="1000", rate_burst="10000")
    yield server
    assert server.stop() == 0, server.log()


def long_code(tag: str, lines: int) -> str:
    """Python code that makes a long prompt (~22 tokens a line) never seen before."""
    return "".join(f"value_{tag}_{i} = compute_{i}(alpha_{i}, beta_{i})  # step {i} of {tag}\n"
                   for i in range(lines))


def completion(code: str, **fields: Any) -> dict[str, Any]:
    body = {"code": code, "language": "python", "position": position_at(code),
            "filename": "example.py"}
    body.update(fields)
    return body


def position_at(code: str) -> dict[str, int]:
    lines = code.split("\n")
    return {"line": len(lines) - 1, "character": len(lines[-1])}


def write_nan_model(path: Path) -> Path:
    """A tiny model that loads but whose every logit is NaN: sampling it fails (a real
    COMPLETION_FAILED from a real server)."""
    import numpy as np
    from gguf import GGUFReader

    from tests.gguf_factory import write_tiny_model

    write_tiny_model(path)
    reader = GGUFReader(path, "r+")
    for tensor in reader.tensors:
        if tensor.name == "output_norm.weight":
            tensor.data[:] = np.nan
    del reader  # flushes the memory map
    return path
