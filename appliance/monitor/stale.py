"""Stale policy: rules still in force whose inputs are past their freshness bound.

Fail open already withdraws what expires (RPKI data past `expire_after_s` is dropped and the rules it
supported go). Between stale and expired the rules stay: a guess would be worse than slightly old data.
This names them so the operator knows: a rule whose provenance rests on RPKI ("roa:" entries, the engine's
snapshot.py) while an RPKI source is stale (freshness.py) gets a `stale.rule` notice per router and
interface, listing the stale sources; the caller reconciles them (Monitor.reconcile_notices), so the alarm
is raised once and cleared when the data is fresh or the rule no longer rests on it. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence

from appliance.model import SavRuleSet
from appliance.monitor.events import RuleStale

#: provenance entry prefixes that come from RPKI data
RPKI_PROVENANCE = ("roa:", "aspa:")


def stale_findings(ruleset: SavRuleSet, stale_rpki: Sequence[str]) -> list[RuleStale]:
    """A notice per (router, interface) rule resting on RPKI while any of `stale_rpki` (names) is stale."""
    if not stale_rpki:
        return []
    inputs = "RPKI " + ", ".join(sorted(stale_rpki))
    out = []
    for rule in ruleset.rules:
        if any(e.startswith(RPKI_PROVENANCE) for prov in rule.provenance.values() for e in prov):
            out.append(RuleStale(rule.router, rule.interface, inputs))
    return out
