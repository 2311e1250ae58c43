"""The documented limits: a token bucket per client, and a cap on completions in flight.

Both refuse at once (the caller answers 429 with Retry-After); nothing here ever queues.
The clock is injectable so the arithmetic can be tested without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets keyed by client: `burst` requests at once, then `rate` per second.

    A bucket that has refilled completely is the same as a new one, so such buckets are
    forgotten: memory follows the clients active in the last `burst / rate` seconds, however
    many client ids are made up."""

    _PRUNE_AT = 1024

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def _level(self, bucket: _Bucket, now: float) -> float:
        return min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)

    def take(self, client: str) -> float:
        """Spend one token. Returns 0 when admitted, else the seconds until a token is due."""
        now = self._clock()
        if len(self._buckets) >= self._PRUNE_AT:
            self._buckets = {key: b for key, b in self._buckets.items()
                             if self._level(b, now) < self.burst}
        bucket = self._buckets.get(client)
        level = self.burst if bucket is None else self._level(bucket, now)
        if level < 1.0 - 1e-9:  # (a token refilled exactly on time is not lost to rounding)
            return (1.0 - level) / self.rate
        self._buckets[client] = _Bucket(max(0.0, level - 1.0), now)
        return 0.0

    def __len__(self) -> int:
        return len(self._buckets)


class InFlightLimit:
    """At most `limit` completions queued or running, server-wide."""

    def __init__(self, limit: int):
        self.limit = limit
        self.count = 0

    def acquire(self) -> bool:
        """Take a slot; False (and nothing taken) when all are in use."""
        if self.count >= self.limit:
            return False
        self.count += 1
        return True

    def release(self) -> None:
        self.count -= 1
