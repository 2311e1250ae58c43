"""A model file that makes llama.cpp abort cannot take the HTTP server down, at start or on
POST /restart after the file was swapped (before the probe: SIGABRT, exit 134, empty log)."""

from __future__ import annotations

from pathlib import Path

from tests.gguf_factory import write_aborting_model, write_tiny_model
from tests.http.conftest import completion, start


def test_a_model_that_aborts_llama_cpp_leaves_the_server_up(tmp_path: Path):
    bad = write_aborting_model(tmp_path / "bad.gguf")
    server = start(tmp_path, expect="unhealthy", model=str(bad), cache_dir=str(tmp_path / "c"))
    try:
        health = server.get("/health")
        assert health.status == 503 and health.json()["status"] == "unhealthy"
        assert "SIGABRT" in health.json()["detail"]  # /health says why
        status = server.status()
        assert status["model_status"] == "failed"
        assert "refused" in status["load_error"] and "SIGABRT" in status["load_error"]
        assert str(tmp_path) not in server.get("/status").body.decode()
        reply = server.post("/complete", completion("x = "))
        assert reply.status == 503 and reply.json()["error_code"] == "MODEL_NOT_LOADED"
        assert "GGML_ASSERT" in server.log()  # the local log has llama.cpp's last words
        assert server.alive()
    finally:
        assert server.stop() == 0


def test_swapping_the_file_then_restarting_is_refused_and_swapping_back_recovers(tmp_path: Path):
    path = write_tiny_model(tmp_path / "model.gguf")
    good = path.read_bytes()
    server = start(tmp_path, model=str(path), cache_dir=str(tmp_path / "c"))
    try:
        assert server.post("/complete", completion("x = ", max_tokens=2)).status == 200
        write_aborting_model(path)
        assert server.post("/restart", {}).status == 200
        status = server.wait_status(lambda s: s["model_status"] == "failed", "the refusal")
        assert "SIGABRT" in status["load_error"]
        assert server.alive() and server.get("/health").status == 503

        path.write_bytes(good)  # a new mtime: tried again, loads
        assert server.post("/restart", {}).status == 200
        server.wait_status(lambda s: s["model_status"] == "ready", "the reload")
        assert server.post("/complete", completion("x = ", max_tokens=2)).status == 200
    finally:
        assert server.stop() == 0
