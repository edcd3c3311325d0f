"""Explain a verdict: would a packet from `source` be allowed on this router's interface, and why?

Pure: an InterfaceRules (or None) and an address or prefix in, a typed Explanation out. The verdict is
that of the rules as pushed: the interface's list goes through the FlowSpec compiler
(appliance.flowspec.compiler, the same `always_allowed` sources and family rules the routers get) and
the compiled rules are evaluated in RFC 8955 order, first match (appliance.flowspec.evaluate). Reading
the list alone gave answers the routers never act on: fe80::1 "dropped" by an allowlist although the
pushed rules always accept fe80::/10, IPv6 "dropped" by an allowlist that lists only IPv4.

For a prefix source the verdict holds for every address in it: when some of its addresses pass and
others do not, the verdict is the stopping one and the reason names the part that differs. The list
entry shown (`matched_prefix`, `provenance`) is the longest listed prefix covering the source (py-radix),
since the compiled rules are aggregated and carry no provenance. No rule means pass (savd fails open).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import radix

from appliance.flowspec.compiler import CompileOptions, TableCache, compile_ruleset
from appliance.flowspec.rules import ACCEPT, ActionKind, FlowAction, FlowRule
from appliance.model import Delivery, InterfaceRules, ListKind, SavRuleSet, Steered

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: the pusher's compiler options, minus the guardrails: a refused rule set is an alarm of its own, and
#: explain answers what the interface's rules mean
EXPLAIN_OPTIONS = CompileOptions(max_rules_per_router=2**31, force=True)


@dataclass(frozen=True, slots=True)
class Explanation:
    router: str
    interface: str
    source: str
    verdict: str            # "pass" or the action's mode ("drop", "rate-limit", "redirect", "monitor")
    reason: str
    matched_prefix: str = ""
    provenance: tuple[str, ...] = ()
    list_kind: str = ""
    algorithm: str = ""
    flowspec_rule: str = ""  # the compiled rule that decides ("accept fe80::/10"); "" when none matches

    def to_dict(self) -> dict[str, Any]:
        return {
            "router": self.router,
            "interface": self.interface,
            "source": self.source,
            "verdict": self.verdict,
            "reason": self.reason,
            "matched_prefix": self.matched_prefix,
            "provenance": list(self.provenance),
            "list": self.list_kind,
            "algorithm": self.algorithm,
            "flowspec_rule": self.flowspec_rule,
        }


def parse_source(text: str) -> str:
    """An address or a prefix, canonical; raises ValueError with a readable message."""
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        raise ValueError(f"not an IP address or prefix: {text!r}") from None


def _listed(rules: InterfaceRules, src: str) -> str:
    """The longest listed prefix that covers the whole source, or ""."""
    tree = radix.Radix()
    for p in rules.prefixes:
        tree.add(p)
    node = tree.search_best(src)
    if node is None or ipaddress.ip_network(node.prefix).prefixlen > ipaddress.ip_network(src).prefixlen:
        return ""
    return str(node.prefix)


def _passes(action: FlowAction) -> bool:
    """Accepted untouched; a monitor rule forwards too, but its verdict is "monitor" (counted)."""
    return action.kind is ActionKind.ACCEPT


def _decide(rules: tuple[FlowRule, ...], group: int, src: IPNetwork
            ) -> tuple[FlowRule | None, FlowRule | None]:
    """(the first rule covering all of `src`, the first rule inside `src` whose outcome differs from it).

    RFC 8955 order puts more specific prefixes first, so every rule inside `src` comes before the one
    that covers it; for a single address there is none inside.
    """
    inside: list[FlowRule] = []
    covering = None
    for rule in rules:
        if group not in rule.groups:
            continue
        net = rule.match.network()
        if net.version != src.version:
            continue
        if src.subnet_of(net):  # type: ignore[arg-type]
            covering = rule
            break
        if net.subnet_of(src):  # type: ignore[arg-type]
            inside.append(rule)
    base = _passes(covering.action if covering else ACCEPT)
    differing = next((r for r in inside if _passes(r.action) != base), None)
    return covering, differing


def _rule_text(rule: FlowRule | None) -> str:
    return f"{rule.action} {rule.match.source}" if rule is not None else ""


def _is_always_allowed(src: IPNetwork, options: CompileOptions) -> str:
    for text in options.always_allowed:
        net = ipaddress.ip_network(text)
        if net.version == src.version and src.subnet_of(net):  # type: ignore[arg-type]
            return text
    return ""


def explain(router: str, interface: str, rules: InterfaceRules | None, source: str,
            cache: TableCache | None = None) -> Explanation:
    """The verdict of the pushed rules on `source` entering `interface`; `cache` (kept by the caller)
    spares re-aggregating lists already compiled (a trace explains every interface)."""
    src = parse_source(source)
    if rules is None:
        return Explanation(router, interface, src, "pass", "no SAV rule on this interface (fail open)")
    matched = _listed(rules, src)
    prov = tuple(rules.provenance.get(matched, ())) if matched else ()
    mode, kind = str(rules.action.mode), str(rules.kind)

    def verdict(outcome: str, reason: str, rule: FlowRule | None = None) -> Explanation:
        return Explanation(router, interface, src, outcome, reason, matched, prov, kind, rules.algorithm,
                           _rule_text(rule))

    compiled = dataclasses.replace(rules, delivery=Delivery.FLOWSPEC)
    plan = compile_ruleset(SavRuleSet((compiled,)), EXPLAIN_OPTIONS, cache=cache)
    router_plan = plan.get(router)
    group = router_plan.group_of(interface) if router_plan is not None else None
    if router_plan is None or group is None:
        why = "; ".join(e.message for e in plan.events) or "the list compiles to no rule"
        return verdict("pass", f"not filtered (fail open): {why}")
    net = ipaddress.ip_network(src)
    covering, differing = _decide(router_plan.rules, group, net)
    action: FlowAction = covering.action if covering else ACCEPT
    if differing is not None:
        stop = differing if _passes(action) else covering
        what = "is stopped" if _passes(action) else "passes"
        return verdict(mode, f"part of {src} ({differing.match.source}) {what} while the rest does not",
                       stop)
    if not _passes(action):
        why = f"blocked by {matched}" if rules.kind is ListKind.BLOCK else "not in the interface's allowlist"
        return verdict(mode, why, covering)
    exempt = _is_always_allowed(net, EXPLAIN_OPTIONS)
    if exempt:
        return verdict("pass", f"always allowed: {exempt} (link-local or unspecified source), accepted "
                               "by the pushed rules whatever the list says", covering)
    if rules.kind is ListKind.BLOCK:
        return verdict("pass", "not in the interface's blocklist", covering)
    if covering is None:
        return verdict("pass", f"the allowlist lists no IPv{net.version} prefix: IPv{net.version} sources "
                               "are not filtered on this interface", None)
    return verdict("pass", f"allowed by {matched or covering.match.source}", covering)


def trust(src: str, steering: Iterable[Steered], router: str = "") -> tuple[str, list[Steered]]:
    """seeds/001's trust level of a source: "suspicious" when a suspect prefix covers it (the steering
    decisions that do, on `router` or every router), else "trusted"; where it counts as spoofed is what
    the interfaces' verdicts say."""
    net = ipaddress.ip_network(src)
    covering = [s for s in steering if (not router or s.router == router)
                and _covers(ipaddress.ip_network(s.prefix), net)]
    return ("suspicious" if covering else "trusted"), covering


def _covers(outer: ipaddress.IPv4Network | ipaddress.IPv6Network,
            inner: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    return outer.version == inner.version and inner.subnet_of(outer)  # type: ignore[arg-type]
