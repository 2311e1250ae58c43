"""The BM25 chunk index: scores as the formula says, through additions, removals and
merges into its compact arrays."""

from __future__ import annotations

import random

import pytest

from helios_lsp.engine.context import chunk_index
from helios_lsp.engine.context.chunk_index import ChunkIndex, idf, length_factor


def _drain(index: ChunkIndex, purge: bool = False) -> None:
    for _ in index.freeze(purge):
        pass


def _reference(chunks, alive, query, files, exclude=()):
    """BM25 (each token counted once per chunk) computed naively; best chunk per file."""
    live = {cid: c for cid, c in chunks.items() if cid in alive}
    n = len(live)
    avg = sum(len(c[1]) for c in live.values()) / n
    df = {}
    for _, tokens in chunks.values():  # dead chunks count until merged away: not here
        for t in tokens:
            df[t] = df.get(t, 0) + 1
    max_df = max(64, n // 8)
    scored = []
    for cid, (file_id, tokens) in live.items():
        shared = [t for t in query if t in tokens and df[t] <= max_df]
        if shared:
            s = sum(idf(n, df[t]) for t in shared) * length_factor(len(tokens), avg)
            scored.append((-s, cid, file_id))
    scored.sort()
    out, taken = [], set()
    for s, cid, file_id in scored:
        if file_id in taken or file_id in exclude:
            continue
        taken.add(file_id)
        out.append((-s, cid))
    return out[:files]


@pytest.mark.parametrize("freeze_every", [0, 7, 1])
def test_top_matches_the_formula_through_merges(freeze_every, monkeypatch):
    monkeypatch.setattr(chunk_index, "_BLOCK", 50)  # many merge blocks on small data
    monkeypatch.setattr(chunk_index, "_SEGMENT", 400)  # and several segments
    rng = random.Random(freeze_every)
    index = ChunkIndex()
    chunks: dict[int, tuple[int, set[int]]] = {}
    for file_id in range(60):
        file_chunks = []
        for _ in range(rng.randint(1, 4)):
            tokens = {rng.randint(1, 400) for _ in range(rng.randint(1, 30))}
            file_chunks.append((0, 10, tokens))
        ids = index.add(file_id, file_chunks)
        for cid, (_, _, tokens) in zip(ids, file_chunks, strict=True):
            chunks[cid] = (file_id, tokens)
        if freeze_every and file_id % freeze_every == 0:
            _drain(index)
    removed = set(rng.sample(sorted(chunks), 40))
    index.remove(removed)
    alive = set(chunks) - removed
    for cid in removed:  # the reference counts document frequency over live chunks
        del chunks[cid]
    _drain(index, purge=True)  # dead ids leave the segments: frequencies match live chunks
    for _ in range(20):
        query = {rng.randint(1, 400) for _ in range(25)}
        got = index.top(query, 5, exclude_files={3})
        want = _reference(chunks, alive, query, 5, exclude={3})
        assert [c for _, c in got] == [c for _, c in want]
        assert [round(s, 9) for s, _ in got] == [round(s, 9) for s, _ in want]
    assert index.dead_postings == 0 and index.delta_postings == 0
    if freeze_every == 1:
        assert 1 < index.segments < 10  # merged as they came, never into one


def test_unfrozen_and_frozen_postings_count_alike():
    index = ChunkIndex()
    index.add(0, [(0, 5, {1, 2, 3})])
    _drain(index)
    index.add(1, [(0, 5, {2, 3, 4})])
    assert index.dfs([1, 2, 4, 9]) == {1: 1, 2: 2, 4: 1, 9: 0}
    assert index.chunk(1) == (1, 0, 5)
    assert [cid for _, cid in index.top({2, 4}, 5)] == [1, 0]
