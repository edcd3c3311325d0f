"""Typed events of the path source: what a BMP station (or another speaker) reports about BGP paths.

Speaker-neutral on purpose: the daemon component that consumes them (the state store's path facts) must
not know whether they came from BMP, a BGP add-path feed or a replayed MRT file. Values only: no sockets,
no ExaBGP objects, tuples for collections, so events can be journalled and compared in tests.

Semantics the consumer relies on:
- `Routes.announced` replaces whatever the same (router, peer, prefix, path_id) held before (implicit
  withdraw, RFC 4271 §3.1); `withdrawn` removes it.
- `post_policy=True` routes are informational (the consumer ignores them); pre-policy Adj-RIB-In and
  RFC 9069 Loc-RIB (`loc_rib=True`) are the facts.
- `PeerDown` drops every path learnt from that peer on that router; `RouterDown` every path of the router.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BmpEvent",
    "EndOfRib",
    "Malformed",
    "PeerDown",
    "PeerUp",
    "Route",
    "RouterDown",
    "RouterUp",
    "Routes",
]


@dataclass(frozen=True, slots=True)
class Route:
    """One announced path. `as_path` is the AS_SEQUENCE members in wire order (neighbour first, origin
    last; AS_CONFED_* segments dropped); `as_set` the sorted members of AS_SET segments, kept apart
    because an AS_SET says nothing about order or origin (RFC 6472) and must never be flattened in."""

    prefix: str
    as_path: tuple[int, ...]
    as_set: tuple[int, ...] = ()
    path_id: int = 0


@dataclass(frozen=True, slots=True)
class RouterUp:
    """A router's BMP session is up (Initiation received)."""

    router: str
    address: str
    sys_name: str
    sys_descr: str


@dataclass(frozen=True, slots=True)
class RouterDown:
    """A router's BMP session ended (Termination, TCP close or lost framing): all its paths are gone."""

    router: str
    reason: str


@dataclass(frozen=True, slots=True)
class PeerUp:
    """A monitored BGP session of `router` reached Established (or, with `loc_rib`, the Loc-RIB instance)."""

    router: str
    peer: str
    peer_as: int
    peer_bgp_id: str
    loc_rib: bool = False


@dataclass(frozen=True, slots=True)
class PeerDown:
    """A monitored BGP session went down: every path learnt over it is withdrawn."""

    router: str
    peer: str
    reason: str


@dataclass(frozen=True, slots=True)
class Routes:
    """Paths announced and withdrawn (as (prefix, path_id)) by one peer of one router, in one message."""

    router: str
    peer: str
    peer_as: int
    announced: tuple[Route, ...]
    withdrawn: tuple[tuple[str, int], ...]
    post_policy: bool = False
    loc_rib: bool = False


@dataclass(frozen=True, slots=True)
class EndOfRib:
    """The initial table of one family from one peer is complete (family like "ipv4 unicast")."""

    router: str
    peer: str
    family: str


@dataclass(frozen=True, slots=True)
class Malformed:
    """A message that could not be decoded; the session goes on when the framing is intact."""

    router: str
    address: str
    detail: str


BmpEvent = RouterUp | RouterDown | PeerUp | PeerDown | Routes | EndOfRib | Malformed
