"""Evaluate compiled rules on one packet the way a FlowSpec router does (RFC 8955 §5.1, first match).

Used by the property tests and by `savd explain`-style tools to answer "what happens to source S
arriving on interface I of router R". Rules must be in RFC 8955 order (`RouterFlowSpec.rules` is).
The packet-length discriminator always matches (rules.py), so only the source prefix and the
interface groups decide.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from appliance.flowspec.rules import ACCEPT, FlowAction, FlowRule, RouterFlowSpec


def first_match(rules: Sequence[FlowRule], group: int | None, source: str) -> FlowRule | None:
    """The first rule scoped to `group` (or to every interface: no groups) whose source prefix contains
    `source`; `group` None (an interface without a group) meets only the rules of every interface."""
    addr = ipaddress.ip_address(source)
    for rule in rules:
        if not rule.groups or (group is not None and group in rule.groups):
            net = rule.match.network()
            if net.version == addr.version and addr in net:
                return rule
    return None


def evaluate(plan: RouterFlowSpec, interface: str, source: str) -> FlowAction:
    """The action applied to a packet from `source` entering `interface` (ACCEPT when nothing matches)."""
    rule = first_match(plan.rules, plan.group_of(interface), source)
    return rule.action if rule is not None else ACCEPT
