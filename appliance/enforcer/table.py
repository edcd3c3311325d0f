"""The node's FlowSpec table: which routes each local BGP peer currently announces (pure, no I/O).

Owns: applying decoded UPDATEs (announce replaces by NLRI key, withdraw removes) and session loss (a
peer that goes down takes all its routes with it: fail open, the table never outlives its source).
Routes that cannot be decoded are reported, never raised, so one bad NLRI cannot stall the others.
Keeps the merged view (one route per NLRI) current as updates arrive and records which NLRIs changed,
so the planner works on the delta (`take_changes`) instead of re-sorting the whole table.
Must not: render nftables or talk to ExaBGP.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from appliance.enforcer.route import Route, RouteError, decode_route, decode_withdraw_key, precedence_key

__all__ = ["DecodeProblem", "RouteTable", "UpdateResult"]


@dataclass(frozen=True, slots=True)
class DecodeProblem:
    peer: str
    family: str
    nlri: str
    error: str
    field: str = ""


@dataclass(frozen=True, slots=True)
class UpdateResult:
    changed: bool
    problems: tuple[DecodeProblem, ...] = ()


@dataclass(slots=True)
class RouteTable:
    """Routes by peer, then by NLRI key. `generation` increases on every effective change."""

    by_peer: dict[str, dict[str, Route]] = field(default_factory=dict)
    generation: int = 0
    merged: dict[str, Route] = field(default_factory=dict)      # NLRI key -> the route in force
    pending: dict[str, Route | None] = field(default_factory=dict)   # changed since take_changes()

    def apply_update(self, peer: str, attribute: Mapping[str, Any],
                     announce: Mapping[str, Mapping[str, Sequence[Any]]],
                     withdraw: Mapping[str, Sequence[Any]]) -> UpdateResult:
        """One UPDATE as ExaBGP printed it; families other than ipv4/ipv6 flow are ignored."""
        routes = self.by_peer.setdefault(peer, {})
        changed = False
        problems: list[DecodeProblem] = []
        for fam, nlris in withdraw.items():
            if fam not in ("ipv4 flow", "ipv6 flow"):
                continue
            for nlri in nlris:
                try:
                    key = decode_withdraw_key(fam, nlri)
                except (RouteError, TypeError, AttributeError) as exc:
                    problems.append(DecodeProblem(peer, fam, str(nlri)[:300], str(exc)))
                    continue
                if routes.pop(key, None) is not None:
                    changed = True
                    self._settle(key)
        for fam, by_nh in announce.items():
            if fam not in ("ipv4 flow", "ipv6 flow"):
                continue
            for nlris in by_nh.values():
                for nlri in nlris:
                    try:
                        route = decode_route(fam, nlri, attribute, peer)
                    except RouteError as exc:
                        problems.append(DecodeProblem(peer, fam, str(nlri)[:300], str(exc), exc.field))
                        continue
                    except (TypeError, AttributeError, ValueError) as exc:
                        problems.append(DecodeProblem(peer, fam, str(nlri)[:300], repr(exc)))
                        continue
                    if routes.get(route.key) != route:
                        routes[route.key] = route
                        changed = True
                        self._settle(route.key)
        if changed:
            self.generation += 1
        return UpdateResult(changed, tuple(problems))

    def drop_peer(self, peer: str) -> bool:
        """The session to `peer` went down: forget its routes (fail open). True if any were held."""
        routes = self.by_peer.pop(peer, None)
        for key in routes or ():
            self._settle(key)
        if routes:
            self.generation += 1
        return bool(routes)

    def _settle(self, key: str) -> None:
        """Re-decide which peer's route is in force for `key` (the lowest peer address) and record a
        change when that differs from before."""
        winner = next((self.by_peer[p][key] for p in sorted(self.by_peer) if key in self.by_peer[p]), None)
        if self.merged.get(key) == winner:
            return
        if winner is None:
            del self.merged[key]
        else:
            self.merged[key] = winner
        self.pending[key] = winner

    def take_changes(self) -> dict[str, Route | None]:
        """NLRI key -> route now in force (None: gone) for every key changed since the last call."""
        changes, self.pending = self.pending, {}
        return changes

    def routes(self) -> tuple[Route, ...]:
        """Every route once; the same NLRI from two peers: the lowest peer address wins (deterministic)."""
        return sorted_routes(self.merged.values())

    def __len__(self) -> int:
        return len(self.merged)


def sorted_routes(routes: Iterable[Route]) -> tuple[Route, ...]:
    """RFC 8955 §5.1 order (IPv4 and IPv6 never compete for a packet; IPv4 first for stable output)."""
    return tuple(sorted(routes, key=lambda r: (r.family, precedence_key(r))))
