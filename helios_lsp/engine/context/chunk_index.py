"""An inverted index of chunks by identifier token, scored with BM25.

Compact by design (the workspace may hold thousands of files): per chunk four numbers and
a liveness byte; the postings (token -> chunk ids) in sorted numpy arrays, about 4 bytes a
posting, plus flat (token, chunk) pairs for the chunks added since those arrays were
built, 8 bytes a posting. `freeze` merges those into the arrays, a block at a time,
outside the caller's lock. Texts are
not kept. A removed chunk is only marked dead; the next freeze drops it from the arrays.

Not thread-safe: the workspace index calls it under its lock (`freeze` says which of its
steps need the lock).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Collection, Container, Iterable, Iterator, Sequence
from itertools import pairwise

import numpy as np

K1 = 1.2
B = 0.75
_BLOCK = 1 << 18  # postings merged per step of `freeze`
_SHORTLIST = 512  # best chunks considered when taking the best chunk of each file


def idf(n_chunks: int, df: int) -> float:
    return math.log(1.0 + (n_chunks - df + 0.5) / (df + 0.5))


def length_factor(length: int, avg_length: float) -> float:
    """BM25's weight of one occurrence of a term in a chunk of `length` tokens."""
    return (K1 + 1.0) / (1.0 + K1 * (1.0 - B + B * length / avg_length))


_EMPTY32 = np.zeros(0, dtype=np.uint32)


class ChunkIndex:
    def __init__(self) -> None:
        self._file = array("I")
        self._first = array("I")
        self._last = array("I")
        self._length = array("H")
        self._alive = bytearray()
        self.alive_chunks = 0
        self._alive_length = 0
        # Frozen postings: token ids sorted, the chunk ids of token i in
        # ids[offsets[i]:offsets[i + 1]].
        self._tokens = _EMPTY32
        self._offsets = np.zeros(1, dtype=np.int64)
        self._ids = _EMPTY32
        # Postings not yet frozen, as (token, chunk id) pairs: the latest additions, and
        # those being frozen.
        self._delta_tokens = array("I")
        self._delta_ids = array("I")
        self._freezing = (_EMPTY32, _EMPTY32)
        self.dead_postings = 0  # dead chunk ids still in the frozen arrays

    def __len__(self) -> int:
        return self.alive_chunks

    @property
    def delta_postings(self) -> int:
        return len(self._delta_tokens) + len(self._freezing[0])

    @property
    def postings(self) -> int:
        return len(self._ids) + self.delta_postings

    @property
    def avg_length(self) -> float:
        return self._alive_length / self.alive_chunks if self.alive_chunks else 100.0

    def add(self, file_id: int, chunks: Sequence[tuple[int, int, Collection[int]]]) -> range:
        """Index one file's chunks, (first line, last line, token ids) each; their ids."""
        start = len(self._alive)
        for offset, (first, last, tokens) in enumerate(chunks):
            cid = start + offset
            length = min(len(tokens), 0xFFFF)
            self._file.append(file_id)
            self._first.append(first)
            self._last.append(last)
            self._length.append(length)
            self._alive.append(1)
            self.alive_chunks += 1
            self._alive_length += length
            self._delta_tokens.extend(tokens)
            self._delta_ids.extend([cid] * len(tokens))
        return range(start, start + len(chunks))

    def remove(self, ids: Iterable[int]) -> None:
        for cid in ids:
            if self._alive[cid]:
                self._alive[cid] = 0
                self.alive_chunks -= 1
                self._alive_length -= self._length[cid]
                self.dead_postings += self._length[cid]

    def chunk(self, cid: int) -> tuple[int, int, int]:
        """(file id, first line, last line) of a chunk."""
        return self._file[cid], self._first[cid], self._last[cid]

    def max_df(self) -> int:
        # Tokens in more chunks than this say little and cost the most: they are skipped.
        return max(64, self.alive_chunks // 8)

    def _frozen(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where each query token's frozen postings start, and how many there are."""
        if not len(self._tokens):
            zeros = np.zeros(len(query), dtype=np.int64)
            return zeros, zeros
        at = np.searchsorted(self._tokens, query)
        at_clipped = np.minimum(at, len(self._tokens) - 1)
        found = self._tokens[at_clipped] == query
        starts = self._offsets[at_clipped]
        counts = np.where(found, self._offsets[at_clipped + 1] - starts, 0)
        return starts, counts

    def _unfrozen(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The unfrozen postings of the query's tokens: (query position, chunk id) each."""
        positions, ids = [], []
        # Temporary views of the delta arrays (freed before they may grow again).
        for tokens, chunk_ids in (
            (np.frombuffer(self._delta_tokens, dtype=np.uint32), self._delta_ids),
            self._freezing,
        ):
            if not len(tokens):
                continue
            hit = np.flatnonzero(np.isin(tokens, query))
            positions.append(np.searchsorted(query, tokens[hit]))
            ids.append(np.frombuffer(chunk_ids, dtype=np.uint32)[hit])
        if not positions:
            return np.zeros(0, dtype=np.int64), _EMPTY32
        return np.concatenate(positions), np.concatenate(ids)

    def dfs(self, tokens: Iterable[int]) -> dict[int, int]:
        """How many chunks (dead ones included, until the next freeze) hold each token."""
        query = np.array(sorted(set(tokens)), dtype=np.uint32)
        _, counts = self._frozen(query)
        positions, _ = self._unfrozen(query)
        counts = counts + np.bincount(positions, minlength=len(query))
        return dict(zip(query.tolist(), counts.tolist(), strict=True))

    def top(
        self,
        tokens: Collection[int],
        files: int,
        exclude_files: Container[int] = (),
    ) -> list[tuple[float, int]]:
        """The best chunk of each of the `files` best-matching files, (score, chunk id),
        best first. Ties go to the lower chunk id."""
        if not self.alive_chunks or not tokens:
            return []
        query = np.array(sorted(set(tokens)), dtype=np.uint32)
        starts, counts = self._frozen(query)
        d_positions, d_ids = self._unfrozen(query)
        df = counts + np.bincount(d_positions, minlength=len(query))
        n, max_df = self.alive_chunks, self.max_df()
        keep = (df > 0) & (df <= max_df)
        if not keep.any():
            return []
        weights = np.log(1.0 + (n - df + 0.5) / (df + 0.5))
        # Frozen postings of the kept tokens, gathered in one vectorised step.
        kept_counts = np.where(keep, counts, 0)
        total = int(kept_counts.sum())
        ends = np.cumsum(kept_counts)
        positions = np.repeat(starts - (ends - kept_counts), kept_counts) + np.arange(total)
        d_keep = keep[d_positions]
        ids = np.concatenate((self._ids[positions], d_ids[d_keep]))
        weight = np.concatenate((np.repeat(weights, kept_counts), weights[d_positions[d_keep]]))
        if not len(ids):
            return []
        sums = np.bincount(ids, weights=weight)
        candidates = np.flatnonzero(sums)
        # Temporary views of the chunk arrays (freed at once: the arrays may grow later).
        candidates = candidates[np.frombuffer(self._alive, dtype=np.uint8)[candidates] == 1]
        if not len(candidates):
            return []
        lengths = np.frombuffer(self._length, dtype=np.uint16)[candidates].astype(np.float64)
        scores = sums[candidates] * (
            (K1 + 1.0) / (1.0 + K1 * (1.0 - B + B * lengths / self.avg_length))
        )
        return self._best_per_file(candidates, scores, files, exclude_files)

    def _best_per_file(
        self,
        candidates: np.ndarray,
        scores: np.ndarray,
        files: int,
        exclude_files: Container[int],
    ) -> list[tuple[float, int]]:
        # A shortlist first (a full sort of every candidate costs milliseconds).
        shortlist = min(len(candidates), _SHORTLIST)
        while True:
            if shortlist < len(candidates):
                part = np.argpartition(-scores, shortlist - 1)[:shortlist]
            else:
                part = np.arange(len(candidates))
            order = part[np.lexsort((candidates[part], -scores[part]))]
            out: list[tuple[float, int]] = []
            taken: set[int] = set()
            for i in order.tolist():
                cid = int(candidates[i])
                file_id = self._file[cid]
                if file_id in taken or file_id in exclude_files:
                    continue
                taken.add(file_id)
                out.append((float(scores[i]), cid))
                if len(out) >= files:
                    return out
            if shortlist >= len(candidates):
                return out
            shortlist = min(len(candidates), shortlist * 8)

    # --- freezing --------------------------------------------------------------------------

    def needs_freeze(self, final: bool = False) -> bool:
        """Whether the unfrozen postings (or the dead ones) are worth a merge; `final` at
        the end of a batch of work, when a smaller batch of them is."""
        if final:
            return self.delta_postings > 10_000 or self.dead_postings * 8 > len(self._ids) + 1
        frozen = len(self._ids)
        return self.delta_postings > max(50_000, frozen // 4) or (
            self.dead_postings > 50_000 and self.dead_postings * 4 > frozen
        )

    def freeze(self) -> Iterator[str]:
        """Merge the unfrozen postings into the arrays and drop dead chunk ids.

        A generator of steps: it yields "locked" when the caller must hold its lock
        for the next step and "unlocked" when it may release it (numpy work on private
        arrays); the caller resumes it with next() in that state.
        """
        yield "locked"
        pending = (
            np.frombuffer(self._delta_tokens, dtype=np.uint32).copy(),
            np.frombuffer(self._delta_ids, dtype=np.uint32).copy(),
        )
        self._freezing = pending
        self._delta_tokens, self._delta_ids = array("I"), array("I")
        alive = np.frombuffer(bytes(self._alive), dtype=np.uint8)
        tokens_f, offsets_f, ids_f = self._tokens, self._offsets, self._ids
        dead_before = self.dead_postings
        yield "unlocked"
        order = np.argsort(pending[0], kind="stable")
        d_tokens, d_counts = np.unique(pending[0][order], return_counts=True)
        d_ids = pending[1][order]
        del order
        d_offsets = np.concatenate(([0], np.cumsum(d_counts)))
        f_counts = np.diff(offsets_f)
        union = np.union1d(tokens_f, d_tokens).astype(np.uint32)
        f_at = np.searchsorted(union, tokens_f)
        d_at = np.searchsorted(union, d_tokens)
        new_tokens: list[np.ndarray] = []
        new_counts: list[np.ndarray] = []
        new_ids: list[np.ndarray] = []
        # Blocks of union tokens, each with at most about _BLOCK postings.
        u_counts = np.zeros(len(union), dtype=np.int64)
        u_counts[f_at] += f_counts
        u_counts[d_at] += d_counts
        bounds = np.searchsorted(np.cumsum(u_counts), np.arange(_BLOCK, u_counts.sum(), _BLOCK))
        edges = [0, *sorted(set(bounds.tolist())), len(union)]
        for a, b in pairwise(edges):
            if b <= a:
                continue
            fa, fb = np.searchsorted(f_at, [a, b])
            da, db = np.searchsorted(d_at, [a, b])
            f_slice = ids_f[offsets_f[fa] : offsets_f[fb]]
            d_slice = d_ids[d_offsets[da] : d_offsets[db]]
            # Each posting keyed by its token's place in the union; frozen before new.
            keys = np.concatenate(
                (
                    np.repeat(f_at[fa:fb].astype(np.int64) * 2, f_counts[fa:fb]),
                    np.repeat(d_at[da:db].astype(np.int64) * 2 + 1, d_counts[da:db]),
                )
            )
            ids = np.concatenate((f_slice, d_slice))
            live = alive[ids] == 1
            keys, ids = keys[live], ids[live]
            order = np.argsort(keys, kind="stable")
            keys, ids = keys[order] // 2, ids[order]
            token_at, counts = np.unique(keys, return_counts=True)
            new_tokens.append(union[token_at])
            new_counts.append(counts)
            new_ids.append(ids)
            yield "unlocked"
        tokens = np.concatenate(new_tokens) if new_tokens else _EMPTY32
        counts = np.concatenate(new_counts) if new_counts else np.zeros(0, dtype=np.int64)
        merged = np.concatenate(new_ids) if new_ids else _EMPTY32
        offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        yield "locked"
        self._tokens, self._offsets, self._ids = tokens.astype(np.uint32), offsets, merged
        self._freezing = (_EMPTY32, _EMPTY32)
        # Chunks removed while merging are still in the arrays: counted as dead.
        self.dead_postings = max(self.dead_postings - dead_before, 0)
