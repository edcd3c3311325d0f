"""What to send to a peer to go from the rules it holds to the rules it should hold.

Routes are keyed by NLRI (`FlowRule.key()`): a rule whose action or groups changed is re-announced
(an announce replaces the route with the same NLRI), a rule no longer wanted is withdrawn. `steps()`
orders the updates so a transition never blocks more than the old or the new rule set would
(fail open): first announce forwarding rules (accept, sample), then withdraw acting rules (discard,
rate-limit, redirect), then announce acting rules, then withdraw forwarding rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from appliance.flowspec.rules import FlowRule, sort_rules


@dataclass(frozen=True, slots=True)
class FlowDiff:
    withdraw: tuple[FlowRule, ...] = ()
    announce: tuple[FlowRule, ...] = ()

    def empty(self) -> bool:
        return not (self.withdraw or self.announce)

    def steps(self) -> tuple[tuple[str, FlowRule], ...]:
        """("announce"|"withdraw", rule) in fail-open order."""
        return (
            tuple(("announce", r) for r in self.announce if r.action.forwards)
            + tuple(("withdraw", r) for r in self.withdraw if not r.action.forwards)
            + tuple(("announce", r) for r in self.announce if not r.action.forwards)
            + tuple(("withdraw", r) for r in self.withdraw if r.action.forwards)
        )


def diff(pushed: Iterable[FlowRule], wanted: Iterable[FlowRule]) -> FlowDiff:
    """Withdraw what is pushed but not wanted; announce what is wanted and not pushed identically.

    The incremental compiler hands unchanged rules back as the very objects pushed before, so those
    are set aside by identity (C-level) and only the rest is keyed and compared: a one-rule change on
    a router holding 12k rules costs ~1 ms instead of ~30 ms of hashing every NLRI."""
    pushed, wanted = list(pushed), list(wanted)
    both = set(map(id, pushed)).intersection(map(id, wanted))
    old = {r.key(): r for r in pushed if id(r) not in both}
    new = {r.key(): r for r in wanted if id(r) not in both}
    withdraw = [r for k, r in old.items() if k not in new]
    announce = [r for k, r in new.items() if old.get(k) != r]
    return FlowDiff(sort_rules(withdraw), sort_rules(announce))


@dataclass(frozen=True, slots=True)
class FlowStep:
    """What turns one compiled rule tuple of a router into the next, as the incremental compiler saw it
    (the rules of the prefixes it touched, before and after): a pusher whose peer holds `base` sends
    `change` instead of diffing two whole tables (~10 ms per 10k rules, on every report)."""

    base: tuple[FlowRule, ...]
    result: tuple[FlowRule, ...]
    change: FlowDiff
