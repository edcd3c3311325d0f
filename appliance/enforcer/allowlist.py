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
Must not: read clocks (the service says whether the table is quiet) or render nftables.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from appliance.enforcer.route import ActionKind, Route

__all__ = ["HOLD_NO_ACCEPTS", "HOLD_SETTLING", "held_catch_alls", "is_catch_all"]

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


def _accepts_by_group(routes: Iterable[Route]) -> set[tuple[int, int | None]]:
    """(family, group) pairs that have at least one accept; group None = unscoped."""
    out: set[tuple[int, int | None]] = set()
    for r in routes:
        if r.action.kind is ActionKind.ACCEPT and r.source is not None and r.source.length != 0:
            out.update((r.family, g) for g in (r.groups or (None,)))
    return out


def held_catch_alls(routes: Iterable[Route], installed: Collection[str], is_quiet: bool) -> dict[str, str]:
    """Route key -> why it is held, for the catch-alls that must not reach the kernel in this plan.

    `installed`: ids (Route.rid) of the routes the kernel holds now; `is_quiet`: no route changed for the
    settle time.
    """
    routes = tuple(routes)
    accepts = _accepts_by_group(routes)
    held: dict[str, str] = {}
    for r in routes:
        if not is_catch_all(r):
            continue
        if not all((r.family, g) in accepts for g in (r.groups or (None,))):
            held[r.key] = HOLD_NO_ACCEPTS
        elif r.rid not in installed and not is_quiet:
            held[r.key] = HOLD_SETTLING
    return held
