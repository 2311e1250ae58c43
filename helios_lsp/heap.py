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
