"""Over HTTP, `position.line` anchors the prompt: a script that sends only the last 6,000
characters before the cursor (as the API doc allows) keeps its KV cache while typing."""

from __future__ import annotations

from pathlib import Path

from tests.engine.test_trimmed_clients import CUT, TYPED, argparse_text
from tests.gguf_factory import write_tiny_model
from tests.http.conftest import start

CURSOR_LINE = 1500


def test_a_client_sending_the_last_6000_chars_keeps_the_kv_cache(tmp_path: Path):
    model = write_tiny_model(tmp_path / "wide.gguf", n_ctx_train=32768)
    server = start(tmp_path, model=str(model), n_ctx="32768", typeahead="false")
    before, _ = argparse_text(CURSOR_LINE)
    evaluated = []
    try:
        for k in range(1, 8):
            code = (before + TYPED[:k])[-CUT:]
            reply = server.post("/complete", {
                "code": code, "language": "python", "filename": "argparse.py",
                "position": {"line": CURSOR_LINE, "character": k},
                "max_tokens": 1, "temperature": 0.0})
            assert reply.status == 200, reply
            evaluated.append(server.status()["engine"]["last_job"]["evaluated_tokens"])
    finally:
        assert server.stop() == 0
    assert evaluated[0] > 1000
    assert max(evaluated[1:]) <= 5, evaluated
