"""The engine facade: a frozen `Snapshot` of every input, and `compute(snapshot) -> SavRuleSet`.

`decide` runs the intra-domain rules (intra.py) and, per border router, the inter-domain algorithms
(inter.py), then merges them per interface; `materialize` attaches mode, delivery and per-prefix provenance
and returns the model's SavRuleSet. Merging follows general-sav-capabilities section 2: an interface allowlist
and an interface blocklist are exclusive, and the allowlist wins; two blocklists add up; an intra allowlist
never narrows an eBGP interface whose inter-domain rule is a blocklist (fail open). The default's blocklist on
a customer interface (inter.PROVEN_BLOCK) stands for an allowlist: an intra blocklist adds only its prefixes
that overlap no allowed one (`Outcome.spare`; a border-block of an internal prefix would otherwise drop a
customer's more-specific of it, which that allowlist passes: fail open). The same snapshot gives a
byte-identical to_json(); nothing here reads a clock, the environment or a file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from appliance.engine.inter import Outcome, compute_router
from appliance.engine.intra import IntraOutcome, compute_intra
from appliance.engine.policy import Policy
from appliance.engine.rib import RouterRib, RpkiView, neighbors_by_interface
from appliance.model import (
    Aspa,
    BgpPath,
    Capability,
    Delivery,
    IgpPrefix,
    Interface,
    InterfaceRules,
    Link,
    ListKind,
    Neighbor,
    PrefixReport,
    Router,
    SavRuleSet,
    Vrp,
    prefix_sort_key,
)

__all__ = ["Decision", "Snapshot", "assemble", "compute", "decide", "decide_router_inter", "materialize"]

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
    #: prefixes the routers advertise into the IGP (BGP-LS): internal space for the border blocklists
    igp_prefixes: tuple[IgpPrefix, ...] = ()

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
    rib = RouterRib(router.name, router.asn, neighbors_by_interface(neighbors), paths)
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
        notes, extra, prov = inter.notes, intra.prefixes, intra.provenance
        if inter.spare is not None:  # the blocklist stands for an allowlist: add only what it drops
            extra = inter.spare(intra.prefixes)
            if len(extra) < len(intra.prefixes):
                prov = {p: why for p, why in intra.provenance.items() if p in extra}
                dropped = len(intra.prefixes) - len(extra)
                notes = (*notes, f"{intra.algorithm}: {dropped} prefixes not applied, overlapping an allowed "
                         "prefix (fail open)")
        return Decision(
            r, i, ListKind.BLOCK, inter.prefixes | extra, f"{inter.algorithm}+{intra.algorithm}",
            notes, prov, True,
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
    intra = compute_intra(routers, snapshot.interfaces, snapshot.reports, snapshot.policy,
                          snapshot.igp_prefixes, snapshot.neighbors)
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
    """Per-prefix inputs of one snapshot, indexed once, for provenance (paths per router, VRPs per prefix).

    It also keeps the model's normal form cheap at scale: prefix sort keys are computed once per prefix, a
    shared prefix set (EFP-B's list on a thousand interfaces) is sorted once, and equal provenance tuples are
    stored once.
    """

    def __init__(self, snapshot: Snapshot) -> None:
        self.paths: dict[tuple[str, str, str], list[BgpPath]] = {}
        for p in snapshot.paths:
            self.paths.setdefault((p.router, p.interface, p.prefix), []).append(p)
        self.vrps: dict[str, list[Vrp]] = {}
        for v in snapshot.vrps:
            self.vrps.setdefault(v.prefix, []).append(v)
        self.policy = snapshot.policy
        self._keys: dict[str, tuple[int, int, int]] = {}
        self._sorted: dict[int, tuple[frozenset[str], tuple[str, ...]]] = {}
        self._interned: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._plain: dict[tuple[str, bool, str], tuple[str, ...]] = {}

    def vrps_at(self, prefix: str) -> Iterable[Vrp]:
        """The VRPs whose prefix is exactly `prefix`."""
        return self.vrps.get(prefix, ())

    def paths_for(self, router: str, interface: str, prefix: str) -> Iterable[BgpPath]:
        """Paths for `prefix` received on that interface: the local evidence (others' paths change too often
        to list on every interface that shares a list)."""
        return self.paths.get((router, interface, prefix), ())

    def for_prefix(self, d: Decision, prefix: str) -> tuple[str, ...]:
        """The provenance of one prefix of one rule, sorted and de-duplicated (the model's normal form)."""
        own = self.paths_for(d.router, d.interface, prefix) if d.inter else ()
        intra = d.intra_provenance.get(prefix, ())
        acl = d.inter and prefix in self.policy.prefix_acl.get((d.router, d.interface), ())
        if own or intra or acl:
            return self._build(d, prefix, own, intra, acl)
        key = (d.algorithm, d.inter, prefix)
        got = self._plain.get(key)
        if got is None:
            got = self._plain[key] = self._build(d, prefix, (), (), False)
        return got

    def _build(
        self, d: Decision, prefix: str, own: Iterable[BgpPath], intra: Iterable[str], acl: bool
    ) -> tuple[str, ...]:
        out = [f"algorithm:{d.algorithm}", *intra]
        if d.inter:
            out.extend(f"path:{p.interface}:{'>'.join(str(a) for a in p.as_path)}" for p in own)
            out.extend(f"roa:{v.prefix}-{v.max_length} AS{v.asn}" for v in self.vrps_at(prefix))
            if acl:
                out.append("acl:prefix")
        normal = tuple(sorted(set(out)))
        return self._interned.setdefault(normal, normal)

    def sort_key(self, prefix: str) -> tuple[int, int, int]:
        key = self._keys.get(prefix)
        if key is None:
            key = self._keys[prefix] = prefix_sort_key(prefix)
        return key

    def sorted_prefixes(self, prefixes: frozenset[str]) -> tuple[str, ...]:
        cached = self._sorted.get(id(prefixes))
        if cached is None or cached[0] is not prefixes:
            cached = (prefixes, tuple(sorted(prefixes, key=self.sort_key)))
            self._sorted[id(prefixes)] = cached
        return cached[1]


def rule_of(d: Decision, routers: Mapping[str, Router], evidence: Evidence) -> InterfaceRules:
    """One Decision as the model's InterfaceRules in normal form, with action, delivery and provenance."""
    router = routers.get(d.router, Router(d.router))
    delivery = Delivery.ACL if router.capability is Capability.LEGACY else Delivery.FLOWSPEC
    algorithm = d.algorithm
    fail_open = [n for n in d.notes if n.startswith("fail-open")]
    if fail_open:
        algorithm = f"{algorithm} [{'; '.join(fail_open)}]"
    prefixes = evidence.sorted_prefixes(d.prefixes)
    prov = {p: evidence.for_prefix(d, p) for p in prefixes}
    return InterfaceRules(
        d.router, d.interface, d.kind, prefixes,
        evidence.policy.action_for(d.router, d.interface), delivery, algorithm, prov,
    )


def assemble(rules: Iterable[InterfaceRules]) -> SavRuleSet:
    """SavRuleSet.of for rules already in normal form (rule_of's output), without normalising again: the
    same result, minus re-sorting millions of prefixes (tests/unit/engine/test_snapshot.py checks it)."""
    return SavRuleSet(tuple(sorted(rules, key=lambda r: r.key())))


def materialize(snapshot: Snapshot, decisions: Mapping[Key, Decision]) -> SavRuleSet:
    routers = snapshot.router_map()
    evidence = Evidence(snapshot)
    return assemble(rule_of(d, routers, evidence) for d in decisions.values())


def compute(snapshot: Snapshot) -> SavRuleSet:
    """The rule set of a snapshot: pure and deterministic (same snapshot, byte-identical to_json())."""
    return materialize(snapshot, decide(snapshot))
