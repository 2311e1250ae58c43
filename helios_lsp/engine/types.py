"""Plain data passed in and out of the engine."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from helios_lsp.settings import DEFAULT_MAX_TOKENS, DEFAULT_TEMPERATURE


@dataclass(frozen=True, slots=True)
class Snippet:
    """Lines of another file for the prompt: an outline of a module the file imports, a
    chunk like the code at the cursor, or a place the user edited."""

    path: str  # relative to its workspace folder (or the file's name), "/"-separated
    text: str  # whole lines
    kind: str = "chunk"  # "outline", "chunk" or "edit"


@dataclass(frozen=True, slots=True)
class ContextBlock:
    """The other files' snippets that go before the file's window, least important first
    (the last one ends nearest the cursor). It stays the same while the user types at a
    place, so the model's cache of it stays warm (engine/crossfile.py)."""

    snippets: tuple[Snippet, ...] = ()
    repo: str = ""  # the workspace folder's name, for models trained with repository names
    # (a name bound to a module near the cursor, the names that module offers): after
    # `hdrs.` a suggestion is kept on one of them (engine/names.py). Not in the prompt.
    names: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.path for s in self.snippets))


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
    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float = DEFAULT_TEMPERATURE
    # The line of the file where `prefix` starts: clients may send only the text near the
    # cursor, and the prompt window is anchored to the file's lines, not to that cut.
    first_line: int = 0
    # The text may start inside a line (a client cut it at a character count and counted
    # `first_line` from the cut): its first line is then never used (prompt.py).
    cut: bool = False
    # Other files' snippets to put before the window (None: the engine chooses them).
    context: ContextBlock | None = None


class StopReason(enum.StrEnum):
    """Why a suggestion ends where it does: `CompletionOutput.stop_reason`, /status'
    `last_job` and the logs. A StrEnum, so it equals and serialises as its value ("eog")."""

    # The model stopped generating (model.py, and the remote engines).
    EOG = "eog"  # the model produced an end-of-generation (or end-of-file) token
    UNSURE = "unsure"  # the next token was less likely than HELIOS_MIN_TOKEN_PROB
    MAX_TOKENS = "max_tokens"  # `max_tokens` tokens generated
    TIME_BUDGET = "time_budget"  # HELIOS_TIME_BUDGET seconds of generation used up
    CUT = "cut"  # a cleaning rule below ended generation (and then names itself, if it cut)
    # A cleaning rule cut the text (postprocess.Cleaner).
    LINE = "line"  # single-line mode: the end of the cursor's line
    BLOCK = "block"  # block mode: a line indented less than the block being written
    BLANK_LINES = "blank_lines"  # block mode: two blank lines in a row
    REPEATS_SUFFIX = "repeats_suffix"  # the text already after the cursor, dropped
    REPEATED_LINE = "repeated_line"  # block mode: a line equal to the one before it
    REPEATS_PREVIOUS_LINE = "repeats_previous_line"  # a copy of the line above the cursor
    EMPTY = "empty"  # nothing but whitespace was left
    # No model run.
    TYPEAHEAD = "typeahead"  # the previous suggestion, as the user typed its beginning


@dataclass(frozen=True, slots=True)
class CompletionOutput:
    text: str
    confidence: float
    prompt_tokens: int = 0
    evaluated_tokens: int = 0  # prompt tokens run through the model for this job
    reused_tokens: int = 0  # prompt tokens served from the KV cache
    generated_tokens: int = 0
    stop_reason: StopReason | None = None  # why the suggestion ends there (see StopReason)
    from_typeahead: bool = False  # answered from the last suggestion without running the model
    # Answered from the quick window (a cold place): the full one is warmed right after.
    quick: bool = False
    seconds: float = 0.0
    # What the context block from other files took in the prompt.
    context_files: tuple[str, ...] = ()
    context_tokens: int = 0


class EngineState(enum.StrEnum):
    NOT_LOADED = "not_loaded"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"
    CLOSED = "closed"


_STATE_WORDS = {
    EngineState.NOT_LOADED: "the model is not loaded yet",
    EngineState.LOADING: "the model is loading",
    EngineState.READY: "the model is ready",
    EngineState.FAILED: "the model failed to load",
    EngineState.CLOSED: "the server is shutting down",
}


def describe_state(state: EngineState, load_error: str | None = None) -> str:
    """The engine's state in words for a user, the same in every adapter (which may add
    what to do about it). `load_error` says why a FAILED load failed: pass the public
    reason (no paths) to remote clients, the full one to the local user."""
    words = _STATE_WORDS[state]
    if state is EngineState.FAILED and load_error:
        return f"{words}: {load_error}"
    return words
