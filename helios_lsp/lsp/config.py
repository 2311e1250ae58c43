"""Per-client settings: from `initializationOptions` and `workspace/didChangeConfiguration`.

The client sends camelCase keys, either at the top level or under a "helios" section:

    {"maxTokens": 64, "temperature": 0.1,
     "enabledLanguages": ["python", "rust"], "disabledLanguages": ["json"],
     "http": {"enabled": true, "port": 8123},     ("http": false is short for off)
     "context": {"enabled": true, "workspace": true}}  ("context": false: none)

Each key is checked on its own: a bad value is reported and that key keeps its default,
the good keys still apply. Unknown keys are reported too (they are usually typos).
Defaults come from the process settings (HELIOS_* variables and command-line flags).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from helios_lsp.engine import detect
from helios_lsp.logsafe import safe
from helios_lsp.settings import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_TEMPERATURE,
    TEMPERATURE_RANGE,
    Settings,
    max_tokens_range,
)

SECTION = "helios"


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid",
        allow_inf_nan=False, strict=False,
    )


class HttpConfig(_Model):
    enabled: bool = True
    port: int = Field(8000, ge=0, le=65535)  # 0: any free port


class ContextConfig(_Model):
    """Context from the user's other files: open documents and recent edits, and (unless
    `workspace` is false) the files under the workspace folders."""

    enabled: bool = True
    workspace: bool = True


class ClientConfig(_Model):
    # The bounds are settings.py's; this server's own maximum is checked in parse_config.
    max_tokens: Annotated[int, max_tokens_range()] = DEFAULT_MAX_TOKENS
    temperature: Annotated[float, TEMPERATURE_RANGE] = DEFAULT_TEMPERATURE
    enabled_languages: tuple[str, ...] | None = None  # None: every language
    disabled_languages: tuple[str, ...] = ()
    http: HttpConfig = HttpConfig()
    context: ContextConfig = ContextConfig()
    # Use the user's shared engine (None: as HELIOS_SHARE / --no-share say). Taken from
    # initializationOptions only: the model is loaded once, right after.
    share: bool | None = None

    @field_validator("max_tokens", mode="before")
    @classmethod
    def _no_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):  # JSON true is not a number of tokens
            raise ValueError("must be an integer")
        return value

    @field_validator("enabled_languages", "disabled_languages", mode="after")
    @classmethod
    def _lower(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if value is None else tuple(v.strip().lower() for v in value)

    @classmethod
    def defaults(cls, settings: Settings) -> ClientConfig:
        return cls(
            max_tokens=settings.max_tokens,
            temperature=settings.temperature,
            http=HttpConfig(port=settings.port),
            context=ContextConfig(workspace=settings.context_workspace),
        )

    def language_enabled(self, language_id: str, filename: str = "") -> bool:
        """Whether to complete in a document of this language id (or file name)."""
        names = {language_id.strip().lower()} - {""}
        canonical = detect(language_id, filename).id
        if canonical:
            names.add(canonical)
        if names & set(self.disabled_languages):
            return False
        if self.enabled_languages is None:
            return True
        return bool(names & set(self.enabled_languages))


def _section(raw: Any) -> Any:
    if isinstance(raw, dict) and isinstance(raw.get(SECTION), dict):
        return raw[SECTION]
    return raw


def _describe(err: ValidationError) -> list[str]:
    problems = []
    for e in err.errors():
        # Keys are the client's text: escaped, as they reach the log and a popup.
        where = safe(".".join(str(p) for p in e["loc"]) or "settings", 80)
        if e["type"] == "extra_forbidden":
            problems.append(f"unknown setting '{where}' ignored")
        else:
            problems.append(f"'{where}': {e['msg']}")
    return problems


def parse_config(raw: Any, settings: Settings) -> tuple[ClientConfig, list[str]]:
    """The client's settings over the defaults, and what was wrong with them (if anything).

    Never raises: whatever the client sends, the result is a valid configuration."""
    base = ClientConfig.defaults(settings)
    raw = _section(raw)
    if raw is None or raw == {}:
        return base, []
    if not isinstance(raw, dict):
        return base, ["settings must be an object; defaults are used"]

    values = base.model_dump(by_alias=True)
    problems: list[str] = []
    for name, value in raw.items():
        key = to_camel(name) if isinstance(name, str) else str(name)  # max_tokens works too
        if key in ("http", "context") and isinstance(value, bool):  # false turns it off
            value = {"enabled": value}
        if key in ("http", "context") and isinstance(value, dict):
            value = {**values[key], **value}
        candidate = {**values, key: value}
        try:
            checked = ClientConfig.model_validate(candidate)
        except ValidationError as err:
            problems.extend(_describe(err))
            continue
        values = checked.model_dump(by_alias=True)

    config = ClientConfig.model_validate(values)
    if config.max_tokens > settings.max_tokens_limit:
        problems.append(f"'maxTokens': must be at most {settings.max_tokens_limit}")
        config = config.model_copy(update={"max_tokens": base.max_tokens})
    return config, problems
