"""The node's actions beyond accept/discard: rate-limit and monitor (sample -> NFLOG)."""

from __future__ import annotations

from typing import Any

from appliance.enforcer.nftplan import PlanOptions, build_plan, counters_from_listing, render_full
from appliance.enforcer.route import Route, decode_route

RATE_PKTS_500 = {"extended-community": [{"value": 0x800C000043FA0000, "string": "rate-limit-packets:500"}]}
RATE_1000 = {"extended-community": [{"value": 0x80060000447A0000, "string": "rate-limit:1000"}]}
SAMPLE = {"extended-community": [{"value": 0x8007000000000002, "string": "action sample"}]}


def v4(prefix: str, attrs: dict[str, Any], **extra: Any) -> Route:
    return decode_route("ipv4 flow", {"source-ipv4": [prefix], **extra}, attrs)


# --- planning and rendering -----------------------------------------------------------------------------


def test_rate_limit_packets_renders_its_own_limiter_and_counts_the_drop() -> None:
    routes = [v4(f"198.18.{i}.0/24", RATE_PKTS_500) for i in range(6)]   # never merged into a set
    plan = build_plan(routes, {})
    rules = dict(plan.chains)["c_any"]
    assert plan.sets == () and len(rules) == 12
    assert rules[0].startswith("ip saddr 198.18.0.0/24 limit rate over 500/second counter name")
    assert rules[0].endswith(" drop") and rules[1].endswith(" accept") and "limit" not in rules[1]
    drop_name, pass_name = (r.split('counter name "')[1].split('"')[0] for r in rules[:2])
    listing = {"nftables": [{"counter": {"name": drop_name, "packets": 7, "bytes": 700}},
                            {"counter": {"name": pass_name, "packets": 5, "bytes": 500}}]}
    counts = counters_from_listing(plan, listing)[f"{routes[0].rid}@*"]
    assert (counts.packets, counts.dropped_packets) == (12, 7)


def test_sample_is_counted_only_unless_a_log_group_is_given() -> None:
    routes = [v4(f"198.18.{i}.0/24", SAMPLE) for i in range(5)]
    assert "log" not in render_full(build_plan(routes, {}))
    plan = build_plan(routes, {}, PlanOptions(sample_group=5))
    rules = dict(plan.chains)["c_any"]
    assert plan.sets == () and len(rules) == 10   # a logged route keeps its own rules, out of sets
    want = f'ip saddr 198.18.0.0/24 limit rate 10/second log prefix "savd {routes[0].rid} " group 5'
    assert rules[0] == want
    assert rules[1].startswith("ip saddr 198.18.0.0/24 counter name") and rules[1].endswith("accept")


