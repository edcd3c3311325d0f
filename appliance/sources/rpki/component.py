"""RPKI facts in `savd run`: rpki.service.RpkiService (RTR caches and files) mirrored into the store.

Deltas from the tables go to the store as they come (rpki.service.feed_store, source "rpki"); once every
cache and file has delivered, one ReplaceSource drops what the journal restored but the sources no longer
say (VRPs and ASPAs withdrawn while savd was down: deltas alone never withdraw them). Status goes to the
API's RPKI board. The RTR protocol and file formats live in the top-level `rpki` package.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable

from appliance.config import Config
from appliance.context import DaemonContext
from appliance.state.changes import Announce, Change, ReplaceSource, Withdraw
from appliance.state.facts import Fact
from appliance.state.store import StateStore
from rpki.service import RpkiService
from rpki.tables import RpkiDelta, RpkiTables

log = logging.getLogger("savd.rpki")

STATE_SOURCE = "rpki"  # the store source of every VRP and ASPA


def delta_to_changes(delta: RpkiDelta, source: str = STATE_SOURCE) -> list[Change]:
    """State-store changes equivalent to one table delta (withdrawals first, then announcements)."""
    changes: list[Change] = []
    withdrawn: tuple[Fact, ...] = (*delta.withdrawn(), *delta.aspas_old)
    announced: tuple[Fact, ...] = (*delta.announced(), *delta.aspas_set)
    if withdrawn:
        changes.append(Withdraw(source, withdrawn))
    if announced:
        changes.append(Announce(source, announced))
    return changes


def feed_store(tables: RpkiTables, store: StateStore, source: str = STATE_SOURCE) -> Callable[[], None]:
    """Mirror every table delta into `store`; returns the unsubscribe function."""

    def apply(delta: RpkiDelta) -> None:
        for change in delta_to_changes(delta, source):
            store.apply(change)

    return tables.subscribe(apply)


class RpkiComponent:
    """rpki.service.RpkiService as a daemon component, its status on the API's board."""

    name = "rpki"

    def __init__(self, config: Config) -> None:
        self.config = config
        self.service: RpkiService | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._resync: asyncio.Task[None] | None = None

    async def start(self, ctx: DaemonContext) -> None:
        service = self.service = RpkiService(self.config.rpki, on_event=ctx.monitor.publish,
                                             on_clear=ctx.monitor.clear)
        self._unsubscribe = feed_store(service.tables, ctx.store, STATE_SOURCE)
        ctx.rpki.add_caches(service.cache_status)
        watcher = service.watcher
        if watcher is not None:
            for path in watcher.paths:
                ctx.rpki.add_file(functools.partial(watcher.status_of, path))
        ctx.rpki.set_counts(service.tables.counts)
        await service.start()
        self._resync = asyncio.create_task(self._resync_when_loaded(ctx), name="rpki-resync")

    async def _resync_when_loaded(self, ctx: DaemonContext, interval_s: float = 0.5) -> None:
        """Once every cache and file has delivered data, replace what the journal restored with the
        tables' content."""
        assert self.service is not None
        while True:
            status = ctx.rpki.rpki_status()
            sources = [*status.get("caches", ()), *status.get("files", ())]
            if sources and all(s.get("last_update") is not None for s in sources):
                break
            await asyncio.sleep(interval_s)
        snap = self.service.tables.snapshot()
        applied = ctx.store.apply(ReplaceSource(STATE_SOURCE, ("vrp", "aspa"), (*snap.vrps, *snap.aspas)))
        log.info("event=rpki-resynced vrps=%d aspas=%d changed=%s version=%d", len(snap.vrps),
                 len(snap.aspas), applied.changed, applied.version)

    async def stop(self) -> None:
        if self._resync is not None:
            self._resync.cancel()
            await asyncio.gather(self._resync, return_exceptions=True)
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self.service is not None:
            await self.service.stop()


def component(ctx: DaemonContext) -> RpkiComponent | None:
    config = ctx.config
    if not config.rpki.caches and not config.rpki.files:
        return None
    return RpkiComponent(config)


__all__ = ["STATE_SOURCE", "RpkiComponent", "component", "delta_to_changes", "feed_store"]
