"""The daemon's long-lived heap and CPython's cyclic garbage collector.

savd keeps its inputs and the engine's state (millions of small objects at Internet scale) for its whole
life, and a full collection rescans all of it: 0.3 s and more at a time, landing on whichever report or
FlowSpec push happens to be in flight. After a big recompute (the initial load, an RPKI or topology
rebuild: a recompute that took `threshold_s` or more, which already kept the loop's rules waiting) the
daemon collects once and freezes what survives (`gc.freeze`: a generation the collector never scans), so
later collections scan only what was allocated since. Each settle unfreezes first, so cyclic garbage
among objects frozen earlier is collected then; until the next big recompute such garbage waits (the
engine's state is dicts, sets and tuples of strings, without reference cycles).
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger("savd.heap")


class HeapSettler:
    """Collect and freeze the heap after recomputes that took at least `threshold_s`."""

    def __init__(self, threshold_s: float = 1.0) -> None:
        self.threshold_s = threshold_s

    def after_recompute(self, took_s: float) -> float | None:
        """Settle after a recompute of `took_s` seconds; returns the time spent, None when skipped."""
        if took_s < self.threshold_s:
            return None
        start = time.perf_counter()
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        spent = time.perf_counter() - start
        log.info("event=heap-frozen objects=%d recompute_s=%.2f took_ms=%.0f", gc.get_freeze_count(), took_s,
                 spent * 1000)
        return spent
