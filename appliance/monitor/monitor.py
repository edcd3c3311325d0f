"""The Monitor: the one door producers use to report; it stamps time, keeps alarms, publishes events.

`emit(notice)` turns a typed notice into a model.Event (time from the injected clock), raises or clears
its alarm, and publishes it. `publish(event)` takes events other modules already built (the FlowSpec
compiler returns model.Event records): an `alarm=True` event raises an alarm keyed by its type and
fields. `reconcile(scope, events)` suits pure producers that report all their findings on each run: it
raises what is new and clears what vanished, without repeating events on every recompute.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from appliance.model import Event, Severity
from appliance.monitor.alarms import Alarm, AlarmTable
from appliance.monitor.bus import EventBus, Record
from appliance.monitor.clock import Clock, SystemClock
from appliance.monitor.events import Notice


class Monitor:
    def __init__(self, clock: Clock | None = None, bus: EventBus | None = None,
                 alarms: AlarmTable | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self.bus = bus or EventBus()
        self.alarms = alarms or AlarmTable()
        self._scopes: dict[str, set[str]] = {}

    def emit(self, notice: Notice) -> Record:
        event = _event_of(notice, self.clock.now())
        if event.alarm:
            self.alarms.raise_(_alarm(notice.alarm_id, event))
        elif notice.alarm_id:
            self.alarms.clear(notice.alarm_id)
        return self.bus.publish(event)

    def reconcile_notices(self, scope: str, notices: Iterable[Notice]) -> list[Record]:
        """`reconcile` for producers of typed notices (each one raising its alarm)."""
        now = self.clock.now()
        return self.reconcile(scope, [_event_of(n, now) for n in notices])

    def publish(self, event: Event) -> Record:
        """Publish a ready event (time 0 = now); alarm events raise an alarm identified by type and fields."""
        event = self._stamped(event)
        if event.alarm:
            self.alarms.raise_(_alarm(_alarm_id(event), event))
        return self.bus.publish(event)

    def reconcile(self, scope: str, events: Iterable[Event]) -> list[Record]:
        """For pure producers that return all their findings on each run (FlowSpec compiler, report merge).

        Alarm events not raised yet are published and raised; those already raised are refreshed
        silently (no duplicate events on every recompute); alarms this scope raised earlier and absent
        now are cleared. Plain events are published.
        """
        records: list[Record] = []
        seen: set[str] = set()
        for event in events:
            event = self._stamped(event)
            if not event.alarm:
                records.append(self.bus.publish(event))
                continue
            alarm_id = _alarm_id(event)
            seen.add(alarm_id)
            if self.alarms.get(alarm_id) is None:
                records.append(self.publish(event))
            else:
                self.alarms.raise_(_alarm(alarm_id, event))
        for alarm_id in sorted(self._scopes.get(scope, set()) - seen):
            cleared = self.clear(alarm_id, scope, f"cleared: {alarm_id}")
            if cleared is not None:
                records.append(cleared)
        self._scopes[scope] = seen
        return records

    def _stamped(self, event: Event) -> Event:
        return replace(event, time=self.clock.now()) if event.time == 0.0 else event

    def clear(self, alarm_id: str, source: str, message: str) -> Record | None:
        """Clear an alarm raised through `publish`; publishes an info event when it was raised."""
        old = self.alarms.clear(alarm_id)
        if old is None:
            return None
        fields = {**old.fields, "alarm_id": alarm_id, "cleared": "true"}
        return self.bus.publish(Event(self.clock.now(), source, old.type, Severity.INFO, message, fields))


def _event_of(notice: Notice, now: float) -> Event:
    alarm_id = notice.alarm_id
    fields = notice.fields()
    if alarm_id:
        fields["alarm_id"] = alarm_id
    return Event(now, notice.source, str(notice.event_type), notice.severity, notice.message, fields,
                 alarm=bool(alarm_id) and notice.raises)


def _alarm_id(event: Event) -> str:
    return event.fields.get("alarm_id") or "/".join(
        [event.type, *(f"{k}={v}" for k, v in sorted(event.fields.items()))]
    )


def _alarm(alarm_id: str, event: Event) -> Alarm:
    return Alarm(alarm_id, event.type, event.source, event.severity, event.message, event.time, event.time,
                 fields=dict(event.fields))
