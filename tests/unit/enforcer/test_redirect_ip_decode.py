"""Redirect-to-IP as ExaBGP 5.0.15 prints it (both drafts, IPv4 and IPv6; corpus recorded from two
ExaBGP instances on loopback) decoded into RouteAction.redirect_ip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appliance.enforcer.route import ActionKind, Route, decode_route
from appliance.enforcer.table import RouteTable
from appliance.speakers.exabgp import UpdateReceived, parse_api_line

CORPUS = Path(__file__).parent / "corpus" / "exabgp-5.0.15-redirect-ip.jsonl"


def corpus_routes() -> dict[str, Route]:
    table = RouteTable()
    for line in CORPUS.read_text().splitlines():
        event = parse_api_line(line)
        assert isinstance(event, UpdateReceived)
        result = table.apply_update(event.neighbor, event.attribute, event.announce, event.withdraw)
        assert result.problems == ()
    return {r.source.prefix: r for r in table.routes() if r.source}


def v4(prefix: str, attrs: dict[str, Any], **extra: Any) -> Route:
    return decode_route("ipv4 flow", {"source-ipv4": [prefix], **extra}, attrs)


def test_exabgp_redirect_to_ip_forms_decode_to_their_target() -> None:
    routes = corpus_routes()
    got = {p: (r.action.redirect_ip, r.action.redirect_copy, r.action.kind) for p, r in routes.items()}
    assert got == {
        "198.18.1.0/24": ("198.18.7.7", False, ActionKind.ACCEPT),         # Simpson: the NLRI next hop
        "198.18.2.0/24": ("198.18.9.9", False, ActionKind.ACCEPT),         # IETF 0x010c
        "2001:db8:1::/48": ("2001:db8:99::9", False, ActionKind.ACCEPT),   # IETF IPv6 (attribute 25)
        "2001:db8:2::/48": ("2001:db8:77::7", False, ActionKind.ACCEPT),   # Simpson IPv6
    }
    assert routes["198.18.1.0/24"].action.describe() == "accept redirect-to-ip 198.18.7.7"


def test_next_hop_is_not_part_of_the_route_identity() -> None:
    with_nh = decode_route("ipv4 flow", {"source-ipv4": ["198.18.1.0/24"], "next-hop": "198.18.7.7"}, {})
    without = decode_route("ipv4 flow", {"source-ipv4": ["198.18.1.0/24"]}, {})
    assert with_nh.key == without.key   # a withdrawal (no next hop) removes it


def test_simpson_without_next_hop_has_no_usable_target() -> None:
    simpson = {"extended-community": [{"value": 0x0800000000000000}]}
    assert v4("198.18.1.0/24", simpson).action.redirect_ip == "no-next-hop"
    copy = v4("198.18.2.0/24", {"extended-community": [{"value": 0x010CC61209090001}]}).action
    assert (copy.redirect_ip, copy.redirect_copy) == ("198.18.9.9", True)


def test_ietf_wins_over_simpson_when_both_present() -> None:
    both = {"extended-community": [{"value": 0x0800000000000000}, {"value": 0x010CC61209090000}]}
    nlri = {"source-ipv4": ["198.18.1.0/24"], "next-hop": "198.18.7.7"}
    assert decode_route("ipv4 flow", nlri, both).action.redirect_ip == "198.18.9.9"
