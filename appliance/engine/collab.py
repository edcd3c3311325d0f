"""Collaboration allowances (issue 16): what a collaborating AS's SAV-specific information does to our rules.

A peer AS under an agreement tells us the prefixes it originates and the eBGP links over which its traffic
enters our AS. Path-based rules (EFP-uRPF, BAR-SAV) infer legitimate sources from BGP paths, so a customer
that announces a prefix over one link but sends from it over another (asymmetric routing, limited
propagation) is improperly blocked on the second. The peer's word fixes that on exactly the interfaces it
names: an allowlist gains the prefix, a blocklist loses it (CIDR subtraction). An interface without a rule,
or with an empty allowlist (ignored by the compiler: fail open), is left as it is, so collaboration never
adds filtering. An allowance whose agreement has expired counts for nothing, whether or not anyone withdrew
it (an agreement that silently lapses must not leave allowances behind).

Pure: the rule set, the allowances and the time in; a rule set out. The allowance's provenance
`collab:<ca_id>@<peer>` is what GET /api/v1/rules and explain show for an added prefix.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable, Mapping, Sequence

from appliance.engine.prefixset import PrefixSet, subtract_space
from appliance.model import CollabAllowance, InterfaceRules, ListKind, Neighbor, SavRuleSet, prefix_sort_key

__all__ = ["Unmapped", "live", "map_allowances", "provenance_tag", "with_collaboration"]


def provenance_tag(a: CollabAllowance) -> str:
    return f"collab:{a.ca_id}@{a.peer}"


def live(allowances: Iterable[CollabAllowance], now: float) -> tuple[CollabAllowance, ...]:
    """The allowances whose agreement has not expired at `now`."""
    return tuple(a for a in allowances if a.expires_at > now)


def _address(text: str) -> str:
    """Canonical address, or "" for what is not one (never raises: the peer's input is untrusted)."""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except (ValueError, AttributeError):
        return ""


@dataclasses.dataclass(frozen=True, slots=True)
class Unmapped:
    """An `arrives_from` address that names none of our eBGP links to the sender: why (`no-neighbor`,
    `asn-mismatch`, `bad-address`)."""

    address: str
    reason: str


def map_allowances(neighbors: Sequence[Neighbor], *, peer: str, peer_asn: int, ca_id: str,
                   prefixes: Iterable[str], arrives_from: Iterable[str], expires_at: float
                   ) -> tuple[tuple[CollabAllowance, ...], tuple[Unmapped, ...]]:
    """The allowances for a peer's prefixes on our interfaces facing it at its `arrives_from` addresses
    (a neighbour whose `address` is one of them and whose `asn` is the peer's), and the addresses that map
    to none. `prefixes` must be canonical (the caller drops the bad ones)."""
    by_address: dict[str, list[Neighbor]] = {}
    for n in neighbors:
        if n.address:
            by_address.setdefault(_address(n.address), []).append(n)
    links: set[tuple[str, str]] = set()
    unmapped: list[Unmapped] = []
    for raw in dict.fromkeys(arrives_from):
        address = _address(raw)
        found = by_address.get(address, []) if address else []
        ours = [n for n in found if n.asn == peer_asn]
        if ours:
            links.update((n.router, n.interface) for n in ours)
        else:
            reason = "bad-address" if not address else "asn-mismatch" if found else "no-neighbor"
            unmapped.append(Unmapped(str(raw), reason))
    out = {CollabAllowance(r, i, p, peer, peer_asn, ca_id, expires_at)
           for r, i in links for p in prefixes}
    return tuple(sorted(out, key=_allowance_key)), tuple(unmapped)


def _allowance_key(a: CollabAllowance) -> tuple[object, ...]:
    return (a.router, a.interface, prefix_sort_key(a.prefix), a.peer, a.ca_id, a.expires_at)


def with_collaboration(ruleset: SavRuleSet, allowances: Iterable[CollabAllowance], now: float) -> SavRuleSet:
    """`ruleset` with the live allowances applied (allowlist + prefix, blocklist - prefix); `ruleset` itself
    when none changes anything (so the daemon's diff sees the same rule objects)."""
    by_key: dict[tuple[str, str], list[CollabAllowance]] = {}
    for a in live(allowances, now):
        by_key.setdefault((a.router, a.interface), []).append(a)
    if not by_key:
        return ruleset
    changed = False
    rules = []
    for rule in ruleset.rules:
        new = _apply(rule, by_key.get(rule.key(), ()))
        changed |= new is not rule
        rules.append(new)
    return dataclasses.replace(ruleset, rules=tuple(rules)) if changed else ruleset


def _apply(rule: InterfaceRules, allowances: Sequence[CollabAllowance]) -> InterfaceRules:
    if not allowances or not rule.prefixes:  # an empty allowlist passes everything: keep it so
        return rule
    if rule.kind is ListKind.ALLOW:
        return _allow(rule, allowances)
    return _unblock(rule, allowances)


def _allow(rule: InterfaceRules, allowances: Sequence[CollabAllowance]) -> InterfaceRules:
    prov: dict[str, tuple[str, ...]] = dict(rule.provenance)
    for a in allowances:
        prov[a.prefix] = tuple(sorted({*prov.get(a.prefix, ()), provenance_tag(a)}))
    prefixes = tuple(sorted({*rule.prefixes, *(a.prefix for a in allowances)}, key=prefix_sort_key))
    return dataclasses.replace(rule, prefixes=prefixes, provenance=prov)


def _unblock(rule: InterfaceRules, allowances: Sequence[CollabAllowance]) -> InterfaceRules:
    listed = PrefixSet(rule.prefixes)
    holes = {a.prefix: a for a in allowances if listed.overlaps(a.prefix)}
    if not holes:
        return rule
    kept = subtract_space(rule.prefixes, holes)
    return dataclasses.replace(rule, prefixes=kept, provenance=_cut_provenance(rule, listed, kept, holes))


def _cut_provenance(rule: InterfaceRules, listed: PrefixSet, kept: Sequence[str],
                    holes: Mapping[str, CollabAllowance]) -> dict[str, tuple[str, ...]]:
    """A piece left of a listed prefix keeps that prefix's reasons, and says which allowances cut it."""
    out: dict[str, tuple[str, ...]] = {}
    for piece in kept:
        if piece in listed:
            out[piece] = tuple(rule.provenance.get(piece, ()))
            continue
        parents = listed.covering(piece)
        reasons = {r for p in parents for r in rule.provenance.get(p, ())}
        around = PrefixSet(parents)
        cuts = {f"cut-by-{provenance_tag(a)}:{h}" for h, a in holes.items() if around.covers(h)}
        out[piece] = tuple(sorted(reasons | cuts))
    return out
