"""Intra-domain controller rules (seeds/003 section 5.1): border blocklists, subnet-union allowlists, modes,
partial deployment delivery."""

from __future__ import annotations

from appliance.engine.intra import border_blocklist
from appliance.engine.policy import Algorithm, Policy
from appliance.engine.snapshot import Snapshot, compute
from appliance.model import (
    Action,
    Capability,
    Delivery,
    Interface,
    ListKind,
    Mode,
    PrefixFlags,
    PrefixReport,
    Role,
    Router,
)

ANY = PrefixFlags(anycast=True)


def _snap(**kw: object) -> Snapshot:
    routers = (
        Router("r1", role=Role.ACCESS),
        Router("r2", role=Role.ACCESS, capability=Capability.LEGACY),
        Router("b1", role=Role.BORDER),
    )
    reports = (
        PrefixReport("r1", "eth1", "198.18.0.0/24", "s1"),
        PrefixReport("r2", "eth1", "198.18.1.0/24", "s1"),
        PrefixReport("r2", "eth2", "2001:db8:1::/48", "s2"),
        PrefixReport("r1", "eth1", "198.18.9.0/24", "s1", ANY),
    )
    interfaces = (Interface("b1", "ext0", external=True), Interface("b1", "core0"))
    base = Snapshot(routers=routers, interfaces=interfaces, reports=reports)
    return base.replace(**kw)


def test_multihomed_subnet_union_and_acl_delivery() -> None:
    rules = compute(_snap())
    r1 = rules.get("r1", "eth1")
    r2 = rules.get("r2", "eth1")
    assert r1 is not None and r2 is not None
    assert r1.kind is ListKind.ALLOW and r2.kind is ListKind.ALLOW
    want = ("198.18.0.0/24", "198.18.1.0/24", "198.18.9.0/24")
    assert r1.prefixes == want and r2.prefixes == want
    assert r1.delivery is Delivery.FLOWSPEC and r2.delivery is Delivery.ACL
    assert "report:s1@r2:eth1" in r1.provenance["198.18.1.0/24"]
    only_s2 = rules.get("r2", "eth2")
    assert only_s2 is not None and only_s2.prefixes == ("2001:db8:1::/48",)


def test_border_blocklist_excludes_anycast_and_only_external() -> None:
    rules = compute(_snap())
    ext = rules.get("b1", "ext0")
    assert ext is not None and ext.kind is ListKind.BLOCK
    assert ext.prefixes == ("198.18.0.0/24", "198.18.1.0/24", "2001:db8:1::/48")
    assert rules.get("b1", "core0") is None


def test_nested_anycast_is_carved_out_of_blocklist() -> None:
    reports = [
        PrefixReport("r1", "eth1", "198.18.0.0/22", "s1"),
        PrefixReport("r3", "eth1", "198.18.2.0/24", "s3", ANY),
    ]
    got = border_blocklist(reports)
    assert sorted(got) == ["198.18.0.0/23", "198.18.3.0/24"]
    assert "carved:198.18.2.0/24 anycast/special" in got["198.18.3.0/24"]
    special = [PrefixReport("r1", "eth1", "198.18.0.0/24", "s1", PrefixFlags(special=True))]
    assert border_blocklist(special) == {}


def test_modes_interface_over_router_over_default() -> None:
    policy = Policy(
        default_action=Action(Mode.MONITOR),
        router_actions={"r1": Action(Mode.RATE_LIMIT, rate=1000.0)},
        interface_actions={("r2", "eth1"): Action(Mode.REDIRECT, redirect="65001:100")},
    )
    rules = compute(_snap(policy=policy))
    assert rules.get("r1", "eth1").action == Action(Mode.RATE_LIMIT, rate=1000.0)  # type: ignore[union-attr]
    assert rules.get("r2", "eth1").action.mode is Mode.REDIRECT  # type: ignore[union-attr]
    assert rules.get("r2", "eth2").action.mode is Mode.MONITOR  # type: ignore[union-attr]


def test_strict_and_loose_policies() -> None:
    policy = Policy(interface_algorithms={("r1", "eth1"): Algorithm.STRICT, ("b1", "ext0"): Algorithm.LOOSE})
    rules = compute(_snap(policy=policy))
    assert rules.get("r1", "eth1").prefixes == ("198.18.0.0/24",)  # type: ignore[union-attr]
    assert rules.get("b1", "ext0").prefixes == ()  # type: ignore[union-attr]
