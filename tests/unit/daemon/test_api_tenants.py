"""Tenant tokens see their scope only (issue 15 item 4, seeds/000 3.3): every route has a declared tenant
policy, and on an app filled like test_api_schemas.py's (plus a second tenant's router, interfaces,
prefixes, counters, events and pushed rules) no answer to a tenant names anything outside its scope.

The leak check is by string: every out-of-scope router, interface, prefix, address, ASN and the names of
savd's own feeds (speaker, files, RTR cache, journal path) are searched for in every body a tenant gets.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from appliance.api import ApiPorts, create_app
from appliance.api.memory import PushedRules, RulesHolder
from appliance.api.tenants import POLICIES, TenantGate, route_keys, template
from appliance.config import ApiConfig, ConfigError, TenantConfig, parse_config
from appliance.flowspec.diff import FlowDiff
from appliance.flowspec.rules import ActionKind, FlowAction, FlowMatch, FlowRule
from appliance.model import (
    Action,
    Interface,
    InterfaceRules,
    Link,
    ListKind,
    Mode,
    PrefixReport,
    Router,
    SavRuleSet,
)
from appliance.monitor import ManualClock, Monitor
from appliance.monitor.counters import CounterBoard, CounterSample
from appliance.monitor.events import (
    BgpSession,
    EventType,
    JournalWrite,
    Operational,
    PrefixConflict,
    RuleInstalled,
    SpoofingSeen,
)
from appliance.monitor.metrics import Metrics
from appliance.monitor.traces import TraceBoard
from appliance.state import Announce, StateStore
from appliance.state.pushed import record_diff
from tests.unit.daemon.test_api_schemas import FACTS, PUSHED, RULES, SOURCE, TOKEN, _rpki_board, mismatches

BLUE_TOKEN = "blue-tenant-token-0001"
RED_TOKEN = "red-tenant-token-000002"
#: blue: one interface of r1 and three prefixes; red: all of r1, one prefix
BLUE = TenantConfig("blue", BLUE_TOKEN, ("198.18.1.0/24", "198.18.7.0/24", "198.18.9.0/24"),
                    interfaces=(("r1", "eth1"),))
RED = TenantConfig("red", RED_TOKEN, ("198.18.1.0/24",), routers=("r1",))
SETTINGS = ApiConfig(token=TOKEN, read_token_required=True, tenants=(BLUE, RED))

#: another tenant's router r7 and r1's interface eth3 (shared router, not blue's interface)
EXTRA_FACTS = (
    Router("r7", "198.18.0.7", 65000),
    Interface("r7", "eth1", ("198.18.33.1/24",)),
    Interface("r1", "eth3", ("198.18.34.1/24",)),
    Link("r1", "r7", "198.18.254.1", "198.18.254.2", 10),
    Link("r7", "r1", "198.18.254.2", "198.18.254.1", 10),
    PrefixReport("r7", "eth1", "198.18.33.0/24", "lan-r7", source="bgp-ls"),
)
FILE_REPORTS = (PrefixReport("r1", "eth3", "198.18.34.0/24", "lan-z", source="file"),
                PrefixReport("r1", "eth1", "198.18.1.0/24", "lan-a", source="file"))
#: r1 eth1's allowlist also lists another tenant's prefix and a wide aggregate (not blue's to see)
MORE_RULES = (
    InterfaceRules("r1", "eth1", ListKind.ALLOW,
                   ("198.18.0.0/17", "198.18.1.0/24", "198.18.9.0/24", "198.18.34.0/24"), Action(Mode.DROP),
                   algorithm="intra", provenance={
                       "198.18.0.0/17": ("igp:198.18.0.0/17@b1",),
                       "198.18.1.0/24": ("report:lan-a@r1:eth1 via file:reports.yaml",),
                       "198.18.9.0/24": ("report:-@r1:eth1", "report:lan-z@r1:eth3 via file:reports.yaml",
                                         "igp:198.18.9.0/24@r7", "carved:198.18.9.128/25 shared"),
                       "198.18.34.0/24": ("report:lan-z@r1:eth3 via file:reports.yaml",)}),
    InterfaceRules("r7", "eth1", ListKind.ALLOW, ("198.18.33.0/24",), Action(Mode.DROP), algorithm="intra",
                   provenance={"198.18.33.0/24": ("report:lan-r7@r7:eth1",)}),
)
MORE_PUSHED = (FlowRule("r1", FlowMatch("198.18.34.0/24"), FlowAction(ActionKind.ACCEPT), (1,)),)
R7_PUSHED = (FlowRule("r7", FlowMatch("198.18.33.0/24"), FlowAction(ActionKind.ACCEPT), (1,)),)

#: strings no answer to the tenant may hold (regexes; names bounded so "r7" does not match inside "r70")
COMMON_SECRETS = (
    r"\bb1\b", r"\br7\b", r"\beth2\b", r"198\.18\.50\.", r"198\.18\.60\.", r"198\.18\.200\.",
    r"198\.18\.33\.", r"198\.18\.0\.0/17", r"198\.18\.2\.0", r"203\.0\.113\.", r"198\.18\.0\.9\b",
    r"198\.18\.0\.7\b", r"198\.18\.255\.", r"198\.18\.254\.", r"650(10|11|12|13|20)", r"exa1",
    r"reports\.yaml",
    r"stayrtr", r"rpki\.json", r"missing\.csv", r"/secret/", r"lan-z", r"lan-r7", r"bgp-session/",
)
SECRETS = {
    "blue": (*COMMON_SECRETS, r"\beth9\b", r"\beth3\b", r"198\.18\.64\.", r"198\.18\.0\.[23]\b",
             r"198\.18\.34\."),
    # red has r1 whole: r1 eth3's own address (198.18.34.1/24) is its to see, not the prefix reported there
    "red": (*COMMON_SECRETS, r"198\.18\.64\.", r"198\.18\.9\.", r"198\.18\.7\.", r"198\.18\.34\.0"),
}
TOKENS = {"blue": BLUE_TOKEN, "red": RED_TOKEN}


def build(tmp_path: Path, settings: ApiConfig = SETTINGS) -> tuple[FastAPI, ApiPorts]:
    """test_api_schemas.populated's data, plus the out-of-scope objects above."""
    store, monitor, counters = StateStore(), Monitor(ManualClock(100.0)), CounterBoard()
    store.apply(Announce(SOURCE, (*FACTS, *EXTRA_FACTS)))
    store.apply(Announce("api", (PrefixReport("r1", "eth1", "198.18.9.0/24", source="api"),)))
    store.apply(Announce("file:reports.yaml", FILE_REPORTS))
    record_diff(store, "198.18.0.2", FlowDiff(withdraw=(), announce=(*PUSHED, *MORE_PUSHED)))
    record_diff(store, "198.18.0.7", FlowDiff(withdraw=(), announce=R7_PUSHED))
    store.record_push("198.18.0.3", {"source 198.18.2.0/24": "flow route { match { source 198.18.2.0/24; } "
                                                             "then { discard; } }"}, ())
    traces = TraceBoard()
    monitor.bus.subscribe(traces.on_record)
    for n in (0, 9):
        samples = [CounterSample("r1", "eth9", "198.18.64.0/20", "monitor", 5 + n, 500 + 100 * n,
                                 rule="source 198.18.64.0/20"),
                   CounterSample("r1", "eth1", "198.18.1.0/24", "accept", 3, 300, spoofed=False,
                                 rule="source 198.18.1.0/24"),
                   CounterSample("r1", "eth1", "198.18.34.0/24", "drop", 7 * n, 700 * n,
                                 rule="source 198.18.34.0/24"),
                   CounterSample("r1", "eth1", "198.18.9.0/24", "drop", 2 * n, 200 * n,
                                 rule="source 198.18.9.0/24"),
                   CounterSample("r1", "eth1", "*", "drop", 4 * n, 400 * n, rule="source 198.18.0.0/17"),
                   CounterSample("r7", "eth1", "198.18.33.0/24", "drop", 3 * n, 300 * n)]
        for notice in counters.update(samples, now=n):
            monitor.emit(notice)
    monitor.emit(BgpSession("exa1", "198.18.0.2", "b1", up=False, reason="refused"))
    monitor.emit(BgpSession("exa1", "198.18.0.3", "r1", up=False, reason="hold timer expired from exa1"))
    monitor.emit(SpoofingSeen("r1", "eth1", "198.18.9.0/24", 2, 200))
    monitor.emit(RuleInstalled("r1", "source 198.18.34.0/24", installed=False, reason="lan-z table full"))
    monitor.emit(PrefixConflict("198.18.34.0/24", "reported on r1 eth3 and r7 eth1"))
    monitor.emit(PrefixConflict("198.18.9.0/24", "reported on r1 eth1 and r7 eth1"))
    monitor.emit(JournalWrite("/secret/journal.db", ok=False, kind="disk-full", reason="exa1 spool"))
    monitor.emit(Operational(EventType.REPORT_CHANGED, "api", "report added: 198.18.33.0/24 on r7 eth1",
                             extra=(("router", "r7"), ("interface", "eth1"), ("prefix", "198.18.33.0/24"))))
    kept = (r for r in RULES.rules if (r.router, r.interface) != ("r1", "eth1"))
    rules = RulesHolder((7, SavRuleSet.of([*kept, *MORE_RULES])))
    ports = ApiPorts(store, rules, _rpki_board(tmp_path), PushedRules(store), monitor, counters,
                     Metrics(monitor, counters), traces=traces)
    return create_app(ports, settings), ports


#: one call per route a tenant can be served by (a filter or a stream policy)
CALLS: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    ("GET", "/health", "/health", {}),
    ("GET", "/api/v1/topology", "/api/v1/topology", {}),
    ("GET", "/api/v1/reports", "/api/v1/reports", {}),
    ("POST", "/api/v1/reports", "/api/v1/reports",
     {"json": {"router": "r1", "interface": "eth1", "prefix": "198.18.1.0/24", "subnet": "lan-b"}}),
    ("DELETE", "/api/v1/reports", "/api/v1/reports",
     {"params": {"router": "r1", "interface": "eth1", "prefix": "198.18.1.0/24"}}),
    ("GET", "/api/v1/rules", "/api/v1/rules", {}),
    ("GET", "/api/v1/rules/{router}/{interface}", "/api/v1/rules/r1/eth1", {}),
    ("GET", "/api/v1/explain", "/api/v1/explain", {"params": {"router": "r1", "interface": "eth1",
                                                               "source": "198.18.1.7"}}),
    ("GET", "/api/v1/explain", "/api/v1/explain", {"params": {"router": "r1", "interface": "eth1",
                                                               "source": "198.18.1.0/24"}}),
    ("GET", "/api/v1/trace", "/api/v1/trace", {"params": {"source": "198.18.1.0/25"}}),
    ("GET", "/api/v1/rpki", "/api/v1/rpki", {}),
    ("GET", "/api/v1/flowspec", "/api/v1/flowspec", {}),
    ("GET", "/api/v1/flowspec/{peer}", "/api/v1/flowspec/198.18.0.2", {}),
    ("GET", "/api/v1/counters", "/api/v1/counters", {}),
    ("GET", "/api/v1/events", "/api/v1/events", {}),
    ("GET", "/api/v1/alarms", "/api/v1/alarms", {}),
    ("GET", "/api/v1/traces", "/api/v1/traces", {}),
    ("GET", "/api/v1/events/stream", "/api/v1/events/stream", {"params": {"once": "true"}}),
)


def _as(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


OPERATOR = {"Authorization": f"Bearer {TOKEN}"}


# --- every route has a policy -------------------------------------------------------------------------


def test_every_route_has_a_declared_tenant_policy(tmp_path: Path) -> None:
    """The app's routes (OpenAPI or not: /metrics, the stream, the dashboard's files) and the document's
    operations each have an entry in tenants.POLICIES."""
    app, _ = build(tmp_path)
    spec = TestClient(app).get("/openapi.json", headers=OPERATOR).json()
    documented = {(m.upper(), p) for p, item in spec["paths"].items() for m in item}
    routes = set(route_keys(app.routes))
    assert documented <= routes
    assert sorted(routes - set(POLICIES)) == []


def test_every_filtered_route_is_called_by_the_leak_test(tmp_path: Path) -> None:
    app, _ = build(tmp_path)
    served = {k for k in route_keys(app.routes) if POLICIES[k].kind in ("filter", "stream")}
    assert served == {(m, t) for m, t, _, _ in CALLS}


def test_a_route_without_a_policy_is_refused_to_tenants_and_named_by_the_check(tmp_path: Path) -> None:
    app, _ = build(tmp_path)

    @app.get("/api/v1/new-thing")
    async def new_thing() -> dict[str, str]:
        return {"secret": "b1"}

    client = TestClient(app)
    answer = client.get("/api/v1/new-thing", headers=_as("blue"))
    assert answer.status_code == 403 and "no tenant policy" in answer.json()["message"]
    assert client.get("/api/v1/new-thing", headers=OPERATOR).json() == {"secret": "b1"}
    assert ("GET", "/api/v1/new-thing") in set(route_keys(app.routes)) - set(POLICIES)


def test_without_the_gate_a_tenant_token_is_refused_not_served_the_operator_view(tmp_path: Path) -> None:
    app, _ = build(tmp_path)
    app.user_middleware = [m for m in app.user_middleware if m.cls is not TenantGate]  # type: ignore[comparison-overlap]
    client = TestClient(app)
    assert client.get("/api/v1/rules", headers=_as("blue")).status_code == 403
    assert client.get("/api/v1/rules", headers=OPERATOR).status_code == 200


# --- nothing outside the scope in any answer ----------------------------------------------------------


def _leaks(name: str, text: str) -> list[str]:
    return [s for s in SECRETS[name] if re.search(s, text)]


@pytest.mark.parametrize("name", ["blue", "red"])
@pytest.mark.parametrize("method, template_, url, kwargs", CALLS, ids=[f"{c[0]} {c[2]}" for c in CALLS])
def test_no_answer_to_a_tenant_names_anything_outside_its_scope(
        tmp_path: Path, name: str, method: str, template_: str, url: str, kwargs: dict[str, Any]) -> None:
    app, _ = build(tmp_path)
    client = TestClient(app)
    if method == "DELETE":  # the API's own report of it, to delete
        assert client.post("/api/v1/reports", json=kwargs["params"], headers=_as(name)).status_code == 201
    operator = client.request(method, url, headers=OPERATOR, **kwargs) if method == "GET" else None
    answer = client.request(method, url, headers=_as(name), **kwargs)
    if name == "blue" and template_ == "/api/v1/flowspec/{peer}":  # FlowSpec: whole routers only
        assert answer.status_code == 403
    else:
        assert 200 <= answer.status_code < 300, answer.text
    assert [s for s in _leaks(name, answer.text) if not re.search(s, url)] == []  # a 403 repeats the url
    if operator is not None and answer.status_code == 200:
        assert _leaks(name, operator.text) != [], "the operator's answer should hold what the tenant's hides"
    media = answer.headers["content-type"].split(";")[0]
    if answer.status_code == 200 and media == "application/json":
        spec = client.get("/openapi.json", headers=OPERATOR).json()
        content = spec["paths"][template_][method.lower()]["responses"][str(answer.status_code)]["content"]
        assert mismatches(answer.json(), content[media]["schema"], spec) == []


def test_what_blue_sees(tmp_path: Path) -> None:
    app, _ = build(tmp_path)
    client = TestClient(app)

    def get(url: str, **params: str) -> Any:
        r = client.get(url, headers=_as("blue"), params=params)
        assert r.status_code == 200, r.text
        return r.json()

    topo = get("/api/v1/topology")
    assert [r["name"] for r in topo["routers"]] == ["r1"]
    assert [(i["router"], i["name"]) for i in topo["interfaces"]] == [("r1", "eth1")]
    assert topo["links"] == [] and topo["neighbors"] == [] and topo["paths"] == 0
    reports = get("/api/v1/reports")["reports"]
    assert sorted((r["prefix"], r["sources"]) for r in reports) == [
        ("198.18.1.0/24", ["bgp-ls"]), ("198.18.1.0/24", ["file"]), ("198.18.9.0/24", ["api"])]
    (rule,) = get("/api/v1/rules")["rules"]
    assert (rule["router"], rule["interface"], rule["prefixes"]) == ("r1", "eth1",
                                                                     ["198.18.1.0/24", "198.18.9.0/24"])
    assert sorted(rule["provenance"]["198.18.9.0/24"]) == ["carved:198.18.9.128/25 shared", "igp", "report",
                                                           "report:-@r1:eth1"]  # r7, eth3: kinds only
    assert rule["provenance"]["198.18.1.0/24"] == ["report:lan-a@r1:eth1"]
    wide = get("/api/v1/explain", router="r1", interface="eth1", source="198.18.7.1")
    assert (wide["verdict"], wide["matched_prefix"], wide["flowspec_rule"]) == ("pass", "", "")
    own = get("/api/v1/explain", router="r1", interface="eth1", source="198.18.9.1")
    assert (own["verdict"], own["matched_prefix"]) == ("pass", "198.18.9.0/24")
    trace = get("/api/v1/trace", source="198.18.9.1")
    assert trace["verdicts"] == [{k: v for k, v in own.items() if k != "version"}]
    rpki = get("/api/v1/rpki")
    assert rpki["caches"] == [] and rpki["files"] == [] and rpki["counts"]["vrp"] == 1
    assert get("/api/v1/flowspec") == {"peers": {}}
    counters = get("/api/v1/counters")
    assert sorted(c["source_prefix"] for c in counters["counters"]) == ["*", "198.18.1.0/24", "198.18.9.0/24"]
    assert {c["rule"] for c in counters["counters"] if c["source_prefix"] == "*"} == {""}  # names the /17
    assert sum(h["total_packets"] for h in counters["policy_hits"]) == sum(
        c["total_packets"] for c in counters["counters"])
    events = get("/api/v1/events")["events"]
    assert {e["type"] for e in events} == {"bgp.session-down", "spoofing-seen", "rule-not-installed",
                                           "report-conflict"}
    assert all(e["message"].startswith(e["type"]) for e in events)
    alarms = get("/api/v1/alarms")["alarms"]
    assert alarms and all(a["id"].startswith("alarm-") for a in alarms)
    health = get("/health")
    assert health == {"status": "degraded", "state_version": health["state_version"],
                      "rules_version": health["rules_version"], "alarms": len(alarms)}
    (trace,) = get("/api/v1/traces")["traces"]  # r1 eth1 without the other tenant's 198.18.34.0/24
    assert (trace["router"], trace["interface"], [s["prefix"] for s in trace["sources"]]) == (
        "r1", "eth1", ["*", "198.18.9.0/24"])
    assert trace["packets"] == sum(s["packets"] for s in trace["sources"])


def test_what_red_sees_of_flowspec(tmp_path: Path) -> None:
    app, _ = build(tmp_path)
    client = TestClient(app)
    assert client.get("/api/v1/flowspec", headers=_as("red")).json() == {"peers": {"198.18.0.2": 2}}
    held = client.get("/api/v1/flowspec/198.18.0.2", headers=_as("red")).json()["rules"]
    assert sorted(r["rule"]["match"]["source"] for r in held) == ["0.0.0.0/0", "198.18.1.0/24"]
    for peer in ("198.18.0.7", "198.18.0.3", "198.18.0.99"):  # r7's, a text record's, none: the same 403
        answer = client.get(f"/api/v1/flowspec/{peer}", headers=_as("red"))
        assert answer.status_code == 403 and answer.json()["message"] == (
            f"peer {peer} is outside tenant 'red''s scope")


def test_the_event_stream_carries_only_the_tenants_events(tmp_path: Path) -> None:
    app, _ = build(tmp_path)
    client = TestClient(app)
    body = client.get("/api/v1/events/stream", params={"once": "true"}, headers=_as("blue")).text
    operator = client.get("/api/v1/events/stream", params={"once": "true"}, headers=OPERATOR).text
    assert 0 < body.count("data:") < operator.count("data:")
    assert _leaks("blue", body) == []


# --- writes and named objects outside the scope ----------------------------------------------------


@pytest.mark.parametrize("method, url, kwargs", [
    ("POST", "/api/v1/reports", {"json": {"router": "r1", "interface": "eth3", "prefix": "198.18.7.0/24"}}),
    ("POST", "/api/v1/reports", {"json": {"router": "r1", "interface": "eth1", "prefix": "198.18.34.0/24"}}),
    ("POST", "/api/v1/reports", {"json": {"router": "r7", "interface": "eth1", "prefix": "198.18.7.0/24"}}),
    ("POST", "/api/v1/reports", {"json": {"router": "r1", "interface": "eth1", "prefix": "198.18.0.0/16"}}),
    ("DELETE", "/api/v1/reports",
     {"params": {"router": "r1", "interface": "eth3", "prefix": "198.18.34.0/24"}}),
    ("DELETE", "/api/v1/reports", {"params": [("router", "r1"), ("router", "r7"), ("interface", "eth1"),
                                              ("prefix", "198.18.9.0/24")]}),
    ("POST", "/api/v1/alarms/ack", {"json": {"id": "bgp-session/exa1/198.18.0.3"}}),
    ("POST", "/api/v1/alarms/clear", {"json": {"id": "bgp-session/exa1/198.18.0.3"}}),
    ("GET", "/metrics", {}),
    ("GET", "/api/v1/rules/r1/eth9", {}),
    ("GET", "/api/v1/rules/r7/eth1", {}),
    ("GET", "/api/v1/explain", {"params": {"router": "r1", "interface": "eth9", "source": "198.18.1.1"}}),
    ("GET", "/api/v1/explain", {"params": {"router": "r1", "interface": "eth1", "source": "198.18.34.1"}}),
    ("GET", "/api/v1/trace", {"params": {"source": "198.18.0.0/16"}}),
])
def test_out_of_scope_writes_and_names_are_403_and_change_nothing(
        tmp_path: Path, method: str, url: str, kwargs: dict[str, Any]) -> None:
    app, ports = build(tmp_path)
    before = ports.facts.snapshot()
    alarms = len(ports.monitor.alarms.active())
    answer = TestClient(app).request(method, url, headers=_as("blue"), **kwargs)
    assert answer.status_code == 403, answer.text
    assert set(answer.json()) == {"message"}
    asked = f"{url} {kwargs}"  # a refusal may repeat what was asked, nothing else
    assert [s for s in _leaks("blue", answer.text) if not re.search(s, asked)] == []
    assert ports.facts.snapshot() == before and len(ports.monitor.alarms.active()) == alarms


def test_in_scope_writes_work_and_a_conflict_names_no_source(tmp_path: Path) -> None:
    app, _ = build(tmp_path)
    client = TestClient(app)
    new = {"router": "r1", "interface": "eth1", "prefix": "198.18.7.0/24"}
    assert client.post("/api/v1/reports", json=new, headers=_as("blue")).status_code == 201
    gone = client.delete("/api/v1/reports", params=new, headers=_as("blue"))
    assert gone.status_code == 200 and gone.json()["deleted"][0]["prefix"] == "198.18.7.0/24"
    theirs = client.delete("/api/v1/reports", params={**new, "prefix": "198.18.1.0/24"}, headers=_as("blue"))
    assert theirs.status_code == 409 and _leaks("blue", theirs.text) == []
    bad = client.post("/api/v1/reports", json={**new, "prefix": "198.18.7.1/24"}, headers=_as("blue"))
    assert bad.status_code == 422  # the handler's own answer: the same prefix parser


def test_public_routes_are_the_same_for_tenants(tmp_path: Path) -> None:
    app, _ = build(tmp_path)
    client = TestClient(app)
    for url in ("/openapi.json", "/docs", "/dashboard/"):
        tenant, operator = client.get(url, headers=_as("blue")), client.get(url, headers=OPERATOR)
        assert tenant.status_code == operator.status_code == 200 and tenant.content == operator.content, url


# --- the operator sees what it saw before tenants existed ---------------------------------------------


def test_the_operators_answers_do_not_change_when_tenants_are_configured(tmp_path: Path) -> None:
    with_tenants = TestClient(build(tmp_path)[0])
    without = TestClient(build(tmp_path, dataclasses.replace(SETTINGS, tenants=()))[0])
    for method, _, url, kwargs in CALLS:
        if method != "GET":
            continue
        a = with_tenants.request(method, url, headers=OPERATOR, **kwargs)
        b = without.request(method, url, headers=OPERATOR, **kwargs)
        if url == "/api/v1/rpki":  # the two apps' RPKI files were written at different times
            assert _no_file_times(a.json()) == _no_file_times(b.json())
            continue
        assert (a.status_code, a.content) == (b.status_code, b.content), url
    assert with_tenants.get("/metrics", headers=OPERATOR).status_code == 200


def _no_file_times(rpki: dict[str, Any]) -> dict[str, Any]:
    return {**rpki, "files": [{**f, "last_update": None} for f in rpki["files"]]}


# --- configuration ------------------------------------------------------------------------------------

BASE = '[appliance]\nasn = 65000\nrouter_id = "198.18.0.1"\n[api]\ntoken = "operator-token-0000001"\n'


def test_tenants_are_read_from_the_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = BASE + ('read_token_required = true\n[[api.tenant]]\nname = "blue"\n'
                   'token = "blue-tenant-token-0001"\nprefixes = ["198.18.1.0/24", "2001:db8:1::/48"]\n'
                   'interfaces = ["r1:eth1", "1.2.3.4:eth0"]\n'
                   '[[api.tenant]]\nname = "red"\ntoken_env = "SAVD_TEST_RED"\nrouters = ["r1"]\n')
    monkeypatch.setenv("SAVD_TEST_RED", "red-tenant-token-000002")
    api = parse_config(text, tmp_path / "savd.toml").api
    assert api.tenants == (
        TenantConfig("blue", "blue-tenant-token-0001", ("198.18.1.0/24", "2001:db8:1::/48"), (),
                     (("r1", "eth1"), ("1.2.3.4", "eth0"))),
        TenantConfig("red", "red-tenant-token-000002", (), ("r1",), ()))
    assert "token" not in repr(api.tenants[0]).replace("TenantConfig", "")


@pytest.mark.parametrize("tenant, where, message", [
    ('name = "b"\ntoken = "blue-tenant-token-0001"\ninterfaces = ["r1eth1"]\n', "api.tenant[0].interfaces[0]",
     "must be 'router:interface'"),
    ('name = "b"\ntoken = "blue-tenant-token-0001"\nprefixes = ["198.18.1.0/24"]\n', "api.tenant[0]",
     "empty scope"),
    ('name = "b"\ntoken = "operator-token-0000001"\nrouters = ["r1"]\n', "api.tenant[0].token",
     "duplicate token: tenant 'b' has the same token as the operator's [api] token"),
    ('name = "b"\ntoken = "blue-tenant-token-0001"\nrouters = ["r1"]\nprefixes = ["198.18.1.1/24"]\n',
     "api.tenant[0].prefixes[0]", "not a CIDR prefix"),
    ('name = "b"\nrouters = ["r1"]\n', "api.tenant[0]", "needs one of token, token_file, token_env"),
    ('name = "b"\ntoken = "blue-tenant-token-0001"\nrouters = ["../x"]\n', "api.tenant[0].routers[0]",
     "not a valid name"),
])
def test_tenant_configuration_errors_name_the_field(tmp_path: Path, tenant: str, where: str,
                                                     message: str) -> None:
    text = BASE + "read_token_required = true\n[[api.tenant]]\n" + tenant
    with pytest.raises(ConfigError) as caught:
        parse_config(text, tmp_path / "savd.toml")
    assert any(p.key == where and message in p.message for p in caught.value.problems), caught.value.problems
    assert "blue-tenant-token-0001" not in str(caught.value) and "operator-token" not in str(caught.value)


def test_tenants_need_read_tokens(tmp_path: Path) -> None:
    text = BASE + '[[api.tenant]]\nname = "b"\ntoken = "blue-tenant-token-0001"\nrouters = ["r1"]\n'
    with pytest.raises(ConfigError) as caught:
        parse_config(text, tmp_path / "savd.toml")
    assert [p.key for p in caught.value.problems] == ["api.read_token_required"]


def test_two_tenants_with_one_token_are_refused(tmp_path: Path) -> None:
    one = 'token = "shared-tenant-token-01"\nrouters = ["r1"]\n'
    text = BASE + ('read_token_required = true\n'
                   f'[[api.tenant]]\nname = "a"\n{one}[[api.tenant]]\nname = "b"\n{one}')
    with pytest.raises(ConfigError) as caught:
        parse_config(text, tmp_path / "savd.toml")
    assert [(p.key, p.message) for p in caught.value.problems] == [
        ("api.tenant[1].token", "duplicate token: tenant 'b' has the same token as tenant 'a'")]


def test_template_matches_the_documents_paths() -> None:
    assert template("/api/v1/rules/{router}/{interface:path}") == "/api/v1/rules/{router}/{interface}"
