"""Engines that run on a server: llama.cpp's llama-server, or any OpenAI-compatible one."""

from __future__ import annotations

from helios_lsp.engine.remote.client import Generated, RemoteEngine, RemoteInfo, public_url
from helios_lsp.engine.remote.llama_server import LlamaServerEngine
from helios_lsp.engine.remote.openai import OpenAIEngine
from helios_lsp.settings import Settings


def make_remote(settings: Settings) -> RemoteEngine | None:
    """The remote engine `settings.engine` names, or None for the local one."""
    if settings.engine == "llama-server":
        return LlamaServerEngine(settings)
    if settings.engine == "openai":
        return OpenAIEngine(settings)
    return None


__all__ = ["Generated", "RemoteEngine", "RemoteInfo", "make_remote", "public_url"]
