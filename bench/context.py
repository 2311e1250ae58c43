"""What every scenario gets: the configuration, the contenders that could start, a log."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.contenders import (
    Bare,
    HeliosEngine,
    HeliosHTTP,
    HeliosLSP,
    LlamaServerDirect,
    Peer,
    engine_busy,
)


@dataclass(frozen=True)
class Config:
    quick: bool
    seed: int
    threads: int
    n_ctx: int = 4096
    max_tokens: int = 64
    segments: int = 6  # keystroke replay: stretches of files typed again
    segment_chars: int = 40  # keystrokes each
    paced_segments: int = 3  # of those, typed again at a fixed speed
    overhead_repeats: int = 4  # controlled overhead pairs at the end of each segment
    quality_cases: int = 40
    quality_files: int = 10  # cases come from this many files (a cold prompt each)
    typeahead_starts: int = 6
    typeahead_chars: int = 12  # characters of a suggestion typed, at most
    startup_reps: int = 3
    max_prefix_chars: int = 10_000
    jumps: int = 16  # cursor jumps (within a file, to another file), after a first place
    jump_files: int = 3  # the files the jumps move between
    jump_chars: int = 6  # keystrokes typed at each place after the pause
    crossfile_cases: int = 48  # cross-file lines (the sample was 18)
    crossfile_keys: int = 4  # keystrokes typed at each cross-file place, context on and off
    crossfile_tree_files: int = 5000  # the workspace indexed while requests are timed
    crossfile_baseline: float = 3.0  # seconds of requests before indexing begins
    crossfile_index_timeout: float = 300.0

    @classmethod
    def make(cls, quick: bool, seed: int, threads: int) -> Config:
        if quick:
            return cls(quick=True, seed=seed, threads=threads, segments=1, segment_chars=6,
                       paced_segments=1, overhead_repeats=2, quality_cases=3,
                       quality_files=2, typeahead_starts=1, typeahead_chars=3,
                       startup_reps=1, max_prefix_chars=2_500, jumps=3, jump_files=2,
                       jump_chars=2, crossfile_cases=2, crossfile_keys=2,
                       crossfile_tree_files=300, crossfile_baseline=1.0,
                       crossfile_index_timeout=120.0)
        return cls(quick=False, seed=seed, threads=threads)


@dataclass
class Context:
    config: Config
    model: Path
    tmp: Path
    bare: Bare | None = None
    engine: HeliosEngine | None = None
    http: HeliosHTTP | None = None
    lsp: HeliosLSP | None = None
    peer: Peer | None = None
    llama_server: LlamaServerDirect | None = None
    unavailable: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    def log(self, message: str) -> None:
        print(f"[bench {time.perf_counter() - self.started:6.1f}s] {message}", file=sys.stderr,
              flush=True)

    def helios(self) -> HeliosHTTP | HeliosEngine | None:
        """Helios as a user reaches it: over HTTP, else (not built yet) in process."""
        return self.http or self.engine

    def available(self) -> dict[str, Any]:
        return {name: getattr(self, attr) is not None
                for name, attr in (("bare", "bare"), ("helios-engine", "engine"),
                                   ("helios-http", "http"), ("helios-lsp", "lsp"),
                                   ("peer", "peer"), ("llama-server", "llama_server"))}

    def quiesce(self, *contenders: HeliosHTTP | HeliosLSP | HeliosEngine | None,
                timeout: float = 120.0) -> None:
        """Wait, untimed, until `contenders` (default: every Helios one) work on nothing,
        background included (the quick window's widening, cache warming): another
        contender's timed request must not share the cores with it. In a closed-loop replay
        nobody pauses, so without this Helios's background work would slow the others, and
        no real user types without pauses."""
        deadline = time.monotonic() + timeout
        for c in contenders or (self.http, self.lsp, self.engine):
            while (c is not None and time.monotonic() < deadline
                   and engine_busy(c.engine_snapshot())):
                time.sleep(0.02)

    def resync(self) -> None:
        """Re-read Helios' counters (after requests that did not go through `complete`)."""
        for c in (self.http, self.lsp):
            if c is not None:
                c.resync_stats()

    def plain_prompt(self, prefix: str) -> str:
        """The peer's prompt: the text before the cursor, whole lines dropped from the top
        only if it would not fit the context with room for the answer."""
        assert self.bare is not None
        budget = self.config.n_ctx - self.config.max_tokens - 8
        prompt = prefix
        if len(prompt.encode()) <= budget:  # a token is at least one byte: it fits
            return prompt
        while self.bare.n_tokens(prompt) > budget and "\n" in prompt:
            prompt = prompt.split("\n", 1)[1]
        return prompt
