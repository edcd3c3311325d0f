"""`savd api`: each command maps to the API request it stands for (CLI parity, table-driven)."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.api.cli import request_for
from appliance.cli import build_parser

CASES: list[tuple[list[str], tuple[str, str, dict[str, Any], Any]]] = [
    (["health"], ("GET", "/health", {}, None)),
    (["topology"], ("GET", "/api/v1/topology", {}, None)),
    (["rpki"], ("GET", "/api/v1/rpki", {}, None)),
    (["alarms", "--type", "bgp-session"], ("GET", "/api/v1/alarms", {"type": "bgp-session"}, None)),
    (["counters", "--router", "r1"], ("GET", "/api/v1/counters", {"router": "r1"}, None)),
    (["events", "--since", "5", "--type", "a", "--type", "b", "--alarms-only"],
     ("GET", "/api/v1/events", {"since": 5, "limit": 100, "type": ["a", "b"], "severity": "debug",
                                "alarms_only": "true"}, None)),
    (["reports", "list"], ("GET", "/api/v1/reports", {}, None)),
    (["reports", "add", "r1", "eth1", "198.18.1.0/24", "--anycast"],
     ("POST", "/api/v1/reports", {}, {"router": "r1", "interface": "eth1", "prefix": "198.18.1.0/24",
                                      "subnet": "", "anycast": True, "special": False, "multihomed": False})),
    (["reports", "delete", "r1", "eth1", "198.18.1.0/24"],
     ("DELETE", "/api/v1/reports", {"router": "r1", "interface": "eth1", "prefix": "198.18.1.0/24"}, None)),
    (["rules"], ("GET", "/api/v1/rules", {}, None)),
    (["rules", "r1"], ("GET", "/api/v1/rules", {"router": "r1"}, None)),
    (["rules", "r1", "ge-0/0/1"], ("GET", "/api/v1/rules/r1/ge-0/0/1", {}, None)),
    (["explain", "r1", "eth1", "198.18.1.9"],
     ("GET", "/api/v1/explain", {"router": "r1", "interface": "eth1", "source": "198.18.1.9"}, None)),
    (["trace", "198.18.64.9"], ("GET", "/api/v1/trace", {"source": "198.18.64.9"}, None)),
    (["trace", "198.18.64.9", "--router", "r4"],
     ("GET", "/api/v1/trace", {"source": "198.18.64.9", "router": "r4"}, None)),
    (["flowspec"], ("GET", "/api/v1/flowspec", {}, None)),
    (["flowspec", "198.18.255.1"], ("GET", "/api/v1/flowspec/198.18.255.1", {}, None)),
    (["collaboration", "--end", "as2"], ("POST", "/api/v1/collaboration/as2/end", {}, None)),
    (["collaboration", "--allow", "as2"], ("POST", "/api/v1/collaboration/as2/allow", {}, None)),
    (["suspects", "list"], ("GET", "/api/v1/suspects", {}, None)),
    (["collaboration"], ("GET", "/api/v1/collaboration", {}, None)),
    (["suspects", "add", "198.18.1.7/32", "--reason", "ids"],
     ("POST", "/api/v1/suspects", {}, {"prefix": "198.18.1.7/32", "router": "", "reason": "ids"})),
    (["suspects", "delete", "198.18.1.7/32", "--router", "r1"],
     ("DELETE", "/api/v1/suspects", {"prefix": "198.18.1.7/32", "router": "r1"}, None)),
    (["inspectors", "list"], ("GET", "/api/v1/inspectors", {}, None)),
    (["inspectors", "add", "dpi-1", "198.18.80.2", "--capacity", "100"],
     ("POST", "/api/v1/inspectors", {}, {"name": "dpi-1", "address": "198.18.80.2", "capacity": 100.0})),
    (["inspectors", "load", "dpi-1", "42"], ("POST", "/api/v1/inspectors/dpi-1/load", {}, {"load": 42.0})),
    (["inspectors", "delete", "dpi-1"], ("DELETE", "/api/v1/inspectors/dpi-1", {}, None)),
]


@pytest.mark.parametrize("argv, expected", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_command_maps_to_request(argv: list[str], expected: tuple[str, str, dict[str, Any], Any]) -> None:
    args = build_parser().parse_args(["api", *argv])
    assert request_for(args) == expected
