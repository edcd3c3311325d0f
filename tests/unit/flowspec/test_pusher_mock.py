"""FlowPusher state machine against a recording mock speaker (the real speakers are exercised in
tests/integration/flowspec): diffs only, fail-open order, batches, re-sync after a reset, failures."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from appliance.flowspec import ACCEPT, ActionKind, FlowAction, FlowDiff, FlowMatch, FlowRule
from appliance.speakers.exabgp import SessionDown, SessionUp
from appliance.speakers.pusher import FlowPusher, PushError

DISCARD = FlowAction(ActionKind.DISCARD)


def rule(src: str, action: FlowAction = DISCARD) -> FlowRule:
    return FlowRule("r1", FlowMatch(src), action, (1,))


class MockSpeaker:
    def __init__(self, fail_on: str = "") -> None:
        self.calls: list[tuple[str, str, tuple[str, ...]]] = []
        self.fail_on = fail_on

    async def announce(self, peer: str, rules: Sequence[FlowRule]) -> None:
        await self._call("announce", peer, rules)

    async def withdraw(self, peer: str, rules: Sequence[FlowRule]) -> None:
        await self._call("withdraw", peer, rules)

    async def _call(self, op: str, peer: str, rules: Sequence[FlowRule]) -> None:
        if any(r.match.source == self.fail_on for r in rules):
            raise PushError(peer, "mock refusal")
        self.calls.append((op, peer, tuple(r.match.source for r in rules)))


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_mock_push_waits_for_session_then_sends_diffs_only() -> None:
    sp = MockSpeaker()
    p = FlowPusher(sp)
    a, b, c = rule("198.18.1.0/24"), rule("198.18.2.0/24"), rule("198.18.3.0/24")

    async def scenario() -> None:
        assert (await p.push("198.18.0.1", [a, b])).empty()      # session down: nothing sent
        assert sp.calls == []
        await p.session_up("198.18.0.1")
        await p.push("198.18.0.1", [a, b])                       # unchanged: nothing sent
        await p.push("198.18.0.1", [b, c])
    run(scenario())
    assert sp.calls == [("announce", "198.18.0.1", ("198.18.1.0/24", "198.18.2.0/24")),
                        ("withdraw", "198.18.0.1", ("198.18.1.0/24",)),
                        ("announce", "198.18.0.1", ("198.18.3.0/24",))]
    assert [r.match.source for r in p.held("198.18.0.1")] == ["198.18.2.0/24", "198.18.3.0/24"]


def test_mock_resync_after_reset_reannounces_everything_and_withdraws_stale() -> None:
    sp = MockSpeaker()
    p = FlowPusher(sp)
    a, b = rule("198.18.1.0/24"), rule("198.18.2.0/24")

    async def scenario() -> None:
        await p.on_event(SessionUp("198.18.0.1"))
        await p.push("198.18.0.1", [a, b])
        await p.on_event(SessionDown("198.18.0.1"))
        await p.push("198.18.0.1", [b])                          # changed while down: not sent
        sp.calls.clear()
        await p.on_event(SessionUp("198.18.0.1"))
    run(scenario())
    assert sp.calls == [("withdraw", "198.18.0.1", ("198.18.1.0/24",)),
                        ("announce", "198.18.0.1", ("198.18.2.0/24",))]


def test_mock_batches_and_fail_open_order() -> None:
    sp = MockSpeaker()
    p = FlowPusher(sp, batch_size=2)
    old = [rule(f"198.18.{i}.0/24") for i in range(3)]
    new = [rule("0.0.0.0/0"), *(rule(f"198.19.{i}.0/24", ACCEPT) for i in range(3))]

    async def scenario() -> None:
        await p.session_up("p")
        await p.push("p", old)
        sp.calls.clear()
        await p.push("p", new)
    run(scenario())
    assert [(op, len(srcs)) for op, _, srcs in sp.calls] == [
        ("announce", 2), ("announce", 1),   # accept rules first
        ("withdraw", 2), ("withdraw", 1),   # then old discards go
        ("announce", 1)]                    # then the default discard


def test_mock_failure_keeps_state_of_what_got_through() -> None:
    sp = MockSpeaker(fail_on="198.18.9.0/24")
    p = FlowPusher(sp, batch_size=1)
    good, bad = rule("198.18.1.0/24"), rule("198.18.9.0/24")

    async def scenario() -> None:
        await p.session_up("p")
        with pytest.raises(PushError, match="mock refusal"):
            await p.push("p", [good, bad])
    run(scenario())
    assert [r.match.source for r in p.held("p")] == ["198.18.1.0/24"]


def test_mock_delivery_compiles_pushes_per_router_and_respects_refusal() -> None:
    from appliance.flowspec import CompileOptions
    from appliance.model import BgpPath, InterfaceRules, ListKind, SavRuleSet
    from appliance.speakers.pusher import FlowSpecDelivery

    sp = MockSpeaker()
    p = FlowPusher(sp)
    events: list[str] = []
    learned: list[BgpPath] = []
    d = FlowSpecDelivery({"r1": [(p, "198.18.0.1")], "r2": [(p, "198.18.0.2")]}, CompileOptions(),
                         learned=lambda: learned, emit=lambda e: events.append(e.type))
    rs = SavRuleSet.of([InterfaceRules("r1", "eth1", ListKind.BLOCK, ("198.18.4.0/24",)),
                        InterfaceRules("r2", "eth1", ListKind.BLOCK, ("198.18.5.0/24",))])

    async def scenario() -> None:
        await p.session_up("198.18.0.1")
        await p.session_up("198.18.0.2")
        await d.on_rules(1, rs, SavRuleSet())
        learned.append(BgpPath("r1", "eth1", "198.18.4.0/24", (65010,)))   # r1 would now block a route
        await d.on_rules(2, SavRuleSet.of([rs.rules[0]]), rs)               # r2's list gone
    run(scenario())
    assert [r.match.source for r in p.held("198.18.0.1")] == ["198.18.4.0/24"]   # refused: kept
    assert p.held("198.18.0.2") == ()                                              # no rules: withdrawn
    assert events == ["flowspec.refused"]
    assert d.last_plan.get("r1") is not None and d.last_plan.get("r1").refused  # type: ignore[union-attr]


def test_mock_delivery_reconciles_compiler_alarms_so_they_clear_when_the_plan_passes() -> None:
    """The daemon's wiring (speakers/sessions.py): compiler findings reconciled, push failures published."""
    from appliance.flowspec import CompileOptions
    from appliance.model import InterfaceRules, ListKind, SavRuleSet
    from appliance.monitor import EventBus, ManualClock, Monitor
    from appliance.speakers.pusher import FlowSpecDelivery

    monitor = Monitor(ManualClock(1000.0), EventBus(capacity=50))
    p = FlowPusher(MockSpeaker())
    d = FlowSpecDelivery({"r1": [(p, "198.18.0.1")]}, CompileOptions(max_rules_per_router=1),
                         emit=monitor.publish, findings=lambda evs: monitor.reconcile("flowspec", evs))
    two = SavRuleSet.of([InterfaceRules("r1", "eth1", ListKind.BLOCK, ("198.18.4.0/24", "198.18.6.0/24"))])
    one = SavRuleSet.of([InterfaceRules("r1", "eth1", ListKind.BLOCK, ("198.18.4.0/24",))])

    async def scenario() -> list[list[str]]:
        await p.session_up("198.18.0.1")
        seen = []
        for rs in (two, two, one):
            await d.on_rules(1, rs, SavRuleSet())
            seen.append([a.type for a in monitor.alarms.active()])
        return seen
    assert run(scenario()) == [["flowspec.too-many-rules"], ["flowspec.too-many-rules"], []]
    raised = [r for r in monitor.bus.recent(limit=50) if r.event.type == "flowspec.too-many-rules"]
    assert len(raised) == 2 and raised[1].event.fields.get("cleared") == "true"   # raised once, cleared
    assert [r.match.source for r in p.held("198.18.0.1")] == ["198.18.4.0/24"]


def test_mock_restore_from_journal_withdraws_stale_and_records_batches() -> None:
    from appliance.state.pushed import held_rules, record_diff
    from appliance.state.store import StateStore

    store = StateStore()
    stale, keep, new = rule("198.18.1.0/24"), rule("198.18.2.0/24"), rule("198.18.3.0/24")
    record_diff(store, "p", FlowDiff(announce=(stale, keep)))
    sp = MockSpeaker()
    p = FlowPusher(sp, on_applied=lambda peer, d: record_diff(store, peer, d))
    p.restore("p", held_rules(store, "p"))

    async def scenario() -> None:
        await p.push("p", [keep, new])
        await p.session_up("p")
    run(scenario())
    assert sp.calls == [("withdraw", "p", ("198.18.1.0/24",)),
                        ("announce", "p", ("198.18.2.0/24", "198.18.3.0/24"))]
    assert [r.match.source for r in held_rules(store, "p")] == ["198.18.2.0/24", "198.18.3.0/24"]


class SlowSpeaker(MockSpeaker):
    """Each call takes one loop turn per rule, and counts how many calls are in flight at once."""

    def __init__(self, fail_on: str = "") -> None:
        super().__init__(fail_on)
        self.in_flight = self.most_in_flight = 0

    async def _call(self, op: str, peer: str, rules: Sequence[FlowRule]) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            for _ in rules:
                await asyncio.sleep(0)
            await super()._call(op, peer, rules)
        finally:
            self.in_flight -= 1


def test_mock_batches_of_one_kind_are_pipelined_and_kinds_stay_in_fail_open_order() -> None:
    sp = SlowSpeaker()
    p = FlowPusher(sp, batch_size=2, pipeline_depth=3)
    old = [rule(f"198.18.{i}.0/24") for i in range(9)]
    new = [rule("0.0.0.0/0"), *(rule(f"198.19.{i}.0/24", ACCEPT) for i in range(9))]

    async def scenario() -> None:
        await p.session_up("p")
        await p.push("p", old)
        sp.calls.clear()
        await p.push("p", new)
    run(scenario())
    assert sp.most_in_flight == 3
    kinds = [(op, next(iter(srcs))[:6]) for op, _, srcs in sp.calls]
    # every accept announce, then every discard withdraw, then the default discard: no kind overlaps
    assert kinds == [("announce", "198.19")] * 5 + [("withdraw", "198.18")] * 5 + [("announce", "0.0.0.")]
    assert sorted(r.match.source for r in p.held("p")) == sorted(r.match.source for r in new)


def test_mock_pipelined_failure_records_the_batches_that_got_through() -> None:
    sp = SlowSpeaker(fail_on="198.18.4.0/24")
    p = FlowPusher(sp, batch_size=1, pipeline_depth=4)
    rules = [rule(f"198.18.{i}.0/24") for i in range(8)]

    async def scenario() -> None:
        await p.session_up("p")
        with pytest.raises(PushError, match="mock refusal"):
            await p.push("p", rules)
        acked = {srcs[0] for op, _, srcs in sp.calls if op == "announce"}
        assert "198.18.4.0/24" not in acked
        assert {r.match.source for r in p.held("p")} == acked   # what got through, no more, no less
        sp.fail_on, sp.calls = "", []
        await p.push("p", rules)   # not in sync after a failure: the same push sends the rest
        assert sp.calls == [("announce", "p", ("198.18.4.0/24",))]
    run(scenario())
    assert len(p.held("p")) == 8


def test_mock_push_of_the_rules_held_sends_nothing_and_diffs_nothing() -> None:
    sp = MockSpeaker()
    p = FlowPusher(sp)
    wanted = (rule("198.18.1.0/24"), rule("198.18.2.0/24"))

    async def scenario() -> None:
        await p.session_up("p")
        await p.push("p", wanted)
        sp.calls.clear()
        p.held = lambda peer: pytest.fail("diffed again")  # type: ignore[method-assign]
        assert (await p.push("p", wanted)).empty()
    run(scenario())
    assert sp.calls == []


class ResendingSpeaker(MockSpeaker):
    """A speaker that suppresses an announce it holds (as ExaBGP does) and so offers `resend`."""

    async def resend(self, peer: str) -> None:
        self.calls.append(("resend", peer, ()))


def test_mock_drift_repair_asks_a_suppressing_speaker_to_resend() -> None:
    sp = ResendingSpeaker()
    pusher = FlowPusher(sp)

    async def scenario() -> None:
        await pusher.session_up("p")
        await pusher.push("p", (rule("198.18.1.0/24"),))
        sp.calls.clear()
        await pusher.repair("p", (rule("198.18.1.0/24"),), ())
        assert sp.calls == [("announce", "p", ("198.18.1.0/24",)), ("resend", "p", ())]
        sp.calls.clear()
        await pusher.repair("p", (), (rule("198.18.7.0/24"),))      # a withdrawal only: nothing to resend
        assert sp.calls == [("withdraw", "p", ("198.18.7.0/24",))]

    run(scenario())


def test_mock_delivery_sends_the_compilers_step_and_ends_holding_a_full_compile() -> None:
    # list edits on two interfaces (shared prefixes, both kinds, a refusal and back): after each, the
    # peer holds exactly what a compile from scratch gives; a lone one-prefix edit is sent as the
    # compiler's step, without diffing the whole held table
    import random

    from appliance.flowspec import CompileOptions, compile_ruleset
    from appliance.model import InterfaceRules, ListKind, SavRuleSet
    from appliance.speakers import pusher as pusher_module
    from appliance.speakers.pusher import FlowSpecDelivery

    rng = random.Random(7)
    pool = [f"198.18.{i}.0/24" for i in range(60)] + [f"198.19.{i}.0/26" for i in range(0, 256, 64)]
    options = CompileOptions(max_rules_per_router=70)
    sp = MockSpeaker()
    p = FlowPusher(sp)
    d = FlowSpecDelivery({"r1": [(p, "198.18.0.1")]}, options)
    lists = {"eth1": set(rng.sample(pool, 20)), "eth2": set(rng.sample(pool, 20))}
    full_diffs = []
    real_diff = pusher_module.diff

    def counting(*args: object) -> object:
        full_diffs.append(1)
        return real_diff(*args)  # type: ignore[arg-type]

    def ruleset() -> SavRuleSet:
        return SavRuleSet.of([InterfaceRules("r1", "eth1", ListKind.ALLOW, tuple(sorted(lists["eth1"]))),
                              InterfaceRules("r1", "eth2", ListKind.BLOCK, tuple(sorted(lists["eth2"])))])

    async def scenario() -> None:
        await p.session_up("198.18.0.1")
        await d.on_rules(0, ruleset(), SavRuleSet())
        pusher_module.diff = counting  # type: ignore[assignment]
        try:
            stepped = 0
            for version in range(1, 60):
                iface = rng.choice(["eth1", "eth2"])
                if version % 17 == 0:   # past the guardrail: refused, kept, then back under it
                    lists[iface] |= set(pool)
                elif lists[iface] and rng.random() < 0.5:
                    lists[iface].discard(rng.choice(sorted(lists[iface])))
                else:
                    lists[iface].add(rng.choice(pool))
                if len(lists[iface]) > 40:
                    lists[iface] = set(rng.sample(sorted(lists[iface]), 20))
                before = len(full_diffs)
                plan = await d.on_rules(version, ruleset(), SavRuleSet())
                want = compile_ruleset(ruleset(), options).get("r1")
                assert want is not None and plan.get("r1") == want
                if not want.refused:
                    assert set(p.held("198.18.0.1")) == set(want.rules), version
                stepped += len(full_diffs) == before and "r1" in d.compiler.steps
            assert stepped >= 30
        finally:
            pusher_module.diff = real_diff
    run(scenario())
