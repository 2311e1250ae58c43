"""Request and response models of the REST API, exactly as the API document names them.

The same models validate requests and generate `/openapi.json`. Validation is strict:
booleans are not numbers, numbers are not strings, every number has finite bounds, text
with unpaired surrogates is refused, unknown fields are reported.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StringConstraints,
    create_model,
)
from pydantic_core import PydanticCustomError

from helios_lsp.settings import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_MAX_TOKENS_LIMIT,
    DEFAULT_TEMPERATURE,
    TEMPERATURE_RANGE,
    Settings,
    max_tokens_range,
)
from http_api.errors import ErrorCode

# LSP positions are unsigned 32-bit integers.
MAX_POSITION = 2**31 - 1
MAX_LANGUAGE_CHARS = 64
MAX_FILENAME_CHARS = 4096
# The optional `context` of /complete and /prefetch: other files the client has open or
# edited. Enough for the visible editors and a few recent files; the engine chooses which
# of their lines go in the prompt.
MAX_CONTEXT_FILES = 16
MAX_CONTEXT_FILE_CHARS = 256 * 1024
MAX_CONTEXT_CHARS = 512 * 1024


def _no_lone_surrogates(value: Any) -> Any:
    """JSON can carry "\\ud800" alone; such text cannot be encoded for the tokenizer."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise PydanticCustomError(
                "lone_surrogate", "text contains an unpaired UTF-16 surrogate (\\ud800-\\udfff)"
            ) from None
    return value


def _text(max_length: int | None = None, min_length: int | None = None) -> Any:
    return Annotated[str, StringConstraints(strict=True, max_length=max_length,
                                            min_length=min_length),
                     BeforeValidator(_no_lone_surrogates)]


Text = _text()
LanguageId = _text(MAX_LANGUAGE_CHARS)
Filename = _text(MAX_FILENAME_CHARS)
# The bounds are settings.py's (shared with the settings and the LSP); strictness is ours.
Temperature = Annotated[StrictFloat, TEMPERATURE_RANGE, Field(allow_inf_nan=False)]


def _max_tokens(limit: int) -> Any:
    return Annotated[StrictInt, max_tokens_range(limit),
                     Field(description="Maximum tokens to generate")]


MaxTokens = _max_tokens(DEFAULT_MAX_TOKENS_LIMIT)  # per server: completion_request_model


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Position(_Strict):
    """The cursor, 0-based (line 3, character 4 is the fourth column of the fourth line)."""

    line: Annotated[StrictInt, Field(ge=0, le=MAX_POSITION)]
    character: Annotated[StrictInt, Field(ge=0, le=MAX_POSITION)]


class ContextFile(_Strict):
    """Another file of the user's (open in the editor, or edited lately)."""

    filename: Annotated[_text(MAX_FILENAME_CHARS, min_length=1), Field(
        description="Its path, relative to the workspace folder if it has one")]
    text: Annotated[_text(MAX_CONTEXT_FILE_CHARS), Field(description="Its text")]


def _context_size(files: list[ContextFile] | None) -> list[ContextFile] | None:
    if files is not None and sum(len(f.text) for f in files) > MAX_CONTEXT_CHARS:
        raise PydanticCustomError(
            "context_too_large",
            f"the context files hold more than {MAX_CONTEXT_CHARS} characters together")
    return files


class CompletionRequest(_Strict):
    """`code` is the text before the cursor; `suffix`, when sent, the text after it."""

    code: Annotated[Text, Field(description="The code context before the cursor")]
    language: Annotated[LanguageId, Field(description="Programming language identifier")]
    position: Annotated[Position, Field(description="Cursor position, 0-based")]
    filename: Annotated[Filename, Field(description="Name of the file being edited")]
    max_tokens: MaxTokens = DEFAULT_MAX_TOKENS
    temperature: Annotated[Temperature, Field(
        description="Generation temperature 0-1")] = DEFAULT_TEMPERATURE
    suffix: Annotated[Text, Field(
        description="The code after the cursor (optional; enables fill-in-the-middle)")] = ""
    context: Annotated[list[ContextFile] | None, Field(
        max_length=MAX_CONTEXT_FILES,
        description="Other files the user has open or edited lately (optional): Helios "
                    "puts the parts that matter at the cursor before the file in the "
                    "prompt. Files named like secrets (.env, *.pem, *.key, id_*) are "
                    "ignored."), AfterValidator(_context_size)] = None


def completion_request_model(settings: Settings) -> type[CompletionRequest]:
    """`CompletionRequest` with this server's defaults and `max_tokens` maximum.

    Both come from settings (HELIOS_MAX_TOKENS, HELIOS_MAX_TOKENS_LIMIT, HELIOS_TEMPERATURE),
    so the model, and the OpenAPI document built from it, say what this server accepts."""
    return create_model(
        "CompletionRequest",
        __base__=CompletionRequest,
        __doc__=CompletionRequest.__doc__,
        max_tokens=(_max_tokens(settings.max_tokens_limit), settings.max_tokens),
        temperature=(Annotated[Temperature, Field(description="Generation temperature 0-1")],
                     settings.temperature),
    )


class CompletionResponse(BaseModel):
    suggestion: str = Field(description="The generated code completion")
    confidence: float = Field(ge=0.0, le=1.0, description="Confidence score 0-1")
    processing_time: float = Field(ge=0.0, description="Time taken to generate in seconds")


HealthStatus = Literal["healthy", "loading", "unhealthy", "stopping"]


class HealthResponse(BaseModel):
    status: HealthStatus = Field(description="healthy (200); loading, unhealthy or stopping (503)")
    model_loaded: bool
    server_version: str
    uptime: float = Field(description="Server uptime in seconds")
    detail: str | None = Field(
        None, description="Why the model is not ready (no paths); absent when healthy")


class StatusConfig(BaseModel):
    max_tokens: int
    temperature: float
    host: str
    port: int


class StatusLimits(BaseModel):
    max_tokens_limit: int
    rate_limit_per_second: float
    rate_burst: int
    max_in_flight: int
    max_body_bytes: int


class StatusConnections(BaseModel):
    open: int = Field(description="HTTP connections open now")
    max: int = Field(description="At most this many (HELIOS_MAX_CONNECTIONS)")
    refused: int = Field(description="New connections refused at the cap, since start")
    evicted: int = Field(description="Waiting connections closed to make room, since start")
    idle_closed: int = Field(description="Closed after HELIOS_KEEPALIVE_TIMEOUT idle")
    slow_closed: int = Field(description="Closed: headers not sent within "
                                         "HELIOS_REQUEST_TIMEOUT")


class StatusResponse(BaseModel):
    server_status: Literal["running", "stopping"]
    model_loaded: bool
    model_name: str | None = Field(description="The model actually loaded (null when none)")
    uptime: float
    config: StatusConfig
    # Beyond the document:
    model_status: str = Field(description="not_loaded, loading, ready, failed or closed")
    load_error: str | None = Field(description="Why the last load failed, if it did")
    in_flight: int = Field(description="Completions queued or running now, from every "
                                       "client (HTTP and the language server)")
    limits: StatusLimits
    engine: dict[str, Any] = Field(description="Engine counters (requests, cancellations, "
                                               "prompt tokens evaluated vs reused, ...)")
    connections: StatusConnections
    auth_required: bool = Field(description="Whether requests need the API key")


class RestartResponse(BaseModel):
    message: str


class ErrorResponse(BaseModel):
    detail: str = Field(description="What was wrong, in words a user can act on")
    error_code: ErrorCode
    timestamp: str = Field(description="ISO 8601 UTC, e.g. 2023-10-07T12:00:00Z",
                           json_schema_extra={"format": "date-time"})


class Empty(_Strict):
    """An optional, empty JSON object (the body of POST /restart)."""


__all__ = [
    "CompletionRequest",
    "CompletionResponse",
    "ContextFile",
    "Empty",
    "ErrorResponse",
    "HealthResponse",
    "Position",
    "RestartResponse",
    "StatusResponse",
    "completion_request_model",
]
