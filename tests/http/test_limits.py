"""The documented limits on a real server: 10 requests/s per client in bursts of 20, 5
completions in flight server-wide, 429 SERVER_OVERLOADED with Retry-After beyond either."""

from __future__ import annotations

import http.client
import io
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.http.conftest import (
    Reply,
    Server,
    completion,
    encode_request,
    long_code,
    read_reply,
    start,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[Server]:
    """Its own server: these tests empty the buckets of 127.0.0.1."""
    server = start(tmp_path_factory.mktemp("limits"), model=str(tiny_model))
    yield server
    assert server.stop() == 0, server.log()


class _Reader(io.BufferedReader):
    def close(self) -> None:  # http.client closes it after each answer; the next needs it
        pass


class _Stream:
    """One buffered reader over a socket, for reading several answers in a row."""

    def __init__(self, sock: socket.socket):
        self.file = _Reader(socket.SocketIO(sock, "rb"))

    def makefile(self, *_args: object, **_kwargs: object) -> io.BufferedReader:
        return self.file


def burst(server: Server, path: str, client: str | None, n: int,
          method: str = "GET", body: bytes | None = None) -> tuple[list[Reply], float]:
    """`n` requests written at once on one connection (HTTP pipelining): the server answers
    them back to back, with no round trips in between. Returns the answers and the seconds
    from sending to the last answer."""
    headers: dict[str, str | None] = {"Content-Type": "application/json"} if body else {}
    if client is not None:
        headers["X-Helios-Client"] = client
    one = encode_request(method, path, body, headers, server.port)
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        stream = _Stream(sock)
        started = time.monotonic()
        sock.sendall(one * n)
        replies = []
        for _ in range(n):
            resp = http.client.HTTPResponse(stream, method=method)  # type: ignore[arg-type]
            resp.begin()
            replies.append(Reply(resp.status, resp.headers, resp.read()))
        return replies, time.monotonic() - started


def admitted_before_refusal(replies: list[Reply]) -> int:
    statuses = [r.status for r in replies]
    assert set(statuses) <= {200, 429}, statuses
    assert 429 in statuses, statuses
    return statuses.index(429)


def assert_overloaded(reply: Reply, retry_after: str = "1") -> None:
    assert reply.status == 429, reply
    assert reply.headers["Retry-After"] == retry_after
    body = reply.json()
    assert body["error_code"] == "SERVER_OVERLOADED"
    assert set(body) == {"detail", "error_code", "timestamp"}


def test_burst_of_20_then_refused_then_refilled(server: Server):
    """20 at once, the 21st refused; then 10 more per second. A token that refills while a
    burst is being answered (one per 100 ms) may admit one more: the bounds allow for it."""
    client = f"burst-{uuid.uuid4().hex[:8]}"
    t0 = time.monotonic()
    replies, elapsed = burst(server, "/status", client, 30)
    admitted = admitted_before_refusal(replies)
    assert 20 <= admitted <= 20 + int(elapsed * 10)  # exactly 20 unless the burst took 100 ms
    refused = replies[admitted]
    assert_overloaded(refused)
    assert "at most 10 per second, bursts of 20" in refused.json()["detail"]

    # Waiting as long as Retry-After says: ten tokens have come back (10 per second).
    time.sleep(int(refused.headers["Retry-After"]))
    replies, _ = burst(server, "/status", client, 25)
    t3 = time.monotonic()
    admitted = admitted_before_refusal(replies)
    # At least the ten that came back; at most those plus what refilled since the first
    # burst (about 11: not a fresh burst of 20).
    assert 10 <= admitted <= 1 + int(10 * (t3 - t0))


def test_clients_have_separate_buckets_and_no_header_means_by_address(server: Server):
    replies, _ = burst(server, "/openapi.json", None, 30)  # keyed by 127.0.0.1
    assert admitted_before_refusal(replies) >= 20
    # Right after, another client is admitted at once, and the address is still refused
    # (each pair is answered within milliseconds: no token refills between the two).
    replies, _ = burst(server, "/openapi.json", "someone-else", 1)
    assert replies[0].status == 200
    pair = [burst(server, "/openapi.json", None, 1)[0][0] for _ in range(2)]
    assert any(r.status == 429 for r in pair), pair


def test_health_is_never_rate_limited(server: Server):
    client = f"health-{uuid.uuid4().hex[:8]}"
    admitted_before_refusal(burst(server, "/status", client, 30)[0])  # the bucket is empty
    replies, _ = burst(server, "/health", client, 60)
    assert [r.status for r in replies] == [200] * 60


def test_completions_spend_the_same_bucket(server: Server):
    client = f"complete-{uuid.uuid4().hex[:8]}"
    replies, _ = burst(server, "/status", client, 30)
    admitted_before_refusal(replies)
    refused = server.post("/complete", completion("x = ", max_tokens=1), client=client)
    assert_overloaded(refused)


def test_a_bad_client_id_is_refused(server: Server):
    for bad in ("a b", "x" * 129, "tab\there", "é"):
        reply = server.request("GET", "/status", headers={
            "X-Helios-Client": bad.encode("utf-8").decode("latin-1")})
        assert reply.status == 400, (bad, reply)
        assert reply.json()["error_code"] == "INVALID_REQUEST"


def test_sixth_completion_in_flight_is_refused(embedded_server: Server):
    """Five in flight (one running, four queued behind it); the sixth is refused at once."""
    before = embedded_server.stats()
    tag = uuid.uuid4().hex[:8]
    running = embedded_server.send_json("/complete", completion(long_code(tag, 60)))
    embedded_server.wait_status(lambda s: s["engine"]["busy"] and s["in_flight"] == 1,
                                "the long completion to run")
    queued = [embedded_server.send_json("/complete", completion(f"q{i}_{tag} = ", max_tokens=5))
              for i in range(4)]
    try:
        embedded_server.wait_status(lambda s: s["in_flight"] == 5, "five in flight")
        started = time.perf_counter()
        sixth = embedded_server.post("/complete", completion(f"sixth_{tag} = "))
        assert time.perf_counter() - started < 5  # refused, not queued
        assert_overloaded(sixth)
        assert "too many completions in flight (at most 5)" in sixth.json()["detail"]
        assert embedded_server.status()["in_flight"] == 5
    finally:
        for sock in [*queued, running]:  # the queued first: they must never start
            sock.close()
    status = embedded_server.wait_status(
        lambda s: s["in_flight"] == 0 and not s["engine"]["busy"], "the disconnects")
    after = status["engine"]["stats"]
    dropped = after["dropped"] - before["dropped"]  # stopped before reaching the model
    cancelled = after["cancelled"] - before["cancelled"]  # stopped while evaluating
    assert dropped + cancelled == 5
    assert dropped >= 4  # the queued ones never ran
    assert after["completed"] == before["completed"]
    # And the server goes on.
    assert embedded_server.post("/complete", completion("y = ", max_tokens=3)).status == 200


def test_queued_completions_are_answered_in_turn(embedded_server: Server):
    tag = uuid.uuid4().hex[:8]
    socks = [embedded_server.send_json("/complete", completion(f"v{i}_{tag} = ", max_tokens=4))
             for i in range(5)]
    replies = []
    for sock in socks:
        with sock:
            replies.append(read_reply(sock))
    assert [r.status for r in replies] == [200] * 5
