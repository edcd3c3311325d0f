"""The node's actions beyond accept/discard: rate-limit, monitor (sample -> NFLOG),
redirect-to-IP (planning, rendering), steering.py with `ip` faked (decoding: test_redirect_ip_decode)."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from appliance.enforcer.nftplan import PlanOptions, build_plan, counters_from_listing, render_full
from appliance.enforcer.route import Route, decode_route
from appliance.enforcer.steering import (
    MARK_BASE,
    RULE_PRIORITY,
    TABLE_BASE,
    Hop,
    Steering,
    SteerSpec,
    allocate,
    commands,
    hop_from_route_get,
)

RATE_PKTS_500 = {"extended-community": [{"value": 0x800C000043FA0000, "string": "rate-limit-packets:500"}]}
RATE_1000 = {"extended-community": [{"value": 0x80060000447A0000, "string": "rate-limit:1000"}]}
SAMPLE = {"extended-community": [{"value": 0x8007000000000002, "string": "action sample"}]}
IETF_V4 = {"extended-community": [{"value": 0x010CC61209090000}]}   # redirect-to-nexthop-ietf 198.18.9.9


def v4(prefix: str, attrs: dict[str, Any], **extra: Any) -> Route:
    return decode_route("ipv4 flow", {"source-ipv4": [prefix], **extra}, attrs)


def test_simpson_without_next_hop_and_copy_bit_degrade() -> None:
    simpson = {"extended-community": [{"value": 0x0800000000000000}]}
    assert v4("198.18.1.0/24", simpson).action.redirect_ip == "no-next-hop"
    copy = {"extended-community": [{"value": 0x010CC61209090001}]}
    plan = build_plan([v4("198.18.1.0/24", simpson), v4("198.18.2.0/24", copy)], {}, marks={"198.18.9.9": 1})
    reasons = {s.source: (s.state, s.reason) for s in plan.statuses}
    assert reasons["198.18.1.0/24"][0] == "degraded" and "no-next-hop" in reasons["198.18.1.0/24"][1]
    assert reasons["198.18.2.0/24"][0] == "degraded" and "copy-to-ip" in reasons["198.18.2.0/24"][1]
    assert "mark set" not in render_full(plan)


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


def test_rate_limit_with_redirect_marks_the_conforming_part() -> None:
    attrs = {"extended-community": RATE_1000["extended-community"] + IETF_V4["extended-community"]}
    rules = dict(build_plan([v4("198.18.1.0/24", attrs)], {}, marks={"198.18.9.9": MARK_BASE | 1}).chains)
    drop, forward = rules["c_any"]
    assert "limit rate over 1000 bytes/second" in drop and drop.endswith(" drop")
    assert forward.endswith("meta mark set 0x5a0001 accept")


def test_sample_is_counted_only_unless_a_log_group_is_given() -> None:
    routes = [v4(f"198.18.{i}.0/24", SAMPLE) for i in range(5)]
    assert "log" not in render_full(build_plan(routes, {}))
    plan = build_plan(routes, {}, PlanOptions(sample_group=5))
    rules = dict(plan.chains)["c_any"]
    assert plan.sets == () and len(rules) == 10   # a logged route keeps its own rules, out of sets
    want = f'ip saddr 198.18.0.0/24 limit rate 10/second log prefix "savd {routes[0].rid} " group 5'
    assert rules[0] == want
    assert rules[1].startswith("ip saddr 198.18.0.0/24 counter name") and rules[1].endswith("accept")


def test_redirect_to_reachable_ip_marks_and_accepts_and_shares_sets() -> None:
    routes = [v4(f"198.18.{i}.0/24", IETF_V4) for i in range(4)]
    plan = build_plan(routes, {}, PlanOptions(set_min=4), marks={"198.18.9.9": MARK_BASE | 3})
    assert {s.state for s in plan.statuses} == {"installed"}
    (rule,) = dict(plan.chains)["c_any"]
    assert rule.endswith("meta mark set 0x5a0003 accept") and len(plan.sets) == 1


def test_redirect_to_unreachable_ip_is_forwarded_and_counted() -> None:
    plan = build_plan([v4("198.18.1.0/24", IETF_V4)], {})
    (status,) = plan.statuses
    assert status.state == "degraded" and "198.18.9.9 not reachable" in status.reason
    (rule,) = dict(plan.chains)["c_any"]
    assert rule.endswith(" accept") and "mark" not in rule


def test_discard_with_redirect_still_drops() -> None:
    attrs = {"extended-community": [{"value": 0x8006000000000000}, *IETF_V4["extended-community"]]}
    (rule,) = dict(build_plan([v4("198.18.1.0/24", attrs)], {}, marks={"198.18.9.9": 1}).chains)["c_any"]
    assert rule.endswith(" drop") and "mark" not in rule


# --- steering (pure) -------------------------------------------------------------------------------------


def test_allocate_keeps_indices_and_fills_the_lowest_free() -> None:
    first = allocate(["198.18.9.9", "198.18.7.7"], {})
    assert first == {"198.18.7.7": 1, "198.18.9.9": 2}
    assert allocate(["198.18.9.9", "198.18.5.5"], first) == {"198.18.9.9": 2, "198.18.5.5": 1}


def test_hop_from_route_get() -> None:
    connected = [{"dst": "198.18.9.9", "dev": "eth2"}]
    assert hop_from_route_get("198.18.9.9", connected) == Hop("198.18.9.9", "eth2")
    via = [{"dst": "198.18.9.9", "gateway": "198.18.3.1", "dev": "eth1"}]
    assert hop_from_route_get("198.18.9.9", via) == Hop("198.18.3.1", "eth1")
    assert hop_from_route_get("198.18.9.9", [{"type": "local", "dev": "lo"}]) is None
    assert hop_from_route_get("198.18.9.9", "garbage") is None


def test_commands_add_routes_before_rules_and_remove_rules_first() -> None:
    spec = SteerSpec("2001:db8::9", 2, Hop("2001:db8::9", "eth2"))
    table, mark = str(TABLE_BASE + 2), f"{MARK_BASE | 2:#x}"
    add = commands({}, {"2001:db8::9": spec})
    assert add == [
        ["ip", "-6", "route", "replace", "default", "via", "2001:db8::9", "dev", "eth2", "table", table],
        ["ip", "-6", "rule", "add", "fwmark", mark, "lookup", table, "priority", str(RULE_PRIORITY)],
    ]
    assert commands({"2001:db8::9": spec}, {"2001:db8::9": spec}) == []
    assert [c[3] for c in commands({"2001:db8::9": spec}, {})] == ["del", "flush"]


class FakeIp:
    """`ip` stand-in: `route get` answers from `hops`, a command containing `fail` fails."""

    def __init__(self, hops: dict[str, str], fail: str = "") -> None:
        self.hops, self.fail, self.calls = hops, fail, []  # type: list[list[str]]

    def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(argv))
        if argv[1:4] == ["-j", "route", "get"]:
            dev = self.hops.get(argv[4])
            out = f'[{{"dst": "{argv[4]}", "dev": "{dev}"}}]' if dev else ""
            return subprocess.CompletedProcess(argv, 0 if dev else 2, out, "")
        return subprocess.CompletedProcess(argv, 1 if self.fail and self.fail in argv else 0, "", "")


def test_sync_installs_usable_targets_and_removes_them_at_close() -> None:
    fake = FakeIp({"198.18.9.9": "eth2"})
    steering = Steering(runner=fake)
    assert steering.sync(["198.18.9.9", "198.18.7.7", "no-next-hop"]) == {"198.18.9.9": MARK_BASE | 1}
    steering.close()
    assert fake.calls[-2][3:4] == ["del"] and steering.installed == {}


def test_sync_drops_a_target_whose_route_cannot_be_installed() -> None:
    fake = FakeIp({"198.18.9.9": "eth2"}, fail="replace")
    steering = Steering(runner=fake)
    assert steering.sync(["198.18.9.9"]) == {}
    assert ["del", "flush"] == [c[3] for c in fake.calls[-2:]]   # its rule taken out again


def test_service_steers_before_marking_and_unsteers_after_withdrawal(tmp_path: Path) -> None:
    """The service syncs policy routing before planning (marks only for installed targets), re-plans
    when the usable targets change, and removes the policy routing when the last route goes."""
    from appliance.enforcer.service import EnforcerOptions, EnforcerService
    from tests.unit.enforcer.test_service import MockNft

    svc = EnforcerService(EnforcerOptions(node="r1", asn=65000, frr_address="198.18.254.1",
                                          exa_address="198.18.254.2", workdir=tmp_path))
    nft, fake = MockNft(), FakeIp({"198.18.9.9": "eth2"})
    svc.nft = nft  # type: ignore[assignment]
    svc.steering = Steering(runner=fake)
    announce = {"ipv4 flow": {"no-nexthop": [{"source-ipv4": ["198.18.1.0/24"]}]}}
    svc.table.apply_update("198.18.254.1", IETF_V4, announce, {})
    asyncio.run(svc.apply_now())
    assert nft.applied is not None
    assert dict(nft.applied.chains)["c_any"][0].endswith(f"meta mark set {MARK_BASE | 1:#x} accept")
    assert [c[3] for c in fake.calls if c[1] != "-j"] == ["replace", "add"]   # route, then rule
    svc.table.apply_update("198.18.254.1", {}, {}, {"ipv4 flow": [{"source-ipv4": ["198.18.1.0/24"]}]})
    asyncio.run(svc.apply_now())
    assert nft.applied.empty and svc.steering.installed == {} and fake.calls[-2][3] == "del"


RT_V6 = {"extended-community": [{"value": 0x8008FDE800001267}]}    # rt-redirect 65000:4711


def test_service_steers_an_rt_redirect_by_the_node_files_route_target(tmp_path: Path) -> None:
    """IPv6 steering through FRR 8.4.4 (engine/steering.py): an rt-redirect whose route target savd's node
    file maps to an inspector is marked and policy-routed like a redirect-to-IP; unmapped, or after the
    file drops the target, it is forwarded and counted (degraded, fail open)."""
    import json
    import os

    from appliance.enforcer.service import EnforcerOptions, EnforcerService
    from tests.unit.enforcer.test_service import MockNft

    node_file = tmp_path / "r1.json"
    node_file.write_text(json.dumps({"groups": [], "redirects": {}}))
    svc = EnforcerService(EnforcerOptions(node="r1", asn=65000, frr_address="198.18.254.1",
                                          exa_address="198.18.254.2", workdir=tmp_path, group_file=node_file))
    nft, fake = MockNft(), FakeIp({"2001:db8:80::2": "eth3"})
    svc.nft = nft  # type: ignore[assignment]
    svc.steering = Steering(runner=fake)
    announce = {"ipv6 flow": {"no-nexthop": [{"source-ipv6": ["2001:db8:101:1::10/128/0"]}]}}
    svc.table.apply_update("198.18.254.1", RT_V6, announce, {})

    def apply(redirects: dict[str, str], stamp: int) -> tuple[str, str, str]:
        node_file.write_text(json.dumps({"groups": [], "redirects": redirects}))
        os.utime(node_file, (stamp, stamp))
        svc._reload_groups()
        asyncio.run(svc.apply_now())
        assert nft.applied is not None
        (status,) = nft.applied.statuses
        return status.state, status.reason, dict(nft.applied.chains)["c_any"][0]

    state, reason, rule = apply({}, 1000)
    assert state == "degraded" and "route target 65000:4711" in reason and "mark" not in rule
    state, reason, rule = apply({"65000:4711": "2001:db8:80::2"}, 1001)
    assert state == "installed" and rule.endswith(f"meta mark set {MARK_BASE | 1:#x} accept"), rule
    assert ["-6", "route", "replace"] == next(c for c in fake.calls if "replace" in c)[1:4]
    state, reason, rule = apply({}, 1002)
    assert state == "degraded" and "mark" not in rule and svc.steering.installed == {}
