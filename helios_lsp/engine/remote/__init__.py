"""Engines that run on a server: llama.cpp's llama-server or any OpenAI-compatible one."""

from __future__ import annotations

from helios_lsp.engine.remote.client import Generated, RemoteEngine, public_url
from helios_lsp.engine.remote.llama_server import LlamaServerEngine
from helios_lsp.engine.remote.openai import OpenAIEngine

__all__ = ["Generated", "LlamaServerEngine", "OpenAIEngine", "RemoteEngine", "public_url"]
