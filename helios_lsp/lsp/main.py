"""`helios lsp`: the language server on stdio and the HTTP sidecar in one event loop.

    run(settings, http)
      └ asyncio.run(serve(...))
          ├ engine load        (background task; completions are empty until it is ready)
          ├ HTTP sidecar       (started from `initialize`, once the client's settings are known)
          └ message loop       (read_messages: framing.FrameReader on stdin, each frame to
                                the protocol's handle_frame; frames written to the real stdout)
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
from typing import TYPE_CHECKING, Any, BinaryIO

from helios_lsp.lsp.framing import FrameReader
from helios_lsp.lsp.logs import Throttle, escape_pygls_logs
from helios_lsp.settings import Settings

if TYPE_CHECKING:
    from helios_lsp.lsp.jsonrpc import StrictProtocol

log = logging.getLogger(__name__)


class ThreadedReader:
    """Frames from a blocking stream, read by one daemon thread, one frame per request.

    A daemon thread rather than an executor: after `exit` the process must not wait for
    the client to close stdin. The stream is a private duplicate of stdin, so interpreter
    shutdown never tries to close a stream this thread is blocked on. Framing, limits and
    resynchronisation live in `framing.FrameReader` (pygls' reader stops at the first bad
    header, and the server took that for the end of input)."""

    def __init__(self, stream: BinaryIO):
        self._frames = FrameReader(stream, report=self._report)
        self._throttle = Throttle(log)
        self._calls: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def _report(self, reason: str) -> None:
        self._throttle.log(logging.WARNING, "stdin: %s", reason)

    def next_frame(self) -> asyncio.Future[bytes | None]:
        """The next frame's body; None at end of input (or when stdin broke)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes | None] = loop.create_future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="helios-stdin", daemon=True)
            self._thread.start()
        self._calls.put((future, loop))
        return future

    def _work(self) -> None:
        while True:
            future, loop = self._calls.get()
            try:
                data, error = self._frames.next_frame(), None
            except Exception as exc:  # a broken stdin ends the session like EOF
                data, error = None, exc
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle, future, data, error)


def _settle(future: asyncio.Future[bytes | None], data: bytes | None,
            error: Exception | None) -> None:
    if future.done():
        return
    if error is not None:
        log.warning("reading stdin failed: %s", error)
    future.set_result(data)


async def read_messages(reader: ThreadedReader, protocol: StrictProtocol) -> None:
    """The message loop: frame after frame until stdin ends. A bad frame or message is
    answered or skipped by the reader and the protocol, never taken for the end."""
    while (body := await reader.next_frame()) is not None:
        protocol.handle_frame(body)


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
    from helios_lsp.engine import Engine
    from helios_lsp.lsp.server import create_server

    engine = Engine(settings)
    server = create_server(settings, engine, http=http)
    server.protocol.set_writer(FrameWriter(stdout))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, server.request_stop, 0)

    messages = asyncio.create_task(read_messages(ThreadedReader(stdin), server.protocol))
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
    escape_pygls_logs()
    with protocol_stdio() as (stdin, stdout):
        try:
            return asyncio.run(serve(settings, http=http, stdin=stdin, stdout=stdout))
        except KeyboardInterrupt:
            return 130
