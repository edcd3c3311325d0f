"""Property: compiled FlowSpec rules, evaluated in RFC 8955 order, mean exactly what the SavRuleSet means.

The reference semantics and the RFC 8955 §5.1 comparator here are written independently of the compiler
(plain ipaddress, pairwise comparison as in the RFC pseudocode), so a wrong order key, a wrong
aggregation or a wrong merge across interfaces shows up as a counterexample.
"""

from __future__ import annotations

import functools
import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.flowspec import (
    ACCEPT,
    ActionKind,
    CompileOptions,
    FlowAction,
    FlowMatch,
    TableCache,
    compile_ruleset,
    evaluate,
)
from appliance.model import Action, InterfaceRules, ListKind, Mode, SavRuleSet

IFACES = ("eth1", "eth2", "eth3", "eth4")
ALWAYS_ALLOWED = [ipaddress.ip_network(p) for p in ("0.0.0.0/32", "fe80::/10", "::/128")]
ROUTERS = ("r1", "r2")


def _v4_prefix(bits: int, length: int) -> str:
    base = int(ipaddress.IPv4Address("198.18.0.0"))
    addr = base + ((bits << (32 - 26)) & ((1 << 17) - 1))  # inside 198.18.0.0/15
    return str(ipaddress.IPv4Network((addr, length), strict=False))


def _v6_prefix(bits: int, length: int) -> str:
    base = int(ipaddress.IPv6Address("2001:db8::"))
    addr = base + ((bits << (128 - 40)) & ((1 << 96) - 1))  # inside 2001:db8::/32
    return str(ipaddress.IPv6Network((addr, length), strict=False))


prefixes = st.one_of(
    st.builds(_v4_prefix, st.integers(0, 2**11 - 1), st.integers(15, 26)),
    st.builds(_v6_prefix, st.integers(0, 2**8 - 1), st.integers(32, 40)),
    st.sampled_from(["0.0.0.0/0", "198.0.0.0/8", "::/0", "0.0.0.0/31", "fe80::/9", "fe80::/64", "::/127"]),
)
actions = st.one_of(
    st.just(Action(Mode.DROP)),
    st.just(Action(Mode.MONITOR)),
    st.sampled_from([Action(Mode.RATE_LIMIT, 0.0), Action(Mode.RATE_LIMIT, 12500.0)]),
    st.just(Action(Mode.REDIRECT, redirect="65001:100")),
)
interface_rules = st.builds(
    lambda router, iface, kind, pfx, act: InterfaceRules(router, iface, kind, tuple(pfx), act),
    st.sampled_from(ROUTERS), st.sampled_from(IFACES), st.sampled_from(list(ListKind)),
    st.lists(prefixes, max_size=12), actions,
)
rulesets = st.lists(interface_rules, max_size=6, unique_by=lambda r: r.key()).map(SavRuleSet.of)


def expected_action(rules: InterfaceRules | None, source: str) -> FlowAction:
    """The SavRuleSet's meaning (compiler docstring), independent of the compiler."""
    if rules is None:
        return ACCEPT
    addr = ipaddress.ip_address(source)
    if any(addr.version == n.version and addr in n for n in ALWAYS_ALLOWED):
        return ACCEPT
    nets = [ipaddress.ip_network(p) for p in rules.prefixes]
    listed = any(addr.version == n.version and addr in n for n in nets)
    act = rules.action
    failing = {
        Mode.DROP: FlowAction(ActionKind.DISCARD),
        Mode.MONITOR: FlowAction(ActionKind.SAMPLE),
        Mode.REDIRECT: FlowAction(ActionKind.REDIRECT, redirect=act.redirect),
        Mode.RATE_LIMIT: FlowAction(ActionKind.RATE_LIMIT, rate_bps=round(act.rate))
        if act.rate > 0 else FlowAction(ActionKind.DISCARD),
    }[act.mode]
    if rules.kind is ListKind.BLOCK:
        return failing if listed else ACCEPT
    if not any(n.version == addr.version for n in nets):
        return ACCEPT
    return ACCEPT if listed else failing


def sources(ruleset: SavRuleSet, extra: list[int]) -> list[str]:
    """Edges of every listed prefix (first, last, one outside each side) plus random addresses."""
    out = {"10.0.0.1", "2001:db9::1", "255.255.255.255", "::", "::1", "0.0.0.1", "fe80::1", "febf::1",
           "fec0::"}
    for r in ruleset.rules:
        for p in r.prefixes:
            net = ipaddress.ip_network(p)
            lo, hi = int(net.network_address), int(net.broadcast_address)
            top = (1 << net.max_prefixlen) - 1
            cls = ipaddress.IPv4Address if net.version == 4 else ipaddress.IPv6Address
            for a in (lo, hi, lo - 1, hi + 1, (lo + hi) // 2):
                if 0 <= a <= top:
                    out.add(str(cls(a)))
    base4 = int(ipaddress.IPv4Address("198.18.0.0"))
    base6 = int(ipaddress.IPv6Address("2001:db8::"))
    for x in extra:
        out.add(str(ipaddress.IPv4Address(base4 + x % (1 << 17))))
        out.add(str(ipaddress.IPv6Address(base6 + ((x % (1 << 16)) << 80))))
    return sorted(out)


def rfc8955_compare(a: FlowMatch, b: FlowMatch) -> int:
    """RFC 8955 §5.1: <0 when a has precedence. Source prefix (type 2) first, then packet length (10)."""
    na, nb = a.network(), b.network()
    if na != nb:
        common = min(na.prefixlen, nb.prefixlen)
        if na.supernet(new_prefix=common) == nb.supernet(new_prefix=common):
            return -1 if na.prefixlen > nb.prefixlen else 1   # more specific first
        return -1 if na.network_address < nb.network_address else 1
    if a.packet_length_min == b.packet_length_min:
        return 0
    if a.packet_length_min is None:
        return 1     # the rule with the extra component has precedence
    if b.packet_length_min is None:
        return -1
    return -1 if a.packet_length_min < b.packet_length_min else 1   # memcmp of op|value, same op


@settings(max_examples=300, deadline=None)
@given(rulesets, st.lists(st.integers(0, 2**20), max_size=20), st.sampled_from([1, 2, 256]))
def test_compiled_rules_mean_exactly_the_rule_set(ruleset: SavRuleSet, extra: list[int],
                                                  max_groups: int) -> None:
    plan = compile_ruleset(ruleset, CompileOptions(max_groups_per_rule=max_groups))
    empty = {r.key() for r in ruleset.rules if r.kind is ListKind.ALLOW and not r.prefixes}
    assert {(e.fields["router"], e.fields["interface"]) for e in plan.events} == empty
    assert all(e.type == "flowspec.empty-allowlist" for e in plan.events)
    srcs = sources(ruleset, extra)
    for router in ROUTERS:
        rplan = plan.get(router)
        for iface in (*IFACES, "unlisted0"):
            want_rules = ruleset.get(router, iface)
            for src in srcs:
                want = expected_action(want_rules, src)
                got = evaluate(rplan, iface, src) if rplan is not None else ACCEPT
                assert got == want, (router, iface, src, [str(r) for r in rplan.rules] if rplan else [])


@settings(max_examples=200, deadline=None)
@given(rulesets, st.sampled_from([1, 2, 256]))
def test_rules_are_minimal_ordered_and_unique(ruleset: SavRuleSet, max_groups: int) -> None:
    plan = compile_ruleset(ruleset, CompileOptions(max_groups_per_rule=max_groups))
    for rplan in plan.routers:
        assert rplan.stats.emitted == len(rplan.rules)
        assert all(len(r.groups) <= max_groups for r in rplan.rules)
        if max_groups == 256:   # no chunking: at most the exact cover
            assert rplan.stats.emitted <= rplan.stats.exact_cover
        keys = [r.key() for r in rplan.rules]
        assert len(keys) == len(set(keys)), "two rules share one NLRI and would replace each other"
        for fam in (4, 6):
            fam_rules = [r for r in rplan.rules if r.match.family == fam]
            rfc_key = functools.cmp_to_key(lambda x, y: rfc8955_compare(x.match, y.match))
            by_rfc = sorted(fam_rules, key=rfc_key)
            assert [r.match for r in fam_rules] == [r.match for r in by_rfc]
        # rules sharing a source prefix apply to disjoint interface groups
        seen: dict[str, set[int]] = {}
        for r in rplan.rules:
            groups = set(r.groups)
            assert not (seen.get(r.match.source, set()) & groups)
            seen.setdefault(r.match.source, set()).update(groups)


@settings(max_examples=100, deadline=None)
@given(st.lists(interface_rules, max_size=6, unique_by=lambda r: (r.router, r.interface)), st.randoms())
def test_output_is_deterministic_and_order_independent(rules: list[InterfaceRules], rnd: object) -> None:
    shuffled = list(rules)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    a = compile_ruleset(SavRuleSet.of(rules))
    b = compile_ruleset(SavRuleSet.of(shuffled))
    assert a == b


SHARED_CACHE = TableCache(max_lists=8)   # small: evictions happen too


@settings(max_examples=150, deadline=None)
@given(rulesets)
def test_cache_never_changes_the_output(ruleset: SavRuleSet) -> None:
    assert compile_ruleset(ruleset, cache=SHARED_CACHE) == compile_ruleset(ruleset)
    assert compile_ruleset(ruleset, cache=SHARED_CACHE) == compile_ruleset(ruleset)   # now from the cache
