"""Spoofing traces on sav-basic through `savd run` (the appliance of test_run_sav_basic.py, reused): spoofed
packets sent by a real host are dropped by the routers' enforcers, and GET /api/v1/traces names the router,
the interface, the upstream neighbour (the eBGP peer AS 65100 at border r4; the hosts at access r1) and the
rule's source prefix, with as many packets as the enforcer counted dropped, and as were sent."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from typing import Any

import pytest

from appliance.demo import Appliance, wait_until
from appliance.lab.kit.flows import Flow, send_flow
from tests.lab.test_run_sav_basic import app  # noqa: F401 (the module's appliance fixture, reused)

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.timeout(300)]

SENT = 13  # an odd count nothing else sends


def dropped(savd: Appliance, router: str, interface: str) -> dict[str, int]:
    """Total packets per spoofed-traffic rule on one interface, as the enforcer counted them."""
    doc = savd.get(f"/api/v1/counters?router={router}&interface={interface}")
    rows: list[dict[str, Any]] = doc["counters"]
    return {r["source_prefix"]: r["total_packets"] for r in rows if r["spoofed"]}


def traced(savd: Appliance, router: str, interface: str) -> tuple[dict[str, int], list[dict[str, Any]]]:
    doc = savd.get(f"/api/v1/traces?router={router}&interface={interface}&top=1000")
    traces = doc["traces"]
    assert len(traces) <= 1
    if not traces:
        return {}, []
    return {s["prefix"]: s["packets"] for s in traces[0]["sources"]}, traces[0]["upstream"]


def rises(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


@pytest.mark.parametrize("router, interface, flow, upstream", [
    ("r4", "eth2", Flow("Internet spoofs an internal source at border r4", "inet", "198.18.1.79", "h2",
                        "198.18.3.10", SENT, True),
     {"kind": "external", "asn": 65100, "relationship": "provider"}),
    ("r1", "eth1", Flow("h1 spoofs h2's prefix at access r1", "h1", "198.18.3.79", "h2", "198.18.3.10",
                        SENT, True),
     {"kind": "access", "router": "", "asn": None}),
], ids=["border-r4-ebgp", "access-r1"])
def test_spoofed_packets_are_traced_to_router_interface_upstream_and_source(
        app: Appliance, router: str, interface: str, flow: Flow, upstream: dict[str, Any]) -> None:  # noqa: F811
    wait_until("rules active", app.rules_active, 60)
    counted_before = dropped(app, router, interface)
    traced_before, _ = traced(app, router, interface)
    assert send_flow(app.lab, flow) == 0  # every spoofed packet dropped

    counted: dict[str, int] = wait_until(
        f"{router} {interface}'s enforcer counting {SENT} drops",
        lambda: (r := rises(counted_before, dropped(app, router, interface)))
        and sum(r.values()) >= SENT and r,
        30, 1.0)
    assert sum(counted.values()) == SENT, counted  # counted: exactly the packets sent
    ((prefix, n),) = counted.items()             # by one rule: its source prefix is the trace's
    # ... or, for a catch-all (0.0.0.0/0), the actual source its enforcer saw, aggregated to /24
    where = str(ipaddress.ip_network(f"{flow.source}/24", strict=False)) if prefix == "0.0.0.0/0" else prefix
    sources, ups = wait_until(
        f"{router} {interface} traced", lambda: (t := traced(app, router, interface))
        and rises(traced_before, t[0]) == {where: n} and t, 30, 1.0)
    assert rises(traced_before, sources) == {where: n}
    assert [{k: u[k] for k in upstream} for u in ups] == [upstream], ups

    # the rule that counted them is the one savd explains as stopping that source there
    why = app.get(f"/api/v1/explain?router={router}&interface={interface}&source={flow.source}")
    assert why["verdict"] != "pass" and prefix in why["flowspec_rule"], why

    table = subprocess.run([sys.executable, "-m", "appliance.cli", "api", "--url", app.api, "--token",
                            app.token, "traces", "--router", router, "--interface", interface],
                           capture_output=True, text=True, timeout=30, check=True).stdout
    first = table.splitlines()[0]
    assert first.startswith(f"{router} {interface}  from ")
    assert ("AS65100" in first) if upstream["kind"] == "external" else ("hosts" in first), table
    assert where in table
