"""The journal keeps the last rule set one row per interface rule and writes only what changed, so a
recompute at scale does not re-serialise every rule; what it reads back equals what was saved, including
a rule set written whole by an earlier version."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from contextlib import closing
from pathlib import Path

from appliance.model import InterfaceRules, ListKind, SavRuleSet
from appliance.state import StateError, StateStore
from appliance.state.journal import FILE_NAME, Journal, encode_rules
from appliance.state.rulesave import RulesetSaver


def rule(router: str, interface: str, *prefixes: str) -> InterfaceRules:
    return InterfaceRules(router, interface, ListKind.ALLOW, prefixes,
                          provenance={p: (f"report:{p}",) for p in prefixes})


def sql(data_dir: Path, statement: str, *params: object) -> list[tuple[str, ...]]:
    with closing(sqlite3.connect(data_dir / FILE_NAME)) as conn, conn:
        return list(conn.execute(statement, params))


def rows(data_dir: Path) -> dict[tuple[str, str], str]:
    return {(r, i): text for r, i, text in sql(data_dir, "SELECT router, interface, rule FROM ruleset_rule")}


def test_only_changed_rules_are_written_and_the_set_reads_back_equal(tmp_path: Path) -> None:
    first = SavRuleSet.of([rule("r1", "eth1", "198.18.1.0/24"), rule("r2", "eth1", "198.18.2.0/24"),
                           rule("r3", "eth1", "2001:db8:0:3::/64")])
    with Journal.open(tmp_path) as journal:
        journal.save_ruleset(first, 3, 1000.0)
        before = rows(tmp_path)
        assert set(before) == {("r1", "eth1"), ("r2", "eth1"), ("r3", "eth1")}
        second = SavRuleSet.of([*first.rules[:1], rule("r2", "eth1", "198.18.2.0/24", "198.18.7.0/24")])
        sql(tmp_path, "UPDATE ruleset_rule SET rule=rule||' ' WHERE router='r1'")  # kept unless rewritten
        journal.save_ruleset(second, 4, 1001.0)
        after = rows(tmp_path)
        assert set(after) == {("r1", "eth1"), ("r2", "eth1")}  # r3's rule is gone
        assert after[("r1", "eth1")] == before[("r1", "eth1")] + " "  # unchanged: not written again
        assert after[("r2", "eth1")] != before[("r2", "eth1")]
    with Journal.open(tmp_path) as journal:
        assert journal.load_ruleset() == (4, second)
        third = SavRuleSet.of([rule("r1", "eth1", "198.18.9.0/24")])
        journal.save_ruleset(third, 5, 1002.0)  # after a load, saves are incremental against it
    with Journal.open(tmp_path) as journal:
        assert journal.load_ruleset() == (5, third)
        journal.save_ruleset(SavRuleSet(), 6, 1003.0)
        assert rows(tmp_path) == {} and journal.load_ruleset() == (6, SavRuleSet())


def test_a_rule_set_saved_whole_by_an_earlier_version_is_read(tmp_path: Path) -> None:
    old = SavRuleSet.of([rule("r1", "eth1", "198.18.1.0/24")])
    with Journal.open(tmp_path):
        pass
    sql(tmp_path, "INSERT INTO ruleset VALUES(1, 7, 1000.0, ?)", old.to_json())
    with Journal.open(tmp_path) as journal:
        assert journal.load_ruleset() == (7, old)


def test_the_encoding_is_the_rule_dict_and_a_stale_pre_encoding_is_not_used(tmp_path: Path) -> None:
    """Rules encoded ahead (in a worker thread) are used only for the very rule object they encode."""
    ruleset = SavRuleSet.of([rule("r1", "eth1", "198.18.1.0/24"), rule("r2", "eth1", "198.18.2.0/24")])
    r1, r2 = ruleset.rules
    stale = rule("r2", "eth1", "198.18.99.0/24")
    with Journal.open(tmp_path) as journal:
        journal.save_ruleset(ruleset, 1, 1000.0, {**encode_rules([r1]), **encode_rules([stale])})
        assert json.loads(rows(tmp_path)[("r1", "eth1")]) == r1.to_dict()
        assert json.loads(rows(tmp_path)[("r2", "eth1")]) == r2.to_dict()
        assert journal.unsaved_rules(ruleset) == []


def test_the_saver_coalesces_to_the_newest_rule_set_and_survives_a_failed_save(tmp_path: Path) -> None:
    asyncio.run(_coalesce(tmp_path))


async def _coalesce(tmp_path: Path) -> None:
    sets = [SavRuleSet.of([rule("r1", "eth1", f"198.18.{i}.0/24")]) for i in range(5)]
    with Journal.open(tmp_path) as journal:
        store = StateStore.restore(journal)
        saver = RulesetSaver(store, quiet_s=0.2, max_lag_s=5.0)
        saved: list[int] = []
        real = journal.save_ruleset

        def counting(ruleset: SavRuleSet, version: int, time: float, encoded: object = None) -> None:
            saved.append(version)
            if version == 1:
                raise StateError("disk full", journal.path)
            real(ruleset, version, time, encoded)  # type: ignore[arg-type]

        journal.save_ruleset = counting  # type: ignore[method-assign]
        saver.submit(1, sets[1])
        await saver.flush()  # at once, without waiting for the pause
        for v in (2, 3, 4):  # a burst: nothing is written until it pauses, then only the newest
            saver.submit(v, sets[v])
            await asyncio.sleep(0.05)
        assert saved == [1]
        await asyncio.sleep(0.4)
        assert saved == [1, 4]
    with Journal.open(tmp_path) as journal:
        assert journal.load_ruleset() == (4, sets[4])


def test_under_steady_change_the_rule_set_is_saved_within_the_maximum_lag(tmp_path: Path) -> None:
    async def steady() -> tuple[list[int], int]:
        with Journal.open(tmp_path) as journal:
            saved: list[int] = []
            real = journal.save_ruleset

            def counting(ruleset: SavRuleSet, version: int, time: float, encoded: object = None) -> None:
                saved.append(version)
                real(ruleset, version, time, encoded)  # type: ignore[arg-type]

            journal.save_ruleset = counting  # type: ignore[method-assign]
            saver = RulesetSaver(StateStore.restore(journal), quiet_s=0.2, max_lag_s=0.5)
            for v in range(1, 16):  # a change every 0.1 s for 1.5 s: never quiet for 0.2 s
                saver.submit(v, SavRuleSet.of([rule("r1", "eth1", f"198.18.{v}.0/24")]))
                await asyncio.sleep(0.1)
            during = list(saved)
            await saver.flush()
            loaded = journal.load_ruleset()
            return during, loaded[0] if loaded else 0

    during, after = asyncio.run(steady())
    assert 2 <= len(during) <= 4 and during == sorted(during), during  # not one save per change
    assert after == 15
