"""The completion engine: model, prompt, decoding and cleaning. LSP and HTTP adapt it."""

from helios_lsp.engine.core import Engine
from helios_lsp.engine.errors import (
    CompletionFailedError,
    EngineError,
    EngineOverloadedError,
    InvalidModelFileError,
    JobCancelledError,
    ModelError,
    ModelNotFoundError,
    ModelNotLoadedError,
)
from helios_lsp.engine.languages import SUPPORTED_IDS, detect
from helios_lsp.engine.model_source import ResolvedModel, resolve_model
from helios_lsp.engine.stats import EngineStats
from helios_lsp.engine.text import normalize_newlines
from helios_lsp.engine.types import (
    CompletionInput,
    CompletionOutput,
    ContextBlock,
    EngineState,
    Snippet,
    StopReason,
    describe_state,
)

__all__ = [
    "SUPPORTED_IDS",
    "CompletionFailedError",
    "CompletionInput",
    "CompletionOutput",
    "ContextBlock",
    "Engine",
    "EngineError",
    "EngineOverloadedError",
    "EngineState",
    "EngineStats",
    "InvalidModelFileError",
    "JobCancelledError",
    "ModelError",
    "ModelNotFoundError",
    "ModelNotLoadedError",
    "ResolvedModel",
    "Snippet",
    "StopReason",
    "describe_state",
    "detect",
    "normalize_newlines",
    "resolve_model",
]
