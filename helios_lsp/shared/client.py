"""The forwarder's side: an engine backend that sends completion work to the shared engine.

The Engine treats it like any engine server (core.py): type-ahead, supersession (a
superseded job's connection is closed, which cancels it there), the in-flight bound, the
context block (chosen here, where the documents are, and sent with each request) and
recovery stay in this process. What is different: the answer comes back already cleaned,
the shared engine widens its own quick windows, /status reports the shared engine's own
counts, and when the shared engine is gone this backend starts a new one and retries once,
so the editor never sees the switch as an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import aiohttp

from helios_lsp.engine.backend import BackendInfo, TaskBackend, Warmed
from helios_lsp.engine.errors import (
    CompletionFailedError,
    EngineOverloadedError,
    EngineUnreachableError,
    ModelError,
    ModelNotLoadedError,
)
from helios_lsp.engine.languages import Language
from helios_lsp.engine.postprocess import Cleaner
from helios_lsp.engine.stats import EngineStats
from helios_lsp.engine.types import CompletionInput, CompletionOutput, StopReason
from helios_lsp.settings import Settings
from helios_lsp.shared.paths import EnginePaths, engine_key, engine_settings

log = logging.getLogger(__name__)

# The engine binds its socket before it loads the model: this is only the process start.
_START_SECONDS = 30.0
# Loading a big model from a cold disk takes a while; the editor shows progress meanwhile.
_LOAD_SECONDS = 600.0
_LOG_KEEP_BYTES = 4 << 20
# Engines started in one wait for a loaded model before giving up (one that dies while
# loading every time is reported, not restarted forever).
_RESTARTS = 3
_BASE = "http://helios-engine"  # the host is ignored on a unix socket


def _settings_json(settings: Settings) -> str:
    """The engine's settings for its stdin, secrets included (a pipe to our own child)."""
    data = settings.model_dump(mode="json")
    for name in data:
        value = getattr(settings, name)
        if hasattr(value, "get_secret_value"):
            data[name] = value.get_secret_value()
    return json.dumps(data)


def _connectable(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(path)
        except OSError:
            return False
    return True


def _log_tail(path: os.PathLike[str], lines: int = 3) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            tail = f.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(tail[-lines:])


class SharedLoadError(ModelError):
    """The shared engine could not load the model: its full reason (this user's paths) and
    the one safe to show HTTP clients."""

    def __init__(self, health: dict[str, Any]):
        super().__init__(health.get("error") or "the shared engine could not load the model")
        self.public = health.get("public_error") or "the model could not be loaded"


class SharedEngine(TaskBackend):
    """A forwarder's view of the shared engine."""

    kind = "shared"
    widens_itself = True  # the shared engine warms the full window after a quick answer

    def __init__(self, settings: Settings, stats: EngineStats):
        super().__init__(engine_settings(settings), stats)
        self.paths = EnginePaths.of(engine_key(self.settings))  # raises if not private
        self.public_url = f"engine {self.paths.key}"
        self.engine_pid: int | None = None
        self._status: dict[str, Any] = {}  # the shared engine's last /status
        self._session: aiohttp.ClientSession | None = None
        self._attach: asyncio.Task[None] | None = None
        self._reviving: asyncio.Task[None] | None = None
        self._closed = False

    # --- connection ------------------------------------------------------------------

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=str(self.paths.socket)),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=_START_SECONDS))
        return self._session

    def _unreachable(self, why: str) -> EngineUnreachableError:
        return EngineUnreachableError(f"the shared engine is not reachable ({why})")

    async def _get(self, path: str, timeout: float = 5.0) -> Any:
        async with self._client().get(_BASE + path,
                                      timeout=aiohttp.ClientTimeout(total=timeout)) as r:
            if r.status != 200:
                raise self._unreachable(f"{path} answered {r.status}")
            return await r.json()

    async def connect(self, *, restart: bool = False) -> str:
        """Find the shared engine (start it if none runs), wait for its model, attach.
        `restart` (the user asked): the engine loads its model again, for every window.

        Raises ModelError when its model cannot be loaded, EngineUnreachableError when it
        cannot be started or reached."""
        if self._closed:
            raise self._unreachable("this process is stopping")
        await self._ensure_running()
        health = await self._wait_loaded()
        # A failed engine is asked once for a new try (its file may be fixed by now).
        if restart or health["state"] == "failed":
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                async with self._client().post(
                        _BASE + "/restart", timeout=aiohttp.ClientTimeout(total=_LOAD_SECONDS)):
                    pass
            health = await self._wait_loaded()
            if health["state"] == "failed":
                raise SharedLoadError(health)
        self.engine_pid = health.get("pid")
        self.info = BackendInfo(model=health.get("model") or "?",
                                n_ctx=health.get("n_ctx") or self.settings.n_ctx,
                                fim=health.get("fim"), slots=1,
                                prompt_mode=health.get("prompt_mode") or "")
        if self._attach is None or self._attach.done():
            self._attach = asyncio.ensure_future(self._stay_attached())
        return f"shared engine {self.paths.key}, pid {self.engine_pid}"

    async def _wait_loaded(self) -> dict[str, Any]:
        deadline = time.monotonic() + _LOAD_SECONDS
        restarts = 0
        while True:
            try:
                health = await self._get("/health")
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
                # Gone meanwhile (an engine being killed may still accept a connection for
                # a moment): start another, a few times, not forever.
                restarts += 1
                if restarts > _RESTARTS:
                    raise self._unreachable("it stopped while loading; see "
                                            f"{self.paths.log}") from None
                await asyncio.sleep(0.05 * restarts)
                await self._ensure_running()
                continue
            if health.get("state") in ("ready", "failed"):
                return health
            if time.monotonic() > deadline:
                raise self._unreachable("its model did not load in time")
            await asyncio.sleep(0.1)

    async def _ensure_running(self) -> None:
        if await asyncio.to_thread(_connectable, str(self.paths.socket)):
            return
        await asyncio.to_thread(self._start_locked)

    def _start_locked(self) -> None:
        """Start the engine unless one runs or is starting; whoever holds the spawn lock
        decides, so N windows opening at once start one engine."""
        fd = os.open(self.paths.spawn_lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            sock = str(self.paths.socket)
            if _connectable(sock):
                return
            proc = None
            deadline = time.monotonic() + _START_SECONDS
            while not _connectable(sock):
                # The lock held and no socket: one is starting, or one is still exiting
                # (then start ours once it is gone).
                if proc is None and not self._engine_alive():
                    proc = self._spawn()
                elif proc is not None and proc.poll() is not None:
                    raise self._unreachable(
                        f"it exited with {proc.returncode}: {_log_tail(self.paths.log)}")
                if time.monotonic() > deadline:
                    raise self._unreachable("it did not start in time")
                time.sleep(0.05)
        finally:
            os.close(fd)  # closing releases the lock

    def _engine_alive(self) -> bool:
        """Whether some process holds the engine's lock (it may be starting)."""
        fd = os.open(self.paths.lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def _spawn(self) -> subprocess.Popen[bytes]:
        with contextlib.suppress(OSError):  # keep the log from growing without end
            if self.paths.log.stat().st_size > _LOG_KEEP_BYTES:
                self.paths.log.unlink()
        log_fd = os.open(self.paths.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            # Its own session: an editor stopping this process's group does not stop it.
            proc = subprocess.Popen(
                [sys.executable, "-m", "helios_lsp", "engine-daemon"], stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL, stderr=log_fd, cwd="/", start_new_session=True,
                close_fds=True)
        finally:
            os.close(log_fd)
        assert proc.stdin is not None
        with contextlib.suppress(OSError):
            proc.stdin.write(_settings_json(self.settings).encode() + b"\n")
            proc.stdin.close()
        # Reap it when it exits, should this process still be alive then.
        threading.Thread(target=proc.wait, daemon=True).start()
        log.info("started the shared engine %s (pid %d; log %s)", self.paths.key, proc.pid,
                 self.paths.log)
        return proc

    async def _stay_attached(self) -> None:
        """Keep a connection open to the engine while this process lives (it counts its
        clients by these); when it drops, the engine is gone: start another one now, so
        the next keystroke finds a loaded model."""
        url = f"{_BASE}/attach"
        delay = 0.05
        while not self._closed:
            try:
                async with self._client().get(url) as response:
                    async for _ in response.content:
                        delay = 0.05  # attached: the next loss is news again
            except (aiohttp.ClientError, OSError):
                pass
            if self._closed:
                return
            log.warning("the shared engine went away; starting another")
            await asyncio.sleep(delay)
            try:
                await self._revive()
            except (EngineUnreachableError, ModelError) as exc:
                log.warning("%s", exc)
                # One that cannot start is not started again and again at full speed.
                delay = min(max(delay * 2, 1.0), 30.0)

    async def _revive(self) -> None:
        """One replacement at a time, however many requests noticed."""
        if self._reviving is None or self._reviving.done():
            self._reviving = asyncio.ensure_future(self._replace())
        await asyncio.shield(self._reviving)

    async def _replace(self) -> None:
        old = self.engine_pid
        await self.connect()
        if self.engine_pid != old:
            log.info("now on shared engine pid %s", self.engine_pid)

    async def close(self) -> None:
        await super().close()
        self._closed = True
        for task in (self._attach, self._reviving):
            if task is not None:
                task.cancel()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- work ---------------------------------------------------------------------------

    def _payload(self, inp: CompletionInput, **extra: Any) -> dict[str, Any]:
        return {"input": dataclasses.asdict(inp), **extra}

    async def run(self, inp: CompletionInput, lang: Language,
                  cleaner: Cleaner) -> CompletionOutput:
        """The shared engine's answer (cut and cleaned there)."""
        body = self._payload(inp)
        for attempt in (1, 2):
            try:
                async with self._client().post(_BASE + "/complete", json=body) as response:
                    data = await response.json()
                    return self._output(response.status, data)
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError) as exc:
                if attempt == 2:
                    raise self._unreachable(type(exc).__name__) from None
                log.info("the shared engine went away mid-request; retrying on a new one")
                await self._revive()
        raise AssertionError("unreachable")

    def _output(self, status: int, data: Any) -> CompletionOutput:
        if status != 200:
            message = (data.get("error") or {}).get("message", "") if isinstance(
                data, dict) else ""
            if status == 429:
                raise EngineOverloadedError(self.settings.max_in_flight)
            if status == 503:
                raise ModelNotLoadedError(message or "the shared engine is loading its model")
            raise CompletionFailedError(message or f"the shared engine answered {status}")
        reason = data.get("stop_reason")
        return CompletionOutput(
            text=data["text"], confidence=float(data["confidence"]),
            prompt_tokens=int(data.get("prompt_tokens", 0)),
            evaluated_tokens=int(data.get("evaluated_tokens", 0)),
            reused_tokens=int(data.get("reused_tokens", 0)),
            generated_tokens=int(data.get("generated_tokens", 0)),
            stop_reason=StopReason(reason) if reason else None,
            quick=bool(data.get("quick")), seconds=float(data.get("seconds", 0.0)),
            context_files=tuple(data.get("context_files") or ()),
            context_tokens=int(data.get("context_tokens", 0)))

    async def warm(self, inp: CompletionInput) -> Warmed:
        """Warm there and wait for it: a new context block is put in use once it is warm.
        (The shared engine warms only while it is idle, whichever window asks.)"""
        try:
            async with self._client().post(
                    _BASE + "/prefetch", json=self._payload(inp, wait=True),
                    timeout=aiohttp.ClientTimeout(total=_LOAD_SECONDS)) as response:
                data = await response.json()
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
            return Warmed(0, False)
        if not isinstance(data, dict):
            return Warmed(0, False)
        return Warmed(int(data.get("evaluated", 0)), bool(data.get("finished")))

    # --- reporting ------------------------------------------------------------------------

    async def refresh(self) -> None:
        """The shared engine's own counts, for this process's /status and helios.status."""
        try:
            status = await self._get("/status", timeout=2.0)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError, EngineUnreachableError):
            return
        if isinstance(status, dict):
            self._status = status

    def report(self) -> dict[str, Any]:
        """The shared engine's own report (what it runs on, its counts: the work is done
        there), with the sharing itself under `shared`."""
        engine = self._status.get("engine") if isinstance(self._status.get("engine"),
                                                            dict) else {}
        report = {**super().report(), "backend": self.settings.engine, **engine}
        for local in ("state", "in_flight", "max_in_flight", "load_error", "context",
                      "n_threads"):
            report.pop(local, None)  # this process's own, from the Engine
        report["shared"] = {"key": self.paths.key, "pid": self.engine_pid,
                            "clients": len(self._status.get("clients") or ()),
                            "log": str(self.paths.log)}
        report["this_window"] = dataclasses.asdict(self.stats)
        return report
