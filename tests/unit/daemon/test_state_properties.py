"""Property: any sequence of changes leaves the store equal to a naive model of (source, fact) pairs,
and a journal restore (replay and checkpoint) rebuilds exactly the same snapshot and version."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.model import Aspa, PrefixReport, Vrp
from appliance.state import Announce, Change, Journal, ReplaceSource, StateStore, Withdraw, WithdrawSource
from appliance.state.facts import Fact, kind_of

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
