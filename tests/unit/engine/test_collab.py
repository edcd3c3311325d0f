"""Collaboration allowances on the rules (engine/collab.py): mapping SavInfo addresses through the neighbour
table, allowlists gaining and blocklists losing the peer's prefixes, expiry."""

from __future__ import annotations

from appliance.engine.collab import Unmapped, live, map_allowances, with_collaboration
from appliance.model import CollabAllowance, InterfaceRules, ListKind, Neighbor, Relationship, SavRuleSet

C = Relationship.CUSTOMER
NEIGHBORS = (
    Neighbor("b1", "c1", 65001, C, "203.0.113.1"),
    Neighbor("b1", "c2", 65002, C, "203.0.113.5"),
    Neighbor("b2", "c2", 65002, C, "2001:db8:ff::5"),
)


def allowance(interface: str, prefix: str, expires_at: float = 1000.0, router: str = "b1") -> CollabAllowance:
    return CollabAllowance(router, interface, prefix, "as65002", 65002, "ca-1", expires_at)


def test_mapped_unknown_address_and_asn_mismatch() -> None:
    found, unmapped = map_allowances(
        NEIGHBORS, peer="as65002", peer_asn=65002, ca_id="ca-1",
        prefixes=("198.18.9.0/24", "2001:db8:9::/48"),
        arrives_from=("203.0.113.5", "2001:db8:ff:0::5", "203.0.113.1", "192.0.2.77", "not-an-ip"),
        expires_at=1000.0)
    assert {(a.router, a.interface, a.prefix) for a in found} == {
        ("b1", "c2", "198.18.9.0/24"), ("b1", "c2", "2001:db8:9::/48"),
        ("b2", "c2", "198.18.9.0/24"), ("b2", "c2", "2001:db8:9::/48")}
    assert all(a.peer == "as65002" and a.ca_id == "ca-1" and a.expires_at == 1000.0 for a in found)
    assert unmapped == (Unmapped("203.0.113.1", "asn-mismatch"), Unmapped("192.0.2.77", "no-neighbor"),
                        Unmapped("not-an-ip", "bad-address"))


def _rules(*rules: InterfaceRules) -> SavRuleSet:
    return SavRuleSet.of(rules)


def test_allowlist_gains_the_prefix_with_provenance() -> None:
    rules = _rules(InterfaceRules("b1", "c2", ListKind.ALLOW, ("198.18.2.0/24",), algorithm="efp-a",
                                  provenance={"198.18.2.0/24": ("path:c2:65002",)}))
    out = with_collaboration(rules, [allowance("c2", "198.18.9.0/24")], now=10.0)
    c2 = out.get("b1", "c2")
    assert c2 is not None and c2.prefixes == ("198.18.2.0/24", "198.18.9.0/24")
    assert c2.provenance["198.18.9.0/24"] == ("collab:ca-1@as65002",)
    assert c2.provenance["198.18.2.0/24"] == ("path:c2:65002",)


def test_blocklist_loses_the_prefix_exact_cidrs() -> None:
    rules = _rules(InterfaceRules("b1", "c2", ListKind.BLOCK, ("10.0.0.0/8", "198.18.0.0/16"),
                                  provenance={"198.18.0.0/16": ("igp:b1",), "10.0.0.0/8": ("igp:b9",)}))
    out = with_collaboration(rules, [allowance("c2", "198.18.9.0/24")], now=10.0)
    c2 = out.get("b1", "c2")
    assert c2 is not None and c2.kind is ListKind.BLOCK
    assert c2.prefixes == ("10.0.0.0/8", "198.18.0.0/21", "198.18.8.0/24", "198.18.10.0/23",
                           "198.18.12.0/22", "198.18.16.0/20", "198.18.32.0/19", "198.18.64.0/18",
                           "198.18.128.0/17")
    assert c2.provenance["10.0.0.0/8"] == ("igp:b9",)
    assert c2.provenance["198.18.8.0/24"] == ("cut-by-collab:ca-1@as65002:198.18.9.0/24", "igp:b1")


def test_blocked_prefix_inside_the_allowance_goes_whole() -> None:
    rules = _rules(InterfaceRules("b1", "c2", ListKind.BLOCK, ("198.18.9.128/25", "198.19.0.0/24")))
    c2 = with_collaboration(rules, [allowance("c2", "198.18.9.0/24")], now=10.0).get("b1", "c2")
    assert c2 is not None and c2.prefixes == ("198.19.0.0/24",)


def test_no_rule_empty_allowlist_other_interface_and_no_overlap_are_left_alone() -> None:
    rules = _rules(InterfaceRules("b1", "c1", ListKind.ALLOW, ()),  # empty: passes everything (fail open)
                   InterfaceRules("b1", "c3", ListKind.BLOCK, ("198.19.0.0/24",)))
    allowances = [allowance("c1", "198.18.9.0/24"), allowance("c3", "198.18.9.0/24"),
                  allowance("c9", "198.18.9.0/24")]
    assert with_collaboration(rules, allowances, now=10.0) is rules


def test_expired_allowances_count_for_nothing() -> None:
    rules = _rules(InterfaceRules("b1", "c2", ListKind.ALLOW, ("198.18.2.0/24",)))
    a = allowance("c2", "198.18.9.0/24", expires_at=100.0)
    assert live([a], 99.9) == (a,) and live([a], 100.0) == ()
    assert with_collaboration(rules, [a], now=100.0) is rules
    c2 = with_collaboration(rules, [a], now=50.0).get("b1", "c2")
    assert c2 is not None and "198.18.9.0/24" in c2.prefixes
