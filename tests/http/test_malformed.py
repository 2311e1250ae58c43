"""A battery of malformed requests against a real server: each is answered 4xx in the error
format, with a detail that says what was wrong and gives nothing away, and the server goes on.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.http.conftest import Server, completion

VALID = {"code": "def f(x):\n    return ", "language": "python",
         "position": {"line": 1, "character": 11}, "filename": "f.py"}
MiB = 1024 * 1024


def with_(**changes: object) -> bytes:
    return json.dumps({**VALID, **changes}).encode()


def without(name: str) -> bytes:
    return json.dumps({k: v for k, v in VALID.items() if k != name}).encode()


def at(line: object = 1, character: object = 11) -> bytes:
    return with_(position={"line": line, "character": character})


def raw_field(name: str, literal: str) -> bytes:
    """VALID with `name` set to a raw JSON literal (for what json.dumps would not write)."""
    body = json.dumps({**VALID, name: "__RAW__"})
    return body.replace('"__RAW__"', literal).encode()


@dataclass
class Case:
    name: str
    body: bytes | None
    status: int = 400
    code: str = "INVALID_REQUEST"
    says: str = ""
    method: str = "POST"
    path: str = "/complete"
    headers: dict[str, str | None] = field(default_factory=dict)


CASES = [
    # --- the body is not a JSON object ---
    Case("truncated JSON", b'{"code": "x", ', says="not valid JSON"),
    Case("empty body", b"", says="not valid JSON"),
    Case("single-quoted JSON", b"{'code': 'x'}", says="not valid JSON"),
    Case("trailing garbage", with_() + b" x", says="not valid JSON"),
    Case("JSON array", b"[]", says="must be a JSON object"),
    Case("JSON string", b'"def f():"', says="must be a JSON object"),
    Case("JSON null", b"null", says="must be a JSON object"),
    Case("JSON number", b"42", says="must be a JSON object"),
    Case("not UTF-8", b'{"code": "\xff\xfe"}', says="not valid UTF-8"),
    Case("UTF-8 byte order mark", b"\xef\xbb\xbf" + with_(), says="not valid JSON"),
    Case("nested 100000 deep", b'{"code": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
         says="nested too deeply"),
    Case("duplicate key", b'{"code": "a", "code": "b", "language": "python", '
         b'"position": {"line": 0, "character": 1}, "filename": "a.py"}',
         says="the field 'code' appears twice"),
    # --- missing or unknown fields ---
    Case("missing code", without("code"), says="code: Field required"),
    Case("missing language", without("language"), says="language: Field required"),
    Case("missing position", without("position"), says="position: Field required"),
    Case("missing filename", without("filename"), says="filename: Field required"),
    Case("empty object", b"{}", says="code: Field required"),
    Case("unknown field", with_(prompt="x"), says="unknown field 'prompt'"),
    Case("position without line", with_(position={"character": 1}),
         says="position.line: Field required"),
    Case("position extra field", with_(position={"line": 1, "character": 1, "col": 2}),
         says="unknown field 'position.col'"),
    # --- wrong types ---
    Case("code is a number", with_(code=12), says="code: Input should be a valid string"),
    Case("code is null", with_(code=None), says="code: Input should be a valid string"),
    Case("code is a list", with_(code=["def"]), says="code: Input should be a valid string"),
    Case("language is a list", with_(language=["python"]), says="language: Input should be"),
    Case("filename is an object", with_(filename={"name": "a.py"}), says="filename:"),
    Case("suffix is a number", with_(suffix=3), says="suffix: Input should be a valid string"),
    Case("position is a list", with_(position=[1, 11]), says="position: should be a JSON object"),
    Case("position is a string", with_(position="1:11"), says="position: should be a JSON"),
    Case("line is a string", at(line="1"), says="position.line: Input should be a valid integer"),
    Case("line is a float", at(line=1.5), says="position.line: Input should be a valid integer"),
    Case("line is 1.0", at(line=1.0), says="position.line: Input should be a valid integer"),
    Case("line is true", at(line=True), says="position.line: Input should be a valid integer"),
    Case("character is false", at(character=False), says="position.character"),
    Case("max_tokens is true", with_(max_tokens=True), says="max_tokens: Input should be a valid"),
    Case("max_tokens is a string", with_(max_tokens="100"), says="max_tokens: Input should be"),
    Case("max_tokens is a float", with_(max_tokens=100.5), says="max_tokens: Input should be"),
    Case("max_tokens is null", with_(max_tokens=None), says="max_tokens: Input should be"),
    Case("temperature is true", with_(temperature=True), says="temperature: Input should be"),
    Case("temperature is a string", with_(temperature="0.1"), says="temperature: Input should"),
    # --- numbers out of bounds ---
    Case("negative line", at(line=-1), says="position.line: Input should be greater than or"),
    Case("negative character", at(character=-4), says="position.character: Input should be"),
    Case("line past 2^31", at(line=2**31), says="position.line: Input should be less than"),
    Case("line 2^64", at(line=2**64), says="position.line"),
    Case("max_tokens 0", with_(max_tokens=0), says="max_tokens: Input should be greater than"),
    Case("max_tokens negative", with_(max_tokens=-5), says="max_tokens: Input should be greater"),
    Case("max_tokens over the maximum", with_(max_tokens=1025),
         says="max_tokens: Input should be less than or equal to 1024"),
    Case("max_tokens 10^30", with_(max_tokens=10**30), says="max_tokens"),
    Case("max_tokens with 5000 digits", raw_field("max_tokens", "1" * 5000),
         says="number too large"),
    Case("temperature 1.5", with_(temperature=1.5), says="temperature: Input should be less"),
    Case("temperature negative", with_(temperature=-0.1), says="temperature: Input should be"),
    Case("temperature 999999", with_(temperature=999999), says="temperature"),
    Case("temperature NaN", raw_field("temperature", "NaN"), says="NaN is not a JSON number"),
    Case("temperature Infinity", raw_field("temperature", "Infinity"), says="Infinity is not"),
    Case("temperature -Infinity", raw_field("temperature", "-Infinity"), says="-Infinity"),
    Case("temperature 1e400", raw_field("temperature", "1e400"), says="too large"),
    Case("max_tokens NaN", raw_field("max_tokens", "NaN"), says="NaN is not a JSON number"),
    Case("line Infinity", b'{"code": "x", "language": "python", "position": {"line": '
         b'Infinity, "character": 0}, "filename": "a.py"}', says="Infinity"),
    # --- text ---
    Case("lone high surrogate in code", with_(code="x = '\ud800'"),
         says="code: text contains an unpaired UTF-16 surrogate"),
    Case("lone low surrogate in filename", with_(filename="\udfff.py"), says="filename: text"),
    Case("lone surrogate in suffix", with_(suffix="\udbff"), says="suffix: text contains"),
    Case("lone surrogate in language", with_(language="py\ud800"), says="language: text"),
    Case("language too long", with_(language="x" * 65), says="language: String should have"),
    Case("filename too long", with_(filename="a" * 5000), says="filename: String should have"),
    # --- the optional context: other files ---
    Case("context is an object", with_(context={"filename": "a.py", "text": "x"}),
         says="context: Input should be a valid list"),
    Case("context file without text", with_(context=[{"filename": "a.py"}]),
         says="context.0.text: Field required"),
    Case("context file without name", with_(context=[{"text": "x = 1\n"}]),
         says="context.0.filename: Field required"),
    Case("context file with an empty name", with_(context=[{"filename": "", "text": "x"}]),
         says="context.0.filename: String should have at least 1 character"),
    Case("context text is a number", with_(context=[{"filename": "a.py", "text": 3}]),
         says="context.0.text: Input should be a valid string"),
    Case("context file extra field", with_(context=[{"filename": "a.py", "text": "", "uri": 1}]),
         says="unknown field 'context.0.uri'"),
    Case("17 context files", with_(context=[{"filename": f"f{i}.py", "text": ""}
                                            for i in range(17)]),
         says="context: List should have at most 16 items"),
    Case("a context file over 256 Ki characters",
         with_(context=[{"filename": "big.py", "text": "x" * (256 * 1024 + 1)}]),
         says="context.0.text: String should have at most 262144 characters"),
    Case("context over 512 Ki characters together",
         with_(context=[{"filename": f"f{i}.py", "text": "x" * (200 * 1024)} for i in range(3)]),
         says="more than 524288 characters together"),
    Case("lone surrogate in a context file", with_(context=[{"filename": "a.py",
                                                             "text": "\ud800"}]),
         says="context.0.text: text contains an unpaired UTF-16 surrogate"),
    Case("context on /prefetch, 17 files", with_(context=[{"filename": f"f{i}.py", "text": ""}
                                                          for i in range(17)]),
         path="/prefetch", says="at most 16 items"),
    # --- HTTP level ---
    Case("body over 1 MiB", with_(code="x" * (MiB + 1)), status=413, code="PAYLOAD_TOO_LARGE",
         says="larger than 1048576 bytes"),
    Case("text/plain body", with_(), status=415, code="UNSUPPORTED_MEDIA_TYPE",
         headers={"Content-Type": "text/plain"}),
    Case("form body", b"code=x", status=415, code="UNSUPPORTED_MEDIA_TYPE",
         headers={"Content-Type": "application/x-www-form-urlencoded"}),
    Case("no content type", with_(), status=415, code="UNSUPPORTED_MEDIA_TYPE",
         headers={"Content-Type": None}),
    Case("GET /complete", None, method="GET", status=405, code="METHOD_NOT_ALLOWED",
         says="use POST"),
    Case("PUT /health", b"{}", method="PUT", path="/health", status=405,
         code="METHOD_NOT_ALLOWED", says="use GET"),
    Case("DELETE /restart", None, method="DELETE", path="/restart", status=405,
         code="METHOD_NOT_ALLOWED"),
    Case("unknown path", None, method="GET", path="/v1/completions", status=404,
         code="NOT_FOUND", says="/openapi.json"),
    Case("path traversal", None, method="GET", path="/../../etc/passwd", status=404,
         code="NOT_FOUND"),
    Case("restart with a non-object body", b"[1]", path="/restart", says="JSON object"),
    Case("restart with fields", b'{"model": "/tmp/x.gguf"}', path="/restart",
         says="unknown field 'model'"),
    Case("bad client id", with_(), headers={"X-Helios-Client": "two words"},
         says="X-Helios-Client"),
    Case("foreign Host", with_(), status=403, code="FORBIDDEN",
         headers={"Host": "rebind.example:8000"}),
    Case("web page Origin", with_(), status=403, code="FORBIDDEN",
         headers={"Origin": "https://evil.example"}),
]

ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
SECRETS = [str(Path.home()), os.getcwd(), "Traceback", "site-packages", ".gguf", 'File "']


def test_the_battery_is_big_enough():
    assert len(CASES) >= 30
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_malformed_request(tiny_server: Server, case: Case):
    headers: dict[str, str | None] = {
        "X-Helios-Client": f"battery-{uuid.uuid4().hex[:8]}",  # a bucket of its own
        **({"Content-Type": "application/json"} if case.body is not None else {}),
        **case.headers,
    }
    reply = tiny_server.request(case.method, case.path, case.body, headers)
    assert reply.status == case.status, reply
    assert reply.headers["Content-Type"].startswith("application/json")
    body = reply.json()
    assert set(body) == {"detail", "error_code", "timestamp"}, body
    assert body["error_code"] == case.code
    assert ISO_UTC.fullmatch(body["timestamp"])
    assert isinstance(body["detail"], str) and len(body["detail"]) >= 10
    assert case.says in body["detail"]
    assert len(body["detail"]) < 600  # never the input echoed back
    for secret in SECRETS:
        assert secret not in body["detail"]


def test_the_server_is_fine_after_the_battery(tiny_server: Server):
    assert tiny_server.alive()
    reply = tiny_server.post("/complete", completion("x = ", max_tokens=2))
    assert reply.status == 200
    # Nothing malformed reached the engine.
    assert tiny_server.stats()["failed"] == 0


@pytest.mark.parametrize("fields", [
    {"max_tokens": 1}, {"max_tokens": 1024}, {"temperature": 0}, {"temperature": 1},
    {"temperature": 0.0}, {"temperature": 1.0}, {"suffix": ""}, {"code": ""},
    {"position": {"line": 0, "character": 0}}, {"language": ""}, {"filename": ""},
    {"code": "s = 'caf\u00e9 \U0001F600'\n"}, {"code": "nul\u0000byte = 1\n"},
    {"language": "brainfuck", "filename": "x.bf"},
    {"context": []}, {"context": None},
    {"context": [{"filename": "util.py", "text": "def helper():\n    pass\n"},
                 {"filename": ".env", "text": "KEY=1\n"}]},
    {"context": [{"filename": f"f{i}.py", "text": "y" * (30 * 1024)} for i in range(16)]},
])
def test_edge_values_are_accepted(tiny_server: Server, fields: dict):
    reply = tiny_server.post("/complete", {**VALID, **{"max_tokens": 4}, **fields})
    assert reply.status == 200, reply
