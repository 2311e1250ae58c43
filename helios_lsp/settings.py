"""One typed settings object for the whole process.

Values come from `HELIOS_*` environment variables, then command-line flags override
them. Every field has a finite bound: settings reach native code (thread counts,
context sizes), so nothing unchecked gets through.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from annotated_types import Interval
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_core import PydanticCustomError

DEFAULT_MODEL_NAME = "codellama:7b-code"
ENV_PREFIX = "HELIOS_"

# --- what a completion request may ask for: the one home of these bounds ---------------
# The process settings below, the REST schema (http_api/schemas.py) and the LSP client's
# settings (lsp/config.py) all take them from here. They live in this module, not in the
# engine package, because the engine imports settings (the reverse would be a cycle) and
# every adapter already imports settings.
MIN_MAX_TOKENS = 1
# No server allows more per request, whatever HELIOS_MAX_TOKENS_LIMIT says.
MAX_TOKENS_CEILING = 8192
DEFAULT_MAX_TOKENS = 100
DEFAULT_MAX_TOKENS_LIMIT = 1024
DEFAULT_TEMPERATURE = 0.1
# Constraints to put in `Annotated[int, ...]` / `Annotated[float, ...]` next to each
# adapter's own strictness (strict JSON numbers for HTTP, lax for environment strings).
TEMPERATURE_RANGE = Interval(ge=0.0, le=1.0)


def max_tokens_range(limit: int = MAX_TOKENS_CEILING) -> Interval:
    """`max_tokens` bounds for a server whose per-request maximum is `limit`."""
    return Interval(ge=MIN_MAX_TOKENS, le=limit)


def _cores() -> int:
    # llama-cpp-python defaults to half the cores; a completion server wants them all.
    return max(1, os.cpu_count() or 1)


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # --- documented environment variables ---
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    # None means "not set by the user": the default name is tried, then the embedded model.
    model: str | None = None
    debug: bool = False

    # --- where the model runs ---
    # local: llama.cpp in this process (`model`); llama-server / openai: a server at
    # `engine_url` that already holds the model (a GPU box, a team server, Ollama, vLLM).
    engine: Literal["local", "llama-server", "openai"] = "local"
    engine_url: str | None = Field(None, max_length=2048)
    engine_model: str | None = Field(None, max_length=512)
    # Sent as `Authorization: Bearer` to the engine server; never logged or shown.
    engine_api_key: SecretStr | None = None
    # FIM prompt template for the openai engine (detected from the model name otherwise).
    fim_template: Literal["none", "codellama", "starcoder", "qwen", "deepseek",
                          "codegemma"] | None = None

    # --- engine ---
    n_ctx: int = Field(4096, ge=256, le=131072, description="context window in tokens")
    n_threads: int = Field(default_factory=_cores, ge=1, le=512)
    n_batch: int = Field(512, ge=16, le=8192, description="tokens per decode call")
    # Prompt evaluation is split into chunks this big so a cancelled job stops soon.
    eval_chunk: int = Field(128, ge=8, le=8192)
    prefix_lines: int = Field(256, ge=1, le=100_000)
    # The first request at a place no KV cache holds (a new file, a far jump) is answered
    # from this many lines above the cursor, in a fraction of the time; the full window is
    # evaluated right after, in the background, for the keystrokes that follow (0: off).
    quick_window_lines: int = Field(32, ge=0, le=100_000)
    suffix_lines: int = Field(64, ge=0, le=100_000)
    time_budget: float = Field(3.0, gt=0, le=600, description="seconds of generation per job")
    typeahead: bool = True
    # Stop a suggestion before a token the model gives less than this (0: never). What
    # follows an unsure token is mostly wrong, and costs ~15 ms a token to generate: on the
    # benchmark's replay 0.25 cut the p95 latency by a third and gave more useful answers.
    min_token_prob: float = Field(0.25, ge=0.0, le=1.0)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    # MiB of host memory for KV states of earlier prompts, restored when the user comes back
    # to a place (engine/kv_states.py); 0 keeps only the live cache.
    kv_cache_ram: int = Field(256, ge=0, le=1_048_576, description="MiB for saved KV states")

    # --- context from other files (engine/crossfile.py) ---
    # Tokens of the block of other files' snippets before the file's window (0: none); at
    # most half the prompt, so the file's own window keeps its share.
    context_tokens: int = Field(1024, ge=0, le=65_536)
    # Lines of the file above the cursor when a block is in the prompt (instead of
    # prefix_lines): the block then sits near the cursor, where a small model looks; on
    # the cross-file cases the embedded model named the other file's symbol more often
    # (docs/benchmarks.md).
    context_prefix_lines: int = Field(48, ge=1, le=100_000)
    # Index the workspace folders (the LSP's; open documents and recent edits are used
    # either way).
    context_workspace: bool = True
    context_max_files: int = Field(10_000, ge=0, le=1_000_000, description="files indexed")
    context_max_bytes: int = Field(64 * 1024 * 1024, ge=0, le=1 << 34,
                                   description="bytes read to index the workspace")
    # Comma-separated file-name patterns never read, beyond the built-in ones (.env*, *.pem,
    # *.key, id_*, ...).
    context_secrets: str | None = Field(None, max_length=4096)

    # --- request defaults and bounds (the REST API documents these) ---
    # max_tokens (the default) must not exceed max_tokens_limit (checked below).
    max_tokens: Annotated[int, max_tokens_range()] = DEFAULT_MAX_TOKENS
    max_tokens_limit: Annotated[int, max_tokens_range()] = DEFAULT_MAX_TOKENS_LIMIT
    temperature: Annotated[float, TEMPERATURE_RANGE] = DEFAULT_TEMPERATURE

    # --- HTTP limits ---
    allow_remote: bool = False
    rate_limit: float = Field(10.0, gt=0, le=10_000, description="requests per second per client")
    rate_burst: int = Field(20, ge=1, le=100_000)
    max_in_flight: int = Field(5, ge=1, le=1000)
    max_body_bytes: int = Field(1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    # Connections (slow or idle clients must not hold sockets, nor exhaust open files): a
    # request's headers, and then its body, must each arrive within request_timeout; an
    # idle connection is closed after keepalive_timeout; at max_connections open, a new
    # connection closes the one idle longest (or is refused when none is idle).
    request_timeout: float = Field(10.0, ge=0.1, le=600,
                                   description="seconds to send the headers, then the body")
    keepalive_timeout: float = Field(15.0, ge=0.1, le=3600, description="idle seconds")
    max_connections: int = Field(256, ge=2, le=65_536)
    # Required to bind beyond loopback; when set, every endpoint but /health needs
    # `Authorization: Bearer <key>`. Secret: never shown in logs, repr or /status.
    api_key: SecretStr | None = None
    api_key_file: str | None = Field(None, max_length=4096, description="file holding the key")

    # --- files ---
    # Where per-user state lives (model probe verdicts); default $XDG_CACHE_HOME/helios.
    cache_dir: str | None = None

    # --- process ---
    # One engine per user and engine settings, shared by every `helios lsp` / `helios
    # serve` (helios_lsp/shared): false keeps the model in this process. None (unset): those
    # two commands share, an Engine made in code does not (it never starts a process on its
    # own). The shared engine exits share_idle seconds after its last client.
    share: bool | None = None
    share_idle: float = Field(60.0, ge=0.1, le=86_400, description="seconds")
    # Set by an editor that starts `helios serve`: the server stops when that process is
    # gone, so a crashed editor does not leave a model in memory.
    parent_pid: int | None = Field(None, ge=1, le=2**31 - 1)

    @model_validator(mode="after")
    def _engine_url_when_remote(self) -> Settings:
        if self.engine != "local":
            from urllib.parse import urlsplit

            url = urlsplit(self.engine_url or "")
            if url.scheme not in ("http", "https") or not url.hostname:
                raise ValueError(f"engine {self.engine} needs HELIOS_ENGINE_URL, an http(s) URL")
        return self

    @model_validator(mode="after")
    def _default_within_limit(self) -> Settings:
        # Otherwise every request that leaves out `max_tokens` would be refused.
        if self.max_tokens > self.max_tokens_limit:
            raise PydanticCustomError(
                "max_tokens_above_limit",
                f"{ENV_PREFIX}MAX_TOKENS (the default per request) must be at most "
                f"{ENV_PREFIX}MAX_TOKENS_LIMIT (the most a request may ask for)",
            )
        return self

    @property
    def model_is_explicit(self) -> bool:
        return self.model is not None

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, **overrides: Any
    ) -> Settings:
        """Build settings from `HELIOS_<FIELD>` variables, then apply non-None overrides."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None and raw != "":
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with `changes` applied and validated."""
        return type(self).model_validate({**self.model_dump(), **changes})


def describe_error(err: ValidationError) -> str:
    """One line per bad setting, naming the environment variable, without echoing values."""
    lines = []
    for e in err.errors():
        if not e["loc"]:  # a rule between settings: its message names the variables
            lines.append(e["msg"].removeprefix("Value error, "))
            continue
        field = ".".join(str(p) for p in e["loc"])
        lines.append(f"{ENV_PREFIX}{field.upper()}: {e['msg']}")
    return "; ".join(lines)
