"""Issue 14: a spoofing alarm on an allowlist interface names the spoofed sources, not 0.0.0.0/0.

On sav-basic through `savd run` (test_run_sav_basic's appliance, reused) h1 sends spoofed packets from
two sources outside r1 eth1's allowlist: the catch-all discard drops them, its meter counts them per /24,
and the spoofing-seen events, the alarm and GET /api/v1/traces name those /24s with exactly the packets
sent, while the rule's own counter still counts them all under 0.0.0.0/0."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.demo import Appliance, wait_until
from appliance.lab.kit.flows import Flow, send_flow
from appliance.monitor.traces import parse_top_sources
from tests.lab.test_run_sav_basic import app  # noqa: F401 (the module's appliance fixture, reused)

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.timeout(300)]

ROUTER, IFACE = "r1", "eth1"
SENT = {"198.18.3.0/24": ("198.18.3.79", 7), "198.19.77.0/24": ("198.19.77.5", 4)}   # /24 -> source, packets


def caught(app: Appliance) -> dict[str, int]:  # noqa: F811
    """Total packets per spoofed-traffic rule of r1 eth1 (savd's counters)."""
    rows: list[dict[str, Any]] = app.get(f"/api/v1/counters?router={ROUTER}&interface={IFACE}")["counters"]
    return {r["source_prefix"]: r["total_packets"] for r in rows if r["spoofed"]}


def traced(app: Appliance) -> dict[str, int]:  # noqa: F811
    traces = app.get(f"/api/v1/traces?router={ROUTER}&interface={IFACE}&top=1000")["traces"]
    return {s["prefix"]: s["packets"] for t in traces for s in t["sources"]}


def events_after(app: Appliance, seq: int) -> list[dict[str, Any]]:  # noqa: F811
    doc = app.get(f"/api/v1/events?type=spoofing-seen&router={ROUTER}&interface={IFACE}&limit=1000")
    return [e for e in doc["events"] if e["seq"] > seq]


def rises(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def test_alarm_events_and_traces_name_the_spoofed_sources_of_a_catch_all(app: Appliance) -> None:  # noqa: F811
    wait_until("rules active", app.rules_active, 60)
    counted_before, traced_before = caught(app), traced(app)
    last = app.get("/api/v1/events?limit=1")["last_seq"]
    for source, n in SENT.values():
        flow = Flow(f"h1 spoofs {source} at access r1", "h1", source, "h2", "198.18.3.10", n, True)
        assert send_flow(app.lab, flow) == 0  # every spoofed packet dropped
    total = sum(n for _, n in SENT.values())
    want = {prefix: n for prefix, (_, n) in SENT.items()}

    counted = wait_until("r1 eth1's catch-all counting the drops",
                         lambda: (r := rises(counted_before, caught(app))) and sum(r.values()) >= total and r,
                         30, 1.0)
    assert counted == {"0.0.0.0/0": total}   # the rule's own counter: unchanged semantics

    def named() -> dict[str, int]:
        out: dict[str, int] = {}
        for e in events_after(app, last):
            for prefix, n, _ in parse_top_sources(e["fields"].get("top_sources", "")):
                out[prefix] = out.get(prefix, 0) + n
        return out

    assert wait_until("spoofing-seen events naming the sources", lambda: named() == want and named(), 30, 1.0)
    events = events_after(app, last)
    assert all(e["fields"]["source_prefix"] == "0.0.0.0/0" for e in events)
    assert any("top sources 198.18.3.0/24:" in e["message"] or "198.19.77.0/24:" in e["message"]
               for e in events), [e["message"] for e in events]
    alarms = app.get(f"/api/v1/alarms?type=spoofing-seen&router={ROUTER}&interface={IFACE}")["alarms"]
    alarm = next(a for a in alarms if a["fields"].get("source_prefix") == "0.0.0.0/0")
    assert {p for p, _, _ in parse_top_sources(alarm["fields"]["top_sources"])} <= set(want), alarm

    # traces: per actual source, nothing left under the catch-all's 0.0.0.0/0
    got = wait_until("r1 eth1 traced per source",
                     lambda: (r := rises(traced_before, traced(app))) and sum(r.values()) >= total and r,
                     30, 1.0)
    assert got == want, got

    # the enforcer's own document: the catch-all rule's top sources, absolute, per /24
    doc = app.get(f"/api/v1/counters?router={ROUTER}&interface={IFACE}")["counters"]
    row = next(r for r in doc if r["source_prefix"] == "0.0.0.0/0")
    tops = {t["source"]: t["packets"] for t in row["top_sources"]}
    assert all(tops.get(prefix, 0) >= n for prefix, n in want.items()), row
