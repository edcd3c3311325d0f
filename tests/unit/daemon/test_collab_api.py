"""POST /api/v1/collaboration/{peer}/end: the operator revokes an agreement (END_AGREEMENT from our side);
409 where no collaboration runs, 404 for a peer without an agreement in force, writes need the token."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

from fastapi.testclient import TestClient

from appliance.api import ApiPorts, create_app
from appliance.api.memory import PushedRules, RpkiStatusBoard, RulesHolder
from appliance.collab.model import Agreement
from appliance.config import ApiConfig
from appliance.monitor import ManualClock, Monitor
from appliance.monitor.counters import CounterBoard
from appliance.monitor.metrics import Metrics
from appliance.state import StateStore

TOKEN = "t0ken-for-collab-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LIVE = Agreement("as2-1", "as2", "as1", "resilient", "sav-prefixes", 1e12)


def app(end: Callable[[str], Awaitable[Agreement | None]] | None) -> TestClient:
    store, monitor, counters = StateStore(), Monitor(ManualClock(1.0)), CounterBoard()
    ports = ApiPorts(store, RulesHolder(), RpkiStatusBoard(), PushedRules(store), monitor, counters,
                     Metrics(monitor, counters), end_agreement=end, now=lambda: 100.0)
    return TestClient(create_app(ports, ApiConfig(token=TOKEN)))


def test_revoking_an_agreement() -> None:
    asked: list[str] = []

    async def end(peer: str) -> Agreement | None:
        asked.append(peer)
        return dataclasses.replace(LIVE, ended=True) if peer == "as2" else None

    client = app(end)
    done = client.post("/api/v1/collaboration/as2/end", headers=AUTH)
    assert done.status_code == 200, done.text
    assert done.json()["ended"]["ca_id"] == "as2-1" and done.json()["ended"]["state"] == "ended"
    missing = client.post("/api/v1/collaboration/as9/end", headers=AUTH)
    assert missing.status_code == 404 and "no agreement in force with as9" in missing.json()["message"]
    assert client.post("/api/v1/collaboration/as2/end").status_code == 401
    assert asked == ["as2", "as9"]


def test_without_collaboration_it_is_a_clear_conflict() -> None:
    answer = app(None).post("/api/v1/collaboration/as2/end", headers=AUTH)
    assert answer.status_code == 409 and "[collaboration] has no listen" in answer.json()["message"]
