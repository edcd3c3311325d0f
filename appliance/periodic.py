"""A component's background round: `step` every `interval_s` in one task, until `stop()`.

The daemon's periodic components (report files, enforcer poller, drift check, collaboration expiry) each
ran the same sleep-loop-task-cancel code; this is it once. A step handles (and logs) its own errors, so
the log keeps each component's event names; an exception that still escapes ends only that round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

__all__ = ["Periodic"]


class Periodic:
    """`start()` runs `step` every `interval_s` (first after one interval, or at once with `at_once`)."""

    def __init__(self, name: str, interval_s: float, step: Callable[[], Awaitable[None]], *,
                 at_once: bool = False) -> None:
        self.name, self.interval_s, self.step, self.at_once = name, interval_s, step, at_once
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def _run(self) -> None:
        if not self.at_once:
            await asyncio.sleep(self.interval_s)
        while True:
            try:
                await self.step()
            except Exception:  # a step logs its own failures; one that escapes ends only this round
                log.exception("event=periodic-step-failed task=%s", self.name)
            await asyncio.sleep(self.interval_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
