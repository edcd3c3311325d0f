"""Decoding ExaBGP 5.0.15 FlowSpec JSON (recorded corpus) and RFC 8955 §5.1 precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.enforcer.route import ActionKind, RouteError, compare_routes, decode_route
from appliance.enforcer.table import RouteTable, sorted_routes
from appliance.speakers.exabgp import UpdateReceived, parse_api_line

CORPUS = Path(__file__).parent / "corpus" / "exabgp-5.0.15-flow-from-exabgp.jsonl"


def load_corpus() -> RouteTable:
    table = RouteTable()
    for line in CORPUS.read_text().splitlines():
        event = parse_api_line(line)
        if isinstance(event, UpdateReceived):
            result = table.apply_update(event.neighbor, event.attribute, event.announce, event.withdraw)
            assert result.problems == ()
    return table


def by_source(table: RouteTable) -> dict[str, object]:
    return {r.source.prefix if r.source else "-": r for r in table.routes()}


def test_corpus_actions_groups_and_withdraw() -> None:
    routes = by_source(load_corpus())
    # 198.18.1.0/24 was announced then withdrawn
    assert "198.18.1.0/24" not in routes
    r2 = routes["198.18.2.0/24"]
    assert r2.action.kind is ActionKind.DISCARD and r2.groups == (7,)  # type: ignore[attr-defined]
    r3 = routes["198.18.3.0/24"]
    assert r3.action.kind is ActionKind.RATE_BYTES and r3.action.rate == 1000.0  # type: ignore[attr-defined]
    assert r3.groups == (7, 9)  # type: ignore[attr-defined]
    assert routes["198.18.4.0/24"].action.kind is ActionKind.ACCEPT  # type: ignore[attr-defined]
    assert routes["198.18.5.0/24"].action.redirect == "65001:100"  # type: ignore[attr-defined]
    r7 = routes["198.18.7.0/24"]
    assert r7.action.kind is ActionKind.RATE_PACKETS and r7.action.rate == 500.0  # type: ignore[attr-defined]
    r8 = routes["198.18.8.0/24"].action  # type: ignore[attr-defined]
    assert (r8.kind, r8.sample, r8.terminal) == (ActionKind.DISCARD, True, True)
    default = routes["0.0.0.0/0"]
    assert default.groups == (9,) and default.action.drops_all  # type: ignore[attr-defined]
    v6 = routes["2001:db8:1::/48"]
    assert v6.family == 6 and [n.ranges for n in v6.numeric] == [((6, 6),)]  # type: ignore[attr-defined]


def test_numeric_terms_become_ranges() -> None:
    nlri = {
        "source-ipv4": ["198.18.6.0/24"],
        "protocol": ["=udp", "=tcp"],
        "destination-port": ["=53", ">1000&<2000"],
        "packet-length": [">100"],
    }
    route = decode_route("ipv4 flow", nlri, {})
    ranges = {n.ctype: n.ranges for n in route.numeric}
    assert ranges == {3: ((6, 6), (17, 17)), 5: ((53, 53), (1001, 1999)), 10: ((101, 65535),)}


def test_always_true_discriminator_is_dropped() -> None:
    # the compiler's `packet-length >= N` (N < 20) discriminator matches every packet
    route = decode_route("ipv4 flow", {"source-ipv4": ["198.18.6.0/24"], "packet-length": [">=0"]}, {})
    assert route.numeric == ()


def test_unsupported_component_and_offset_are_reported() -> None:
    route = decode_route("ipv6 flow", {"source-ipv6": ["2001:db8::/48/8"], "tcp-flags": ["=rst"]}, {})
    assert any("offset 8" in u for u in route.unsupported)
    assert any(u.startswith("tcp-flags") for u in route.unsupported)


@pytest.mark.parametrize(
    "nlri, field",
    [
        ({"source-ipv4": ["not-a-prefix"]}, "source-ipv4"),
        ({"source-ipv4": ["2001:db8::/32"]}, "source-ipv4"),
        ({"bogus-component": ["=1"]}, "bogus-component"),
    ],
)
def test_bad_nlri_names_the_field(nlri: dict[str, list[str]], field: str) -> None:
    with pytest.raises(RouteError) as info:
        decode_route("ipv4 flow", nlri, {})
    assert info.value.field == field


def test_bad_route_is_reported_not_raised_and_others_apply() -> None:
    table = RouteTable()
    announce = {"ipv4 flow": {"no-nexthop": [{"source-ipv4": ["bad"]}, {"source-ipv4": ["198.18.9.0/24"]}]}}
    result = table.apply_update("198.18.254.1", {}, announce, {})
    assert result.changed and len(result.problems) == 1 and result.problems[0].field == "source-ipv4"
    assert [r.source.prefix for r in table.routes() if r.source] == ["198.18.9.0/24"]


def test_session_down_drops_peer_routes() -> None:
    table = load_corpus()
    assert len(table) == 9
    assert table.drop_peer("198.18.254.1")
    assert table.routes() == ()


def src(prefix: str, **extra: list[str]) -> object:
    family = "ipv6 flow" if ":" in prefix else "ipv4 flow"
    key = "source-ipv6" if ":" in prefix else "source-ipv4"
    return decode_route(family, {key: [prefix], **extra}, {})


def test_rfc8955_order_more_specific_first_then_lower_address() -> None:
    routes = [
        src("0.0.0.0/0"),
        src("198.18.2.0/24"),
        src("198.18.1.0/24"),
        src("198.18.0.0/15"),
        src("198.18.1.128/25"),
    ]
    ordered = [r.source.prefix for r in sorted_routes(routes)]  # type: ignore[attr-defined]
    assert ordered == ["198.18.1.128/25", "198.18.1.0/24", "198.18.2.0/24", "198.18.0.0/15", "0.0.0.0/0"]


def test_rfc8955_order_destination_component_first_and_longer_wins_on_tie() -> None:
    with_dst = decode_route(
        "ipv4 flow", {"destination-ipv4": ["198.18.9.0/24"], "source-ipv4": ["198.18.1.0/24"]}, {}
    )
    bare = src("198.18.1.0/24")
    longer = src("198.18.1.0/24", protocol=["=udp"])
    assert compare_routes(with_dst, bare) < 0  # type 1 present beats a rule without it
    assert compare_routes(longer, bare) < 0  # same prefix: more components first
    assert compare_routes(bare, bare) == 0


def test_precedence_key_agrees_with_compare_routes() -> None:
    from functools import cmp_to_key

    from appliance.enforcer.route import precedence_key

    routes = [
        src("0.0.0.0/0"),
        src("198.18.1.0/24", protocol=["=udp"]),
        src("198.18.1.0/24"),
        src("198.18.1.0/25"),
        src("198.18.0.0/15"),
        src("198.18.2.0/24", **{"destination-port": ["=53"]}),
        decode_route("ipv4 flow", {"destination-ipv4": ["198.18.9.0/24"]}, {}),
        decode_route("ipv4 flow", {"destination-ipv4": ["198.18.9.0/24"], "source-ipv4": ["10.0.0.0/8"]}, {}),
    ]
    by_cmp = sorted(routes, key=cmp_to_key(compare_routes))
    by_key = sorted(routes, key=precedence_key)  # type: ignore[arg-type]
    assert [r.key for r in by_cmp] == [r.key for r in by_key]  # type: ignore[attr-defined]
