"""The job runner: one worker thread, a queue, supersession and cancellation.

It knows nothing about completions: the engine gives it functions to run on the thread
that owns the model (`Llama` is not thread-safe), and callers await the outcome from
the event loop, which never blocks.
- a cancelled job that is still queued never runs; a running one stops at its next check
  of `job.is_cancelled()`;
- a newer job with the same key (client, document) supersedes the older one: dropped at
  once if it is still queued, stopped at its next check if it runs;
- a background job (cache warming) runs only when nothing else waits, and any other job
  preempts it: dropped if still queued, stopped at its next check if it runs;
- `close()` lets the running job end (a background one stops at its next check: warming is
  worth nothing to a process shutting down) and drops the queued ones.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
from collections.abc import Callable
from typing import Any

from helios_lsp.engine.errors import JobCancelledError

Key = tuple[str, str]


class Job:
    __slots__ = ("background", "cancel_reason", "fn", "future", "key", "loop")

    def __init__(self, fn: Callable[[Job], Any], loop: asyncio.AbstractEventLoop,
                 key: Key | None = None, background: bool = False):
        self.fn = fn
        self.background = background
        self.loop = loop
        self.future: asyncio.Future[Any] = loop.create_future()
        # A cancelled caller no longer awaits the outcome: mark it retrieved so asyncio
        # does not warn about an exception nobody read.
        self.future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.key = key
        self.cancel_reason: str | None = None  # set from the loop, read by the worker

    def cancel(self, reason: str) -> None:
        if self.cancel_reason is None:
            self.cancel_reason = reason

    def is_cancelled(self) -> bool:
        return self.cancel_reason is not None

    def settle(self, result: Any = None, error: BaseException | None = None) -> None:
        """Called from the worker thread: hand the outcome to the awaiting task."""
        def deliver() -> None:
            if self.future.done():
                return
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(result)
        # A closed loop means nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(deliver)


class JobRunner:
    def __init__(self, name: str = "helios-engine"):
        self._name = name
        self._queue: collections.deque[Job | None] = collections.deque()
        self._wakeup = threading.Condition()
        self._thread: threading.Thread | None = None
        self._latest: dict[Key, Job] = {}
        self._running: Job | None = None
        self.busy = False  # the worker is inside a job

    @property
    def queued(self) -> int:
        return sum(1 for job in self._queue if job is not None)

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing running whose caller still waits (a job is settled
        on the loop a moment before the worker leaves it)."""
        running = self._running
        return self.queued == 0 and (running is None or running.future.done())

    @property
    def warming(self) -> bool:
        """A background job is running now."""
        running = self._running
        return running is not None and running.background

    def _submit(self, job: Job) -> None:
        if not job.background:
            self._preempt_background()
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
            self._thread.start()
        with self._wakeup:
            self._queue.append(job)
            self._wakeup.notify()

    def _work(self) -> None:
        while True:
            with self._wakeup:
                while not self._queue:
                    self._wakeup.wait()
                job = self._queue.popleft()
            if job is None:
                return
            if job.is_cancelled():
                job.settle(error=JobCancelledError(job.cancel_reason or "cancelled"))
                continue
            self.busy = True
            self._running = job
            try:
                result = job.fn(job)
            except BaseException as exc:  # delivered to the awaiting task, never lost
                if isinstance(exc, JobCancelledError) and job.cancel_reason:
                    exc.reason = job.cancel_reason
                job.settle(error=exc)
            else:
                job.settle(result=result)
            finally:
                self._running = None
                self.busy = False

    def _preempt_background(self) -> None:
        """Real work arrives: background jobs give way (a running one keeps what it did)."""
        running = self._running
        if running is not None and running.background:
            running.cancel("preempted")
        for job in [j for j in self._queue if j is not None and j.background]:
            job.cancel("preempted")
            self._drop_if_queued(job)

    async def run(self, fn: Callable[[Job], Any], key: Key | None = None,
                  on_done: Callable[[asyncio.Future[Any]], None] | None = None,
                  track: set[Job] | None = None, background: bool = False) -> Any:
        """Run `fn(job)` on the worker and return its result. `on_done` sees the outcome
        even when the caller stops waiting; `track` holds the job while it is awaited;
        a `background` job yields to every other one."""
        job = Job(fn, asyncio.get_running_loop(), key, background)
        if track is not None:
            track.add(job)
        if on_done is not None:
            job.future.add_done_callback(on_done)
        if key is not None:
            self.supersede(key)
            self._latest[key] = job
        self._submit(job)
        try:
            return await asyncio.shield(job.future)
        except asyncio.CancelledError:
            job.cancel("cancelled")
            raise
        finally:
            if track is not None:
                track.discard(job)
            if key is not None and self._latest.get(key) is job:
                del self._latest[key]

    def supersede(self, key: Key) -> bool:
        """Cancel the job in flight for `key`, if any, as superseded; whether there was one."""
        older = self._latest.get(key)
        if older is None or older.future.done():
            return False
        older.cancel("superseded")
        self._drop_if_queued(older)
        return True

    def _drop_if_queued(self, job: Job) -> None:
        """Settle a cancelled job that has not started, now: its caller stops waiting (and
        stops counting against the in-flight bound) without waiting for the running job."""
        with self._wakeup:
            try:
                self._queue.remove(job)
            except ValueError:
                return  # the worker has it already; it stops at its next check
        job.future.set_exception(JobCancelledError(job.cancel_reason or "cancelled"))

    async def close(self) -> None:
        """Let the running job end (stop a background one), drop the queued ones, stop the
        worker."""
        running = self._running
        if running is not None and running.background:
            running.cancel("shutting down")
        with self._wakeup:
            for job in self._queue:
                if job is not None:
                    job.cancel("cancelled")
            self._queue.append(None)
            self._wakeup.notify()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
            self._thread = None
