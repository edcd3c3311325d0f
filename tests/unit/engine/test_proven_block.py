"""The default (`auto`) on a customer interface with RPKI data: the shorter of the allowlist (BAR-SAV |
unproven) and the blocklist of the known prefixes ASPA proves outside the cone, never blocking what the
allowlist passes."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.engine.incremental import (
    Engine,
    PathAdded,
    PathRemoved,
    ReportAdded,
    ReportRemoved,
    RpkiChanged,
)
from appliance.engine.inter import PROVEN_BLOCK, overlapping_unproven, proven_outside
from appliance.engine.prefixset import PrefixSet
from appliance.engine.snapshot import Snapshot, compute, decide
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
    SavRuleSet,
)

C, V = Relationship.CUSTOMER, Relationship.PROVIDER
UNATTESTED = tuple(f"10.30.{k}.0/24" for k in range(5))  # originated by AS65030, which has no ASPA


def _snapshot(*extra: BgpPath, aspas: tuple[Aspa, ...] = (), **kw: object) -> Snapshot:
    return Snapshot(
        routers=(Router("b", asn=65000, role=Role.BORDER),),
        neighbors=(
            Neighbor("b", "c1", 65001, C), Neighbor("b", "c2", 65002, C), Neighbor("b", "u1", 65020, V),
        ),
        paths=(
            BgpPath("b", "c1", "10.1.0.0/24", (65001,)),
            BgpPath("b", "c2", "10.2.0.0/24", (65002,)),
            *(BgpPath("b", "u1", x, (65020, 65030)) for x in UNATTESTED),
            *extra,
        ),
        aspas=(Aspa(65001, (65000,)), Aspa(65002, (65000,)), *aspas),
    ).replace(**kw)


def _rule(rules: SavRuleSet, iface: str) -> tuple[ListKind, str, tuple[str, ...]]:
    r = rules.get("b", iface)
    assert r is not None
    return r.kind, r.algorithm, r.prefixes


def test_blocklist_when_shorter() -> None:
    # c1's allowlist: its own prefix plus the five of AS65030 (no ASPA: a hidden customer cannot be excluded);
    # the blocklist: the one known prefix whose origin ASPA places outside c1's cone
    assert _rule(compute(_snapshot()), "c1") == (ListKind.BLOCK, PROVEN_BLOCK, ("10.2.0.0/24",))
    assert _rule(compute(_snapshot()), "c2") == (ListKind.BLOCK, PROVEN_BLOCK, ("10.1.0.0/24",))


def test_allowlist_when_shorter() -> None:
    # AS65030 and its provider AS65020 attest: nothing is unproven, c1's list is BAR-SAV's one prefix
    rules = compute(_snapshot(aspas=(Aspa(65030, (65020,)), Aspa(65020, (0,)))))
    assert _rule(rules, "c1") == (ListKind.ALLOW, "auto:bar-sav", ("10.1.0.0/24",))


def test_tie_keeps_the_allowlist() -> None:
    # one unproven prefix: allowlist 10.1.0.0/24 + 10.30.0.0/24 (2), blocklist 10.2.0.0/24 + 10.3.0.0/24 (2)
    snap = _snapshot(BgpPath("b", "c2", "10.3.0.0/24", (65002,))).replace(
        paths=(
            BgpPath("b", "c1", "10.1.0.0/24", (65001,)),
            BgpPath("b", "c2", "10.2.0.0/24", (65002,)),
            BgpPath("b", "c2", "10.3.0.0/24", (65002,)),
            BgpPath("b", "u1", UNATTESTED[0], (65020, 65030)),
        )
    )
    allow = (ListKind.ALLOW, "auto:bar-sav+unproven", ("10.1.0.0/24", UNATTESTED[0]))
    assert _rule(compute(snap), "c1") == allow


def test_a_candidate_overlapping_an_allowed_prefix_is_not_blocked() -> None:
    snap = _snapshot(
        # proven outside c1's cone (AS65002 attests), but it covers 10.2.5.0/24 of AS65030 (unproven)
        BgpPath("b", "u1", "10.2.0.0/16", (65020, 65002)),
        BgpPath("b", "u1", "10.2.5.0/24", (65020, 65030)),
        # proven outside c1's cone, but it covers c1's own 10.1.0.0/24 (BAR-SAV's list)
        BgpPath("b", "u1", "10.1.0.0/16", (65020, 65002)),
        # proven outside c1's cone, but inside c1's 10.1.0.0/24: the allowlist passes it
        BgpPath("b", "u1", "10.1.0.128/25", (65020, 65002)),
        # proven outside c1's cone and overlapping nothing allowed there
        BgpPath("b", "u1", "10.4.0.0/16", (65020, 65002)),
    )
    kind, algorithm, prefixes = _rule(compute(snap), "c1")
    assert (kind, algorithm) == (ListKind.BLOCK, PROVEN_BLOCK)
    assert prefixes == ("10.2.0.0/24", "10.4.0.0/16")
    # the note says why the blocklist was chosen (allowlist: 10.1.0.0/24, 10.2.5.0/24 and the five)
    assert _notes(snap, "c1")[0].startswith("allowlist would list 7 prefixes, blocklist 2")


def _notes(snap: Snapshot, iface: str) -> tuple[str, ...]:
    return decide(snap)[("b", iface)].notes


def test_intra_blocklist_adds_only_what_the_allowlist_drops() -> None:
    # an internal /16 covering c1's announced /24 (PA space delegated to the customer) is not applied on
    # c1; an internal prefix overlapping nothing allowed there is
    snap = _snapshot(
        interfaces=(Interface("b", "c1", external=True),),
        reports=(
            PrefixReport("b", "lan", "10.1.0.0/16", "s1"),
            PrefixReport("b", "lan", "10.99.0.0/24", "s2"),
        ),
    )
    kind, algorithm, prefixes = _rule(compute(snap), "c1")
    assert kind is ListKind.BLOCK and algorithm == f"{PROVEN_BLOCK}+intra:border-block"
    assert prefixes == ("10.2.0.0/24", "10.99.0.0/24")
    assert any("1 prefixes not applied" in n for n in _notes(snap, "c1"))


def test_incremental_follows_the_choice_both_ways() -> None:
    engine = Engine(_snapshot())
    assert _rule(engine.ruleset(), "c1")[0] is ListKind.BLOCK
    steps: list[object] = [
        RpkiChanged(aspas_added=(Aspa(65030, (65020,)), Aspa(65020, (0,)))),  # nothing unproven: allow
        PathAdded(BgpPath("b", "u1", "10.40.0.0/24", (65020, 65040))),  # 65040 has no ASPA: allow, 2
        PathAdded(BgpPath("b", "u1", "10.40.1.0/24", (65020, 65040))),
        PathAdded(BgpPath("b", "u1", "10.40.2.0/24", (65020, 65040))),
        PathAdded(BgpPath("b", "u1", "10.40.3.0/24", (65020, 65040))),
        PathAdded(BgpPath("b", "u1", "10.40.4.0/24", (65020, 65040))),
        PathAdded(BgpPath("b", "u1", "10.40.5.0/24", (65020, 65040))),  # allow 7 > block 6: block
        PathRemoved(BgpPath("b", "u1", "10.40.5.0/24", (65020, 65040))),  # 6 = 6: allow
    ]
    kinds = []
    for event in steps:
        before = engine.ruleset()
        changed = engine.apply(event)  # type: ignore[arg-type]
        now = engine.ruleset()
        assert now.to_json() == compute(engine.snapshot()).to_json(), f"after {event}"
        if before.get("b", "c1") != now.get("b", "c1"):
            assert ("b", "c1") in changed
        kinds.append(_rule(now, "c1")[0])
    assert kinds == [ListKind.ALLOW] * 6 + [ListKind.BLOCK, ListKind.ALLOW]



def test_report_steps_on_a_proven_block_interface_equal_a_full_compute() -> None:
    # the border blocklist joins c1's proven blocklist minus what overlaps c1's allowed prefixes; the
    # engine judges each new blocklist by its difference from the last one, which must not matter
    engine = Engine(_snapshot(interfaces=(Interface("b", "c1", external=True),),
                              reports=(PrefixReport("b", "lan", "10.99.0.0/24", "s0"),)))
    steps = [
        ReportAdded(PrefixReport("b", "lan", "10.1.0.0/16", "s1")),     # overlaps c1's 10.1.0.0/24: dropped
        ReportAdded(PrefixReport("b", "lan", "10.98.0.0/24", "s2")),    # applied
        ReportRemoved(PrefixReport("b", "lan", "10.99.0.0/24", "s0")),
        ReportAdded(PrefixReport("b", "lan2", "10.98.0.0/24", "s3")),   # same prefix, second report
        ReportRemoved(PrefixReport("b", "lan", "10.98.0.0/24", "s2")),  # still reported on lan2
        ReportRemoved(PrefixReport("b", "lan", "10.1.0.0/16", "s1")),
        ReportAdded(PrefixReport("b", "lan", "10.99.0.0/24", "s0")),    # back as it began
    ]
    seen = set()
    for event in steps:
        engine.apply(event)
        now = engine.ruleset()
        assert now.to_json() == compute(engine.snapshot()).to_json(), f"after {event}"
        seen.add(_rule(now, "c1")[2])
    assert ("10.2.0.0/24", "10.98.0.0/24", "10.99.0.0/24") in seen   # the reports did reach c1


_POOL = [
    "10.0.0.0/8", "10.1.0.0/16", "10.1.0.0/24", "10.1.0.128/25", "10.1.1.0/24", "10.2.0.0/16", "10.2.5.0/24",
    "11.0.0.0/8", "2001:db8::/32", "2001:db8:1::/48", "2001:db8:2::/48", "0.0.0.0/0",
]


@settings(max_examples=150, deadline=None)
@given(st.sets(st.sampled_from(_POOL)), st.sets(st.sampled_from(_POOL)))
def test_proven_outside_agrees_from_either_side(candidates: set[str], unproven: set[str]) -> None:
    u = frozenset(unproven)
    one, other = proven_outside(candidates, u, scan_unproven=True), proven_outside(candidates, u, False)
    assert one == other
    # brute force with ipaddress: nothing blockable overlaps an unproven prefix
    nets = [ipaddress.ip_network(x) for x in u]
    for x in one.blockable:
        n = ipaddress.ip_network(x)
        assert x not in u and not any(n.version == m.version and n.overlaps(m) for m in nets)
    assert one.blockable | {x for x in candidates if x in u} <= set(candidates)


@settings(max_examples=200, deadline=None)
@given(st.sets(st.sampled_from(_POOL), max_size=3), st.sets(st.sampled_from(_POOL), min_size=1))
def test_overlapping_unproven_by_tree_equals_the_scan(prefixes: set[str], unproven: set[str]) -> None:
    # a few prefixes against a larger U are looked up in a tree of U instead of scanning U
    u = frozenset(unproven) | frozenset(f"10.77.{k}.0/24" for k in range(40))   # > 8x the prefixes asked
    asked = frozenset(prefixes) | {"10.77.0.0/16"}   # covers members of U
    scan = overlapping_unproven(asked, u)
    assert overlapping_unproven(asked, u, lambda: PrefixSet(u)) == scan
    assert "10.77.0.0/16" in scan
