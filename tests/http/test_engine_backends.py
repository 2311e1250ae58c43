"""`helios serve` on an engine server: a real llama-server (built by `make llama-server`)
with the embedded model (prefix mode, /completion), a tiny FIM model (/infill), and its
OpenAI-compatible /v1/completions. Killed mid-test and brought back, Helios says so
(503 with a safe detail) and recovers without a restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gguf_factory import write_tiny_model
from tests.http.conftest import Server, completion, start, wait_for
from tests.llama_server import LlamaServer, find_binary, missing_reason

pytestmark = pytest.mark.skipif(find_binary() is None, reason=missing_reason())

FIBONACCI = "def fibonacci(n):\n    if n <= 1:\n        return n\n    "


@pytest.fixture(scope="module")
def embedded_llama(embedded_model: Path, tmp_path_factory) -> Iterator[LlamaServer]:
    with LlamaServer(embedded_model, log_path=tmp_path_factory.mktemp("ls") / "ls.log") as srv:
        yield srv


def serve_on(tmp: Path, engine: str, url: str, **helios: str) -> Server:
    return start(tmp, engine=engine, engine_url=url, **helios)


def test_llama_server_prefix_mode_answers_the_contract(embedded_llama: LlamaServer,
                                                       tmp_path: Path):
    server = serve_on(tmp_path, "llama-server", f"http://user:pw@127.0.0.1:{embedded_llama.port}",
                      engine_api_key="not-a-real-key")
    try:
        health = server.get("/health").json()
        assert health["status"] == "healthy" and health["model_loaded"] is True
        reply = server.post("/complete", {
            "code": FIBONACCI, "language": "python", "filename": "fibonacci.py",
            "position": {"line": 3, "character": 4}, "temperature": 0})
        assert reply.status == 200, reply
        body = reply.json()
        assert body["suggestion"].strip() and 0 < body["confidence"] <= 1
        assert "\n" not in body["suggestion"]  # cleaned by Helios's rules: one line here
        status = server.status()
        assert status["model_name"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
        engine = status["engine"]
        assert engine["backend"] == "llama-server"
        assert engine["engine_url"] == f"http://127.0.0.1:{embedded_llama.port}"
        assert "/completion" in engine["prompt_mode"]
        text = server.get("/status").body.decode() + server.log()
        assert "pw@" not in text and "not-a-real-key" not in text
        # The next keystroke reuses the server's prompt cache.
        again = server.post("/complete", {
            "code": FIBONACCI + "r", "language": "python", "filename": "fibonacci.py",
            "position": {"line": 3, "character": 5}, "temperature": 0})
        assert again.status == 200
        last = server.status()["engine"]["last_job"]
        if last["stop_reason"] != "typeahead":
            assert last["reused_tokens"] > last["evaluated_tokens"]
        assert server.post("/restart", {}).status == 200
        server.wait_status(lambda s: s["model_loaded"], "the reconnection")
    finally:
        assert server.stop() == 0


def test_infill_with_a_fim_model(tmp_path: Path):
    model = write_tiny_model(tmp_path / "fim.gguf", fim="codellama")
    with LlamaServer(model, log_path=tmp_path / "ls.log") as llama:
        server = serve_on(tmp_path, "llama-server", llama.url)
        try:
            assert "/infill" in server.status()["engine"]["prompt_mode"]
            reply = server.post("/complete", completion("x = foo(", suffix=")\n", max_tokens=4))
            assert reply.status == 200, reply
        finally:
            assert server.stop() == 0


UTIL = "def compute_total(items):\n    return sum(items)\n\n\ndef describe(items):\n    pass\n"
MAIN = "import util\n\n\ndef run(items):\n    return util."


def _with_context(server: Server, code: str) -> dict:
    return server.post("/complete", {
        "code": code, "language": "python", "filename": "main.py", "max_tokens": 4,
        "position": {"line": code.count("\n"), "character": len(code.rsplit("\n", 1)[-1])},
        "temperature": 0, "context": [{"filename": "util.py", "text": UTIL}]},
        client="context-test")


@pytest.mark.parametrize("mode", ["/completion", "/infill"])
def test_the_context_reaches_llama_server(embedded_model: Path, tmp_path: Path, mode: str):
    """The block of other files goes to a real llama-server: as comment-headed snippets in
    the /completion prompt, as `input_extra` to /infill (the prompt it evaluates grows)."""
    model = embedded_model if mode == "/completion" else write_tiny_model(
        tmp_path / "fim.gguf", fim="codellama", n_ctx_train=8192)
    # /infill takes other files only into the context left beyond one batch (-b): a server
    # whose context is no bigger than its batch drops them all.
    with LlamaServer(model, log_path=tmp_path / "ls.log", args=["-b", "512"]) as llama:
        server = serve_on(tmp_path, "llama-server", llama.url, typeahead="false")
        try:
            assert mode in server.status()["engine"]["prompt_mode"]
            first = _with_context(server, MAIN)
            assert first.status == 200, first
            alone = server.status()["engine"]["last_job"]["prompt_tokens"]
            # The block is chosen and warmed in the background, then used.
            server.wait_status(lambda s: s["engine"]["stats"]["context_blocks"] >= 1,
                               "a context block in use")
            again = _with_context(server, MAIN + "c")
            assert again.status == 200, again
            engine = server.status()["engine"]
            assert engine["context"]["last_prompt"]["files"] == ["util.py"]
            assert engine["last_job"]["prompt_tokens"] > alone + 10
        finally:
            assert server.stop() == 0


def test_openai_backend_on_llama_servers_v1(embedded_llama: LlamaServer, tmp_path: Path):
    server = serve_on(tmp_path, "openai", f"{embedded_llama.url}/v1")
    try:
        status = server.status()
        assert status["engine"]["backend"] == "openai"
        assert "without FIM" in status["engine"]["prompt_mode"]  # SmolLM2: plain prompts
        # No healing over /v1 (no grammar there): a prompt that does not end in indentation.
        reply = server.post("/complete", {
            "code": "def add(a, b):\n    return a", "language": "python", "filename": "add.py",
            "position": {"line": 1, "character": 12}, "temperature": 0})
        assert reply.status == 200, reply
        assert reply.json()["suggestion"].strip()
    finally:
        assert server.stop() == 0


def test_engine_server_killed_and_back(embedded_model: Path, tmp_path: Path):
    llama = LlamaServer(embedded_model, log_path=tmp_path / "ls.log").start()
    server = serve_on(tmp_path, "llama-server", llama.url)
    try:
        assert server.post("/complete", completion("x = ", max_tokens=2)).status == 200
        port = llama.port
        llama.kill()
        reply = server.post("/complete", completion("y = ", max_tokens=2))
        assert reply.status == 503, reply
        assert reply.json()["error_code"] == "MODEL_NOT_LOADED"
        assert "not reachable" in reply.json()["detail"]
        assert "retries by itself" in reply.json()["detail"]  # no restart is needed
        assert server.get("/health").status == 503
        llama = LlamaServer(embedded_model, port=port, log_path=tmp_path / "ls2.log").start()
        wait_for(lambda: server.get("/health").status == 200, "Helios to recover", 60)
        assert server.post("/complete", completion("z = ", max_tokens=2)).status == 200
        assert "is back" in server.log()
    finally:
        llama.stop()
        assert server.stop() == 0
