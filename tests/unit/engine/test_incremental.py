"""Incremental recompute equals full recompute (byte-identical JSON) over random event sequences, and the keys
`apply` reports cover every rule that changed."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.engine.incremental import (
    Engine,
    PathAdded,
    PathRemoved,
    PolicyChanged,
    ReportAdded,
    ReportRemoved,
    RpkiChanged,
    TopologyChanged,
)
from appliance.engine.policy import Algorithm, Policy
from appliance.engine.snapshot import Snapshot, compute
from appliance.model import (
    Aspa,
    BgpPath,
    IgpPrefix,
    Interface,
    ListKind,
    Neighbor,
    PrefixFlags,
    PrefixReport,
    Relationship,
    Role,
    Router,
    Vrp,
)

C, P, V = Relationship.CUSTOMER, Relationship.PEER, Relationship.PROVIDER
RS = Relationship.ROUTE_SERVER
LOCAL = 65000
NEIGHBORS = {
    "c1": (65001, C), "c2": (65002, C), "c3": (65003, C),
    "p1": (65010, P), "u1": (65020, V), "x1": (65040, RS),
}
ASNS = [65001, 65002, 65003, 65004, 65005, 65010, 65020, 65030]
DEFAULT_RELS = {i: r for i, (_, r) in NEIGHBORS.items()}
PREFIXES = [f"198.18.{k}.0/24" for k in range(8)] + ["2001:db8:1::/48", "2001:db8:2::/48"]


def _base(rels: dict[str, Relationship] | None = None) -> Snapshot:
    rels = rels or {i: r for i, (_, r) in NEIGHBORS.items()}
    return Snapshot(
        routers=(Router("b1", asn=LOCAL, role=Role.BORDER), Router("a1", asn=LOCAL, role=Role.ACCESS)),
        interfaces=tuple(Interface("b1", i, external=True) for i in NEIGHBORS),
        neighbors=tuple(Neighbor("b1", i, asn, rels[i]) for i, (asn, _) in NEIGHBORS.items()),
    )


@st.composite
def paths(draw: st.DrawFn) -> BgpPath:
    iface = draw(st.sampled_from(sorted(NEIGHBORS)))
    tail = draw(st.lists(st.sampled_from(ASNS), max_size=3))
    # mostly the neighbour first; sometimes another AS (a route server's client, or a neighbour-check failure)
    first = draw(st.sampled_from([NEIGHBORS[iface][0]] * 3 + ASNS[:3]))
    as_set = draw(st.sampled_from([(), (), (), (65004, 65005)]))
    return BgpPath(
        "b1", iface, draw(st.sampled_from(PREFIXES)), (first, *tail), draw(st.integers(0, 1)), as_set
    )


reports = st.builds(
    PrefixReport,
    st.sampled_from(["a1", "b1"]),
    st.sampled_from(["lan1", "lan2", "c1"]),
    st.sampled_from(PREFIXES[4:]),
    st.sampled_from(["s1", "s2", ""]),
    st.builds(PrefixFlags, st.booleans()),
)
vrps = st.builds(Vrp, st.sampled_from(PREFIXES), st.sampled_from([24, 48]), st.sampled_from(ASNS))
aspas = st.builds(
    Aspa, st.sampled_from(ASNS), st.lists(st.sampled_from([*ASNS, LOCAL, 0]), max_size=2).map(tuple)
)
algorithms = st.sampled_from(list(Algorithm))

events = st.one_of(
    paths().map(PathAdded),
    paths().map(PathAdded),
    paths().map(PathRemoved),
    reports.map(ReportAdded),
    reports.map(ReportRemoved),
    st.builds(
        RpkiChanged,
        st.lists(vrps, max_size=2).map(tuple),
        st.lists(vrps, max_size=1).map(tuple),
        st.lists(aspas, max_size=2).map(tuple),
        st.lists(aspas, max_size=1).map(tuple),
        st.sampled_from([None, None, True, False]),
    ),
    st.builds(
        PolicyChanged,
        st.builds(
            Policy,
            st.sampled_from([Algorithm.AUTO, Algorithm.EFP_B, Algorithm.STRICT, Algorithm.BAR_SAV]),
            interface_algorithms=st.dictionaries(
                st.sampled_from([("b1", i) for i in NEIGHBORS]), algorithms, max_size=2
            ),
        ),
    ),
    st.dictionaries(st.sampled_from(sorted(NEIGHBORS)), st.sampled_from([C, P, V, RS]), max_size=2).map(
        lambda flip: TopologyChanged(neighbors=_base({**DEFAULT_RELS, **flip}).neighbors)
    ),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(paths(), max_size=25), st.lists(events, min_size=1, max_size=25))
def test_incremental_equals_full(initial: list[BgpPath], sequence: list[object]) -> None:
    engine = Engine(_base().replace(paths=tuple(initial)))
    previous = engine.ruleset()
    assert previous.to_json() == compute(engine.snapshot()).to_json()
    for event in sequence:
        changed = engine.apply(event)  # type: ignore[arg-type]
        now = engine.ruleset()
        assert now.to_json() == compute(engine.snapshot()).to_json(), f"after {event}"
        diff = previous.diff(now)
        touched = {r.key() for r in diff.added + diff.removed} | {old.key() for old, _ in diff.changed}
        assert touched <= changed, f"{event}: changed {sorted(touched - changed)} not reported"
        previous = now


def test_new_customer_prefix_reaches_border_blocklists() -> None:
    """intra-arch00-uc2: the customer adds P3, Router5 reports it, Router3/Router4 block it too."""
    snap = Snapshot(
        routers=(
            Router("r3", role=Role.BORDER),
            Router("r4", role=Role.BORDER),
            Router("r5", role=Role.ACCESS),
        ),
        interfaces=(Interface("r3", "ext", external=True), Interface("r4", "ext", external=True)),
        reports=(PrefixReport("r5", "cust", "198.18.2.0/24", "customer_net"),),
    )
    engine = Engine(snap)
    changed = engine.apply(ReportAdded(PrefixReport("r5", "cust", "198.18.3.0/24", "customer_net")))
    assert changed == {("r3", "ext"), ("r4", "ext"), ("r5", "cust")}
    rules = engine.ruleset()
    assert rules.get("r3", "ext").prefixes == ("198.18.2.0/24", "198.18.3.0/24")  # type: ignore[union-attr]


def test_new_igp_prefix_reaches_border_blocklists() -> None:
    """A loopback learned over BGP-LS is internal: the border blocks it as a source from outside."""
    snap = Snapshot(
        routers=(Router("r3", role=Role.BORDER), Router("r5", role=Role.ACCESS)),
        interfaces=(Interface("r3", "ext", external=True),),
        reports=(PrefixReport("r5", "cust", "198.18.2.0/24", "customer_net"),),
    )
    engine = Engine(snap)
    igp = (IgpPrefix("r5", "198.18.255.5/32"), IgpPrefix("r3", "198.19.0.0/16", external=True))
    changed = engine.apply(TopologyChanged(igp_prefixes=igp))
    assert changed == {("r3", "ext")}
    rules = engine.ruleset()
    assert rules.get("r3", "ext").prefixes == ("198.18.2.0/24", "198.18.255.5/32")  # type: ignore[union-attr]
    assert rules.to_json() == compute(engine.snapshot()).to_json()


def test_path_change_touches_only_its_interface_when_lists_do_not_move() -> None:
    snap = _base().replace(
        paths=(BgpPath("b1", "c1", PREFIXES[0], (65001,)), BgpPath("b1", "u1", PREFIXES[1], (65020, 65030))),
        policy=Policy(Algorithm.EFP_B),
    )
    engine = Engine(snap)
    engine.ruleset()
    changed = engine.apply(PathAdded(BgpPath("b1", "u1", PREFIXES[2], (65020, 65030))))
    assert changed == {("b1", "u1")}
    changed = engine.apply(PathAdded(BgpPath("b1", "u1", PREFIXES[3], (65020, 65001))))  # origin in EFP-B's A
    assert changed == {("b1", "c1"), ("b1", "c2"), ("b1", "c3"), ("b1", "u1")}
    assert PREFIXES[3] in engine.ruleset().get("b1", "c2").prefixes  # type: ignore[union-attr]


def test_rpki_delta_by_customer_removes_every_aspa_of_it() -> None:
    snap = _base().replace(aspas=(Aspa(65001, (65000,)), Aspa(65001, (65010,)), Aspa(65002, (65000,))))
    engine = Engine(snap)
    engine.apply(RpkiChanged(aspa_customers_removed=(65001,)))
    assert engine.snapshot().aspas == (Aspa(65002, (65000,)),)
    assert engine.ruleset().to_json() == compute(engine.snapshot()).to_json()


def test_vrp_only_delta_patches_in_place() -> None:
    paths = (
        BgpPath("b1", "c1", PREFIXES[0], (65001,)),
        BgpPath("b1", "c2", PREFIXES[1], (65002, 65003)),
        BgpPath("b1", "u1", PREFIXES[2], (65020, 65030)),
    )
    snap = _base().replace(
        paths=paths,
        vrps=(Vrp(PREFIXES[0], 24, 65001), Vrp(PREFIXES[1], 24, 65003)),
        aspas=(Aspa(65001, (LOCAL,)), Aspa(65002, (LOCAL,)), Aspa(65003, (65002,)), Aspa(65099, (LOCAL,))),
    )
    engine = Engine(snap)
    before = engine.ruleset().get("b1", "c2")
    # 65030 (origin of PREFIXES[2]) has no ASPA: its prefix stays permitted on every customer interface; the
    # blocklist form (c1's prefix only) is shorter than the allowlist (PREFIXES[1] and [2])
    assert before is not None and before.algorithm.startswith("auto:bar-sav-proven-block")
    assert before.prefixes == (PREFIXES[0],)
    live = engine.live["b1"]
    # AS65099 takes over the ROA of 198.18.1.0/24: AS65003's route becomes ROV-Invalid, BAR-SAV drops it
    delta = RpkiChanged(
        vrps_added=(Vrp(PREFIXES[1], 24, 65099),), vrps_removed=(Vrp(PREFIXES[1], 24, 65003),)
    )
    changed = engine.apply(delta)
    assert engine.live["b1"] is live  # no rebuild of the router's state
    assert ("b1", "c2") in changed
    after = engine.ruleset()
    assert after.to_json() == compute(engine.snapshot()).to_json()
    c2 = after.get("b1", "c2")
    # PREFIXES[1] is now proven outside the cone: the allowlist (PREFIXES[2]) is the shorter form again
    assert c2 is not None and c2.kind is ListKind.ALLOW and c2.prefixes == (PREFIXES[2],)


def test_a_path_learned_before_its_interface_has_a_neighbour_counts_once_it_has_one() -> None:
    """The path on eth1 arrives while only eth2 has a neighbour; the topology then gives eth1 one: the
    incremental engine must still hold the path (it kept it aside), like a full computation does."""
    path = BgpPath("r1", "eth1", "198.18.1.0/24", (64512,))
    first = Snapshot(routers=(Router("r1", role=Role.BORDER),),
                     neighbors=(Neighbor("r1", "eth2", 64512, C),), paths=(path,),
                     policy=Policy(Algorithm.EFP_B))
    engine = Engine(first)
    neighbors = (Neighbor("r1", "eth1", 64512, C), Neighbor("r1", "eth2", 64512, C))
    engine.apply(TopologyChanged(neighbors=neighbors))
    expected = compute(first.replace(neighbors=neighbors))
    assert engine.ruleset() == expected
    assert expected.get("r1", "eth1").prefixes == ("198.18.1.0/24",)  # type: ignore[union-attr]
    engine.apply(TopologyChanged(neighbors=neighbors[1:]))  # and aside again when it loses it
    assert engine.ruleset() == compute(first)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(paths(), max_size=10), st.lists(reports, max_size=10),
       st.lists(events, min_size=1, max_size=25))
def test_incremental_read_once_equals_full(initial: list[BgpPath], first: list[PrefixReport],
                                           sequence: list[object]) -> None:
    """Events applied without reading between them: allowlist patches still pending when a policy or
    topology change recomputes every outcome are superseded, and the changed keys cover the whole diff."""
    engine = Engine(_base().replace(paths=tuple(initial), reports=tuple(first)))
    previous = engine.ruleset()
    changed: set[tuple[str, str]] = set()
    for event in sequence:
        changed |= engine.apply(event)  # type: ignore[arg-type]
    now = engine.ruleset()
    assert now.to_json() == compute(engine.snapshot()).to_json()
    diff = previous.diff(now)
    assert {r.key() for r in diff.added + diff.removed} | {old.key() for old, _ in diff.changed} <= changed
