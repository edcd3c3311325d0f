"""Drift: what a router holds against what savd intends for it, rule by rule, and what to re-push.

The router's side is its enforcer's listing (GET /counters `rules`): the FlowSpec routes FRR accepted and
re-advertised to the enforcer, whatever their install state (installed or not is rule-not-installed's
business, installed.py). savd's side is the rules its pusher wants the router's peers to hold. Rules are
matched by source prefix and interface groups (installed.RuleKey, the route's identity at the router);
a difference is `missing` (intended, not held), `extra` (held, not intended) or `changed` (held with
another action).

Pure and stateful like FreshnessWatch: `DriftWatch.check` takes one listing per call and returns the
notices and the repair. A difference seen in one listing only is not trusted (the listing may predate a
push in flight); seen in two listings running it is confirmed: one alarm and one counted episode per
rule, however long it lasts, and re-pushed at once, then again after 1, 2, 4 ... (at most `max_backoff`)
checks have passed while it persists (a router that refuses the rule is not hammered). When the router
holds what savd intends the alarm clears, and an episode that got a repair counts as repaired.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from appliance.flowspec.rules import ActionKind, FlowAction, FlowMatch, FlowRule
from appliance.monitor.events import RuleDrift
from appliance.monitor.installed import RuleKey, pushed_key, reported_key

MISSING, EXTRA, CHANGED = "missing", "extra", "changed"
KINDS = (MISSING, EXTRA, CHANGED)
_PACKET_LENGTH = re.compile(r"packet-length\s*>=?\s*(\d+)")
_DISCARD = FlowAction(ActionKind.DISCARD)


def held_action(text: str) -> str:
    """The enforcer's action text (route.RouteAction.describe) in savd's FlowAction words."""
    words = text.split()
    if not words:
        return "accept"
    if words[0] == "discard":
        return "discard"
    if words[0] == "rate-limit" and len(words) > 1:
        try:
            rate = int(float(words[1]))
        except ValueError:
            return text
        return f"rate-limit {rate}" + (" packets" if "packets" in words else "")
    if "redirect" in words:
        return f"redirect {words[words.index('redirect') + 1]}" if words[-1] != "redirect" else text
    return "sample" if "sample" in words else "accept"


def label(key: RuleKey) -> str:
    return f"source {key[0]} groups [{','.join(map(str, key[1]))}]"


@dataclass(frozen=True, slots=True)
class Difference:
    """One rule on which `router` departs from savd: `rule` is savd's (to re-announce) for missing and
    changed, a withdrawal built from the router's entry for extra."""

    router: str
    key: RuleKey
    kind: str
    intended: str
    held: str
    rule: FlowRule


def compare(router: str, intended: Iterable[FlowRule], held: Iterable[Any]) -> list[Difference]:
    """Every difference between the rules savd intends for `router` and its enforcer's entries."""
    entries: dict[RuleKey, Mapping[str, Any]] = {}
    for entry in held:
        key = reported_key(entry) if isinstance(entry, Mapping) else None
        if key is not None:
            entries[key] = entry
    out: list[Difference] = []
    wanted: dict[RuleKey, FlowRule] = {pushed_key(r): r for r in intended}
    for key, rule in sorted(wanted.items()):
        entry = entries.get(key)
        want = str(rule.action)
        if entry is None:
            out.append(Difference(router, key, MISSING, want, "", rule))
            continue
        have = held_action(str(entry.get("action") or ""))
        if have != want:
            out.append(Difference(router, key, CHANGED, want, have, rule))
    for key, entry in sorted(entries.items()):
        if key not in wanted:
            have = held_action(str(entry.get("action") or ""))
            found = _PACKET_LENGTH.search(str(entry.get("nlri") or ""))
            match = FlowMatch(key[0], int(found.group(1)) if found else None)
            out.append(Difference(router, key, EXTRA, "", have, FlowRule(router, match, _DISCARD, key[1])))
    return out


@dataclass(frozen=True, slots=True)
class Repair:
    """What to send `router`'s peers: re-announce (missing, changed) and withdraw (extra)."""

    announce: tuple[FlowRule, ...] = ()
    withdraw: tuple[FlowRule, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.announce or self.withdraw)


@dataclass(frozen=True, slots=True)
class DriftRound:
    notices: list[RuleDrift]
    repair: Repair
    detected: dict[str, int]       # new confirmed episodes by kind
    repaired: int                  # episodes that ended after at least one repair


@dataclass(slots=True)
class _Episode:
    diff: Difference
    seen: int = 1
    confirmed: bool = False
    repairs: int = 0
    wait: int = 0          # checks to let pass before the next repair
    backoff: int = 1       # the wait after the next repair (doubles up to max_backoff)


@dataclass(slots=True)
class DriftWatch:
    """Per-router drift episodes across checks; see the module docstring."""

    max_backoff: int = 16
    _episodes: dict[str, dict[RuleKey, _Episode]] = field(default_factory=dict)

    def check(self, router: str, intended: Iterable[FlowRule], held: Iterable[Any]) -> DriftRound:
        now = {d.key: d for d in compare(router, intended, held)}
        episodes = self._episodes.setdefault(router, {})
        notices: list[RuleDrift] = []
        announce: list[FlowRule] = []
        withdraw: list[FlowRule] = []
        detected: dict[str, int] = {}
        repaired = 0
        for key in sorted(set(episodes) - set(now)):
            gone = episodes.pop(key)
            if gone.confirmed:
                notices.append(_notice(gone.diff, gone.repairs, drifted=False))
                repaired += 1 if gone.repairs else 0
        for key, diff in now.items():
            ep = episodes.get(key)
            if ep is None:
                episodes[key] = _Episode(diff)
                continue
            changed_kind = ep.diff.kind != diff.kind or ep.diff.held != diff.held
            ep.diff, ep.seen = diff, ep.seen + 1
            first = not ep.confirmed
            if first:
                ep.confirmed = True
                detected[diff.kind] = detected.get(diff.kind, 0) + 1
            repair_now = ep.wait == 0
            if repair_now:
                (withdraw if diff.kind == EXTRA else announce).append(diff.rule)
                ep.repairs += 1
                ep.wait, ep.backoff = ep.backoff, min(ep.backoff * 2, self.max_backoff)
            else:
                ep.wait -= 1
            if first or changed_kind or repair_now:  # the alarm shows the latest difference and repairs
                notices.append(_notice(diff, ep.repairs, drifted=True))
        if not episodes:
            self._episodes.pop(router, None)
        return DriftRound(notices, Repair(tuple(announce), tuple(withdraw)), detected, repaired)

    def forget(self, router: str) -> list[RuleDrift]:
        """Drop a router's episodes (no longer checked, e.g. no FlowSpec peer left): clears its alarms."""
        return [_notice(ep.diff, ep.repairs, drifted=False)
                for ep in self._episodes.pop(router, {}).values() if ep.confirmed]

    def drifted(self, router: str = "") -> dict[str, int]:
        """Confirmed drifting rules per router (for status)."""
        return {r: n for r, eps in sorted(self._episodes.items()) if (not router or r == router)
                and (n := sum(1 for ep in eps.values() if ep.confirmed))}


def _notice(diff: Difference, repairs: int, *, drifted: bool) -> RuleDrift:
    return RuleDrift(diff.router, label(diff.key), diff.key[0], diff.kind, diff.intended, diff.held, repairs,
                     drifted)
