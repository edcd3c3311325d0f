"""Did each router install what savd pushed? savd's held FlowSpec rules for a router against the rules the
router's enforcer reports (GET /counters: `rules`, each with its source prefix, interface groups, state and
reason). Pure: the caller keeps the previous round's missing keys and reconciles the notices as alarms.

A pushed rule is not installed when the enforcer lists it in a state other than "installed" (skipped,
unmapped interface group, degraded to forwarding: its reason says why), or does not list it at all in two
polls running (the router refused it, or did not re-advertise it; one poll may simply come before the
router had it). A rule listed as "unmapped" (its interface group has no local interface yet) is held the
same way: at start the enforcer can list the rules before it has read the group file savd writes, and
that is not worth an alarm unless it lasts into the next poll. Rules are matched by source prefix and
interface groups: the route's identity at the router (per-interface variants of one prefix differ by
their groups).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from appliance.flowspec.rules import FlowRule
from appliance.monitor.events import RuleInstalled

RuleKey = tuple[str, tuple[int, ...]]
UNMAPPED = "unmapped"  # the enforcer's state for a rule whose interface group it cannot map (yet)


def pushed_key(rule: FlowRule) -> RuleKey:
    return rule.match.source, tuple(sorted(rule.groups))


def reported_key(entry: Mapping[str, Any]) -> RuleKey | None:
    """The key of one enforcer rule entry, None when it is not well formed."""
    try:
        return str(entry["source"]), tuple(sorted(int(g) for g in entry.get("groups") or ()))
    except (KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class ReportedRules:
    """An enforcer's rule listing by key (`reported_rules`): made where the listing is fetched, off the
    event loop, since keying 10k entries costs ~10 ms."""

    entries: tuple[Any, ...]                       # as listed, well formed or not
    by_key: Mapping[RuleKey, Mapping[str, Any]]    # the well-formed ones


def reported_rules(reported: Iterable[Any] | ReportedRules) -> ReportedRules:
    """Key an enforcer's `rules` entries (once: keyed ones pass through); entries that are not well
    formed are left out of `by_key`."""
    if isinstance(reported, ReportedRules):
        return reported
    entries = tuple(reported)
    states: dict[RuleKey, Mapping[str, Any]] = {}
    for entry in entries:
        key = reported_key(entry) if isinstance(entry, Mapping) else None
        if key is not None:
            states[key] = entry
    return ReportedRules(entries, states)


def install_findings(router: str, pushed: Iterable[FlowRule] | Mapping[RuleKey, FlowRule],
                     reported: Iterable[Any] | ReportedRules,
                     missing_before: frozenset[RuleKey], *,
                     absent: bool = True) -> tuple[list[RuleInstalled], frozenset[RuleKey]]:
    """Not-installed notices for `router`, and the keys missing this round (pass them in next time).
    `absent=False`: a rule the router does not list at all is left to the drift check (drift.py), which
    also repairs it, so one missing rule is not two alarms."""
    states = reported_rules(reported).by_key
    notices, missing = [], set()
    pairs = pushed.items() if isinstance(pushed, Mapping) else ((pushed_key(r), r) for r in pushed)
    for key, rule in pairs:   # keyed already by the daemon (it keeps each rule's key between polls)
        entry = states.get(key)
        if entry is None:
            missing.add(key)
            if absent and key in missing_before:
                notices.append(RuleInstalled(router, _label(rule, key), False, "pushed, but not in the "
                                             "router's FlowSpec table (refused, or not re-advertised)"))
        elif entry.get("state") != "installed":
            reason = f"{entry.get('state', '?')}: {entry.get('reason') or 'no reason given'}"
            if entry.get("state") == UNMAPPED:  # held like an absent rule: see the module docstring
                missing.add(key)
                if key not in missing_before:
                    continue
            notices.append(RuleInstalled(router, _label(rule, key), False, reason))
    return notices, frozenset(missing)


def _label(rule: FlowRule, key: RuleKey) -> str:
    """A notice's name for the rule (made only for notices: a router holds 10k installed rules)."""
    return f"{rule.match} groups [{','.join(map(str, key[1]))}]"
