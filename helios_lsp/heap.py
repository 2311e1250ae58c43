"""The collector and a long-running process."""

from __future__ import annotations

import gc


def settle() -> None:
    """Put what is alive at start-up (modules, classes, the libraries' tables: ~70,000
    objects that live until exit) out of the collector's sight. A full collection, which
    the workspace index's allocations trigger now and then, stops every thread (the event
    loop too) while it scans; without these it takes a few milliseconds instead of ~50."""
    gc.collect()
    gc.freeze()
