"""The shared engine: the one process per user and engine settings that holds the model.

Every `helios lsp` and `helios serve` (the forwarders) keeps its own documents, settings and
protocol work, and sends completion work here over a unix socket in the user's private
directory (shared/paths.py).

Why a process of its own rather than the first editor's language server: editors stop
their server's whole process group when a window closes (VS Code kills it, Neovim sends
SIGTERM), so a model held there would leave with that window and every other window would
pay a cold reload. This process runs in its own session, belongs to no window, and exits
once no forwarder has been attached for `share_idle` seconds (gopls' `-remote=auto`). If it
dies anyway (SIGKILL, OOM), the forwarders start another one; the lock decides which.

The private API (only this user may connect: the directory is 0700 and every request's
peer is checked with SO_PEERCRED):
- GET /health: state, model, error; GET /status: the engine, its clients, its memory;
- POST /complete: {"input": CompletionInput, "client_id", "document"} -> CompletionOutput;
  a forwarder that hangs up cancels the job (as over the public API);
- POST /prefetch: {"input": ..., "wait": bool}: warm a place (with "wait", answer once it
  is warm: {"evaluated", "finished"}); POST /restart: load the model again;
- GET /attach: held open by each forwarder while it lives (a line every few
  seconds); the clients `helios status` lists, and what keeps this process alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from helios_lsp.engine import (
    CompletionFailedError,
    CompletionInput,
    Engine,
    EngineOverloadedError,
    EngineState,
    JobCancelledError,
    ModelError,
    ModelNotLoadedError,
)
from helios_lsp.heap import settle
from helios_lsp.settings import Settings
from helios_lsp.shared.paths import EnginePaths, Peer, engine_key, peer_of

log = logging.getLogger("helios.shared")

HEARTBEAT_SECONDS = 5.0
_INPUT = TypeAdapter(CompletionInput)
PEER = web.AppKey("peer", object)


def _command_of(pid: int) -> str:
    """What a client is ("helios lsp", "helios serve --port 8000"), for `helios status`."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().decode("utf-8", "replace").split("\0")
    except OSError:
        return "?"
    words = [a for a in argv if a]
    if "helios_lsp" in words:  # python -m helios_lsp ...
        words = ["helios", *words[words.index("helios_lsp") + 1:]]
    elif len(words) > 1 and os.path.basename(words[1]) == "helios":  # python .../helios ...
        words = ["helios", *words[2:]]
    elif words:
        words[0] = os.path.basename(words[0])
    return " ".join(words)[:80]


@dataclass
class Client:
    pid: int
    command: str
    since: float = field(default_factory=time.time)


@dataclass
class Daemon:
    settings: Settings
    paths: EnginePaths
    engine: Engine
    started: float = field(default_factory=time.time)
    clients: dict[int, Client] = field(default_factory=dict)  # by attach connection id
    requests_by_pid: dict[int, int] = field(default_factory=dict)
    last_activity: float = field(default_factory=time.monotonic)
    active: int = 0  # requests being handled

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    def idle_for(self) -> float:
        if self.clients or self.active:
            return 0.0
        return time.monotonic() - self.last_activity


DAEMON = web.AppKey("daemon", Daemon)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@web.middleware
async def same_user(request: web.Request, handler: Any) -> web.StreamResponse:
    """Only this user's processes: the directory already keeps others out; this holds
    even if someone loosened its mode."""
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    peer = peer_of(sock) if sock is not None else None
    if peer is not None and peer.uid != os.getuid():
        log.warning("refused a request from uid %d", peer.uid)
        return _error(403, "FORBIDDEN", "this engine serves its own user only")
    # Without SO_PEERCRED (not Linux) the private directory is the guard; the pid is unknown.
    request[PEER] = peer or Peer(pid=0, uid=os.getuid())
    daemon = request.app[DAEMON]
    daemon.active += 1
    try:
        return await handler(request)
    finally:
        daemon.active -= 1
        daemon.touch()


def _state(engine: Engine) -> dict[str, Any]:
    snap = engine.snapshot()
    return {"state": engine.state.value, "model": engine.model_name,
            "error": engine.load_error, "public_error": engine.load_error_public,
            "n_ctx": snap.get("n_ctx"), "fim": snap.get("fim"),
            "prompt_mode": snap.get("prompt_mode"), "pid": os.getpid()}


async def health(request: web.Request) -> web.Response:
    return web.json_response(_state(request.app[DAEMON].engine))


def _rss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


async def status(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    clients = [{"pid": c.pid, "command": c.command, "since": c.since,
                "requests": daemon.requests_by_pid.get(c.pid, 0)}
               for c in daemon.clients.values()]
    return web.json_response({
        **_state(daemon.engine), "key": daemon.paths.key, "started": daemon.started,
        "rss_bytes": _rss_bytes(os.getpid()), "idle_exit_seconds": daemon.settings.share_idle,
        "log": str(daemon.paths.log), "clients": clients, "engine": daemon.engine.snapshot(),
    })


async def _body(request: web.Request) -> tuple[CompletionInput, dict[str, Any]]:
    try:
        data = await request.json()
        if not isinstance(data, dict):
            raise ValueError("not an object")
        return _INPUT.validate_python(data.get("input")), data
    except (ValueError, ValidationError) as exc:
        raise web.HTTPBadRequest(text=json.dumps({"error": {
            "code": "INVALID_REQUEST", "message": str(exc)[:300]}}),
            content_type="application/json") from None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


async def complete(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    inp, data = await _body(request)
    peer: Peer = request[PEER]
    daemon.requests_by_pid[peer.pid] = daemon.requests_by_pid.get(peer.pid, 0) + 1
    client_id = _str_or_none(data.get("client_id"))
    try:
        out = await daemon.engine.complete(
            inp, client_id=f"{peer.pid}/{client_id}" if client_id is not None else None,
            document=_str_or_none(data.get("document")))
    except EngineOverloadedError as exc:
        return _error(429, "OVERLOADED", str(exc))
    except JobCancelledError as exc:
        return _error(409, "CANCELLED", exc.reason)
    except ModelNotLoadedError as exc:
        return _error(503, "MODEL_NOT_LOADED", str(exc))
    except CompletionFailedError as exc:
        return _error(500, "COMPLETION_FAILED", str(exc))
    result = dataclasses.asdict(out)
    result["stop_reason"] = out.stop_reason.value if out.stop_reason else None
    return web.json_response(result)


async def prefetch(request: web.Request) -> web.Response:
    inp, data = await _body(request)
    engine = request.app[DAEMON].engine
    if data.get("wait") is True:  # a forwarder putting a new context block in use
        warmed = await engine.warm_now(inp)
        return web.json_response({"evaluated": warmed.evaluated, "finished": warmed.finished})
    return web.json_response({"accepted": engine.prefetch(inp)}, status=202)


async def restart(request: web.Request) -> web.Response:
    engine = request.app[DAEMON].engine
    with contextlib.suppress(ModelError):
        await engine.load()
    return web.json_response(_state(engine))


async def attach(request: web.Request) -> web.StreamResponse:
    """Held open by a forwarder for as long as it lives."""
    daemon = request.app[DAEMON]
    peer: Peer = request[PEER]
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await response.prepare(request)
    token = id(response)
    daemon.clients[token] = client = Client(peer.pid, _command_of(peer.pid))
    log.info("client attached: pid %d (%s); %d attached", peer.pid, client.command,
             len(daemon.clients))
    try:
        while True:
            await response.write(b"\n")
            await asyncio.sleep(HEARTBEAT_SECONDS)
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        del daemon.clients[token]
        daemon.touch()
        log.info("client detached: pid %d; %d attached", peer.pid, len(daemon.clients))
    return response


def create_app(daemon: Daemon) -> web.Application:
    app = web.Application(middlewares=[same_user],
                          client_max_size=daemon.settings.max_body_bytes)
    app[DAEMON] = daemon
    app.router.add_get("/health", health)
    app.router.add_get("/status", status)
    app.router.add_get("/attach", attach)
    app.router.add_post("/complete", complete)
    app.router.add_post("/prefetch", prefetch)
    app.router.add_post("/restart", restart)
    return app


def hold_lock(paths: EnginePaths) -> int | None:
    """The engine's lock, held until this process ends (the kernel frees it then, even on
    SIGKILL); None when another engine holds it."""
    fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.set_inheritable(fd, False)
    return fd


async def serve(settings: Settings, paths: EnginePaths) -> int:
    engine = Engine(settings)
    daemon = Daemon(settings, paths, engine)
    runner = web.AppRunner(create_app(daemon), handler_cancellation=True,
                           shutdown_timeout=0.5, access_log=None)
    await runner.setup()
    # A socket left by an engine that died: the lock is ours, so nobody is behind it.
    with contextlib.suppress(FileNotFoundError):
        paths.socket.unlink()
    site = web.UnixSite(runner, str(paths.socket))
    await site.start()
    log.info("shared engine %s listening (pid %d); exits %.0f s after its last client",
             paths.key, os.getpid(), settings.share_idle)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loading = asyncio.create_task(_load(engine))
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=min(1.0, settings.share_idle / 4))
            if daemon.idle_for() >= settings.share_idle:
                log.info("no client for %.0f s: exiting", settings.share_idle)
                break
    finally:
        # Unlink first: a forwarder arriving now starts a new engine instead of waiting on
        # this one.
        with contextlib.suppress(FileNotFoundError):
            paths.socket.unlink()
        await runner.cleanup()
        loading.cancel()
        await asyncio.gather(loading, return_exceptions=True)
        await engine.close()
    return 0


async def _load(engine: Engine) -> None:
    with contextlib.suppress(ModelError):  # the state says FAILED and why: forwarders ask
        await engine.load()
    if engine.state is EngineState.READY:
        log.info("model %s ready", engine.model_name)


def main() -> int:
    """`helios engine-daemon`: started by a forwarder, which writes the engine's settings
    as one JSON line on stdin (they may hold the engine server's key: not in argv)."""
    os.umask(0o077)  # the socket and the log: this user's only
    try:
        settings = Settings.model_validate_json(sys.stdin.readline())
    except ValidationError as exc:
        print(f"helios engine-daemon: bad settings on stdin: {exc}", file=sys.stderr)
        return 2
    from helios_lsp.cli import setup_logging
    from http_api.logs import install_repeat_filter
    from http_api.server import raise_nofile_limit

    setup_logging(settings.debug)
    raise_nofile_limit()
    install_repeat_filter()
    paths = EnginePaths.of(engine_key(settings))
    if hold_lock(paths) is None:
        log.info("another shared engine %s is running: nothing to do", paths.key)
        return 0
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # no terminal to lose
    settle()
    return asyncio.run(serve(settings, paths))
