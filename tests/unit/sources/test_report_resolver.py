"""`ReportResolver` equals `resolve` over the whole report set after every change.

Random sequences of report adds, removes and replacements (the store's way: a sorted tuple of distinct
facts, unchanged ones kept as the same objects) over several routers and interfaces, three sources
competing for one (router, interface, prefix), multi-homed and conflicting subnets, nested prefixes and
anycast flags; after each step the winners, their order and every event (overrides and conflict alarms,
in order) must be those of a from-scratch `resolve`.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.model import PrefixFlags, PrefixReport
from appliance.sources.reports.merge import ReportResolver, resolve
from appliance.sources.reports.records import RouterReport

PREFIXES = ("10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.128/25", "10.2.0.0/16", "192.0.2.0/24",
            "2001:db8::/32", "2001:db8:1::/48", "2001:db8:1:2::/64", "0.0.0.0/0")

reports = st.builds(
    PrefixReport,
    st.sampled_from(["r1", "r2", "r3"]),
    st.sampled_from(["lan1", "lan2", ""]),
    st.sampled_from(PREFIXES),
    st.sampled_from(["s1", "s2", "s3", ""]),
    st.builds(PrefixFlags, st.sampled_from([False, False, True]), st.booleans(), st.booleans()),
    st.sampled_from(["api", "file", "bgp-ls", "other"]),
)
# (False, r): remove a random present report; (True, r): add r; each step changes 1-3 reports
steps = st.lists(st.lists(st.tuples(st.booleans(), reports, st.integers(0, 50)), min_size=1, max_size=3),
                 min_size=1, max_size=25)


def _store_order(facts: set[PrefixReport]) -> tuple[PrefixReport, ...]:
    return tuple(sorted(facts, key=repr))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sets(reports, max_size=15), steps)
def test_resolver_equals_full_resolve_after_every_step(
    initial: set[PrefixReport], sequence: list[list[tuple[bool, PrefixReport, int]]]
) -> None:
    roles = (RouterReport("r1", None, None, "api"),)
    resolver = ReportResolver()
    facts = dict.fromkeys(_store_order(initial))  # kept objects: the store reuses unchanged facts
    current = tuple(facts)
    assert resolver(current, roles) == resolve(current, roles)
    for step in sequence:
        for add, report, pick in step:
            if add:
                facts.setdefault(report, None)
            elif facts:
                del facts[list(facts)[pick % len(facts)]]
        current = tuple(sorted(facts, key=repr))
        got, want = resolver(current, roles), resolve(current, roles)
        assert got.prefixes == want.prefixes
        assert got.events == want.events
        assert got == want


def test_a_conflict_comes_and_goes_with_one_report() -> None:
    """A /24 of another subnet inside one of 50 /16s raises one overlap alarm; removing it clears it."""
    base = tuple(PrefixReport("r1", f"lan{i}", f"10.{i}.0.0/16", f"s{i}") for i in range(50))
    resolver = ReportResolver()
    assert resolver(base).conflicts() == ()
    rival = PrefixReport("r2", "lan1", "10.3.0.0/24", "other")
    got = resolver((*base, rival))
    assert [(e.type, e.fields["prefix"], e.fields["other_prefix"]) for e in got.conflicts()] == [
        ("report-overlap", "10.3.0.0/16", "10.3.0.0/24")]
    assert got == resolve((*base, rival))
    assert resolver(base).conflicts() == ()


def test_a_malformed_prefix_raises_and_the_next_call_starts_over() -> None:
    resolver = ReportResolver()
    good = (PrefixReport("r1", "lan1", "10.0.0.0/8", "s1"),)
    resolver(good)
    with pytest.raises(ValueError):
        resolver((*good, PrefixReport("r1", "lan2", "10.0.0.1/8", "s2")))
    assert resolver(good) == resolve(good)
