"""The interpreter's settings for a long-running server with a busy background thread."""

from __future__ import annotations

import gc
import sys

# Seconds a thread may hold the GIL while another waits for it (Python's default: 5 ms).
# The event loop waits that long for each slice of a request while the workspace index is
# built in a thread: at 1 ms the 5,000-file index's p95 delay to a request went from
# 7-10 ms to 5 ms (docs/benchmarks.md).
SWITCH_INTERVAL = 0.001


def settle() -> None:
    """Put what is alive at start-up (modules, classes, the libraries' tables: ~70,000
    objects that live until exit) out of the collector's sight: a full collection, which
    the workspace index's allocations trigger now and then, stops every thread (the event
    loop too) while it scans, ~50 ms with them, a few without. And let a waiting thread
    take the GIL sooner."""
    gc.collect()
    gc.freeze()
    sys.setswitchinterval(SWITCH_INTERVAL)


def freeze_survivors() -> None:
    """Put what survived since the last freeze out of the collector's sight too: the
    workspace index's entries, and what the process made after start-up (the model, the
    server). During a 5,000-file index a full collection scanning them stopped the event
    loop for 47 ms, and one just after it for 63 ms (measured in `helios lsp`). The young
    generations are collected first, so their cyclic garbage is freed, not kept; garbage
    already in the oldest generation is kept (full collections found 0-351 objects)."""
    gc.collect(1)
    gc.freeze()
