"""The backend `settings` ask for (backend.py says what a backend is)."""

from __future__ import annotations

import logging

from helios_lsp.engine.backend import Backend
from helios_lsp.engine.stats import EngineStats
from helios_lsp.settings import Settings

log = logging.getLogger(__name__)


def make_backend(settings: Settings, stats: EngineStats) -> Backend:
    """The user's shared engine when `settings.share` (it runs the engine `settings.engine`
    names), else the server `settings.engine` names, or llama.cpp in this process."""
    if settings.share:
        from helios_lsp.shared.client import SharedEngine
        from helios_lsp.shared.paths import UnsafeRuntimeDirError

        try:
            return SharedEngine(settings, stats)
        except UnsafeRuntimeDirError as exc:  # never share through a place others can reach
            log.warning("not sharing the engine with other windows: %s", exc)
    if settings.engine == "llama-server":
        from helios_lsp.engine.remote import LlamaServerEngine

        return LlamaServerEngine(settings, stats)
    if settings.engine == "openai":
        from helios_lsp.engine.remote import OpenAIEngine

        return OpenAIEngine(settings, stats)
    from helios_lsp.engine.local import LocalBackend

    return LocalBackend(settings, stats)
