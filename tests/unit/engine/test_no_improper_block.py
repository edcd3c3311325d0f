"""Property: under the default policy, a route a customer sends (not ROV-Invalid, not ASPA-Invalid) is never
blocked on that customer's interface, whatever else the RIB and RPKI hold (an improper block is the worst
bug)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.engine.aspa import PathVerdict, build_table, verify_upstream
from appliance.engine.prefixset import PrefixSet
from appliance.engine.rib import Rov, RpkiView
from appliance.engine.snapshot import Snapshot, compute
from appliance.model import Aspa, BgpPath, Interface, ListKind, Neighbor, Relationship, Role, Router, Vrp

C, P, V = Relationship.CUSTOMER, Relationship.PEER, Relationship.PROVIDER
NEIGHBORS = {"c1": (65001, C), "c2": (65002, C), "p1": (65010, P), "u1": (65020, V)}
ASNS = [65001, 65002, 65003, 65004, 65010, 65020, 65030]
PREFIXES = [f"198.18.{k}.0/24" for k in range(6)] + ["198.18.0.0/16", "2001:db8:1::/48"]


@st.composite
def path(draw: st.DrawFn) -> BgpPath:
    iface = draw(st.sampled_from(sorted(NEIGHBORS)))
    tail = draw(st.lists(st.sampled_from(ASNS), max_size=3))
    return BgpPath("b1", iface, draw(st.sampled_from(PREFIXES)), (NEIGHBORS[iface][0], *tail))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(path(), min_size=1, max_size=20),
    st.lists(st.builds(Vrp, st.sampled_from(PREFIXES), st.sampled_from([16, 24, 48]), st.sampled_from(ASNS))),
    st.lists(
        st.builds(
            Aspa, st.sampled_from(ASNS), st.lists(st.sampled_from([*ASNS, 65000]), max_size=3).map(tuple)
        )
    ),
)
def test_customer_routes_are_never_blocked(paths: list[BgpPath], vrps: list[Vrp], aspas: list[Aspa]) -> None:
    snap = Snapshot(
        routers=(Router("b1", asn=65000, role=Role.BORDER),),
        interfaces=tuple(Interface("b1", i, external=True) for i in NEIGHBORS),
        neighbors=tuple(Neighbor("b1", i, asn, rel) for i, (asn, rel) in NEIGHBORS.items()),
        paths=tuple(paths),
        vrps=tuple(vrps),
        aspas=tuple(aspas),
    )
    rules = compute(snap)
    rpki = RpkiView.of(vrps, aspas)
    table = build_table(aspas)
    for p in paths:
        if NEIGHBORS[p.interface][1] is not C:
            continue
        if vrps and rpki.rov(p.prefix, p.origin) is Rov.INVALID:
            continue
        if verify_upstream(table, p.as_path) is PathVerdict.INVALID:
            continue
        rule = rules.get("b1", p.interface)
        assert rule is not None
        if rule.kind is ListKind.ALLOW:
            assert PrefixSet(rule.prefixes).covers(p.prefix), f"{p} blocked by {rule.algorithm}"
        else:
            assert not PrefixSet(rule.prefixes).overlaps(p.prefix), f"{p} blocked by {rule.algorithm}"
