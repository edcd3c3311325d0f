"""Several RTR caches with preference and failover, feeding one source of the RPKI tables.

Like rtrlib's rtr_mgr, caches are ranked by preference (lower wins, then configuration order). Unlike it,
every cache is kept connected (hot standby): a failover is a swap to data already in sync, not a new
full sync at the worst moment. The tables see only the active cache, under one source name ("rtr"), so a
failover publishes exactly the difference between the two caches' data. When no cache has data (all
expired), the source is removed: the rules it supported are withdrawn, and each expiry raised an alarm.

Each session runs under a supervisor, as two tasks: `run()` (the connection) and `expire_watchdog()`.
A task that ends with an exception is a bug (the session handles every error the protocol foresees): the
supervisor logs `event=rtr-session-died`, raises the alarm `rtr-task-died/<cache>` and restarts the task
after a backoff; the alarm clears at the cache's next End of Data. The watchdog being a task of its own,
a dead session's data still expires (fail open).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from appliance.model import Event, Severity
from rpki.keys import KeySet
from rpki.rtr.session import EXPIRED_EVENT, SESSION_EVENT, CacheConfig, CacheSession, CacheStatus
from rpki.rtr.transport import Connector, tcp_connect
from rpki.tables import RpkiTables

log = logging.getLogger(__name__)

RESTART_FIRST_S = 1.0  # first restart delay of a dead session task; doubles per death in a row
RESTART_MAX_S = 60.0


class RtrManager:
    """Runs one `CacheSession` per configured cache and publishes the preferred one's data."""

    def __init__(
        self,
        caches: Sequence[CacheConfig],
        tables: RpkiTables,
        on_event: Callable[[Event], object] | None = None,
        source: str = "rtr",
        connector: Connector = tcp_connect,
        restart_first_s: float = RESTART_FIRST_S,
        restart_max_s: float = RESTART_MAX_S,
    ) -> None:
        if not caches:
            raise ValueError("RtrManager needs at least one cache")
        self.tables = tables
        self.source = source
        self.on_event = on_event
        self.events: list[Event] = []
        self.sessions = [CacheSession(c, self, connector) for c in caches]
        self.active: CacheSession | None = None
        self._no_cache_alarm = False
        self._tasks: list[asyncio.Task[None]] = []
        self.restart_first_s, self.restart_max_s = restart_first_s, restart_max_s
        self.deaths: dict[str, int] = {}
        """Deaths in a row of each cache's tasks (reset by its next End of Data); the restart backoff."""
        self._died_alarms: set[str] = set()

    async def start(self) -> None:
        for s in self.sessions:
            run = self._supervise(s, "session", s.run)
            expiry = self._supervise(s, "expiry", s.expire_watchdog)
            self._tasks.append(asyncio.create_task(run, name=f"rtr:{s.name}"))
            self._tasks.append(asyncio.create_task(expiry, name=f"rtr-expiry:{s.name}"))

    async def _supervise(self, session: CacheSession, task: str, body: Callable[[], Awaitable[None]]) -> None:
        """Run `body` until cancelled; restart it, with an alarm and a backoff, whenever it ends."""
        while True:
            try:
                await body()
                error = "returned"  # neither body ever returns; treat it as a death all the same
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug: log it with its traceback, alarm, restart
                error = f"{type(exc).__name__}: {exc}"
                log.error("event=rtr-session-died peer=%s task=%s error=%r", session.name, task, error,
                          exc_info=exc)
            else:
                log.error("event=rtr-session-died peer=%s task=%s error=%r", session.name, task, error)
            delay = self._task_died(session, task, error)
            log.info("event=rtr-session-restart peer=%s task=%s in_s=%.2f", session.name, task, delay)
            await asyncio.sleep(delay)

    def _task_died(self, session: CacheSession, task: str, error: str) -> float:
        """Alarm naming the cache; returns the delay before the restart."""
        deaths = self.deaths[session.name] = self.deaths.get(session.name, 0) + 1
        if task == "session":
            session.task_died(error)
        self._died_alarms.add(session.name)
        fields = {"cache": session.name, "alarm_id": f"rtr-task-died/{session.name}", "task": task,
                  "error": error, "detail": "task-died", "deaths": str(deaths)}
        self.cache_event(Event(time.time(), f"rtr:{session.name}", SESSION_EVENT, Severity.CRITICAL,
                               f"RTR {task} task of cache {session.name} died ({error}); restarting",
                               fields, True))
        return float(min(self.restart_max_s, self.restart_first_s * 2.0 ** min(deaths - 1, 30)))

    async def stop(self) -> None:
        """Cancel the sessions; cancel again while any survives (a cancel racing a timeout can be lost)."""
        pending = [t for t in self._tasks if not t.done()]
        while pending:
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=0.5)
            pending = [t for t in pending if not t.done()]
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def wait_synced(self, timeout_s: float) -> bool:
        """True once some cache has data; False after `timeout_s`."""
        waits = [asyncio.create_task(s.synced.wait()) for s in self.sessions]
        try:
            done, _ = await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
            return bool(done)
        finally:
            for w in waits:
                w.cancel()

    def status(self) -> list[CacheStatus]:
        return [s.status(active=s is self.active) for s in self.sessions]

    # --- SessionListener -------------------------------------------------------------------------------

    def cache_updated(self, session: CacheSession, added: KeySet, removed: KeySet) -> None:
        self.deaths.pop(session.name, None)
        if session.name in self._died_alarms:
            self._died_alarms.discard(session.name)
            fields = {"cache": session.name, "alarm_id": f"rtr-task-died/{session.name}", "up": "true"}
            self.cache_event(Event(time.time(), f"rtr:{session.name}", SESSION_EVENT, Severity.INFO,
                                   f"RTR session to cache {session.name} running again", fields))
        if session is self.active:
            self.tables.set_source(self.source, session.vrps, session.aspa_by_customer(), added, removed)
        else:
            self._elect()

    def cache_withdrawn(self, session: CacheSession) -> None:
        if session is self.active:
            self._elect()

    def cache_event(self, event: Event) -> None:
        self.events.append(event)
        del self.events[:-1000]
        if self.on_event is not None:
            self.on_event(event)

    def _elect(self) -> None:
        ranked = sorted(
            (s for s in self.sessions if s.has_data),
            key=lambda s: (s.config.preference, self.sessions.index(s)),
        )
        best = ranked[0] if ranked else None
        if best is self.active:
            return
        previous, self.active = self.active, best
        if best is None:
            self.tables.remove_source(self.source)
            message = "no RTR cache has data: RPKI data withdrawn"
            fields = {"alarm_id": f"rpki-stale/{self.source}"}
            self.cache_event(
                Event(time.time(), self.source, EXPIRED_EVENT, Severity.CRITICAL, message, fields, True)
            )
            self._no_cache_alarm = True
            return
        self.tables.set_source(self.source, best.vrps, best.aspa_by_customer())
        if self._no_cache_alarm:
            self._no_cache_alarm = False
            fields = {"alarm_id": f"rpki-stale/{self.source}", "up": "true", "cache": best.name}
            self.cache_event(Event(time.time(), self.source, EXPIRED_EVENT, Severity.INFO,
                                   f"RPKI data back from cache {best.name}", fields))
        if previous is not None or len(self.sessions) > 1:
            severity = Severity.WARNING if previous else Severity.INFO
            fields = {"cache": best.name, "previous": previous.name if previous else "", "detail": "failover"}
            self.cache_event(Event(time.time(), self.source, SESSION_EVENT, severity,
                                   f"active cache is {best.name}", fields))
        log.info("rtr.active cache=%s previous=%s", best.name, previous.name if previous else "")
