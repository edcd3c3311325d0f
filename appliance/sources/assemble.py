"""One store snapshot + the configuration -> the engine's input: the same for `savd run`, the CLIs and tests.

Configuration facts are merged here at compute time rather than stored, so a changed configuration never
leaves stale facts in the journal:
- prefix reports resolved by precedence (api > file > bgp-ls, sources/reports/merge.py);
- router roles and capabilities (a router known only from them or the configuration is in [appliance] asn):
  every source's RouterRole facts (BGP-LS infers border routers from their
  AS-border links, the reports file and `savd report role` say the rest) resolved by the same precedence,
  then [[engine.router]] overrides, which also add routers the state does not know;
- eBGP neighbours with their relationships: the state's plus [[engine.neighbor]];
- the policy ([engine]);
- the IGP prefixes BGP-LS reported (internal space for the border blocklists, engine/intra.py);
- steering: the configured `[[steering.inspector]]` instances plus the API's (by name, the API's win: it
  carries the reported load), the suspects, and [steering]'s policy (engine/steering.py), decided over
  the FlowSpec routers of the rule set and the SAVNET routers of the input.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from appliance.config import Config
from appliance.engine.rib import Rov
from appliance.engine.snapshot import Snapshot
from appliance.engine.steering import decide, rov_suspects
from appliance.model import Capability, Delivery, Event, Inspector, Router, SavRuleSet
from appliance.sources.reports.merge import ReportResolver, Resolved, resolve
from appliance.state import StateSnapshot

__all__ = ["engine_input", "inspectors", "resolved", "routers", "steered", "steering_events"]


def inspectors(config: Config, snap: StateSnapshot) -> tuple[Inspector, ...]:
    """The configured inspectors, replaced or joined by the state's (API) ones of the same name."""
    out = {i.name: i for i in config.steering.inspectors}
    out.update((i.name, i) for i in snap.inspectors)
    return tuple(out[n] for n in sorted(out))


def steered(config: Config, snap: StateSnapshot, engine_in: Snapshot, ruleset: SavRuleSet,
            rov: Callable[[str, int], Rov] | None = None) -> SavRuleSet:
    """`ruleset` with the steering of the state's suspects, and with `[steering] rpki_invalid` and
    `sav_unknown` of the prefixes whose paths' origin `rov(prefix, origin)` finds Invalid or NotFound
    (None: no RPKI view to judge by; no suspects: `ruleset` itself). A flagged suspect of a prefix wins
    over a drawn one."""
    suspects = snap.suspects
    if rov is not None:
        flagged = {s.prefix for s in suspects}
        suspects = (*suspects, *(s for s in rov_suspects(engine_in.paths, rov, config.steering.policy)
                                 if s.prefix not in flagged))
    if not suspects:
        return ruleset
    flowspec = {r.router for r in ruleset.rules if r.delivery is Delivery.FLOWSPEC}
    savnet = {r.name for r in engine_in.routers if r.capability is Capability.SAVNET}
    decision = decide(inspectors(config, snap), suspects, flowspec | savnet, config.steering.policy)
    return dataclasses.replace(ruleset, steering=decision.steered)


def steering_events(config: Config, snap: StateSnapshot) -> tuple[Event, ...]:
    """The steering alarms (no inspector for a suspect, scale out/in) for the daemon's findings."""
    return decide(inspectors(config, snap), snap.suspects, (), config.steering.policy).events


def resolved(snap: StateSnapshot, resolver: ReportResolver | None = None) -> Resolved:
    """The state's prefix reports and role reports, each resolved by source precedence; through
    `resolver` (same result) a caller resolving snapshot after snapshot pays only for what changed."""
    if resolver is not None:
        return resolver(snap.reports, snap.roles)
    return resolve(snap.reports, snap.roles)


def routers(config: Config | None, snap: StateSnapshot, res: Resolved | None = None) -> tuple[Router, ...]:
    """Every router with its role and capability: state, then reported roles, then [[engine.router]]
    (none without a configuration, e.g. `savd topology show --frr-json`)."""
    res = res or resolved(snap)
    out = {r.name: r for r in snap.routers}
    local_as = config.appliance.asn if config is not None else 0  # a router no topology source describes
    for name, report in res.routers.items():
        base = out.get(name, Router(name, asn=local_as))
        out[name] = dataclasses.replace(
            base,
            role=report.role if report.role is not None else base.role,
            capability=report.capability if report.capability is not None else base.capability,
        )
    for o in config.engine.routers if config is not None else ():
        base = out.get(o.name, Router(o.name, asn=local_as))
        out[o.name] = dataclasses.replace(base, role=o.role, capability=o.capability)
    return tuple(out[n] for n in sorted(out))


def engine_input(config: Config, snap: StateSnapshot, resolver: ReportResolver | None = None) -> Snapshot:
    """The engine's input for a store snapshot, completed by the configuration (reports resolved through
    `resolver` when given: the daemon keeps one, so a lone report change is not a resolve of every report)."""
    res = resolved(snap, resolver)
    neighbors = tuple(dict.fromkeys((*snap.neighbors, *config.engine.neighbors)))
    return Snapshot(
        routers=routers(config, snap, res), interfaces=snap.interfaces, links=snap.links,
        reports=res.prefixes, neighbors=neighbors, paths=snap.paths, vrps=snap.vrps, aspas=snap.aspas,
        policy=config.engine.policy(), igp_prefixes=snap.igp_prefixes,
    )
