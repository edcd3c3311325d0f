"""After a big recompute the daemon freezes the surviving heap, so later full collections do not rescan
the engine's millions of long-lived objects (appliance/heap.py)."""

from __future__ import annotations

import gc

from appliance.heap import HeapSettler


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_a_big_recompute_freezes_the_heap_and_a_small_one_does_not() -> None:
    gc.unfreeze()
    try:
        settler = HeapSettler(threshold_s=1.0)
        kept = [object() for _ in range(1000)]
        assert settler.after_recompute(0.2) is None
        assert gc.get_freeze_count() == 0
        assert settler.after_recompute(1.5) is not None
        assert gc.get_freeze_count() >= len(kept)
    finally:
        gc.unfreeze()


def test_cyclic_garbage_frozen_earlier_is_collected_at_the_next_settle() -> None:
    gc.unfreeze()
    try:
        settler = HeapSettler(threshold_s=0.0)
        gc.disable()   # no automatic collection in between: only the settle may free the cycles
        cycles = [Node() for _ in range(500)]
        settler.after_recompute(1.0)   # frozen while alive
        before = gc.get_freeze_count()
        del cycles                     # now garbage, but frozen: a plain collection cannot see it
        gc.collect()
        assert gc.get_freeze_count() > before - 500  # the list went (refcount), the cycles stay
        settler.after_recompute(1.0)   # unfreezes, collects them, freezes the rest
        assert gc.get_freeze_count() <= before - 500
    finally:
        gc.enable()
        gc.unfreeze()
