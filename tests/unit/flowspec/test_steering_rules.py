"""Steering rules merged into the compiled SAV rules in RFC 8955 order (flowspec/steering.py), rendered
for ExaBGP and refused for GoBGP."""

from __future__ import annotations

import pytest

from appliance.flowspec import ActionKind, FlowAction, FlowMatch, FlowRule, compile_ruleset, evaluate
from appliance.flowspec import render_exabgp as exa
from appliance.flowspec import render_gobgp as gob
from appliance.flowspec.incremental import Compiler
from appliance.model import Action, InterfaceRules, ListKind, Mode, SavRuleSet, Steered, SteeringFallback

REDIRECT = FlowAction(ActionKind.REDIRECT_IP, redirect_ip="192.0.2.10")
DISCARD = FlowAction(ActionKind.DISCARD)


def ruleset(*steering: Steered) -> SavRuleSet:
    allow = InterfaceRules("r1", "eth1", ListKind.ALLOW, ("198.18.1.0/24",))
    block = InterfaceRules("r1", "eth2", ListKind.BLOCK, ("198.18.1.0/24",), Action(Mode.DROP))
    return SavRuleSet(SavRuleSet.of([allow, block]).rules, steering)


def test_a_steered_host_inside_an_allowlisted_prefix_is_redirected_the_rest_accepted() -> None:
    plan = compile_ruleset(ruleset(Steered("r1", "198.18.1.7/32", "dpi", "a", "192.0.2.10")))
    r1 = plan.get("r1")
    assert r1 is not None
    assert evaluate(r1, "eth1", "198.18.1.7") == REDIRECT
    assert evaluate(r1, "eth1", "198.18.1.8").kind is ActionKind.ACCEPT
    assert evaluate(r1, "eth1", "203.0.113.1").kind is ActionKind.DISCARD
    # spoofed wins over suspicious: eth2 drops the /24, the steered /32 in it stays dropped there
    assert evaluate(r1, "eth2", "198.18.1.7").kind is ActionKind.DISCARD
    steered = [r for r in r1.rules if r.action == REDIRECT]
    groups = tuple(sorted(g.group_id for g in r1.groups))
    assert steered == [FlowRule("r1", FlowMatch("198.18.1.7/32"), REDIRECT, groups)]  # validated interfaces
    keys = [r.order_key() for r in r1.rules]
    assert keys == sorted(keys) and len({r.match for r in r1.rules}) == len(r1.rules)


def test_a_steered_prefix_equal_to_an_allowed_one_replaces_its_accept() -> None:
    plan = compile_ruleset(ruleset(Steered("r1", "198.18.1.0/24", "", "a", "192.0.2.10")))
    r1 = plan.get("r1")
    assert r1 is not None
    assert evaluate(r1, "eth1", "198.18.1.9") == REDIRECT
    assert evaluate(r1, "eth2", "198.18.1.9").kind is ActionKind.DISCARD
    assert len({r.match for r in r1.rules}) == len(r1.rules)


def test_fallbacks_and_routers_without_sav_rules() -> None:
    accept = compile_ruleset(ruleset(Steered("r1", "198.18.1.7/32", fallback=SteeringFallback.ACCEPT)))
    assert accept == compile_ruleset(ruleset())
    drop = compile_ruleset(ruleset(Steered("r1", "198.18.1.9/32", fallback=SteeringFallback.DROP)))
    r1 = drop.get("r1")
    assert r1 is not None and evaluate(r1, "eth1", "198.18.1.9") == DISCARD
    # a router without SAV rules validates no interface: steering there would catch the packets the
    # inspection function sends back through interior links, in a loop
    elsewhere = ruleset(Steered("r9", "198.18.1.7/32", "dpi", "a", "192.0.2.10"))
    assert compile_ruleset(elsewhere).get("r9") is None


def test_interfaces_without_sav_rules_are_not_steered() -> None:
    """The inspector's packets come back on an interior or inspector-facing interface: not steered."""
    plan = compile_ruleset(ruleset(Steered("r1", "198.18.1.7/32", "dpi", "a", "192.0.2.10")))
    r1 = plan.get("r1")
    assert r1 is not None
    assert evaluate(r1, "eth9", "198.18.1.7").kind is not ActionKind.REDIRECT_IP


def test_the_incremental_compiler_merges_the_same_way() -> None:
    rs = ruleset(Steered("r1", "198.18.1.7/32", "dpi", "a", "192.0.2.10"))
    assert Compiler().compile(rs) == compile_ruleset(rs)


def test_exabgp_renders_redirect_to_nexthop_ietf_without_scope() -> None:
    rule = FlowRule("r1", FlowMatch("198.18.1.7/32"), REDIRECT, ())
    assert exa.announce(rule) == ("announce flow route { match { source 198.18.1.7/32; } "
                                  "then { redirect-to-nexthop-ietf 192.0.2.10; } }")
    v6 = FlowRule("r1", FlowMatch("2001:db8:9::/48"),
                  FlowAction(ActionKind.REDIRECT_IP, redirect_ip="2001:db8:ff::10"), (3,))
    assert exa.announce(v6, 65000) == (
        "announce flow route { match { source 2001:db8:9::/48; } scope { interface-set "
        "[ transitive:input:65000:3 ]; } then { redirect-to-nexthop-ietf 2001:db8:ff::10; } }")


def test_gobgp_refuses_a_redirect_ip_rule_naming_it() -> None:
    rule = FlowRule("r1", FlowMatch("198.18.1.7/32"), REDIRECT, ())
    with pytest.raises(gob.UnsupportedAction, match=r"r1: source 198.18.1.7/32 .*redirect-ip 192.0.2.10"):
        gob.to_path(rule)


def test_steered_rules_count_toward_max_rules_per_router_both_compilers() -> None:
    from appliance.flowspec import CompileOptions

    hosts = [Steered("r1", f"198.18.1.{i}/32", "dpi", "a", "192.0.2.10") for i in range(1, 4)]
    sav = compile_ruleset(ruleset()).get("r1")
    two = compile_ruleset(ruleset(*hosts[:2])).get("r1")
    three = compile_ruleset(ruleset(*hosts)).get("r1")
    assert sav is not None and two is not None and three is not None
    assert len(sav.rules) < len(two.rules) < len(three.rules)
    limit = CompileOptions(max_rules_per_router=len(two.rules))
    fits = compile_ruleset(ruleset(*hosts[:2]), limit)
    assert fits.get("r1") == two and not [e for e in fits.events if e.type == "steering.too-many-rules"]
    for plan in (compile_ruleset(ruleset(*hosts), limit), Compiler(limit).compile(ruleset(*hosts))):
        r1 = plan.get("r1")
        assert r1 is not None and not r1.refused
        assert r1.rules == sav.rules                       # steering left out, the SAV rules stand
        (alarm,) = [e for e in plan.events if e.type == "steering.too-many-rules"]
        assert alarm.alarm and alarm.fields["router"] == "r1"
        assert alarm.fields["rules"] == str(len(three.rules)) and alarm.fields["limit"] == str(len(two.rules))
        assert alarm.fields["sav_rules"] == str(len(sav.rules))


def test_a_route_target_decision_becomes_an_rt_redirect_and_renders_for_exabgp() -> None:
    allow = InterfaceRules("r1", "eth1", ListKind.ALLOW, ("2001:db8:101::/48",))
    steered = Steered("r1", "2001:db8:101:1::10/128", "dpi", "insp6", "2001:db8:80::2", target="65000:4711")
    plan = compile_ruleset(SavRuleSet(SavRuleSet.of([allow]).rules, (steered,)))
    r1 = plan.get("r1")
    assert r1 is not None
    rt = FlowAction(ActionKind.REDIRECT, redirect="65000:4711")
    assert evaluate(r1, "eth1", "2001:db8:101:1::10") == rt
    (rule,) = [r for r in r1.rules if r.action == rt]
    assert "redirect 65000:4711;" in exa.announce(rule)
