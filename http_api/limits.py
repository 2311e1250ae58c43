"""The documented request rate limits: token buckets per client, under a cap per address.

A client names itself with `X-Helios-Client`, and anyone can name themselves anything: a
client that made up a new id per request would get a fresh bucket each time. So every
request also spends a token of its address's bucket, which holds ADDRESS_MULTIPLE times a
client's budget: a declared id can narrow a client's share, never widen the address's.
(Completions in flight are bounded by the engine itself, for every caller.)

Refusals are immediate (the caller answers 429 with Retry-After); nothing here queues.
The clock is injectable so the arithmetic can be tested without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

# An address may spend this many clients' budgets (rate and burst) together.
ADDRESS_MULTIPLE = 4


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

    def wait(self, client: str) -> float:
        """Seconds until `client` has a token (0: it has one now). Spends nothing."""
        bucket = self._buckets.get(client)
        if bucket is None:
            return 0.0
        level = self._level(bucket, self._clock())
        if level < 1.0 - 1e-9:  # (a token refilled exactly on time is not lost to rounding)
            return (1.0 - level) / self.rate
        return 0.0

    def take(self, client: str) -> float:
        """Spend one token. Returns 0 when admitted, else the seconds until a token is due."""
        wait = self.wait(client)
        if wait > 0:
            return wait
        now = self._clock()
        if len(self._buckets) >= self._PRUNE_AT:
            self._buckets = {key: b for key, b in self._buckets.items()
                             if self._level(b, now) < self.burst}
        bucket = self._buckets.get(client)
        level = self.burst if bucket is None else self._level(bucket, now)
        self._buckets[client] = _Bucket(max(0.0, level - 1.0), now)
        return 0.0

    def __len__(self) -> int:
        return len(self._buckets)


class ClientLimits:
    """A request spends one token of its client's bucket and one of its address's.

    The client bucket is keyed by address and id together, so nobody can spend another
    address's client's budget by borrowing its id; a request without an id is the
    address's anonymous client. Both buckets must have a token, or neither is spent."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.clients = RateLimiter(rate, burst, clock)
        self.addresses = RateLimiter(rate * ADDRESS_MULTIPLE, burst * ADDRESS_MULTIPLE, clock)

    def take(self, address: str, client: str | None) -> tuple[float, str]:
        """(0, "") when admitted; else (seconds until admitted, "client" or "address")."""
        client_key = f"{address} {'id:' + client if client is not None else 'anonymous'}"
        client_wait = self.clients.wait(client_key)
        address_wait = self.addresses.wait(address)
        if client_wait > 0 or address_wait > 0:
            return ((client_wait, "client") if client_wait >= address_wait
                    else (address_wait, "address"))
        self.clients.take(client_key)
        self.addresses.take(address)
        return 0.0, ""
