"""The event bus: a bounded ring buffer of numbered events plus synchronous subscribers.

Readers (the API) page through the buffer with `since` (the last sequence number they saw); old events
fall off the end, and `dropped` says how many. A subscriber that raises is logged and kept: one faulty
exporter must not silence the others or the producer.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from appliance.model import Event, Severity
from appliance.monitor.metadata import Metadata, event_metadata

log = logging.getLogger("savd.monitor.bus")

Subscriber = Callable[["Record"], None]

SEVERITY_RANK = {s: i for i, s in enumerate(Severity)}


@dataclass(frozen=True, slots=True)
class Record:
    """An event with its sequence number on this bus (1, 2, ...)."""

    seq: int
    event: Event

    @property
    def meta(self) -> Metadata:
        """The common metadata (time, source, severity, category, router, interface, prefix)."""
        return event_metadata(self.event)

    def to_dict(self) -> dict[str, object]:
        e = self.event
        return {"seq": self.seq, **self.meta.to_dict(), "type": e.type, "message": e.message,
                "fields": dict(e.fields), "alarm": e.alarm}


@dataclass(frozen=True, slots=True)
class RecordFilter:
    """Which records a reader wants: the filters of GET /api/v1/events and its stream, in one place."""

    types: frozenset[str] = frozenset()
    min_severity: Severity = Severity.DEBUG
    alarms_only: bool = False
    categories: frozenset[str] = frozenset()
    router: str = ""
    interface: str = ""

    def matches(self, r: Record) -> bool:
        e = r.event
        if (self.types and e.type not in self.types) or (self.alarms_only and not e.alarm):
            return False
        if SEVERITY_RANK[e.severity] < SEVERITY_RANK[self.min_severity]:
            return False
        if not (self.categories or self.router or self.interface):
            return True
        meta = r.meta
        return ((not self.categories or str(meta.category) in self.categories)
                and (not self.router or meta.router == self.router)
                and (not self.interface or meta.interface == self.interface))


class EventBus:
    def __init__(self, capacity: int = 2000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._ring: deque[Record] = deque(maxlen=capacity)
        self._subscribers: list[Subscriber] = []
        self._seq = 0

    @property
    def last_seq(self) -> int:
        return self._seq

    @property
    def dropped(self) -> int:
        """How many events fell off the ring buffer."""
        return self._seq - len(self._ring)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call `subscriber` for every later event; returns the function that unsubscribes it."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber) if subscriber in self._subscribers else None

    def publish(self, event: Event) -> Record:
        self._seq += 1
        record = Record(self._seq, event)
        self._ring.append(record)
        for subscriber in tuple(self._subscribers):
            try:
                subscriber(record)
            except Exception:  # a broken exporter must not stop the producer
                log.exception("event=subscriber-failed type=%s seq=%d", event.type, record.seq)
        return record

    def recent(
        self,
        since: int = 0,
        limit: int = 100,
        types: Iterable[str] = (),
        min_severity: Severity = Severity.DEBUG,
        alarms_only: bool = False,
        where: RecordFilter | None = None,
    ) -> list[Record]:
        """Events after `since`, oldest first, at most `limit` (the newest ones when more match).
        `where` replaces the other filters when given."""
        wanted = where or RecordFilter(frozenset(types), min_severity, alarms_only)
        out = [r for r in self._ring if r.seq > since and wanted.matches(r)]
        return out[-limit:] if limit > 0 else []
