"""settle(): what start-up left alive is out of the collector's sight, so a full
collection (which the workspace index's allocations trigger) does not scan it again; a
thread waiting for the GIL gets it sooner."""

from __future__ import annotations

import gc
import sys

from helios_lsp.heap import SWITCH_INTERVAL, freeze_survivors, settle


def test_settle_takes_the_start_up_objects_out_of_the_collectors_generations():
    kept = [{"n": i, "items": [i, str(i)]} for i in range(100_000)]  # a big live heap
    interval = sys.getswitchinterval()
    try:
        assert len(gc.get_objects()) > 2 * len(kept)  # dicts and lists: all tracked
        settle()
        assert gc.get_freeze_count() >= 2 * len(kept)
        assert len(gc.get_objects()) < len(kept)  # what a full collection scans now
        assert kept[-1]["items"][1] == str(len(kept) - 1)  # frozen, not freed
        assert sys.getswitchinterval() == SWITCH_INTERVAL < interval
    finally:
        gc.unfreeze()
        sys.setswitchinterval(interval)


def test_freeze_survivors_keeps_the_live_and_frees_young_cyclic_garbage():
    freed = []

    class Node:
        def __del__(self):
            freed.append(1)

    try:
        kept = [[i] for i in range(10_000)]
        cycle = Node()
        cycle.me = cycle
        del cycle  # garbage only the collector finds
        before = gc.get_freeze_count()
        freeze_survivors()
        assert gc.get_freeze_count() >= before + len(kept)
        assert len(gc.get_objects()) < len(kept)  # what a full collection scans now
        assert freed == [1]
        assert kept[-1] == [len(kept) - 1]
    finally:
        gc.unfreeze()
