"""Which allowlist catch-all routes to hold back from the kernel for now (pure, no I/O, no clock).

An allowlist reaches the node as many FlowSpec routes: one accept per listed source prefix and one
catch-all (source 0/0 or none) that drops or rate-limits the rest, all with the interface's groups.
FRR sends them in several UPDATEs (different attributes never share one), so for a moment the table
can hold the catch-all without its accepts: installed then, it drops every legitimate packet on the
interface (seen: 40 ms of drops). Fail open instead:

- a catch-all none of whose groups has an accept of its family is never installed: savd never sends
  an allowlist without accepts (it always allows link-local and unspecified sources), so a lone
  catch-all is an allowlist half-received (arriving, or its accepts withdrawn first);
- a catch-all not installed yet waits until the table has been quiet (`is_quiet`), so the transaction
  that installs it carries the whole allowlist received with it, never the discard alone.

A catch-all already installed stays while it has accepts (a changed allowlist keeps its discard).
`CatchAllIndex` answers the same question for a table that changes by deltas, in time proportional to
the delta and the number of catch-alls (a 100k-route table is not rescanned per change).
Must not: read clocks (the service says whether the table is quiet) or render nftables.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from appliance.enforcer.route import ActionKind, Route

__all__ = ["HOLD_NO_ACCEPTS", "HOLD_SETTLING", "CatchAllIndex", "held_catch_alls", "is_catch_all"]

HOLD_NO_ACCEPTS = "allowlist catch-all without accepts for its interfaces: not installed (fail open)"
HOLD_SETTLING = "allowlist catch-all waits until its accepts have arrived (fail open)"
PACKET_LENGTH = 10   # the compiler's discriminator component (always true): still a catch-all


def is_catch_all(route: Route) -> bool:
    """Matches every source of its family (and nothing narrower than a discriminator) and does not
    simply accept: the tail of an allowlist."""
    if route.action.kind is ActionKind.ACCEPT or route.destination is not None or route.unsupported:
        return False
    if route.source is not None and route.source.length != 0:
        return False
    return all(num.ctype == PACKET_LENGTH for num in route.numeric)


def _accept_groups(route: Route) -> tuple[tuple[int, int | None], ...]:
    """(family, group) pairs an accept route vouches for; group None = unscoped."""
    if route.action.kind is ActionKind.ACCEPT and route.source is not None and route.source.length != 0:
        return tuple((route.family, g) for g in (route.groups or (None,)))
    return ()


@dataclass(slots=True)
class CatchAllIndex:
    """Accept counts per (family, group) and the catch-alls, kept current by `update`."""

    accepts: dict[tuple[int, int | None], int] = field(default_factory=dict)
    catch_alls: dict[str, Route] = field(default_factory=dict)
    routes: dict[str, Route] = field(default_factory=dict)

    def update(self, changed: Mapping[str, Route | None]) -> None:
        """`changed`: route key -> the route now in force, None when withdrawn."""
        for key, route in changed.items():
            old = self.routes.pop(key, None)
            if old is not None:
                self.catch_alls.pop(key, None)
                for pair in _accept_groups(old):
                    self.accepts[pair] -= 1
                    if not self.accepts[pair]:
                        del self.accepts[pair]
            if route is None:
                continue
            self.routes[key] = route
            if is_catch_all(route):
                self.catch_alls[key] = route
            for pair in _accept_groups(route):
                self.accepts[pair] = self.accepts.get(pair, 0) + 1

    def held(self, installed: Collection[str], is_quiet: bool) -> dict[str, str]:
        """Route key -> why it is held, for the catch-alls that must not reach the kernel in this plan.

        `installed`: ids (Route.rid) of the routes the kernel holds now; `is_quiet`: no route changed for
        the settle time.
        """
        held: dict[str, str] = {}
        for key, r in self.catch_alls.items():
            if not all((r.family, g) in self.accepts for g in (r.groups or (None,))):
                held[key] = HOLD_NO_ACCEPTS
            elif r.rid not in installed and not is_quiet:
                held[key] = HOLD_SETTLING
        return held


def held_catch_alls(routes: Iterable[Route], installed: Collection[str], is_quiet: bool) -> dict[str, str]:
    """`CatchAllIndex.held` for a whole table at once."""
    index = CatchAllIndex()
    index.update({r.key: r for r in routes})
    return index.held(installed, is_quiet)
