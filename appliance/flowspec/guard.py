"""Guardrail: never block a source prefix on the interface the router learns a route for it from.

A router that learns a route for P from the neighbour behind interface i may legitimately receive
traffic sourced from P on i (feasible-path uRPF, RFC 3704 §2.3). A rule set that blocks part of P on
i is therefore a sign of bad input (a stale topology, a wrong report) and is refused unless forced.
Only modes that can lose packets (drop, rate-limit) count as blocking; monitor and redirect do not.
Uses py-radix for the containment searches, so a full table of learned paths checks in seconds.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

import radix

from appliance.flowspec.aggregate import exact_cover
from appliance.model import BgpPath, InterfaceRules, ListKind, Mode

_BLOCKING = (Mode.DROP, Mode.RATE_LIMIT)


@dataclass(frozen=True, slots=True)
class Violation:
    """`path` (learned on router/interface) would be blocked, in part, by `rules`."""

    path: BgpPath
    kind: ListKind
    blocked: str   # the block prefix that overlaps, or the learned prefix not fully allowed


def _index(prefixes: Iterable[str]) -> radix.Radix:
    tree = radix.Radix()
    for p in prefixes:
        tree.add(p)
    return tree


class _InterfaceIndex:
    """The list of one interface, indexed for overlap (blocklist) or coverage (allowlist) questions."""

    def __init__(self, rules: InterfaceRules) -> None:
        self.kind = rules.kind
        nets = [ipaddress.ip_network(p) for p in rules.prefixes]
        self.families = {n.version for n in nets}
        source = nets if rules.kind is ListKind.BLOCK else exact_cover(nets)
        self.tree = _index(str(n) for n in source)

    def offending(self, prefix: str) -> str | None:
        """The prefix of this list that would block part of `prefix`, or None."""
        version = ipaddress.ip_network(prefix).version
        if self.kind is ListKind.BLOCK:
            hit = self.tree.search_worst(prefix) or next(iter(self.tree.search_covered(prefix)), None)
            return str(hit.prefix) if hit is not None else None
        if version not in self.families:
            return None  # allowlists restrict only the families they list (compiler docstring)
        # The cover is collapsed, so `prefix` is fully allowed iff one cover block contains it.
        return None if self.tree.search_best(prefix) is not None else prefix


def violations(rules: Iterable[InterfaceRules], learned: Iterable[BgpPath]) -> list[Violation]:
    """Every learned path that the blocking lists of `rules` would block, at least in part."""
    blocking = {r.key(): r for r in rules if r.action.mode in _BLOCKING and r.prefixes}
    index: dict[tuple[str, str], _InterfaceIndex] = {}   # built only for interfaces with learned paths
    out: list[Violation] = []
    for path in learned:
        key = (path.router, path.interface)
        if key not in blocking:
            continue
        entry = index.get(key)
        if entry is None:
            entry = index[key] = _InterfaceIndex(blocking[key])
        hit = entry.offending(path.prefix)
        if hit is not None:
            out.append(Violation(path, entry.kind, hit))
    return out
