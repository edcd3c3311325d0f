"""Drift between what a router holds and what savd intends (appliance.monitor.drift): the comparison, the
confirmation over two listings, one alarm and one counted episode per drifting rule, repairs with backoff,
and the alarm clearing once the router matches."""

from __future__ import annotations

from appliance.flowspec.rules import ACCEPT, ActionKind, FlowAction, FlowMatch, FlowRule
from appliance.monitor import ManualClock, Monitor
from appliance.monitor.drift import CHANGED, EXTRA, MISSING, DriftWatch, compare, held_action

DROP = FlowAction(ActionKind.DISCARD)
CATCH_ALL = FlowRule("r1", FlowMatch("0.0.0.0/0"), DROP, (7,))
P1 = FlowRule("r1", FlowMatch("198.18.1.0/24"), ACCEPT, (7,))
P1_ETH2 = FlowRule("r1", FlowMatch("198.18.1.0/24", 0), DROP, (8,))
INTENDED = (P1, P1_ETH2, CATCH_ALL)


def entry(rule: FlowRule, action: str = "", state: str = "installed") -> dict[str, object]:
    """An enforcer /counters rule entry as FRR re-advertised `rule`."""
    disc = "" if rule.match.packet_length_min is None else f" packet-length >={rule.match.packet_length_min}"
    return {"source": rule.match.source, "groups": list(rule.groups), "state": state,
            "action": action or str(rule.action), "nlri": f"flow source-ipv4 {rule.match.source}{disc}"}


HELD = [entry(r) for r in INTENDED]


def test_compare_names_missing_extra_and_changed_rules() -> None:
    assert compare("r1", INTENDED, HELD) == []
    assert compare("r1", INTENDED, [*HELD, {"bad": "entry"}, "not a mapping"]) == []
    extra = FlowRule("r1", FlowMatch("198.18.9.0/24", 3), ACCEPT, (7,))
    held = [entry(P1, "discard"), entry(CATCH_ALL), entry(extra)]
    found = {(d.kind, d.key, d.intended, d.held) for d in compare("r1", INTENDED, held)}
    assert found == {(CHANGED, ("198.18.1.0/24", (7,)), "accept", "discard"),
                     (MISSING, ("198.18.1.0/24", (8,)), "discard", ""),
                     (EXTRA, ("198.18.9.0/24", (7,)), "", "accept")}
    (withdraw,) = [d.rule for d in compare("r1", INTENDED, held) if d.kind == EXTRA]
    assert withdraw.match == extra.match  # the NLRI to withdraw, discriminator included
    # a rule held on other interface groups is one missing and one extra, not a match
    moved = [entry(P1), entry(P1_ETH2), entry(FlowRule("r1", CATCH_ALL.match, DROP, (9,)))]
    assert {d.kind for d in compare("r1", INTENDED, moved)} == {MISSING, EXTRA}


def test_held_action_reads_the_enforcers_words() -> None:
    assert held_action("discard") == "discard"
    assert held_action("accept") == held_action("") == "accept"
    assert held_action("accept sample") == "sample"
    assert held_action("rate-limit 1.25e+06") == "rate-limit 1250000" == str(
        FlowAction(ActionKind.RATE_LIMIT, rate_bps=1_250_000))
    assert held_action("accept redirect 65000:7") == "redirect 65000:7"


def test_a_difference_is_confirmed_on_the_second_listing_and_repaired() -> None:
    watch = DriftWatch()
    held = [entry(P1), entry(P1_ETH2)]  # the catch-all is gone
    first = watch.check("r1", INTENDED, held)
    assert first.notices == [] and not first.repair and first.detected == {}  # may be a push in flight
    second = watch.check("r1", INTENDED, held)
    (notice,) = second.notices
    assert (notice.router, notice.kind, notice.prefix, notice.repairs) == ("r1", MISSING, "0.0.0.0/0", 1)
    assert notice.alarm_id == "drift.rule/r1/source 0.0.0.0/0 groups [7]" and notice.raises
    assert second.repair.announce == (CATCH_ALL,) and second.repair.withdraw == ()
    assert second.detected == {MISSING: 1}
    assert watch.drifted() == {"r1": 1}
    done = watch.check("r1", INTENDED, HELD)
    (cleared,) = done.notices
    assert not cleared.raises and cleared.alarm_id == notice.alarm_id and cleared.repairs == 1
    assert done.repaired == 1 and not done.repair and watch.drifted() == {}


def test_a_transient_difference_is_neither_alarmed_nor_counted() -> None:
    watch = DriftWatch()
    assert watch.check("r1", INTENDED, HELD[:2]).notices == []
    back = watch.check("r1", INTENDED, HELD)
    assert back.notices == [] and back.detected == {} and back.repaired == 0 and not back.repair


def test_a_lasting_drift_is_one_episode_repaired_with_backoff() -> None:
    watch = DriftWatch(max_backoff=4)
    held = [entry(P1), entry(P1_ETH2)]
    rounds = [watch.check("r1", INTENDED, held) for _ in range(14)]
    assert sum(r.detected.get(MISSING, 0) for r in rounds) == 1
    repaired_at = [i for i, r in enumerate(rounds) if r.repair]
    assert repaired_at == [1, 3, 6, 11]  # waits of 1, 2, 4, then capped at 4
    # the alarm is refreshed with each repair (its count), not on every check
    assert [i for i, r in enumerate(rounds) if r.notices] == repaired_at
    assert rounds[11].notices[0].repairs == 4


def test_a_kind_change_stays_one_episode_and_refreshes_the_alarm() -> None:
    watch = DriftWatch()
    missing = [entry(P1), entry(P1_ETH2)]
    changed = [*missing, entry(CATCH_ALL, "accept")]
    watch.check("r1", INTENDED, missing)
    watch.check("r1", INTENDED, missing)
    r = watch.check("r1", INTENDED, changed)
    assert r.detected == {} and [(n.kind, n.held) for n in r.notices] == [(CHANGED, "accept")]


def test_flapping_rules_clear_and_count_each_real_episode_once() -> None:
    watch = DriftWatch()
    held_without = [entry(P1), entry(P1_ETH2)]
    counts = {"detected": 0, "repaired": 0}
    for _ in range(3):  # lost, repaired, lost again ...
        for held in (held_without, held_without, HELD):
            r = watch.check("r1", INTENDED, held)
            counts["detected"] += sum(r.detected.values())
            counts["repaired"] += r.repaired
    assert counts == {"detected": 3, "repaired": 3}


def test_notices_raise_and_clear_alarms_through_the_monitor() -> None:
    monitor = Monitor(ManualClock(1000.0))
    watch = DriftWatch()
    held = [entry(P1), entry(P1_ETH2)]
    for _ in range(2):
        for n in watch.check("r1", INTENDED, held).notices:
            monitor.emit(n)
    (alarm,) = monitor.alarms.active("drift.rule")
    assert (alarm.fields["router"], alarm.fields["kind"], alarm.fields["repairs"]) == ("r1", MISSING, "1")
    for n in watch.check("r1", INTENDED, HELD).notices:
        monitor.emit(n)
    assert monitor.alarms.active() == []
    assert watch.forget("r1") == []


def test_forget_clears_a_routers_confirmed_alarms() -> None:
    watch = DriftWatch()
    for _ in range(2):
        watch.check("r1", INTENDED, [])
    cleared = watch.forget("r1")
    assert len(cleared) == 3 and not any(n.raises for n in cleared)
    assert watch.drifted() == {}
