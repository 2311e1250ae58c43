"""Every endpoint of the API document against a real `helios serve` on the embedded model."""

from __future__ import annotations

import time
import uuid

from tests.http.conftest import Server, completion, long_code, read_reply

# The request bodies of the API document's two curl examples, byte for byte (curl -d sends
# the quoted text as is; JSON then reads each \n as a newline).
FACTORIAL_BODY = b"""{
    "code": "def factorial(n):\\n    if n == 0:\\n        return 1\\n    else:\\n        ",
    "language": "python",
    "position": {"line": 4, "character": 8},
    "filename": "math_utils.py"
  }"""
SUM_BODY = b"""{
    "code": "function calculateSum(arr) {\\n    let total = 0;\\n    for (let i = 0; i < arr.length; i++) {\\n        ",
    "language": "javascript",
    "position": {"line": 3, "character": 8},
    "filename": "utils.js"
  }"""  # noqa: E501 - verbatim
# The request body of the document's /complete section.
FIBONACCI_BODY = b"""{
  "code": "def fibonacci(n):\\n    if n <= 1:\\n        return n\\n    ",
  "language": "python",
  "position": {
    "line": 3,
    "character": 4
  },
  "filename": "fibonacci.py",
  "max_tokens": 100,
  "temperature": 0.1
}"""


def assert_completion(reply, wall: float) -> dict:
    assert reply.status == 200, reply
    assert reply.headers["Content-Type"].startswith("application/json")
    body = reply.json()
    assert set(body) == {"suggestion", "confidence", "processing_time"}
    assert isinstance(body["suggestion"], str)
    assert isinstance(body["confidence"], float) and 0.0 <= body["confidence"] <= 1.0
    assert isinstance(body["processing_time"], float) and 0 <= body["processing_time"] <= wall
    return body


def curl(server: Server, body: bytes):
    """What `curl -X POST URL -H "Content-Type: application/json" -d '...'` sends."""
    started = time.perf_counter()
    reply = server.request("POST", "/complete", body, {
        "Host": f"localhost:{server.port}", "User-Agent": "curl/7.88.1", "Accept": "*/*",
        "Content-Type": "application/json"})
    return reply, time.perf_counter() - started


def test_doc_curl_examples_give_real_suggestions(embedded_server: Server):
    before = embedded_server.stats()
    for body in (FACTORIAL_BODY, SUM_BODY):
        reply, wall = curl(embedded_server, body)
        result = assert_completion(reply, wall)
        assert result["suggestion"].strip(), "the embedded model suggested nothing"
        assert result["confidence"] > 0.0
    after = embedded_server.stats()
    assert after["requests"] - before["requests"] == 2
    assert after["completed"] - before["completed"] == 2


def test_doc_fibonacci_request(embedded_server: Server):
    reply, wall = curl(embedded_server, FIBONACCI_BODY)
    assert_completion(reply, wall)


def test_health_when_ready(embedded_server: Server):
    first = embedded_server.get("/health")
    second = embedded_server.get("/health")
    assert first.status == 200
    body = first.json()
    assert set(body) == {"status", "model_loaded", "server_version", "uptime"}
    assert body["status"] == "healthy"
    assert body["model_loaded"] is True
    assert body["server_version"] == "0.1.0"
    assert isinstance(body["uptime"], float) and 0 < body["uptime"] <= second.json()["uptime"]


def test_status(embedded_server: Server):
    reply = embedded_server.get("/status")
    assert reply.status == 200
    body = reply.json()
    assert {"server_status", "model_loaded", "model_name", "uptime", "config"} <= set(body)
    assert body["server_status"] == "running"
    assert body["model_loaded"] is True
    assert body["model_name"] == "SmolLM2-135M-Instruct (Q4_1, embedded)"  # what was loaded
    assert body["config"] == {"max_tokens": 100, "temperature": 0.1, "host": "127.0.0.1",
                              "port": embedded_server.port}
    assert body["limits"] == {"max_tokens_limit": 1024, "rate_limit_per_second": 10.0,
                              "rate_burst": 20, "max_in_flight": 5, "max_body_bytes": 1048576}
    stats = body["engine"]["stats"]
    assert {"requests", "completed", "cancelled", "dropped", "superseded", "failed",
            "prompt_tokens_evaluated", "prompt_tokens_reused", "generated_tokens"} <= set(stats)


def test_engine_counters_move(embedded_server: Server):
    code = f"# {uuid.uuid4().hex}\ndef add(a, b):\n    "
    before = embedded_server.stats()
    assert embedded_server.post("/complete", completion(code)).status == 200
    # The same text and a few more characters: the prompt's start is served from the cache.
    assert embedded_server.post("/complete", completion(code + "retu")).status == 200
    after = embedded_server.stats()
    assert after["requests"] - before["requests"] == 2
    assert after["completed"] - before["completed"] == 2
    assert after["prompt_tokens_evaluated"] > before["prompt_tokens_evaluated"]
    assert after["prompt_tokens_reused"] > before["prompt_tokens_reused"]


def test_crlf_code_is_completed_like_lf_code(embedded_server: Server):
    """CR LF reaches the engine over HTTP: it must see the same text as for LF (it did not:
    the prompt had the CRs, and type-ahead never matched a Windows client's text)."""
    tag = uuid.uuid4().hex
    lf_code = f"# {tag}\ndef add(a, b):\n    \"\"\"Add two numbers.\"\"\"\n    return "
    crlf_code = lf_code.replace("\n", "\r\n")
    suffix = "\n\nprint(add(1, 2))\n"

    def ask(code: str, filename: str, suffix: str) -> str:
        body = completion(code, filename=filename, suffix=suffix, temperature=0, max_tokens=16)
        body["position"] = completion(lf_code)["position"]  # the same cursor either way
        # One client throughout: type-ahead is per (client, document).
        reply = embedded_server.post("/complete", body, client=f"crlf-test-{tag}")
        assert reply.status == 200, reply
        return reply.json()["suggestion"]

    lf = ask(lf_code, f"lf-{tag}.py", suffix)
    assert lf.strip(), "the embedded model suggested nothing"
    # Another document (no type-ahead): the model runs on the CR LF text.
    assert ask(crlf_code, f"crlf-{tag}.py", suffix.replace("\n", "\r\n")) == lf
    # The LF document again, now in CR LF: the same text, so type-ahead answers it.
    before = embedded_server.stats()["typeahead_hits"]
    assert ask(crlf_code, f"lf-{tag}.py", suffix.replace("\n", "\r\n")) == lf
    assert embedded_server.stats()["typeahead_hits"] == before + 1


def test_optional_fields_and_suffix(embedded_server: Server):
    code = f"# {uuid.uuid4().hex}\ndef is_even(n):\n    return "
    # temperature 0 written as an integer is a valid number
    with_all = completion(code, suffix="\n\nprint(is_even(4))\n", max_tokens=1, temperature=0)
    started = time.perf_counter()
    reply = embedded_server.post("/complete", with_all)
    assert_completion(reply, time.perf_counter() - started)
    # One token, plus the one token healing may re-create from the prompt's end.
    assert embedded_server.status()["engine"]["last_job"]["generated_tokens"] <= 2


def test_openapi_json(embedded_server: Server):
    reply = embedded_server.get("/openapi.json")
    assert reply.status == 200
    doc = reply.json()
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["version"] == "0.1.0"
    request = doc["components"]["schemas"]["CompletionRequest"]
    assert request["properties"]["max_tokens"]["maximum"] == 1024


def test_restart_answers_at_once(embedded_server: Server):
    loads = embedded_server.stats()["loads"]
    reply = embedded_server.post("/restart", {})
    assert reply.status == 200
    assert reply.json() == {"message": "Server restart initiated"}
    status = embedded_server.wait_status(lambda s: s["model_loaded"], "the reload")
    assert status["engine"]["stats"]["loads"] == loads + 1
    # An empty body is as good as {}.
    reply = embedded_server.request("POST", "/restart", b"", {
        "Content-Type": "application/json", "X-Helios-Client": "restart-empty"})
    assert reply.status == 200
    embedded_server.wait_status(lambda s: s["engine"]["stats"]["loads"] == loads + 2,
                                "the second reload")


def test_a_newer_request_for_the_same_document_supersedes(embedded_server: Server):
    before = embedded_server.stats()
    older = embedded_server.send_json(
        "/complete", completion(long_code(uuid.uuid4().hex[:8], 60), filename="doc.py"),
        client="editor-1")
    embedded_server.wait_status(
        lambda s: s["engine"]["busy"] and s["engine"]["stats"]["requests"] > before["requests"],
        "the older request to run")
    newer = embedded_server.send_json("/complete", completion("x = 1\n", filename="doc.py"),
                                      client="editor-1")
    with older, newer:
        old_reply, new_reply = read_reply(older), read_reply(newer)
    assert old_reply.status == 200, old_reply
    assert old_reply.headers["X-Helios-Superseded"] == "1"
    assert old_reply.json()["suggestion"] == "" and old_reply.json()["confidence"] == 0.0
    assert new_reply.status == 200, new_reply
    assert "X-Helios-Superseded" not in new_reply.headers
    after = embedded_server.stats()
    assert after["superseded"] - before["superseded"] == 1
