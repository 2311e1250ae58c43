"""KV states of earlier prompts, kept in host memory and restored when a prompt comes back.

The llama context holds one KV cache, and a prompt reuses only what it shares with it from
the start. Coming back to a file (or a region of one) visited a moment ago used to evaluate
the whole prompt again: 1,700-2,500 tokens, 5-7 s on 2 cores with the embedded model. Like
llama-server's `--cache-ram`, the cache of a long prompt is copied out before an unrelated
prompt overwrites it, and copied back when a later prompt shares more with it than with the
live cache.

We copy sequence 0's KV cells (`llama_state_seq_get_data`), not `Llama.save_state()`: that
one also copies llama-cpp-python's score matrix (n_batch x n_vocab floats, 100 MB for the
embedded model) and the last logits, which we never need: the last prompt token is always
evaluated again (measured: `save_state` copies 129 MiB for a 1,500-token prompt, 116-495 ms;
this copies 33 MiB, 33-57 ms). On the embedded model (SmolLM2-135M, f16 KV) a state weighs
22.5 KiB per token (22 MiB per 1,000 tokens); copying one back takes 0.2-0.8 ms per MiB
(7-25 ms for 1,400 tokens that take 4-5 s to evaluate on 2 quiet cores).

Only the engine's worker thread calls this (through LoadedModel): the llama context is not
thread-safe, and a state is only meaningful against the cache it was copied from.
"""

from __future__ import annotations

import ctypes
import logging
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

MIB = 1024 * 1024
# A live cache shorter than this is cheap to evaluate again: not worth a copy. (The quick
# window that answers first at a new place is ~100-400 tokens: it must survive the full
# window's evaluation that follows; a copy of 64 tokens costs ~1.4 MiB and a millisecond.)
MIN_SAVED_TOKENS = 64
# Save the live cache when the new prompt keeps less than this share of it.
SAVE_WHEN_KEPT_BELOW = 0.5
# Restoring a state costs a copy of all its tokens; evaluating a token costs ~170-500x more
# than copying one back (measured: 3-22 ms vs 5-18 us on the embedded model, 2 cores; both
# grow with the model's size). Restore when it spares at least this many tokens and at
# least 1/RESTORE_COST_RATIO of the state's length: a safe margin under the measured ratio.
MIN_RESTORE_GAIN = 16
RESTORE_COST_RATIO = 64
# Finding the best state compares the prompt with each: keep that scan short.
MAX_STATES = 64
_SEQ = 0  # the only sequence the engine uses


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    """How many tokens `a` and `b` share from the start."""
    n = min(len(a), len(b))
    mismatch = np.nonzero(a[:n] != b[:n])[0]
    return int(mismatch[0]) if mismatch.size else n


@dataclass(eq=False)
class SavedState:
    tokens: np.ndarray  # the token ids whose KV cells `data` holds, from position 0
    data: ctypes.Array  # what llama_state_seq_get_data wrote

    @property
    def nbytes(self) -> int:
        return ctypes.sizeof(self.data)


class KvStates:
    """An LRU of saved KV states within `budget_mib` MiB (0: nothing is saved)."""

    def __init__(self, llm, llama_cpp, budget_mib: int):
        self._llm = llm
        self._lib = llama_cpp
        self.budget = budget_mib * MIB
        self._states: OrderedDict[int, SavedState] = OrderedDict()  # id() -> state, oldest first
        self.saves = self.restores = 0

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s in self._states.values())

    def __len__(self) -> int:
        return len(self._states)

    def _best(self, prompt: np.ndarray) -> tuple[SavedState | None, int, int]:
        """(the saved state worth restoring for `prompt` or None, tokens it holds, tokens
        the live cache holds)."""
        llm = self._llm
        kept = common_prefix(llm.input_ids[: llm.n_tokens], prompt)
        best, best_kept = None, kept
        # A keystroke usually finds all but its last few tokens live: no saved state could
        # then gain MIN_RESTORE_GAIN, so the scan is skipped (it runs twice per request).
        if self.budget and kept <= len(prompt) - MIN_RESTORE_GAIN:
            for state in self._states.values():
                shared = common_prefix(state.tokens, prompt)
                if shared > best_kept:
                    best, best_kept = state, shared
        gain = best_kept - kept
        if best is None or gain < MIN_RESTORE_GAIN or gain * RESTORE_COST_RATIO < len(
                best.tokens):
            return None, kept, kept
        return best, best_kept, kept

    def reusable(self, prompt: np.ndarray) -> int:
        """Leading tokens of `prompt` that `prepare` would find cached (nothing changes)."""
        return self._best(prompt)[1]

    def prepare(self, prompt: np.ndarray) -> int:
        """Put in the KV cache the state sharing the most with `prompt` (saving the live one
        first when it is about to be lost); return how many leading prompt tokens it holds."""
        llm = self._llm
        live = llm.input_ids[: llm.n_tokens]
        best, best_kept, kept = self._best(prompt)
        if not self.budget:
            return kept
        if best is not None:
            # It becomes the live cache (saved again when left); until it is copied back
            # its bytes still count, so saving live (overwritten by the restore) fits beside.
            self._states.pop(id(best))
            self._save_live(live, reserved=best.nbytes)
            if self._restore(best):
                return best_kept
            return 0
        if len(live) >= MIN_SAVED_TOKENS and kept < SAVE_WHEN_KEPT_BELOW * len(live):
            self._save_live(live)
        return kept

    def _save_live(self, live: np.ndarray, reserved: int = 0) -> None:
        if len(live) < MIN_SAVED_TOKENS:
            return
        for key, state in list(self._states.items()):
            if common_prefix(state.tokens, live) == len(live):  # it already holds all of live
                self._states.move_to_end(key)
                return
        ctx = self._llm._ctx.ctx
        # Cells past n_tokens (left by a cancelled evaluation) are stale: do not copy them.
        self._llm._ctx.kv_cache_seq_rm(_SEQ, len(live), -1)
        size = int(self._lib.llama_state_seq_get_size(ctx, _SEQ))
        if size <= 0 or size + reserved > self.budget:
            return
        # Make room before allocating, so the budget holds at every moment. A saved state
        # that is a prefix of live is worth nothing once live is saved.
        for key, state in list(self._states.items()):
            if common_prefix(state.tokens, live) == len(state.tokens):
                del self._states[key]
        while self._states and (self.nbytes + size + reserved > self.budget
                                or len(self._states) >= MAX_STATES):
            self._states.popitem(last=False)
        data = (ctypes.c_uint8 * size)()
        written = int(self._lib.llama_state_seq_get_data(ctx, data, size, _SEQ))
        if written <= 0 or written > size:
            log.warning("could not copy the KV cache out (%d of %d bytes)", written, size)
            return
        state = SavedState(tokens=live.copy(), data=data)
        self._states[id(state)] = state
        self.saves += 1

    def _restore(self, state: SavedState) -> bool:
        llm = self._llm
        read = int(self._lib.llama_state_seq_set_data(llm._ctx.ctx, state.data, state.nbytes,
                                                     _SEQ))
        if read <= 0:  # the sequence may be half-written now: start afresh
            log.warning("could not restore a saved KV state (%d tokens)", len(state.tokens))
            llm._ctx.kv_cache_seq_rm(_SEQ, 0, -1)
            llm.n_tokens = 0
            return False
        n = len(state.tokens)
        llm.input_ids[:n] = state.tokens
        llm.n_tokens = n
        self.restores += 1
        return True
