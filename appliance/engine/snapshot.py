"""The engine facade: a frozen `Snapshot` of every input, and `compute(snapshot) -> SavRuleSet`.

`decide` runs the intra-domain rules (intra.py) and, per border router, the inter-domain algorithms
(inter.py), then merges them per interface; `materialize` attaches mode, delivery and per-prefix provenance
and returns the model's SavRuleSet. Merging follows general-sav-capabilities section 2: an interface allowlist
and an interface blocklist are exclusive, and the allowlist wins; two blocklists add up; an intra allowlist
never narrows an eBGP interface whose inter-domain rule is a blocklist (fail open). The same snapshot gives a
byte-identical to_json(); nothing here reads a clock, the environment or a file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from appliance.engine.inter import Outcome, compute_router
from appliance.engine.intra import IntraOutcome, compute_intra
from appliance.engine.policy import Policy
from appliance.engine.rib import RouterRib, RpkiView
from appliance.model import (
    Aspa,
    BgpPath,
    Capability,
    Delivery,
    Interface,
    InterfaceRules,
    Link,
    ListKind,
    Neighbor,
    PrefixReport,
    Router,
    SavRuleSet,
    Vrp,
)

__all__ = ["Decision", "Snapshot", "compute", "decide", "decide_router_inter", "materialize"]

Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every input of one computation, frozen; `rpki_ready=None`: ready iff any VRP or ASPA is present."""

    routers: tuple[Router, ...] = ()
    interfaces: tuple[Interface, ...] = ()
    links: tuple[Link, ...] = ()
    reports: tuple[PrefixReport, ...] = ()
    neighbors: tuple[Neighbor, ...] = ()
    paths: tuple[BgpPath, ...] = ()
    vrps: tuple[Vrp, ...] = ()
    aspas: tuple[Aspa, ...] = ()
    policy: Policy = field(default_factory=Policy)
    rpki_ready: bool | None = None

    def replace(self, **changes: object) -> Snapshot:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def router_map(self) -> dict[str, Router]:
        """Routers by name, including those only named by interfaces, neighbours, reports or paths."""
        out = {r.name: r for r in self.routers}
        for name in (
            *(i.router for i in self.interfaces),
            *(n.router for n in self.neighbors),
            *(r.router for r in self.reports),
        ):
            out.setdefault(name, Router(name))
        return out

    def rpki(self) -> RpkiView:
        return RpkiView.of(self.vrps, self.aspas, self.rpki_ready)


@dataclass(frozen=True, slots=True)
class Decision:
    """One interface's merged list with the evidence `materialize` and `explain` turn into provenance."""

    router: str
    interface: str
    kind: ListKind
    prefixes: frozenset[str]
    algorithm: str
    notes: tuple[str, ...] = ()
    intra_provenance: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    inter: bool = False


def decide_router_inter(
    router: Router, neighbors: Iterable[Neighbor], paths: Iterable[BgpPath], rpki: RpkiView, policy: Policy
) -> tuple[RouterRib, dict[str, Outcome]]:
    """The inter-domain outcomes of one router (used by the full and the incremental computation)."""
    rib = RouterRib(router.name, router.asn, {n.interface: n for n in neighbors}, paths)
    return rib, compute_router(rib, rpki, policy)


def merge(key: Key, inter: Outcome | None, intra: IntraOutcome | None) -> Decision:
    """Combine the inter- and intra-domain lists of one interface (allowlist over blocklist)."""
    r, i = key
    if inter is None:
        assert intra is not None
        return Decision(r, i, intra.kind, intra.prefixes, intra.algorithm, (), intra.provenance)
    if intra is None:
        return Decision(r, i, inter.kind, inter.prefixes, inter.algorithm, inter.notes, {}, True)
    if inter.kind is ListKind.ALLOW and intra.kind is ListKind.ALLOW:
        return Decision(
            r, i, ListKind.ALLOW, inter.prefixes | intra.prefixes, f"{inter.algorithm}+{intra.algorithm}",
            inter.notes, intra.provenance, True,
        )
    if inter.kind is ListKind.BLOCK and intra.kind is ListKind.BLOCK:
        return Decision(
            r, i, ListKind.BLOCK, inter.prefixes | intra.prefixes, f"{inter.algorithm}+{intra.algorithm}",
            inter.notes, intra.provenance, True,
        )
    note = f"{intra.algorithm} not applied: the inter-domain {inter.kind}list decides (fail open)"
    if inter.kind is ListKind.ALLOW:
        note = f"{intra.algorithm} not applied: allowlist excludes blocklist (general-sav-capabilities 2)"
    return Decision(r, i, inter.kind, inter.prefixes, inter.algorithm, (*inter.notes, note), {}, True)


def decide(snapshot: Snapshot, rpki: RpkiView | None = None) -> dict[Key, Decision]:
    """Every interface's merged decision, keyed by (router, interface).

    `rpki` may pass the indexes of an unchanged RPKI table from an earlier run (it must hold the snapshot's
    VRPs and ASPAs); building the VRP index is most of the cost of a cold run.
    """
    routers = snapshot.router_map()
    intra = compute_intra(routers, snapshot.interfaces, snapshot.reports, snapshot.policy)
    rpki = rpki or snapshot.rpki()
    neighbors_by_router: dict[str, list[Neighbor]] = {}
    for n in snapshot.neighbors:
        neighbors_by_router.setdefault(n.router, []).append(n)
    paths_by_router: dict[str, list[BgpPath]] = {}
    for p in snapshot.paths:
        paths_by_router.setdefault(p.router, []).append(p)
    inter: dict[Key, Outcome] = {}
    for name in sorted(neighbors_by_router):
        _, outcomes = decide_router_inter(
            routers[name], neighbors_by_router[name], paths_by_router.get(name, ()), rpki, snapshot.policy
        )
        inter.update({(name, iface): o for iface, o in outcomes.items()})
    return {k: merge(k, inter.get(k), intra.get(k)) for k in sorted(inter.keys() | intra.keys())}


class Evidence:
    """Per-prefix inputs of one snapshot, indexed once, for provenance (paths per router, VRPs per prefix)."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.paths: dict[tuple[str, str], list[BgpPath]] = {}
        for p in snapshot.paths:
            self.paths.setdefault((p.router, p.prefix), []).append(p)
        self.vrps: dict[str, list[Vrp]] = {}
        for v in snapshot.vrps:
            self.vrps.setdefault(v.prefix, []).append(v)
        self.policy = snapshot.policy

    def paths_for(self, router: str, interface: str, prefix: str) -> Iterable[BgpPath]:
        """Paths for `prefix` received on that interface: the local evidence (others' paths change too often
        to list on every interface that shares a list)."""
        return [p for p in self.paths.get((router, prefix), ()) if p.interface == interface]

    def for_prefix(self, d: Decision, prefix: str) -> tuple[str, ...]:
        out = [f"algorithm:{d.algorithm}"]
        out.extend(d.intra_provenance.get(prefix, ()))
        if d.inter:
            for p in self.paths_for(d.router, d.interface, prefix):
                out.append(f"path:{p.interface}:{'>'.join(str(a) for a in p.as_path)}")
            for v in self.vrps.get(prefix, ()):
                out.append(f"roa:{v.prefix}-{v.max_length} AS{v.asn}")
            if prefix in self.policy.prefix_acl.get((d.router, d.interface), ()):
                out.append("acl:prefix")
        return tuple(out)


def rule_of(d: Decision, routers: Mapping[str, Router], evidence: Evidence) -> InterfaceRules:
    """One Decision as the model's InterfaceRules, with action, delivery and provenance."""
    router = routers.get(d.router, Router(d.router))
    delivery = Delivery.ACL if router.capability is Capability.LEGACY else Delivery.FLOWSPEC
    algorithm = d.algorithm
    fail_open = [n for n in d.notes if n.startswith("fail-open")]
    if fail_open:
        algorithm = f"{algorithm} [{'; '.join(fail_open)}]"
    prov = {p: evidence.for_prefix(d, p) for p in d.prefixes}
    return InterfaceRules(
        d.router, d.interface, d.kind, tuple(d.prefixes),
        evidence.policy.action_for(d.router, d.interface), delivery, algorithm, prov,
    )


def materialize(snapshot: Snapshot, decisions: Mapping[Key, Decision]) -> SavRuleSet:
    routers = snapshot.router_map()
    evidence = Evidence(snapshot)
    return SavRuleSet.of(rule_of(d, routers, evidence) for d in decisions.values())


def compute(snapshot: Snapshot) -> SavRuleSet:
    """The rule set of a snapshot: pure and deterministic (same snapshot, byte-identical to_json())."""
    return materialize(snapshot, decide(snapshot))
