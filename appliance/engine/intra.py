"""Intra-domain SAV rules of the controller (draft-tong-savnet-sav-enhanced-by-controller section 5.1).

Two rules, from the source-prefix reports of the domain's subnets and the IGP prefixes BGP-LS reports:
- Border routers: a blocklist of every internal source prefix on each EXTERNAL interface, minus anycast and
  special prefixes (an anycast prefix legitimately arrives from outside too, its Figure 3). Internal
  means reported (any source) or advertised into the IGP as an intra- or inter-area route (router loopbacks,
  internal links, the appliance's own LAN: an outsider spoofing them must not get in). Not internal: IGP
  external routes (redistributed, maybe from BGP: the Internet's prefixes), default routes. Anycast: flagged
  in a report, or an IGP prefix several routers advertise that is not a link they share (each has an
  interface address in it). Space shared with the outside (an external interface's subnet, an eBGP
  neighbour's address) is never blocked: the neighbour's own BGP packets come from it. A hole nested inside
  an internal prefix is carved out of it, because a blocklist entry blocks every source it covers.
- Access routers (any interface with reports that is not a border router's external one): an allowlist of
  the prefixes reported there, widened to every prefix of each subnet reported there, so a subnet
  multi-homed to R1 and R2 gets all of its prefixes on both (its Figure 1; intra architecture -05
  section 3.5). A non-SAVNET router gets the same data; the facade marks its delivery ACL.

Per-interface policy: `strict` keeps only the prefixes reported on that very interface (what a router's own
FIB would say, the source of the improper block the documents describe), `loose` lists nothing. Pure.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from appliance.engine.policy import Algorithm, Policy
from appliance.engine.prefixset import PrefixSet, subtract_space
from appliance.model import (
    IgpPrefix,
    Interface,
    ListKind,
    Neighbor,
    PrefixReport,
    Relationship,
    Role,
    Router,
)

__all__ = ["IntraOutcome", "access_name", "access_outcome", "border_blocklist", "border_outcome",
           "compute_intra", "external_keys", "igp_internal", "igp_tag", "is_hole", "outermost", "own_chosen",
           "patch_access", "report_order", "report_tag", "shared_with_outside"]


@dataclass(frozen=True, slots=True)
class IntraOutcome:
    kind: ListKind
    prefixes: frozenset[str]
    algorithm: str
    provenance: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def report_tag(r: PrefixReport) -> str:
    """Provenance of one report: report:<subnet>@<router>:<interface> (source when not the API)."""
    src = "" if r.source == "api" else f" via {r.source}"
    return f"report:{r.subnet or '-'}@{r.router}:{r.interface}{src}"


def is_hole(r: PrefixReport) -> bool:
    return r.flags.anycast or r.flags.special


def igp_tag(p: IgpPrefix) -> str:
    """Provenance of one IGP prefix: igp:<prefix>@<router> (learned over BGP-LS)."""
    return f"igp:{p.prefix}@{p.router}"


def _addresses_in(prefix: str, interfaces: Iterable[Interface]) -> set[str]:
    """Routers with an interface address inside `prefix`."""
    net = ipaddress.ip_network(prefix)
    out = set()
    for i in interfaces:
        for a in i.addresses:
            ip = ipaddress.ip_interface(a).ip
            if ip.version == net.version and ip in net:
                out.add(i.router)
    return out


def igp_internal(igp: Iterable[IgpPrefix],
                 interfaces: Iterable[Interface] = ()) -> tuple[dict[str, set[str]], set[str]]:
    """(internal IGP prefix -> provenance tags, anycast IGP prefixes).

    Why not every IGP prefix: an external route may be the Internet redistributed from BGP (blocking it at
    the border drops the Internet), and a prefix several routers advertise is anycast unless it is a link
    they share (each has an address in it), which is internal like any other.
    """
    interfaces = tuple(interfaces)
    origins: dict[str, set[str]] = {}
    tags: dict[str, set[str]] = {}
    for p in igp:
        if p.external or ipaddress.ip_network(p.prefix).prefixlen == 0:
            continue
        origins.setdefault(p.prefix, set()).add(p.router)
        tags.setdefault(p.prefix, set()).add(igp_tag(p))
    anycast = {prefix for prefix, routers in origins.items()
               if len(routers) > 1 and not routers <= _addresses_in(prefix, interfaces)}
    return {p: t for p, t in tags.items() if p not in anycast}, anycast


#: an IGP prefix at least this long that holds an external address is that link's subnet (shared whole);
#: a shorter one (an aggregate) only loses the address itself
LINK_SUBNET_MIN_LEN = {4: 24, 6: 64}


def shared_with_outside(interfaces: Iterable[Interface], neighbors: Iterable[Neighbor] = (),
                        igp: Iterable[IgpPrefix] = ()) -> set[str]:
    """Space the AS shares with its eBGP neighbours: the subnet of each external interface and eBGP
    neighbour address (from the interface's length, else the most specific IGP prefix of link size
    holding it, else the address alone). Blocking it drops the neighbour's own BGP packets."""
    addresses = [ipaddress.ip_interface(a) for i in interfaces if i.external for a in i.addresses]
    addresses += [ipaddress.ip_interface(n.address) for n in neighbors
                  if n.address and n.relationship is not Relationship.INTERNAL]
    nets = [ipaddress.ip_network(p.prefix) for p in igp]
    out = set()
    for a in addresses:
        links = [n for n in nets if n.version == a.version and a.ip in n
                 and n.prefixlen >= LINK_SUBNET_MIN_LEN[a.version]]
        out.add(str(a.network))
        if links:
            out.add(str(max(links, key=lambda n: n.prefixlen)))
    return out


def outermost(prefixes: Iterable[str]) -> tuple[str, ...]:
    """The prefixes no other one of them covers (a hole inside a hole says nothing more)."""
    nets = [ipaddress.ip_network(p) for p in prefixes]
    return tuple(str(n) for n in nets
                 if not any(o != n and o.version == n.version and n.subnet_of(o) for o in nets))  # type: ignore[arg-type]


def border_blocklist(reports: Iterable[PrefixReport], igp: Iterable[IgpPrefix] = (),
                     interfaces: Iterable[Interface] = (),
                     neighbors: Iterable[Neighbor] = ()) -> dict[str, tuple[str, ...]]:
    """Internal prefixes (reports and IGP) minus anycast, special and shared space -> why each is listed."""
    reports, interfaces, igp = list(reports), tuple(interfaces), tuple(igp)
    why, anycast = igp_internal(igp, interfaces)
    shared = shared_with_outside(interfaces, neighbors, igp)
    holes = PrefixSet([*(r.prefix for r in reports if is_hole(r)), *anycast, *shared])
    for r in reports:
        if r.prefix not in holes:
            why.setdefault(r.prefix, set()).add(report_tag(r))
    out: dict[str, tuple[str, ...]] = {}
    for prefix, tags in why.items():
        if holes.covers(prefix):
            continue  # inside an anycast/special prefix or shared with a neighbour: never block
        inner = outermost(holes.covered(prefix))
        pieces = subtract_space([prefix], inner) if inner else (prefix,)
        extra = tuple(f"carved:{h} {'shared' if h in shared else 'anycast/special'}" for h in inner)
        for piece in pieces:
            out[piece] = tuple(sorted(tags)) + extra
    return out


def report_order(r: PrefixReport) -> tuple[str, str, str, str, str, bool, bool, bool]:
    """A total order on reports: the border blocklist's provenance follows it, so it never depends on
    the order (or hash seed) the reports arrived in."""
    return (r.router, r.interface, r.prefix, r.subnet, r.source, r.flags.anycast, r.flags.special,
            r.flags.multihomed)


def external_keys(routers: Mapping[str, Router], interfaces: Iterable[Interface]) -> set[tuple[str, str]]:
    """The border routers' external interfaces: they get the blocklist, whatever is reported on them."""
    return {
        (i.router, i.name)
        for i in interfaces
        if i.external and i.router in routers and routers[i.router].role is Role.BORDER
    }


def border_outcome(key: tuple[str, str], block: Mapping[str, tuple[str, ...]],
                   policy: Policy, prefixes: frozenset[str] | None = None) -> IntraOutcome:
    """The rule of one external interface of a border router, given the domain's blocklist (`prefixes`:
    its keys, when the caller shares one frozenset among the interfaces)."""
    if policy.algorithm_for(*key) is Algorithm.LOOSE:
        return IntraOutcome(ListKind.BLOCK, frozenset(), "intra:loose")
    return IntraOutcome(ListKind.BLOCK, frozenset(block) if prefixes is None else prefixes,
                        "intra:border-block", block)


def compute_intra(
    routers: Mapping[str, Router],
    interfaces: Iterable[Interface],
    reports: Iterable[PrefixReport],
    policy: Policy,
    igp: Iterable[IgpPrefix] = (),
    neighbors: Iterable[Neighbor] = (),
) -> dict[tuple[str, str], IntraOutcome]:
    """Every intra-domain rule of the domain, keyed by (router, interface)."""
    reports = sorted(set(reports), key=report_order)
    interfaces = tuple(interfaces)
    out: dict[tuple[str, str], IntraOutcome] = {}
    external = external_keys(routers, interfaces)
    block = border_blocklist(reports, igp, interfaces, neighbors) if external else {}
    for key in sorted(external):
        out[key] = border_outcome(key, block, policy)
    by_subnet: dict[str, list[PrefixReport]] = {}
    by_iface: dict[tuple[str, str], list[PrefixReport]] = {}
    for r in reports:
        by_iface.setdefault((r.router, r.interface), []).append(r)
        if r.subnet:
            by_subnet.setdefault(r.subnet, []).append(r)
    for key, own in sorted(by_iface.items()):
        if key in external:
            continue
        out[key] = access_outcome(key, own, by_subnet, policy.algorithm_for(*key))
    return out


def access_name(algo: Algorithm) -> str:
    """The algorithm name of an access allowlist (LOOSE aside): equal names mean the same reports are
    chosen, which is what lets the engine patch an outcome instead of redoing it (`patch_access`)."""
    return "intra:strict" if algo is Algorithm.STRICT else "intra:subnet-allow"


def own_chosen(r: PrefixReport, algo: Algorithm) -> bool:
    """Whether an interface's own report is listed: strict approximates the router's own FIB, where an
    anycast prefix's route points to another instance."""
    return algo is not Algorithm.STRICT or not r.flags.anycast


def _provenance(chosen: Iterable[PrefixReport]) -> dict[str, tuple[str, ...]]:
    why: dict[str, set[str]] = {}
    for r in chosen:
        why.setdefault(r.prefix, set()).add(report_tag(r))
    return {p: tuple(sorted(t)) for p, t in why.items()}


def access_outcome(
    key: tuple[str, str],
    own: Collection[PrefixReport],
    by_subnet: Mapping[str, Collection[PrefixReport]],
    algo: Algorithm,
) -> IntraOutcome:
    """The allowlist of one access interface: it reads only its own reports and those of their subnets,
    which is what lets the incremental engine redo just the interfaces a report change touches."""
    if algo is Algorithm.LOOSE:
        return IntraOutcome(ListKind.BLOCK, frozenset(), "intra:loose")
    chosen = [r for r in own if own_chosen(r, algo)]
    if algo is not Algorithm.STRICT:
        for subnet in sorted({r.subnet for r in own if r.subnet}):
            chosen.extend(r for r in by_subnet[subnet] if (r.router, r.interface) != key)
    prov = _provenance(chosen)
    return IntraOutcome(ListKind.ALLOW, frozenset(prov), access_name(algo), prov)


def patch_access(prev: IntraOutcome, changed: Iterable[str], reports: Iterable[PrefixReport],
                 algo: Algorithm) -> IntraOutcome:
    """`prev` with the `changed` prefixes redone from `reports`, the interface's own reports of them: what
    `access_outcome` gives when no own report has a subnet (only own reports are chosen then) and `prev`
    is named `access_name(algo)`, in O(changes) plus C-level copies. `prev` is left as it is (older
    decisions hold it)."""
    prov = dict(prev.provenance)
    for p in changed:
        prov.pop(p, None)
    prov.update(_provenance(r for r in reports if own_chosen(r, algo)))
    return IntraOutcome(ListKind.ALLOW, frozenset(prov), access_name(algo), prov)
