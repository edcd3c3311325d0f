"""HTTP API over real in-memory parts (state store, monitor, holders): auth, 4xx on bad input, JSON."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.api import ApiPorts, create_app
from appliance.api.memory import PushedRules, RpkiStatusBoard, RulesHolder
from appliance.config import ApiConfig
from appliance.flowspec.rules import ActionKind, FlowAction, FlowMatch, FlowRule
from appliance.model import (
    Action,
    BgpPath,
    Interface,
    InterfaceRules,
    ListKind,
    Mode,
    PrefixReport,
    Role,
    Router,
    SavRuleSet,
    Steered,
    Vrp,
)
from appliance.monitor import ManualClock, Monitor
from appliance.monitor.counters import CounterBoard, CounterSample
from appliance.monitor.events import BgpSession
from appliance.monitor.metrics import Metrics
from appliance.state import Announce, StateStore
from appliance.state.pushed import encode_rule
from rpki.rtr.session import CacheState, CacheStatus

TOKEN = "t0ken-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

RULES = SavRuleSet.of([
    InterfaceRules("r1", "eth1", ListKind.ALLOW, ("198.18.1.0/24", "198.18.1.128/25"), Action(Mode.DROP),
                   algorithm="intra", provenance={"198.18.1.128/25": ("report:lan@r1:eth1",)}),
    InterfaceRules("r1", "ge-0/0/1", ListKind.BLOCK, ("198.18.64.0/20",), Action(Mode.MONITOR),
                   provenance={"198.18.64.0/20": ("roa:198.18.64.0/20-24 AS65020",)}),
])


#: an RTR cache's status as rpki.rtr.session.CacheSession.status gives it (the API types every field)
CACHE = CacheStatus("stayrtr", 1, CacheState.IN_SYNC, 2, 4711, 9, 1700000000.5, 2, 0, 3600.0, 600.0,
                    7200.0, "", active=True)


@dataclass
class Rig:
    client: TestClient
    store: StateStore
    ports: ApiPorts
    rules: RulesHolder


def make_rig(token: str = TOKEN, read_required: bool = False) -> Rig:
    store = StateStore()
    monitor = Monitor(ManualClock(100.0))
    counters = CounterBoard()
    rules = RulesHolder()
    board = RpkiStatusBoard()
    board.add_caches(lambda: [CACHE])
    board.set_counts(lambda: {"vrp": 2, "aspa": 0})
    ports = ApiPorts(store, rules, board, PushedRules(store), monitor, counters, Metrics(monitor, counters))
    app = create_app(ports, ApiConfig(token=token, read_token_required=read_required))
    return Rig(TestClient(app), store, ports, rules)


@pytest.fixture
def rig() -> Rig:
    return make_rig()


REPORT = {"router": "r1", "interface": "eth1", "prefix": "198.18.1.0/24", "subnet": "lan-a"}


def test_writes_need_the_bearer_token(rig: Rig) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        r = rig.client.post("/api/v1/reports", json=REPORT, headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert "bearer token" in r.json()["message"]
    assert rig.store.version == 0
    assert rig.client.get("/api/v1/reports").status_code == 200  # reads open by default


def test_without_a_configured_token_writes_are_refused() -> None:
    rig = make_rig(token="")
    r = rig.client.post("/api/v1/reports", json=REPORT, headers={"Authorization": "Bearer "})
    assert r.status_code == 403 and r.json()["message"] == "writes are disabled: no API token is configured"


def test_reads_can_require_the_token() -> None:
    rig = make_rig(read_required=True)
    assert rig.client.get("/api/v1/rules").status_code == 401
    assert rig.client.get("/metrics").status_code == 401
    assert rig.client.get("/api/v1/rules", headers=AUTH).status_code == 200


def test_report_create_list_delete(rig: Rig) -> None:
    r = rig.client.post("/api/v1/reports", json={**REPORT, "prefix": "198.18.1.0/24 ", "multihomed": True},
                        headers=AUTH)
    assert r.status_code == 201
    assert r.json() == {"created": True, "replaced": [], "version": 1, "report": {
        "router": "r1", "interface": "eth1", "prefix": "198.18.1.0/24", "subnet": "lan-a",
        "flags": {"anycast": False, "special": False, "multihomed": True}, "source": "api"}}
    again = rig.client.post("/api/v1/reports", json={**REPORT, "multihomed": True}, headers=AUTH)
    assert again.status_code == 200 and again.json()["created"] is False
    listed = rig.client.get("/api/v1/reports", params={"router": "r1"}).json()
    assert [(x["prefix"], x["sources"]) for x in listed["reports"]] == [("198.18.1.0/24", ["api"])]
    assert rig.client.get("/api/v1/reports", params={"router": "r2"}).json()["reports"] == []
    key = {k: REPORT[k] for k in ("router", "interface", "prefix")}
    gone = rig.client.delete("/api/v1/reports", params=key, headers=AUTH)
    assert gone.status_code == 200 and gone.json()["version"] == 2
    assert rig.store.snapshot().reports == ()
    events = rig.client.get("/api/v1/events", params={"type": "report-changed"}).json()["events"]
    changes = [e["fields"]["change"] for e in events]
    assert changes == ["added", "deleted"]


@pytest.mark.parametrize("body, where", [
    ({**REPORT, "prefix": "198.18.1.1/24"}, "body.prefix"),          # host bits set
    ({**REPORT, "prefix": "not-a-prefix"}, "body.prefix"),
    ({k: v for k, v in REPORT.items() if k != "router"}, "body.router"),
    ({**REPORT, "colour": "red"}, "body.colour"),
    ({**REPORT, "router": "r1; drop table"}, "body.router"),
    ({**REPORT, "anycast": "perhaps"}, "body.anycast"),
    ([REPORT], "body"),
])
def test_malformed_reports_are_422_with_a_message_and_change_nothing(rig: Rig, body: Any, where: str) -> None:
    rig.store.apply(Announce("bgp-ls:exa1/198.18.0.2", (PrefixReport("r2", "eth1", "198.18.2.0/24"),)))
    before = rig.store.snapshot()
    r = rig.client.post("/api/v1/reports", json=body, headers=AUTH)
    assert r.status_code == 422 and r.json()["message"].startswith(where)
    assert rig.store.snapshot() == before and rig.store.version == before.version


def test_body_that_is_not_json_is_422(rig: Rig) -> None:
    headers = {**AUTH, "Content-Type": "application/json"}
    r = rig.client.post("/api/v1/reports", content=b"{router: r1", headers=headers)
    assert r.status_code == 422 and "JSON" in r.json()["message"] and rig.store.version == 0


def test_delete_errors(rig: Rig) -> None:
    rig.store.apply(Announce("bgp-ls:exa1/198.18.0.2", (PrefixReport("r2", "eth1", "198.18.2.0/24"),)))
    params = {"router": "r2", "interface": "eth1", "prefix": "198.18.2.0/24"}
    conflict = rig.client.delete("/api/v1/reports", params=params, headers=AUTH)
    assert conflict.status_code == 409 and "bgp-ls:exa1/198.18.0.2" in conflict.json()["message"]
    missing = rig.client.delete("/api/v1/reports", params={**params, "prefix": "198.18.3.0/24"}, headers=AUTH)
    assert missing.status_code == 404
    bad = rig.client.delete("/api/v1/reports", params={**params, "prefix": "198.18.2.1/24"}, headers=AUTH)
    assert bad.status_code == 422 and bad.json()["message"].startswith("prefix:")
    assert rig.client.delete("/api/v1/reports", params={"router": "r2"}, headers=AUTH).status_code == 422
    assert rig.store.version == 1


def test_topology(rig: Rig) -> None:
    rig.store.apply(Announce("bgp-ls:x", (Router("r1", "198.18.0.1", 65000), Interface("r1", "eth1"))))
    body = rig.client.get("/api/v1/topology").json()
    assert body["version"] == 1 and [r["name"] for r in body["routers"]] == ["r1"]
    assert body["routers"][0]["role"] == "core" and body["interfaces"][0]["name"] == "eth1"


def test_rules_and_explain(rig: Rig) -> None:
    assert rig.client.get("/api/v1/rules").json() == {"version": None, "rules": [], "steering": [],
                                                      "collaboration": []}
    rig.rules.publish(7, RULES)
    body = rig.client.get("/api/v1/rules", params={"router": "r1"}).json()
    assert body["version"] == 7 and [r["interface"] for r in body["rules"]] == ["eth1", "ge-0/0/1"]
    one = rig.client.get("/api/v1/rules/r1/ge-0/0/1").json()["rule"]
    assert one["kind"] == "block" and one["prefixes"] == ["198.18.64.0/20"]
    assert rig.client.get("/api/v1/rules/r9/eth1").status_code == 404

    def why(interface: str, source: str) -> dict[str, Any]:
        params = {"router": "r1", "interface": interface, "source": source}
        r = rig.client.get("/api/v1/explain", params=params)
        assert r.status_code == 200
        return dict(r.json())

    inside = why("eth1", "198.18.1.200")
    assert (inside["verdict"], inside["matched_prefix"], inside["provenance"]) == (
        "pass", "198.18.1.128/25", ["report:lan@r1:eth1"])
    assert why("eth1", "198.18.9.9")["verdict"] == "drop"
    assert why("eth1", "198.18.0.0/16")["verdict"] == "drop"  # wider than any listed prefix
    blocked = why("ge-0/0/1", "198.18.64.1")
    assert (blocked["verdict"], blocked["provenance"]) == ("monitor", ["roa:198.18.64.0/20-24 AS65020"])
    assert why("ge-0/0/1", "198.18.1.1")["verdict"] == "pass"
    assert why("eth7", "198.18.1.1")["reason"] == "no SAV rule on this interface (fail open)"
    bad = rig.client.get("/api/v1/explain", params={"router": "r1", "interface": "eth1", "source": "x"})
    assert bad.status_code == 422 and bad.json()["message"] == "not an IP address or prefix: 'x'"
    spoofed = rig.client.get("/api/v1/trace", params={"source": "198.18.64.9"}).json()
    assert spoofed["source"] == "198.18.64.9/32"
    assert spoofed["stopped_on"] == ["r1:eth1", "r1:ge-0/0/1"]  # not in eth1's allowlist; ge-0/0/1 blocks it
    legit = rig.client.get("/api/v1/trace", params={"source": "198.18.1.9", "router": "r1"}).json()
    assert legit["stopped_on"] == [] and len(legit["verdicts"]) == 2
    assert rig.client.get("/api/v1/trace", params={"source": "nope"}).status_code == 422
    assert (spoofed["trust"], spoofed["steered"]) == ("trusted", [])


def test_trace_gives_the_trust_level_of_a_steered_source(rig: Rig) -> None:
    """seeds/001: a source a suspect prefix covers is "suspicious" and names where it is steered."""
    steered = Steered("r1", "198.18.1.0/28", "ids: scan", "dpi-1", "198.18.0.50")
    rig.rules.publish(8, dataclasses.replace(RULES, steering=(steered,)))
    inside = rig.client.get("/api/v1/trace", params={"source": "198.18.1.9"}).json()
    assert inside["trust"] == "suspicious"
    assert [(s["router"], s["inspector"], s["address"]) for s in inside["steered"]] == [
        ("r1", "dpi-1", "198.18.0.50")]
    outside = rig.client.get("/api/v1/trace", params={"source": "198.18.1.99"}).json()
    assert (outside["trust"], outside["steered"]) == ("trusted", [])
    elsewhere = rig.client.get("/api/v1/trace", params={"source": "198.18.1.9", "router": "r2"}).json()
    assert elsewhere["trust"] == "trusted"  # steered on r1 only


def test_rpki_flowspec_and_counters(rig: Rig) -> None:
    rig.store.apply(Announce("rtr:stayrtr", (Vrp("198.18.0.0/16", 24, 65010),)))
    rpki = rig.client.get("/api/v1/rpki").json()
    assert rpki == {"caches": [CACHE.to_dict()], "files": [],
                    "counts": {"vrp": 2, "aspa": 0}, "state": {"vrps": 1, "aspas": 0}}
    rig.store.record_push("198.18.0.2", {"src=198.18.9.0/24": "flow route { ... } discard"}, ())
    assert rig.client.get("/api/v1/flowspec").json() == {"peers": {"198.18.0.2": 1}}
    held = rig.client.get("/api/v1/flowspec/198.18.0.2").json()
    assert held["rules"] == [{"key": "src=198.18.9.0/24", "rule": "flow route { ... } discard"}]
    assert rig.client.get("/api/v1/flowspec/198.18.0.9").status_code == 404
    rule = FlowRule("r2", FlowMatch("198.18.2.0/24"), FlowAction(ActionKind.DISCARD), (1,))
    rig.store.record_push("198.18.0.3", {"source 198.18.2.0/24": encode_rule(rule)}, ())
    (as_json,) = rig.client.get("/api/v1/flowspec/198.18.0.3").json()["rules"]
    discard = {"kind": "discard", "rate_bps": 0, "redirect": "", "redirect_ip": ""}
    assert as_json["rule"] == {"action": discard, "groups": [1],
                               "match": {"packet_length_min": None, "source": "198.18.2.0/24"},
                               "router": "r2"}
    rig.store.record_push("198.18.0.4", {"source 198.18.3.0/24": '{"router": "r2", "groups": [1]}'}, ())
    (odd,) = rig.client.get("/api/v1/flowspec/198.18.0.4").json()["rules"]
    assert odd["rule"] == '{"router": "r2", "groups": [1]}'  # not a FlowRule record: served as its text
    sample = CounterSample("r1", "eth1", "198.18.9.0/24", "drop", 5, 500)
    rig.ports.counters.update([sample], now=0)
    rig.ports.counters.update([CounterSample("r1", "eth1", "198.18.9.0/24", "drop", 9, 900)], now=1)
    (c,) = rig.client.get("/api/v1/counters", params={"router": "r1"}).json()["counters"]
    assert (c["packets"], c["total_packets"], c["spoofed"]) == (9, 9, True)
    assert rig.client.get("/api/v1/counters", params={"router": "r2"}).json()["counters"] == []


def test_events_alarms_metrics_and_openapi(rig: Rig) -> None:
    rig.ports.monitor.emit(BgpSession("exa1", "198.18.0.2", "r1", up=False, reason="refused"))
    rig.ports.monitor.emit(BgpSession("exa1", "198.18.0.3", "r2", up=True))
    events = rig.client.get("/api/v1/events", params={"since": 1}).json()
    assert events["last_seq"] == 2 and [e["seq"] for e in events["events"]] == [2]
    assert rig.client.get("/api/v1/events", params={"severity": "error"}).json()["events"][0]["seq"] == 1
    assert rig.client.get("/api/v1/events", params={"limit": 0}).status_code == 422
    assert rig.client.get("/api/v1/events", params={"severity": "loud"}).status_code == 422
    (alarm,) = rig.client.get("/api/v1/alarms").json()["alarms"]
    assert alarm["id"] == "bgp-session/exa1/198.18.0.2" and alarm["severity"] == "error"
    metrics = rig.client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert ('savd_alarms_active{category="system-alarm",severity="error",type="bgp.session-down"} 1.0'
            in metrics.text)
    health = rig.client.get("/health").json()
    assert health == {"status": "ok", "state_version": 0, "rules_version": None, "alarms": 1}
    paths = rig.client.get("/openapi.json").json()["paths"]
    assert {"/api/v1/reports", "/api/v1/explain", "/api/v1/rules/{router}/{interface}", "/api/v1/events",
            "/api/v1/alarms", "/api/v1/rpki", "/api/v1/flowspec/{peer}", "/api/v1/counters",
            "/api/v1/topology", "/metrics"} <= set(paths)
    assert set(paths["/api/v1/reports"]) == {"get", "post", "delete"}


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20)
    | st.sampled_from(["198.18.1.0/24", "198.18.1.1/24", "2001:db8::/32", "r1", "eth1", ""]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5,
)
KEYS = st.sampled_from([*REPORT, "anycast", "multihomed", "extra"])
BODIES = st.dictionaries(KEYS, JSON_VALUES, max_size=6)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODIES | JSON_VALUES)
def test_any_body_is_accepted_or_a_4xx_that_changes_nothing(rig: Rig, body: Any) -> None:
    before = rig.store.snapshot()
    r = rig.client.post("/api/v1/reports", json=body, headers=AUTH)
    assert r.status_code in (200, 201, 422), r.text
    if r.status_code == 422:
        assert r.json()["message"] and rig.store.snapshot() == before
    else:
        report = r.json()["report"]
        assert report["prefix"] in {"198.18.1.0/24", "2001:db8::/32"}
        listed = rig.client.get("/api/v1/reports").json()["reports"]
        assert any(x["prefix"] == report["prefix"] for x in listed)


def test_rule_provenance_names_the_bmp_feed_of_each_path(rig: Rig) -> None:
    path = BgpPath("b1", "eth2", "198.18.50.0/24", (65010, 65011))
    rig.store.apply(Announce("bmp:b1/198.18.40.2", (path,)))
    rule = InterfaceRules("b1", "eth2", ListKind.ALLOW, ("198.18.50.0/24", "198.18.51.0/24"),
                          algorithm="auto:bar-sav", provenance={
                              "198.18.50.0/24": ("algorithm:auto:bar-sav", "path:eth2:65010>65011"),
                              "198.18.51.0/24": ("algorithm:auto:bar-sav", "roa:198.18.51.0/24-24 AS65011")})
    rig.rules.publish(3, SavRuleSet((rule,)))
    prov = rig.client.get("/api/v1/rules").json()["rules"][0]["provenance"]
    assert prov["198.18.50.0/24"] == ["algorithm:auto:bar-sav",
                                      "path:eth2:65010>65011 via bmp:b1/198.18.40.2"]
    assert prov["198.18.51.0/24"] == ["algorithm:auto:bar-sav", "roa:198.18.51.0/24-24 AS65011"]
    one = rig.client.get("/api/v1/rules/b1/eth2").json()["rule"]["provenance"]
    assert one["198.18.50.0/24"][1].endswith("via bmp:b1/198.18.40.2")


def test_topology_shows_learned_routers_with_resolved_roles_and_configured_neighbours(tmp_path: Any) -> None:
    import dataclasses as dc

    from appliance.config import parse_config
    from appliance.model import RouterRole
    from appliance.sources.assemble import engine_input

    text = ('[appliance]\nasn = 65000\nrouter_id = "198.18.0.1"\n[[engine.router]]\nname = "r9"\n'
            'role = "access"\n[[engine.neighbor]]\nrouter = "r4"\ninterface = "eth2"\nasn = 65100\n'
            'relationship = "provider"\n')
    config = parse_config(text, tmp_path / "s.toml")
    rig = make_rig()
    ports = dc.replace(rig.ports, inputs=lambda snap: engine_input(config, snap))
    client = TestClient(create_app(ports, ApiConfig(token=TOKEN)))
    rig.store.apply(Announce("bgp-ls:x", (Router("r4", "198.18.0.4", 65000),
                                          RouterRole("r4", Role.BORDER, None, "bgp-ls"))))
    body = client.get("/api/v1/topology").json()
    assert [(r["name"], r["role"]) for r in body["routers"]] == [("r4", "border")]  # r9: configured only
    assert [(n["router"], n["relationship"]) for n in body["neighbors"]] == [("r4", "provider")]


# --- issue 12: POST replaces; one name pattern; one prefix parser; strict booleans ----------------------


def test_a_second_post_of_the_same_key_replaces_the_report(rig: Rig) -> None:
    first = rig.client.post("/api/v1/reports", json=REPORT, headers=AUTH)
    assert first.status_code == 201 and first.json()["created"] is True
    second = rig.client.post("/api/v1/reports", json={**REPORT, "subnet": "lan-b", "anycast": True},
                             headers=AUTH)
    assert second.status_code == 200 and second.json()["created"] is False
    assert [r["subnet"] for r in second.json()["replaced"]] == ["lan-a"]
    held = rig.store.snapshot().reports
    assert [(r.prefix, r.subnet, r.flags.anycast) for r in held] == [("198.18.1.0/24", "lan-b", True)]
    same = rig.client.post("/api/v1/reports", json={**REPORT, "subnet": "lan-b", "anycast": True},
                           headers=AUTH)
    assert same.status_code == 200 and same.json()["replaced"] == []
    assert rig.store.version == second.json()["version"]  # held already: nothing applied
    events = rig.client.get("/api/v1/events", params={"type": "report-changed"}).json()["events"]
    assert [e["fields"]["change"] for e in events] == ["added", "replaced"]


def test_post_replaces_only_the_apis_own_report(rig: Rig) -> None:
    rig.store.apply(Announce("file:reports.yaml", (PrefixReport("r1", "eth1", "198.18.1.0/24", "lan-a",
                                                                source="file"),)))
    r = rig.client.post("/api/v1/reports", json={**REPORT, "subnet": "lan-z"}, headers=AUTH)
    assert r.status_code == 201 and r.json()["replaced"] == []
    snap = rig.store.snapshot()
    assert sorted((r.subnet, tuple(sorted(snap.sources_of(r)))) for r in snap.reports) == [
        ("lan-a", ("file:reports.yaml",)), ("lan-z", ("api",))]


@pytest.mark.parametrize("field, value", [
    ("prefix", "fe80::%eth0/64"),
    ("prefix", "198.18.1.0/255.255.255.0"),
    ("prefix", "198.18.1.0/0.0.0.255"),
    ("prefix", "::ffff:198.18.1.0/120"),
    ("prefix", "198.18.1.0"),
    ("router", "../../../X"),
    ("router", ".."),
    ("router", 5),
    ("interface", "../eth1"),
    ("interface", "eth1/../../x"),
    ("interface", "a-very-long-interface-name"),
    ("subnet", 1),
    ("anycast", "yes"),
    ("multihomed", 1),
    ("special", "true"),
])
def test_non_canonical_prefixes_bad_names_and_coerced_types_are_422(rig: Rig, field: str, value: Any) -> None:
    before = rig.store.snapshot()
    r = rig.client.post("/api/v1/reports", json={**REPORT, field: value}, headers=AUTH)
    assert r.status_code == 422 and r.json()["message"].startswith(f"body.{field}"), r.text
    assert rig.store.snapshot() == before


def test_delete_with_a_bad_name_is_422(rig: Rig) -> None:
    r = rig.client.delete("/api/v1/reports", params={**{k: REPORT[k] for k in ("interface", "prefix")},
                                                     "router": "../../X"}, headers=AUTH)
    assert r.status_code == 422 and r.json()["message"].startswith("router:")


def test_a_rule_on_stale_inputs_is_flagged_stale_until_its_alarm_clears(rig: Rig) -> None:
    """Issue 15 item 5: a stale.rule alarm (RPKI data past stale_after_s) shows on the rule it names."""
    from appliance.monitor.events import RuleStale

    rig.rules.publish(7, RULES)
    assert [r["stale"] for r in rig.client.get("/api/v1/rules").json()["rules"]] == [False, False]
    rig.ports.monitor.emit(RuleStale("r1", "ge-0/0/1", "rpki-stale/rtr:stayrtr"))
    got = {r["interface"]: r["stale"] for r in rig.client.get("/api/v1/rules").json()["rules"]}
    assert got == {"eth1": False, "ge-0/0/1": True}
    assert rig.client.get("/api/v1/rules/r1/ge-0/0/1").json()["rule"]["stale"] is True
    rig.ports.monitor.emit(RuleStale("r1", "ge-0/0/1", "rpki-stale/rtr:stayrtr", stale=False))
    assert rig.client.get("/api/v1/rules/r1/ge-0/0/1").json()["rule"]["stale"] is False
