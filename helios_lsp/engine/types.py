"""Plain data passed in and out of the engine."""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CompletionInput:
    """What an editor knows at the cursor.

    `prefix` is the document text before the cursor (all of it, or its end from line
    `first_line` of the file), `suffix` the text after it.
    """

    prefix: str
    suffix: str = ""
    language: str = ""
    filename: str = ""
    max_tokens: int = 100
    temperature: float = 0.1
    # The line of the file where `prefix` starts: clients may send only the text near the
    # cursor, and the prompt window is anchored to the file's lines, not to that cut.
    first_line: int = 0


@dataclass(frozen=True, slots=True)
class CompletionOutput:
    text: str
    confidence: float
    prompt_tokens: int = 0
    evaluated_tokens: int = 0  # prompt tokens run through the model for this job
    reused_tokens: int = 0  # prompt tokens served from the KV cache
    generated_tokens: int = 0
    stop_reason: str = ""  # eog | max_tokens | time_budget | line | block | repeat | typeahead ...
    from_typeahead: bool = False  # answered from the last suggestion without running the model
    seconds: float = 0.0


class EngineState(enum.StrEnum):
    NOT_LOADED = "not_loaded"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"
    CLOSED = "closed"
