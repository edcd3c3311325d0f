"""Inter-domain algorithms on small hand-checked RIBs: EFP-uRPF A/B, strict tie-breaks, BAR-SAV fail-open,
Procedure X, ROV filtering, and the merge with intra blocklists."""

from __future__ import annotations

from appliance.engine.inter import efp_a, efp_b, procedure_x, strict
from appliance.engine.policy import Algorithm, Policy
from appliance.engine.rib import RouterRib, Rov, RpkiView, is_special_asn
from appliance.engine.snapshot import Snapshot, compute
from appliance.model import (
    Aspa,
    BgpPath,
    Interface,
    ListKind,
    Neighbor,
    PrefixReport,
    Relationship,
    Role,
    Router,
    Vrp,
)

C, P, V = Relationship.CUSTOMER, Relationship.PEER, Relationship.PROVIDER


def _rib() -> RouterRib:
    neighbors = {
        "c1": Neighbor("b", "c1", 65001, C),
        "c2": Neighbor("b", "c2", 65002, C),
        "p1": Neighbor("b", "p1", 65100, V),
    }
    paths = [
        BgpPath("b", "c1", "198.18.1.0/24", (65001,)),
        BgpPath("b", "c2", "198.18.2.0/24", (65002, 65003)),
        BgpPath("b", "p1", "198.18.3.0/24", (65100, 65200, 65003)),
        BgpPath("b", "p1", "198.18.4.0/24", (65100, 65201)),
        BgpPath("b", "p1", "198.18.1.0/24", (65100, 65001)),
    ]
    return RouterRib("b", 65000, neighbors, paths)


def test_efp_a_and_b() -> None:
    rib = _rib()
    a = efp_a(rib)
    assert a["c1"] == {"198.18.1.0/24"}
    assert a["c2"] == {"198.18.2.0/24", "198.18.3.0/24"}  # same origin AS65003, learnt from the provider
    assert efp_b(rib) == {"198.18.1.0/24", "198.18.2.0/24", "198.18.3.0/24"}


def test_strict_prefers_customer_then_shorter_path() -> None:
    s = strict(_rib())
    assert s["c1"] == {"198.18.1.0/24"}
    assert s["p1"] == {"198.18.3.0/24", "198.18.4.0/24"}


def test_procedure_x_and_rov() -> None:
    rpki = RpkiView.of(
        [Vrp("198.18.0.0/16", 24, 65003), Vrp("198.18.9.0/24", 24, 65004)],
        [Aspa(65003, (65002,)), Aspa(65004, (65003,))],
    )
    cone, prefixes = procedure_x(rpki, 65002)
    assert cone == {65002, 65003, 65004}
    assert prefixes == {"198.18.0.0/16", "198.18.9.0/24"}
    assert rpki.rov("198.18.5.0/24", 65003) is Rov.VALID
    assert rpki.rov("198.18.5.0/25", 65003) is Rov.INVALID  # longer than maxLength
    assert rpki.rov("198.19.0.0/24", 65003) is Rov.NOT_FOUND
    assert is_special_asn(0) and is_special_asn(64496) and not is_special_asn(65001)


def _snapshot(policy: Policy, **kw: object) -> Snapshot:
    rib = _rib()
    return Snapshot(
        routers=(Router("b", asn=65000, role=Role.BORDER),),
        interfaces=tuple(Interface("b", i, external=True) for i in rib.neighbors),
        neighbors=tuple(rib.neighbors.values()),
        paths=tuple(p for ps in rib.by_iface.values() for p in ps),
        reports=(PrefixReport("a", "lan", "198.18.200.0/24", "s"),),
        policy=policy,
    ).replace(**kw)


def test_bar_sav_fails_open_without_rpki() -> None:
    rules = compute(_snapshot(Policy(default_algorithm=Algorithm.BAR_SAV)))
    c1 = rules.get("b", "c1")
    assert c1 is not None and c1.kind is ListKind.BLOCK
    assert "fail-open:no-rpki-data" in c1.algorithm
    # the intra blocklist of internal prefixes still applies on the external interface
    assert c1.prefixes == ("198.18.200.0/24",)


def test_allowlist_wins_over_intra_blocklist_and_provider_gets_both_blocklists() -> None:
    rules = compute(_snapshot(Policy(default_algorithm=Algorithm.EFP_B)))
    c2 = rules.get("b", "c2")
    p1 = rules.get("b", "p1")
    assert c2 is not None and c2.kind is ListKind.ALLOW and c2.algorithm == "efp-b"
    assert "198.18.200.0/24" not in c2.prefixes
    assert p1 is not None and p1.kind is ListKind.BLOCK and p1.prefixes == ("198.18.200.0/24",)
    assert "path:c2:65002>65003" in c2.provenance["198.18.2.0/24"]


def test_bar_sav_excludes_rov_invalid_routes() -> None:
    vrps = (Vrp("198.18.2.0/24", 24, 65099),)  # AS65003's announcement of 198.18.2.0/24 is ROV-Invalid
    rules = compute(_snapshot(Policy(default_algorithm=Algorithm.BAR_SAV), vrps=vrps))
    c2 = rules.get("b", "c2")
    assert c2 is not None and c2.kind is ListKind.ALLOW
    assert c2.prefixes == ("198.18.3.0/24",)


def test_contradictory_neighbor_records_fail_open_whatever_the_order() -> None:
    base = _snapshot(Policy())
    dup = Neighbor("b", "c1", 65001, P)  # the same interface also configured as a lateral peer
    a = compute(base.replace(neighbors=(*base.neighbors, dup)))
    b = compute(base.replace(neighbors=(dup, *base.neighbors)))
    assert a.to_json() == b.to_json()
    c1 = a.get("b", "c1")
    assert c1 is not None and c1.kind is ListKind.BLOCK and c1.algorithm.startswith("auto:loose")
