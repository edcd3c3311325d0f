"""Steering through the API, end to end in-process: inspectors and suspects written over HTTP land in the
journalled state (they survive a restart), the daemon's recompute (ConfigEngine) decides the steering,
GET /api/v1/rules shows it, and the FlowSpec compiler turns it into redirect-ip rules."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from appliance.api import ApiPorts, create_app
from appliance.api.memory import PushedRules, RpkiStatusBoard, RulesHolder
from appliance.config import ApiConfig, Config, parse_config
from appliance.flowspec import ActionKind, compile_ruleset, evaluate
from appliance.model import BgpPath, PrefixReport, Router, SteeringFallback, Suspect, Vrp
from appliance.monitor import ManualClock, Monitor
from appliance.monitor.counters import CounterBoard
from appliance.monitor.metrics import Metrics
from appliance.recompute import ConfigEngine
from appliance.sources.assemble import steering_events
from appliance.state import Announce, Journal, StateStore

TOKEN = "t0ken-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CONFIG = """\
[appliance]
asn = 65000
router_id = "198.18.0.1"
[[steering.inspector]]
name = "dpi-conf"
address = "198.18.0.60"
capacity = 10
"""


def config(tmp_path: Path) -> Config:
    return parse_config(CONFIG, tmp_path / "savd.toml")


def client(store: StateStore, cfg: Config, rules: RulesHolder | None = None) -> TestClient:
    monitor, counters = Monitor(ManualClock(1.0)), CounterBoard()
    ports = ApiPorts(store, rules or RulesHolder(), RpkiStatusBoard(), PushedRules(store), monitor, counters,
                     Metrics(monitor, counters), inspectors=lambda snap: cfg.steering.inspectors)
    return TestClient(create_app(ports, ApiConfig(token=TOKEN)))


def call(store: StateStore, cfg: Config, method: str, url: str, rules: RulesHolder | None = None,
         **kwargs: Any) -> httpx.Response:
    """One request on this thread (httpx over ASGI): a journalled store's SQLite stays on its thread."""
    async def run() -> httpx.Response:
        monitor, counters = Monitor(ManualClock(1.0)), CounterBoard()
        ports = ApiPorts(store, rules or RulesHolder(), RpkiStatusBoard(), PushedRules(store), monitor,
                         counters, Metrics(monitor, counters),
                         inspectors=lambda snap: cfg.steering.inspectors)
        transport = httpx.ASGITransport(app=create_app(ports, ApiConfig(token=TOKEN)))
        async with httpx.AsyncClient(transport=transport, base_url="http://savd") as c:
            return await c.request(method, url, headers=AUTH, **kwargs)

    return asyncio.run(run())


def seed(store: StateStore) -> None:
    store.apply(Announce("bgp-ls", (Router("r1"),)))
    store.apply(Announce("api", (PrefixReport("r1", "eth1", "198.18.1.0/24"),)))


async def _write(store: StateStore, cfg: Config) -> None:
    """The writes over HTTP on this thread (httpx over ASGI): the journal's SQLite stays on its thread."""
    monitor, counters = Monitor(ManualClock(1.0)), CounterBoard()
    ports = ApiPorts(store, RulesHolder(), RpkiStatusBoard(), PushedRules(store), monitor, counters,
                     Metrics(monitor, counters), inspectors=lambda snap: cfg.steering.inspectors)
    transport = httpx.ASGITransport(app=create_app(ports, ApiConfig(token=TOKEN)))
    async with httpx.AsyncClient(transport=transport, base_url="http://savd") as c:
        made = await c.post("/api/v1/inspectors", json={"name": "dpi-1", "address": "198.18.0.50",
                                                         "capacity": 100.0, "load": 10.0}, headers=AUTH)
        assert made.status_code == 201 and made.json()["created"]
        loaded = await c.post("/api/v1/inspectors/dpi-conf/load", json={"load": 5}, headers=AUTH)
        # dpi-conf is now 5/10 = 0.5
        assert loaded.status_code == 200 and loaded.json()["inspector"]["source"] == "api"
        flagged = await c.post("/api/v1/suspects", json={"prefix": "198.18.1.7/32", "reason": "ids"},
                               headers=AUTH)
        assert flagged.status_code == 201
        listed = (await c.get("/api/v1/inspectors")).json()["inspectors"]
        assert [(i["name"], i["ratio"], i["source"]) for i in listed] == [("dpi-1", 0.1, "api"),
                                                                           ("dpi-conf", 0.5, "api")]


def test_round_trip_persistence_recompute_and_rules(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    with Journal.open(tmp_path) as journal:
        store = StateStore.restore(journal)
        seed(store)
        asyncio.run(_write(store, cfg))
    with Journal.open(tmp_path) as journal:  # restart: the state comes back from the journal
        store = StateStore.restore(journal)
        snap = store.snapshot()
        assert [i.name for i in snap.inspectors] == ["dpi-1", "dpi-conf"]
        assert [s.prefix for s in snap.suspects] == ["198.18.1.7/32"]
        ruleset = ConfigEngine(cfg)(snap)
        assert [(s.router, s.prefix, s.inspector, s.address) for s in ruleset.steering] == [
            ("r1", "198.18.1.7/32", "dpi-1", "198.18.0.50")]
        rules = RulesHolder()
        rules.publish(snap.version, ruleset)
        shown = call(store, cfg, "GET", "/api/v1/rules", rules=rules).json()
        assert shown["steering"][0]["inspector"] == "dpi-1" and shown["steering"][0]["fallback"] is None
        r1 = compile_ruleset(ruleset).get("r1")
        assert r1 is not None and evaluate(r1, "eth1", "198.18.1.7").kind is ActionKind.REDIRECT_IP
        assert evaluate(r1, "eth1", "198.18.1.8").kind is ActionKind.ACCEPT

        # removing the inspector re-selects: the other one, then (configured one full) the fallback
        assert call(store, cfg, "DELETE", "/api/v1/inspectors/dpi-1").status_code == 200
        assert ConfigEngine(cfg)(store.snapshot()).steering[0].inspector == "dpi-conf"
        assert call(store, cfg, "POST", "/api/v1/inspectors/dpi-conf/load", json={"load": 10.0}).status_code \
            == 200
        snap = store.snapshot()
        assert ConfigEngine(cfg)(snap).steering[0].fallback is SteeringFallback.ACCEPT
        assert [e.type for e in steering_events(cfg, snap)] == ["steering.scale-out", "steering.no-inspector"]
        gone = call(store, cfg, "DELETE", "/api/v1/suspects", params={"prefix": "198.18.1.7/32"})
        assert gone.status_code == 200 and ConfigEngine(cfg)(store.snapshot()).steering == ()


def test_malformed_bodies_name_the_field_and_writes_need_the_token(tmp_path: Path) -> None:
    c = client(StateStore(), config(tmp_path))
    bad = [({"name": "x", "address": "nope", "capacity": 1.0}, "address"),
           ({"name": "x", "address": "198.18.0.5", "capacity": 0}, "capacity"),
           ({"name": "x", "address": "198.18.0.5", "capacity": 1.0, "load": -1}, "load"),
           ({"name": "x", "address": "198.18.0.5", "capacity": 1.0, "colour": "red"}, "colour")]
    for body, field in bad:
        answer = c.post("/api/v1/inspectors", json=body, headers=AUTH)
        assert answer.status_code == 422 and field in answer.text, answer.text
    answer = c.post("/api/v1/suspects", json={"prefix": "198.18.1.7/24"}, headers=AUTH)
    assert answer.status_code == 422 and "prefix" in answer.text
    assert c.post("/api/v1/inspectors/nobody/load", json={"load": 1.0}, headers=AUTH).status_code == 404
    assert c.post("/api/v1/inspectors/x/load", json={"load": "high"}, headers=AUTH).status_code == 422
    assert c.delete("/api/v1/inspectors/dpi-conf", headers=AUTH).status_code == 409
    assert c.delete("/api/v1/suspects", params={"prefix": "bad"}, headers=AUTH).status_code == 422
    assert c.post("/api/v1/suspects", json={"prefix": "198.18.1.0/24"}).status_code == 401


def test_rpki_invalid_origins_are_suspects_when_configured(tmp_path: Path) -> None:
    """[steering] rpki_invalid: a prefix some path originates RPKI-invalid is steered (naming the
    origin), a valid one is not; off (the default), nothing is steered without a flagged suspect."""
    on = parse_config(CONFIG.replace("[[steering.inspector]]", "[steering]\nrpki_invalid = true\n"
                                     "[[steering.inspector]]"), tmp_path / "savd.toml")
    store = StateStore()
    seed(store)
    store.apply(Announce("bmp", (BgpPath("r1", "eth2", "198.18.9.0/24", (65101, 65666)),
                                 BgpPath("r1", "eth2", "198.18.10.0/24", (65101,)))))
    store.apply(Announce("rpki", (Vrp("198.18.9.0/24", 24, 65101), Vrp("198.18.10.0/24", 24, 65101))))
    steering = ConfigEngine(on)(store.snapshot()).steering
    assert [(s.prefix, s.reason, s.inspector) for s in steering] == [
        ("198.18.9.0/24", "rpki-invalid origin AS65666", "dpi-conf")]
    assert ConfigEngine(config(tmp_path))(store.snapshot()).steering == ()


def test_sav_unknown_origins_are_suspects_when_configured_and_only_with_rpki_data(tmp_path: Path) -> None:
    """[steering] sav_unknown: a prefix whose origin no ROA covers (RFC 6811 NotFound) is steered, a
    covered one (valid or invalid) is not; without any VRP nothing is drawn (no evidence: fail open);
    a flagged suspect of the same prefix keeps its own reason."""
    on = parse_config(CONFIG.replace("[[steering.inspector]]", "[steering]\nsav_unknown = true\n"
                                     "[[steering.inspector]]"), tmp_path / "savd.toml")
    store = StateStore()
    seed(store)
    store.apply(Announce("bmp", (BgpPath("r1", "eth2", "198.18.9.0/24", (65101, 65666)),
                                 BgpPath("r1", "eth2", "198.18.10.0/24", (65101,)),
                                 BgpPath("r1", "eth2", "198.18.11.0/24", (65101, 65102)))))
    assert ConfigEngine(on)(store.snapshot()).steering == ()                 # no VRPs yet
    store.apply(Announce("rpki", (Vrp("198.18.9.0/24", 24, 65101), Vrp("198.18.10.0/24", 24, 65101))))
    steering = ConfigEngine(on)(store.snapshot()).steering
    assert [(s.prefix, s.reason, s.inspector) for s in steering] == [
        ("198.18.11.0/24", "sav-unknown: no ROA covers origin AS65102", "dpi-conf")]
    store.apply(Announce("api", (Suspect("198.18.11.0/24", "dpi says so"),)))
    assert [(s.prefix, s.reason) for s in ConfigEngine(on)(store.snapshot()).steering] == [
        ("198.18.11.0/24", "dpi says so")]
    both = parse_config(CONFIG.replace("[[steering.inspector]]", "[steering]\nsav_unknown = true\n"
                                       "rpki_invalid = true\n[[steering.inspector]]"), tmp_path / "savd.toml")
    assert [s.prefix for s in ConfigEngine(both)(store.snapshot()).steering] == [
        "198.18.9.0/24", "198.18.11.0/24"]
