"""The OpenAPI document says what the API really does (issue 14): a bearer scheme /docs can use for
writes, the error statuses each route answers with the one error body, and typed response models that
the live answers validate against."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from pydantic import BaseModel

from appliance.api import ApiPorts, create_app
from appliance.api.memory import PushedRules, RpkiStatusBoard, RulesHolder
from appliance.api.schemas import (
    ErrorBody,
    Health,
    InterfaceRule,
    ReportList,
    ReportsDeleted,
    ReportWritten,
    RuleList,
)
from appliance.config import ApiConfig
from appliance.model import Action, InterfaceRules, ListKind, Mode, SavRuleSet
from appliance.monitor import ManualClock, Monitor
from appliance.monitor.counters import CounterBoard
from appliance.monitor.metrics import Metrics
from appliance.state import StateStore

TOKEN = "t0ken-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RULES = SavRuleSet.of([
    InterfaceRules("r1", "eth1", ListKind.ALLOW, ("198.18.1.0/24",), Action(Mode.DROP), algorithm="intra",
                   provenance={"198.18.1.0/24": ("report:lan@r1:eth1",)}),
])
REPORT = {"router": "r1", "interface": "eth1", "prefix": "198.18.1.0/24", "multihomed": True}


class Rig:
    def __init__(self, token: str = TOKEN, read_required: bool = False) -> None:
        store, monitor, counters = StateStore(), Monitor(ManualClock(100.0)), CounterBoard()
        self.rules = RulesHolder()
        ports = ApiPorts(store, self.rules, RpkiStatusBoard(), PushedRules(store), monitor, counters,
                         Metrics(monitor, counters))
        self.client = TestClient(create_app(ports, ApiConfig(token=token, read_token_required=read_required)))


def make_rig(token: str = TOKEN, read_required: bool = False) -> Rig:
    return Rig(token, read_required)


def _spec(read_required: bool = False) -> dict[str, Any]:
    return make_rig(read_required=read_required).client.get("/openapi.json").json()  # type: ignore[no-any-return]


def _operations(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(method.upper(), path): op for path, item in spec["paths"].items() for method, op in item.items()}


def test_bearer_scheme_declared_and_required_by_every_write() -> None:
    spec = _spec()
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer",
        "description": "the [api] token of savd.toml (or $SAVD_API_TOKEN)"}
    writes = {k: op for k, op in _operations(spec).items() if k[0] in ("POST", "DELETE", "PUT", "PATCH")}
    assert set(writes) == {("POST", "/api/v1/reports"), ("DELETE", "/api/v1/reports"),
                           ("POST", "/api/v1/alarms/ack"), ("POST", "/api/v1/alarms/clear"),
                           *STEERING_WRITES}
    for key, op in writes.items():
        assert op["security"] == [{"bearer": []}], key
        assert {"401", "403", "422", "507"} <= set(op["responses"]), key


def test_reads_need_the_scheme_only_when_read_tokens_are_required() -> None:
    open_reads = _operations(_spec())[("GET", "/api/v1/rules")]
    assert "security" not in open_reads and "401" not in open_reads["responses"]
    closed = _operations(_spec(read_required=True))[("GET", "/api/v1/rules")]
    assert closed["security"] == [{"bearer": []}] and "401" in closed["responses"]


def test_error_statuses_as_the_routes_answer_them() -> None:
    ops = _operations(_spec())
    assert {"404", "409"} <= set(ops[("DELETE", "/api/v1/reports")]["responses"])
    assert "404" in ops[("GET", "/api/v1/rules/{router}/{interface}")]["responses"]
    assert "404" in ops[("GET", "/api/v1/flowspec/{peer}")]["responses"]
    body = ops[("POST", "/api/v1/reports")]["responses"]["422"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/ErrorBody"}


def test_every_error_answer_is_the_one_error_body_and_fastapis_422_is_gone() -> None:
    """FastAPI's HTTPValidationError 422 was listed on every route with parameters; savd never sends it."""
    for read_required in (False, True):
        spec = _spec(read_required)
        assert not {"HTTPValidationError", "ValidationError"} & set(spec["components"]["schemas"])
        for key, op in _operations(spec).items():
            for code, response in op["responses"].items():
                if code[0] in "45":
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (key, code)
    with_422 = {k for k, op in _operations(_spec()).items() if "422" in op["responses"]}
    assert with_422 == {("POST", "/api/v1/reports"), ("DELETE", "/api/v1/reports"),
                        ("POST", "/api/v1/alarms/ack"), ("POST", "/api/v1/alarms/clear"),
                        ("GET", "/api/v1/explain"), ("GET", "/api/v1/trace"), ("GET", "/api/v1/events"),
                        ("GET", "/api/v1/events/stream"), ("GET", "/api/v1/traces"), *STEERING_WRITES}


STEERING_WRITES = {("POST", "/api/v1/inspectors"), ("POST", "/api/v1/inspectors/{name}/load"),
                   ("DELETE", "/api/v1/inspectors/{name}"), ("POST", "/api/v1/suspects"),
                   ("DELETE", "/api/v1/suspects"), ("POST", "/api/v1/collaboration/{peer}/end"),
                   ("POST", "/api/v1/collaboration/{peer}/allow")}
#: routes whose success is 201 (a new record)
CREATED = {("POST", "/api/v1/reports"), ("POST", "/api/v1/inspectors"), ("POST", "/api/v1/suspects")}

MODELS = {
    ("GET", "/health"): "Health", ("GET", "/api/v1/reports"): "ReportList",
    ("POST", "/api/v1/reports"): "ReportWritten", ("DELETE", "/api/v1/reports"): "ReportsDeleted",
    ("GET", "/api/v1/rules"): "RuleList", ("GET", "/api/v1/rules/{router}/{interface}"): "InterfaceRule",
    ("GET", "/api/v1/topology"): "Topology", ("GET", "/api/v1/explain"): "Explained",
    ("GET", "/api/v1/trace"): "Trace", ("GET", "/api/v1/rpki"): "RpkiStatus",
    ("GET", "/api/v1/flowspec"): "FlowSpecPeers", ("GET", "/api/v1/flowspec/{peer}"): "HeldRules",
    ("GET", "/api/v1/counters"): "Counters", ("GET", "/api/v1/events"): "Events",
    ("GET", "/api/v1/alarms"): "Alarms", ("GET", "/api/v1/traces"): "SpoofTraces",
    ("POST", "/api/v1/alarms/ack"): "AlarmAcked", ("POST", "/api/v1/alarms/clear"): "AlarmCleared",
    ("GET", "/api/v1/inspectors"): "InspectorList", ("POST", "/api/v1/inspectors"): "InspectorWritten",
    ("POST", "/api/v1/inspectors/{name}/load"): "InspectorWritten",
    ("DELETE", "/api/v1/inspectors/{name}"): "InspectorDeleted",
    ("GET", "/api/v1/suspects"): "SuspectList", ("POST", "/api/v1/suspects"): "SuspectWritten",
    ("DELETE", "/api/v1/suspects"): "SuspectsDeleted",
    ("GET", "/api/v1/collaboration"): "Collaboration",
    ("POST", "/api/v1/collaboration/{peer}/end"): "CollabEnded",
    ("POST", "/api/v1/collaboration/{peer}/allow"): "CollabAllowed",
}


def test_every_json_route_has_its_named_model() -> None:
    """test_api_schemas.py checks the models are typed all the way down and match the real answers."""
    ops = _operations(_spec())
    assert set(ops) - set(MODELS) == {("GET", "/metrics"), ("GET", "/api/v1/events/stream")}
    metrics = ops[("GET", "/metrics")]["responses"]["200"]["content"]
    assert metrics == {"text/plain": {"schema": {"type": "string"}}}
    stream = ops[("GET", "/api/v1/events/stream")]["responses"]["200"]["content"]
    assert stream == {"text/event-stream": {"schema": {"type": "string"}}}
    for key, model in MODELS.items():
        ok = "201" if key in CREATED else "200"
        schema = ops[key]["responses"][ok]["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{model}"}, key


def _valid(model: type[BaseModel], body: Any) -> BaseModel:
    return model.model_validate(body, strict=False)


def test_live_answers_validate_against_their_models() -> None:
    rig = make_rig()
    rig.rules.publish(7, RULES)
    c = rig.client
    health = c.get("/health").json()
    assert _valid(Health, health) and "degraded" not in health  # absent while ok, as before
    written = c.post("/api/v1/reports", json=REPORT, headers=AUTH)
    assert written.status_code == 201 and _valid(ReportWritten, written.json())
    assert written.json()["report"]["flags"]["multihomed"] is True
    listed = _valid(ReportList, c.get("/api/v1/reports").json())
    assert isinstance(listed, ReportList) and listed.reports[0].sources == ["api"]
    rules = c.get("/api/v1/rules").json()
    assert _valid(RuleList, rules) and "provenance" in rules["rules"][0]  # extra fields still served
    assert _valid(InterfaceRule, c.get("/api/v1/rules/r1/eth1").json())
    deleted = c.delete("/api/v1/reports", params={k: REPORT[k] for k in ("router", "interface", "prefix")},
                       headers=AUTH)
    assert deleted.status_code == 200 and _valid(ReportsDeleted, deleted.json())


def test_error_answers_validate_against_the_error_body() -> None:
    c = make_rig().client
    missing = {"router": "r1", "interface": "eth1", "prefix": "198.18.9.0/24"}
    for response, code in ((c.post("/api/v1/reports", json=REPORT), 401),
                           (c.post("/api/v1/reports", json={**REPORT, "x": 1}, headers=AUTH), 422),
                           (c.get("/api/v1/rules/r9/eth9"), 404),
                           (c.delete("/api/v1/reports", params=missing, headers=AUTH), 404)):
        assert response.status_code == code
        assert _valid(ErrorBody, response.json())
    assert make_rig(token="").client.post("/api/v1/reports", json=REPORT).status_code == 403
