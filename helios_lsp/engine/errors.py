"""Errors the engine raises; adapters map them to HTTP codes or LSP results.

Messages are written for users: they never carry file paths or tracebacks unless
the class says so (`ModelNotFoundError.tried` is for the local CLI and logs only).
"""

from __future__ import annotations


class EngineError(Exception):
    """Base class for everything the engine raises on purpose."""


class ModelError(EngineError):
    """The model could not be found or loaded."""


class ModelNotFoundError(ModelError):
    def __init__(self, message: str, tried: list[str]):
        super().__init__(message)
        self.tried = tried


class InvalidModelFileError(ModelError):
    """The file exists but is not a usable GGUF (checked before llama.cpp sees it)."""


class ModelNotLoadedError(EngineError):
    """A completion was asked for while the model is loading, reloading or failed."""


class JobCancelledError(EngineError):
    """The job was cancelled by its caller or superseded by a newer one."""

    def __init__(self, reason: str = "cancelled"):
        super().__init__(f"completion {reason}")
        self.reason = reason
        # Work the job had done when it stopped (0 when it never ran).
        self.evaluated = 0
        self.generated = 0


class EngineOverloadedError(EngineError):
    """Refused at once: `limit` completions are already queued or running.

    The one bound every caller meets (HTTP, LSP, CLI): nothing queues without limit."""

    def __init__(self, limit: int):
        super().__init__(f"too many completions in flight (at most {limit})")
        self.limit = limit


class CompletionFailedError(EngineError):
    """Generation itself failed (llama.cpp returned an error)."""


class EngineUnreachableError(ModelNotLoadedError):
    """The engine server (llama-server, an OpenAI-compatible server) cannot be reached or
    is still loading its model. Helios keeps probing it and recovers by itself."""
