"""An inverted index of chunks by identifier token, scored with BM25.

Compact by design (the workspace may hold thousands of files): per chunk four numbers and
a liveness byte. The postings (token -> chunk ids) live in segments of sorted numpy
arrays, about 4 bytes a posting, plus flat (token, chunk) pairs for the chunks added
since the last segment was made, 8 bytes a posting. `freeze` turns those pairs into a
segment and merges small segments, outside the caller's lock; a segment never grows
past _SEGMENT postings, so no merge copies the whole index (memory stays flat). Texts
are not kept. A removed chunk is only marked dead; a segment with many dead ids is
rewritten without them.

Not thread-safe: the workspace index calls it under its lock (`freeze` says which of its
steps need the lock).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Collection, Container, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

K1 = 1.2
B = 0.75
_BLOCK = 1 << 18  # postings merged per step of `freeze`
_SEGMENT = 1 << 20  # segments are merged while the result stays below this many postings
_SHORTLIST = 512  # best chunks considered when taking the best chunk of each file


def idf(n_chunks: int, df: int) -> float:
    # Dead chunks count in df until merged away: never let df pass the live count.
    df = min(df, n_chunks)
    return math.log(1.0 + (n_chunks - df + 0.5) / (df + 0.5))


def length_factor(length: int, avg_length: float) -> float:
    """BM25's weight of one occurrence of a term in a chunk of `length` tokens."""
    return (K1 + 1.0) / (1.0 + K1 * (1.0 - B + B * length / avg_length))


_EMPTY32 = np.zeros(0, dtype=np.uint32)


@dataclass(frozen=True, slots=True)
class _Segment:
    """Postings: sorted token ids; the chunk ids of token i in ids[offsets[i]:offsets[i+1]]."""

    tokens: np.ndarray  # uint32
    offsets: np.ndarray  # int64, len(tokens) + 1
    ids: np.ndarray  # uint32

    def __len__(self) -> int:
        return len(self.ids)

    def lookup(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where each query token's postings start, and how many there are."""
        if not len(self.tokens):
            zeros = np.zeros(len(query), dtype=np.int64)
            return zeros, zeros
        at = np.minimum(np.searchsorted(self.tokens, query), len(self.tokens) - 1)
        starts = self.offsets[at]
        counts = np.where(self.tokens[at] == query, self.offsets[at + 1] - starts, 0)
        return starts, counts


def _from_pairs(tokens: np.ndarray, ids: np.ndarray) -> _Segment:
    order = np.argsort(tokens, kind="stable")
    unique, counts = np.unique(tokens[order], return_counts=True)
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    return _Segment(unique.astype(np.uint32), offsets, ids[order])


def _merge(parts: Sequence[_Segment], alive: np.ndarray) -> Iterator[_Segment | None]:
    """Merge segments, dropping dead chunk ids; yields None between blocks of work, then
    the merged segment."""
    union = parts[0].tokens
    for part in parts[1:]:
        union = np.union1d(union, part.tokens)
    union = union.astype(np.uint32)
    places = [np.searchsorted(union, part.tokens) for part in parts]
    counts = [np.diff(part.offsets) for part in parts]
    totals = np.zeros(len(union), dtype=np.int64)
    for place, count in zip(places, counts, strict=True):
        totals[place] += count
    # Blocks of union tokens, each with at most about _BLOCK postings.
    bounds = np.searchsorted(np.cumsum(totals), np.arange(_BLOCK, totals.sum(), _BLOCK))
    edges = [0, *sorted(set(bounds.tolist())), len(union)]
    del totals, bounds
    merged = np.empty(sum(len(part) for part in parts), dtype=np.uint32)
    filled = 0
    new_tokens: list[np.ndarray] = []
    new_counts: list[np.ndarray] = []
    for a, b in pairwise(edges):
        if b <= a:
            continue
        keys, ids = [], []
        for rank, (part, place, count) in enumerate(zip(parts, places, counts, strict=True)):
            pa, pb = np.searchsorted(place, [a, b])
            # Each posting keyed by its token's place in the union, older segments first.
            keys.append(np.repeat(place[pa:pb].astype(np.int64) * len(parts) + rank, count[pa:pb]))
            ids.append(part.ids[part.offsets[pa] : part.offsets[pb]])
        block_keys, block_ids = np.concatenate(keys), np.concatenate(ids)
        live = alive[block_ids] == 1
        block_keys, block_ids = block_keys[live], block_ids[live]
        order = np.argsort(block_keys, kind="stable")
        merged[filled : filled + len(block_ids)] = block_ids[order]
        filled += len(block_ids)
        token_at, token_counts = np.unique(block_keys[order] // len(parts), return_counts=True)
        new_tokens.append(union[token_at])
        new_counts.append(token_counts)
        yield None
    merged.resize(filled, refcheck=False)  # in place: dead ids left out
    tokens = np.concatenate(new_tokens).astype(np.uint32) if new_tokens else _EMPTY32
    all_counts = np.concatenate(new_counts) if new_counts else np.zeros(0, dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(all_counts))).astype(np.int64)
    yield _Segment(tokens, offsets, merged)


class ChunkIndex:
    def __init__(self) -> None:
        self._file = array("I")
        self._first = array("I")
        self._last = array("I")
        self._length = array("H")
        self._alive = bytearray()
        self.alive_chunks = 0
        self._alive_length = 0
        self._segments: tuple[_Segment, ...] = ()
        # Postings not yet frozen, as (token, chunk id) pairs: the latest additions, and
        # those being frozen.
        self._delta_tokens = array("I")
        self._delta_ids = array("I")
        self._freezing = (_EMPTY32, _EMPTY32)
        self.dead_postings = 0  # dead chunk ids still in segments (since the last freeze)

    def __len__(self) -> int:
        return self.alive_chunks

    @property
    def delta_postings(self) -> int:
        return len(self._delta_tokens) + len(self._freezing[0])

    @property
    def frozen_postings(self) -> int:
        return sum(len(seg) for seg in self._segments)

    @property
    def segments(self) -> int:
        return len(self._segments)

    @property
    def postings(self) -> int:
        return self.frozen_postings + self.delta_postings

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
        positions, _ = self._unfrozen(query)
        counts = np.bincount(positions, minlength=len(query))
        for seg in self._segments:
            counts = counts + seg.lookup(query)[1]
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
        found = [seg.lookup(query) for seg in self._segments]
        d_positions, d_ids = self._unfrozen(query)
        df = np.bincount(d_positions, minlength=len(query))
        for _, counts in found:
            df = df + counts
        n, max_df = self.alive_chunks, self.max_df()
        keep = (df > 0) & (df <= max_df)
        if not keep.any():
            return []
        capped = np.minimum(df, n)  # dead chunks count in df until merged away
        weights = np.log(1.0 + (n - capped + 0.5) / (capped + 0.5))
        # Each segment's postings of the kept tokens, gathered in one vectorised step.
        parts_ids, parts_weights = [], []
        for seg, (starts, counts) in zip(self._segments, found, strict=True):
            kept = np.where(keep, counts, 0)
            total = int(kept.sum())
            if total:
                ends = np.cumsum(kept)
                at = np.repeat(starts - (ends - kept), kept) + np.arange(total)
                parts_ids.append(seg.ids[at])
                parts_weights.append(np.repeat(weights, kept))
        d_keep = keep[d_positions]
        parts_ids.append(d_ids[d_keep])
        parts_weights.append(weights[d_positions[d_keep]])
        ids = np.concatenate(parts_ids)
        weight = np.concatenate(parts_weights)
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
        """Whether the unfrozen postings (or the dead ones) are worth a freeze; `final` at
        the end of a batch of work, when a smaller batch of them is."""
        frozen = self.frozen_postings
        dead = self.dead_postings > 50_000 and self.dead_postings * 4 > frozen
        if final:
            return self.delta_postings > 10_000 or dead
        return self.delta_postings > max(50_000, min(frozen // 4, _SEGMENT // 2)) or dead

    def freeze(self, purge: bool = False) -> Iterator[str]:
        """Turn the unfrozen postings into a segment, merge small segments, rewrite those
        with many dead ids (with `purge`, those with any).

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
        segments = list(self._segments)
        dead_before = self.dead_postings
        yield "unlocked"
        if len(pending[0]):
            live = alive[pending[1]] == 1
            segments.append(_from_pairs(pending[0][live], pending[1][live]))
            del live
        # Merge the newest segments while the result stays small (sizes then grow
        # geometrically, like a log-structured merge).
        while len(segments) >= 2 and (
            len(segments[-1]) + len(segments[-2]) <= _SEGMENT
            and len(segments[-2]) <= 4 * len(segments[-1])
        ):
            merged = None
            for step in _merge(segments[-2:], alive):
                merged = step
                yield "unlocked"
            assert merged is not None
            segments[-2:] = [merged]
        # Segments that hold many dead ids are rewritten alone.
        dead_left = 0
        for i, seg in enumerate(segments):
            dead = int(np.count_nonzero(alive[seg.ids] == 0))
            if dead * 4 > len(seg) or (purge and dead):
                rewritten = None
                for step in _merge([seg], alive):
                    rewritten = step
                    yield "unlocked"
                assert rewritten is not None
                segments[i] = rewritten
            else:
                dead_left += dead
            yield "unlocked"
        yield "locked"
        self._segments = tuple(s for s in segments if len(s))
        self._freezing = (_EMPTY32, _EMPTY32)
        # Chunks removed while this ran are still in the segments: counted as dead.
        self.dead_postings = dead_left + max(self.dead_postings - dead_before, 0)
