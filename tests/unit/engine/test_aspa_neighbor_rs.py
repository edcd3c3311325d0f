"""ASPA verification inside the engine: the neighbour-AS check, route servers (which skip it), AS_SETs, and
the default policy's fail-open choice (loose without RPKI data; with it, narrowed only where ASPA proves)."""

from __future__ import annotations

from appliance.engine.aspa import PathVerdict, build_table, verify_downstream, verify_path, verify_upstream
from appliance.engine.inter import customer_cone, unproven
from appliance.engine.policy import Algorithm, Policy
from appliance.engine.rib import RouterRib, RpkiView, neighbors_by_interface, path_verdict
from appliance.engine.snapshot import Snapshot, compute
from appliance.model import Aspa, BgpPath, Interface, ListKind, Neighbor, Relationship, Role, Router, Vrp

C, P, V, RS = Relationship.CUSTOMER, Relationship.PEER, Relationship.PROVIDER, Relationship.ROUTE_SERVER
TABLE = build_table([Aspa(65001, (65002,)), Aspa(65005, (65004,))])


def test_first_as_not_the_neighbour_is_invalid() -> None:
    assert path_verdict(TABLE, (65002, 65001), C, 65002) is PathVerdict.VALID
    assert path_verdict(TABLE, (65002, 65001), C, 65003) is PathVerdict.INVALID
    assert path_verdict(TABLE, (65002, 65001), P, 65003) is PathVerdict.INVALID
    assert path_verdict(TABLE, (65002, 65001), V, 65003) is PathVerdict.INVALID


def test_route_server_skips_the_neighbour_check() -> None:
    # the RS (AS65009) does not prepend itself: the path starts with its client
    assert path_verdict(TABLE, (65002, 65001), RS, 65009) is PathVerdict.VALID
    assert verify_path(TABLE, (65002, 65001), from_provider=False, neighbor_as=65009, rs_client=True) is (
        PathVerdict.VALID
    )
    # upstream rules still apply behind an RS: 65001 attests only 65002, so [65003, 65001] is a leak
    assert path_verdict(TABLE, (65003, 65001), RS, 65009) is PathVerdict.INVALID


def test_unknown_neighbour_and_ibgp_skip_the_check() -> None:
    assert path_verdict(TABLE, (65002, 65001), C, 0) is PathVerdict.VALID
    assert path_verdict(TABLE, (65002, 65001), Relationship.INTERNAL, 65000) is PathVerdict.VALID


def test_as_set_is_invalid() -> None:
    assert verify_upstream(TABLE, (65002, 65001), 65002, as_set=(65007,)) is PathVerdict.INVALID
    assert verify_downstream(TABLE, (65002, 65001), 65002, as_set=(65007,)) is PathVerdict.INVALID
    assert path_verdict(TABLE, (65002,), C, 65002, (65001, 65007)) is PathVerdict.INVALID
    assert BgpPath("b", "c", "198.18.0.0/24", (65002,), as_set=(65001,)).origin == 0


def _rib(neighbors: list[Neighbor], paths: list[BgpPath]) -> RouterRib:
    return RouterRib("b", 65000, neighbors_by_interface(neighbors), paths)


def test_customer_pairs_drop_neighbour_mismatch_and_as_set_paths() -> None:
    rpki = RpkiView.of((), [Aspa(65002, (65000,))])
    ok = BgpPath("b", "c", "198.18.1.0/24", (65002, 65003))
    wrong_first = BgpPath("b", "c", "198.18.2.0/24", (65004, 65005))  # 65004 is not the neighbour (65002)
    aggregated = BgpPath("b", "c", "198.18.3.0/24", (65002, 65006), as_set=(65007,))
    rib = _rib([Neighbor("b", "c", 65002, C)], [ok, wrong_first, aggregated])
    assert rib.customer_pairs(rpki) == {65002: frozenset({65003})}
    assert customer_cone(rib, rpki, 65002) == {65002, 65003}


def test_route_server_cone_is_seeded_with_its_clients() -> None:
    rpki = RpkiView.of((), [Aspa(65006, (65005,))])
    paths = [
        BgpPath("b", "ix", "198.18.5.0/24", (65005,)),
        BgpPath("b", "ix", "198.18.7.0/24", (65008, 65007)),
    ]
    rib = _rib([Neighbor("b", "ix", 65009, RS)], paths)
    assert rib.cone_seeds("ix") == (65009, 65005, 65008)
    assert customer_cone(rib, rpki, rib.cone_seeds("ix")) == {65005, 65006, 65007, 65008, 65009}


def test_route_server_is_a_lateral_peer_in_the_engine() -> None:
    # contradictory records for one interface: peer and route server are the loosest, deterministically
    a = neighbors_by_interface([Neighbor("b", "i", 1, C), Neighbor("b", "i", 1, RS)])
    b = neighbors_by_interface([Neighbor("b", "i", 1, RS), Neighbor("b", "i", 1, C)])
    assert a == b and a["i"].relationship is RS
    snap = Snapshot(
        routers=(Router("b", asn=65000, role=Role.BORDER),),
        interfaces=(Interface("b", "ix", external=True), Interface("b", "c", external=True)),
        neighbors=(Neighbor("b", "ix", 65009, RS), Neighbor("b", "c", 65001, C)),
        paths=(
            BgpPath("b", "c", "198.18.1.0/24", (65001,)),
            BgpPath("b", "ix", "198.18.2.0/24", (65005, 65001)),
        ),
        policy=Policy(Algorithm.EFP_B),
    )
    rules = compute(snap)
    ix, c = rules.get("b", "ix"), rules.get("b", "c")
    assert ix is not None and ix.kind is ListKind.BLOCK and ix.prefixes == ()
    # EFP-uRPF B's set Q takes the route server's routes with the peers'
    assert c is not None and c.prefixes == ("198.18.1.0/24", "198.18.2.0/24")


def _default_snapshot(**kw: object) -> Snapshot:
    return Snapshot(
        routers=(Router("b", asn=65000, role=Role.BORDER),),
        interfaces=(Interface("b", "c1", external=True), Interface("b", "c2", external=True)),
        neighbors=(Neighbor("b", "c1", 65001, C), Neighbor("b", "c2", 65002, C)),
        paths=(
            BgpPath("b", "c1", "198.18.1.0/24", (65001,)),
            BgpPath("b", "c2", "198.18.2.0/24", (65002,)),
            BgpPath("b", "c2", "198.18.3.0/24", (65002, 65003)),
        ),
    ).replace(**kw)


def test_default_without_rpki_is_loose_on_customers() -> None:
    rules = compute(_default_snapshot())
    c1 = rules.get("b", "c1")
    assert c1 is not None and c1.kind is ListKind.BLOCK and c1.prefixes == ()
    assert c1.algorithm.startswith("auto:loose") and "[fail-open:no-rpki-data]" in c1.algorithm


def test_default_keeps_prefixes_of_origins_aspa_does_not_place() -> None:
    # 65003 has no ASPA: it may be a hidden customer of 65001 too, so its prefix stays allowed on c1;
    # 65002 is attested (its only provider is the local AS), so its own prefix is dropped on c1
    aspas = (Aspa(65001, (65000,)), Aspa(65002, (65000,)))
    vrps = (Vrp("198.18.9.0/24", 24, 65008),)  # ROA of an unattested AS: never announced here, still allowed
    snap = _default_snapshot(aspas=aspas, vrps=vrps)
    rules = compute(snap)
    c1 = rules.get("b", "c1")
    # the allowlist would be 198.18.1.0/24, .3 and .9 (BAR-SAV | unproven); the blocklist of known prefixes
    # outside it is shorter: just 65002's own
    assert c1 is not None and c1.kind is ListKind.BLOCK
    assert c1.algorithm.startswith("auto:bar-sav-proven-block")
    assert c1.prefixes == ("198.18.2.0/24",)
    rib = RouterRib("b", 65000, {n.interface: n for n in snap.neighbors}, snap.paths)
    assert unproven(rib, snap.rpki()) == {"198.18.3.0/24", "198.18.9.0/24"}
    # once 65003 and 65008 attest their providers, BAR-SAV's list alone is the proof
    attested = compute(snap.replace(aspas=(*aspas, Aspa(65003, (65002,)), Aspa(65008, (0,)))))
    c1 = attested.get("b", "c1")
    assert c1 is not None and c1.algorithm == "auto:bar-sav" and c1.prefixes == ("198.18.1.0/24",)


def test_attested_up_needs_the_whole_provider_chain() -> None:
    rpki = RpkiView.of((), [Aspa(65001, (65002,)), Aspa(65002, (65003,)), Aspa(65004, (65000,))])
    # 65003 has no ASPA: neither 65002 nor 65001 is placed; 65004's chain ends at the local AS
    assert rpki.attested_up(65000) == {65000, 65004}
