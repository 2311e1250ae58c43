"""A small JSON-RPC client for a language server on stdio, as an editor drives one.

A reader thread parses `Content-Length` frames; it stamps each response with the time it
was read, so latency does not include the time the benchmark takes to look at it. Requests
from the server (workspace/configuration, window/workDoneProgress/create, ...) are
answered at once with empty results (the workspace folders, when asked), as a minimal
editor would.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Any


@dataclass
class Pending:
    sent_at: float
    event: threading.Event = field(default_factory=threading.Event)
    received_at: float | None = None
    result: Any = None
    error: dict[str, Any] | None = None


class LspError(RuntimeError):
    pass


class LspClient:
    def __init__(self, stdin: IO[bytes], stdout: IO[bytes]):
        self._out = stdin
        self._in = stdout
        self._next_id = 0
        self._pending: dict[int, Pending] = {}
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self.notifications: list[tuple[str, Any]] = []
        # What `workspace/workspaceFolders` answers (None: no workspace open).
        self.workspace_folders: list[dict[str, str]] | None = None
        self.closed = threading.Event()
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()

    # --- wire -----------------------------------------------------------------------

    def _write(self, message: dict[str, Any]) -> None:
        body = json.dumps(message, separators=(",", ":")).encode("utf-8")
        frame = b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        with self._write_lock:
            self._out.write(frame)
            self._out.flush()

    def _read_message(self) -> dict[str, Any] | None:
        length = None
        while True:
            line = self._in.readline()
            if not line:
                return None
            line = line.strip()
            if not line:
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        if length is None:
            return None
        body = self._in.read(length)
        return json.loads(body)

    def _read_loop(self) -> None:
        try:
            while True:
                message = self._read_message()
                if message is None:
                    break
                now = time.perf_counter()
                if "id" in message and "method" not in message:  # a response
                    with self._lock:
                        pending = self._pending.pop(message["id"], None)
                    if pending is not None:
                        pending.received_at = now
                        pending.result = message.get("result")
                        pending.error = message.get("error")
                        pending.event.set()
                elif "id" in message:  # a request from the server
                    self._answer_server_request(message)
                else:
                    self.notifications.append((message.get("method", ""),
                                               message.get("params")))
        except (OSError, ValueError):
            pass
        finally:
            self.closed.set()
            with self._lock:
                for pending in self._pending.values():
                    pending.error = {"message": "server closed the connection"}
                    pending.event.set()
                self._pending.clear()

    def _answer_server_request(self, message: dict[str, Any]) -> None:
        result: Any = None
        if message.get("method") == "workspace/configuration":
            items = (message.get("params") or {}).get("items") or []
            result = [None for _ in items]
        elif message.get("method") == "workspace/workspaceFolders":
            result = self.workspace_folders
        with contextlib.suppress(OSError, ValueError):
            self._write({"jsonrpc": "2.0", "id": message["id"], "result": result})

    # --- API ------------------------------------------------------------------------

    def send_request(self, method: str, params: Any) -> tuple[int, Pending]:
        with self._lock:
            self._next_id += 1
            request_id = self._next_id
            pending = Pending(time.perf_counter())
            self._pending[request_id] = pending
        self._write({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        return request_id, pending

    def wait(self, pending: Pending, timeout: float) -> Any:
        if not pending.event.wait(timeout):
            raise LspError(f"no answer within {timeout:.0f} s")
        if pending.error is not None:
            raise LspError(str(pending.error.get("message", pending.error)))
        return pending.result

    def call(self, method: str, params: Any, timeout: float = 60) -> Any:
        _, pending = self.send_request(method, params)
        return self.wait(pending, timeout)

    def notify(self, method: str, params: Any) -> None:
        self._write({"jsonrpc": "2.0", "method": method, "params": params})

    def cancel(self, request_id: int) -> None:
        self.notify("$/cancelRequest", {"id": request_id})
