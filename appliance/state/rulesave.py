"""Journalling the rule set in force, off the path from a change to the routers.

The rule set is saved after the routers have it: a crash in between loses nothing, since a restart
recomputes the rules from the journalled inputs and adopts what the routers hold. It is saved in the
background and when changes pause: encoding a border router's blocklists takes tens of milliseconds per
rule (in a worker thread, which still takes the interpreter lock from the event loop), and neither the next
recompute nor an API request should wait for it. Saves coalesce: a rule set is written once no newer one
came for `quiet_s`, or `max_lag_s` after the first unsaved one under steady change; `flush()` (at stop)
writes what is left at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from appliance.model import SavRuleSet
from appliance.state.errors import StateError
from appliance.state.journal import encode_rules
from appliance.state.store import StateStore

log = logging.getLogger(__name__)


class RulesetSaver:
    """Saves the newest published rule set in the store's journal, one save at a time."""

    def __init__(self, store: StateStore, quiet_s: float = 1.0, max_lag_s: float = 10.0) -> None:
        self._store = store
        self.quiet_s, self.max_lag_s = quiet_s, max_lag_s
        self._latest: tuple[int, SavRuleSet] | None = None
        self._last_submit = 0.0
        self._task: asyncio.Task[None] | None = None
        self._hurry = asyncio.Event()

    def submit(self, version: int, ruleset: SavRuleSet) -> None:
        """Save `ruleset` once changes pause; a newer submit before then replaces it."""
        self._latest = (version, ruleset)
        self._last_submit = asyncio.get_running_loop().time()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="ruleset-save")

    async def flush(self) -> None:
        """Save the newest submitted rule set now and wait for it (a failed save is alarmed, not raised)."""
        self._hurry.set()
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
        self._hurry.clear()

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._latest is not None:
            await self._pause(loop, loop.time())
            version, ruleset = self._latest
            self._latest = None
            try:
                encoded = await loop.run_in_executor(None, encode_rules, self._store.unsaved_rules(ruleset))
                self._store.save_ruleset(ruleset, version, encoded)
            except StateError:
                pass  # the rules are in force; the store raised the journal alarm (a restart recomputes them)
            except Exception:
                log.exception("event=ruleset-save-failed version=%d", version)

    async def _pause(self, loop: asyncio.AbstractEventLoop, first: float) -> None:
        """Until no submit for `quiet_s`, `max_lag_s` after `first`, or a flush."""
        while not self._hurry.is_set():
            now = loop.time()
            wait = min(self._last_submit + self.quiet_s, first + self.max_lag_s) - now
            if wait <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._hurry.wait(), wait)
