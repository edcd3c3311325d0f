"""State store: facts keyed by source, versioned snapshots, SQLite journal restore, corrupt journals."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from appliance.model import (
    Action,
    Aspa,
    BgpPath,
    IgpPrefix,
    Interface,
    InterfaceRules,
    Link,
    ListKind,
    Mode,
    Neighbor,
    PrefixFlags,
    PrefixReport,
    Relationship,
    Role,
    Router,
    SavRuleSet,
    Vrp,
)
from appliance.state import (
    Announce,
    Journal,
    ReplaceSource,
    StateError,
    StateErrorKind,
    StateStore,
    Withdraw,
    WithdrawSource,
)
from appliance.state.changes import decode_change, encode_change
from appliance.state.journal import FILE_NAME

R1_LAN = PrefixReport("r1", "eth1", "198.18.1.0/24", subnet="lan-a", source="api")
R2_LAN = PrefixReport("r2", "eth1", "198.18.2.0/24", flags=PrefixFlags(multihomed=True), source="bgp-ls")
VRP_A = Vrp("198.18.0.0/16", 24, 65010)
VRP_B = Vrp("2001:db8::/32", 48, 65020)
ALL_KINDS = (
    Router("r1", "198.18.0.1", 65000, Role.BORDER),
    Interface("r1", "eth1", ("198.18.1.1/24",), external=False),
    Link("r1", "r2", "198.18.0.1", "198.18.0.2", 10),
    IgpPrefix("r1", "198.18.1.0/24", 10, (7,)),
    R1_LAN,
    Neighbor("r1", "eth2", 64600, Relationship.CUSTOMER, "198.18.9.2"),
    BgpPath("r1", "eth2", "198.18.64.0/20", (64600, 64601), 3),
    VRP_A,
    Aspa(64601, (64600,)),
)


def test_every_fact_kind_round_trips_through_the_journal_codec() -> None:
    change = Announce("api", ALL_KINDS)
    back = decode_change(encode_change(change))
    assert isinstance(back, Announce) and back.source == "api"
    assert sorted(map(repr, back.facts)) == sorted(map(repr, ALL_KINDS))  # a set: grouped by kind
    assert encode_change(back) == encode_change(change)
    for c in (Withdraw("x", (VRP_A,)), ReplaceSource("rtr:c", ("vrp",), (VRP_B,)), WithdrawSource("x")):
        assert decode_change(encode_change(c)) == c


@pytest.mark.parametrize("text, message", [
    ("{", "not JSON"),
    ('{"op":"Announce"}', "string 'source'"),
    ('{"op":"Frobnicate","source":"a","facts":{}}', "unknown op 'Frobnicate'"),
    ('{"op":"Announce","source":"a","facts":[]}', "'facts' must be an object"),
    ('{"op":"Announce","source":"a","facts":{"vrp":[{"prefix":"x","max_length":"many","asn":1}]}}',
     r"bad vrp: \[0.max_length\]"),
    ('{"op":"Announce","source":"a","facts":{"ufo":[{}]}}', "unknown fact kind 'ufo'"),
])
def test_bad_journal_lines_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_change(text)


def test_facts_are_keyed_by_source() -> None:
    store = StateStore()
    assert store.apply(Announce("rtr:a", (VRP_A, VRP_B))).version == 1
    assert store.apply(Announce("rtr:b", (VRP_A,))).kinds == frozenset()  # same fact, second source
    assert store.snapshot().sources_of(VRP_A) == {"rtr:a", "rtr:b"}
    applied = store.apply(WithdrawSource("rtr:a"))
    assert applied.kinds == {"vrp"} and store.snapshot().vrps == (VRP_A,)
    assert store.sources_of(VRP_A) == {"rtr:b"}
    assert store.sources() == {"rtr:b": 1}


def test_no_op_changes_do_not_bump_the_version() -> None:
    store = StateStore()
    store.apply(Announce("api", (R1_LAN,)))
    assert store.apply(Announce("api", (R1_LAN,))).changed is False
    assert store.apply(Withdraw("other", (R1_LAN,))).changed is False
    assert store.apply(WithdrawSource("nobody")).changed is False
    assert store.version == 1


def test_replace_source_resyncs_only_the_named_kinds() -> None:
    store = StateStore()
    store.apply(Announce("rtr:a", (VRP_A, Aspa(1, (2,)))))
    applied = store.apply(ReplaceSource("rtr:a", ("vrp",), (VRP_B,)))
    assert applied.kinds == {"vrp"}
    snap = store.snapshot()
    assert snap.vrps == (VRP_B,) and snap.aspas == (Aspa(1, (2,)),)


def test_snapshots_are_frozen_numbered_and_order_independent() -> None:
    facts = [*ALL_KINDS, R2_LAN, VRP_B]
    first = StateStore()
    for f in facts:
        first.apply(Announce("s", (f,)))
    shuffled = facts[:]
    random.Random(7).shuffle(shuffled)
    second = StateStore()
    second.apply(Announce("s", tuple(shuffled)))
    old = second.snapshot()
    assert old.version == 1 and first.snapshot().version == len(facts)
    assert first.snapshot().reports == old.reports == (R1_LAN, R2_LAN)
    assert (first.snapshot().vrps, first.snapshot().paths) == (old.vrps, old.paths)
    second.apply(Withdraw("s", (R1_LAN,)))
    assert old.reports == (R1_LAN, R2_LAN) and second.snapshot().reports == (R2_LAN,)
    assert second.snapshot() is second.snapshot()


def test_snapshots_stay_frozen_and_ordered_across_interleaved_adds_and_removes() -> None:
    vrps = sorted((Vrp(f"2001:db8:{i:x}::/48", 48, 65000 + i % 3) for i in range(400)),
                  key=lambda v: (v.prefix, v.max_length, v.asn))  # the store's order
    store = StateStore()
    store.apply(Announce("rtr:a", tuple(vrps[::2])))
    first = store.snapshot()
    store.apply(Announce("rtr:a", (vrps[1], vrps[399])))
    store.apply(Withdraw("rtr:a", (vrps[0], vrps[100])))
    store.apply(Announce("rtr:b", (vrps[2],)))  # a second source only: same facts, new provenance
    second = store.snapshot()
    store.apply(Withdraw("rtr:a", (vrps[1],)))
    store.apply(Announce("rtr:a", (vrps[1], vrps[0])))  # gone and back before any snapshot saw it
    store.apply(Announce("rtr:a", tuple(vrps[3:83:2])))  # 40 at once: merged, not bisected one by one
    third = store.snapshot()
    assert first.vrps == tuple(vrps[::2]) and first.sources_of(vrps[2]) == {"rtr:a"}
    assert first.sources_of(vrps[1]) == frozenset() and len(first.sources["vrp"]) == 200
    want = sorted({*vrps[::2], vrps[1], vrps[399]} - {vrps[0], vrps[100]}, key=vrps.index)
    assert second.vrps == tuple(want) and second.sources_of(vrps[2]) == {"rtr:a", "rtr:b"}
    assert second.sources_of(vrps[0]) == frozenset() and set(second.sources["vrp"]) == set(want)
    want = sorted({*want, vrps[0], *vrps[3:83:2]}, key=vrps.index)
    assert third.vrps == tuple(want) and dict(third.sources["vrp"]) == {
        v: frozenset({"rtr:a", "rtr:b"} if v == vrps[2] else {"rtr:a"}) for v in want}
    assert store.snapshot() is third and first.vrps == tuple(vrps[::2])


def test_a_patch_that_misses_a_removed_fact_says_so() -> None:
    from appliance.state.store import edit_sorted, merge_sorted

    def key(v: Vrp) -> tuple[str, int, int]:
        return (v.prefix, v.max_length, v.asn)

    assert merge_sorted((VRP_A,), (), (VRP_B,), key) is None
    assert edit_sorted([VRP_A], (), (VRP_B,), key) is False
    assert merge_sorted((VRP_A,), (VRP_B,), (), key) == [VRP_A, VRP_B]
    order = [VRP_B]
    assert edit_sorted(order, (VRP_A,), (VRP_B,), key) and order == [VRP_A]


def test_listeners_hear_real_changes_only() -> None:
    store = StateStore()
    heard: list[int] = []
    store.subscribe(lambda applied, change: heard.append(applied.version))
    store.apply(Announce("api", (R1_LAN,)))
    store.apply(Announce("api", (R1_LAN,)))
    assert heard == [1]


RULES = SavRuleSet.of([
    InterfaceRules("r1", "eth1", ListKind.ALLOW, ("198.18.1.0/24",), Action(Mode.DROP),
                   provenance={"198.18.1.0/24": ("report:lan-a@r1:eth1",)}),
])


def test_restart_restores_facts_version_pushed_rules_and_rule_set(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as journal:
        store = StateStore(journal, now=lambda: 5.0, checkpoint_every=3)
        for change in (Announce("api", (R1_LAN,)), Announce("rtr:a", (VRP_A, VRP_B)),
                       Announce("bgp-ls:exa1/198.18.0.2", ALL_KINDS[:5]),  # checkpoint here
                       Withdraw("rtr:a", (VRP_B,)), Announce("bgp-ls:exa1/198.18.0.3", (R2_LAN,))):
            store.apply(change)
        assert journal.input_count() == 2
        store.record_push("198.18.0.2", {"k1": "rule one", "k2": "rule two"}, ())
        store.record_push("198.18.0.2", {"k3": "rule three"}, ("k1",))
        store.save_ruleset(RULES, store.version)
        before = store.snapshot()
    with Journal.open(tmp_path) as journal:
        restored = StateStore.restore(journal)
        after = restored.snapshot()
        assert after == before and after.version == 5
        assert after.sources_of(R1_LAN) == {"api", "bgp-ls:exa1/198.18.0.2"}
        assert restored.pushed("198.18.0.2") == {"k2": "rule two", "k3": "rule three"}
        assert restored.pushed_peers() == ["198.18.0.2"]
        assert restored.last_ruleset() == (5, RULES)
        assert restored.apply(Withdraw("api", (R1_LAN,))).version == 6


def test_pushed_rules_are_read_from_the_journal_once_a_failed_write_changes_none(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as journal:
        StateStore(journal).record_push("p", {"a": "1", "b": "2"}, ())
    with Journal.open(tmp_path) as journal:
        store = StateStore.restore(journal)
        reads = []
        real = journal.pushed
        journal.pushed = lambda peer: reads.append(peer) or real(peer)  # type: ignore[method-assign]
        assert store.pushed("p") == store.pushed("p") == {"a": "1", "b": "2"} and reads == ["p"]

        def refuse(*args: object) -> None:
            raise StateError("disk full", "journal.db", kind=StateErrorKind.DISK_FULL)

        journal.record_push = refuse  # type: ignore[method-assign]
        with pytest.raises(StateError):
            store.record_push("p", {"c": "3"}, ("a",))
        assert store.pushed("p") == {"a": "1", "b": "2"}   # as the journal still says
    with Journal.open(tmp_path) as journal:
        assert StateStore.restore(journal).pushed("p") == {"a": "1", "b": "2"}


def test_pushed_rules_without_a_journal_stay_in_memory() -> None:
    store = StateStore()
    store.record_push("p", {"a": "1", "b": "2"}, ())
    store.record_push("p", {}, ("a",))
    assert store.pushed("p") == {"b": "2"} and store.pushed_peers() == ["p"]


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_bytes(b"this is not sqlite at all, just text" * 100)
    with pytest.raises(StateError) as info:
        Journal.open(tmp_path)
    assert str(tmp_path / FILE_NAME) in str(info.value) and "not a usable journal" in str(info.value)


def test_a_damaged_row_names_its_sequence_number(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as journal:
        store = StateStore(journal)
        store.apply(Announce("api", (R1_LAN,)))
        store.apply(Announce("api", (R2_LAN,)))
    conn = sqlite3.connect(tmp_path / FILE_NAME)
    conn.execute("UPDATE inputs SET change='{garbage' WHERE seq=2")
    conn.commit()
    conn.close()
    with Journal.open(tmp_path) as journal, pytest.raises(StateError) as info:
        StateStore.restore(journal)
    assert info.value.seq == 2 and "journal row 2" in str(info.value) and "not JSON" in str(info.value)


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    Journal.open(tmp_path).close()
    conn = sqlite3.connect(tmp_path / FILE_NAME)
    conn.execute("UPDATE meta SET value='99' WHERE key='schema'")
    conn.commit()
    conn.close()
    with pytest.raises(StateError, match="journal schema 99 is not 1"):
        Journal.open(tmp_path)


def test_a_damaged_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with Journal.open(tmp_path) as journal:
        store = StateStore(journal)
        store.apply(Announce("rtr:a", (VRP_A, VRP_B)))
        store.checkpoint()
        assert journal.input_count() == 0
    conn = sqlite3.connect(tmp_path / FILE_NAME)
    conn.execute("""UPDATE checkpoint SET facts='{"vrp": [[{"prefix": "198.18.0.0/16"}], [["rtr:a"]]]}'""")
    conn.commit()
    conn.close()
    with Journal.open(tmp_path) as journal, pytest.raises(StateError) as info:
        StateStore.restore(journal)
    assert "checkpoint does not decode: bad vrp: [0.max_length]: Field required" in str(info.value)


def test_pushed_flow_rules_survive_a_restart_as_flow_rules(tmp_path: Path) -> None:
    from appliance.flowspec import ActionKind, FlowAction, FlowDiff, FlowMatch, FlowRule
    from appliance.state.pushed import held_rules, record_diff

    allow = FlowRule("r1", FlowMatch("198.18.1.0/24"), FlowAction(ActionKind.ACCEPT), (1,))
    drop = FlowRule("r1", FlowMatch("198.18.0.0/15", 1), FlowAction(ActionKind.DISCARD), (1, 2))
    limit = FlowRule("r1", FlowMatch("2001:db8::/32"), FlowAction(ActionKind.RATE_LIMIT, rate_bps=1000), (2,))
    with Journal.open(tmp_path) as journal:
        store = StateStore(journal)
        record_diff(store, "198.18.255.1", FlowDiff(announce=(allow, drop, limit)))
        record_diff(store, "198.18.255.1", FlowDiff(withdraw=(limit,)))
    with Journal.open(tmp_path) as journal:
        held = held_rules(StateStore.restore(journal), "198.18.255.1")
    assert sorted(held, key=str) == sorted([allow, drop], key=str)
    with Journal.open(tmp_path) as journal:
        journal.record_push("198.18.255.1", {"source 198.18.9.0/24": "{broken"}, (), 0.0)
        with pytest.raises(StateError) as info:
            held_rules(StateStore(journal), "198.18.255.1")
    assert "pushed rule 'source 198.18.9.0/24' of peer 198.18.255.1 does not decode" in str(info.value)


def test_a_change_of_sources_only_keeps_the_same_tuple_of_facts() -> None:
    store = StateStore()
    store.apply(Announce("rtr:a", (VRP_A, VRP_B, *(Vrp(f"198.18.{i}.0/24", 24, 65010) for i in range(8)))))
    before = store.snapshot()
    store.apply(Announce("rtr:b", (VRP_B,)))
    after = store.snapshot()
    assert after.vrps is before.vrps  # the engine's diff skips a kind by identity
    assert before.sources_of(VRP_B) == {"rtr:a"} and after.sources_of(VRP_B) == {"rtr:a", "rtr:b"}
