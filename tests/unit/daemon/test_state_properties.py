"""Property: any sequence of changes leaves the store equal to a naive model of (source, fact) pairs,
and a journal restore (replay and checkpoint) rebuilds exactly the same snapshot and version; snapshots
taken between changes stay frozen and in the order of a full sort, whichever way the store patched them."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.model import Aspa, PrefixReport, Vrp
from appliance.state import Announce, Change, Journal, ReplaceSource, StateStore, Withdraw, WithdrawSource
from appliance.state.facts import FACT_KINDS, Fact, kind_of
from appliance.state.store import _KEYS

FACTS: list[Fact] = [
    Vrp("198.18.0.0/16", 24, 65010), Vrp("198.18.0.0/16", 16, 65010), Vrp("2001:db8::/32", 48, 65020),
    Aspa(65010, (65020,)), Aspa(65020, ()),
    PrefixReport("r1", "eth1", "198.18.1.0/24"), PrefixReport("r2", "eth1", "198.18.1.0/24", source="bgp-ls"),
]
SOURCES = ["api", "rtr:a", "rtr:b"]
KINDS = ["vrp", "aspa", "report"]

facts = st.lists(st.sampled_from(FACTS), max_size=4).map(tuple)
source = st.sampled_from(SOURCES)
change: st.SearchStrategy[Change] = st.one_of(
    st.builds(Announce, source, facts),
    st.builds(Withdraw, source, facts),
    st.builds(ReplaceSource, source, st.lists(st.sampled_from(KINDS), max_size=2).map(tuple), facts),
    st.builds(WithdrawSource, source),
)


def model(changes: list[Change]) -> set[tuple[str, Fact]]:
    held: set[tuple[str, Fact]] = set()
    for c in changes:
        if isinstance(c, Announce):
            held |= {(c.source, f) for f in c.facts}
        elif isinstance(c, Withdraw):
            held -= {(c.source, f) for f in c.facts}
        elif isinstance(c, ReplaceSource):
            held = {(s, f) for s, f in held if s != c.source or kind_of(f) not in c.kinds}
            held |= {(c.source, f) for f in c.facts}
        else:
            held = {(s, f) for s, f in held if s != c.source}
    return held


@settings(max_examples=60, deadline=None)
@given(st.lists(change, max_size=12), st.integers(min_value=1, max_value=5))
def test_store_matches_the_model_and_restores_exactly(changes: list[Change], checkpoint_every: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        with Journal.open(Path(tmp)) as journal:
            store = StateStore(journal, now=lambda: 1.0, checkpoint_every=checkpoint_every)
            for c in changes:
                store.apply(c)
            snap = store.snapshot()
            expected = model(changes)
            held = {(s, f) for kind in ("vrp", "aspa", "report")
                    for f in getattr(snap, {"vrp": "vrps", "aspa": "aspas", "report": "reports"}[kind])
                    for s in snap.sources_of(f)}
            assert held == expected
        with Journal.open(Path(tmp)) as journal:
            restored = StateStore.restore(journal)
            again = restored.snapshot()
            assert again == snap and restored.version == store.version
            assert expected == {(s, f) for f in (*again.vrps, *again.aspas, *again.reports)
                                for s in again.sources_of(f)}


# --- snapshots taken between changes stay frozen, and every patch path keeps the order of a full sort ----

BASE = [Vrp(f"2001:db8:{i:x}::/48", 48, 65000 + i % 7) for i in range(400)]
EXTRA = [Vrp(f"198.18.{i}.0/24", 24, 65100 + i % 3) for i in range(200)]
POOL = BASE[::5] + EXTRA  # base facts to withdraw or restate, new facts to add


def _ordered(kind: str, facts: Iterable[Fact]) -> tuple[Fact, ...]:
    return tuple(sorted(facts, key=_KEYS[FACT_KINDS[kind]]))


def _bulk(op: type[Announce] | type[Withdraw]) -> st.SearchStrategy[Change]:
    """33..100 facts of a 400-fact kind: more than the in-place limit, so the list is merged instead."""
    return st.builds(op, source, st.integers(0, len(POOL) - 100).flatmap(
        lambda lo: st.integers(33, 100).map(lambda n: tuple(POOL[lo:lo + n]))))


small = st.lists(st.sampled_from(POOL), min_size=1, max_size=4).map(tuple)
interleaved: st.SearchStrategy[Change] = st.one_of(
    st.builds(Announce, source, small), st.builds(Withdraw, source, small),
    _bulk(Announce), _bulk(Withdraw),
    st.builds(ReplaceSource, source, st.just(("vrp",)), small), st.builds(WithdrawSource, source),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(interleaved, min_size=1, max_size=3), min_size=1, max_size=10))
def test_snapshots_between_changes_stay_frozen_and_sorted(bursts: list[list[Change]]) -> None:
    store = StateStore()
    base = Announce("rtr:base", tuple(BASE))
    store.apply(base)
    done: list[Change] = [base]
    taken = [(store.snapshot(), set(model(done)))]
    for burst in bursts:
        for c in burst:
            store.apply(c)
            done.append(c)
        taken.append((store.snapshot(), set(model(done))))
    for snap, held in taken:  # every earlier snapshot still shows exactly the state of its time
        by_fact: dict[Fact, set[str]] = {}
        for s, f in held:
            by_fact.setdefault(f, set()).add(s)
        facts = set(by_fact)
        assert snap.vrps == _ordered("vrp", facts)
        assert dict(snap.sources["vrp"]) == by_fact
        assert len(snap.sources["vrp"]) == len(facts)
        assert all(snap.sources_of(f) == frozenset() for f in POOL if f not in facts)
    fresh = StateStore()
    fresh.apply(Announce("any", tuple(reversed(taken[-1][0].vrps))))
    assert fresh.snapshot().vrps == taken[-1][0].vrps  # as a store that sorted everything at once
