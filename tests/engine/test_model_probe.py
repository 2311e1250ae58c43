"""A model file that makes llama.cpp abort is refused, and the process that asked survives.

Before the probe, loading these files killed the whole server with SIGABRT (exit 134): this
test process would have died with them."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from helios_lsp.engine import Engine, EngineState
from helios_lsp.engine.model_probe import ModelRefusedError, VerdictCache, check_model_file
from helios_lsp.settings import Settings
from tests.gguf_factory import write_aborting_model, write_tiny_model


def settings_for(model: Path, cache: Path) -> Settings:
    return Settings(model=str(model), n_threads=1, cache_dir=str(cache))


@pytest.mark.parametrize("block_count", [0, 600])
async def test_a_model_that_aborts_llama_cpp_is_refused(tmp_path: Path, block_count: int):
    bad = write_aborting_model(tmp_path / "bad.gguf", block_count=block_count)
    engine = Engine(settings_for(bad, tmp_path / "cache"))
    with pytest.raises(ModelRefusedError):
        await engine.load()
    assert engine.state is EngineState.FAILED
    public = engine.load_error_public or ""
    assert "SIGABRT" in public and "refused" in public
    assert str(tmp_path) not in public  # the reason users see names no path
    await engine.close()


async def test_the_verdict_is_remembered(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    bad = write_aborting_model(tmp_path / "bad.gguf")
    cache = tmp_path / "cache"
    caplog.set_level(logging.INFO, logger="helios_lsp.engine.model_probe")
    with pytest.raises(ModelRefusedError):
        check_model_file(bad, cache_dir=cache, n_threads=1)
    assert "GGML_ASSERT" in caplog.text  # llama.cpp's last words reach the log
    caplog.clear()
    with pytest.raises(ModelRefusedError):
        check_model_file(bad, cache_dir=cache, n_threads=1)
    assert "remembered from an earlier test load" in caplog.text
    assert (cache / "model-probes.json").stat().st_mode & 0o777 == 0o600
    assert not (cache.stat().st_mode & 0o077)  # the verdicts are this user's alone


async def test_a_replaced_file_is_probed_again(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    path = write_tiny_model(tmp_path / "m.gguf")
    cache = tmp_path / "cache"
    caplog.set_level(logging.INFO, logger="helios_lsp.engine.model_probe")
    check_model_file(path, cache_dir=cache, n_threads=1)
    assert caplog.text.count("passed its test load") == 1
    check_model_file(path, cache_dir=cache, n_threads=1)  # cached: no second child
    assert caplog.text.count("passed its test load") == 1
    # The same path swapped for a file that aborts llama.cpp (a new mtime): probed again.
    write_aborting_model(path)
    os.utime(path, ns=(1, 1))
    with pytest.raises(ModelRefusedError):
        check_model_file(path, cache_dir=cache, n_threads=1)


def test_a_cache_others_can_write_is_not_trusted(tmp_path: Path):
    cache = tmp_path / "cache"
    bad = write_aborting_model(tmp_path / "bad.gguf")
    with pytest.raises(ModelRefusedError):
        check_model_file(bad, cache_dir=cache, n_threads=1)
    assert VerdictCache(cache).get(next(iter(_entries(cache)))) is not None
    cache.chmod(0o777)  # anyone could have written "ok" for this file
    assert all(VerdictCache(cache).get(key) is None for key in _entries(cache))


def _entries(cache: Path) -> list[str]:
    import json

    return list(json.loads((cache / "model-probes.json").read_text()))
