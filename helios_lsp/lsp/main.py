"""`helios lsp`: the language server on stdio and the HTTP sidecar in one event loop.

    run(settings, http)
      └ asyncio.run(serve(...))
          ├ engine load        (background task; completions are empty until it is ready)
          ├ HTTP sidecar       (started from `initialize`, once the client's settings are known)
          └ pygls message loop (pygls.io_.run_async on stdin; frames written to the real stdout)
        finally: cancel requests, stop HTTP, free the model

The process ends on LSP `exit`, on stdin EOF (the editor went away) or on SIGTERM/SIGINT.

stdout belongs to JSON-RPC: the protocol writes to a duplicate of file descriptor 1, and
descriptor 1 itself (and `sys.stdout`) is pointed at stderr, so whatever a library prints,
from Python or from native code, cannot break a frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, BinaryIO

from helios_lsp.settings import Settings

log = logging.getLogger(__name__)


class ThreadedReader:
    """pygls' async reader interface over a blocking stream, read by one daemon thread.

    A daemon thread rather than an executor: after `exit` the process must not wait for
    the client to close stdin. The stream is a private duplicate of stdin, so interpreter
    shutdown never tries to close a stream this thread is blocked on."""

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self._calls: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def _call(self, fn: Callable[..., bytes], *args: Any) -> asyncio.Future[bytes]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="helios-stdin", daemon=True)
            self._thread.start()
        self._calls.put((fn, args, future, loop))
        return future

    def _work(self) -> None:
        while True:
            fn, args, future, loop = self._calls.get()
            try:
                data, error = fn(*args), None
            except Exception as exc:  # a broken stdin ends the session like EOF
                data, error = b"", exc
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle, future, data, error)

    def readline(self) -> asyncio.Future[bytes]:
        return self._call(self._stream.readline)

    def readexactly(self, n: int) -> asyncio.Future[bytes]:
        return self._call(self._stream.read, n)


def _settle(future: asyncio.Future[bytes], data: bytes, error: Exception | None) -> None:
    if future.done():
        return
    if error is not None:
        log.warning("reading stdin failed: %s", error)
    future.set_result(data)


class FrameWriter:
    """pygls' writer interface over the protocol's private stdout."""

    def __init__(self, stream: BinaryIO):
        self._stream = stream

    def write(self, data: bytes) -> None:
        self._stream.write(data)
        self._stream.flush()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._stream.flush()


@contextlib.contextmanager
def protocol_stdio() -> Any:
    """(reader stream, writer stream) for the protocol; stdout goes to stderr meanwhile."""
    sys.stdout.flush()
    in_fd, out_fd = os.dup(0), os.dup(1)
    saved_stdout_fd = os.dup(1)
    os.dup2(2, 1)
    saved_stdout = sys.stdout
    sys.stdout = sys.stderr
    reader = open(in_fd, "rb")  # noqa: SIM115 (lives as long as the session)
    writer = open(out_fd, "wb")  # noqa: SIM115
    try:
        yield reader, writer
    finally:
        with contextlib.suppress(OSError):
            writer.close()
        sys.stdout = saved_stdout
        os.dup2(saved_stdout_fd, 1)
        os.close(saved_stdout_fd)
        # The reader stays open: its thread may still be blocked in read().


async def serve(settings: Settings, *, http: bool, stdin: BinaryIO, stdout: BinaryIO) -> int:
    # Imported here, once stdout is redirected: nothing printed while importing llama.cpp,
    # pygls or aiohttp can reach the protocol's stdout.
    from pygls.io_ import run_async

    from helios_lsp.engine import Engine
    from helios_lsp.lsp.server import create_server

    engine = Engine(settings)
    server = create_server(settings, engine, http=http)
    server.protocol.set_writer(FrameWriter(stdout))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, server.request_stop, 0)

    server.start_loading()
    messages = asyncio.create_task(run_async(
        stop_event=threading.Event(), reader=ThreadedReader(stdin), protocol=server.protocol,
        logger=logging.getLogger("pygls.io"), error_handler=server.report_server_error,
    ))
    stop = asyncio.create_task(server.stop_requested.wait())
    try:
        done, _ = await asyncio.wait({messages, stop}, return_when=asyncio.FIRST_COMPLETED)
        if messages in done:
            if messages.exception() is not None:
                log.error("the message loop failed: %r", messages.exception())
            else:
                log.info("stdin closed: stopping")
            server.request_stop(0)
        else:
            log.info("exit requested")
    finally:
        for task in (messages, stop):
            task.cancel()
        await server.release()
    return server.exit_code or 0


def run(settings: Settings, http: bool) -> int:
    with protocol_stdio() as (stdin, stdout):
        try:
            return asyncio.run(serve(settings, http=http, stdin=stdin, stdout=stdout))
        except KeyboardInterrupt:
            return 130
