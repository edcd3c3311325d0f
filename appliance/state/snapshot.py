"""A frozen, numbered view of every input fact: what the engine computes from.

Each tuple is in a deterministic order (sorted by the fact's fields, see appliance.state.store), so two
stores holding the same facts give equal snapshots whatever order the inputs arrived in. `sources` says
which sources state a fact (by kind), for provenance in explanations.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from appliance.model import (
    Aspa,
    BgpPath,
    CollabAllowance,
    IgpPrefix,
    Inspector,
    Interface,
    Link,
    Neighbor,
    PrefixReport,
    Router,
    RouterRole,
    Suspect,
    Vrp,
)
from appliance.state.facts import Fact, kind_of

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StateSnapshot:
    version: int = 0
    routers: tuple[Router, ...] = ()
    interfaces: tuple[Interface, ...] = ()
    links: tuple[Link, ...] = ()
    igp_prefixes: tuple[IgpPrefix, ...] = ()
    reports: tuple[PrefixReport, ...] = ()
    roles: tuple[RouterRole, ...] = ()
    neighbors: tuple[Neighbor, ...] = ()
    paths: tuple[BgpPath, ...] = ()
    vrps: tuple[Vrp, ...] = ()
    aspas: tuple[Aspa, ...] = ()
    inspectors: tuple[Inspector, ...] = ()
    suspects: tuple[Suspect, ...] = ()
    collab_allowances: tuple[CollabAllowance, ...] = ()
    sources: Mapping[str, Mapping[Fact, frozenset[str]]] = field(default_factory=dict, compare=False,
                                                                 repr=False)

    def counts(self) -> dict[str, int]:
        return {
            "router": len(self.routers),
            "interface": len(self.interfaces),
            "link": len(self.links),
            "igp-prefix": len(self.igp_prefixes),
            "report": len(self.reports),
            "role": len(self.roles),
            "neighbor": len(self.neighbors),
            "path": len(self.paths),
            "vrp": len(self.vrps),
            "aspa": len(self.aspas),
            "inspector": len(self.inspectors),
            "suspect": len(self.suspects),
            "collab-allowance": len(self.collab_allowances),
        }

    def sources_of(self, fact: Fact) -> frozenset[str]:
        return self.sources.get(kind_of(fact), {}).get(fact, frozenset())


class LayeredSources(Mapping[Fact, frozenset[str]]):
    """One kind's fact -> sources, frozen: a shared base dict plus this snapshot's own small delta.

    Why not a dict copy per snapshot: with 100k paths that copy dominates a one-fact change. The store
    never mutates a base or a delta once a snapshot holds it; `None` in the delta means "withdrawn".
    """

    __slots__ = ("_base", "_delta", "_len")

    def __init__(self, base: Mapping[Fact, frozenset[str]],
                 delta: Mapping[Fact, frozenset[str] | None], length: int) -> None:
        self._base, self._delta, self._len = base, delta, length

    def __getitem__(self, fact: Fact) -> frozenset[str]:
        if fact in self._delta:
            sources = self._delta[fact]
            if sources is None:
                raise KeyError(fact)
            return sources
        return self._base[fact]

    def __contains__(self, fact: object) -> bool:
        if fact in self._delta:
            return self._delta[fact] is not None  # type: ignore[index]
        return fact in self._base

    def __iter__(self) -> Iterator[Fact]:
        delta = self._delta
        if not delta:
            yield from self._base
            return
        yield from (f for f in self._base if f not in delta)
        yield from (f for f, sources in delta.items() if sources is not None)

    def __len__(self) -> int:
        return self._len


def changed_window(old: Sequence[T], new: Sequence[T]) -> tuple[Sequence[T], Sequence[T]]:
    """The parts of two snapshots' fact tuples that differ: the store keeps the same fact objects and sorts
    each kind the same way, so the common head and tail are skipped by identity and only the window in
    between (one change: a handful of facts) needs hashing."""
    if old is new:
        return (), ()
    n, m = len(old), len(new)
    head, limit = 0, min(n, m)
    while head < limit and old[head] is new[head]:
        head += 1
    tail = 0
    while tail < limit - head and old[n - 1 - tail] is new[m - 1 - tail]:
        tail += 1
    return old[head:n - tail], new[head:m - tail]
