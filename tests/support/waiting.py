"""Polling for asyncio tests: wait until the system under test reaches a state, failing with what was
awaited and the last mismatch seen (rather than a bare timeout)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


async def until(check: Callable[[], Any], what: str, timeout_s: float, interval_s: float = 0.25) -> None:
    """Poll `check` every `interval_s` until it returns exactly True (anything else describes the
    mismatch); AssertionError naming `what` and the last mismatch after `timeout_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last: Any = None
    while loop.time() < deadline:
        last = check()
        if last is True:
            return
        await asyncio.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; last mismatch: {last}")
