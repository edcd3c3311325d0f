"""Prometheus families beyond events and enforcer counters (issue 14): build info, the API's own requests,
FlowSpec push failures per router and peer, rules held per peer, and the RTR caches."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from appliance.api.memory import RpkiStatusBoard
from appliance.daemon import RTR_GAUGES, _rtr_gauge
from appliance.model import Event, Severity
from appliance.state import StateStore
from appliance.state.journal import Journal
from tests.unit.daemon.test_api import AUTH, CACHE, REPORT, make_rig


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_api_requests_are_counted_by_route_template_including_refusals() -> None:
    rig = make_rig()
    assert rig.client.get("/api/v1/rules/r1/eth1").status_code == 404
    assert rig.client.post("/api/v1/reports", json=REPORT).status_code == 401  # refused before the route
    assert rig.client.post("/api/v1/reports", json=REPORT, headers=AUTH).status_code == 201
    assert rig.client.get("/no/such/thing").status_code == 404
    got = samples(rig.client.get("/metrics").content)
    route = "/api/v1/rules/{router}/{interface:path}"
    assert got[("savd_http_requests_total", (("method", "GET"), ("route", route), ("status", "404")))] == 1
    assert got[("savd_http_requests_total",
                (("method", "POST"), ("route", "/api/v1/reports"), ("status", "401")))] == 1
    assert got[("savd_http_requests_total",
                (("method", "POST"), ("route", "/api/v1/reports"), ("status", "201")))] == 1
    assert got[("savd_http_requests_total",
                (("method", "GET"), ("route", "unmatched"), ("status", "404")))] == 1
    assert not any("/no/such" in v or "r1/eth1" in v for _, labels in got for _, v in labels)
    assert got[("savd_http_request_duration_seconds_total",
                (("method", "POST"), ("route", "/api/v1/reports")))] > 0


def test_build_info_and_push_failures_per_router_and_peer() -> None:
    rig = make_rig()
    for _ in range(2):
        rig.ports.monitor.publish(Event(0.0, "flowspec", "flowspec.push-failed", Severity.ERROR, "boom",
                                        {"router": "r2", "peer": "198.18.0.2"}, True))
    got = samples(rig.client.get("/metrics").content)
    assert got[("savd_flowspec_push_failures_total", (("peer", "198.18.0.2"), ("router", "r2")))] == 2
    (info,) = [labels for name, labels in got if name == "savd_build_info"]
    assert dict(info)["version"] == "0.1.0"


def test_rtr_gauges_read_the_cache_status() -> None:
    board = RpkiStatusBoard()
    board.add_caches(lambda: [CACHE])
    values = {name: _rtr_gauge(board, field) for name, _, field in RTR_GAUGES}
    assert values["savd_rtr_cache_in_sync"] == {("stayrtr",): 1.0}
    assert values["savd_rtr_cache_serial"] == {("stayrtr",): float(CACHE.serial or 0)}
    assert values["savd_rtr_cache_vrps"] == {("stayrtr",): float(CACHE.vrps)}


def test_rules_held_per_peer_are_counted_in_the_journal_and_in_memory(tmp_path: Path) -> None:
    held = {"a": "rule-a", "b": "rule-b"}
    with Journal.open(tmp_path) as journal:
        store = StateStore.restore(journal)
        store.record_push("198.18.0.2", held, [])
        assert store.pushed_counts() == {"198.18.0.2": 2}
    memory = StateStore()
    memory.record_push("198.18.0.3", held, [])
    assert memory.pushed_counts() == {"198.18.0.3": 2}
