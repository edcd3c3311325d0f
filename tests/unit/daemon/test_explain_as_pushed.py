"""Issue 12, item 9: `explain` answers what the pushed FlowSpec rules do, not what the list alone says:
link-local and unspecified sources always pass, an allowlist filters only the families it lists."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.api.explain import explain
from appliance.flowspec import CompileOptions, compile_ruleset, evaluate
from appliance.flowspec.rules import ActionKind
from appliance.model import Action, InterfaceRules, ListKind, Mode, SavRuleSet

ALLOW = InterfaceRules("r1", "eth1", ListKind.ALLOW, ("198.18.1.0/24", "2001:db8:1::/48"), Action(Mode.DROP),
                       provenance={"2001:db8:1::/48": ("report:lan@r1:eth1",)})


def test_link_local_passes_an_allowlist_as_the_pushed_rules_accept_fe80_10() -> None:
    e = explain("r1", "eth1", ALLOW, "fe80::1")
    assert (e.verdict, e.flowspec_rule) == ("pass", "accept fe80::/10")
    assert e.reason.startswith("always allowed: fe80::/10")
    assert explain("r1", "eth1", ALLOW, "::").verdict == "pass"  # DAD from the unspecified address
    assert explain("r1", "eth1", ALLOW, "0.0.0.0").verdict == "pass"  # DHCP discover
    outside = explain("r1", "eth1", ALLOW, "2001:db8:9::1")
    assert (outside.verdict, outside.flowspec_rule) == ("drop", "discard ::/0")
    inside = explain("r1", "eth1", ALLOW, "2001:db8:1::7")
    assert (inside.verdict, inside.matched_prefix, inside.provenance) == (
        "pass", "2001:db8:1::/48", ("report:lan@r1:eth1",))
    blocklist = InterfaceRules("r1", "eth2", ListKind.BLOCK, ("fe80::/10", "198.18.9.0/24"),
                               Action(Mode.DROP))
    assert explain("r1", "eth2", blocklist, "fe80::99").verdict == "pass"  # never blocked either


def test_an_allowlist_filters_only_the_families_it_lists() -> None:
    v4_only = InterfaceRules("r1", "eth1", ListKind.ALLOW, ("198.18.1.0/24",), Action(Mode.DROP))
    e = explain("r1", "eth1", v4_only, "2001:db8::1")
    assert e.verdict == "pass" and "lists no IPv6 prefix" in e.reason
    assert explain("r1", "eth1", v4_only, "198.18.2.1").verdict == "drop"


def test_a_prefix_passes_only_when_all_of_it_passes() -> None:
    assert explain("r1", "eth1", ALLOW, "198.18.0.0/16").verdict == "drop"  # wider than the listed /24
    half = explain("r1", "eth1", ALLOW, "fe80::/9")  # fe80::/10 passes, the rest of the /9 does not
    assert half.verdict == "drop" and "part of fe80::/9 (fe80::/10) passes" in half.reason
    assert explain("r1", "eth1", ALLOW, "fe80::/64").verdict == "pass"


addresses = st.one_of(
    st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n))),
    st.sampled_from(["198.18.1.1", "198.18.9.9", "0.0.0.0", "fe80::1", "::", "2001:db8:1::1",
                     "2001:db8:2::"]),
    st.integers(0, 2**16 - 1).map(lambda n: str(ipaddress.IPv6Address((0x20010DB8 << 96) + (n << 80)))),
)
prefixes = st.sampled_from(["198.18.1.0/24", "198.18.0.0/15", "0.0.0.0/0", "2001:db8:1::/48", "::/0",
                            "fe80::/9", "2001:db8::/32", "0.0.0.0/31", "198.18.1.128/25"])
modes = st.sampled_from([Action(Mode.DROP), Action(Mode.MONITOR), Action(Mode.RATE_LIMIT, 1000.0),
                         Action(Mode.REDIRECT, redirect="65001:100")])


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(list(ListKind)), st.lists(prefixes, max_size=5), modes, addresses)
def test_explain_agrees_with_the_compiled_rules_on_every_address(kind: ListKind, listed: list[str],
                                                                   action: Action, source: str) -> None:
    rules = SavRuleSet.of([InterfaceRules("r1", "eth1", kind, tuple(listed), action)]).rules[0]
    plan = compile_ruleset(SavRuleSet((rules,)), CompileOptions()).get("r1")
    pushed = evaluate(plan, "eth1", source).kind if plan is not None else ActionKind.ACCEPT
    verdict = explain("r1", "eth1", rules, source).verdict
    assert (verdict == "pass") == (pushed is ActionKind.ACCEPT), (verdict, pushed)
    if verdict != "pass":
        assert verdict == str(action.mode)
