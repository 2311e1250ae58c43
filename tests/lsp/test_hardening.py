"""The language server against hostile and clumsy input (issue 9): malformed frames, malformed
JSON-RPC, log injection, and more completions than the engine admits.

Framing and JSON-RPC cases go over raw stdio (`raw_stdio.RawServer`): pytest-lsp cannot
send a bad frame. After every bad input the server must still answer a valid request and
be alive; at the end it must leave cleanly (shutdown + exit: code 0)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from helios_lsp.logsafe import safe
from helios_lsp.lsp.framing import MAX_FRAME_BYTES, FrameReader
from helios_lsp.lsp.logs import EscapeClientText, Throttle
from tests.lsp.conftest import StartLsp, env_for_model, inline_params, open_doc, status
from tests.lsp.raw_stdio import RawServer, encode, frame
from tests.lsp.test_cancellation import LONG, wait_until

OMIT = object()  # a member left out of the message
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602
NOT_INITIALIZED = -32002


@pytest.fixture
def raw(isolated_env, tiny_model, tmp_path: Path):
    """Start raw servers on the tiny model; each is closed (or killed) at the end."""
    started: list[RawServer] = []

    def start(**env: str) -> RawServer:
        server = RawServer.start(env_for_model(isolated_env, tiny_model, **env),
                                 tmp_path / f"stderr-{len(started)}.log")
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def assert_serving(server: RawServer, after: str) -> None:
    """The server answers a valid request after `after` and is still running."""
    try:
        snap = server.status()
    except (AssertionError, OSError) as exc:
        raise AssertionError(f"no answer after {after} (exit code {server.proc.poll()}); "
                             f"log:\n{server.log()[-3000:]}") from exc
    assert snap["engine"]["state"] in ("loading", "ready"), snap
    assert server.alive, after


def position(line: Any, character: Any, uri: str = "file:///w/a.py") -> dict[str, Any]:
    return {"textDocument": {"uri": uri}, "position": {"line": line, "character": character},
            "context": {"triggerKind": 1}}


# --- the pieces, alone ------------------------------------------------------------------------

def test_safe_leaves_no_control_character_and_no_line_break():
    text = "".join(chr(i) for i in range(0x3000)) + "\u2028\u2029\u202e\ud800"
    out = safe(text, limit=len(text))
    assert "\n" not in out and len(out.splitlines()) == 1
    assert not [c for c in out if unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp")]
    assert "\u202e" not in out
    assert safe("a\nb\x1b[31m\\n") == "a\\nb\\x1b[31m\\\\n"  # a real \\n stays distinct
    assert safe("é ü 中") == "é ü 中"
    assert safe("x" * 500, 10) == "x" * 10 + "…(500 chars)"
    assert safe(None) == "None"


def test_throttle_lets_a_burst_through_then_counts():
    now = [0.0]
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logger = logging.Logger("tests.throttle")  # not registered: nothing else sees it
    logger.addHandler(Collect())
    throttle = Throttle(logger, burst=3, period=60.0, clock=lambda: now[0])
    for i in range(100):
        throttle.log(logging.WARNING, "bad %d", i)
    assert records == ["bad 0", "bad 1", "bad 2"] and throttle.suppressed == 97
    now[0] = 61.0
    throttle.log(logging.WARNING, "bad %d", 100)
    assert records[3:] == ["97 similar messages were not logged in the last 61 s", "bad 100"]


def test_pygls_records_are_escaped_once_whatever_the_handlers():
    stream = io.StringIO()
    handlers = [logging.StreamHandler(stream) for _ in range(2)]
    logger = logging.Logger("pygls.protocol.tests")  # a pygls name, outside the tree
    for handler in handlers:
        handler.addFilter(EscapeClientText())
        logger.addHandler(handler)
    try:
        raise ValueError("bad\nFORGED \x1b[31m")
    except ValueError:
        logger.exception('id "%s"', "1\nFORGED\x1b[2J\\")
    lines = stream.getvalue().splitlines()
    assert lines.count('id "1\\nFORGED\\x1b[2J\\\\"') == 2  # escaped once, not twice
    assert "\x1b" not in stream.getvalue()
    assert not [line for line in lines if line.startswith("FORGED")]


class Trickle(io.RawIOBase):
    """A stream that hands out `step` bytes per read, as a slow pipe would."""

    def __init__(self, data: bytes, step: int):
        self._data, self._pos, self._step = data, 0, step

    def readable(self) -> bool:
        return True

    def read1(self, n: int = -1) -> bytes:
        chunk = self._data[self._pos:self._pos + min(n, self._step)]
        self._pos += len(chunk)
        return chunk

    read = read1


@pytest.mark.parametrize("step", [1, 7, 65536])
def test_frame_reader_resynchronises_however_the_bytes_arrive(step):
    good = [b'{"n": %d}' % i for i in range(4)]
    data = (frame(good[0]) + BAD_FRAMES["a Content-Length of 10^12"] + frame(good[1])
            + b"junk without end " * 1000 + frame(good[2])
            + b"Content-Length: 70\r\n\r\n" + b" " * 70 + frame(good[3]))
    reports: list[str] = []
    reader = FrameReader(Trickle(data, step), reports.append, max_frame=64)
    frames = []
    while (body := reader.next_frame()) is not None:
        frames.append(body)
    assert frames == good
    assert len(reports) == 3, reports
    assert "70 bytes discarded, the announced body was discarded" in reports[2]


# --- defect 3: frames ---------------------------------------------------------------------

BAD_FRAMES = {
    "a 20-digit Content-Length": b"Content-Length: 99999999999999999999\r\n\r\n{}",
    "a Content-Length of 10^12": b"Content-Length: 1000000000000\r\n\r\n{}",
    "a negative Content-Length": b"Content-Length: -5\r\n\r\n{}",
    "a non-numeric Content-Length": b"Content-Length: twelve\r\n\r\n{}",
    "an empty Content-Length": b"Content-Length: \r\n\r\n{}",
    "no Content-Length": b"Content-Type: application/vscode-jsonrpc\r\n\r\n{}",
    "a 100 kB header line": b"X-Junk: " + b"x" * 100_000 + b"\r\n\r\n{}",
    "binary junk": bytes(range(256)) * 64,
    "a body longer than announced": b"Content-Length: 2\r\n\r\n{}}}}}",
    "control characters in the header": b"Content-Length: 1\x1b[2J\r\nX: \x1b[31m\r\n\r\n{}",
}


def test_a_bad_frame_is_skipped_and_the_next_one_served(raw):
    server = raw()
    server.initialize()
    for name, data in BAD_FRAMES.items():
        server.send_bytes(data)
        assert_serving(server, name)
    assert server.close() == 0
    log = server.log()
    assert "resynchronised on the next Content-Length header" in log
    assert "(the maximum is 67108864)" in log
    assert "\x1b" not in log  # what the peer sent is quoted escaped


def peak_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status_file:
        return next(int(line.split()[1]) for line in status_file if line.startswith("VmHWM"))


def test_a_frame_above_the_maximum_is_read_and_discarded(raw):
    server = raw()
    server.initialize()
    deadline = time.monotonic() + 60
    while server.status()["engine"]["state"] != "ready":  # the model's memory is in
        assert time.monotonic() < deadline
        time.sleep(0.05)
    before = peak_rss_kib(server.proc.pid)
    # A real message, padded past the limit: served, it would shut the server down.
    message = {"jsonrpc": "2.0", "id": 77, "method": "shutdown", "params": None}
    body = json.dumps({**message, "pad": ""}).encode()
    body = body[:-2] + b"x" * (MAX_FRAME_BYTES + 1 - len(body)) + body[-2:]
    assert len(body) == MAX_FRAME_BYTES + 1
    server.send_bytes(frame(body))
    assert_serving(server, "a frame one byte above the maximum")
    assert not [r for r in server.responses() if r.get("id") == 77], "the frame was served"
    # Discarded in chunks: the 64 MiB never sat in memory (measured: +0.3 MiB).
    assert peak_rss_kib(server.proc.pid) - before < 16 * 1024
    assert server.close() == 0
    assert f"a frame of {MAX_FRAME_BYTES + 1} bytes" in server.log()


def test_a_body_that_is_not_json_is_answered_parse_error(raw):
    server = raw()
    server.initialize()
    for body in (b"{", b"not json", b"\xff\xfe\xfd", b"[" * 100_000, b"", b'{"a": 1} x'):
        server.send_bytes(frame(body))
        assert_serving(server, f"body {body[:10]!r}")
        errors = [r for r in server.responses() if "error" in r]
        assert len(errors) == 1, (body[:10], errors)
        server.unmatched.remove(errors[0])
        assert errors[0]["id"] is None
        assert errors[0]["error"]["code"] == PARSE_ERROR


# --- defect 4: every request is answered ----------------------------------------------------

INLINE = types.TEXT_DOCUMENT_INLINE_COMPLETION
BAD_REQUESTS: list[tuple[str, dict[str, Any], int]] = [
    ("params {}", {"method": INLINE, "params": {}}, INVALID_PARAMS),
    ("params null", {"method": INLINE, "params": None}, INVALID_PARAMS),
    ("no params", {"method": INLINE, "params": OMIT}, INVALID_PARAMS),
    ("params an array", {"method": INLINE, "params": [1, 2]}, INVALID_PARAMS),
    ("line -1", {"method": INLINE, "params": position(-1, 0)}, INVALID_PARAMS),
    ("character -1", {"method": INLINE, "params": position(0, -1)}, INVALID_PARAMS),
    ("line 2^32", {"method": INLINE, "params": position(2**32, 0)}, INVALID_PARAMS),
    ("character 2^32", {"method": "textDocument/completion",
                        "params": position(0, 2**32)}, INVALID_PARAMS),
    ("a string line", {"method": INLINE, "params": position("1", 0)}, INVALID_PARAMS),
    ("a float character", {"method": INLINE, "params": position(0, 1.5)}, INVALID_PARAMS),
    ("a numeric uri", {"method": INLINE, "params": {**position(0, 0), "textDocument": {
        "uri": 5}}}, INVALID_PARAMS),
    ("no context", {"method": INLINE, "params": {
        k: v for k, v in position(0, 0).items() if k != "context"}}, INVALID_PARAMS),
    ("executeCommand {}", {"method": "workspace/executeCommand", "params": {}},
     INVALID_PARAMS),
    ("an unknown command", {"method": "workspace/executeCommand",
                            "params": {"command": "helios.nope"}}, INVALID_PARAMS),
    ("no method", {"method": OMIT}, INVALID_REQUEST),
    ("a numeric method", {"method": 42, "params": {}}, INVALID_REQUEST),
    ("a null method", {"method": None}, INVALID_REQUEST),
    ('jsonrpc "1.0"', {"jsonrpc": "1.0", "method": "shutdown"}, INVALID_REQUEST),
    ("no jsonrpc", {"jsonrpc": OMIT, "method": "shutdown"}, INVALID_REQUEST),
    ("a notification sent with an id", {"method": "textDocument/didClose", "params": {
        "textDocument": {"uri": "file:///w/a.py"}}}, INVALID_REQUEST),
    ("initialize again", {"method": "initialize", "params": {"capabilities": {}}},
     INVALID_REQUEST),
    ("an unknown method", {"method": "helios/unknown", "params": {}}, METHOD_NOT_FOUND),
]


def send_request(server: RawServer, msg_id: Any, fields: dict[str, Any]) -> None:
    message = {"jsonrpc": "2.0", "id": msg_id, **fields}
    server.send({k: v for k, v in message.items() if v is not OMIT})


def test_every_request_gets_an_answer(raw):
    server = raw()
    server.initialize()
    server.notify("textDocument/didOpen", {"textDocument": {
        "uri": "file:///w/a.py", "languageId": "python", "version": 1, "text": "x = 1\n"}})
    for number, (name, fields, code) in enumerate(BAD_REQUESTS):
        for msg_id in (number, f"id-{number}"):  # integer and string ids
            send_request(server, msg_id, fields)
            answer = server.response(msg_id, timeout=15)
            assert answer.get("error", {}).get("code") == code, (name, answer)
            assert_serving(server, name)
    # An id that is no id: answered with id null.
    for bad_id in ([1], {"a": 1}, 1.5, True):
        server.send({"jsonrpc": "2.0", "id": bad_id, "method": "shutdown"})
        assert_serving(server, f"id {bad_id!r}")
        errors = [r for r in server.responses() if r.get("id") is None]
        assert [e["error"]["code"] for e in errors] == [INVALID_REQUEST], (bad_id, errors)
        server.unmatched.remove(errors[0])
    # The same requests, well formed, still work.
    answer = server.request(INLINE, position(0, 5))
    assert "items" in answer["result"], answer
    assert server.close() == 0


def test_requests_before_initialize_are_refused_not_ignored(raw):
    server = raw()
    for method, params in ((INLINE, position(0, 0)), ("shutdown", None),
                           ("workspace/executeCommand", {"command": "helios.status"})):
        answer = server.request(method, params, timeout=15)
        assert answer.get("error", {}).get("code") == NOT_INITIALIZED, (method, answer)
        assert server.alive
    server.notify("textDocument/didOpen", {})  # dropped, never answered
    server.initialize()
    assert_serving(server, "requests before initialize")
    assert not [r for r in server.responses() if r.get("id") is None]


def test_requests_after_shutdown_are_refused(raw):
    server = raw()
    server.initialize()
    assert "result" in server.request("shutdown")
    answer = server.request("workspace/executeCommand", {"command": "helios.status"})
    assert answer.get("error", {}).get("code") == INVALID_REQUEST, answer
    server.notify("exit")
    assert server.proc.wait(20) == 0


BAD_NOTIFICATIONS: list[tuple[str, Any]] = [
    ("textDocument/didOpen", {}),
    ("textDocument/didOpen", None),
    ("textDocument/didChange", {"textDocument": {"uri": "file:///w/a.py", "version": 2},
                                "contentChanges": [{"range": {
                                    "start": {"line": -1, "character": 0},
                                    "end": {"line": 2**32, "character": 0}}, "text": "y"}]}),
    ("textDocument/didClose", {"textDocument": {"uri": 7}}),
    ("workspace/didChangeConfiguration", None),
    ("$/cancelRequest", {"id": [1]}),
    ("$/cancelRequest", None),
    ("initialized", "x"),
    ("$/helios/unknown", {"a": 1}),
    (42, {}),
]


def test_bad_notifications_are_dropped_and_logged_rate_limited(raw):
    server = raw()
    server.initialize()
    server.notify("textDocument/didOpen", {"textDocument": {
        "uri": "file:///w/a.py", "languageId": "python", "version": 1, "text": "x = 1\n"}})
    for method, params in BAD_NOTIFICATIONS:
        server.send({"jsonrpc": "2.0", "method": method, "params": params})
        assert_serving(server, f"notification {method} {params!r}"[:80])
    # A numeric method without an id is neither a request nor a notification: id null.
    nulls = [r for r in server.responses() if r.get("id") is None]
    assert [r["error"]["code"] for r in nulls] == [INVALID_REQUEST], nulls
    server.unmatched.clear()
    # A flood: a few log lines, then a count, not 500 lines.
    server.send_bytes(b"".join(encode({"jsonrpc": "2.0", "method": "textDocument/didOpen",
                                       "params": {}}) for _ in range(500)))
    assert_serving(server, "500 bad notifications")
    assert not server.responses()
    assert server.status()["documents"] == 1  # the bad didClose closed nothing
    assert server.close() == 0
    dropped = [line for line in server.log().splitlines() if "dropped" in line]
    assert 0 < len(dropped) <= 20, len(dropped)


# --- defect 7: client strings in the log -----------------------------------------------------

FORGED = "pytest\n1999-01-01 00:00:00,000 CRITICAL helios: FORGED LINE\x1b[2J\x1b[31m\u2028FORGED"


def test_client_strings_cannot_forge_or_colour_log_lines(raw):
    server = raw(HELIOS_DEBUG="1")  # debug: every log call that could quote the client runs
    server.initialize(clientInfo={"name": FORGED, "version": FORGED},
                      initializationOptions={FORGED: 1, "enabledLanguages": [FORGED]})
    uri = "file:///w/" + FORGED.replace("\n", "%0A")
    server.notify("textDocument/didOpen", {"textDocument": {
        "uri": FORGED, "languageId": FORGED, "version": 1, "text": "def f():\n    "}})
    server.notify("$/cancelRequest", {"id": FORGED})
    server.notify(FORGED, {FORGED: FORGED})
    server.request(INLINE, position(1, 4, uri=FORGED))
    server.request(INLINE, position(1, 4, uri=uri))
    server.request(FORGED, {FORGED: FORGED})
    server.request("workspace/executeCommand", {"command": FORGED})
    assert_serving(server, "forged strings")
    assert server.close() == 0
    log = server.log()
    # The client's name was logged, escaped onto the line that logs it.
    assert "client pytest\\n1999-01-01 00:00:00,000 CRITICAL helios: FORGED LINE\\x1b[2J" in log
    assert "\x1b" not in log
    assert "\u2028" not in log
    for line in log.split("\n"):
        assert not line.startswith(("1999-01-01", "FORGED")), line


# --- item 10: the engine's bound, from the language server -------------------------------------

async def test_completions_over_the_bound_are_answered_empty(lsp: StartLsp, isolated_env,
                                                             slow_model, capfd):
    bound, requests = 2, 6
    client = await lsp(env_for_model(isolated_env, slow_model, HELIOS_MAX_IN_FLIGHT=str(bound),
                                     HELIOS_TIME_BUDGET="60", HELIOS_TYPEAHEAD="false"),
                       init_options={"maxTokens": 64, "temperature": 0.0})
    await wait_until(client, lambda snap: snap["state"] == "ready", timeout=90)
    uris = [f"file:///w/overload{i}.py" for i in range(requests)]
    for uri in uris:  # one document each: nothing is superseded
        open_doc(client, uri, LONG)

    peak = 0
    answers = [asyncio.ensure_future(client.text_document_inline_completion_async(
        inline_params(uri, 1, 4))) for uri in uris]
    while not all(a.done() for a in answers):
        peak = max(peak, (await status(client))["engine"]["in_flight"])
        await asyncio.sleep(0.1)
    results = await asyncio.wait_for(asyncio.gather(*answers), 120)

    assert all(isinstance(r, types.InlineCompletionList) for r in results), results
    assert 1 <= peak <= bound
    engine = (await status(client))["engine"]
    assert engine["in_flight"] == 0
    stats = engine["stats"]
    # Exactly `bound` jobs ran; the others were refused at once and answered empty.
    ran = stats["completed"] + stats["cancelled"] + stats["failed"] + stats["dropped"]
    assert stats["requests"] == requests and ran == bound, stats
    assert sum(1 for r in results if not r.items) >= requests - bound
    # A refusal is routine under load: logged at debug, not as a failed completion.
    assert "too many completions in flight" not in capfd.readouterr().err


def test_the_language_server_raises_its_open_files_limit(isolated_env, tiny_model, tmp_path):
    """Without the HTTP sidecar too: every document and connection is an open file."""
    from tests.http.test_hardening import nofile_limits, soft_nofile

    with soft_nofile(256):
        server = RawServer.start(env_for_model(isolated_env, tiny_model), tmp_path / "lsp.log")
    try:
        server.request("initialize", {"capabilities": {}, "processId": None})
        soft, hard = nofile_limits(server.proc.pid)
        assert soft == hard and hard > 256
    finally:
        server.close()
