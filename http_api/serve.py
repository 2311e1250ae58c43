"""`helios serve`: the REST API alone, in its own event loop, owning the engine."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time

from helios_lsp.engine import Engine, ModelError
from helios_lsp.settings import Settings
from http_api.server import BindRefusedError, start_http

log = logging.getLogger("helios.serve")


def serve(settings: Settings) -> int:
    """Run until SIGINT or SIGTERM; the exit code for the CLI (which has raised the
    open-files limit and rate-limited the log already)."""
    return asyncio.run(_serve(settings))


async def _serve(settings: Settings) -> int:
    stop = asyncio.Event()

    def on_signal() -> None:
        if stop.is_set():  # a second Ctrl-C: the user does not want to wait
            log.warning("stopping now")
            os._exit(130)
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)

    engine = Engine(settings)
    try:
        # HTTP first, so /health answers 503 "loading" while the model loads.
        try:
            server = await start_http(engine, settings)
        except BindRefusedError as exc:
            log.error("%s", exc)
            return 2
        except OSError as exc:
            log.error("cannot listen on %s:%d: %s", settings.host, settings.port,
                      exc.strerror or exc)
            return 1
        loading = asyncio.create_task(_load(engine, server.url))
        watch = None
        if settings.parent_pid is not None:
            watch = asyncio.create_task(_watch_parent(settings.parent_pid, stop))
        await stop.wait()
        if watch is not None:
            watch.cancel()
        log.info("stopping: new requests get 503, requests in flight finish")
        await server.stop()
        loading.cancel()  # a load in progress still finishes in the engine's thread
        await asyncio.gather(loading, return_exceptions=True)
    finally:
        await engine.close()
    log.info("stopped")
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    return True


async def _watch_parent(pid: int, stop: asyncio.Event, every: float = 1.0) -> None:
    """Set `stop` once process `pid` is gone. A child of it is re-parented when it dies
    (while a dead parent may linger as a zombie), so that counts as gone too."""
    child_of_it = os.getppid() == pid
    if not _alive(pid):
        log.warning("parent process %d is not running: stopping", pid)
        stop.set()
        return
    while not stop.is_set():
        await asyncio.sleep(every)
        if not _alive(pid) or (child_of_it and os.getppid() != pid):
            log.warning("parent process %d exited: stopping", pid)
            stop.set()
            return


async def _load(engine: Engine, url: str) -> None:
    progress = asyncio.create_task(_progress()) if sys.stderr.isatty() else None
    try:
        await engine.load()
    except ModelError:
        if engine.retrying:
            log.error("no model yet: /complete answers 503 until the engine server answers "
                      "(Helios retries by itself)")
        else:
            log.error("no model loaded: /complete answers 503 until POST /restart loads one "
                      "(fix %s first)", engine.settings_to_fix)
    finally:
        if progress is not None:
            progress.cancel()
            await asyncio.gather(progress, return_exceptions=True)
    print(f"Helios listening on {url}", flush=True)


async def _progress() -> None:
    """Elapsed time on one terminal line while the model loads."""
    started = time.monotonic()
    try:
        while True:
            sys.stderr.write(f"\rLoading the model... {time.monotonic() - started:4.1f} s")
            sys.stderr.flush()
            await asyncio.sleep(0.25)
    finally:
        with contextlib.suppress(OSError):
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
