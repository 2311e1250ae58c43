"""A raw-bytes client for `helios lsp`: writes whatever bytes a test wants (malformed frames
and messages that pytest-lsp's typed client cannot send) and reads the answers.

    server = RawServer.start(env)
    server.send_bytes(b"Content-Length: 99999999999999999999\\r\\n\\r\\n{}")
    answer = server.request("shutdown")           # {"jsonrpc": "2.0", "id": ..., "result": null}
    server.close()                                # shutdown + exit (or kill); stderr in .log()
"""

from __future__ import annotations

import contextlib
import itertools
import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

SERVER = [sys.executable, "-m", "helios_lsp", "lsp", "--no-http"]
TIMEOUT = 30.0


def frame(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def encode(message: dict[str, Any]) -> bytes:
    return frame(json.dumps(message).encode())


class RawServer:
    def __init__(self, proc: subprocess.Popen[bytes], stderr_path: Path):
        self.proc = proc
        self.stderr_path = stderr_path
        self.messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.unmatched: list[dict[str, Any]] = []  # messages read while waiting for others
        self._ids = itertools.count(1000)
        threading.Thread(target=self._read, daemon=True).start()

    @classmethod
    def start(cls, env: dict[str, str], stderr_path: Path) -> RawServer:
        stderr = stderr_path.open("wb")
        proc = subprocess.Popen(SERVER, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=stderr, env=env)
        stderr.close()
        return cls(proc, stderr_path)

    # --- reading ------------------------------------------------------------------

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        try:
            while True:
                length = None
                while True:
                    line = out.readline()
                    if not line:
                        return
                    if not line.strip():
                        break
                    name, _, value = line.decode("ascii").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                assert length is not None, "the server sent a frame without Content-Length"
                self.messages.put(json.loads(out.read(length)))
        finally:
            self.messages.put(None)

    def next_message(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        message = self.messages.get(timeout=timeout)
        assert message is not None, f"the server closed stdout (exit {self.proc.poll()})"
        return message

    def response(self, msg_id: Any, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The response to `msg_id`; notifications and other responses are kept aside."""
        for i, message in enumerate(self.unmatched):
            if "method" not in message and message.get("id") == msg_id:
                return self.unmatched.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no answer to {msg_id!r} within {timeout} s"
            try:
                message = self.next_message(remaining)
            except queue.Empty:
                continue
            if "method" not in message and message.get("id") == msg_id:
                return message
            self.unmatched.append(message)

    def responses(self) -> list[dict[str, Any]]:
        """Responses (not notifications) read so far and not yet claimed."""
        while True:
            try:
                message = self.messages.get_nowait()
            except queue.Empty:
                break
            if message is not None:
                self.unmatched.append(message)
        return [m for m in self.unmatched if "method" not in m]

    # --- writing ------------------------------------------------------------------

    def send_bytes(self, data: bytes) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        stdin.write(data)
        stdin.flush()

    def send(self, message: dict[str, Any]) -> None:
        self.send_bytes(encode(message))

    def request(self, method: str, params: Any = None, *, timeout: float = TIMEOUT
                ) -> dict[str, Any]:
        msg_id = next(self._ids)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return self.response(msg_id, timeout)

    def notify(self, method: str, params: Any = None) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def initialize(self, **params: Any) -> dict[str, Any]:
        answer = self.request("initialize", {"processId": None, "rootUri": None,
                                             "capabilities": {}, **params})
        assert "result" in answer, answer
        self.notify("initialized", {})
        return answer

    def status(self) -> dict[str, Any]:
        answer = self.request("workspace/executeCommand", {"command": "helios.status"})
        assert "result" in answer, answer
        return answer["result"]

    # --- end ------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self, timeout: float = 20.0) -> int:
        """shutdown + exit; kill if the server does not end. The exit code."""
        if self.alive:
            with contextlib.suppress(Exception):
                self.request("shutdown", timeout=timeout)
                self.notify("exit")
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        if self.alive:
            self.proc.kill()
        code = self.proc.wait()
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        return code

    def log(self) -> str:
        return self.stderr_path.read_text("utf-8", errors="replace")
