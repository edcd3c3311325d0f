"""Every JSON answer of the API is typed in /openapi.json, and the real answers match it (issue 14).

Two checks. The document: every 2xx JSON response of every route has a schema with properties, and no
object anywhere in it is untyped (a `{}` or an `additionalProperties: true` dict without properties); maps
are allowed when their values are typed. The wire: each route is called on an app filled by the real
producers (state store facts, rule sets, RTR cache and file status, pushed FlowSpec records, counters,
events, alarms) and its JSON is checked against the document, strictly: a field the document does not
declare fails, as does a missing required field or a wrong type. FastAPI validates the answers against
the response models too, so a handler that drifts from its model is a 500 here.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from appliance.api import ApiPorts, create_app
from appliance.api.memory import PushedRules, RpkiStatusBoard, RulesHolder
from appliance.collab.model import Agreement
from appliance.config import ApiConfig
from appliance.flowspec.diff import FlowDiff
from appliance.flowspec.rules import ActionKind, FlowAction, FlowMatch, FlowRule
from appliance.model import (
    Action,
    Aspa,
    BgpPath,
    Capability,
    CollabAllowance,
    Delivery,
    IgpPrefix,
    Inspector,
    Interface,
    InterfaceRules,
    Link,
    ListKind,
    Mode,
    Neighbor,
    PrefixFlags,
    PrefixReport,
    Relationship,
    Role,
    Router,
    SavRuleSet,
    Suspect,
    Vrp,
)
from appliance.monitor import ManualClock, Monitor
from appliance.monitor.counters import CounterBoard, CounterSample
from appliance.monitor.events import BgpSession
from appliance.monitor.metrics import Metrics
from appliance.monitor.traces import TraceBoard
from appliance.state import Announce, StateStore
from appliance.state.pushed import record_diff
from rpki.files import FileWatcher
from rpki.rtr.session import CacheState, CacheStatus
from rpki.tables import RpkiTables

TOKEN = "t0ken-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SOURCE = "bgp-ls:exa1/198.18.0.2"
FACTS = (
    Router("r1", "198.18.0.1", 65000, Role.ACCESS, Capability.SAVNET),
    Router("b1", "198.18.0.9", 65000, Role.BORDER, Capability.LEGACY),
    Interface("r1", "eth1", ("198.18.1.1/24", "2001:db8:1::1/64")),
    Interface("b1", "eth2", ("203.0.113.1/30",), external=True),
    Link("r1", "b1", "198.18.255.1", "198.18.255.2", 10),
    IgpPrefix("r1", "198.18.1.0/24", 10, (7, 9)),
    IgpPrefix("b1", "198.18.200.0/24", 20, (), external=True),
    Neighbor("b1", "eth2", 65010, Relationship.PROVIDER, "203.0.113.2"),
    BgpPath("b1", "eth2", "198.18.50.0/24", (65010, 65011), path_id=1),
    BgpPath("b1", "eth2", "198.18.60.0/24", (65010,), as_set=(65012, 65013)),
    PrefixReport("r1", "eth1", "198.18.1.0/24", "lan-a", PrefixFlags(multihomed=True), source="bgp-ls"),
    Vrp("198.18.50.0/24", 24, 65011),
    Aspa(65011, (65010,)),
)
RULES = SavRuleSet.of([
    InterfaceRules("r1", "eth1", ListKind.ALLOW, ("198.18.1.0/24",), Action(Mode.RATE_LIMIT, 1250.0),
                   Delivery.FLOWSPEC, "intra", {"198.18.1.0/24": ("report:lan-a@r1:eth1",)}),
    InterfaceRules("b1", "eth2", ListKind.ALLOW, ("198.18.50.0/24",),
                   Action(Mode.REDIRECT, redirect="65000:666"), Delivery.ACL, "auto:bar-sav",
                   {"198.18.50.0/24": ("path:eth2:65010>65011",)}),
    InterfaceRules("r1", "eth9", ListKind.BLOCK, ("198.18.64.0/20",), Action(Mode.MONITOR),
                   provenance={"198.18.64.0/20": ("roa:198.18.64.0/20-24 AS65020",)}),
])
PUSHED = (
    FlowRule("r1", FlowMatch("198.18.1.0/24"), FlowAction(ActionKind.ACCEPT), (1,)),
    FlowRule("r1", FlowMatch("0.0.0.0/0", 20), FlowAction(ActionKind.RATE_LIMIT, 1250), (1, 2)),
    FlowRule("r1", FlowMatch("198.18.64.0/20"), FlowAction(ActionKind.SAMPLE), (2,)),
)
REPORT = {"router": "r1", "interface": "eth1", "prefix": "198.18.7.0/24", "subnet": "lan-b", "anycast": True}


def _rpki_board(tmp_path: Path) -> RpkiStatusBoard:
    """The board as the RPKI component fills it: cache status, one file's status, the tables' counts."""
    tables = RpkiTables()
    roas = tmp_path / "rpki.json"
    roas.write_text('{"roas": [{"prefix": "198.18.50.0/24", "maxLength": 24, "asn": "AS65011"}],'
                    ' "aspas": [{"customer_asid": 65011, "provider_asids": [65010]}]}')
    watcher = FileWatcher([roas, tmp_path / "missing.csv"], tables)
    watcher.poll()
    cache = CacheStatus("stayrtr", 1, CacheState.IN_SYNC, 2, 4711, 9, 1700000000.5, 1, 1, 3600.0, 600.0,
                        7200.0, "", active=True)
    board = RpkiStatusBoard()
    board.add_caches(lambda: [cache])
    for path in watcher.paths:
        board.add_file(functools.partial(watcher.status_of, path))
    board.set_counts(tables.counts)
    return board

AGREEMENT = Agreement("ca-1", "as65002", "as65000", "bilateral", "sav-info", 1e12)


def populated(tmp_path: Path) -> TestClient:
    """An app whose every read has something to say, each part filled by its real producer."""
    store, monitor, counters = StateStore(), Monitor(ManualClock(100.0)), CounterBoard()
    store.apply(Announce(SOURCE, FACTS))
    store.apply(Announce("api", (PrefixReport("r1", "eth1", "198.18.9.0/24", source="api"),)))
    store.apply(Announce("api", (Inspector("dpi-1", "198.18.0.50", 100.0), Suspect("198.18.1.7/32", "ids"))))
    store.apply(Announce("collab:as65002", (CollabAllowance("b1", "eth2", "198.18.30.0/24", "as65002", 65002,
                                                            "ca-1", 1e12),)))
    record_diff(store, "198.18.0.2", FlowDiff(withdraw=(), announce=PUSHED))
    store.record_push("198.18.0.3", {"source 198.18.2.0/24": "flow route { match { source 198.18.2.0/24; } "
                                                             "then { discard; } }"}, ())
    traces = TraceBoard()
    monitor.bus.subscribe(traces.on_record)
    for n in (0, 9):  # a baseline, then a rise: spoofing seen, and a trace of it
        samples = [CounterSample("r1", "eth9", "198.18.64.0/20", "monitor", 5 + n, 500 + 100 * n,
                                 rule="source 198.18.64.0/20"),
                   CounterSample("r1", "eth1", "198.18.1.0/24", "accept", 3, 300, spoofed=False)]
        for notice in counters.update(samples, now=n):
            monitor.emit(notice)
    monitor.emit(BgpSession("exa1", "198.18.0.2", "b1", up=False, reason="refused"))
    monitor.emit(BgpSession("exa1", "198.18.0.3", "r1", up=True))
    rules = RulesHolder((7, RULES))
    ports = ApiPorts(store, rules, _rpki_board(tmp_path), PushedRules(store), monitor, counters,
                     Metrics(monitor, counters), traces=traces,
                     agreements=lambda: {"as65002": AGREEMENT}, now=lambda: 100.0,
                     end_agreement=_end, allow_peer=_allow)
    return TestClient(create_app(ports, ApiConfig(token=TOKEN)))


async def _allow(peer: str) -> bool:
    return peer == "as65002"


async def _end(peer: str) -> Agreement | None:
    return dataclasses.replace(AGREEMENT, ended=True) if peer == "as65002" else None


def fresh(board: RpkiStatusBoard) -> TestClient:
    """An app with nothing in it yet but what `board` says."""
    store, monitor, counters = StateStore(), Monitor(ManualClock(1.0)), CounterBoard()
    ports = ApiPorts(store, RulesHolder(), board, PushedRules(store), monitor, counters,
                     Metrics(monitor, counters))
    return TestClient(create_app(ports, ApiConfig(token=TOKEN)))


#: one call per (method, path template) of the document; the test fails when a route has none
CALLS: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    ("GET", "/health", "/health", {}),
    ("GET", "/api/v1/topology", "/api/v1/topology", {}),
    ("GET", "/api/v1/reports", "/api/v1/reports", {}),
    ("POST", "/api/v1/reports", "/api/v1/reports", {"json": REPORT}),
    ("DELETE", "/api/v1/reports", "/api/v1/reports",
     {"params": {"router": "r1", "interface": "eth1", "prefix": "198.18.9.0/24"}}),
    ("GET", "/api/v1/rules", "/api/v1/rules", {}),
    ("GET", "/api/v1/rules/{router}/{interface}", "/api/v1/rules/b1/eth2", {}),
    ("GET", "/api/v1/explain", "/api/v1/explain",
     {"params": {"router": "r1", "interface": "eth9", "source": "198.18.64.7"}}),
    ("GET", "/api/v1/trace", "/api/v1/trace", {"params": {"source": "198.18.50.0/25"}}),
    ("GET", "/api/v1/rpki", "/api/v1/rpki", {}),
    ("GET", "/api/v1/flowspec", "/api/v1/flowspec", {}),
    ("GET", "/api/v1/flowspec/{peer}", "/api/v1/flowspec/198.18.0.2", {}),
    ("GET", "/api/v1/flowspec/{peer}", "/api/v1/flowspec/198.18.0.3", {}),  # a record that is text
    ("GET", "/api/v1/counters", "/api/v1/counters", {}),
    ("GET", "/api/v1/events", "/api/v1/events", {}),
    ("GET", "/api/v1/alarms", "/api/v1/alarms", {}),
    ("POST", "/api/v1/alarms/ack", "/api/v1/alarms/ack", {"json": {"id": "bgp-session/exa1/198.18.0.2"}}),
    ("POST", "/api/v1/alarms/clear", "/api/v1/alarms/clear", {"json": {"id": "bgp-session/exa1/198.18.0.2"}}),
    ("GET", "/metrics", "/metrics", {}),
    ("GET", "/api/v1/traces", "/api/v1/traces", {}),
    ("GET", "/api/v1/events/stream", "/api/v1/events/stream", {"params": {"once": "true"}}),
    ("POST", "/api/v1/inspectors", "/api/v1/inspectors",
     {"json": {"name": "dpi-1", "address": "198.18.0.50", "capacity": 100.0}}),
    ("POST", "/api/v1/inspectors/{name}/load", "/api/v1/inspectors/dpi-1/load", {"json": {"load": 40.0}}),
    ("GET", "/api/v1/inspectors", "/api/v1/inspectors", {}),
    ("DELETE", "/api/v1/inspectors/{name}", "/api/v1/inspectors/dpi-1", {}),
    ("POST", "/api/v1/suspects", "/api/v1/suspects", {"json": {"prefix": "198.18.1.7/32", "reason": "ids"}}),
    ("GET", "/api/v1/suspects", "/api/v1/suspects", {}),
    ("GET", "/api/v1/collaboration", "/api/v1/collaboration", {}),
    ("POST", "/api/v1/collaboration/{peer}/end", "/api/v1/collaboration/as65002/end", {}),
    ("POST", "/api/v1/collaboration/{peer}/allow", "/api/v1/collaboration/as65002/allow", {}),
    ("DELETE", "/api/v1/suspects", "/api/v1/suspects", {"params": {"prefix": "198.18.1.7/32"}}),
)


def call(client: TestClient, method: str, url: str, kwargs: dict[str, Any]) -> Any:
    return client.request(method, url, headers=AUTH, **kwargs)


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    return populated(tmp_path)


# --- the document -------------------------------------------------------------------------------------


def _spec(client: TestClient) -> dict[str, Any]:
    spec: dict[str, Any] = client.get("/openapi.json").json()
    return spec


def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        schema = spec["components"]["schemas"][name]
    return schema


def _successes(spec: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(method, path, status, response) of every 2xx response in the document."""
    return [(method.upper(), path, code, response) for path, item in spec["paths"].items()
            for method, op in item.items() for code, response in op["responses"].items() if code[0] == "2"]


def untyped(schema: dict[str, Any], spec: dict[str, Any], where: str, seen: frozenset[str] = frozenset()
            ) -> list[str]:
    """Where `schema` leaves a value untyped: `{}`, an object without properties whose values are not
    typed (`additionalProperties` absent, true or `{}`), an array without typed items."""
    ref = schema.get("$ref", "")
    if ref:
        return [] if ref in seen else untyped(_resolve(schema, spec), spec, where, seen | {ref})
    if "anyOf" in schema:
        return [p for i, s in enumerate(schema["anyOf"]) for p in untyped(s, spec, f"{where}|{i}", seen)]
    kind = schema.get("type")
    if kind == "object":
        values = schema.get("additionalProperties")
        typed = [values] if isinstance(values, dict) and values else []
        if not schema.get("properties") and not typed:
            return [f"{where}: an object with no properties and untyped values"]
        inner = [p for name, s in schema.get("properties", {}).items()
                 for p in untyped(s, spec, f"{where}.{name}", seen)]
        return inner + [p for v in typed for p in untyped(v, spec, f"{where}.*", seen)]
    if kind == "array":
        items: dict[str, Any] | None = schema.get("items")
        return [f"{where}: an array of anything"] if items is None else untyped(items, spec, f"{where}[]",
                                                                                   seen)
    if kind is None and "const" not in schema and "enum" not in schema:
        return [f"{where}: no type"]
    return []


def test_every_2xx_json_answer_has_a_typed_schema(client: TestClient) -> None:
    spec = _spec(client)
    problems = []
    for method, path, code, response in _successes(spec):
        content = response.get("content") or {}
        if not content:
            problems.append(f"{method} {path} {code}: no content described")
        for media, body in content.items():
            schema = body.get("schema")
            if not schema:
                problems.append(f"{method} {path} {code} {media}: no schema")
            elif "json" in media:
                problems += untyped(schema, spec, f"{method} {path} {code}")
    assert problems == []


def test_the_document_check_refuses_untyped_answers() -> None:
    spec: dict[str, Any] = {"components": {"schemas": {"M": {"type": "object", "properties": {
        "ok": {"type": "string"}, "loose": {"type": "object", "additionalProperties": True}}}}}}
    assert untyped({"$ref": "#/components/schemas/M"}, spec, "m") == [
        "m.loose: an object with no properties and untyped values"]
    assert untyped({}, spec, "any") == ["any: no type"]
    assert untyped({"type": "object"}, spec, "obj") != []
    assert untyped({"type": "array", "items": {}}, spec, "arr") == ["arr[]: no type"]
    assert untyped({"type": "object", "additionalProperties": {"type": "integer"}}, spec, "map") == []


def test_every_route_of_the_document_is_called_here(client: TestClient) -> None:
    routes = {(method, path) for method, path, _, _ in _successes(_spec(client))}
    assert routes == {(method, template) for method, template, _, _ in CALLS}


# --- the wire -----------------------------------------------------------------------------------------

_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "boolean": (bool,), "object": (dict,),
                                       "array": (list,), "null": (type(None),), "integer": (int,),
                                       "number": (int, float)}


def _is(value: Any, kind: str) -> bool:
    return isinstance(value, _TYPES[kind]) and not (kind in ("integer", "number") and isinstance(value, bool))


def mismatches(value: Any, schema: dict[str, Any], spec: dict[str, Any], where: str = "$") -> list[str]:
    """Where `value` departs from `schema`, strictly: a key the schema does not declare is a mismatch even
    where the model lets it through (additionalProperties: true), unless the object is a typed map."""
    schema = _resolve(schema, spec)
    if "anyOf" in schema:
        fits = any(not mismatches(value, s, spec, where) for s in schema["anyOf"])
        return [] if fits else [f"{where}: {value!r} fits no branch of {schema['anyOf']}"]
    if ("const" in schema and value != schema["const"]) or ("enum" in schema and value not in schema["enum"]):
        return [f"{where}: {value!r} is not one of {schema.get('enum', [schema.get('const')])}"]
    kind = schema.get("type")
    if kind is None or not _is(value, kind):
        return [f"{where}: {value!r} is not {kind or 'typed'}"]
    if kind == "array":
        items = schema["items"]
        return [p for i, item in enumerate(value) for p in mismatches(item, items, spec, f"{where}[{i}]")]
    return _object_mismatches(value, schema, spec, where) if kind == "object" else []


def _object_mismatches(value: dict[str, Any], schema: dict[str, Any], spec: dict[str, Any], where: str
                       ) -> list[str]:
    props, values = schema.get("properties", {}), schema.get("additionalProperties")
    problems = [f"{where}.{key}: required, missing" for key in schema.get("required", ()) if key not in value]
    for key, item in value.items():
        if key in props:
            problems += mismatches(item, props[key], spec, f"{where}.{key}")
        elif isinstance(values, dict) and values:
            problems += mismatches(item, values, spec, f"{where}.{key}")
        else:
            problems.append(f"{where}.{key}: not in the document")
    return problems


@pytest.mark.parametrize("method, template, url, kwargs", CALLS, ids=[f"{c[0]} {c[1]}" for c in CALLS])
def test_the_real_answer_matches_the_document(client: TestClient, method: str, template: str, url: str,
                                              kwargs: dict[str, Any]) -> None:
    spec = _spec(client)
    answer = call(client, method, url, kwargs)
    assert 200 <= answer.status_code < 300, answer.text
    content = spec["paths"][template][method.lower()]["responses"][str(answer.status_code)]["content"]
    media = answer.headers["content-type"].split(";")[0]
    if media != "application/json":
        assert media in content and answer.text
        return
    body = answer.json()
    assert body and mismatches(body, content[media]["schema"], spec) == []


def test_a_fresh_app_answers_match_the_document_too() -> None:
    """Before the first rule set, with no RPKI source and nothing recorded: nulls and empty collections."""
    client = fresh(RpkiStatusBoard())
    spec = _spec(client)
    for method, template, url, kwargs in CALLS:
        answer = call(client, method, url, kwargs)
        if answer.status_code == 404:  # one report, rule, peer or alarm: there is none yet
            assert "{" in template or method == "DELETE" or template.startswith("/api/v1/alarms/")
            continue
        content = spec["paths"][template][method.lower()]["responses"][str(answer.status_code)]["content"]
        if "application/json" in content:
            assert mismatches(answer.json(), content["application/json"]["schema"], spec) == [], url
    assert client.get("/api/v1/rpki").json()["counts"] == {}


def test_the_wire_check_sees_undeclared_missing_and_mistyped_fields(client: TestClient) -> None:
    spec = _spec(client)
    health = {"$ref": "#/components/schemas/Health"}
    good = client.get("/health").json()
    assert mismatches(good, health, spec) == []
    assert mismatches({**good, "uptime": 5}, health, spec) == ["$.uptime: not in the document"]
    assert mismatches({**good, "alarms": "1"}, health, spec) == ["$.alarms: '1' is not integer"]
    assert mismatches({**good, "status": "fine"}, health, spec) != []
    assert mismatches({k: v for k, v in good.items() if k != "alarms"}, health, spec) == [
        "$.alarms: required, missing"]
    rule = client.get("/api/v1/rules/b1/eth2").json()  # RuleOut allows extra fields; the check does not
    rule["rule"]["colour"] = "red"
    assert mismatches(rule, {"$ref": "#/components/schemas/InterfaceRule"}, spec) == [
        "$.rule.colour: not in the document"]


def test_an_answer_that_departs_from_its_model_is_a_500() -> None:
    """FastAPI validates each answer against its response model: a producer that drops a declared field
    makes the route fail loudly rather than serve an answer the document does not describe."""
    board = RpkiStatusBoard()
    board.add_caches(lambda: [_Partial()])
    answer = fresh(board).get("/api/v1/rpki")
    assert answer.status_code == 500 and "internal error" in answer.json()["message"]


@dataclass(frozen=True)
class _Partial:
    def to_dict(self) -> dict[str, Any]:
        return {"name": "stayrtr", "state": "in-sync"}  # the other CacheStatus fields missing
