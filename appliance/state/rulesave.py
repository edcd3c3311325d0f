"""Journalling the rule set in force, off the path from a change to the routers.

The rule set is saved after the routers have it: a crash in between loses nothing, since a restart
recomputes the rules from the journalled inputs and adopts what the routers hold. It is saved in the
background: encoding a border router's blocklists takes tens of milliseconds per rule, which neither the
next recompute nor an API request should wait for. Saves coalesce: while one runs, only the newest rule
set waits for the next; `flush()` (at stop) writes what is left.
"""

from __future__ import annotations

import asyncio
import logging

from appliance.model import SavRuleSet
from appliance.state.errors import StateError
from appliance.state.journal import encode_rules
from appliance.state.store import StateStore

log = logging.getLogger(__name__)


class RulesetSaver:
    """Saves the newest published rule set in the store's journal, one save at a time."""

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._latest: tuple[int, SavRuleSet] | None = None
        self._task: asyncio.Task[None] | None = None

    def submit(self, version: int, ruleset: SavRuleSet) -> None:
        """Save `ruleset` soon; a newer submit before it starts replaces it."""
        self._latest = (version, ruleset)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="ruleset-save")

    async def flush(self) -> None:
        """Wait until the newest submitted rule set is saved (or its save failed and was alarmed)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._latest is not None:
            version, ruleset = self._latest
            self._latest = None
            try:
                encoded = await loop.run_in_executor(None, encode_rules, self._store.unsaved_rules(ruleset))
                self._store.save_ruleset(ruleset, version, encoded)
            except StateError:
                pass  # the rules are in force; the store raised the journal alarm (a restart recomputes them)
            except Exception:
                log.exception("event=ruleset-save-failed version=%d", version)
