"""An engine server that puts hostile strings in everything it says, for tests that drive
Helios from outside (`helios serve`, `helios lsp`, `helios models`).

`HostileEngine` speaks llama-server's API (/health, /props, /infill, /completion) and an
OpenAI-compatible one (/v1/models, /v1/completions) on a real port, from a thread of its own
(so a test may block on Helios meanwhile). Its fields say what it answers and may be changed
while it runs:

    with HostileEngine(alias=HOSTILE) as srv:       # srv.url, srv.requests
        srv.answer = "error-event"                  # the next completion streams an error

The checks say what Helios may show of it: `assert_clean_log` (every line one of Helios's
own, no control character) and `assert_clean_text` (no unsafe character at all).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from typing import Any

from aiohttp import web

from tests.conftest import free_port

# The string: a newline, then what looks like a log line of Helios's, and an ESC.
FORGED = "evil\n2099-01-01 00:00:00,000 ERROR helios: INJECTED-NAME \x1b[31mx"
# Every kind of character that can end, forge or repaint a line or reorder what is shown:
# CR, NEL and CSI (C1), DEL, NUL, the Unicode line and paragraph separators, bidi overrides
# and isolates, and a lone surrogate (valid in JSON as an escape, not encodable as UTF-8).
HOSTILE = FORGED + " \r\x85\x9b2J\x7f\x00\u2028\u2029\u202etxt.exe\u2066\ud800 end"
# Odd but printable: accepted as a model id, shown and sent exactly as the server spells it.
ODD_ID = "team/Qwen2.5-Coder-1.5B:q4 ünïcødé ✓ \\x1b[31m (not an escape)"

# Any character Helios must never write raw (logsafe's set, spelled out again here).
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069"
                    "\ud800-\udfff]")
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) "
                      r"[\w.]+: ")


def assert_clean_text(text: str, what: str) -> None:
    """`text` (shown to a user or an editor) holds no unsafe character at all."""
    bad = UNSAFE.search(text)
    assert bad is None, f"{what} holds {bad.group()!r}: {text[:500]!r}"


def assert_clean_json(value: Any, what: str) -> None:
    """Every string in a decoded JSON document (keys too) is clean."""
    if isinstance(value, str):
        assert_clean_text(value, what)
    elif isinstance(value, dict):
        for key, item in value.items():
            assert_clean_text(key, what)
            assert_clean_json(item, f"{what}.{key}")
    elif isinstance(value, list):
        for item in value:
            assert_clean_json(item, what)


def assert_clean_log(text: str) -> None:
    """Every line of a Helios log is one of Helios's own (its timestamp and level first, never
    the forged 2099 one), and nothing in it but the line ends is a control character."""
    assert_clean_text(text.replace("\n", ""), "the log")
    for line in text.split("\n")[:-1] if text.endswith("\n") else text.split("\n"):
        assert LOG_LINE.match(line) and not line.startswith("2099"), f"not a log line: {line!r}"


def _hostile_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # the lone surrogate as raw (invalid) bytes


def _sse(event: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(event).encode() + b"\n\n"


class HostileEngine:
    """See the module's docstring. `answer` is what a completion gets:

    - "ok": a token (" 1") and the end, in each API's format;
    - "error-event": a stream whose first event is `{"error": {...}}` with hostile text;
    - "error-after-token": a token, then such an error event;
    - "error-body": HTTP 500 with a hostile text body;
    - "error-json": HTTP 400 with an OpenAI-style JSON error of hostile strings;
    - "wrong-types": a token whose every optional field has the wrong type;
    - "deep": an event of JSON arrays nested 500,000 deep;
    - "long-line": 64 MiB without a newline;
    - "endless": tokens until Helios goes away.
    """

    def __init__(self, *, health: Any = "ok", alias: Any = None,
                 path: Any = "/models/served-model.gguf", models: list[Any] | None = None,
                 answer: str = "ok", props_delay: float = 0.0):
        self.health = health
        # /props and /v1/models: "ok", or "deep" (nested 500,000 deep), "huge" (64 MiB).
        self.document = "ok"
        self.props_delay = props_delay  # seconds before /props answers (a load to watch)
        self.alias = alias
        self.path = path
        self.models: list[Any] = [{"id": "served-model"}] if models is None else models
        self.answer = answer
        self.requests: list[tuple[str, Any]] = []  # (path, JSON body) of every POST
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def posted(self, path: str) -> list[Any]:
        return [body for where, body in self.requests if where == path]

    # --- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> HostileEngine:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/props", self._props)
        app.router.add_post("/infill", self._infill)
        app.router.add_post("/completion", self._completion)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/completions", self._completion)
        self._runner = web.AppRunner(app, handler_cancellation=True)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    # --- llama-server's API ----------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": self.health})

    async def _flooded_document(self, request: web.Request) -> web.StreamResponse | None:
        if self.document == "deep":
            return web.Response(body=b"[" * 500_000 + b"]" * 500_000,
                                content_type="application/json")
        if self.document == "huge":
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(request)
            await response.write(b'{"data": "')
            for _ in range(64):
                await response.write(b"x" * (1 << 20))
            await response.write(b'"}')
            return response
        return None

    async def _props(self, request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(self.props_delay)
        if (flooded := await self._flooded_document(request)) is not None:
            return flooded
        props: dict[str, Any] = {"default_generation_settings": {"n_ctx": 2048},
                                 "total_slots": 1, "model_path": self.path}
        if self.alias is not None:
            props["model_alias"] = self.alias
        return web.json_response(props)

    async def _infill(self, request: web.Request) -> web.Response:
        # No FIM tokens (as llama-server says it): Helios uses /completion. Hostile all the
        # same, in the parts Helios does not need.
        return web.json_response({"error": {"code": 501, "type": HOSTILE, "message":
                                            "Infill is not supported by this model " + HOSTILE}},
                                 status=501)

    # --- OpenAI's API ---------------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.StreamResponse:
        if (flooded := await self._flooded_document(request)) is not None:
            return flooded
        return web.json_response({"object": "list", "data": self.models})

    # --- completions, both APIs ----------------------------------------------------------

    async def _completion(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append((request.path, body))
        openai = request.path.startswith("/v1/")
        if body.get("stream") is False:  # llama-server's cache warming: no tokens asked
            return web.json_response({"content": "", "stop": True,
                                      "timings": {"prompt_n": 5, "cache_n": 0}})
        answer = self.answer
        if answer == "error-body":
            return web.Response(status=500, body=_hostile_bytes(HOSTILE),
                                content_type="text/plain")
        if answer == "error-json":
            return web.json_response({"error": {"message": HOSTILE, "type": HOSTILE,
                                                "param": None, "code": HOSTILE}}, status=400)
        error = _sse({"error": {"code": 500, "message": HOSTILE, "type": HOSTILE}})
        token = self._token(openai, " 1", wrong=answer == "wrong-types")
        parts = {"error-event": [error], "error-after-token": [token, error]}.get(
            answer, [token, self._end(openai)])
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if answer in ("deep", "long-line", "endless"):
            await self._flood(response, answer, token)
            return response
        for part in parts:
            await response.write(part)
        if openai and answer not in ("error-event", "error-after-token"):
            await response.write(b"data: [DONE]\n\n")
        return response

    @staticmethod
    async def _flood(response: web.StreamResponse, answer: str, token: bytes) -> None:
        if answer == "deep":
            await response.write(b"data: " + b"[" * 500_000 + b"]" * 500_000 + b"\n\n")
        elif answer == "long-line":
            chunk = b"x" * (1 << 20)
            await response.write(b"data: ")
            for _ in range(64):
                await response.write(chunk)
        else:
            while True:  # ended by Helios closing the connection (the handler is cancelled)
                await response.write(token)
                await asyncio.sleep(0.001)

    @staticmethod
    def _token(openai: bool, text: str, *, wrong: bool = False) -> bytes:
        if openai:
            logprobs: Any = {"tokens": [text], "token_logprobs": [-0.1]}
            if wrong:  # tokens that are not strings, a probability that is one
                logprobs = {"tokens": [7, None, text], "token_logprobs": ["x", {}, []]}
            return _sse({"choices": [{"index": 0, "text": text, "logprobs": logprobs,
                                      "finish_reason": None}]})
        probs: Any = [{"id": 1, "token": text, "logprob": -0.1, "top_logprobs": []}]
        event: dict[str, Any] = {"content": text, "stop": False,
                                 "completion_probabilities": probs}
        if wrong:
            event.update(completion_probabilities={"x": HOSTILE}, timings=HOSTILE,
                         stop_type=[HOSTILE])
        return _sse(event)

    @staticmethod
    def _end(openai: bool) -> bytes:
        if openai:
            return _sse({"choices": [{"index": 0, "text": "", "finish_reason": "stop"}]})
        return _sse({"content": "", "stop": True, "stop_type": "eos",
                     "timings": {"prompt_n": 7, "cache_n": 0}})
