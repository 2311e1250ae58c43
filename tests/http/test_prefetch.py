"""POST /prefetch: the /complete body, answered 202 at once; the place's prompt is then
evaluated while the server is idle, and the first keystroke there starts warm."""

from __future__ import annotations

import time
from pathlib import Path

from tests.engine.test_trimmed_clients import argparse_text
from tests.gguf_factory import write_tiny_model
from tests.http.conftest import start


def test_prefetch_then_the_first_keystroke_is_warm(tmp_path: Path):
    model = write_tiny_model(tmp_path / "wide.gguf", n_ctx_train=16384)
    server = start(tmp_path, model=str(model), n_ctx="16384", typeahead="false")
    before, _ = argparse_text(700)
    code = before[-6000:]
    body = {"code": code, "language": "python", "filename": "argparse.py",
            "position": {"line": 700, "character": 0}, "max_tokens": 1, "temperature": 0.0}
    try:
        started = time.monotonic()
        reply = server.post("/prefetch", body)
        assert reply.status == 202 and reply.json() == {"accepted": True}
        assert time.monotonic() - started < 5  # answered before the work, not after it
        status = server.wait_status(
            lambda s: s["engine"]["stats"]["prefetch_tokens"] > 1000 and not s["engine"]["busy"],
            "the warming")
        assert status["engine"]["stats"]["prefetches"] == 1
        first = server.post("/complete", {**body, "code": code + "p",
                                          "position": {"line": 700, "character": 1}})
        assert first.status == 200
        assert server.status()["engine"]["last_job"]["evaluated_tokens"] <= 5
        bad = server.post("/prefetch", {"code": 5})
        assert bad.status == 400 and bad.json()["error_code"] == "INVALID_REQUEST"
    finally:
        assert server.stop() == 0
