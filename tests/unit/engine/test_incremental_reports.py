"""Report changes applied one by one equal a full intra computation after every step.

The incremental engine redoes only the interfaces a report touches (its own, every attachment of its subnet)
and the border blocklists; this drives random adds and removes over several routers, multi-homed subnets,
anycast/special flags, competing sources and per-interface algorithms, with and without border routers and
random IGP prefixes (internal, external, anycast when several routers advertise one), and compares the intra
outcomes, the rules and the changed keys with a from-scratch run after each event.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.engine import incremental
from appliance.engine.border import LiveBlocklist
from appliance.engine.incremental import Engine, PolicyChanged, ReportAdded, ReportRemoved
from appliance.engine.intra import (
    IntraOutcome,
    access_outcome,
    border_blocklist,
    compute_intra,
    report_order,
    report_tag,
)
from appliance.engine.policy import Algorithm, Policy
from appliance.engine.snapshot import Snapshot, compute
from appliance.model import (
    IgpPrefix,
    Interface,
    Neighbor,
    PrefixFlags,
    PrefixReport,
    Relationship,
    Role,
    Router,
)

ROUTERS = ("a1", "a2", "a3", "b1")
IFACES = ("lan1", "lan2", "up1")
PREFIXES = ("10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.2.0.0/16", "192.0.2.0/24",
            "192.0.2.128/25", "192.0.2.0/25", "2001:db8::/32", "2001:db8:1::/48")  # /25s: pieces collide

reports = st.builds(
    PrefixReport,
    st.sampled_from(ROUTERS),
    st.sampled_from(IFACES),
    st.sampled_from(PREFIXES),
    st.sampled_from(["s1", "s2", "s3", ""]),
    st.builds(PrefixFlags, st.booleans(), st.sampled_from([False, False, True]), st.booleans()),
    st.sampled_from(["api", "file", "bgp-ls"]),
)
steps = st.lists(st.tuples(st.booleans(), reports), min_size=1, max_size=30)
policies = st.builds(
    Policy,
    st.sampled_from([Algorithm.AUTO, Algorithm.STRICT]),
    interface_algorithms=st.dictionaries(
        st.sampled_from([(r, i) for r in ROUTERS for i in IFACES]),
        st.sampled_from([Algorithm.STRICT, Algorithm.LOOSE, Algorithm.AUTO]), max_size=3),
)


# several routers on one prefix: anycast unless a link they share; external ones are not internal space
igps = st.lists(st.builds(
    IgpPrefix, st.sampled_from(ROUTERS), st.sampled_from((*PREFIXES, "10.9.0.0/16", "203.0.113.0/30")),
    external=st.sampled_from([False, False, True])), max_size=6)
DEFAULT_IGP = (IgpPrefix("a1", "10.9.0.0/16"), IgpPrefix("a2", "10.1.2.0/24"))


def _base(border: bool, policy: Policy, igp: tuple[IgpPrefix, ...] = DEFAULT_IGP) -> Snapshot:
    routers = tuple(Router(r, role=Role.ACCESS) for r in ROUTERS[:3])
    routers += (Router("b1", role=Role.BORDER if border else Role.CORE),)
    return Snapshot(
        routers=routers,
        interfaces=(Interface("b1", "up1", ("203.0.113.1/30",), external=True),
                    Interface("b1", "up2", external=True), Interface("a1", "lan1")),
        neighbors=(Neighbor("b1", "up1", 64500, Relationship.PROVIDER, "203.0.113.2"),),
        igp_prefixes=igp,
        policy=policy,
    )


def _full_intra(engine: Engine) -> object:
    snap = engine.snapshot()
    routers = {r.name: r for r in snap.routers}
    return compute_intra(routers, snap.interfaces, snap.reports, snap.policy, snap.igp_prefixes,
                         engine.neighbors.values())


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.booleans(), policies, st.lists(reports, max_size=12), steps, igps)
def test_report_steps_equal_full_intra(border: bool, policy: Policy, initial: list[PrefixReport],
                                       sequence: list[tuple[bool, PrefixReport]],
                                       igp: list[IgpPrefix]) -> None:
    engine = Engine(_base(border, policy, tuple(igp)).replace(reports=tuple(initial)))
    previous = engine.ruleset()
    for add, report in sequence:
        changed = engine.apply(ReportAdded(report) if add else ReportRemoved(report))
        assert engine.intra == _full_intra(engine), f"after {'+' if add else '-'}{report}"
        now = engine.ruleset()
        assert now.to_json() == compute(engine.snapshot()).to_json()
        diff = previous.diff(now)
        touched = {r.key() for r in diff.added + diff.removed} | {old.key() for old, _ in diff.changed}
        assert touched <= changed
        previous = now
    # rules patched across several report changes at once (ruleset() called once at the end)
    lazy = Engine(_base(border, policy, tuple(igp)).replace(reports=tuple(initial)))
    lazy.ruleset()
    for add, report in sequence:
        lazy.apply(ReportAdded(report) if add else ReportRemoved(report))
    assert lazy.ruleset().to_json() == compute(lazy.snapshot()).to_json()


def test_a_report_redoes_only_its_subnet_attachments() -> None:
    """a1 and a2 share subnet s1; a3 is elsewhere: adding to s1 on a1 changes a1 and a2, never a3."""
    engine = Engine(_base(False, Policy()).replace(reports=(
        PrefixReport("a1", "lan1", "10.1.0.0/16", "s1"), PrefixReport("a2", "lan1", "10.2.0.0/16", "s1"),
        PrefixReport("a3", "lan1", "192.0.2.0/24", "s2"))))
    engine.ruleset()
    changed = engine.apply(ReportAdded(PrefixReport("a1", "lan2", "10.1.2.0/24", "s1")))
    assert changed == {("a1", "lan1"), ("a1", "lan2"), ("a2", "lan1")}
    assert engine.intra[("a2", "lan1")].prefixes == {"10.1.0.0/16", "10.2.0.0/16", "10.1.2.0/24"}


def test_colliding_pieces_keep_border_blocklist_provenance() -> None:
    """192.0.2.0/24 minus an anycast /25 leaves 192.0.2.0/25, itself internal: the entry carries the
    provenance border_blocklist gives it (the later internal prefix in its order), however reports come."""
    igp = (IgpPrefix("a1", "192.0.2.0/24"),)
    hole = PrefixReport("a2", "lan1", "192.0.2.128/25", flags=PrefixFlags(anycast=True))
    sequence = [PrefixReport("a3", "lan1", "192.0.2.0/25"), hole, PrefixReport("a1", "lan1", "192.0.2.0/24"),
                PrefixReport("a1", "lan2", "192.0.2.0/25")]
    live = LiveBlocklist((), igp, (), ())
    for i, r in enumerate(sequence + sequence[:2]):
        live.apply(r, i < len(sequence))
        now = sequence[:i + 1] if i < len(sequence) else sequence[i + 1 - len(sequence):]
        assert live.block == border_blocklist(sorted(now, key=report_order), igp)


# --- one interface's allowlist patched by the prefixes a report change touches (issue 13) ---------------

KEY = ("a1", "lan1")
own_reports = st.builds(
    PrefixReport, st.just("a1"), st.just("lan1"), st.sampled_from(PREFIXES[:4]),
    st.sampled_from(["", "", "", "s1"]), st.builds(PrefixFlags, st.booleans()),
    st.sampled_from(["api", "file", "bgp-ls"]),
)
other_reports = st.builds(PrefixReport, st.sampled_from(["a1", "a2"]), st.sampled_from(["lan2", "lan1"]),
                          st.sampled_from(PREFIXES[2:6]), st.sampled_from(["", "s1"]))
key_algorithms = st.sampled_from([Algorithm.STRICT, Algorithm.AUTO, Algorithm.FEASIBLE, Algorithm.LOOSE])
one_iface_steps = st.lists(st.tuples(
    st.one_of(own_reports.map(ReportAdded), own_reports.map(ReportRemoved), other_reports.map(ReportAdded),
              other_reports.map(ReportRemoved),
              key_algorithms.map(lambda a: PolicyChanged(Policy(interface_algorithms={KEY: a})))),
    st.sampled_from([True, True, False]),  # read the outcome after this step (else changes pile up)
), min_size=1, max_size=30)


def _expected(engine: Engine, key: tuple[str, str]) -> IntraOutcome | None:
    """The allowlist of `key` from scratch, from the engine's reports (not its indexes)."""
    reports = engine.snapshot().reports
    own = [r for r in reports if (r.router, r.interface) == key]
    by_subnet: dict[str, list[PrefixReport]] = {}
    for r in reports:
        if r.subnet:
            by_subnet.setdefault(r.subnet, []).append(r)
    return access_outcome(key, own, by_subnet, engine.policy.algorithm_for(*key)) if own else None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key_algorithms, st.lists(own_reports, max_size=10), one_iface_steps)
def test_patched_allowlist_equals_access_outcome(algo: Algorithm, initial: list[PrefixReport],
                                                 sequence: list[tuple[object, bool]]) -> None:
    """Adds and removes on one interface (anycast flags, one prefix from several sources, with and without
    a subnet, a neighbour sharing the subnet), policy changes between them, read after some steps only."""
    policy = Policy(interface_algorithms={KEY: algo})
    engine = Engine(_base(False, policy).replace(reports=tuple(initial)))
    for event, read in sequence:
        engine.apply(event)  # type: ignore[arg-type]
        if read:
            assert engine.intra.get(KEY) == _expected(engine, KEY), f"after {event}"
            assert engine.intra == _full_intra(engine)
    assert engine.ruleset().to_json() == compute(engine.snapshot()).to_json()


def test_a_prefix_reported_twice_keeps_the_other_tag() -> None:
    """Two sources report one prefix: removing one leaves the other's tag; under strict an anycast report
    of it lists nothing. The outcome read before is not touched (older decisions hold it)."""
    api, file = PrefixReport(*KEY, "10.1.0.0/16"), PrefixReport(*KEY, "10.1.0.0/16", source="file")
    anycast = PrefixReport(*KEY, "10.1.0.0/16", flags=PrefixFlags(anycast=True), source="bgp-ls")
    policy = Policy(interface_algorithms={KEY: Algorithm.STRICT})
    engine = Engine(_base(False, policy).replace(reports=(api, file, PrefixReport(*KEY, "10.2.0.0/16"))))
    before = engine.intra[KEY]
    kept = dict(before.provenance)
    assert kept["10.1.0.0/16"] == tuple(sorted((report_tag(api), report_tag(file))))
    engine.apply(ReportRemoved(api))
    assert engine.intra[KEY].provenance["10.1.0.0/16"] == (report_tag(file),)
    engine.apply(ReportRemoved(file))
    engine.apply(ReportAdded(anycast))
    assert engine.intra[KEY].prefixes == {"10.2.0.0/16"}
    assert engine.intra[KEY] == _expected(engine, KEY)
    assert before.provenance == kept and before.prefixes == set(kept)


def test_a_lone_report_patches_instead_of_rebuilding(monkeypatch: pytest.MonkeyPatch) -> None:
    """A report without a subnet on a 1,000-report interface redoes its prefix only (access_outcome, which
    reads every report of the interface, is not called); one with a subnet still rebuilds."""
    many = tuple(PrefixReport(*KEY, f"10.{i // 256}.{i % 256}.0/24") for i in range(1000))
    engine = Engine(_base(False, Policy()).replace(reports=many))
    calls: list[tuple[str, str]] = []

    def counting(key: tuple[str, str], *args: object) -> IntraOutcome:
        calls.append(key)
        return access_outcome(key, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(incremental, "access_outcome", counting)
    lone = PrefixReport(*KEY, "192.0.2.0/24", flags=PrefixFlags(anycast=True))
    for event in (ReportAdded(lone), ReportAdded(many[0]), ReportRemoved(many[1]), ReportRemoved(lone)):
        engine.apply(event)
        assert engine.intra[KEY] == _expected(engine, KEY)
    assert calls == []
    engine.apply(ReportAdded(PrefixReport(*KEY, "192.0.2.0/24", "s1")))
    assert engine.intra[KEY] == _expected(engine, KEY)
    assert calls == [KEY]
