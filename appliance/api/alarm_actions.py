"""Operator actions on alarms: acknowledge and clear (POST /api/v1/alarms/ack, /api/v1/alarms/clear).

- Acknowledge: the alarm stays raised and is marked with the time of the first ack (`acked_at` in GET
  /api/v1/alarms). An ack belongs to one raising of the alarm (its id and `raised_at`): refreshes keep it,
  but once the alarm is cleared and raised again it is unacknowledged, as a new problem should be.
- Clear: the alarm leaves the active table now and an info event says who cleared it (the Monitor's
  `clear`). savd raises it again when its producer sees the condition again (the next enforcer poll, BGP
  notification or recompute), so clearing a condition that persists only hides it until then.

Both are writes (bearer token, like every write) and publish an event, so the event stream and other
dashboards see them. Acks live in memory, like the alarm table itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, HTTPException, params, status

from appliance.api.ports import ApiPorts
from appliance.api.schemas import AlarmAcked, AlarmCleared, AlarmRef
from appliance.monitor.alarms import Alarm
from appliance.monitor.events import EventType, Operational

ACTION_SOURCE = "api"


class AlarmAcks:
    """Acknowledgements: alarm id -> (raised_at of the alarm acknowledged, time of the ack)."""

    def __init__(self) -> None:
        self._acked: dict[str, tuple[float, float]] = {}

    def ack(self, alarm: Alarm, at: float) -> float:
        """Acknowledge this raising of `alarm`; the time of its first ack."""
        held = self._acked.get(alarm.id)
        if held is None or held[0] != alarm.raised_at:
            held = self._acked[alarm.id] = (alarm.raised_at, at)
        return held[1]

    def acked_at(self, alarm: Alarm) -> float | None:
        held = self._acked.get(alarm.id)
        return held[1] if held is not None and held[0] == alarm.raised_at else None

    def forget(self, alarm_id: str) -> None:
        self._acked.pop(alarm_id, None)

    def prune(self, active: Sequence[Alarm]) -> None:
        """Drop the acks of alarms no longer raised (or raised anew), so the table stays small."""
        raised = {a.id: a.raised_at for a in active}
        self._acked = {k: v for k, v in self._acked.items() if raised.get(k) == v[0]}

    def served(self, alarm: Alarm) -> dict[str, Any]:
        """The alarm as GET /api/v1/alarms serves it: its record plus `acked_at`."""
        return {**alarm.to_dict(), "acked_at": self.acked_at(alarm)}


def alarm_routes(ports: ApiPorts, acks: AlarmAcks, write: Sequence[params.Depends],
                 responses: dict[int | str, dict[str, Any]]) -> APIRouter:
    """The two write routes; `write` and `responses` are the app's token dependencies and error bodies."""
    router = APIRouter(tags=["events"], dependencies=list(write))

    def raised(alarm_id: str) -> Alarm:
        alarm = ports.monitor.alarms.get(alarm_id)
        if alarm is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alarm {alarm_id} is raised")
        return alarm

    @router.post("/api/v1/alarms/ack", response_model=AlarmAcked, responses=responses)
    async def ack_alarm(body: AlarmRef) -> dict[str, Any]:
        """Acknowledge a raised alarm: it stays raised, with `acked_at`; 404 when it is not raised."""
        alarm = raised(body.id)
        first = acks.acked_at(alarm) is None
        acks.ack(alarm, ports.monitor.clock.now())
        if first:
            ports.monitor.emit(_action_event("acknowledged", alarm, body.note))
        acks.prune(ports.monitor.alarms.active())
        return {"alarm": acks.served(alarm)}

    @router.post("/api/v1/alarms/clear", response_model=AlarmCleared, responses=responses)
    async def clear_alarm(body: AlarmRef) -> dict[str, Any]:
        """Clear a raised alarm now; savd raises it again if its condition is seen again. 404 when it is
        not raised."""
        alarm = raised(body.id)
        served = acks.served(alarm)
        note = f" ({body.note})" if body.note else ""
        ports.monitor.clear(alarm.id, ACTION_SOURCE, f"alarm cleared by an operator{note}: {alarm.message}")
        acks.forget(alarm.id)
        return {"cleared": served}

    return router


def _action_event(what: str, alarm: Alarm, note: str) -> Operational:
    extra = [("alarm", alarm.id), ("alarm_type", alarm.type), ("action", what)]
    if note:
        extra.append(("note", note))
    suffix = f" ({note})" if note else ""
    text = f"alarm {what} by an operator{suffix}: {alarm.message}"
    return Operational(EventType.DAEMON, ACTION_SOURCE, text, extra=tuple(extra))
