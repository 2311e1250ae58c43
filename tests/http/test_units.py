"""The pieces of http_api on their own, and the app in-process (aiohttp's test server) on an
engine that never loads: limits arithmetic on a fake clock, the Host/Origin rules, strict
JSON, the OpenAPI document, start_http's bind rules."""

from __future__ import annotations

import json
import logging
import re
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from helios_lsp.engine import Engine
from helios_lsp.settings import Settings
from http_api import BindRefusedError, create_app, start_http
from http_api.body import parse_json
from http_api.errors import ApiError, timestamp
from http_api.guard import host_allowed, is_loopback, origin_allowed, split_host
from http_api.limits import RateLimiter
from http_api.schemas import CompletionRequest
from tests.conftest import free_port

FIB = "def fibonacci(n):\n    if n <= 1:\n        return n\n    "
FIB_REQUEST = {"code": FIB, "language": "python", "position": {"line": 3, "character": 4},
               "filename": "fibonacci.py", "max_tokens": 100, "temperature": 0.1}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- limits ---------------------------------------------------------------------------------

def test_bucket_admits_a_burst_of_20_then_refuses():
    clock = Clock()
    limiter = RateLimiter(10, 20, clock)
    assert [limiter.take("a") for _ in range(20)] == [0.0] * 20
    assert limiter.take("a") == pytest.approx(0.1)  # one token is due in 1/10 s
    assert limiter.take("b") == 0.0  # another client has its own bucket


def test_bucket_refills_10_per_second_up_to_the_burst():
    clock = Clock()
    limiter = RateLimiter(10, 20, clock)
    for _ in range(20):
        limiter.take("a")
    clock.now += 0.05
    assert limiter.take("a") == pytest.approx(0.05)  # half a token so far
    clock.now += 0.05
    assert limiter.take("a") == 0.0
    assert limiter.take("a") > 0
    clock.now += 1.0  # ten tokens
    assert sum(limiter.take("a") == 0.0 for _ in range(15)) == 10
    clock.now += 60  # a long pause refills to the burst, no further
    assert sum(limiter.take("a") == 0.0 for _ in range(25)) == 20


def test_refused_requests_do_not_spend_tokens():
    clock = Clock()
    limiter = RateLimiter(10, 20, clock)
    for _ in range(20):
        limiter.take("a")
    for _ in range(50):
        assert limiter.take("a") > 0
    clock.now += 0.1
    assert limiter.take("a") == 0.0


def test_full_buckets_are_forgotten_so_made_up_ids_cannot_grow_memory():
    clock = Clock()
    limiter = RateLimiter(10, 20, clock)
    for i in range(5000):
        limiter.take(f"id-{i}")
        clock.now += 0.01  # each bucket is full again 0.1 s after its one request
    assert len(limiter) <= RateLimiter._PRUNE_AT


# --- guard ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("header", "allowed"), [
    ("localhost", True), ("localhost:8000", True), ("LOCALHOST:8000", True),
    ("127.0.0.1", True), ("127.0.0.1:8000", True), ("[::1]", True), ("[::1]:8000", True),
    ("127.0.0.2:8000", True),  # all of 127/8 is loopback
    ("evil.example", False), ("evil.example:8000", False), ("localhost.evil.example", False),
    ("127.0.0.1.nip.io:8000", False), ("192.168.1.10:8000", False), ("0.0.0.0:8000", False),
    ("", False), (":8000", False), ("localhost:", False), ("localhost:80:80", False),
    ("localhost:http", False), ("[::1", False), ("::1", False), ("[evil]:80", False),
])
def test_host_allow_list(header: str, allowed: bool):
    assert host_allowed(header, allow_remote=False) is allowed


def test_remote_mode_also_accepts_addresses_but_never_names():
    assert host_allowed("192.168.1.10:8000", allow_remote=True)
    assert host_allowed("[fe80::1]:8000", allow_remote=True)
    assert not host_allowed("evil.example:8000", allow_remote=True)


def test_split_host():
    assert split_host("[::1]:8000") == "::1"
    assert split_host("Example.COM:1") == "example.com"


@pytest.mark.parametrize(("origin", "allowed"), [
    (None, True), ("vscode-webview://1234abcd", True), ("vscode-file://vscode-app", True),
    ("http://localhost:8000", False), ("https://evil.example", False), ("null", False),
    ("file://", False), ("VSCODE-WEBVIEW://x", False), ("", False),
])
def test_origin_allow_list(origin: str | None, allowed: bool):
    assert origin_allowed(origin) is allowed


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("localhost", True), ("::1", True), ("[::1]", True),
    ("0.0.0.0", False), ("", False), ("192.168.0.1", False), ("::", False),
])
def test_is_loopback(host: str, loopback: bool):
    assert is_loopback(host) is loopback


# --- strict JSON ----------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "says"), [
    (b'{"t": NaN}', "NaN is not a JSON number"),
    (b'{"t": Infinity}', "Infinity is not a JSON number"),
    (b'{"t": -Infinity}', "-Infinity is not a JSON number"),
    (b'{"t": 1e999}', "too large"),
    (b'{"a": 1, "a": 2}', "the field 'a' appears twice"),
    (b'{"a": 1' + b"0" * 5000 + b"}", "number too large"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b"\xff\xfe{}", "not valid UTF-8"),
    (b"{'a': 1}", "not valid JSON"),
    (b"", "not valid JSON"),
])
def test_parse_json_refuses(body: bytes, says: str):
    with pytest.raises(ApiError) as err:
        parse_json(body)
    assert err.value.status == 400
    assert says in err.value.detail


def test_parse_json_keeps_what_json_allows():
    assert parse_json(b'{"x": 1.5, "y": [1, -2e3], "s": "\\ud83d\\ude00"}') == {
        "x": 1.5, "y": [1, -2000.0], "s": "\U0001F600"}


def test_timestamp_is_iso8601_utc():
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", timestamp())


# --- the app in-process, on an engine that is never loaded ----------------------------------

@pytest.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    settings = Settings(max_tokens_limit=50, max_tokens=20, temperature=0.3)
    async with TestClient(TestServer(create_app(Engine(settings), settings))) as client:
        yield client


async def test_openapi_is_generated_from_the_validating_models(client: TestClient[Any, Any]):
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {"/complete", "/prefetch", "/health", "/status", "/restart",
                                 "/openapi.json"}
    schemas = doc["components"]["schemas"]
    request = schemas["CompletionRequest"]
    assert set(request["properties"]) == set(CompletionRequest.model_fields)
    assert set(request["required"]) == {"code", "language", "position", "filename"}
    assert request["additionalProperties"] is False
    # This server's settings, not the class defaults:
    assert request["properties"]["max_tokens"] == {
        "default": 20, "description": "Maximum tokens to generate", "maximum": 50,
        "minimum": 1, "title": "Max Tokens", "type": "integer"}
    assert request["properties"]["temperature"]["default"] == 0.3
    assert schemas["Position"]["properties"]["line"]["minimum"] == 0
    assert set(schemas["ErrorResponse"]["required"]) == {"detail", "error_code", "timestamp"}
    assert set(schemas["CompletionResponse"]["required"]) == {
        "suggestion", "confidence", "processing_time"}
    assert set(schemas["HealthResponse"]["required"]) == {
        "status", "model_loaded", "server_version", "uptime"}
    # Every reference resolves.
    refs = re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(doc))
    assert refs and all(name in schemas for name in refs)
    responses = doc["paths"]["/complete"]["post"]["responses"]
    assert {"200", "400", "403", "404", "405", "413", "415", "429", "500", "503"} <= set(responses)


async def test_request_bounds_follow_settings(client: TestClient[Any, Any]):
    over = await client.post("/complete", json={**FIB_REQUEST, "max_tokens": 51})
    assert over.status == 400
    assert "max_tokens: Input should be less than or equal to 50" in (await over.json())["detail"]
    # Valid (the limit itself): it gets as far as the engine, which has no model.
    at_limit = await client.post("/complete", json={**FIB_REQUEST, "max_tokens": 50})
    assert at_limit.status == 503
    assert (await at_limit.json())["error_code"] == "MODEL_NOT_LOADED"


async def test_health_and_status_before_any_load(client: TestClient[Any, Any]):
    resp = await client.get("/health")
    assert resp.status == 503
    body = await resp.json()
    assert body["status"] == "loading" and body["model_loaded"] is False
    assert body["detail"] == "the model is not loaded yet"  # the engine's words (types.py)
    refused = await client.post("/complete", json={**FIB_REQUEST, "max_tokens": 10})
    assert (await refused.json())["detail"] == (
        "the model is not loaded yet; try again in a few seconds")
    status = await (await client.get("/status")).json()
    assert status["model_status"] == "not_loaded"
    assert status["model_name"] is None
    assert status["config"] == {"max_tokens": 20, "temperature": 0.3, "host": "127.0.0.1",
                                "port": 8000}


async def test_an_unexpected_exception_is_a_generic_500(client: TestClient[Any, Any],
                                                        monkeypatch, caplog):
    from http_api.state import ENGINE

    def broken() -> dict[str, Any]:
        raise RuntimeError("secret /home/user/.config path")

    monkeypatch.setattr(client.server.app[ENGINE], "snapshot", broken)
    with caplog.at_level(logging.ERROR):
        resp = await client.get("/status")
    assert resp.status == 500
    body = await resp.json()
    assert body["error_code"] == "COMPLETION_FAILED"
    assert "/home" not in body["detail"] and "secret" not in body["detail"]
    assert "secret /home/user/.config path" in caplog.text  # the log has it


async def test_engine_failures_map_to_the_documented_codes(client: TestClient[Any, Any],
                                                           monkeypatch):
    from helios_lsp.engine import CompletionFailedError, EngineState, JobCancelledError
    from http_api.state import ENGINE

    engine = client.server.app[ENGINE]
    monkeypatch.setattr(engine, "state", EngineState.READY)

    async def fails(*_args: Any, **_kwargs: Any) -> None:
        raise CompletionFailedError("the prompt does not fit in the model's context")

    monkeypatch.setattr(engine, "complete", fails)
    request = {**FIB_REQUEST, "max_tokens": 10}  # this app's limit is 50
    resp = await client.post("/complete", json=request)
    assert resp.status == 500
    body = await resp.json()
    assert body["error_code"] == "COMPLETION_FAILED"
    assert body["detail"] == "the prompt does not fit in the model's context; try again"

    async def superseded(*_args: Any, **_kwargs: Any) -> None:
        raise JobCancelledError("superseded")

    monkeypatch.setattr(engine, "complete", superseded)
    resp = await client.post("/complete", json=request, headers={"X-Helios-Client": "a"})
    assert resp.status == 200
    assert resp.headers["X-Helios-Superseded"] == "1"
    assert (await resp.json())["suggestion"] == ""


# --- start_http -----------------------------------------------------------------------------

async def test_start_http_binds_serves_and_stops():
    settings = Settings(port=free_port())
    engine = Engine(settings)
    server = await start_http(engine, settings)
    try:
        assert server.url == f"http://127.0.0.1:{settings.port}"
        async with aiohttp.ClientSession() as session, session.get(server.url + "/health") as r:
            assert r.status == 503
            assert (await r.json())["status"] == "loading"
    finally:
        await server.stop()
        await engine.close()
    with pytest.raises(aiohttp.ClientConnectionError):  # the socket is closed
        async with aiohttp.ClientSession() as session:
            await session.get(server.url + "/health")


async def test_start_http_raises_oserror_when_the_port_is_taken():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = Settings(port=taken.getsockname()[1])
        with pytest.raises(OSError):
            await start_http(Engine(settings), settings)


async def test_port_zero_reports_the_bound_port():
    settings = Settings(port=0)
    server = await start_http(Engine(settings), settings)
    try:
        port = int(server.url.rsplit(":", 1)[1])
        assert port > 0
        from http_api.state import RUNTIME

        assert server.app[RUNTIME].port == port
    finally:
        await server.stop()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "::", ""])
async def test_non_loopback_bind_needs_allow_remote(host: str):
    settings = Settings(host=host, port=free_port())
    with pytest.raises(BindRefusedError, match="HELIOS_ALLOW_REMOTE"):
        await start_http(Engine(settings), settings)


async def test_allow_remote_binds_and_warns(caplog):
    settings = Settings(host="0.0.0.0", port=free_port(), allow_remote=True,
                        api_key="k" * 32)  # beyond loopback, a key is required (test_auth.py)
    with caplog.at_level(logging.WARNING):
        server = await start_http(Engine(settings), settings)
    try:
        assert "reachable from other machines" in caplog.text
    finally:
        await server.stop()
