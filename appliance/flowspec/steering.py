"""Steering decisions (engine/steering.py) -> FlowSpec rules, merged into each router's compiled SAV rules.

Pure, like the compiler. A steered suspect prefix P on router R becomes one rule: match source P (and
nothing else), action REDIRECT_IP to the inspector's address (draft-ietf-idr-flowspec-redirect-ip;
ExaBGP `redirect-to-nexthop-ietf <ip>`), or DISCARD under the `drop` fallback (the `accept` fallback
adds nothing: fail open), with the interface groups of R's validated interfaces: the ones its SAV rules
cover (edge interfaces: access subnets, external neighbours). Not every interface: the packets the
inspection function forwards come back into the network through an interior or inspector-facing
interface, and a rule there would steer them again, in a loop. A router with no SAV rules steers nothing.

Merge, in RFC 8955 §5.1 order (first match wins; a more specific prefix first):
- A steered P more specific than a SAV rule (a /32 inside an allowlisted /24) sorts before it, so the
  sources in P are redirected and the rest of the /24 is still accepted.
- Spoofed wins over suspicious: on an interface where the SAV rules give P's sources an acting verdict
  (discard, rate-limit, rt-redirect: the first SAV rule containing or equal to P for that interface's
  group), that verdict is kept as a rule on P itself with those groups, with a `packet-length >= N`
  discriminator (more components sort first at one prefix, rules.py), so it precedes the steered rule.
- SAV rules with P as their very prefix are replaced by those (their forwarding variants, accept and
  sample, are superseded by the steered rule: one NLRI per route).
- Left as it is: a SAV rule strictly inside P keeps its own verdict for its sources (it sorts first).
- A router needing more than MAX_DISCRIMINATORS + 1 variants at one P keeps its SAV rules there, and the
  event `flowspec.too-many-actions` names the prefix.

The steered rules count toward `max_rules_per_router`: a router whose SAV rules plus steered rules go over
it gets its SAV rules alone (the suspects keep their SAV verdict: fail open, never a half-steered set) and
the alarm `steering.too-many-rules` naming the router and both counts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from appliance.flowspec.aggregate import WIDTH, parse_prefix
from appliance.flowspec.rules import (
    MAX_DISCRIMINATORS,
    ActionKind,
    FlowAction,
    FlowMatch,
    FlowRule,
    FlowSpecPlan,
    RouterFlowSpec,
    RouterStats,
    sort_rules,
)
from appliance.model import Event, Severity, Steered, SteeringFallback


def steered_action(steered: Steered) -> FlowAction | None:
    """The rule action of one decision: rt-redirect to its route target, redirect-ip, or the fallback's
    (None for accept: no rule)."""
    if steered.target:
        return FlowAction(ActionKind.REDIRECT, redirect=steered.target)
    if steered.address:
        return FlowAction(ActionKind.REDIRECT_IP, redirect_ip=steered.address)
    if steered.fallback is SteeringFallback.DROP:
        return FlowAction(ActionKind.DISCARD)
    return None


def steering_rules(steering: Iterable[Steered], groups: Mapping[str, tuple[int, ...]]
                   ) -> dict[str, list[FlowRule]]:
    """Per router, the steered rules, on the groups of its validated interfaces (`groups`; a router
    without any steers nothing: module docstring)."""
    out: dict[str, list[FlowRule]] = defaultdict(list)
    for s in steering:
        action = steered_action(s)
        if action is not None and groups.get(s.router):
            out[s.router].append(FlowRule(s.router, FlowMatch(s.prefix), action, groups[s.router]))
    return dict(out)


def _contains(outer: str, inner: str) -> bool:
    v1, a1, l1 = parse_prefix(outer)
    v2, a2, l2 = parse_prefix(inner)
    if v1 != v2 or l1 > l2:
        return False
    shift = WIDTH[v1] - l1
    return a1 >> shift == a2 >> shift


def _acting_verdicts(sav: Sequence[FlowRule], prefix: str, groups: Iterable[int]
                     ) -> dict[FlowAction, list[int]]:
    """Per acting SAV action, the groups whose first SAV rule containing or equal to `prefix` acts."""
    containing = [r for r in sav if _contains(r.match.source, prefix)]
    acting: dict[FlowAction, list[int]] = defaultdict(list)
    for g in sorted(groups):
        rule = next((r for r in containing if not r.groups or g in r.groups), None)
        if rule is not None and not rule.action.forwards:
            acting[rule.action].append(g)
    return acting


def _merge_prefix(router: str, sav: Sequence[FlowRule], steer: FlowRule, groups: Iterable[int]
                  ) -> list[FlowRule] | None:
    """The rules at the steered prefix: the kept acting verdicts (discriminated), then the steered rule.
    None when they need too many discriminators."""
    acting = _acting_verdicts(sav, steer.match.source, groups)
    if len(acting) > MAX_DISCRIMINATORS:
        return None
    out = [FlowRule(router, FlowMatch(steer.match.source, i), action, tuple(acting[action]))
           for i, action in enumerate(sorted(acting, key=FlowAction.sort_key))]
    return [*out, steer]


def merge_router(plan: RouterFlowSpec, steered: Sequence[FlowRule], events: list[Event],
                 limit: int | None = None) -> RouterFlowSpec:
    """`plan`'s SAV rules with `steered` merged in RFC 8955 order (module docstring); over `limit` rules
    in all, `plan` itself with the alarm. A refused plan stays refused: the router keeps what it holds."""
    if plan.refused or not steered:
        return plan
    sav = plan.rules
    gids = [g.group_id for g in plan.groups]
    replaced: set[str] = set()
    added: list[FlowRule] = []
    for rule in steered:
        merged = _merge_prefix(plan.router, sav, rule, gids)
        if merged is None:
            events.append(Event(0.0, "flowspec", "flowspec.too-many-actions", Severity.ERROR,
                                f"{plan.router}: steered {rule.match.source} needs over "
                                f"{MAX_DISCRIMINATORS + 1} distinct rules; left to the SAV rules", {
                                    "router": plan.router, "prefix": rule.match.source}, True))
            continue
        replaced.add(rule.match.source)
        added += merged
    rules = sort_rules([r for r in sav if r.match.source not in replaced] + added)
    if limit is not None and len(rules) > limit:
        events.append(Event(0.0, "flowspec", "steering.too-many-rules", Severity.ERROR,
                            f"{plan.router}: {len(sav)} SAV rules and {len(steered)} steered ones make "
                            f"{len(rules)} rules, over the limit {limit}; steering left out, the SAV "
                            "rules stand", {"router": plan.router, "rules": str(len(rules)),
                                            "sav_rules": str(len(sav)), "limit": str(limit)}, True))
        return plan
    return RouterFlowSpec(plan.router, rules, plan.groups,
                          RouterStats(len(rules), plan.stats.exact_cover), plan.refused)


def with_steering(plan: FlowSpecPlan, steering: Iterable[Steered], limit: int | None = None
                  ) -> FlowSpecPlan:
    """`plan` with every router's steered rules merged in (on its validated interfaces), each router's
    total within `limit` (`max_rules_per_router`). Routers without steering keep their plan object (the
    pusher skips them at once)."""
    steering = tuple(steering)
    if not steering:  # the common case, after every change: no per-router work
        return plan
    plans = {p.router: p for p in plan.routers}
    groups = {r: tuple(sorted(g.group_id for g in p.groups)) for r, p in plans.items() if not p.refused}
    per_router: Mapping[str, list[FlowRule]] = steering_rules(steering, groups)
    if not per_router:
        return plan
    events = list(plan.events)
    for router, rules in per_router.items():
        plans[router] = merge_router(plans[router], rules, events, limit)
    return FlowSpecPlan(tuple(plans[r] for r in sorted(plans)), tuple(events))
