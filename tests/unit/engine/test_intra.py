"""Intra-domain controller rules (draft section 5.1): border blocklists, subnet-union allowlists, modes,
partial deployment delivery."""

from __future__ import annotations

import ipaddress

from appliance.engine.intra import border_blocklist
from appliance.engine.policy import Algorithm, Policy
from appliance.engine.snapshot import Snapshot, compute
from appliance.model import (
    Action,
    Capability,
    Delivery,
    IgpPrefix,
    Interface,
    ListKind,
    Mode,
    Neighbor,
    PrefixFlags,
    PrefixReport,
    Relationship,
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


# --- issue 12 item 11: the border blocklist holds the AS's own infrastructure learned over BGP-LS ---------

IGP = (
    IgpPrefix("r1", "198.18.255.1/32"),                    # r1's loopback
    IgpPrefix("r1", "198.18.10.0/30"),                     # r1-r3 link: both ends advertise it
    IgpPrefix("r3", "198.18.10.0/30"),
    IgpPrefix("r3", "198.18.20.0/24"),                     # the appliance's LAN
    IgpPrefix("r1", "198.18.250.1/32"),                    # an anycast loopback on r1 and r3
    IgpPrefix("r3", "198.18.250.1/32"),
    IgpPrefix("b1", "198.19.0.0/16", external=True),       # the Internet, redistributed from BGP
    IgpPrefix("b1", "0.0.0.0/0", external=True),
    IgpPrefix("b1", "::/0"),
    IgpPrefix("b1", "198.18.30.0/30"),                     # b1's eBGP link, a passive IGP interface
    IgpPrefix("r1", "2001:db8:0:ffff::1/128"),
)
LINK_IFACES = (
    Interface("r1", "eth2", ("198.18.10.1/30",)),
    Interface("r3", "eth1", ("198.18.10.2/30",)),
)


def test_border_blocklist_adds_igp_prefixes_minus_external_anycast_and_shared_space() -> None:
    interfaces = (*LINK_IFACES, Interface("b1", "ext0", ("198.18.30.1/30",), external=True))
    neighbors = (Neighbor("b1", "ext0", 65100, Relationship.PROVIDER, "198.18.30.2"),)
    got = border_blocklist([PrefixReport("r1", "eth1", "198.18.1.0/24", "s1")], IGP, interfaces, neighbors)
    assert sorted(got) == ["198.18.1.0/24", "198.18.10.0/30", "198.18.20.0/24", "198.18.255.1/32",
                           "2001:db8:0:ffff::1/128"]
    assert got["198.18.10.0/30"] == ("igp:198.18.10.0/30@r1", "igp:198.18.10.0/30@r3")
    assert got["198.18.1.0/24"] == ("report:s1@r1:eth1",)


def test_an_external_link_subnet_is_never_blocked_and_an_aggregate_loses_the_address_only() -> None:
    """The eBGP neighbour's BGP packets come from its address on the external link: blocking the link's
    subnet at that very interface would take the session down."""
    neighbors = (Neighbor("b1", "ext0", 65100, Relationship.PROVIDER, "198.18.30.2"),)
    ext_v6 = (Interface("b1", "ext0", ("2001:db8:0:30::1/128",), external=True),)  # length unknown
    igp = [IgpPrefix("b1", "198.18.30.0/30"), IgpPrefix("b1", "2001:db8:0:30::/64"),
           IgpPrefix("b1", "198.18.0.0/16"), IgpPrefix("b1", "2001:db8::/48")]
    got = border_blocklist([], igp, ext_v6, neighbors)
    assert "198.18.30.0/30" not in got and "2001:db8:0:30::/64" not in got
    assert not any(ipaddress.ip_network(p).overlaps(ipaddress.ip_network("198.18.30.0/30")) for p in got)
    assert not any(ipaddress.ip_network(p).overlaps(ipaddress.ip_network("2001:db8:0:30::/64")) for p in got)
    assert "198.18.31.0/24" in got  # the rest of the aggregate stays blocked
    assert got["198.18.31.0/24"] == ("igp:198.18.0.0/16@b1", "carved:198.18.30.0/30 shared")


def test_compute_blocks_router_loopbacks_and_the_appliance_lan_at_the_border() -> None:
    snap = _snap(igp_prefixes=IGP, interfaces=(*_snap().interfaces, *LINK_IFACES))
    ext = compute(snap).get("b1", "ext0")
    assert ext is not None and ext.kind is ListKind.BLOCK
    assert {"198.18.255.1/32", "198.18.20.0/24", "198.18.10.0/30"} <= set(ext.prefixes)
    assert not {"198.19.0.0/16", "198.18.250.1/32", "0.0.0.0/0", "::/0"} & set(ext.prefixes)
    assert ext.provenance["198.18.20.0/24"] == ("algorithm:intra:border-block", "igp:198.18.20.0/24@r3")
