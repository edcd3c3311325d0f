"""The alarm table: which alarms are raised now, since when, how often refreshed (RFC 3877 style).

An alarm is identified by a string id chosen by its notice ("bgp-session/exa1/198.18.0.2"). Raising a
raised alarm refreshes it (count, last time, latest message) instead of duplicating it; clearing an
alarm that is not raised is a no-op. The table holds no history: cleared alarms live on in the bus.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from appliance.model import Severity
from appliance.monitor.metadata import category_of, concerns


@dataclass(frozen=True, slots=True)
class Alarm:
    id: str
    type: str
    source: str
    severity: Severity
    message: str
    raised_at: float
    last_at: float
    count: int = 1
    fields: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """With the common metadata (monitor/metadata.py); `time` is when it was last raised."""
        where = concerns(self.fields)
        return {
            "id": self.id,
            "time": self.last_at,
            "source": self.source,
            "severity": str(self.severity),
            "category": str(category_of(self.type, alarm=True)),
            "router": where.router,
            "interface": where.interface,
            "prefix": where.prefix,
            "type": self.type,
            "message": self.message,
            "raised_at": self.raised_at,
            "last_at": self.last_at,
            "count": self.count,
            "fields": dict(self.fields),
        }


class AlarmTable:
    def __init__(self) -> None:
        self._active: dict[str, Alarm] = {}

    def raise_(self, alarm: Alarm) -> bool:
        """Raise or refresh; True when the alarm is new."""
        old = self._active.get(alarm.id)
        if old is None:
            self._active[alarm.id] = alarm
            return True
        self._active[alarm.id] = replace(
            alarm, raised_at=old.raised_at, count=old.count + 1, last_at=alarm.last_at
        )
        return False

    def clear(self, alarm_id: str) -> Alarm | None:
        """Clear an alarm; returns it when it was raised."""
        return self._active.pop(alarm_id, None)

    def get(self, alarm_id: str) -> Alarm | None:
        return self._active.get(alarm_id)

    def active(self, type_: str = "") -> list[Alarm]:
        """Raised alarms, oldest first."""
        alarms = [a for a in self._active.values() if not type_ or a.type == type_]
        return sorted(alarms, key=lambda a: (a.raised_at, a.id))

    def counts_by_type(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for a in self._active.values():
            out[a.type] = out.get(a.type, 0) + 1
        return out
