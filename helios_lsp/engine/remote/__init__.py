"""Engines that run on a server: llama.cpp's llama-server, any OpenAI-compatible one, or
this user's shared Helios engine (helios_lsp/shared)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from helios_lsp.engine.remote.client import Generated, RemoteEngine, RemoteInfo, public_url
from helios_lsp.engine.remote.llama_server import LlamaServerEngine
from helios_lsp.engine.remote.openai import OpenAIEngine
from helios_lsp.settings import Settings

if TYPE_CHECKING:
    from helios_lsp.shared.client import SharedEngine

log = logging.getLogger(__name__)


def make_remote(settings: Settings) -> RemoteEngine | SharedEngine | None:
    """Where completion work goes: the user's shared engine when `settings.share` (it runs
    the engine `settings.engine` names), else the server `settings.engine` names, or None
    for llama.cpp in this process."""
    if settings.share:
        from helios_lsp.shared.client import SharedEngine
        from helios_lsp.shared.paths import UnsafeRuntimeDirError

        try:
            return SharedEngine(settings)
        except UnsafeRuntimeDirError as exc:  # never share through a place others can reach
            log.warning("not sharing the engine with other windows: %s", exc)
    if settings.engine == "llama-server":
        return LlamaServerEngine(settings)
    if settings.engine == "openai":
        return OpenAIEngine(settings)
    return None


__all__ = ["Generated", "RemoteEngine", "RemoteInfo", "make_remote", "public_url"]
