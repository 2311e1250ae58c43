"""Helpers for the context library's tests: real files in temporary trees."""

from __future__ import annotations

from pathlib import Path

from helios_lsp.engine.context import ContextSources


def write_tree(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def indexed(sources: ContextSources, root: Path) -> list[str]:
    """The indexed files under root, relative, posix (once indexing is done)."""
    assert sources.wait_ready(30)
    return sorted(Path(p).relative_to(root).as_posix() for p in sources.indexed_paths())
