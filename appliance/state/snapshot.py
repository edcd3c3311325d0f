"""A frozen, numbered view of every input fact: what the engine computes from.

Each tuple is in a deterministic order (sorted by the fact's JSON form), so two stores holding the
same facts give equal snapshots whatever order the inputs arrived in. `sources` says which sources
state a fact (by kind), for provenance in explanations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from appliance.model import Aspa, BgpPath, IgpPrefix, Interface, Link, Neighbor, PrefixReport, Router, Vrp
from appliance.state.facts import Fact, kind_of


@dataclass(frozen=True, slots=True)
class StateSnapshot:
    version: int = 0
    routers: tuple[Router, ...] = ()
    interfaces: tuple[Interface, ...] = ()
    links: tuple[Link, ...] = ()
    igp_prefixes: tuple[IgpPrefix, ...] = ()
    reports: tuple[PrefixReport, ...] = ()
    neighbors: tuple[Neighbor, ...] = ()
    paths: tuple[BgpPath, ...] = ()
    vrps: tuple[Vrp, ...] = ()
    aspas: tuple[Aspa, ...] = ()
    sources: Mapping[str, Mapping[Fact, frozenset[str]]] = field(default_factory=dict, compare=False,
                                                                 repr=False)

    def counts(self) -> dict[str, int]:
        return {
            "router": len(self.routers),
            "interface": len(self.interfaces),
            "link": len(self.links),
            "igp-prefix": len(self.igp_prefixes),
            "report": len(self.reports),
            "neighbor": len(self.neighbors),
            "path": len(self.paths),
            "vrp": len(self.vrps),
            "aspa": len(self.aspas),
        }

    def sources_of(self, fact: Fact) -> frozenset[str]:
        return self.sources.get(kind_of(fact), {}).get(fact, frozenset())
