"""An engine server that misbehaves: refused connections, 503 while loading, garbage,
truncated or stalled streams, errors. Helios answers with a safe, clear error bounded in
time, never a hang, and comes back by itself when the server does.

The misbehaving peers are real HTTP servers on loopback that answer like llama-server
would when it fails; tests with a real llama-server are in test_remote_engine.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web

from helios_lsp.engine import CompletionInput, Engine, EngineState
from helios_lsp.engine.errors import CompletionFailedError, ModelError, ModelNotLoadedError
from helios_lsp.settings import Settings
from tests.conftest import free_port

PROPS = {"default_generation_settings": {"n_ctx": 2048}, "total_slots": 2,
         "model_path": "/models/secret-dir/model.gguf"}
NOT_SUPPORTED = {"error": {"code": 501, "message": "Infill is not supported by this model",
                           "type": "not_supported_error"}}


def chunk(content: str, logprob: float = -0.1) -> bytes:
    event = {"content": content, "stop": False, "completion_probabilities": [
        {"id": 1, "token": content, "logprob": logprob, "top_logprobs": []}]}
    return b"data: " + json.dumps(event).encode() + b"\n\n"


FINAL = b"data: " + json.dumps({"content": "", "stop": True, "stop_type": "eos",
                                "timings": {"prompt_n": 7, "cache_n": 3}}).encode() + b"\n\n"


class FakeLlamaServer:
    """A llama-server stand-in on a real port whose /completion does what a test says."""

    def __init__(self, completion: Callable[[web.Request], object]):
        self.completion = completion
        self.health_status = 200
        self.port = free_port()
        self.requests: list[dict] = []
        self.disconnected = asyncio.Event()
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        async def health(request: web.Request) -> web.Response:
            return web.json_response(
                {"status": "ok" if self.health_status == 200 else "loading model"},
                status=self.health_status)

        async def props(request: web.Request) -> web.Response:
            return web.json_response(PROPS)

        async def infill(request: web.Request) -> web.Response:
            return web.json_response(NOT_SUPPORTED, status=501)

        app = web.Application()
        app.router.add_get("/health", health)
        app.router.add_get("/props", props)
        app.router.add_post("/infill", infill)
        app.router.add_post("/completion", self._complete)
        self._runner = web.AppRunner(app, handler_cancellation=True)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _complete(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(await request.json())
        try:
            return await self.completion(request)
        except asyncio.CancelledError:
            self.disconnected.set()  # Helios closed the connection
            raise

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def stream(request: web.Request, *parts: bytes, delay: float = 0.0) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for part in parts:
        await response.write(part)
        await asyncio.sleep(delay)
    return response


@pytest.fixture
async def fake() -> AsyncIterator[Callable[..., object]]:
    servers: list[FakeLlamaServer] = []

    async def make(completion) -> FakeLlamaServer:
        server = FakeLlamaServer(completion)
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.stop()


def engine_for(port: int, **kw) -> Engine:
    return Engine(Settings(engine="llama-server", engine_url=f"http://alice:s3cret@127.0.0.1:{port}",
                           engine_api_key="key-123", time_budget=1.0, **kw))


# Not ending in whitespace: the stand-in does not obey the healing grammar llama-server gets.
INP = CompletionInput(prefix="def add(a, b):\n    return a", language="python",
                      filename="m.py", max_tokens=16, temperature=0.0, first_line=0)


async def test_a_working_stream_is_cut_by_helios_rules(fake):
    async def ok(request):
        return await stream(request, chunk(" + b"), chunk("\n"), chunk("print(1)"), FINAL)

    server = await fake(ok)
    engine = engine_for(server.port)
    await engine.load()
    out = await engine.complete(INP)
    assert out.text == " + b"  # the line ends at the newline: one line mid-statement
    assert 0.8 < out.confidence <= 1.0
    body = server.requests[0]
    assert body["cache_prompt"] is True and body["stream"] is True and body["n_probs"] == 1
    assert body["prompt"].endswith("def add(a, b):\n    return a")
    assert "grammar" not in body
    snap = engine.snapshot()
    assert snap["backend"] == "llama-server" and snap["engine_url"] == f"http://127.0.0.1:{server.port}"
    assert snap["model_name"] == "model.gguf" and snap["slots"] == 2
    assert "s3cret" not in json.dumps(snap) and "key-123" not in json.dumps(snap)
    await engine.close()


async def test_an_unsure_token_ends_the_suggestion(fake):
    async def unsure(request):
        return await stream(request, chunk(" +"), chunk(" b", logprob=-5.0), FINAL)

    server = await fake(unsure)
    engine = engine_for(server.port)
    await engine.load()
    out = await engine.complete(INP)
    assert (out.text, out.stop_reason) == (" +", "unsure")
    await engine.close()


@pytest.mark.parametrize("pieces,expected", [
    # unsure inside a word: the word is finished, then the suggestion stops
    ([" + b", ("ar", -5.0), ("_c", -5.0), (")", -5.0)], " + bar_c"),
    # a word that does not end within a few tokens is taken back whole
    ([" + b", ("a", -5.0), "b", "c", "d", "e", "f"], " +"),
])
async def test_unsure_inside_a_word_finishes_it_or_takes_it_back(fake, pieces, expected):
    async def words(request):
        return await stream(request, *(chunk(p) if isinstance(p, str) else
                                        chunk(p[0], logprob=p[1]) for p in pieces), FINAL)

    server = await fake(words)
    engine = engine_for(server.port)
    await engine.load()
    out = await engine.complete(INP)
    assert (out.text, out.stop_reason) == (expected, "unsure")
    await engine.close()


async def test_refused_connection_is_unreachable_and_names_no_secret():
    engine = engine_for(free_port())
    with pytest.raises(ModelError):
        await engine.load()
    assert engine.state is EngineState.FAILED
    reason = engine.load_error_public or ""
    assert "not reachable" in reason and "connection refused" in reason
    assert "s3cret" not in reason and "alice" not in reason and "key-123" not in reason
    await engine.close()


@pytest.mark.parametrize("name,body", [
    ("garbage", lambda r: stream(r, b"data: {not json\n\n")),
    ("not an object", lambda r: stream(r, b"data: [1, 2]\n\n")),
    ("truncated", lambda r: stream(r, chunk(" + "))),
    ("an error event", lambda r: stream(r, b'data: {"error": {"message": "/secret/path"}}\n\n')),
    ("a 500", lambda r: asyncio.sleep(0, web.Response(status=500, text="/secret/path"))),
    ("a 400", lambda r: asyncio.sleep(0, web.Response(status=400, text="bad"))),
])
async def test_server_failures_are_completion_failures_with_a_safe_detail(fake, name, body):
    server = await fake(body)
    engine = engine_for(server.port)
    await engine.load()
    with pytest.raises(CompletionFailedError) as failure:
        await engine.complete(INP)
    assert "secret" not in str(failure.value) and "127.0.0.1" not in str(failure.value)
    assert engine.ready  # the server answered: it is still there
    await engine.close()


async def test_a_stalled_stream_ends_within_the_time_budget(fake):
    async def stall(request):
        response = await stream(request, chunk(" +"))
        await asyncio.sleep(30)
        return response

    server = await fake(stall)
    engine = engine_for(server.port)
    await engine.load()
    out = await asyncio.wait_for(engine.complete(INP), 10)  # budget 1 s (+1 s of grace)
    assert (out.text, out.stop_reason) == (" +", "time_budget")
    await asyncio.wait_for(server.disconnected.wait(), 5)  # and the connection was closed
    await engine.close()


async def test_a_superseded_request_closes_its_connection(fake):
    async def slow(request):
        return await stream(request, *[chunk("x")] * 3, delay=5)

    server = await fake(slow)
    engine = engine_for(server.port, typeahead=False)
    await engine.load()
    first = asyncio.ensure_future(engine.complete(INP, client_id="c", document="m.py"))
    await asyncio.sleep(0.3)
    second = asyncio.ensure_future(engine.complete(INP, client_id="c", document="m.py"))
    from helios_lsp.engine import JobCancelledError

    with pytest.raises(JobCancelledError) as superseded:
        await first
    assert superseded.value.reason == "superseded"
    await asyncio.wait_for(server.disconnected.wait(), 5)
    second.cancel()
    await asyncio.gather(second, return_exceptions=True)
    assert engine.snapshot()["stats"]["superseded"] == 1
    await engine.close()


async def test_loading_server_then_recovery_without_restart(fake):
    async def ok(request):
        return await stream(request, chunk(" + b"), FINAL)

    server = await fake(ok)
    server.health_status = 503  # llama-server while it loads its model
    engine = engine_for(server.port)
    with pytest.raises(ModelError):
        await engine.load()
    assert "loading" in (engine.load_error_public or "")
    with pytest.raises(ModelNotLoadedError) as refused:
        await engine.complete(INP)
    assert "not reachable" in str(refused.value)
    server.health_status = 200
    async with asyncio.timeout(20):
        while not engine.ready:
            await asyncio.sleep(0.05)
    assert (await engine.complete(INP)).text == " + b"
    await engine.close()


async def test_a_prompt_ending_in_indentation_is_healed_by_a_grammar(fake):
    async def ok(request):
        return await stream(request, chunk("\n    return"), chunk(" a + b"), FINAL)

    server = await fake(ok)
    engine = engine_for(server.port)
    await engine.load()
    out = await engine.complete(CompletionInput(prefix="def add(a, b):\n    ", language="python",
                                                filename="m.py", max_tokens=8))
    assert out.text == "return a + b"
    body = server.requests[0]
    assert body["prompt"].endswith("def add(a, b):")  # "\n    " backed off...
    assert body["grammar"] == 'root ::= "\\n    " [^\\x00]*'  # ...and written again
    await engine.close()
