"""The engine's counters, shown in /status and helios.status.

The Engine (core.py) counts requests and what it answers itself (type-ahead, supersession,
warming); its backend counts the work the model did (backend.py, local.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EngineStats:
    requests: int = 0
    completed: int = 0
    cancelled: int = 0  # stopped while running (cancelled by their caller or superseded)
    dropped: int = 0  # cancelled or superseded before any of their tokens was evaluated
    superseded: int = 0  # replaced by a newer job for the same document (queued or running)
    failed: int = 0
    typeahead_hits: int = 0
    prompt_tokens_evaluated: int = 0
    prompt_tokens_reused: int = 0
    generated_tokens: int = 0
    loads: int = 0
    # Cache warming before a request (prefetch, widening, a new context block): started,
    # and prompt tokens it evaluated.
    prefetches: int = 0
    prefetch_tokens: int = 0
    # First requests at a cold place answered from the quick window.
    quick_answers: int = 0
    # CPU seconds (all of this process's threads) spent in completion jobs, and in
    # background work (warming): what typing costs beyond the answers themselves.
    answer_cpu_seconds: float = 0.0
    background_cpu_seconds: float = 0.0
    # Context blocks from other files put in use (each one evaluated in the background).
    context_blocks: int = 0
