"""Operators acknowledge and clear alarms through the API (POST /api/v1/alarms/ack, /clear): writes with the
token, 404 for an alarm not raised, an event for each, and an ack that belongs to one raising of the alarm."""

from __future__ import annotations

from fastapi.testclient import TestClient

from appliance.api import ApiPorts, create_app
from appliance.api.memory import PushedRules, RpkiStatusBoard, RulesHolder
from appliance.config import ApiConfig
from appliance.monitor import ManualClock, Monitor
from appliance.monitor.counters import CounterBoard
from appliance.monitor.events import BgpSession
from appliance.monitor.metrics import Metrics
from appliance.state import StateStore

TOKEN = "t0ken-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DOWN = BgpSession("exa1", "198.18.0.2", "r2", up=False, reason="refused")
ALARM_ID = "bgp-session/exa1/198.18.0.2"


def rig(token: str = TOKEN) -> tuple[TestClient, Monitor, ManualClock]:
    clock = ManualClock(100.0)
    store, monitor, counters = StateStore(), Monitor(clock), CounterBoard()
    ports = ApiPorts(store, RulesHolder(), RpkiStatusBoard(), PushedRules(store), monitor, counters,
                     Metrics(monitor, counters))
    return TestClient(create_app(ports, ApiConfig(token=token))), monitor, clock


def alarms(client: TestClient) -> list[dict[str, object]]:
    listed: list[dict[str, object]] = client.get("/api/v1/alarms").json()["alarms"]
    return listed


def test_ack_marks_the_alarm_and_keeps_it_raised_until_it_is_raised_anew() -> None:
    client, monitor, clock = rig()
    monitor.emit(DOWN)
    assert [a["acked_at"] for a in alarms(client)] == [None]
    clock.advance(5)
    acked = client.post("/api/v1/alarms/ack", json={"id": ALARM_ID, "note": "on it"}, headers=AUTH)
    assert acked.status_code == 200, acked.text
    assert acked.json()["alarm"]["id"] == ALARM_ID and acked.json()["alarm"]["acked_at"] == 105.0
    clock.advance(5)
    again = client.post("/api/v1/alarms/ack", json={"id": ALARM_ID}, headers=AUTH)
    assert again.json()["alarm"]["acked_at"] == 105.0  # the first ack's time stays
    monitor.emit(DOWN)  # refreshed while acknowledged: still acknowledged
    [alarm] = alarms(client)
    assert alarm["acked_at"] == 105.0 and alarm["count"] == 2
    events = client.get("/api/v1/events").json()["events"]
    acks = [e for e in events if e["fields"].get("action") == "acknowledged"]
    assert len(acks) == 1 and acks[0]["fields"]["alarm"] == ALARM_ID and "on it" in acks[0]["message"]
    monitor.emit(BgpSession("exa1", "198.18.0.2", "r2", up=True))  # cleared by its producer
    clock.advance(5)
    monitor.emit(DOWN)  # a new problem: not acknowledged
    assert [a["acked_at"] for a in alarms(client)] == [None]


def test_clear_removes_the_alarm_with_an_event_and_its_producer_may_raise_it_again() -> None:
    client, monitor, _ = rig()
    monitor.emit(DOWN)
    cleared = client.post("/api/v1/alarms/clear", json={"id": ALARM_ID}, headers=AUTH)
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["cleared"]["id"] == ALARM_ID
    assert alarms(client) == []
    last = client.get("/api/v1/events").json()["events"][-1]
    assert last["fields"]["cleared"] == "true" and "cleared by an operator" in last["message"]
    monitor.emit(DOWN)
    assert [a["id"] for a in alarms(client)] == [ALARM_ID]


def test_unknown_alarms_bad_bodies_and_missing_tokens_are_refused() -> None:
    client, monitor, _ = rig()
    monitor.emit(DOWN)
    for action in ("ack", "clear"):
        path = f"/api/v1/alarms/{action}"
        missing = client.post(path, json={"id": "bgp-session/none"}, headers=AUTH)
        assert missing.status_code == 404 and "no alarm" in missing.json()["message"]
        assert client.post(path, json={"id": ALARM_ID}).status_code == 401
        for body in ({}, {"id": ""}, {"id": 5}, {"id": ALARM_ID, "colour": "red"}):
            answer = client.post(path, json=body, headers=AUTH)
            assert answer.status_code == 422 and answer.json()["message"], body
    assert [a["id"] for a in alarms(client)] == [ALARM_ID]
    read_only, monitor, _ = rig(token="")
    monitor.emit(DOWN)
    assert read_only.post("/api/v1/alarms/clear", json={"id": ALARM_ID}).status_code == 403
    assert len(alarms(read_only)) == 1
