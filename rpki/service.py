"""The RPKI part of a running appliance: config in, tables out.

Owns only wiring: it builds an RtrManager and a FileWatcher from the [rpki] section of the appliance
configuration and runs them as asyncio tasks feeding one RpkiTables. Mirroring the tables into the state
store is the RPKI source's job (appliance/sources/rpki/component.py). It makes no RPKI decisions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from appliance.config import RpkiConfig
from appliance.model import Event, Severity
from rpki.files import FileWatcher
from rpki.rtr.manager import RtrManager
from rpki.rtr.session import CacheConfig, CacheStatus
from rpki.tables import RpkiTables

log = logging.getLogger(__name__)

def cache_configs(config: RpkiConfig) -> list[CacheConfig]:
    """[[rpki.cache]] entries as client configs; `version` is the highest version offered."""
    return [
        CacheConfig(c.host, c.port, c.preference, c.name, max_version=c.version)
        for c in config.caches
    ]


class RpkiService:
    """RTR caches and watched files from the config, feeding one RpkiTables."""

    def __init__(
        self,
        config: RpkiConfig,
        tables: RpkiTables | None = None,
        on_event: Callable[[Event], object] | None = None,
        on_clear: Callable[[str, str, str], object] | None = None,
    ) -> None:
        """`on_event` gets every event (e.g. Monitor.publish); `on_clear(alarm_id, source, message)`
        (e.g. Monitor.clear), if given, gets the events that end an alarm instead: those carry the
        alarm's `alarm_id` and `up="true"` in their fields, with alarm=False."""
        self.config = config
        self.tables = tables or RpkiTables()
        self.on_event = on_event
        self.on_clear = on_clear
        caches = cache_configs(config)
        self.manager = RtrManager(caches, self.tables, self._route) if caches else None
        paths = [str(f.path) for f in config.files]
        interval = min((f.reload_s for f in config.files), default=60.0)
        self.watcher = FileWatcher(paths, self.tables, interval, on_event) if paths else None
        self._tasks: list[asyncio.Task[None]] = []
        for c in config.caches:
            if c.netns:
                self._event(f"cache {c.name}: netns {c.netns!r} is not supported by the RTR client; "
                            "connecting from the appliance's own namespace", c.name)

    async def start(self) -> None:
        if self.manager is not None:
            await self.manager.start()
        if self.watcher is not None:
            self.watcher.poll()  # files are there at once, before the first interval
            self._tasks.append(asyncio.create_task(self.watcher.run(), name="rpki-files"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self.manager is not None:
            await self.manager.stop()

    def cache_status(self) -> Sequence[CacheStatus]:
        return self.manager.status() if self.manager is not None else []

    def file_status(self) -> list[dict[str, Any]]:
        return self.watcher.status() if self.watcher is not None else []

    def _route(self, event: Event) -> None:
        alarm_id = event.fields.get("alarm_id", "")
        if self.on_clear is not None and alarm_id and event.fields.get("up") == "true" and not event.alarm:
            self.on_clear(alarm_id, event.source, event.message)
        elif self.on_event is not None:
            self.on_event(event)

    def _event(self, message: str, cache: str) -> None:
        log.warning("rpki.config message=%r", message)
        if self.on_event is not None:
            self.on_event(Event(time.time(), f"rtr:{cache}", "rtr-session", Severity.WARNING, message,
                                {"cache": cache, "detail": "netns-unsupported"}))
