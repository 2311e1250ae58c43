"""Fixtures for the context library's tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from helios_lsp.engine.context import ContextLimits, ContextSources


@pytest.fixture
def make_sources() -> Iterator[Callable[..., ContextSources]]:
    """ContextSources with the given limits; all closed (their threads stopped) after."""
    made: list[ContextSources] = []

    def make(**limits: object) -> ContextSources:
        limits.setdefault("sweep_seconds", 3600.0)  # sweeps only where a test wants them
        sources = ContextSources(ContextLimits(**limits))  # type: ignore[arg-type]
        made.append(sources)
        return sources

    yield make
    for sources in made:
        sources.close()
