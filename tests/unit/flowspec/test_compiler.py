"""Table tests of the FlowSpec compiler: encodings of each list kind and mode, aggregation, conflicts
on one router, guardrails, group IDs and the push diff."""

from __future__ import annotations

import pytest

from appliance.flowspec import (
    ACCEPT,
    ActionKind,
    CompileOptions,
    FlowAction,
    FlowMatch,
    FlowRule,
    compile_ruleset,
    diff,
)
from appliance.flowspec.groups import assign_groups
from appliance.model import Action, BgpPath, Delivery, InterfaceRules, ListKind, Mode, SavRuleSet, Severity

DISCARD = FlowAction(ActionKind.DISCARD)


def one(rules: list[InterfaceRules], **kw: object) -> list[tuple[str, int | None, str, tuple[str, ...]]]:
    """(source, discriminator, action, interfaces) of router r1, in emitted order."""
    plan = compile_ruleset(SavRuleSet.of(rules), CompileOptions(**kw))  # type: ignore[arg-type]
    r1 = plan.get("r1")
    assert r1 is not None
    names = {g.group_id: g.interface for g in r1.groups}
    return [(r.match.source, r.match.packet_length_min, str(r.action),
             tuple(names[g] for g in r.groups)) for r in r1.rules]


@pytest.mark.parametrize(
    ("name", "rules", "expected"),
    [
        ("blocklist is discard per prefix",
         [InterfaceRules("r1", "eth1", ListKind.BLOCK, ("198.18.1.0/24", "2001:db8:1::/48"))],
         [("198.18.1.0/24", None, "discard", ("eth1",)), ("2001:db8:1::/48", None, "discard", ("eth1",))]),
        ("allowlist is accept above a default discard, per listed family only",
         [InterfaceRules("r1", "eth1", ListKind.ALLOW, ("198.18.1.0/24", "198.18.2.0/24"))],
         [("0.0.0.0/32", None, "accept", ("eth1",)),
          ("198.18.1.0/24", None, "accept", ("eth1",)), ("198.18.2.0/24", None, "accept", ("eth1",)),
          ("0.0.0.0/0", None, "discard", ("eth1",))]),
        ("IPv6 allowlist keeps link-local and unspecified sources (neighbour discovery, DAD)",
         [InterfaceRules("r1", "eth1", ListKind.ALLOW, ("2001:db8:1::/48",))],
         [("::/128", None, "accept", ("eth1",)), ("2001:db8:1::/48", None, "accept", ("eth1",)),
          ("fe80::/10", None, "accept", ("eth1",)), ("::/0", None, "discard", ("eth1",))]),
        ("a blocklist never blocks link-local sources",
         # fe80::/9 = fe80::/10 + fec0::/10
         [InterfaceRules("r1", "eth1", ListKind.BLOCK, ("fe80::/9", "::/1"))],
         [("::/128", None, "accept", ("eth1",)), ("::/1", None, "discard", ("eth1",)),
          ("fec0::/10", None, "discard", ("eth1",))]),
        ("adjacent blocks merge to the exact cover",
         [InterfaceRules("r1", "eth1", ListKind.BLOCK, ("198.18.0.0/24", "198.18.1.0/24"))],
         [("198.18.0.0/23", None, "discard", ("eth1",))]),
        ("a /16 minus one /24 is two rules, not eight",
         [InterfaceRules("r1", "eth1", ListKind.BLOCK,
                         tuple(f"198.18.{i}.0/24" for i in range(256) if i != 9))],
         [("198.18.9.0/24", None, "accept", ("eth1",)), ("198.18.0.0/16", None, "discard", ("eth1",))]),
        ("same match and action on two interfaces is one rule with two groups",
         [InterfaceRules("r1", "eth1", ListKind.BLOCK, ("198.18.1.0/24",)),
          InterfaceRules("r1", "eth2", ListKind.BLOCK, ("198.18.1.0/24",))],
         [("198.18.1.0/24", None, "discard", ("eth1", "eth2"))]),
        ("allowed on eth1, blocked on eth2: distinct NLRI, each with its own interface",
         [InterfaceRules("r1", "eth1", ListKind.ALLOW, ("198.18.1.0/24",)),
          InterfaceRules("r1", "eth2", ListKind.BLOCK, ("198.18.1.0/24",))],
         [("0.0.0.0/32", None, "accept", ("eth1",)),
          ("198.18.1.0/24", 0, "discard", ("eth2",)), ("198.18.1.0/24", None, "accept", ("eth1",)),
          ("0.0.0.0/0", None, "discard", ("eth1",))]),
        ("modes: monitor samples, rate-limit 0 discards, rate and redirect carried",
         [InterfaceRules("r1", "eth1", ListKind.BLOCK, ("198.18.1.0/24",), Action(Mode.MONITOR)),
          InterfaceRules("r1", "eth2", ListKind.BLOCK, ("198.18.2.0/24",), Action(Mode.RATE_LIMIT, 0.0)),
          InterfaceRules("r1", "eth3", ListKind.BLOCK, ("198.18.3.0/24",), Action(Mode.RATE_LIMIT, 12500.4)),
          InterfaceRules("r1", "eth4", ListKind.BLOCK, ("198.18.4.0/24",),
                         Action(Mode.REDIRECT, redirect="65001:100"))],
         [("198.18.1.0/24", None, "sample", ("eth1",)), ("198.18.2.0/24", None, "discard", ("eth2",)),
          ("198.18.3.0/24", None, "rate-limit 12500", ("eth3",)),
          ("198.18.4.0/24", None, "redirect 65001:100", ("eth4",))]),
        ("ACL-delivered lists are not FlowSpec",
         [InterfaceRules("r1", "eth1", ListKind.BLOCK, ("198.18.1.0/24",), delivery=Delivery.ACL),
          InterfaceRules("r1", "eth2", ListKind.BLOCK, ("198.18.2.0/24",))],
         [("198.18.2.0/24", None, "discard", ("eth2",))]),
    ],
)
def test_compile(name: str, rules: list[InterfaceRules], expected: list[object]) -> None:
    assert one(rules) == expected, name


def test_stats_report_exact_cover() -> None:
    most = tuple(f"198.18.{i}.0/24" for i in range(256) if i != 9)
    rules = [InterfaceRules("r1", "eth1", ListKind.BLOCK, most),
             InterfaceRules("r1", "eth2", ListKind.ALLOW, ("198.18.1.0/24", "2001:db8::/48"))]
    r1 = compile_ruleset(SavRuleSet.of(rules)).get("r1")
    assert r1 is not None
    # eth2 also allows 0.0.0.0/32, fe80::/10 and ::/128 (always_allowed)
    assert (r1.stats.emitted, r1.stats.exact_cover) == (2 + 3 + 4, 8 + (2 + 1) + (3 + 1))


@pytest.mark.parametrize(
    ("action", "event"),
    [(Action(Mode.REDIRECT, redirect=""), "flowspec.bad-action"),
     (Action(Mode.REDIRECT, redirect="not-a-target"), "flowspec.bad-action")],
)
def test_unusable_action_leaves_interface_unfiltered_with_alarm(action: Action, event: str) -> None:
    rules = InterfaceRules("r1", "eth1", ListKind.BLOCK, ("198.18.1.0/24",), action)
    plan = compile_ruleset(SavRuleSet.of([rules]))
    assert plan.rules() == ()
    assert [(e.type, e.alarm, e.fields["interface"]) for e in plan.events] == [(event, True, "eth1")]


def test_bad_prefix_names_router_and_interface() -> None:
    plan = compile_ruleset(SavRuleSet((InterfaceRules("r1", "eth7", ListKind.ALLOW, ("198.18.1.1/24",)),)))
    assert plan.rules() == ()
    (ev,) = plan.events
    assert ev.type == "flowspec.bad-prefix" and "r1:eth7" in ev.message and "198.18.1.1/24" in ev.message


def test_max_rules_per_router_refuses_with_alarm() -> None:
    three = ("198.18.1.0/24", "198.18.3.0/24", "198.18.5.0/24")
    rules = [InterfaceRules("r1", "eth1", ListKind.BLOCK, three),
             InterfaceRules("r2", "eth1", ListKind.BLOCK, ("198.18.1.0/24",))]
    plan = compile_ruleset(SavRuleSet.of(rules), CompileOptions(max_rules_per_router=2))
    r1, r2 = plan.get("r1"), plan.get("r2")
    assert r1 is not None and r2 is not None
    assert r1.refused and r1.rules == () and not r2.refused and len(r2.rules) == 1
    assert [(e.type, e.fields["router"], e.fields["rules"]) for e in plan.events] == [
        ("flowspec.too-many-rules", "r1", "3")]


@pytest.mark.parametrize(
    ("rules", "learned", "refused"),
    [
        # blocklist overlapping a learned prefix (more specific, less specific) on the same interface
        (InterfaceRules("r1", "eth1", ListKind.BLOCK, ("198.18.0.0/16",)), ("eth1", "198.18.4.0/24"), True),
        (InterfaceRules("r1", "eth1", ListKind.BLOCK, ("198.18.4.128/25",)), ("eth1", "198.18.4.0/24"), True),
        # learned on another interface: fine
        (InterfaceRules("r1", "eth1", ListKind.BLOCK, ("198.18.0.0/16",)), ("eth2", "198.18.4.0/24"), False),
        # allowlist that does not fully allow the learned prefix
        (InterfaceRules("r1", "eth1", ListKind.ALLOW, ("198.18.4.0/25",)), ("eth1", "198.18.4.0/24"), True),
        # allowlist covering it through two halves
        (InterfaceRules("r1", "eth1", ListKind.ALLOW, ("198.18.4.0/25", "198.18.4.128/25")),
         ("eth1", "198.18.4.0/24"), False),
        # allowlist with no IPv6: IPv6 unfiltered, nothing blocked
        (InterfaceRules("r1", "eth1", ListKind.ALLOW, ("198.18.4.0/24",)), ("eth1", "2001:db8::/32"), False),
        # monitor never blocks
        (InterfaceRules("r1", "eth1", ListKind.BLOCK, ("198.18.0.0/16",), Action(Mode.MONITOR)),
         ("eth1", "198.18.4.0/24"), False),
    ],
)
def test_guardrail_learned_routes(rules: InterfaceRules, learned: tuple[str, str], refused: bool) -> None:
    paths = [BgpPath("r1", learned[0], learned[1], (65010,))]
    plan = compile_ruleset(SavRuleSet.of([rules]), learned=paths)
    r1 = plan.get("r1")
    assert r1 is not None
    assert r1.refused is refused
    assert [e.type for e in plan.events] == (["flowspec.refused"] if refused else [])
    if refused:
        assert plan.events[0].severity is Severity.ERROR and plan.events[0].fields["prefix"] == learned[1]
        forced = compile_ruleset(SavRuleSet.of([rules]), CompileOptions(force=True), learned=paths)
        assert forced.rules() and [e.type for e in forced.events] == ["flowspec.forced"]


def test_group_ids_deterministic_stable_and_explicit() -> None:
    a = assign_groups("r1", ["eth1", "eth2", "eth3"])
    b = assign_groups("r1", ["eth3", "eth1"])
    ids_a = {g.interface: g.group_id for g in a if g.interface != "eth2"}
    assert {g.interface: g.group_id for g in b} == ids_a
    assert all(1 <= g.group_id <= 16383 for g in a) and len({g.group_id for g in a}) == 3
    c = assign_groups("r1", ["eth1", "eth2"], {("r1", "eth2"): 7})
    assert [(g.interface, g.group_id) for g in c][1] == ("eth2", 7)
    with pytest.raises(ValueError, match="r1:eth2"):
        assign_groups("r1", ["eth1", "eth2"], {("r1", "eth1"): 7, ("r1", "eth2"): 7})


def _rule(src: str, action: FlowAction, groups: tuple[int, ...] = (1,), disc: int | None = None) -> FlowRule:
    return FlowRule("r1", FlowMatch(src, disc), action, groups)


@pytest.mark.parametrize(
    ("pushed", "wanted", "steps"),
    [
        ("unchanged", "unchanged", []),
        ([], [_rule("198.18.1.0/24", DISCARD)], [("announce", "198.18.1.0/24")]),
        ([_rule("198.18.1.0/24", DISCARD)], [], [("withdraw", "198.18.1.0/24")]),
        # reorder of the input does not matter: keyed by NLRI
        ([_rule("198.18.1.0/24", DISCARD), _rule("198.18.2.0/24", DISCARD)],
         [_rule("198.18.2.0/24", DISCARD), _rule("198.18.1.0/24", DISCARD)], []),
        # mode change is a re-announce of the same NLRI, no withdraw
        ([_rule("198.18.1.0/24", DISCARD)], [_rule("198.18.1.0/24", FlowAction(ActionKind.SAMPLE))],
         [("announce", "198.18.1.0/24")]),
        # group change likewise
        ([_rule("198.18.1.0/24", DISCARD, (1,))], [_rule("198.18.1.0/24", DISCARD, (1, 2))],
         [("announce", "198.18.1.0/24")]),
        # fail-open order: accept before default discard; discard withdrawn before accept withdrawn
        ([_rule("198.18.9.0/24", ACCEPT), _rule("198.18.8.0/24", DISCARD)],
         [_rule("0.0.0.0/0", DISCARD), _rule("198.18.1.0/24", ACCEPT)],
         [("announce", "198.18.1.0/24"), ("withdraw", "198.18.8.0/24"), ("announce", "0.0.0.0/0"),
          ("withdraw", "198.18.9.0/24")]),
    ],
)
def test_diff(pushed: object, wanted: object, steps: list[tuple[str, str]]) -> None:
    if pushed == "unchanged":
        pushed = wanted = [_rule("198.18.1.0/24", DISCARD), _rule("0.0.0.0/0", ACCEPT)]
    d = diff(pushed, wanted)  # type: ignore[arg-type]
    assert [(op, r.match.source) for op, r in d.steps()] == steps
    assert d.empty() is (steps == [])


def test_many_interfaces_are_split_into_rules_with_distinct_nlri() -> None:
    rules = [InterfaceRules("r1", f"eth{i}", ListKind.BLOCK, ("198.18.1.0/24",)) for i in range(5)]
    got = one(rules, max_groups_per_rule=2)
    assert [(src, disc, len(ifs)) for src, disc, _, ifs in got] == [
        ("198.18.1.0/24", 0, 2), ("198.18.1.0/24", 1, 1), ("198.18.1.0/24", None, 2)]
    assert sorted(i for *_, ifs in got for i in ifs) == [f"eth{i}" for i in range(5)]
