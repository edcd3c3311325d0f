"""Intra-domain SAV rules of the controller (seeds/003 section 5.1; reference/sav-algorithms.md section 1.9).

Two rules, from the source-prefix reports of the domain's subnets:
- Border routers: a blocklist of every internal source prefix on each EXTERNAL interface, minus anycast and
  special prefixes (an anycast prefix legitimately arrives from outside too, seeds/003 Figure 3). An anycast
  prefix nested inside an internal one is carved out of it, because a blocklist entry blocks every source it
  covers.
- Access routers (any interface with reports that is not a border router's external one): an allowlist of
  the prefixes reported there, widened to every prefix of each subnet reported there, so a subnet
  multi-homed to R1 and R2 gets all of its prefixes on both (seeds/003 Figure 1; intra architecture -05
  section 3.5). A non-SAVNET router gets the same data; the facade marks its delivery ACL.

Per-interface policy: `strict` keeps only the prefixes reported on that very interface (what a router's own
FIB would say, the source of the improper block the documents describe), `loose` lists nothing. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from appliance.engine.policy import Algorithm, Policy
from appliance.engine.prefixset import PrefixSet, subtract_space
from appliance.model import Interface, ListKind, PrefixReport, Role, Router

__all__ = ["IntraOutcome", "border_blocklist", "compute_intra", "report_tag"]


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


def _is_hole(r: PrefixReport) -> bool:
    return r.flags.anycast or r.flags.special


def border_blocklist(reports: Iterable[PrefixReport]) -> dict[str, tuple[str, ...]]:
    """Internal prefixes minus anycast/special space -> the reports that justify each listed prefix."""
    reports = list(reports)
    holes = PrefixSet(r.prefix for r in reports if _is_hole(r))
    why: dict[str, set[str]] = {}
    for r in reports:
        if r.prefix not in holes:
            why.setdefault(r.prefix, set()).add(report_tag(r))
    out: dict[str, tuple[str, ...]] = {}
    for prefix, tags in why.items():
        if holes.covers(prefix):
            continue  # inside an anycast/special prefix: never block
        inner = holes.covered(prefix)
        pieces = subtract_space([prefix], inner) if inner else (prefix,)
        extra = tuple(f"carved:{h} anycast/special" for h in inner)
        for piece in pieces:
            out[piece] = tuple(sorted(tags)) + extra
    return out


def compute_intra(
    routers: Mapping[str, Router],
    interfaces: Iterable[Interface],
    reports: Iterable[PrefixReport],
    policy: Policy,
) -> dict[tuple[str, str], IntraOutcome]:
    """Every intra-domain rule of the domain, keyed by (router, interface)."""
    reports = sorted(set(reports), key=lambda r: (r.router, r.interface, r.prefix, r.subnet, r.source))
    out: dict[tuple[str, str], IntraOutcome] = {}
    external = {
        (i.router, i.name)
        for i in interfaces
        if i.external and i.router in routers and routers[i.router].role is Role.BORDER
    }
    block = border_blocklist(reports)
    for key in sorted(external):
        algo = policy.algorithm_for(*key)
        if algo is Algorithm.LOOSE:
            out[key] = IntraOutcome(ListKind.BLOCK, frozenset(), "intra:loose")
        else:
            out[key] = IntraOutcome(ListKind.BLOCK, frozenset(block), "intra:border-block", block)
    by_subnet: dict[str, list[PrefixReport]] = {}
    by_iface: dict[tuple[str, str], list[PrefixReport]] = {}
    for r in reports:
        by_iface.setdefault((r.router, r.interface), []).append(r)
        if r.subnet:
            by_subnet.setdefault(r.subnet, []).append(r)
    for key, own in sorted(by_iface.items()):
        if key in external:
            continue
        out[key] = _access(key, own, by_subnet, policy.algorithm_for(*key))
    return out


def _access(
    key: tuple[str, str],
    own: list[PrefixReport],
    by_subnet: Mapping[str, list[PrefixReport]],
    algo: Algorithm,
) -> IntraOutcome:
    if algo is Algorithm.LOOSE:
        return IntraOutcome(ListKind.BLOCK, frozenset(), "intra:loose")
    # strict approximates the router's own FIB: an anycast prefix's route points to another instance
    chosen = [r for r in own if not r.flags.anycast]
    name = "intra:strict"
    if algo is not Algorithm.STRICT:
        name = "intra:subnet-allow"
        chosen = list(own)
        for subnet in sorted({r.subnet for r in own if r.subnet}):
            chosen.extend(r for r in by_subnet[subnet] if (r.router, r.interface) != key)
    why: dict[str, set[str]] = {}
    for r in chosen:
        why.setdefault(r.prefix, set()).add(report_tag(r))
    prov = {p: tuple(sorted(t)) for p, t in why.items()}
    return IntraOutcome(ListKind.ALLOW, frozenset(prov), name, prov)
